//! The account actions on an admin's user page: deactivate or activate, reset the password,
//! end every session, delete. Each is one transaction together with its audit event.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{post, routes, Route, State};
use rocket_dyn_templates::context;

use super::users::{audit, load_user, Who};
use crate::access::Level;
use crate::app::App;
use crate::audit::{action, Actor};
use crate::auth::CsrfForm;
use crate::crypto::random_password;
use crate::db::models::{SessionRow, User};
use crate::db::Conn;
use crate::web::error::AppError;
use crate::web::{ButtonForm, Layout};

pub fn routes() -> Vec<Route> {
    routes![
        set_active,
        reset_password,
        end_sessions,
        reset_two_factor,
        unlock,
        delete
    ]
}

#[derive(FromForm)]
pub struct ActiveForm {
    /// `None` when missing or not a yes/no value: such a form changes nothing.
    active: Option<bool>,
}

/// Runs `change` on the target user in one transaction and reports back on their page.
async fn change_user<F>(
    who: &Who,
    app: &App,
    id: &str,
    change: F,
) -> Result<Flash<Redirect>, AppError>
where
    F: FnOnce(&App, &Actor, &User, &str, &mut Conn) -> Result<String, AppError> + Send + 'static,
{
    let target = load_user(app, id).await?;
    let back = uri!(crate::web::admin::users::edit_page(id = &target.id));
    let (actor, who_id) = (who.actor(), who.user.id.clone());
    let outcome = app
        .blocking(move |app, conn| {
            conn.write_transaction(|conn| change(app, &actor, &target, &who_id, conn))
        })
        .await;
    match outcome {
        Ok(message) => Ok(Flash::success(Redirect::to(back), message)),
        Err(AppError::Conflict(message)) => Ok(Flash::error(Redirect::to(back), message)),
        Err(e) => Err(e),
    }
}

#[post("/admin/users/<id>/active", data = "<form>")]
async fn set_active(
    who: Who,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, ActiveForm>,
) -> Result<Flash<Redirect>, AppError> {
    // A form that does not say true or false changes nothing (it used to deactivate).
    let Some(active) = form.value.as_ref().and_then(|f| f.active) else {
        return Err(AppError::BadRequest(
            "The form must say whether the account is active.".into(),
        ));
    };
    change_user(&who, app, id, move |app, actor, user, who_id, conn| {
        if !active {
            if user.id == who_id {
                return Err(AppError::Conflict(
                    "You cannot deactivate your own account.".into(),
                ));
            }
            if user.level() == Level::Admin && user.active && User::count_active_admins(conn)? <= 1
            {
                return Err(AppError::Conflict("This is the last active admin.".into()));
            }
        }
        User::set_active(&user.id, active, app.now(), conn)?;
        let ended = if active {
            0
        } else {
            SessionRow::delete_all_for_user(&user.id, conn)?
        };
        let (act, message) = if active {
            (
                action::USER_ACTIVATED,
                format!("{} can sign in again.", user.username),
            )
        } else {
            (
                action::USER_DEACTIVATED,
                format!("{} is deactivated and signed out.", user.username),
            )
        };
        audit(
            app,
            conn,
            actor,
            act,
            user,
            format!("{ended} session(s) ended"),
        )?;
        Ok(message)
    })
    .await
}

/// Gives the user a new one-time password, shown once, and ends their sessions.
#[post("/admin/users/<id>/reset-password", data = "<_form>")]
async fn reset_password(
    who: Who,
    app: &State<App>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Template, AppError> {
    let target = load_user(app, id).await?;
    let one_time = random_password();
    let (actor, user, secret) = (who.actor(), target.clone(), one_time.clone());
    app.blocking(move |app, conn| {
        let hash = app
            .passwords
            .hash(&secret)
            .map_err(|e| AppError::internal("hash", e))?;
        Ok(conn.write_transaction(|conn| {
            User::set_password(&user.id, &hash, true, app.now(), conn)?;
            let ended = SessionRow::delete_all_for_user(&user.id, conn)?;
            audit(
                app,
                conn,
                &actor,
                action::USER_PASSWORD_RESET,
                &user,
                format!("{ended} session(s) ended"),
            )
        })?)
    })
    .await?;
    let layout = Layout::for_user(app, &who, None);
    Ok(Template::render(
        "admin/user_password",
        context! { layout, id: target.id, username: target.username, one_time, created: false },
    ))
}

#[post("/admin/users/<id>/end-sessions", data = "<_form>")]
async fn end_sessions(
    who: Who,
    app: &State<App>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    change_user(&who, app, id, |app, actor, user, _, conn| {
        let ended = SessionRow::delete_all_for_user(&user.id, conn)?;
        audit(
            app,
            conn,
            actor,
            action::USER_SESSIONS_ENDED,
            user,
            format!("{ended} session(s) ended"),
        )?;
        Ok(format!("{ended} session(s) of {} ended.", user.username))
    })
    .await
}

/// Turns the user's two-factor sign-in off (a lost phone): they enrol again at next sign-in if
/// their level requires it. Their sessions end.
#[post("/admin/users/<id>/reset-2fa", data = "<_form>")]
async fn reset_two_factor(
    who: Who,
    app: &State<App>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    change_user(&who, app, id, |app, actor, user, _, conn| {
        crate::db::models::two_factor::TwoFactor::remove(&user.id, conn)?;
        let ended = SessionRow::delete_all_for_user(&user.id, conn)?;
        audit(
            app,
            conn,
            actor,
            action::TWO_FACTOR_RESET,
            user,
            format!("{ended} session(s) ended"),
        )?;
        Ok(format!(
            "Two-factor sign-in of {} is off; they can enrol again.",
            user.username
        ))
    })
    .await
}

/// Lifts a lockout (and forgets the failures that led to it).
#[post("/admin/users/<id>/unlock", data = "<_form>")]
async fn unlock(
    who: Who,
    app: &State<App>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    change_user(&who, app, id, |app, actor, user, _, conn| {
        let was_locked = crate::auth::lockout::forget(app, &user.username, app.now(), conn)?;
        audit(
            app,
            conn,
            actor,
            action::ACCOUNT_UNLOCKED,
            user,
            format!("was locked: {was_locked}"),
        )?;
        Ok(format!("{} can sign in again.", user.username))
    })
    .await
}

/// Deletes the account, or deactivates it when clinical data still names it.
#[post("/admin/users/<id>/delete", data = "<_form>")]
async fn delete(
    who: Who,
    app: &State<App>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    let target = load_user(app, id).await?;
    let (actor, user) = (who.actor(), target.clone());
    let who_id = who.user.id.clone();
    let outcome = app
        .blocking(move |app, conn| {
            conn.write_transaction(|conn| {
                if user.id == who_id {
                    return Err(AppError::Conflict(
                        "You cannot delete your own account.".into(),
                    ));
                }
                if user.level() == Level::Admin
                    && user.active
                    && User::count_active_admins(conn)? <= 1
                {
                    return Err(AppError::Conflict("This is the last active admin.".into()));
                }
                SessionRow::delete_all_for_user(&user.id, conn)?;
                if User::owns_clinical_data(&user.id, conn)? {
                    User::set_active(&user.id, false, app.now(), conn)?;
                    audit(
                        app,
                        conn,
                        &actor,
                        action::USER_DEACTIVATED,
                        &user,
                        "kept: owns clinical data".into(),
                    )?;
                    return Ok(false);
                }
                User::delete(&user.id, conn)?;
                audit(
                    app,
                    conn,
                    &actor,
                    action::USER_DELETED,
                    &user,
                    String::new(),
                )?;
                Ok(true)
            })
        })
        .await;
    match outcome {
        Ok(true) => Ok(Flash::success(
            Redirect::to(uri!(crate::web::admin::users::list(
                q = _,
                level = _,
                page = _
            ))),
            format!("{} is deleted.", target.username),
        )),
        Ok(false) => Ok(Flash::warning(
            Redirect::to(uri!(crate::web::admin::users::edit_page(id = &target.id))),
            format!(
                "{} still owns clinical data, so the account was deactivated instead of deleted.",
                target.username
            ),
        )),
        Err(AppError::Conflict(message)) => Ok(Flash::error(
            Redirect::to(uri!(crate::web::admin::users::edit_page(id = &target.id))),
            message,
        )),
        Err(e) => Err(e),
    }
}
