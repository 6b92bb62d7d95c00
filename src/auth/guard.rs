//! The page guards. Every route takes [`Allowed`] (a page the access table governs, or one any
//! signed-in user may open) or [`Public`]; a response fairing refuses whatever a route without
//! either would have served, and a test walks every mounted route to prove it.

use std::marker::PhantomData;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;

use super::refusal::{note_refusal, GuardError, Refusal};
use crate::access::{Page, PageId};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome as AuditOutcome};
use crate::auth::client::MalformedForwarding;
use crate::auth::{ClientInfo, Viewer};
use crate::db::models::{SessionRow, User};

/// Marks a request as having passed through a page guard, for the backstop fairing.
pub struct PageOfRequest(pub std::sync::OnceLock<Page>);

fn mark(req: &Request<'_>, page: Page) {
    let _ = req
        .local_cache(|| PageOfRequest(std::sync::OnceLock::new()))
        .0
        .set(page);
}

/// The page a guard recorded for this request, if any did.
pub fn page_of(req: &Request<'_>) -> Option<Page> {
    req.local_cache(|| PageOfRequest(std::sync::OnceLock::new()))
        .0
        .get()
        .copied()
}

/// A signed-in user allowed to open page `P`.
pub struct Allowed<P: PageId> {
    pub user: User,
    pub session: SessionRow,
    pub client: ClientInfo,
    _page: PhantomData<P>,
}

impl<P: PageId> Allowed<P> {
    /// The user as the audit trail names them.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.user.id.clone(),
            name: self.user.username.clone(),
            ip: self.client.ip.clone(),
        }
    }

    pub fn page(&self) -> Page {
        P::PAGE
    }
}

/// The view of a signed-in user that does not depend on the page: what layouts and helpers take.
pub trait SignedIn {
    fn user(&self) -> &User;
    fn session(&self) -> &SessionRow;
    fn page(&self) -> Page;
}

impl<P: PageId> SignedIn for Allowed<P> {
    fn user(&self) -> &User {
        &self.user
    }
    fn session(&self) -> &SessionRow {
        &self.session
    }
    fn page(&self) -> Page {
        P::PAGE
    }
}

#[rocket::async_trait]
impl<'r, P: PageId> FromRequest<'r> for Allowed<P> {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        mark(req, P::PAGE);
        if let Some(refused) = rate_limited(req).await {
            return refused;
        }
        let viewer = match req.guard::<&Viewer>().await {
            Outcome::Success(v) => v,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        let client = match req.guard::<&ClientInfo>().await {
            Outcome::Success(c) => c.clone(),
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        let signed_in = match viewer {
            Viewer::Guest { session_ended } => {
                let refusal = match session_ended {
                    Some(ended) => Refusal::SessionEnded(ended.why),
                    None => Refusal::SignInNeeded,
                };
                note_refusal(req, refusal);
                return Outcome::Error((Status::Unauthorized, GuardError::Refused));
            }
            Viewer::SignedIn(s) => s,
        };
        let user = &signed_in.user;
        if user.must_change_password && !matches!(P::PAGE, Page::AccountPassword | Page::Logout) {
            note_refusal(req, Refusal::PasswordChangeNeeded);
            return Outcome::Error((Status::Unauthorized, GuardError::Refused));
        }
        let app = match req.guard::<&State<App>>().await {
            Outcome::Success(app) => app.inner().clone(),
            _ => return Outcome::Error((Status::InternalServerError, GuardError::Refused)),
        };
        if !user.two_factor_enabled
            && app.security.two_factor_required(user.level())
            && !matches!(
                P::PAGE,
                Page::AccountTwoFactor | Page::AccountPassword | Page::Logout
            )
        {
            note_refusal(req, Refusal::TwoFactorEnrolmentNeeded);
            return Outcome::Error((Status::Unauthorized, GuardError::Refused));
        }
        if !app.access.allows(user.level(), P::PAGE) {
            note_refusal(req, Refusal::PageDenied);
            let entry = Entry::new(
                &Actor {
                    id: user.id.clone(),
                    name: user.username.clone(),
                    ip: client.ip.clone(),
                },
                action::ACCESS_DENIED,
                AuditOutcome::Denied,
            )
            .target(format!(
                "{} {}",
                req.method(),
                super::refusal::route_of(req)
            ))
            .detail(format!(
                "page {} is not granted to level {}",
                P::PAGE.key(),
                user.level
            ));
            let audit_app = app.clone();
            if let Err(e) = app
                .db
                .run(move |conn| -> Result<(), GuardError> {
                    Ok(audit_app.audit.append(conn, audit_app.now(), &entry)?)
                })
                .await
            {
                tracing::error!(error = %e, "cannot audit a denied request");
            }
            return Outcome::Error((Status::Forbidden, GuardError::Refused));
        }
        Outcome::Success(Allowed {
            user: signed_in.user.clone(),
            session: signed_in.session.clone(),
            client,
            _page: PhantomData,
        })
    }
}

/// A page open to everyone; naming it keeps the list of pages complete.
pub struct Public<P: PageId>(PhantomData<P>);

#[rocket::async_trait]
impl<'r, P: PageId> FromRequest<'r> for Public<P> {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        debug_assert_eq!(P::PAGE.kind(), crate::access::PageKind::Public);
        mark(req, P::PAGE);
        if let Some(refused) = rate_limited(req).await {
            return refused;
        }
        Outcome::Success(Public(PhantomData))
    }
}

/// What every page guard checks first: a `Host` medvault answers for (DNS rebinding must not
/// reach the forms or loopback's `/metrics`), a forwarding header that names a client, and the
/// application-wide rate limit per client address.
async fn rate_limited<T>(req: &Request<'_>) -> Option<Outcome<T, GuardError>> {
    if let (Some(host), Some(names)) = (
        req.headers().get_one("Host"),
        req.rocket().state::<crate::config::HostNames>(),
    ) {
        if !names.accepts(host) {
            super::refusal::note_message(
                req,
                "This server does not answer for the host name in the address. Use the \
                 address your clinic gave you.",
            );
            return Some(Outcome::Error((
                Status::MisdirectedRequest,
                GuardError::Malformed("unknown host"),
            )));
        }
    }
    let app = match req.guard::<&State<App>>().await {
        Outcome::Success(app) => app.inner().clone(),
        _ => return None,
    };
    let client = match req.guard::<&ClientInfo>().await {
        Outcome::Success(c) => c.clone(),
        Outcome::Error(e) => {
            super::refusal::note_message(req, MalformedForwarding::MESSAGE);
            return Some(Outcome::Error(e));
        }
        Outcome::Forward(_) => return None,
    };
    match app.brute_force.take_request(&client.ip, app.now()) {
        Ok(()) => None,
        Err(wait) => {
            super::refusal::note_retry_after(req, wait);
            Some(Outcome::Error((
                Status::TooManyRequests,
                GuardError::Refused,
            )))
        }
    }
}
