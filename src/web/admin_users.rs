//! `/admin/users`: the admin's list of accounts, and creating, editing, deactivating, resetting
//! and deleting them. Every change is one transaction together with its audit event.

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::{context, Template};

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::crypto::{random_id, random_password};
use crate::db::models::{NewUser, SessionRow, User, UserFilter};
use crate::db::Conn;
use crate::error::AppError;
use crate::web::layout::FormView;
use crate::web::{form_context, ButtonForm, Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![
        list,
        new_user_page,
        create,
        edit_page,
        update,
        set_active,
        reset_password,
        end_sessions,
        delete
    ]
}

type Who = Allowed<page::AdminUsers>;
const PER_PAGE: i64 = 25;

#[get("/admin/users?<q>&<level>&<page>")]
async fn list(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    q: Option<String>,
    level: Option<String>,
    page: Option<i64>,
) -> Result<Template, AppError> {
    let filter = UserFilter {
        search: q.clone().map(|s| User::normalize_username(&s)),
        level: level.as_deref().and_then(Level::parse),
    };
    let page = page.unwrap_or(1);
    let (users, paging) = app
        .db
        .run(move |conn| {
            let total = User::list(&filter, 0, 0, conn)?.1;
            let paging = Paging::new(page, PER_PAGE, total);
            let users = User::list(&filter, paging.offset(PER_PAGE), PER_PAGE, conn)?.0;
            Ok((users, paging))
        })
        .await?;
    let layout = Layout::for_user(app, &who, flash);
    Ok(Template::render(
        "admin/users",
        context! { layout, users, paging, q: q.unwrap_or_default(), level: level.unwrap_or_default(), levels: Level::SIGNED_IN },
    ))
}

#[derive(FromForm)]
pub struct IdentityForm {
    username: String,
    level: String,
}

/// The form's username and level, or the form re-filled with what is wrong.
fn check_identity(form: &CsrfForm<'_, IdentityForm>) -> Result<(String, Level), FormView> {
    let mut view = form_context(&form.context);
    let (username, level) = match form.value.as_ref() {
        Some(f) => (User::normalize_username(&f.username), Level::parse(&f.level)),
        None => (String::new(), None),
    };
    if let Some(problem) = User::username_problem(&username) {
        view = view.error("username", problem);
    }
    if level.is_none() {
        view = view.error("level", "Choose admin, doctor or patient.");
    }
    match level {
        Some(level) if !view.has_errors() => Ok((username, level)),
        _ => Err(view),
    }
}

#[get("/admin/users/new")]
fn new_user_page(who: Who, app: &State<App>) -> Template {
    let layout = Layout::for_user(app, &who, None);
    Template::render(
        "admin/user_new",
        context! { layout, form: FormView::default(), levels: Level::SIGNED_IN },
    )
}

/// Creates the account with a one-time password, shown once on the answer to this post.
#[post("/admin/users", data = "<form>")]
async fn create(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, IdentityForm>,
) -> Result<Template, Result<(Status, Template), AppError>> {
    let refill = |view: FormView| {
        let layout = Layout::for_user(app, &who, None);
        Ok((
            Status::UnprocessableEntity,
            Template::render(
                "admin/user_new",
                context! { layout, form: view, levels: Level::SIGNED_IN },
            ),
        ))
    };
    let (username, level) = check_identity(&form).map_err(refill)?;
    let one_time = random_password();
    let (app2, actor, name, secret) = (
        app.inner().clone(),
        who.actor(),
        username.clone(),
        one_time.clone(),
    );
    let created = app
        .db
        .run(move |conn| {
            let hash = app2
                .passwords
                .hash(&secret)
                .map_err(|e| AppError::internal("hash", e))?;
            let now = app2.now();
            Ok(conn.immediate_transaction(|conn| {
                if User::find_by_username(&name, conn)?.is_some() {
                    return Ok(None);
                }
                let id = random_id(app2.config.id_length);
                User::insert(
                    &NewUser {
                        id: &id,
                        username: &name,
                        level: level.as_str(),
                        password_hash: &hash,
                        must_change_password: true,
                        active: true,
                        created_at: now,
                        updated_at: now,
                    },
                    conn,
                )?;
                app2.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::USER_CREATED, Outcome::Success)
                        .target(format!("user {name}"))
                        .detail(format!("level {}", level.as_str())),
                )?;
                Ok::<_, diesel::result::Error>(Some(id))
            })?)
        })
        .await
        .map_err(Err)?;
    let Some(id) = created else {
        let view = FormView::default()
            .value("username", &username)
            .value("level", level.as_str())
            .error("username", "This username is taken.");
        return Err(refill(view));
    };
    let layout = Layout::for_user(app, &who, None);
    Ok(Template::render(
        "admin/user_password",
        context! { layout, id, username, one_time, created: true },
    ))
}

async fn load_user(app: &App, id: &str) -> Result<User, AppError> {
    let id = id.to_string();
    app.db
        .run(move |conn| User::find(&id, conn)?.ok_or(AppError::NotFound))
        .await
}

fn edit_template(layout: Layout, user: &User, sessions: i64, form: FormView) -> Template {
    Template::render(
        "admin/user_edit",
        context! { layout, user, sessions, form, levels: Level::SIGNED_IN },
    )
}

#[get("/admin/users/<id>")]
async fn edit_page(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    id: &str,
) -> Result<Template, AppError> {
    let user = load_user(app, id).await?;
    let user_id = user.id.clone();
    let sessions = app
        .db
        .run(move |conn| Ok(SessionRow::count_for_user(&user_id, conn)?))
        .await?;
    let form = FormView::default()
        .value("username", &user.username)
        .value("level", &user.level);
    Ok(edit_template(
        Layout::for_user(app, &who, flash),
        &user,
        sessions,
        form,
    ))
}

fn audit(app: &App, conn: &mut Conn, actor: &Actor, action: &'static str, target: &User, detail: String) -> diesel::QueryResult<()> {
    app.audit.append(
        conn,
        app.now(),
        &Entry::new(actor, action, Outcome::Success)
            .target(format!("user {}", target.username))
            .detail(detail),
    )
}

#[post("/admin/users/<id>", data = "<form>")]
async fn update(
    who: Who,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, IdentityForm>,
) -> Result<Flash<Redirect>, Result<(Status, Template), AppError>> {
    let target = load_user(app, id).await.map_err(Err)?;
    let (username, level) = match check_identity(&form) {
        Ok(ok) => ok,
        Err(view) => {
            return Err(Ok((
                Status::UnprocessableEntity,
                edit_template(Layout::for_user(app, &who, None), &target, 0, view),
            )))
        }
    };
    let (app2, actor, user) = (app.inner().clone(), who.actor(), target.clone());
    let who_id = who.user.id.clone();
    let new_name = username.clone();
    let outcome = app
        .db
        .run(move |conn| {
            let username = new_name;
            conn.immediate_transaction(|conn| {
                let removes_admin = user.level() == Level::Admin && level != Level::Admin;
                if removes_admin && user.id == who_id {
                    return Err(AppError::Conflict(
                        "You cannot remove your own admin rights; ask another admin.".into(),
                    ));
                }
                if removes_admin && user.active && User::count_active_admins(conn)? <= 1 {
                    return Err(AppError::Conflict(
                        "This is the last active admin; make another admin first.".into(),
                    ));
                }
                if let Some(other) = User::find_by_username(&username, conn)? {
                    if other.id != user.id {
                        return Ok(false);
                    }
                }
                User::update_identity(&user.id, &username, level, app2.now(), conn)?;
                audit(
                    &app2,
                    conn,
                    &actor,
                    action::USER_UPDATED,
                    &user,
                    format!("username {username}, level {}", level.as_str()),
                )?;
                Ok(true)
            })
        })
        .await;
    match outcome {
        Ok(true) => Ok(Flash::success(
            Redirect::to(format!("/admin/users/{}", target.id)),
            "Saved.",
        )),
        Ok(false) => {
            let view = FormView::default()
                .value("username", &username)
                .value("level", level.as_str())
                .error("username", "This username is taken.");
            Err(Ok((
                Status::UnprocessableEntity,
                edit_template(Layout::for_user(app, &who, None), &target, 0, view),
            )))
        }
        Err(AppError::Conflict(message)) => Ok(Flash::error(
            Redirect::to(format!("/admin/users/{}", target.id)),
            message,
        )),
        Err(e) => Err(Err(e)),
    }
}

#[derive(FromForm)]
pub struct ActiveForm {
    active: bool,
}

/// Runs `change` on the target user in one transaction and reports back on their page.
async fn change_user<F>(who: &Who, app: &App, id: &str, change: F) -> Result<Flash<Redirect>, AppError>
where
    F: FnOnce(&App, &Actor, &User, &str, &mut Conn) -> Result<String, AppError> + Send + 'static,
{
    let target = load_user(app, id).await?;
    let back = format!("/admin/users/{}", target.id);
    let (app2, actor, who_id) = (app.clone(), who.actor(), who.user.id.clone());
    let outcome = app
        .db
        .run(move |conn| {
            conn.immediate_transaction(|conn| change(&app2, &actor, &target, &who_id, conn))
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
    let active = form.value.as_ref().map(|f| f.active).unwrap_or(false);
    change_user(&who, app, id, move |app, actor, user, who_id, conn| {
        if !active {
            if user.id == who_id {
                return Err(AppError::Conflict("You cannot deactivate your own account.".into()));
            }
            if user.level() == Level::Admin && user.active && User::count_active_admins(conn)? <= 1 {
                return Err(AppError::Conflict("This is the last active admin.".into()));
            }
        }
        User::set_active(&user.id, active, app.now(), conn)?;
        let ended = if active { 0 } else { SessionRow::delete_all_for_user(&user.id, conn)? };
        let (act, message) = if active {
            (action::USER_ACTIVATED, format!("{} can sign in again.", user.username))
        } else {
            (action::USER_DEACTIVATED, format!("{} is deactivated and signed out.", user.username))
        };
        audit(app, conn, actor, act, user, format!("{ended} session(s) ended"))?;
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
    let (app2, actor, user, secret) = (
        app.inner().clone(),
        who.actor(),
        target.clone(),
        one_time.clone(),
    );
    app.db
        .run(move |conn| {
            let hash = app2
                .passwords
                .hash(&secret)
                .map_err(|e| AppError::internal("hash", e))?;
            Ok(conn.immediate_transaction(|conn| {
                User::set_password(&user.id, &hash, true, app2.now(), conn)?;
                let ended = SessionRow::delete_all_for_user(&user.id, conn)?;
                audit(
                    &app2,
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
        audit(app, conn, actor, action::USER_SESSIONS_ENDED, user, format!("{ended} session(s) ended"))?;
        Ok(format!("{ended} session(s) of {} ended.", user.username))
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
    let (app2, actor, user) = (app.inner().clone(), who.actor(), target.clone());
    let who_id = who.user.id.clone();
    let outcome = app
        .db
        .run(move |conn| {
            conn.immediate_transaction(|conn| {
                if user.id == who_id {
                    return Err(AppError::Conflict("You cannot delete your own account.".into()));
                }
                if user.level() == Level::Admin && user.active && User::count_active_admins(conn)? <= 1 {
                    return Err(AppError::Conflict("This is the last active admin.".into()));
                }
                SessionRow::delete_all_for_user(&user.id, conn)?;
                if User::owns_clinical_data(&user.id, conn)? {
                    User::set_active(&user.id, false, app2.now(), conn)?;
                    audit(&app2, conn, &actor, action::USER_DEACTIVATED, &user, "kept: owns clinical data".into())?;
                    return Ok(false);
                }
                User::delete(&user.id, conn)?;
                audit(&app2, conn, &actor, action::USER_DELETED, &user, String::new())?;
                Ok(true)
            })
        })
        .await;
    match outcome {
        Ok(true) => Ok(Flash::success(
            Redirect::to("/admin/users"),
            format!("{} is deleted.", target.username),
        )),
        Ok(false) => Ok(Flash::warning(
            Redirect::to(format!("/admin/users/{}", target.id)),
            format!("{} still owns clinical data, so the account was deactivated instead of deleted.", target.username),
        )),
        Err(AppError::Conflict(message)) => Ok(Flash::error(
            Redirect::to(format!("/admin/users/{}", target.id)),
            message,
        )),
        Err(e) => Err(e),
    }
}
