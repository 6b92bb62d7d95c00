//! Who may open which page: the compile-time list of pages, the user levels, and the table an
//! admin edits at `/admin/access`. Anything not granted is denied.

use std::collections::HashSet;
use std::sync::RwLock;

use serde::Serialize;

/// The kinds of people medvault serves. A guest is anyone not signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Guest,
    Admin,
    Doctor,
    Patient,
}

impl Level {
    /// The levels a signed-in user can have, in the order pages list them.
    pub const SIGNED_IN: [Level; 3] = [Level::Admin, Level::Doctor, Level::Patient];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Guest => "guest",
            Level::Admin => "admin",
            Level::Doctor => "doctor",
            Level::Patient => "patient",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "admin" => Some(Level::Admin),
            "doctor" => Some(Level::Doctor),
            "patient" => Some(Level::Patient),
            _ => None,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Level::Guest => "Guest",
            Level::Admin => "Admin",
            Level::Doctor => "Doctor",
            Level::Patient => "Patient",
        }
    }
}

/// How a page decides who may open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageKind {
    /// Open to everyone: sign-in, first-run setup, health, style sheets.
    Public,
    /// Open to every signed-in user, whatever the table says: signing out and changing one's
    /// own password must never be taken away (a forced password change depends on it).
    SignedIn,
    /// Open to the levels the access table grants.
    Granted,
}

/// Implemented by one marker type per page, so a route names its page in its guard's type.
pub trait PageId: Send + Sync + 'static {
    const PAGE: Page;
}

macro_rules! pages {
    ($( $name:ident { $path:literal, $title:literal, $kind:ident, nav: $nav:literal, [$($level:ident),*] } )*) => {
        /// Every page of medvault. A route belongs to exactly one page.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        pub enum Page { $($name),* }

        impl Page {
            pub const ALL: &'static [Page] = &[$(Page::$name),*];

            /// The stable name stored in the access table.
            pub fn key(self) -> &'static str {
                match self { $(Page::$name => stringify!($name)),* }
            }

            pub fn path(self) -> &'static str {
                match self { $(Page::$name => $path),* }
            }

            pub fn title(self) -> &'static str {
                match self { $(Page::$name => $title),* }
            }

            pub fn kind(self) -> PageKind {
                match self { $(Page::$name => PageKind::$kind),* }
            }

            /// Whether the page has an entry in the navigation bar.
            pub fn in_nav(self) -> bool {
                match self { $(Page::$name => $nav),* }
            }

            /// The levels granted this page on a new installation.
            pub fn default_levels(self) -> &'static [Level] {
                match self { $(Page::$name => &[$(Level::$level),*]),* }
            }
        }

        /// One marker type per page, for [`crate::auth::Allowed`] and [`crate::auth::Public`].
        pub mod page {
            $(
                pub struct $name;
                impl super::PageId for $name {
                    const PAGE: super::Page = super::Page::$name;
                }
            )*
        }
    };
}

pages! {
    Home            { "/",                 "Home",             Public,   nav: false, [] }
    Login           { "/login",            "Sign in",          Public,   nav: false, [] }
    LoginTwoFactor  { "/login/2fa",        "Two-factor code",  Public,   nav: false, [] }
    Setup           { "/setup",            "First-run setup",  Public,   nav: false, [] }
    Health          { "/health",           "Health",           Public,   nav: false, [] }
    Static          { "/static",           "Style sheets",     Public,   nav: false, [] }
    Metrics         { "/metrics",          "Metrics",          Public,   nav: false, [] }
    Dashboard       { "/dashboard",        "Dashboard",        SignedIn, nav: true,  [] }
    Logout          { "/logout",           "Sign out",         SignedIn, nav: false, [] }
    AccountPassword { "/account/password", "Password",         SignedIn, nav: true,  [] }
    AccountTwoFactor { "/account/2fa",     "Two-factor",       SignedIn, nav: true,  [] }
    AccountSessions { "/account/sessions", "My sessions",      Granted,  nav: true,  [Admin, Doctor, Patient] }
    Patients        { "/patients",         "Patients",         Granted,  nav: true,  [Doctor] }
    Records         { "/records",          "My records",       Granted,  nav: true,  [Patient] }
    AccessLog       { "/account/access-log", "Who opened my record", Granted, nav: true, [Patient] }
    Files           { "/files",            "File downloads",   Granted,  nav: false, [Doctor, Patient] }
    AdminUsers      { "/admin/users",      "Users",            Granted,  nav: true,  [Admin] }
    AdminAccess     { "/admin/access",     "Page access",      Granted,  nav: true,  [Admin] }
    AdminSecurity   { "/admin/security",   "Security",         Granted,  nav: true,  [Admin] }
    AdminAudit      { "/admin/audit",      "Audit trail",      Granted,  nav: true,  [Admin] }
    AdminEncryption { "/admin/encryption", "Encryption",       Granted,  nav: true,  [Admin] }
    AdminBackups    { "/admin/backups",    "Backups",          Granted,  nav: true,  [Admin] }
    AdminCareTeams  { "/admin/care-teams", "Care teams",       Granted,  nav: true,  [Admin] }
    AdminMasking    { "/admin/masking",    "Masking",          Granted,  nav: true,  [Admin] }
}

impl Page {
    pub fn parse(key: &str) -> Option<Page> {
        Page::ALL.iter().copied().find(|p| p.key() == key)
    }

    /// The pages an admin can grant or withhold at `/admin/access`.
    pub fn grantable() -> impl Iterator<Item = Page> {
        Page::ALL
            .iter()
            .copied()
            .filter(|p| p.kind() == PageKind::Granted)
    }

    /// A grant that can never be withdrawn, so that admins cannot lock themselves out.
    pub fn is_pinned(self, level: Level) -> bool {
        self == Page::AdminAccess && level == Level::Admin
    }
}

/// The access table in memory: the pairs (level, page) that are granted. Loaded from the
/// database at start and replaced whole when an admin saves the grid.
#[derive(Default)]
pub struct AccessTable {
    granted: RwLock<HashSet<(Level, Page)>>,
}

impl AccessTable {
    pub fn replace(&self, granted: HashSet<(Level, Page)>) {
        let mut table = self.granted.write().unwrap_or_else(|e| e.into_inner());
        *table = granted;
    }

    /// Whether `level` may open `page`. Deny unless a rule says otherwise.
    pub fn allows(&self, level: Level, page: Page) -> bool {
        match page.kind() {
            PageKind::Public => true,
            PageKind::SignedIn => level != Level::Guest,
            PageKind::Granted => {
                page.is_pinned(level)
                    || self
                        .granted
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&(level, page))
            }
        }
    }

    /// The navigation entries `level` may follow, in list order.
    pub fn nav_for(&self, level: Level) -> Vec<Page> {
        Page::ALL
            .iter()
            .copied()
            .filter(|p| p.in_nav() && self.allows(level, *p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_denies_every_granted_page() {
        let table = AccessTable::default();
        for page in Page::grantable() {
            for level in Level::SIGNED_IN {
                assert_eq!(table.allows(level, page), page.is_pinned(level), "{page:?}");
            }
        }
    }

    #[test]
    fn guests_never_open_signed_in_pages() {
        let table = AccessTable::default();
        assert!(!table.allows(Level::Guest, Page::Logout));
        assert!(table.allows(Level::Guest, Page::Login));
    }

    #[test]
    fn page_keys_are_unique_and_parse_back() {
        let keys: HashSet<_> = Page::ALL.iter().map(|p| p.key()).collect();
        assert_eq!(keys.len(), Page::ALL.len());
        for page in Page::ALL {
            assert_eq!(Page::parse(page.key()), Some(*page));
        }
    }
}
