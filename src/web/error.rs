//! One error type for every page handler: it renders a page with a clear message and the right
//! status, never internals (the catchers, in `web::catchers`, render the same page). The layers below have errors of their own;
//! they become a page only here.

use crate::auth::refusal::route_of;
use crate::web::Template;
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
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
    /// The database is out of reach; the request changed nothing.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
            AppError::Unavailable(_) => Status::ServiceUnavailable,
            AppError::Database(e) if crate::db::lost_connection(e) => Status::ServiceUnavailable,
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

impl From<crate::db::DbError> for AppError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Query(e) => AppError::Database(e),
            unavailable @ crate::db::DbError::Unavailable(_) => {
                AppError::Unavailable(unavailable.to_string())
            }
        }
    }
}

impl From<crate::fields::SealError> for AppError {
    fn from(e: crate::fields::SealError) -> Self {
        AppError::internal("sealing", e)
    }
}

impl From<crate::fields::StoreError> for AppError {
    fn from(e: crate::fields::StoreError) -> Self {
        match e {
            crate::fields::StoreError::Db(e) => e.into(),
            crate::fields::StoreError::Seal(e) => e.into(),
        }
    }
}

impl From<crate::records::files::UploadError> for AppError {
    fn from(e: crate::records::files::UploadError) -> Self {
        match e {
            crate::records::files::UploadError::Store(e) => e.into(),
            crate::records::files::UploadError::Write(e) => {
                AppError::internal("writing a medical file", e)
            }
        }
    }
}

impl From<crate::reencryption::job::JobError> for AppError {
    fn from(e: crate::reencryption::job::JobError) -> Self {
        match e {
            crate::reencryption::job::JobError::Db(e) => e.into(),
            crate::reencryption::job::JobError::Seal(e) => e.into(),
        }
    }
}

impl From<crate::reencryption::rotation::RotationError> for AppError {
    fn from(e: crate::reencryption::rotation::RotationError) -> Self {
        use crate::reencryption::rotation::RotationError;
        match e {
            RotationError::Refused(message) => AppError::Conflict(message),
            RotationError::KeyFile(e) => AppError::internal("the key file", e),
            RotationError::Db(e) => e.into(),
            RotationError::Job(e) => e.into(),
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

/// A form handler's answer when it does not go on: the page shown again with a message at each
/// field that is wrong (422, unless the page says otherwise), or an error page. `?` on any error
/// the handler meets turns it into the second.
pub enum Rejected {
    Form(Status, Template),
    Error(AppError),
}

impl Rejected {
    /// The form's page again, with its messages: 422.
    pub fn form(page: Template) -> Rejected {
        Rejected::Form(Status::UnprocessableEntity, page)
    }

    /// A page with the status it was rendered for.
    pub fn page((status, page): (Status, Template)) -> Rejected {
        Rejected::Form(status, page)
    }
}

impl<E: Into<AppError>> From<E> for Rejected {
    fn from(e: E) -> Self {
        Rejected::Error(e.into())
    }
}

impl<'r> Responder<'r, 'static> for Rejected {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Rejected::Form(status, page) => (status, page).respond_to(req),
            Rejected::Error(e) => e.respond_to(req),
        }
    }
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

pub(crate) fn default_message(status: Status) -> &'static str {
    match status.code {
        400 => "The request could not be understood. Check the address or the form and try again.",
        403 => "You do not have access to this page. Ask an administrator if you need it.",
        404 => "There is nothing here. The address may be mistyped, or the item was removed.",
        413 => "What you sent is too large.",
        422 => "Some of what you entered is not valid. Correct it and try again.",
        429 => "Too many requests. Wait a moment and try again.",
        500 => "Something went wrong on our side. It has been logged; please try again.",
        503 => {
            "The records database is not answering at the moment, so nothing was read or \
                saved. Try again in a minute; if it goes on, tell your administrator."
        }
        _ => "The request could not be completed.",
    }
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
