//! `/login` and `/logout`: signing in with a password (and on to `/login/2fa` where a second
//! factor is needed) and out.

pub(crate) mod second_factor;

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
    end_session, login_csrf_token, remove_session_cookie, set_session_cookie, start_session,
    Allowed, ClientInfo, CsrfForm, Public, Viewer, SESSION_COOKIE,
};
use crate::brute_force::AttemptRefused;
use crate::db::models::{User, STAGE_FULL, STAGE_SECOND_FACTOR};
use crate::web::error::{too_many_requests, AppError, TooManyRequests};
use crate::web::{ButtonForm, Layout};

pub fn routes() -> Vec<Route> {
    [routes![login_page, login, logout], second_factor::routes()].concat()
}

#[derive(FromForm)]
pub struct LoginForm {
    #[field(validate = len(1..=256))]
    username: String,
    #[field(validate = len(1..=1024))]
    password: String,
}

fn login_template(layout: Layout, username: &str) -> Template {
    Template::render("auth/login", context! { layout, username })
}

/// The sign-in form, or the way to the dashboard for someone already signed in.
#[derive(rocket::Responder)]
pub(crate) enum LoginPage {
    Form(Box<Template>),
    SignedIn(Box<Redirect>),
}

#[get("/login?<ended>")]
pub(crate) fn login_page(
    _page: Public<page::Login>,
    client: &ClientInfo,
    viewer: &Viewer,
    cookies: &CookieJar<'_>,
    flash: Option<FlashMessage<'_>>,
    ended: Option<&str>,
) -> LoginPage {
    if viewer.signed_in().is_some() {
        return LoginPage::SignedIn(Box::new(Redirect::to(uri!(crate::web::home::dashboard))));
    }
    let mut layout = Layout::for_guest(Page::Login, login_csrf_token(cookies, client.https), flash);
    // The refusal catcher sends `ended=1`; older links said `ended=true`.
    if matches!(ended, Some("1" | "true")) && layout.flash.is_none() {
        layout = layout.with_message("info", "Your session has ended. Please sign in again.");
    }
    LoginPage::Form(Box::new(login_template(layout, "")))
}

/// Every failed sign-in says the same, whatever the reason.
pub const FAILED_SIGN_IN: &str =
    "Wrong username or password. After several failed attempts an account is locked for a while.";

/// A refused sign-in: the form again, or a 429 when the address is over its attempts.
#[derive(rocket::Responder)]
pub enum LoginRefusal {
    Page(Box<(Status, Template)>),
    TooMany(Box<TooManyRequests>),
}

#[post("/login", data = "<form>")]
async fn login(
    _page: Public<page::Login>,
    app: &State<App>,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<'_, LoginForm>,
) -> Result<Redirect, LoginRefusal> {
    let now = app.now();
    if let Err(wait) = app.brute_force.take_auth_attempt(&client.ip, now) {
        return Err(LoginRefusal::TooMany(Box::new(too_many_requests(wait))));
    }
    let guest_layout = |message: &str| {
        Layout::for_guest(Page::Login, login_csrf_token(cookies, client.https), None)
            .with_message("error", message)
    };
    let Some(LoginForm { username, password }) = form.value.as_ref().map(|f| LoginForm {
        username: User::normalize_username(&f.username),
        password: f.password.clone(),
    }) else {
        let typed = form.context.field_value("username").unwrap_or_default();
        return Err(LoginRefusal::Page(Box::new((
            Status::UnprocessableEntity,
            login_template(guest_layout("Enter your username and password."), typed),
        ))));
    };
    let previous_token = cookies
        .get_private(SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let (client2, typed) = (client.clone(), username.clone());
    let outcome = app
        .blocking(move |app, conn| {
            let user = User::find_by_username(&username, conn)?;
            // A locked account still pays for the hash: its answer must not stand out.
            // Held until this attempt's failure is counted: concurrent guesses cannot all be
            // checked against the same count of failures.
            let attempt = crate::auth::lockout::begin_attempt(app, &username, now, conn)?;
            let locked = attempt.is_refused();
            let verified = match &user {
                Some(u) => app.passwords.verify(&password, &u.password_hash),
                None => app.passwords.verify_decoy(&password),
            };
            match user {
                Some(user) if verified && user.active && !locked => {
                    // A hash made with older (weaker) parameters is replaced now that the
                    // password has been shown; the old one never comes back.
                    if app.passwords.needs_rehash(&user.password_hash) {
                        if let Ok(hash) = app.passwords.hash(&password) {
                            User::set_password(
                                &user.id,
                                &hash,
                                user.must_change_password,
                                now,
                                conn,
                            )?;
                        }
                    }
                    // Failures are forgiven only once the whole sign-in succeeds: a correct
                    // password must not wipe the count of wrong second-factor codes.
                    if !user.two_factor_enabled {
                        crate::auth::lockout::forget(app, &username, now, conn)?;
                    }
                    let stage = if user.two_factor_enabled {
                        STAGE_SECOND_FACTOR
                    } else {
                        STAGE_FULL
                    };
                    let token = start_session(
                        app,
                        &user,
                        &client2,
                        previous_token.as_deref(),
                        stage,
                        conn,
                    )?;
                    let next = if user.two_factor_enabled {
                        "/login/2fa"
                    } else {
                        after_sign_in(&user)
                    };
                    Ok(Ok((token, next)))
                }
                other => {
                    let actor = Actor {
                        id: other.map(|u| u.id).unwrap_or_default(),
                        name: username.chars().take(64).collect(),
                        ip: client2.ip.clone(),
                    };
                    let detail = match attempt.refused() {
                        Some(AttemptRefused::Locked(_)) => "account locked",
                        Some(AttemptRefused::Busy) => "too many attempts at once",
                        None => "",
                    };
                    app.audit.append(
                        conn,
                        app.now(),
                        &Entry::new(&actor, action::LOGIN_FAILURE, Outcome::Failure).detail(detail),
                    )?;
                    if attempt.refused() != Some(AttemptRefused::Busy) {
                        crate::auth::count_failure(app, conn, &actor, &username, now)?;
                    }
                    drop(attempt);
                    Ok(Err(crate::auth::lockout::delay_ms(
                        app, &username, now, conn,
                    )?))
                }
            }
        })
        .await;
    match outcome {
        Ok(Ok((token, next))) => {
            set_session_cookie(cookies, token, client.https);
            Ok(Redirect::to(next))
        }
        // The same page and status whether the username exists, is locked, or the password is
        // wrong.
        Ok(Err(delay)) => {
            if delay > 0 {
                rocket::tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            Err(LoginRefusal::Page(Box::new((
                Status::Unauthorized,
                login_template(guest_layout(FAILED_SIGN_IN), &typed),
            ))))
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            Err(LoginRefusal::Page(Box::new(crate::web::error::error_page(
                Status::InternalServerError,
                "Signing in failed on our side. Please try again.",
            ))))
        }
    }
}

/// Where a fully signed-in user goes first.
pub fn after_sign_in(user: &User) -> &'static str {
    if user.must_change_password {
        "/account/password"
    } else {
        "/dashboard"
    }
}

#[post("/logout", data = "<_form>")]
async fn logout(
    who: Allowed<page::Logout>,
    app: &State<App>,
    cookies: &CookieJar<'_>,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    let (actor, session) = (who.actor(), who.session.clone());
    app.blocking(move |app, conn| Ok(end_session(app, &session, &actor, conn)?))
        .await?;
    remove_session_cookie(cookies);
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::login::login_page(ended = _))),
        "You are signed out.",
    ))
}
