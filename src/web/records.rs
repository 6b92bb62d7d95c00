//! A patient's own pages: `/records` (profile, consultations, files, vaccinations and
//! appointments, masked as the admin set), booking and cancelling their own appointments,
//! downloading their own files, and `/account/access-log` (who opened their record).

use crate::ids::{PatientId, RowId};
use crate::web::Template;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::action;
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::records::{CareTeam, EmergencyGrant};
use crate::db::models::AuditEvent;
use crate::records;
use crate::records::appointments::{self, Change, Requester};
use crate::web::appointment_form::{booking_of, AppointmentForm};
use crate::web::error::{AppError, Rejected};
use crate::web::scans::{file_of, link_for};
use crate::web::{form_context_of, ButtonForm, FormView, Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![own_record, book_own, cancel_own, own_file, access_log]
}

type Patient = Allowed<page::Records>;

#[derive(Serialize)]
struct DoctorOption {
    id: String,
    name: String,
}

async fn render(
    app: &App,
    who: &Patient,
    form: FormView,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let (patient, actor) = (who.user.clone(), who.actor());
    let (record, doctors) = app
        .blocking(move |app, conn| {
            let record = records::load_record(app, &patient, Level::Patient, None, conn)?;
            let doctors: Vec<DoctorOption> = CareTeam::doctors_of(&patient.id, conn)?
                .iter()
                .map(|d| DoctorOption {
                    id: d.id.clone(),
                    name: records::display_name(app, d),
                })
                .collect();
            records::audit(
                app,
                conn,
                &actor,
                action::RECORD_VIEWED,
                &patient.id,
                "own record",
            )?;
            records::audit_integrity_errors(app, conn, &actor, &patient.id, &record.broken_values)?;
            Ok((record, doctors))
        })
        .await?;
    let mut layout = Layout::for_user(app, who, flash);
    if record.integrity_errors > 0 {
        layout = layout.with_message(
            "error",
            "Integrity error: part of your record was altered in the database and is not shown. Your clinic has been told.",
        );
    }
    Ok(Template::render(
        "records/own",
        context! { layout, record, doctors, form },
    ))
}

#[get("/records")]
async fn own_record(
    who: Patient,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    render(app, &who, FormView::default(), flash).await
}

/// The form's page again, with its messages (422), or the error that stopped it rendering.
fn unprocessable(page: Result<Template, AppError>) -> Rejected {
    page.map_or_else(Rejected::from, Rejected::form)
}

#[post("/records/appointments", data = "<form>")]
async fn book_own(
    who: Patient,
    app: &State<App>,
    form: CsrfForm<'_, AppointmentForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let names = ["starts_at", "reason", "doctor_id"];
    let doctor_id = form
        .context
        .field_value("doctor_id")
        .unwrap_or_default()
        .to_string();
    let (pid, did) = (who.user.id.clone(), doctor_id.clone());
    let treats = app
        .blocking(move |_, conn| {
            Ok(CareTeam::doctors_of(&pid, conn)?
                .iter()
                .any(|d| d.id == did))
        })
        .await?;
    let checked = booking_of(&form, app.now(), form_context_of(&form.context, &names));
    let booking = match checked {
        Ok(booking) if treats => booking,
        Ok(_) => {
            let view = form_context_of(&form.context, &names)
                .error("doctor_id", "Choose one of your doctors.");
            return Err(unprocessable(render(app, &who, view, None).await));
        }
        Err(mut view) => {
            if !treats {
                view = view.error("doctor_id", "Choose one of your doctors.");
            }
            return Err(unprocessable(render(app, &who, view, None).await));
        }
    };
    let (actor, pid) = (who.actor(), who.user.id.clone());
    let booked = app
        .blocking(move |app, conn| {
            Ok(appointments::book(
                app, conn, &actor, &pid, &doctor_id, &booking,
            )?)
        })
        .await?;
    if let Err(problem) = booked {
        let view = form_context_of(&form.context, &names).error("starts_at", problem);
        return Err(unprocessable(render(app, &who, view, None).await));
    }
    Ok(Flash::success(
        Redirect::to("/records#appointments"),
        "Appointment booked.",
    ))
}

/// Cancels one of the patient's own appointments that has not happened yet.
#[post("/records/appointments/<aid>/cancel", data = "<_form>")]
async fn cancel_own(
    who: Patient,
    app: &State<App>,
    aid: &str,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Flash<Redirect>, AppError> {
    let (actor, pid, aid) = (who.actor(), who.user.id.clone(), aid.to_string());
    let outcome = app
        .blocking(move |app, conn| {
            appointments::change(
                app,
                conn,
                &actor,
                &pid,
                &aid,
                Change::Cancel,
                Requester::Patient,
            )?
            .ok_or(AppError::NotFound)
        })
        .await?;
    Ok(match outcome {
        Ok(()) => Flash::success(
            Redirect::to("/records#appointments"),
            "Appointment cancelled.",
        ),
        Err(refusal) => Flash::error(Redirect::to("/records#appointments"), refusal.message()),
    })
}

/// A signed link to one of the patient's own files; anyone else's file id is 404.
#[get("/records/files/<fid>")]
async fn own_file(who: Patient, app: &State<App>, fid: &str) -> Result<Redirect, AppError> {
    let file = file_of(app, &who.user.id, fid).await?;
    Ok(Redirect::to(link_for(app, &who.user.id, &file.id)))
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
