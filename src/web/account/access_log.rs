//! `/account/access-log`: a patient's view of who opened, changed or looked up their record,
//! when, and the reasons given for emergency access.

use crate::ids::{PatientId, RowId};
use crate::web::Template;
use rocket::{get, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::page;
use crate::app::App;
use crate::audit::action;
use crate::auth::Allowed;
use crate::db::models::records::EmergencyGrant;
use crate::db::models::AuditEvent;
use crate::records;
use crate::web::error::AppError;
use crate::web::{Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![access_log]
}

#[derive(Serialize)]
struct AccessLine {
    /// The newest of the events this line stands for.
    at: i64,
    /// The oldest of them.
    first_at: i64,
    /// How many events in a row, by the same person, of the same kind.
    count: usize,
    who: String,
    actor_id: String,
    what: &'static str,
    detail: String,
}

/// Lines of the access log on one page.
const ACCESS_LINES_PER_PAGE: i64 = 50;

/// Folds events that follow each other, by the same person and of the same kind and detail,
/// into one line ("opened your record 512 times between 10:02 and 10:03"): reloading a page
/// cannot push anything out of sight, and whatever else happened in between starts a line of
/// its own. `lines` are newest first.
fn group_access_lines(lines: Vec<AccessLine>) -> Vec<AccessLine> {
    let mut grouped: Vec<AccessLine> = Vec::new();
    for line in lines {
        match grouped.last_mut() {
            Some(last)
                if last.actor_id == line.actor_id
                    && last.what == line.what
                    && last.detail == line.detail =>
            {
                last.count += line.count;
                last.first_at = line.first_at;
            }
            _ => grouped.push(line),
        }
    }
    grouped
}

#[derive(Serialize)]
struct EmergencyLine {
    granted_at: i64,
    expires_at: i64,
    doctor: String,
    reason: crate::fields::Shown,
}

/// What an audit action means to a patient.
fn describe(action: &str) -> &'static str {
    match action {
        action::RECORD_VIEWED => "opened your record",
        action::RECORD_LOOKED_UP => "found you by national ID (outside their care)",
        action::RECORD_CHANGED => "changed your record",
        action::RECORD_FIELD_REVEALED => "revealed a masked value",
        action::RECORD_EMERGENCY_ACCESS => "used emergency access",
        action::RECORD_REFUSED => "was refused your record",
        action::FILE_UPLOADED => "added a file",
        action::FILE_DOWNLOADED => "downloaded a file",
        action::FILE_INTEGRITY_ERROR => "met a damaged file",
        action::FIELD_INTEGRITY_ERROR => "met a value altered in the database",
        action::PATIENT_REGISTERED => "registered you",
        action::CARE_ASSIGNED => "put you in a doctor's care",
        action::CARE_UNASSIGNED => "ended a doctor's care of you",
        _ => "other",
    }
}

#[get("/account/access-log?<page>")]
async fn access_log(
    who: Allowed<page::AccessLog>,
    app: &State<App>,
    page: Option<i64>,
) -> Result<Template, AppError> {
    let me = who.user.id.clone();
    let (events, grants, names) = app
        .blocking(move |app, conn| {
            let events = AuditEvent::about(&records::audit_target(&me), &me, conn)?;
            // Named as the record pages name people (full name, else username).
            let mut names = std::collections::HashMap::new();
            for event in &events {
                if !names.contains_key(&event.actor_id) {
                    let name = crate::db::models::User::find(&event.actor_id, conn)?
                        .map(|u| records::display_name(app, &u))
                        .unwrap_or_else(|| event.actor_name.clone());
                    names.insert(event.actor_id.clone(), name);
                }
            }
            let grants = EmergencyGrant::for_patient(&me, conn)?
                .into_iter()
                .map(|g| {
                    let doctor = crate::db::models::User::find(&g.doctor_id, conn)?
                        .map(|d| records::display_name(app, &d))
                        .unwrap_or_else(|| "a former doctor".into());
                    Ok(EmergencyLine {
                        granted_at: g.granted_at,
                        expires_at: g.expires_at,
                        doctor,
                        reason: app
                            .fields
                            .row("emergency_grants", RowId(&g.id), PatientId(&me))
                            .show("reason", &g.reason),
                    })
                })
                .collect::<Result<Vec<_>, AppError>>()?;
            Ok((events, grants, names))
        })
        .await?;
    let lines: Vec<AccessLine> = group_access_lines(
        events
            .into_iter()
            .map(|e| AccessLine {
                at: e.at,
                first_at: e.at,
                count: 1,
                who: names.get(&e.actor_id).cloned().unwrap_or(e.actor_name),
                actor_id: e.actor_id,
                what: describe(&e.action),
                detail: if e.action == action::RECORD_VIEWED && e.detail == "emergency access" {
                    "emergency access".into()
                } else {
                    String::new()
                },
            })
            .collect(),
    );
    let paging = Paging::new(page.unwrap_or(1), ACCESS_LINES_PER_PAGE, lines.len() as i64);
    let lines: Vec<AccessLine> = lines
        .into_iter()
        .skip(paging.offset(ACCESS_LINES_PER_PAGE) as usize)
        .take(ACCESS_LINES_PER_PAGE as usize)
        .collect();
    let layout = Layout::for_user(app, &who, None);
    Ok(Template::render(
        "records/access_log",
        context! { layout, lines, grants, paging, pager_base: "/account/access-log?" },
    ))
}
