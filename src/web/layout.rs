//! What the base layout needs on every page: who is signed in, the navigation they may follow,
//! the CSRF token for the page's forms and the flash message of the last post.

use rocket::form::Context;
use rocket::request::FlashMessage;
use serde::Serialize;

use crate::access::{Page, PageKind};
use crate::app::App;
use crate::auth::SignedIn;

#[derive(Serialize)]
pub struct NavItem {
    pub path: &'static str,
    pub title: &'static str,
    pub current: bool,
    pub admin: bool,
}

#[derive(Serialize)]
pub struct FlashView {
    pub kind: String,
    pub message: String,
}

#[derive(Serialize)]
pub struct Layout {
    pub signed_in: bool,
    pub username: String,
    pub level: &'static str,
    pub nav: Vec<NavItem>,
    pub csrf_token: String,
    pub flash: Option<FlashView>,
    pub title: &'static str,
}

impl Layout {
    pub fn for_user(app: &App, who: &impl SignedIn, flash: Option<FlashMessage<'_>>) -> Layout {
        let current = who.page();
        let level = who.user().level();
        Layout {
            signed_in: true,
            username: who.user().username.clone(),
            level: level.as_str(),
            nav: app
                .access
                .nav_for(level)
                .into_iter()
                .map(|p| NavItem {
                    path: p.path(),
                    title: p.title(),
                    current: p == current,
                    admin: p.path().starts_with("/admin") && p.kind() == PageKind::Granted,
                })
                .collect(),
            csrf_token: who.session().csrf_token.clone(),
            flash: flash_view(flash),
            title: current.title(),
        }
    }

    pub fn for_guest(page: Page, csrf_token: String, flash: Option<FlashMessage<'_>>) -> Layout {
        Layout {
            signed_in: false,
            username: String::new(),
            level: "guest",
            nav: Vec::new(),
            csrf_token,
            flash: flash_view(flash),
            title: page.title(),
        }
    }

    /// Replaces the flash with a message for this render (a form error that is not a field's).
    pub fn with_message(mut self, kind: &str, message: impl Into<String>) -> Layout {
        self.flash = Some(FlashView {
            kind: kind.to_string(),
            message: message.into(),
        });
        self
    }
}

fn flash_view(flash: Option<FlashMessage<'_>>) -> Option<FlashView> {
    flash.map(|f| FlashView {
        kind: f.kind().to_string(),
        message: f.message().to_string(),
    })
}

/// A form's values and errors for re-rendering it, without any password field's value.
#[derive(Serialize, Default, Clone)]
pub struct FormView {
    pub values: std::collections::HashMap<String, String>,
    pub errors: std::collections::HashMap<String, String>,
}

impl FormView {
    pub fn error(mut self, field: &str, message: impl Into<String>) -> FormView {
        self.errors.insert(field.to_string(), message.into());
        self
    }

    pub fn value(mut self, field: &str, value: impl Into<String>) -> FormView {
        self.values.insert(field.to_string(), value.into());
        self
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// This form with each of a command's refusals shown at its field.
    pub fn with_problems(self, problems: Vec<crate::records::FieldProblem>) -> FormView {
        problems
            .into_iter()
            .fold(self, |view, (field, message)| view.error(field, message))
    }
}

/// The values and first error per field of a posted form, for re-rendering it.
pub fn form_context(context: &Context<'_>) -> FormView {
    form_context_of(
        context,
        &["username", "level", "full_name", "email", "token", "q"],
    )
}

/// [`form_context`] re-filling the fields `names` (never a password's).
pub fn form_context_of(context: &Context<'_>, names: &[&str]) -> FormView {
    let mut view = FormView::default();
    for field in names.iter().copied() {
        if let Some(value) = context.field_value(field) {
            view.values.insert(field.to_string(), value.to_string());
        }
    }
    for error in context.errors() {
        let name = error
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "form".to_string());
        view.errors.entry(name).or_insert_with(|| error.to_string());
    }
    view
}

/// Where a list is and how to go back and forth.
#[derive(Serialize)]
pub struct Paging {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<i64>,
    pub next: Option<i64>,
}

impl Paging {
    pub fn new(page: i64, per_page: i64, total: i64) -> Paging {
        let pages = ((total + per_page - 1) / per_page).max(1);
        let page = page.clamp(1, pages);
        Paging {
            page,
            pages,
            total,
            prev: (page > 1).then_some(page - 1),
            next: (page < pages).then_some(page + 1),
        }
    }

    pub fn offset(&self, per_page: i64) -> i64 {
        (self.page - 1) * per_page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_clamps_and_links() {
        let p = Paging::new(9, 25, 60);
        assert_eq!((p.page, p.pages, p.prev, p.next), (3, 3, Some(2), None));
        let empty = Paging::new(1, 25, 0);
        assert_eq!(
            (empty.page, empty.pages, empty.prev, empty.next),
            (1, 1, None, None)
        );
    }
}
