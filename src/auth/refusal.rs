//! Why a guard refused a request, noted on the request for the web layer's catchers to render:
//! the guards decide, the catchers only show.

use std::sync::{Mutex, OnceLock};

use rocket::http::Status;
use rocket::request::Request;

/// Why a guard refused a request, for the catcher that renders the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not signed in: go to the sign-in page.
    SignInNeeded,
    /// The session ended (timeout, renewal, another browser or address): sign in again.
    SessionEnded(crate::auth::SessionEnd),
    /// Signed in with a one-time password: change it first.
    PasswordChangeNeeded,
    /// The level requires two-factor sign-in and this user has not enrolled yet.
    TwoFactorEnrolmentNeeded,
    /// The access table does not grant this page to this level.
    PageDenied,
    /// A form without the right CSRF token, or from another site.
    ForgedForm,
}

/// What a guard's failure carries; the status it fails with decides the page, and the notes
/// below say more.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("refused")]
    Refused,
    #[error("{0}")]
    Malformed(&'static str),
    /// The database is out of reach: a 503, not a fault of ours.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Default)]
struct RefusalNote(Mutex<Option<Refusal>>);

pub fn note_refusal(req: &Request<'_>, refusal: Refusal) {
    let note = req.local_cache(RefusalNote::default);
    *note.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
}

pub fn noted_refusal(req: &Request<'_>) -> Option<Refusal> {
    *req.local_cache(RefusalNote::default)
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The wait a rate limit noted on a request, for the 429 catcher.
struct RetryAfter(OnceLock<i64>);

pub fn note_retry_after(req: &Request<'_>, seconds: i64) {
    let _ = req
        .local_cache(|| RetryAfter(OnceLock::new()))
        .0
        .set(seconds);
}

pub fn noted_retry_after(req: &Request<'_>) -> Option<i64> {
    req.local_cache(|| RetryAfter(OnceLock::new()))
        .0
        .get()
        .copied()
}

/// A message a guard noted for the catcher of the status it refused with.
struct NotedMessage(OnceLock<&'static str>);

pub fn note_message(req: &Request<'_>, message: &'static str) {
    let _ = req
        .local_cache(|| NotedMessage(OnceLock::new()))
        .0
        .set(message);
}

pub fn noted_message(req: &Request<'_>) -> Option<&'static str> {
    req.local_cache(|| NotedMessage(OnceLock::new()))
        .0
        .get()
        .copied()
}

/// The route pattern a request matched (`/files/<token>`), never its path: paths carry download
/// tokens and record ids, which belong in neither the log nor an audit target.
pub fn route_of(req: &Request<'_>) -> String {
    req.route()
        .map(|route| route.uri.to_string())
        .unwrap_or_else(|| "(no route)".into())
}

impl From<crate::db::DbError> for GuardError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_unavailable() {
            GuardError::Unavailable(e.to_string())
        } else {
            GuardError::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for GuardError {
    fn from(e: diesel::result::Error) -> Self {
        crate::db::DbError::Query(e).into()
    }
}

impl GuardError {
    /// The status a request refused with this error gets.
    pub fn status(&self) -> Status {
        match self {
            GuardError::Unavailable(_) => Status::ServiceUnavailable,
            GuardError::Malformed(_) => Status::BadRequest,
            GuardError::Refused | GuardError::Internal(_) => Status::InternalServerError,
        }
    }
}
