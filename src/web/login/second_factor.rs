//! `/login/2fa`: the second step of signing in, a TOTP code or a recovery code, within a few
//! minutes of the password.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::{page, Page};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::{
    login_csrf_token, remove_session_cookie, set_session_cookie, start_session, ClientInfo,
    CsrfForm, Public, SESSION_COOKIE,
};
use crate::brute_force::AttemptRefused;
use crate::crypto::{recovery_code_digest, verify_totp, FieldRef, Purpose};
use crate::db::models::two_factor::{RecoveryCode, TwoFactor};
use crate::db::models::{SessionRow, User, STAGE_FULL};
use crate::db::Conn;
use crate::web::error::{too_many_requests, AppError, TooManyRequests};
use crate::web::login::after_sign_in;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![code_page, submit_code]
}

/// How long the half-signed-in state between password and code lasts.
pub const PENDING_SECONDS: i64 = 5 * 60;
pub(crate) const RECOVERY_CODES: usize = 10;

pub(crate) fn secret_field(user_id: &str) -> FieldRef<'_> {
    FieldRef {
        table: "two_factor",
        column: "secret",
        row_id: user_id,
        owner_id: user_id,
    }
}

pub(crate) fn open_secret(app: &App, enrolment: &TwoFactor) -> Result<Vec<u8>, AppError> {
    let text = app
        .fields
        .open(&secret_field(&enrolment.user_id), &enrolment.secret)
        .map_err(|e| AppError::internal("two-factor secret", e))?;
    hex::decode(text).map_err(|e| AppError::internal("two-factor secret", e))
}

/// Which second factor a code was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    RecoveryCode,
}

/// Checks `code` as a TOTP code (spending its step) or else as a recovery code (spending it).
pub fn check_second_factor(
    app: &App,
    user_id: &str,
    code: &str,
    conn: &mut Conn,
) -> Result<Option<SecondFactor>, AppError> {
    let Some(enrolment) = TwoFactor::find(user_id, conn)?.filter(|t| t.enabled) else {
        return Ok(None);
    };
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secret = open_secret(app, &enrolment)?;
        let Some(step) = verify_totp(&secret, &digits, app.now(), enrolment.last_used_step) else {
            return Ok(None);
        };
        return Ok(TwoFactor::use_step(user_id, step, conn)?.then_some(SecondFactor::Totp));
    }
    let digest = recovery_code_digest(
        &app.keys().purpose_key(Purpose::RecoveryCodes),
        user_id,
        code,
    );
    Ok(RecoveryCode::spend(user_id, &digest, app.now(), conn)?
        .then_some(SecondFactor::RecoveryCode))
}

/// The half-signed-in session of this browser, with its user, if it is still fresh and held by
/// the browser and address that gave the password (under the same bindings as a full session):
/// a cookie carried elsewhere after the password step is worth nothing.
fn pending(
    app: &App,
    token: &str,
    client: &ClientInfo,
    conn: &mut Conn,
) -> Result<Option<(SessionRow, User)>, AppError> {
    let now = app.now();
    let digest = app.sessions.digest(token, app.sessions.epoch(now));
    let Some(row) = SessionRow::find_by_digest(&digest, conn)? else {
        return Ok(None);
    };
    if row.is_full() || now - row.created_at > PENDING_SECONDS {
        return Ok(None);
    }
    if (app.security.bind_ip() && row.ip != client.ip)
        || (app.security.bind_user_agent() && row.user_agent != client.user_agent)
    {
        return Ok(None);
    }
    Ok(User::find(&row.user_id, conn)?
        .filter(|u| u.active)
        .map(|u| (row, u)))
}

fn code_template(layout: Layout) -> Template {
    Template::render("auth/two_factor", context! { layout })
}

#[get("/login/2fa")]
async fn code_page(
    _page: Public<page::LoginTwoFactor>,
    app: &State<App>,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, Flash<Redirect>> {
    let token = cookies
        .get_private(SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let client2 = client.clone();
    let found = match token {
        Some(token) => app
            .blocking(move |app, conn| pending(app, &token, &client2, conn))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    if found.is_none() {
        return Err(Flash::error(
            Redirect::to(uri!(crate::web::login::login_page(ended = _))),
            "Sign in with your password first.",
        ));
    }
    let layout = Layout::for_guest(
        Page::LoginTwoFactor,
        login_csrf_token(cookies, client.https),
        flash,
    );
    Ok(code_template(layout))
}

#[derive(FromForm)]
pub struct CodeForm {
    pub(crate) code: String,
}

/// What the code page answers: onwards, the form again, or back to the password.
#[derive(rocket::Responder)]
enum CodeAnswer {
    SignedIn(Box<Redirect>),
    TryAgain(Box<(Status, Template)>),
    StartOver(Box<Flash<Redirect>>),
    TooMany(Box<TooManyRequests>),
}

fn start_over(message: &'static str) -> CodeAnswer {
    CodeAnswer::StartOver(Box::new(Flash::error(
        Redirect::to(uri!(crate::web::login::login_page(ended = _))),
        message,
    )))
}

#[post("/login/2fa", data = "<form>")]
async fn submit_code(
    _page: Public<page::LoginTwoFactor>,
    app: &State<App>,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<'_, CodeForm>,
) -> CodeAnswer {
    let Some(token) = cookies
        .get_private(SESSION_COOKIE)
        .map(|c| c.value().to_string())
    else {
        return start_over("Sign in with your password first.");
    };
    if let Err(wait) = app.brute_force.take_auth_attempt(&client.ip, app.now()) {
        return CodeAnswer::TooMany(Box::new(too_many_requests(wait)));
    }
    let code = form
        .value
        .as_ref()
        .map(|f| f.code.clone())
        .unwrap_or_default();
    let client2 = client.clone();
    let outcome = app
        .blocking(move |app, conn| {
            let Some((row, user)) = pending(app, &token, &client2, conn)? else {
                return Ok(Err(false));
            };
            let actor = Actor {
                id: user.id.clone(),
                name: user.username.clone(),
                ip: client2.ip.clone(),
            };
            let now = app.now();
            // A locked account's codes are not even tried: no step or recovery code is spent.
            // Held until this code's failure is counted (see login).
            let attempt = crate::auth::lockout::begin_attempt(app, &user.username, now, conn)?;
            let locked = attempt.is_refused();
            let factor = if locked {
                None
            } else {
                check_second_factor(app, &user.id, &code, conn)?
            };
            match factor {
                Some(factor) => {
                    if factor == SecondFactor::RecoveryCode {
                        app.audit.append(
                            conn,
                            app.now(),
                            &Entry::new(&actor, action::RECOVERY_CODE_USED, Outcome::Success),
                        )?;
                    }
                    crate::auth::lockout::forget(app, &user.username, now, conn)?;
                    // A fresh token for the full session; the half one ends.
                    SessionRow::delete(&row.id, conn)?;
                    let token = start_session(app, &user, &client2, None, STAGE_FULL, conn)?;
                    Ok(Ok((token, after_sign_in(&user), user.id.clone())))
                }
                None => {
                    app.audit.append(
                        conn,
                        app.now(),
                        &Entry::new(&actor, action::TWO_FACTOR_FAILURE, Outcome::Failure).detail(
                            match attempt.refused() {
                                Some(AttemptRefused::Locked(_)) => "account locked",
                                Some(AttemptRefused::Busy) => "too many attempts at once",
                                None => "",
                            },
                        ),
                    )?;
                    if attempt.refused() != Some(AttemptRefused::Busy) {
                        crate::auth::count_failure(app, conn, &actor, &user.username, now)?;
                    }
                    Ok(Err(true))
                }
            }
        })
        .await;
    match outcome {
        Ok(Ok((token, next, user_id))) => {
            set_session_cookie(cookies, token, client.https);
            CodeAnswer::SignedIn(Box::new(Redirect::to(
                crate::web::login::after_full_sign_in(cookies, &user_id, next),
            )))
        }
        Ok(Err(true)) => {
            let layout = Layout::for_guest(Page::LoginTwoFactor, login_csrf_token(cookies, client.https), None)
                .with_message(
                    "error",
                    "That code did not work. Codes work once; wait for the next one, or use a recovery code.",
                );
            CodeAnswer::TryAgain(Box::new((Status::Unauthorized, code_template(layout))))
        }
        Ok(Err(false)) => {
            remove_session_cookie(cookies);
            start_over("That took too long. Sign in with your password again.")
        }
        Err(e) => {
            tracing::error!(error = %e, "second factor failed");
            start_over("Signing in failed; please try again.")
        }
    }
}
