//! `/account/sessions`: one's signed-in sessions (device, address, times), each of which can
//! be ended.

use crate::web::Template;
use rocket::http::CookieJar;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{remove_session_cookie, Allowed, CsrfForm};
use crate::db::models::SessionRow;
use crate::web::error::AppError;
use crate::web::{ButtonForm, Layout};

pub fn routes() -> Vec<Route> {
    routes![sessions_page, revoke_session]
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    device: String,
    ip: String,
    created_at: i64,
    last_seen_at: i64,
    current: bool,
}

/// A short name for a browser, from its user agent.
pub fn device_name(user_agent: &str) -> String {
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/", "curl/"]
        .iter()
        .find(|b| user_agent.contains(*b))
        .map(|b| b.trim_end_matches('/').replace("Edg", "Edge"));
    let system = ["Windows", "Android", "iPhone", "iPad", "Mac OS", "Linux"]
        .iter()
        .find(|s| user_agent.contains(*s));
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b,
        (None, Some(s)) => s.to_string(),
        (None, None) if user_agent.is_empty() => "Unknown device".into(),
        (None, None) => user_agent.chars().take(40).collect(),
    }
}

#[get("/account/sessions")]
pub(crate) async fn sessions_page(
    who: Allowed<page::AccountSessions>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let (user_id, current_id) = (who.user.id.clone(), who.session.id.clone());
    let rows = app
        .blocking(move |_, conn| Ok(SessionRow::list_for_user(&user_id, conn)?))
        .await?;
    let sessions: Vec<SessionView> = rows
        .into_iter()
        .map(|s| SessionView {
            current: s.id == current_id,
            device: device_name(&s.user_agent),
            id: s.id,
            ip: s.ip,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
        })
        .collect();
    let layout = Layout::for_user(app, &who, flash);
    Ok(Template::render(
        "account/sessions",
        context! { layout, sessions },
    ))
}

#[post("/account/sessions/<id>/revoke", data = "<_form>")]
async fn revoke_session(
    who: Allowed<page::AccountSessions>,
    app: &State<App>,
    cookies: &CookieJar<'_>,
    id: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    let (actor, user_id, target) = (who.actor(), who.user.id.clone(), id.to_string());
    let ended = app
        .blocking(move |app, conn| {
            Ok(conn.write_transaction(|conn| {
                let ended = SessionRow::delete_for_user(&target, &user_id, conn)?;
                if ended > 0 {
                    app.audit.append(
                        conn,
                        app.now(),
                        &Entry::new(&actor, action::SESSION_ENDED, Outcome::Success)
                            .target(format!("session {target}"))
                            .detail("revoked by its user"),
                    )?;
                }
                Ok::<_, diesel::result::Error>(ended)
            })?)
        })
        .await?;
    if ended == 0 {
        return Err(AppError::NotFound);
    }
    if id == who.session.id {
        remove_session_cookie(cookies);
        return Ok(Flash::success(
            Redirect::to(uri!(crate::web::login::login_page(ended = _))),
            "This session has ended.",
        ));
    }
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::account::sessions::sessions_page)),
        "The session has ended.",
    ))
}
