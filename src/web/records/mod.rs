//! `/records`: a patient's own record, masked as the admin set, booking and cancelling their
//! appointments, and links to their own files. Audited; the patient sees who opened it at
//! `/account/access-log`.

use crate::web::Template;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::action;
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::records::CareTeam;
use crate::records;
use crate::records::appointments::{self, Change, Requester};
use crate::web::appointment_form::{booking_of, AppointmentForm};
use crate::web::error::{AppError, Rejected};
use crate::web::files::{file_of, link_for};
use crate::web::{form_context_of, ButtonForm, FormView, Layout};

pub fn routes() -> Vec<Route> {
    routes![own_record, book_own, cancel_own, own_file]
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
            let record = records::load_record(app, &patient, &patient, Level::Patient, None, conn)?;
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
pub(crate) async fn own_record(
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
        Redirect::to(uri!(_, crate::web::records::own_record, "#appointments")),
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
            Redirect::to(uri!(_, crate::web::records::own_record, "#appointments")),
            "Appointment cancelled.",
        ),
        Err(refusal) => Flash::error(
            Redirect::to(uri!(_, crate::web::records::own_record, "#appointments")),
            refusal.message(),
        ),
    })
}

/// A signed link to one of the patient's own files; anyone else's file id is 404.
#[get("/records/files/<fid>")]
async fn own_file(who: Patient, app: &State<App>, fid: &str) -> Result<Redirect, AppError> {
    let file = file_of(app, &who.user.id, fid).await?;
    Ok(Redirect::to(link_for(app, &who.user.id, &file)))
}
