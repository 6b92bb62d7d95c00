//! The catchers: what a request no handler answered gets. A refused sign-in goes to the page
//! that lets the person on (sign-in, a forced password change, two-factor enrolment); every
//! other status renders the error page with the reason a guard noted, never internals. They
//! sit apart from `web::error` because they link to pages, which use that error type.

use crate::auth::refusal::{noted_message, noted_refusal, noted_retry_after, Refusal};
use crate::auth::Viewer;
use crate::web::error::{default_message, error_page, too_many_requests, TooManyRequests};
use crate::web::Template;
use rocket::http::{Method, Status};
use rocket::request::Request;
use rocket::response::Redirect;
use rocket::uri;
use rocket::{catch, catchers, Catcher};

#[catch(401)]
fn sign_in_needed(req: &Request<'_>) -> Redirect {
    let refusal = noted_refusal(req);
    // The page a session's end interrupted is where that user's next sign-in goes back to.
    if let (
        Some(Refusal::SessionEnded(_)),
        Some(Viewer::Guest {
            session_ended: Some(ended),
        }),
    ) = (refusal, Viewer::cached(req))
    {
        if req.method() == Method::Get && !ended.user_id.is_empty() {
            let https = crate::auth::ClientInfo::cached(req).is_some_and(|c| c.https);
            let target = req.uri().to_string();
            crate::web::login::remember_return(req.cookies(), &ended.user_id, &target, https);
        }
    }
    match refusal {
        Some(Refusal::PasswordChangeNeeded) => {
            Redirect::to(uri!(crate::web::account::password::password_page))
        }
        Some(Refusal::TwoFactorEnrolmentNeeded) => {
            Redirect::to(uri!(crate::web::account::two_factor::overview))
        }
        Some(Refusal::SessionEnded(why)) => Redirect::to(uri!(crate::web::login::login_page(
            ended = Some(why.code())
        ))),
        _ => Redirect::to(uri!(crate::web::login::login_page(ended = _))),
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

#[catch(429)]
fn too_many(req: &Request<'_>) -> TooManyRequests {
    let seconds = noted_retry_after(req).unwrap_or(60);
    too_many_requests(seconds)
}

#[catch(400)]
fn bad_request(req: &Request<'_>) -> (Status, Template) {
    let noted = noted_message(req);
    error_page(
        Status::BadRequest,
        noted.unwrap_or_else(|| default_message(Status::BadRequest)),
    )
}

#[catch(default)]
fn any_status(status: Status, req: &Request<'_>) -> (Status, Template) {
    let noted = noted_message(req);
    error_page(status, noted.unwrap_or_else(|| default_message(status)))
}

pub fn catchers() -> Vec<Catcher> {
    catchers![sign_in_needed, bad_request, forbidden, too_many, any_status]
}
