//! The front door: `/`, the dashboard of each level, the health check and the style sheet.

use diesel::prelude::*;
use rocket::http::{Header, Status};
use rocket::request::FlashMessage;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{get, routes, Responder, Route, State};
use rocket_dyn_templates::{context, Template};
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::auth::{Allowed, Public, Viewer};
use crate::db::models::{AuditEvent, AuditFilter, SessionRow, User, UserFilter};
use crate::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![home, dashboard, health, stylesheet]
}

#[get("/")]
fn home(_page: Public<page::Home>, viewer: &Viewer) -> Redirect {
    match viewer.signed_in() {
        Some(_) => Redirect::to("/dashboard"),
        None => Redirect::to("/login"),
    }
}

#[derive(Serialize)]
struct LevelCount {
    level: &'static str,
    count: i64,
}

#[get("/dashboard")]
async fn dashboard(
    who: Allowed<page::Dashboard>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let layout = Layout::for_user(app, &who, flash);
    let user_id = who.user.id.clone();
    let is_admin = who.user.level() == Level::Admin;
    let (sessions, counts, recent) = app
        .db
        .run(move |conn| {
            let sessions = SessionRow::count_for_user(&user_id, conn)?;
            if !is_admin {
                return Ok((sessions, Vec::new(), Vec::new()));
            }
            let mut counts = Vec::new();
            for level in Level::SIGNED_IN {
                let filter = UserFilter {
                    level: Some(level),
                    ..UserFilter::default()
                };
                counts.push(LevelCount {
                    level: level.title(),
                    count: User::list(&filter, 0, 0, conn)?.1,
                });
            }
            let recent = AuditEvent::list(&AuditFilter::default(), 0, 8, conn)?.0;
            Ok::<_, AppError>((sessions, counts, recent))
        })
        .await?;
    Ok(Template::render(
        "home/dashboard",
        context! { layout, sessions, counts, recent, is_admin },
    ))
}

#[derive(Serialize)]
struct HealthReport {
    status: &'static str,
    database: &'static str,
}

/// 200 while the database answers, 503 otherwise; for load balancers and monitors.
#[get("/health")]
async fn health(_page: Public<page::Health>, app: &State<App>) -> (Status, Json<HealthReport>) {
    let answered = app
        .db
        .run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
        .is_ok();
    if answered {
        (
            Status::Ok,
            Json(HealthReport {
                status: "ok",
                database: "ok",
            }),
        )
    } else {
        (
            Status::ServiceUnavailable,
            Json(HealthReport {
                status: "unavailable",
                database: "not answering",
            }),
        )
    }
}

#[derive(Responder)]
#[response(content_type = "text/css")]
struct Stylesheet(&'static str, Header<'static>);

/// The one style sheet, built into the binary so the server needs no asset folder.
#[get("/static/medvault.css")]
fn stylesheet(_page: Public<page::Static>) -> Stylesheet {
    Stylesheet(
        include_str!("../../static/css/medvault.css"),
        Header::new("Cache-Control", "public, max-age=3600"),
    )
}
