//! `/login` and `/logout`: signing in with a password (and on to `/login/2fa` where a second
//! factor is needed) and out.

pub(crate) mod second_factor;

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::{page, Page};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::SessionEnd;
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
    app: &State<App>,
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
    if let (Some(ended), None) = (ended, &layout.flash) {
        layout = layout.with_message("info", why_the_session_ended(app, ended));
    }
    LoginPage::Form(Box::new(login_template(layout, "")))
}

/// What the sign-in page says to someone whose session ended (`/login?ended=idle`): why, in
/// words that tell them it was not their doing where it was not.
fn why_the_session_ended(app: &App, code: &str) -> String {
    let config = &app.config;
    let again = "Sign in again to go back to the page you were on.";
    match SessionEnd::from_code(code) {
        Some(SessionEnd::Idle) => format!(
            "You were signed out after {} minutes without activity. {again}",
            (config.session_idle_timeout / 60).max(1)
        ),
        Some(SessionEnd::Lifetime) => format!(
            "Sessions last {} hours from sign-in, and yours has ended. {again}",
            (config.session_lifetime / 3600).max(1)
        ),
        Some(SessionEnd::AddressChanged) => format!(
            "You were signed out because this browser's network address changed since you \
             signed in (a session stays with the address it began at). {again}"
        ),
        Some(SessionEnd::BrowserChanged) => {
            format!("You were signed out because the browser changed since you signed in. {again}")
        }
        Some(SessionEnd::KeyRenewed) => format!(
            "You were signed out when the session keys were renewed, as they are every {} \
             hours. {again}",
            (config.session_key_interval / 3600).max(1)
        ),
        Some(SessionEnd::Revoked) => format!(
            "Your session was ended elsewhere: signed out in another window or browser, or by \
             an administrator. {again}"
        ),
        Some(SessionEnd::Deactivated) => {
            "This account has been deactivated. Ask an administrator.".to_string()
        }
        None => "Your session has ended. Please sign in again.".to_string(),
    }
}

/// The page a sign-in goes back to: the page an ended session interrupted, with whose session
/// it was, kept in a private cookie for half an hour.
const RETURN_COOKIE: &str = "mv_return";

/// Remembers `target` (a path with its query) for `user_id`'s next sign-in, if it is one of
/// medvault's own pages a sign-in may lead to.
pub fn remember_return(cookies: &CookieJar<'_>, user_id: &str, target: &str, secure: bool) {
    if !is_return_target(target) {
        return;
    }
    cookies.add_private(
        Cookie::build((RETURN_COOKIE, format!("{user_id} {target}")))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .path("/")
            .max_age(rocket::time::Duration::minutes(30)),
    );
}

/// Where `user_id`'s full sign-in goes: `first` (the dashboard, or the forced password
/// change), or instead of the dashboard the page their own ended session was opening (on a
/// shared workstation, the next person does not land on the last one's patient). The
/// remembered page is forgotten either way.
pub fn after_full_sign_in(cookies: &CookieJar<'_>, user_id: &str, first: &'static str) -> String {
    let remembered = cookies
        .get_private(RETURN_COOKIE)
        .map(|c| c.value().to_string());
    if remembered.is_some() {
        cookies.remove_private(RETURN_COOKIE);
    }
    let target = remembered
        .as_deref()
        .and_then(|value| value.split_once(' '));
    match target {
        Some((whose, target))
            if whose == user_id && first == "/dashboard" && is_return_target(target) =>
        {
            target.to_string()
        }
        _ => first.to_string(),
    }
}

/// A path on this server (not `//host`, which a browser reads as another site), and not a
/// page that a sign-in must not lead back to.
fn is_return_target(target: &str) -> bool {
    target.starts_with('/')
        && !target.starts_with("//")
        && !target.contains('\\')
        && target.len() <= 1024
        && !["/login", "/logout", "/setup", "/files/"]
            .iter()
            .any(|p| target.starts_with(p))
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
                    Ok(Ok((token, next, user.id.clone())))
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
        Ok(Ok((token, next, user_id))) => {
            set_session_cookie(cookies, token, client.https);
            let next = match next {
                "/login/2fa" => next.to_string(),
                first => after_full_sign_in(cookies, &user_id, first),
            };
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

#[cfg(test)]
mod tests {
    use super::is_return_target;

    #[test]
    fn a_sign_in_returns_only_to_medvaults_own_pages() {
        for good in [
            "/patients/abc",
            "/admin/audit?action=login.failure",
            "/dashboard",
        ] {
            assert!(is_return_target(good), "{good}");
        }
        for bad in [
            "//evil.example/phish",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            "/login?ended=idle",
            "/logout",
            "/setup?token=x",
            "/files/sometoken",
        ] {
            assert!(!is_return_target(bad), "{bad}");
        }
        assert!(!is_return_target(&format!("/{}", "a".repeat(1024))));
    }
}
