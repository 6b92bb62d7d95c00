//! `/account/password`: changing one's own password (forced after a one-time password); every
//! session ends with it.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{remove_session_cookie, Allowed, CsrfForm};
use crate::db::models::{SessionRow, User};
use crate::users::password_policy;
use crate::web::error::{AppError, Rejected};
use crate::web::layout::FormView;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![password_page, change_password]
}

#[derive(FromForm)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

fn password_template(layout: Layout, must_change: bool, form: FormView) -> Template {
    Template::render(
        "account/password",
        context! { layout, must_change, form, min: password_policy::MIN_CHARS, max: password_policy::MAX_CHARS },
    )
}

#[get("/account/password")]
pub(crate) fn password_page(
    who: Allowed<page::AccountPassword>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Template {
    let must_change = who.user.must_change_password;
    password_template(
        Layout::for_user(app, &who, flash),
        must_change,
        FormView::default(),
    )
}

/// Changes the password and ends every session of the user, this one included.
#[post("/account/password", data = "<form>")]
async fn change_password(
    who: Allowed<page::AccountPassword>,
    app: &State<App>,
    cookies: &CookieJar<'_>,
    form: CsrfForm<'_, PasswordForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let (current, new) = match form.value.as_ref() {
        Some(f) => (f.current_password.clone(), f.new_password.clone()),
        None => (String::new(), String::new()),
    };
    let mut view = FormView::default();
    if let Some(problem) = password_policy::problem(&new, &who.user.username) {
        view = view.error("new_password", problem);
    } else if new == current {
        view = view.error(
            "new_password",
            "Choose a password different from the current one.",
        );
    }
    // The current password is checked like a sign-in: throttled per address, counted toward the
    // account's lockout, refused while locked, audited. Otherwise a stolen session could guess
    // it without limit and then take the account for good.
    let now = app.now();
    if let Err(wait) = app.brute_force.take_auth_attempt(&who.client.ip, now) {
        return Err(Rejected::page(crate::web::error::error_page(
            Status::TooManyRequests,
            &format!("Too many attempts from your address. Wait {wait} seconds and try again."),
        )));
    }
    let username = who.user.username.clone();
    let locked = app
        .blocking(move |app, conn| {
            Ok(crate::auth::lockout::locked_until(
                app, &username, now, conn,
            )?)
        })
        .await
        .map_err(Rejected::from)?;
    if let Some(until) = locked {
        view = view.error(
            "current_password",
            format!(
                "Too many wrong passwords. Try again in {} minute(s).",
                ((until - now) + 59) / 60
            ),
        );
        let must_change = who.user.must_change_password;
        return Err(Rejected::page((
            Status::TooManyRequests,
            password_template(Layout::for_user(app, &who, None), must_change, view),
        )));
    }
    let (user, actor) = (who.user.clone(), who.actor());
    let valid = !view.has_errors();
    let result = app
        .blocking(move |app, conn| {
            // Held until a wrong password is counted (see login).
            let attempt = crate::auth::lockout::begin_attempt(app, &user.username, now, conn)?;
            if attempt.is_refused() {
                return Ok(Some(
                    "Too many attempts at once. Wait a moment and try again.",
                ));
            }
            if !app.passwords.verify(&current, &user.password_hash) {
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::PASSWORD_CHANGE_REFUSED, Outcome::Failure)
                        .target(format!("user {}", user.username))
                        .detail("wrong current password"),
                )?;
                crate::auth::count_failure(app, conn, &actor, &user.username, now)?;
                return Ok(Some("This is not your current password."));
            }
            crate::auth::lockout::forget(app, &user.username, now, conn)?;
            if !valid {
                return Ok(None);
            }
            let hash = app
                .passwords
                .hash(&new)
                .map_err(|e| AppError::internal("hash", e))?;
            let now = app.now();
            conn.write_transaction(|conn| {
                User::set_password(&user.id, &hash, false, now, conn)?;
                let ended = SessionRow::delete_all_for_user(&user.id, conn)?;
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::PASSWORD_CHANGED, Outcome::Success)
                        .target(format!("user {}", user.username))
                        .detail(format!("{ended} session(s) ended")),
                )
            })?;
            Ok::<_, AppError>(None)
        })
        .await?;
    if let Some(problem) = result {
        view = view.error("current_password", problem);
    }
    if view.has_errors() {
        let must_change = who.user.must_change_password;
        return Err(Rejected::form(password_template(
            Layout::for_user(app, &who, None),
            must_change,
            view,
        )));
    }
    remove_session_cookie(cookies);
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::login::login_page(ended = _))),
        "Your password is changed and every session has ended. Sign in with the new password.",
    ))
}
