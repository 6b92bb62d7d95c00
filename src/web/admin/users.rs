//! `/admin/users`: the admin's list of accounts, and creating, editing, deactivating, resetting
//! and deleting them. Every change is one transaction together with its audit event.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::crypto::{random_id, random_password};
use crate::db::models::{NewUser, SessionRow, User, UserFilter};
use crate::db::Conn;
use crate::web::error::{AppError, Rejected};
use crate::web::layout::FormView;
use crate::web::{encode, form_context, Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![list, new_user_page, create, edit_page, update]
}

pub(crate) type Who = Allowed<page::AdminUsers>;
const PER_PAGE: i64 = 25;

/// A line of the user list: the account and its decrypted full name.
#[derive(serde::Serialize)]
struct UserRow {
    #[serde(flatten)]
    user: User,
    full_name: crate::fields::Shown,
}

#[get("/admin/users?<q>&<level>&<page>")]
pub(crate) async fn list(
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
    // An email is encrypted: it is found by exact value through its blind index. An index is
    // truncated (other emails share it) and, while a job runs, may still be an older policy's:
    // look up every candidate and keep the accounts whose email really is the one asked for.
    let email = q
        .as_deref()
        .filter(|q| q.contains('@'))
        .map(|q| q.trim().to_lowercase());
    let email_indexes = email
        .as_deref()
        .map(|e| app.fields.blind_index_candidates("users", "email", e))
        .transpose()?;
    let (users, paging) = app
        .blocking(move |app, conn| {
            if let (Some(email), Some(indexes)) = (email, email_indexes) {
                use crate::db::schema::users;
                use diesel::prelude::*;
                let users: Vec<User> = users::table
                    .filter(users::email_index.eq_any(&indexes))
                    .order(users::username.asc())
                    .select(User::as_select())
                    .load(conn)?
                    .into_iter()
                    .filter(|u| filter.level.is_none_or(|l| u.level() == l))
                    .filter(|u| {
                        let (_, stored) = app.fields.show_account(u);
                        !stored.integrity_error && stored.text.to_lowercase() == email
                    })
                    .collect();
                let paging = Paging::new(1, PER_PAGE, users.len() as i64);
                return Ok((users, paging));
            }
            let total = User::list(&filter, 0, 0, conn)?.1;
            let paging = Paging::new(page, PER_PAGE, total);
            let users = User::list(&filter, paging.offset(PER_PAGE), PER_PAGE, conn)?.0;
            Ok((users, paging))
        })
        .await?;
    let users: Vec<UserRow> = users
        .into_iter()
        .map(|user| {
            let (full_name, _) = app.fields.show_account(&user);
            UserRow { full_name, user }
        })
        .collect();
    let refused: Vec<&str> = users
        .iter()
        .filter(|row| row.full_name.integrity_error)
        .map(|row| row.user.username.as_str())
        .collect();
    if !refused.is_empty() {
        audit_integrity_error(app, &who, &refused.join(", ")).await;
    }
    let layout = Layout::for_user(app, &who, flash);
    let (q, level) = (q.unwrap_or_default(), level.unwrap_or_default());
    let pager_base = format!("/admin/users?q={}&level={}&", encode(&q), encode(&level));
    Ok(Template::render(
        "admin/users",
        context! { layout, users, paging, q, level, pager_base, levels: Level::SIGNED_IN },
    ))
}

#[derive(FromForm)]
pub struct IdentityForm {
    username: String,
    level: String,
    full_name: Option<String>,
    email: Option<String>,
}

/// Who an account is: what the create and edit forms set.
struct Identity {
    username: String,
    level: Level,
    full_name: String,
    email: String,
}

/// The form's identity, or the form re-filled with what is wrong.
fn check_identity(form: &CsrfForm<'_, IdentityForm>) -> Result<Identity, FormView> {
    let mut view = form_context(&form.context);
    let Some(f) = form.value.as_ref() else {
        return Err(view.error("username", "Enter a username and choose a level."));
    };
    let username = User::normalize_username(&f.username);
    let level = Level::parse(&f.level);
    let full_name = f
        .full_name
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_string();
    let email = f.email.as_deref().unwrap_or_default().trim().to_lowercase();
    if let Some(problem) = User::username_problem(&username) {
        view = view.error("username", problem);
    }
    if level.is_none() {
        view = view.error("level", "Choose admin, doctor or patient.");
    }
    if full_name.chars().count() > 200 {
        view = view.error("full_name", "A name has at most 200 characters.");
    }
    if let Err(problem) = crate::records::validate::email(&email) {
        view = view.error("email", problem);
    }
    match level {
        Some(level) if !view.has_errors() => Ok(Identity {
            username,
            level,
            full_name,
            email,
        }),
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
) -> Result<Template, Rejected> {
    let refill = |view: FormView| {
        let layout = Layout::for_user(app, &who, None);
        Rejected::form(Template::render(
            "admin/user_new",
            context! { layout, form: view, levels: Level::SIGNED_IN },
        ))
    };
    let personal = check_identity(&form).map_err(refill)?;
    let (username, level) = (personal.username.clone(), personal.level);
    let one_time = random_password();
    let (actor, name, secret) = (who.actor(), username.clone(), one_time.clone());
    let created = app
        .blocking(move |app, conn| {
            let hash = app
                .passwords
                .hash(&secret)
                .map_err(|e| AppError::internal("hash", e))?;
            let now = app.now();
            conn.write_transaction(|conn| {
                if User::find_by_username(&name, conn)?.is_some() {
                    return Ok(None);
                }
                let id = random_id(app.id_length());
                crate::users::insert_account(
                    app,
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
                    (&personal.full_name, &personal.email),
                    conn,
                )?;
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::USER_CREATED, Outcome::Success)
                        .target(format!("user {name}"))
                        .detail(format!("level {}", level.as_str())),
                )?;
                Ok::<_, AppError>(Some(id))
            })
        })
        .await?;
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

pub(crate) async fn load_user(app: &App, id: &str) -> Result<User, AppError> {
    let id = id.to_string();
    app.blocking(move |_, conn| User::find(&id, conn)?.ok_or(AppError::NotFound))
        .await
}

/// Whether `username` is locked out now, for the page that offers to unlock it.
async fn account_locked(app: &App, username: &str) -> Result<bool, AppError> {
    let username = username.to_string();
    app.blocking(move |app, conn| {
        Ok(crate::auth::lockout::locked_until(app, &username, app.now(), conn)?.is_some())
    })
    .await
}

fn edit_template(
    layout: Layout,
    user: &User,
    sessions: i64,
    locked: bool,
    form: FormView,
) -> Template {
    Template::render(
        "admin/user_edit",
        context! { layout, user, sessions, form, locked, levels: Level::SIGNED_IN },
    )
}

#[get("/admin/users/<id>")]
pub(crate) async fn edit_page(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    id: &str,
) -> Result<Template, AppError> {
    let user = load_user(app, id).await?;
    let user_id = user.id.clone();
    let sessions = app
        .blocking(move |_, conn| Ok(SessionRow::count_for_user(&user_id, conn)?))
        .await?;
    let (full_name, email) = app.fields.show_account(&user);
    let form = FormView::default()
        .value("username", &user.username)
        .value("level", &user.level)
        .value("full_name", &full_name.text)
        .value("email", &email.text);
    let mut layout = Layout::for_user(app, &who, flash);
    if full_name.integrity_error || email.integrity_error {
        audit_integrity_error(app, &who, &user.username).await;
        layout = layout.with_message(
            "error",
            "Integrity error: this account's name or email was altered in the database and is \
             not shown. Saving the form writes fresh values.",
        );
    }
    let locked = account_locked(app, &user.username).await?;
    Ok(edit_template(layout, &user, sessions, locked, form))
}

/// Records that a stored value failed its integrity check when it was about to be shown.
async fn audit_integrity_error(app: &App, who: &Who, usernames: &str) {
    let (actor, target) = (who.actor(), usernames.to_string());
    let written = app
        .blocking(move |app, conn| {
            Ok(app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::FIELD_INTEGRITY_ERROR, Outcome::Failure)
                    .target(format!("user {target}"))
                    .detail("users.full_name or users.email refused; not shown"),
            )?)
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot audit an integrity error");
    }
}

pub(crate) fn audit(
    app: &App,
    conn: &mut Conn,
    actor: &Actor,
    action: &'static str,
    target: &User,
    detail: String,
) -> diesel::QueryResult<()> {
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
) -> Result<Flash<Redirect>, Rejected> {
    let target = load_user(app, id).await?;
    let identity = match check_identity(&form) {
        Ok(ok) => ok,
        Err(view) => {
            let locked = account_locked(app, &target.username).await?;
            return Err(Rejected::form(edit_template(
                Layout::for_user(app, &who, None),
                &target,
                0,
                locked,
                view,
            )));
        }
    };
    let (username, level) = (identity.username.clone(), identity.level);
    let (actor, user) = (who.actor(), target.clone());
    let who_id = who.user.id.clone();
    let new_name = username.clone();
    let outcome = app
        .blocking(move |app, conn| {
            let username = new_name;
            conn.write_transaction(|conn| {
                // Sealed under the lock, after catching up: the policy is the database's.
                app.catch_up(conn)?;
                let [full_name, email, email_index] =
                    app.fields
                        .seal_account(&user.id, &identity.full_name, &identity.email)?;
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
                User::update_identity(&user.id, &username, level, app.now(), conn)?;
                User::set_personal(&user.id, &full_name, &email, &email_index, conn)?;
                audit(
                    app,
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
            Redirect::to(uri!(crate::web::admin::users::edit_page(id = &target.id))),
            "Saved.",
        )),
        Ok(false) => {
            let view = FormView::default()
                .value("username", &username)
                .value("level", level.as_str())
                .error("username", "This username is taken.");
            let locked = account_locked(app, &target.username).await?;
            Err(Rejected::form(edit_template(
                Layout::for_user(app, &who, None),
                &target,
                0,
                locked,
                view,
            )))
        }
        Err(AppError::Conflict(message)) => Ok(Flash::error(
            Redirect::to(uri!(crate::web::admin::users::edit_page(id = &target.id))),
            message,
        )),
        Err(e) => Err(e.into()),
    }
}
