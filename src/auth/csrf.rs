//! CSRF protection for every form post: a per-session token compared in constant time, and an
//! Origin that must be medvault's own. Guests (the sign-in and setup forms) get their token from a
//! private cookie instead of a session.

use rocket::data::{self, Data, FromData};
use rocket::form::{Contextual, Form};
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::Request;
use rocket::State;

use super::refusal::{note_refusal, GuardError, Refusal};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome as AuditOutcome};
use crate::auth::{ClientInfo, Viewer};
use crate::crypto::{constant_time_eq, random_token};

const GUEST_CSRF_COOKIE: &str = "mv_csrf";

/// The CSRF token for a guest's form, created on first use and kept in a private cookie,
/// marked `Secure` whenever the server runs under TLS (`secure`), like the session cookie.
pub fn login_csrf_token(cookies: &CookieJar<'_>, secure: bool) -> String {
    if let Some(cookie) = cookies.get_private(GUEST_CSRF_COOKIE) {
        return cookie.value().to_string();
    }
    let token = random_token();
    cookies.add_private(guest_csrf_cookie(token.clone(), secure));
    token
}

fn guest_csrf_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((GUEST_CSRF_COOKIE, token))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .path("/")
        .expires(None)
        .build()
}

/// A form whose `csrf_token` field and Origin were checked before the handler runs; it derefs to
/// Rocket's `Form<Contextual<T>>` so handlers validate and re-render it as usual.
pub struct CsrfForm<'r, T>(pub Form<Contextual<'r, T>>);

impl<'r, T> std::ops::Deref for CsrfForm<'r, T> {
    type Target = Form<Contextual<'r, T>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> std::ops::DerefMut for CsrfForm<'_, T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Whether the request's Origin is medvault's own. Browsers send Origin on every form post;
/// when it is absent (old browsers, scripts), `Sec-Fetch-Site` must not say it is cross-site.
fn origin_is_ours(req: &Request<'_>, allowed: &[String]) -> bool {
    let headers = req.headers();
    let Some(origin) = headers.get_one("Origin") else {
        return headers
            .get_one("Sec-Fetch-Site")
            .is_none_or(|site| site == "same-origin" || site == "none");
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get_one("Host").unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    !host.is_empty() && origin_host == Some(host)
}

fn refuse<'r, T>(
    req: &'r Request<'_>,
    reason: &str,
) -> data::Outcome<'r, CsrfForm<'r, T>, GuardError> {
    note_refusal(req, Refusal::ForgedForm);
    tracing::warn!(route = %super::refusal::route_of(req), reason, "form post refused");
    data::Outcome::Error((Status::Forbidden, GuardError::Refused))
}

async fn audit_refusal(
    req: &Request<'_>,
    app: &App,
    viewer: Option<&Viewer>,
    reason: &'static str,
) {
    let client = match req.guard::<&ClientInfo>().await {
        Outcome::Success(c) => c.clone(),
        _ => return,
    };
    let mut actor = Actor {
        ip: client.ip,
        ..Actor::default()
    };
    if let Some(signed_in) = viewer.and_then(Viewer::signed_in) {
        actor.id = signed_in.user.id.clone();
        actor.name = signed_in.user.username.clone();
    }
    let entry = Entry::new(&actor, action::CSRF_REFUSED, AuditOutcome::Denied)
        .target(format!("POST {}", super::refusal::route_of(req)))
        .detail(reason);
    let audit_app = app.clone();
    if let Err(e) = app
        .db
        .run(move |conn| -> Result<(), GuardError> {
            Ok(audit_app.audit.append(conn, audit_app.now(), &entry)?)
        })
        .await
    {
        tracing::error!(error = %e, "cannot audit a refused form");
    }
}

#[rocket::async_trait]
impl<'r, T: rocket::form::FromForm<'r> + Send + 'r> FromData<'r> for CsrfForm<'r, T> {
    type Error = GuardError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let app = match req.guard::<&State<App>>().await {
            Outcome::Success(app) => app.inner().clone(),
            _ => return data::Outcome::Error((Status::InternalServerError, GuardError::Refused)),
        };
        let viewer = match req.guard::<&Viewer>().await {
            Outcome::Success(v) => Some(v),
            _ => None,
        };
        if !origin_is_ours(req, &app.config.allowed_origins) {
            audit_refusal(req, &app, viewer, "foreign origin").await;
            return refuse(req, "foreign origin");
        }
        let expected = match viewer.and_then(Viewer::signed_in) {
            Some(signed_in) => Some(signed_in.session.csrf_token.clone()),
            None => req
                .cookies()
                .get_private(GUEST_CSRF_COOKIE)
                .map(|c| c.value().to_string()),
        };
        let form = match Form::<Contextual<'r, T>>::from_data(req, data).await {
            Outcome::Success(form) => form,
            Outcome::Error((status, _)) => {
                return data::Outcome::Error((
                    status,
                    GuardError::Malformed("The form could not be read."),
                ))
            }
            Outcome::Forward(f) => return Outcome::Forward(f),
        };
        let given = form.context.field_value("csrf_token").unwrap_or_default();
        match expected {
            Some(expected) if constant_time_eq(expected.as_bytes(), given.as_bytes()) => {
                data::Outcome::Success(CsrfForm(form))
            }
            _ => {
                audit_refusal(req, &app, viewer, "missing or wrong csrf token").await;
                refuse(req, "missing or wrong csrf token")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_csrf_cookie_is_secure_under_tls_only() {
        let under_tls = guest_csrf_cookie("t".into(), true);
        assert_eq!(under_tls.secure(), Some(true));
        assert_eq!(under_tls.http_only(), Some(true));
        assert_eq!(under_tls.same_site(), Some(SameSite::Strict));
        // Over plain HTTP (loopback) a Secure cookie would never come back.
        assert_ne!(guest_csrf_cookie("t".into(), false).secure(), Some(true));
    }
}
