//! `/setup`: the first-run page that creates the first admin, once, with the token the server
//! logged at start.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::{page, Level, Page};
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::{login_csrf_token, ClientInfo, CsrfForm, Public};
use crate::crypto::random_id;
use crate::db::models::{NewUser, User};
use crate::users::password_policy;
use crate::web::error::{AppError, Rejected};
use crate::web::{form_context, Layout};

pub fn routes() -> Vec<Route> {
    routes![setup_page, setup]
}

#[derive(FromForm)]
pub struct SetupForm {
    username: String,
    password: String,
}

/// No admin exists and the link's token is the one the server logged: show the form.
#[get("/setup?<token>")]
fn setup_page(
    _page: Public<page::Setup>,
    app: &State<App>,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    token: Option<&str>,
) -> Result<Template, AppError> {
    let token = token.unwrap_or_default();
    if !app.setup.matches(token) {
        return Err(AppError::NotFound);
    }
    let layout = Layout::for_guest(Page::Setup, login_csrf_token(cookies, client.https), None);
    Ok(Template::render(
        "auth/setup",
        context! { layout, token, form: crate::web::layout::FormView::default() },
    ))
}

#[post("/setup", data = "<form>")]
async fn setup(
    _page: Public<page::Setup>,
    app: &State<App>,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<'_, SetupForm>,
) -> Result<Flash<Redirect>, Rejected> {
    if let Err(wait) = app.brute_force.take_auth_attempt(&client.ip, app.now()) {
        return Err(Rejected::page(crate::web::error::error_page(
            Status::TooManyRequests,
            &format!("Too many attempts from your address. Wait {wait} seconds and try again."),
        )));
    }
    let token = form
        .context
        .field_value("token")
        .unwrap_or_default()
        .to_string();
    if !app.setup.matches(&token) {
        return Err(AppError::NotFound.into());
    }
    let mut view = form_context(&form.context);
    let (username, password) = match form.value.as_ref() {
        Some(f) => (User::normalize_username(&f.username), f.password.clone()),
        None => (String::new(), String::new()),
    };
    if let Some(problem) = User::username_problem(&username) {
        view = view.error("username", problem);
    }
    if let Some(problem) = password_policy::problem(&password, &username) {
        view = view.error("password", problem);
    }
    if view.has_errors() {
        let layout = Layout::for_guest(Page::Setup, login_csrf_token(cookies, client.https), None);
        return Err(Rejected::form(Template::render(
            "auth/setup",
            context! { layout, token, form: view },
        )));
    }
    if !app.setup.redeem(&token) {
        return Err(AppError::NotFound.into());
    }
    let client2 = client.clone();
    let created = app
        .blocking(move |app, conn| {
            let hash = app
                .passwords
                .hash(&password)
                .map_err(|e| AppError::internal("hash", e))?;
            let now = app.now();
            conn.write_transaction(|conn| {
                // Someone may have created an admin from the command line meanwhile.
                if User::exists_active_admin(conn)? {
                    return Ok(false);
                }
                let id = random_id(app.id_length());
                crate::users::insert_account(
                    app,
                    &NewUser {
                        id: &id,
                        username: &username,
                        level: Level::Admin.as_str(),
                        password_hash: &hash,
                        must_change_password: false,
                        active: true,
                        created_at: now,
                        updated_at: now,
                    },
                    ("", ""),
                    conn,
                )?;
                let actor = Actor {
                    id: id.clone(),
                    name: username.clone(),
                    ip: client2.ip.clone(),
                };
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::SETUP_ADMIN_CREATED, Outcome::Success)
                        .target(format!("user {username}")),
                )?;
                Ok::<_, AppError>(true)
            })
        })
        .await;
    match created {
        Ok(true) => Ok(Flash::success(
            Redirect::to(uri!(crate::web::login::login_page(ended = _))),
            "The admin account is ready. Sign in with it.",
        )),
        Ok(false) => Err(AppError::NotFound.into()),
        Err(e) => {
            app.setup.restore(token);
            Err(e.into())
        }
    }
}
