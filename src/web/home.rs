//! The front door: `/`, the dashboard of each level, the health check and the style sheet.

use crate::web::Template;
use diesel::prelude::*;
use rocket::http::{Header, Status};
use rocket::request::FlashMessage;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::uri;
use rocket::{get, routes, Responder, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::action;
use crate::auth::{Allowed, Public, Viewer};
use crate::db::models::{AuditEvent, AuditFilter, SessionRow, User, UserFilter};
use crate::web::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![home, dashboard, health, stylesheet, favicon]
}

#[get("/")]
fn home(_page: Public<page::Home>, viewer: &Viewer) -> Redirect {
    match viewer.signed_in() {
        Some(_) => Redirect::to(uri!(dashboard)),
        // A literal: the sign-in page sends people here, and uri! to it would tie the two
        // modules in a circle. The journeys follow this redirect.
        None => Redirect::to("/login"),
    }
}

#[derive(Serialize)]
struct LevelCount {
    level: &'static str,
    count: i64,
}

#[derive(Serialize)]
struct IntegrityCount {
    action: &'static str,
    what: &'static str,
    count: i64,
}

#[get("/dashboard")]
pub(crate) async fn dashboard(
    who: Allowed<page::Dashboard>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let layout = Layout::for_user(app, &who, flash);
    let user_id = who.user.id.clone();
    let is_admin = who.user.level() == Level::Admin;
    let (sessions, counts, recent, integrity) = app
        .blocking(move |_, conn| {
            let sessions = SessionRow::count_for_user(&user_id, conn)?;
            if !is_admin {
                return Ok((sessions, Vec::new(), Vec::new(), Vec::new()));
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
            // Values and files that failed their integrity check where someone opened them: a
            // sign that the database or the storage was edited behind medvault's back.
            let mut integrity = Vec::new();
            for (action, what) in [
                (action::FIELD_INTEGRITY_ERROR, "altered values"),
                (action::FILE_INTEGRITY_ERROR, "altered files"),
            ] {
                let filter = AuditFilter {
                    action: Some(action.to_string()),
                    ..AuditFilter::default()
                };
                integrity.push(IntegrityCount {
                    action,
                    what,
                    count: AuditEvent::list(&filter, 0, 0, conn)?.1,
                });
            }
            Ok::<_, AppError>((sessions, counts, recent, integrity))
        })
        .await?;
    Ok(Template::render(
        "home/dashboard",
        context! { layout, sessions, counts, recent, integrity, is_admin },
    ))
}

#[derive(Serialize)]
struct DiskReport {
    state: &'static str,
    /// Bytes free for medvault on the database's file system, where the platform says.
    free_bytes: Option<u64>,
}

#[derive(Serialize)]
struct HealthReport {
    status: &'static str,
    database: &'static str,
    key: &'static str,
    disk: DiskReport,
    /// The key manager that holds the root key's wrapping key: "ok", "unreachable" (it does not
    /// answer, or has lost its key), or "not used" (the key file or the environment).
    key_manager: &'static str,
    /// Seconds since the newest backup, if there is one.
    backup_age_seconds: Option<i64>,
}

/// 200 while the database answers, the running root key matches the database's key check values
/// and the database folder takes writes; 503 otherwise. A key manager that stops answering is
/// reported but keeps the 200: this server holds its unwrapped keys and serves on, and a load
/// balancer that took every server out because the key manager is down would stop the clinic
/// (a restart would fail, which is what the report warns of). For load balancers and monitors: it
/// names states, never paths, keys or values.
#[get("/health")]
async fn health(_page: Public<page::Health>, app: &State<App>) -> (Status, Json<HealthReport>) {
    let check_app = app.inner().clone();
    let checked = app
        .blocking(move |_, conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            let recorded = crate::db::models::key_check::all(conn)?;
            let keys = check_app.keys();
            let key_ok = !recorded.is_empty()
                && recorded
                    .iter()
                    .all(|(version, value)| keys.matches_recorded(*version, value));
            Ok(key_ok)
        })
        .await;
    let (database, key) = match checked {
        Ok(true) => ("ok", "ok"),
        Ok(false) => ("ok", "mismatch"),
        Err(_) => ("not answering", "unknown"),
    };
    let disk_app = app.inner().clone();
    let (disk, backup_age_seconds, key_manager) = rocket::tokio::task::spawn_blocking(move || {
        let age = crate::backup::list(&disk_app)
            .ok()
            .and_then(|list| list.first().map(|b| (disk_app.now() - b.created_at).max(0)));
        let key_manager = match &disk_app.key_manager {
            None => "not used",
            Some(manager) => {
                let answers = disk_app
                    .key_manager_probe
                    .check(std::time::Instant::now(), || manager.reachable());
                if answers {
                    "ok"
                } else {
                    "unreachable"
                }
            }
        };
        (
            disk_state(&disk_app.config.database_dir(), &disk_app.disk_probe),
            age,
            key_manager,
        )
    })
    .await
    .unwrap_or((
        DiskReport {
            state: "unknown",
            free_bytes: None,
        },
        None,
        "unknown",
    ));
    let healthy = database == "ok" && key == "ok" && disk.state != "not writable";
    let report = HealthReport {
        status: if healthy { "ok" } else { "unavailable" },
        database,
        key,
        disk,
        key_manager,
        backup_age_seconds,
    };
    let status = if healthy {
        Status::Ok
    } else {
        Status::ServiceUnavailable
    };
    (status, Json(report))
}

/// Whether the database folder takes a write (a small probe file, synced and removed, at most
/// once per [`crate::health::DiskProbe::EVERY`]), and the space left: "low" under 64 MiB, when a backup or even
/// the WAL may not fit.
fn disk_state(dir: &std::path::Path, probe: &crate::health::DiskProbe) -> DiskReport {
    let writable = probe.writable(dir, std::time::Instant::now());
    #[cfg(unix)]
    let free_bytes = rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    #[cfg(not(unix))]
    let free_bytes = None;
    let state = if !writable {
        "not writable"
    } else if free_bytes.is_some_and(|b| b < 64 << 20) {
        "low"
    } else {
        "ok"
    };
    DiskReport { state, free_bytes }
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

#[derive(Responder)]
#[response(content_type = "image/svg+xml")]
struct Icon(&'static str, Header<'static>);

/// The tab icon browsers ask for on their own: a small SVG, so that no request of theirs
/// ends in a 404.
#[get("/favicon.ico")]
fn favicon(_page: Public<page::Static>) -> Icon {
    Icon(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2f6fde"/><path d="M7 3h2v4h4v2H9v4H7V9H3V7h4z" fill="#fff"/></svg>"##,
        Header::new("Cache-Control", "public, max-age=86400"),
    )
}
