//! One error type for every page handler, and the catchers: each renders a page with a clear
//! message and the right status, never internals.

use std::sync::Mutex;

use crate::web::Template;
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder};
use rocket::{catch, catchers, Catcher};
use rocket_dyn_templates::context;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        AppError::Internal(format!("{context}: {err}"))
    }

    fn status(&self) -> Status {
        match self {
            AppError::NotFound | AppError::Database(diesel::result::Error::NotFound) => {
                Status::NotFound
            }
            AppError::Forbidden => Status::Forbidden,
            AppError::BadRequest(_) => Status::BadRequest,
            AppError::Conflict(_) => Status::Conflict,
            AppError::Database(_) | AppError::Internal(_) => Status::InternalServerError,
        }
    }

    /// What the person is told: the whole message for their own mistakes, nothing for ours.
    fn public_message(&self) -> String {
        match self {
            AppError::BadRequest(m) | AppError::Conflict(m) => m.clone(),
            _ => default_message(self.status()).to_string(),
        }
    }
}

impl<'r> Responder<'r, 'static> for AppError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        if status.code >= 500 {
            tracing::error!(route = %route_of(req), error = %self, "request failed");
        }
        error_page(status, &self.public_message()).respond_to(req)
    }
}

/// The route pattern a request matched (`/files/<token>`), never its path: paths carry download
/// tokens and record ids, which belong in neither the log nor an audit target.
pub fn route_of(req: &Request<'_>) -> String {
    req.route()
        .map(|route| route.uri.to_string())
        .unwrap_or_else(|| "(no route)".into())
}

/// Why a guard refused a request, for the catcher that renders the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not signed in: go to the sign-in page.
    SignInNeeded,
    /// The session ended (timeout, renewal, another browser or address): sign in again.
    SessionEnded,
    /// Signed in with a one-time password: change it first.
    PasswordChangeNeeded,
    /// The level requires two-factor sign-in and this user has not enrolled yet.
    TwoFactorEnrolmentNeeded,
    /// The access table does not grant this page to this level.
    PageDenied,
    /// A form without the right CSRF token, or from another site.
    ForgedForm,
}

/// The refusal noted on a request; guards write it, catchers read it.
#[derive(Default)]
pub struct RefusalNote(Mutex<Option<Refusal>>);

pub fn note_refusal(req: &Request<'_>, refusal: Refusal) {
    let note = req.local_cache(RefusalNote::default);
    *note.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
}

fn noted_refusal(req: &Request<'_>) -> Option<Refusal> {
    *req.local_cache(RefusalNote::default)
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub fn error_page(status: Status, message: &str) -> (Status, Template) {
    (
        status,
        Template::render(
            "error",
            context! { status: status.code, title: status.reason_lossy(), message },
        ),
    )
}

fn default_message(status: Status) -> &'static str {
    match status.code {
        400 => "The request could not be understood. Check the address or the form and try again.",
        403 => "You do not have access to this page. Ask an administrator if you need it.",
        404 => "There is nothing here. The address may be mistyped, or the item was removed.",
        413 => "What you sent is too large.",
        422 => "Some of what you entered is not valid. Correct it and try again.",
        429 => "Too many requests. Wait a moment and try again.",
        500 => "Something went wrong on our side. It has been logged; please try again.",
        _ => "The request could not be completed.",
    }
}

#[catch(401)]
fn sign_in_needed(req: &Request<'_>) -> Redirect {
    match noted_refusal(req) {
        Some(Refusal::PasswordChangeNeeded) => Redirect::to("/account/password"),
        Some(Refusal::TwoFactorEnrolmentNeeded) => Redirect::to("/account/2fa"),
        Some(Refusal::SessionEnded) => Redirect::to("/login?ended=1"),
        _ => Redirect::to("/login"),
    }
}

#[catch(403)]
fn forbidden(req: &Request<'_>) -> (Status, Template) {
    let message = match noted_refusal(req) {
        Some(Refusal::ForgedForm) => {
            "This form has expired or did not come from medvault. Go back, reload the page and try again."
        }
        _ => default_message(Status::Forbidden),
    };
    error_page(Status::Forbidden, message)
}

/// A 429 page that says when to come back.
#[derive(rocket::Responder)]
pub struct TooManyRequests {
    page: (Status, Template),
    retry_after: Header<'static>,
}

pub fn too_many_requests(retry_after_seconds: i64) -> TooManyRequests {
    let seconds = retry_after_seconds.max(1);
    TooManyRequests {
        page: error_page(
            Status::TooManyRequests,
            &format!("Too many attempts from your address. Wait {seconds} seconds and try again."),
        ),
        retry_after: Header::new("Retry-After", seconds.to_string()),
    }
}

/// The wait a rate limit noted on a request, for the 429 catcher.
pub struct RetryAfter(pub std::sync::OnceLock<i64>);

pub fn note_retry_after(req: &Request<'_>, seconds: i64) {
    let _ = req
        .local_cache(|| RetryAfter(std::sync::OnceLock::new()))
        .0
        .set(seconds);
}

#[catch(429)]
fn too_many(req: &Request<'_>) -> TooManyRequests {
    let seconds = req
        .local_cache(|| RetryAfter(std::sync::OnceLock::new()))
        .0
        .get()
        .copied()
        .unwrap_or(60);
    too_many_requests(seconds)
}

/// A message a guard noted for the catcher of the status it refused with.
struct NotedMessage(std::sync::OnceLock<&'static str>);

pub fn note_message(req: &Request<'_>, message: &'static str) {
    let _ = req
        .local_cache(|| NotedMessage(std::sync::OnceLock::new()))
        .0
        .set(message);
}

#[catch(400)]
fn bad_request(req: &Request<'_>) -> (Status, Template) {
    let noted = req
        .local_cache(|| NotedMessage(std::sync::OnceLock::new()))
        .0
        .get()
        .copied();
    error_page(
        Status::BadRequest,
        noted.unwrap_or_else(|| default_message(Status::BadRequest)),
    )
}

#[catch(default)]
fn any_status(status: Status, req: &Request<'_>) -> (Status, Template) {
    let noted = req
        .local_cache(|| NotedMessage(std::sync::OnceLock::new()))
        .0
        .get()
        .copied();
    error_page(status, noted.unwrap_or_else(|| default_message(status)))
}

pub fn catchers() -> Vec<Catcher> {
    catchers![sign_in_needed, bad_request, forbidden, too_many, any_status]
}
