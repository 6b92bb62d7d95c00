//! The doctor's forms on a patient's record: consultations (add and edit), vaccinations (doses
//! in order per vaccine) and appointments (book, change, cancel, mark done). Each change is one
//! transaction with its audit event; bad input comes back as the record page, 422, re-filled.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::Status;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::app::App;
use crate::audit::action;
use crate::auth::CsrfForm;
use crate::crypto::random_id;
use crate::db::models::records::{ConsultationRow, VaccinationRow};
use crate::records::appointments::{self, Change, Requester};
use crate::records::{self, validate};
use crate::web::appointment_form::{booking_of, AppointmentForm};
use crate::web::error::AppError;
use crate::web::patient_record::{patient_for_change, rerender, Doctor};
use crate::web::{form_context_of, FormView, Layout};

pub fn routes() -> Vec<Route> {
    routes![
        add_consultation,
        edit_consultation_page,
        update_consultation,
        add_vaccination,
        book_appointment,
        change_appointment
    ]
}

type Refusal = Result<(Status, Template), AppError>;

#[derive(FromForm)]
pub struct ConsultationForm {
    occurred_at: String,
    department: String,
    block: String,
    unit: String,
    diagnosis: String,
    notes: String,
    prescription: String,
}

const CONSULTATION_NAMES: [&str; 7] = [
    "occurred_at",
    "department",
    "block",
    "unit",
    "diagnosis",
    "notes",
    "prescription",
];

/// A consultation as typed, checked and trimmed.
struct Consultation {
    occurred_at: i64,
    department: String,
    block: String,
    unit: String,
    diagnosis: String,
    notes: String,
    prescription: String,
}

fn check_consultation(form: &CsrfForm<'_, ConsultationForm>) -> Result<Consultation, FormView> {
    let mut view = form_context_of(&form.context, &CONSULTATION_NAMES);
    let Some(f) = form.value.as_ref() else {
        return Err(view.error("occurred_at", "Fill in the consultation."));
    };
    let occurred_at = validate::date_time(&f.occurred_at);
    if let Err(e) = occurred_at {
        view = view.error("occurred_at", e);
    }
    let mut texts = Vec::new();
    for (name, value, max, required, what) in [
        ("department", &f.department, 100, true, "department"),
        ("block", &f.block, 20, false, "block"),
        ("unit", &f.unit, 20, false, "unit"),
        ("diagnosis", &f.diagnosis, 2000, true, "diagnosis"),
        ("notes", &f.notes, 10000, false, "notes"),
        ("prescription", &f.prescription, 4000, false, "prescription"),
    ] {
        match validate::text(value, max, required, what) {
            Ok(v) => texts.push(v),
            Err(e) => view = view.error(name, e),
        }
    }
    match (occurred_at, <[String; 6]>::try_from(texts)) {
        (Ok(occurred_at), Ok([department, block, unit, diagnosis, notes, prescription]))
            if !view.has_errors() =>
        {
            Ok(Consultation {
                occurred_at,
                department,
                block,
                unit,
                diagnosis,
                notes,
                prescription,
            })
        }
        _ => Err(view),
    }
}

fn seal_consultation(
    app: &App,
    row: &mut ConsultationRow,
    consultation: &Consultation,
) -> Result<(), AppError> {
    let sealed = app.fields.row("consultations", &row.id, &row.patient_id);
    row.occurred_at = consultation.occurred_at;
    row.department = sealed.seal("department", &consultation.department)?;
    row.block = sealed.seal("block", &consultation.block)?;
    row.unit = sealed.seal("unit", &consultation.unit)?;
    row.diagnosis = sealed.seal("diagnosis", &consultation.diagnosis)?;
    row.notes = sealed.seal("notes", &consultation.notes)?;
    row.prescription = sealed.seal("prescription", &consultation.prescription)?;
    Ok(())
}

#[post("/patients/<id>/consultations", data = "<form>")]
async fn add_consultation(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, ConsultationForm>,
) -> Result<Flash<Redirect>, Refusal> {
    let patient = patient_for_change(app, &who, id).await.map_err(Err)?;
    let consultation = match check_consultation(&form) {
        Ok(c) => c,
        Err(view) => return Err(rerender(app, &who, &patient, "consultation", view).await),
    };
    let now = app.now();
    let mut row = ConsultationRow {
        id: random_id(app.id_length()),
        patient_id: patient.id.clone(),
        doctor_id: who.user.id.clone(),
        occurred_at: 0,
        department: String::new(),
        block: String::new(),
        unit: String::new(),
        diagnosis: String::new(),
        notes: String::new(),
        prescription: String::new(),
        created_at: now,
        updated_at: now,
    };
    seal_consultation(app, &mut row, &consultation).map_err(Err)?;
    let actor = who.actor();
    app.blocking(move |app, conn| {
        conn.immediate_transaction(|conn| {
            ConsultationRow::insert(&row, conn)?;
            records::changed(
                app,
                conn,
                &actor,
                &row.patient_id,
                format!("consultation {} added", row.id),
            )?;
            Ok::<_, AppError>(())
        })
    })
    .await
    .map_err(Err)?;
    Ok(Flash::success(
        Redirect::to(format!("/patients/{}#consultations", patient.id)),
        "Consultation recorded.",
    ))
}

#[get("/patients/<id>/consultations/<cid>")]
async fn edit_consultation_page(
    who: Doctor,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    id: &str,
    cid: &str,
) -> Result<Template, AppError> {
    let patient = patient_for_change(app, &who, id).await?;
    let (actor, pid, cid) = (who.actor(), patient.id.clone(), cid.to_string());
    let (row, view) = app
        .blocking(move |app, conn| {
            let row = ConsultationRow::find(&pid, &cid, conn)?.ok_or(AppError::NotFound)?;
            let sealed = app.fields.row("consultations", &row.id, &pid);
            let mut view =
                FormView::default().value("occurred_at", validate::date_time_text(row.occurred_at));
            let mut broken = false;
            let mut broken_values = Vec::new();
            for (name, stored) in [
                ("department", &row.department),
                ("block", &row.block),
                ("unit", &row.unit),
                ("diagnosis", &row.diagnosis),
                ("notes", &row.notes),
                ("prescription", &row.prescription),
            ] {
                let shown = sealed.show(name, stored);
                broken |= shown.integrity_error;
                if shown.integrity_error {
                    broken_values.push(format!("consultation {} {name}", row.id));
                }
                view = view.value(name, shown.text);
            }
            records::audit(
                app,
                conn,
                &actor,
                action::RECORD_VIEWED,
                &pid,
                format!("consultation {}", row.id),
            )?;
            records::audit_integrity_errors(app, conn, &actor, &pid, &broken_values)?;
            Ok(((row, broken), view))
        })
        .await?;
    let (row, broken) = row;
    let mut layout = Layout::for_user(app, &who, flash);
    if broken {
        layout = layout.with_message(
            "error",
            "Integrity error: part of this consultation was altered in the database and is not shown.",
        );
    }
    Ok(consultation_page(layout, &patient.id, &row.id, view))
}

fn consultation_page(layout: Layout, patient_id: &str, id: &str, form: FormView) -> Template {
    Template::render(
        "records/consultation_edit",
        context! { layout, patient_id, id, form },
    )
}

#[post("/patients/<id>/consultations/<cid>", data = "<form>")]
async fn update_consultation(
    who: Doctor,
    app: &State<App>,
    id: &str,
    cid: &str,
    form: CsrfForm<'_, ConsultationForm>,
) -> Result<Flash<Redirect>, Refusal> {
    let patient = patient_for_change(app, &who, id).await.map_err(Err)?;
    let consultation = match check_consultation(&form) {
        Ok(c) => c,
        Err(view) => {
            let layout = Layout::for_user(app, &who, None);
            return Err(Ok((
                Status::UnprocessableEntity,
                consultation_page(layout, &patient.id, cid, view),
            )));
        }
    };
    let (actor, pid, cid) = (who.actor(), patient.id.clone(), cid.to_string());
    app.blocking(move |app, conn| {
        let mut row = ConsultationRow::find(&pid, &cid, conn)?.ok_or(AppError::NotFound)?;
        seal_consultation(app, &mut row, &consultation)?;
        row.updated_at = app.now();
        conn.immediate_transaction(|conn| {
            ConsultationRow::update(&row, conn)?;
            records::changed(
                app,
                conn,
                &actor,
                &pid,
                format!("consultation {} edited", row.id),
            )?;
            Ok::<_, AppError>(())
        })
    })
    .await
    .map_err(Err)?;
    Ok(Flash::success(
        Redirect::to(format!("/patients/{}#consultations", patient.id)),
        "Consultation saved.",
    ))
}

#[derive(FromForm)]
pub struct VaccinationForm {
    vaccine: String,
    dose_number: String,
    given_on: String,
    lot: String,
    given_by: String,
}

const VACCINATION_NAMES: [&str; 5] = ["vaccine", "dose_number", "given_on", "lot", "given_by"];

/// The doses already recorded of `vaccine` (compared without case), with their dates.
fn doses_of(
    app: &App,
    vaccine: &str,
    rows: &[VaccinationRow],
) -> Result<Vec<(u32, String)>, AppError> {
    let mut doses = Vec::new();
    for row in rows {
        let sealed = app.fields.row("vaccinations", &row.id, &row.patient_id);
        let (Ok(name), Ok(dose), Ok(date)) = (
            sealed.open("vaccine", &row.vaccine),
            sealed.open("dose_number", &row.dose_number),
            sealed.open("given_on", &row.given_on),
        ) else {
            return Err(AppError::Conflict(
                "A recorded vaccination failed its integrity check; the dose order cannot be checked. Ask an admin."
                    .into(),
            ));
        };
        if name.to_lowercase() == vaccine.to_lowercase() {
            doses.push((dose.parse().unwrap_or(0), date));
        }
    }
    Ok(doses)
}

#[post("/patients/<id>/vaccinations", data = "<form>")]
async fn add_vaccination(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, VaccinationForm>,
) -> Result<Flash<Redirect>, Refusal> {
    let patient = patient_for_change(app, &who, id).await.map_err(Err)?;
    let mut view = form_context_of(&form.context, &VACCINATION_NAMES);
    let Some(f) = form.value.as_ref() else {
        view = view.error("vaccine", "Fill in the vaccination.");
        return Err(rerender(app, &who, &patient, "vaccination", view).await);
    };
    let vaccine = validate::text(&f.vaccine, 100, true, "vaccine");
    let dose = validate::whole_number(&f.dose_number, 1, 20, "dose number");
    let given_on = validate::date(&f.given_on, app.clock.today(), true).map(validate::date_text);
    let lot = validate::text(&f.lot, 50, false, "lot");
    let given_by = validate::text(&f.given_by, 100, true, "name of who gave it");
    for (name, problem) in [
        ("vaccine", vaccine.as_ref().err().cloned()),
        ("dose_number", dose.as_ref().err().cloned()),
        ("given_on", given_on.as_ref().err().map(|e| e.to_string())),
        ("lot", lot.as_ref().err().cloned()),
        ("given_by", given_by.as_ref().err().cloned()),
    ] {
        if let Some(problem) = problem {
            view = view.error(name, problem);
        }
    }
    let (Ok(vaccine), Ok(dose), Ok(given_on), Ok(lot), Ok(given_by)) =
        (vaccine, dose, given_on, lot, given_by)
    else {
        return Err(rerender(app, &who, &patient, "vaccination", view).await);
    };
    let (actor, pid, recorded_by) = (who.actor(), patient.id.clone(), who.user.id.clone());
    let (vaccine2, given_on2) = (vaccine.clone(), given_on.clone());
    let outcome = app
        .blocking(move |app, conn| {
            let id = random_id(app.id_length());
            let sealed = app.fields.row("vaccinations", &id, &pid);
            let row = VaccinationRow {
                id: id.clone(),
                patient_id: pid.clone(),
                recorded_by,
                vaccine: sealed.seal("vaccine", &vaccine2)?,
                dose_number: sealed.seal("dose_number", &dose.to_string())?,
                given_on: sealed.seal("given_on", &given_on2)?,
                lot: sealed.seal("lot", &lot)?,
                given_by: sealed.seal("given_by", &given_by)?,
                created_at: app.now(),
            };
            conn.immediate_transaction(|conn| {
                // Checked inside the transaction, so two doses recorded at once cannot both pass.
                let doses = doses_of(app, &vaccine2, &VaccinationRow::for_patient(&pid, conn)?)?;
                if let Some(problem) = dose_order_problem(&doses, dose, &given_on2) {
                    return Ok(Err(problem));
                }
                VaccinationRow::insert(&row, conn)?;
                records::changed(app, conn, &actor, &pid, format!("vaccination {id} added"))?;
                Ok::<_, AppError>(Ok(()))
            })
        })
        .await
        .map_err(Err)?;
    if let Err(problem) = outcome {
        let view = form_context_of(&form.context, &VACCINATION_NAMES).error("dose_number", problem);
        return Err(rerender(app, &who, &patient, "vaccination", view).await);
    }
    Ok(Flash::success(
        Redirect::to(format!("/patients/{}#vaccinations", patient.id)),
        format!("Dose {dose} of {vaccine} recorded."),
    ))
}

/// Why dose `dose` given on `given_on` cannot follow `doses` (number, date) of its vaccine.
fn dose_order_problem(doses: &[(u32, String)], dose: u32, given_on: &str) -> Option<String> {
    if doses.iter().any(|(n, _)| *n == dose) {
        return Some(format!("Dose {dose} of this vaccine is already recorded."));
    }
    let expected = doses.iter().map(|(n, _)| *n).max().unwrap_or(0) + 1;
    if dose != expected {
        return Some(format!(
            "Doses come in order: the next dose of this vaccine is dose {expected}."
        ));
    }
    // Dates are YYYY-MM-DD, so text order is date order.
    if let Some((_, previous)) = doses.iter().find(|(n, _)| *n == dose - 1) {
        if given_on < previous.as_str() {
            return Some(format!(
                "Dose {dose} cannot be given before dose {} ({previous}).",
                dose - 1
            ));
        }
    }
    None
}

/// Books an appointment of this patient with the doctor.
#[post("/patients/<id>/appointments", data = "<form>")]
async fn book_appointment(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, AppointmentForm>,
) -> Result<Flash<Redirect>, Refusal> {
    let patient = patient_for_change(app, &who, id).await.map_err(Err)?;
    let view = form_context_of(&form.context, &["starts_at", "reason"]);
    let booking = match booking_of(&form, app.now(), view) {
        Ok(booking) => booking,
        Err(view) => return Err(rerender(app, &who, &patient, "appointment", view).await),
    };
    let (actor, pid, did) = (who.actor(), patient.id.clone(), who.user.id.clone());
    let booked = app
        .blocking(move |app, conn| Ok(appointments::book(app, conn, &actor, &pid, &did, &booking)?))
        .await
        .map_err(Err)?;
    if let Err(problem) = booked {
        let view =
            form_context_of(&form.context, &["starts_at", "reason"]).error("starts_at", problem);
        return Err(rerender(app, &who, &patient, "appointment", view).await);
    }
    Ok(Flash::success(
        Redirect::to(format!("/patients/{}#appointments", patient.id)),
        "Appointment booked.",
    ))
}

#[derive(FromForm)]
pub struct AppointmentChange {
    /// `reschedule`, `cancel` or `done`.
    change: String,
    starts_at: Option<String>,
}

#[post("/patients/<id>/appointments/<aid>", data = "<form>")]
async fn change_appointment(
    who: Doctor,
    app: &State<App>,
    id: &str,
    aid: &str,
    form: CsrfForm<'_, AppointmentChange>,
) -> Result<Flash<Redirect>, AppError> {
    let patient = patient_for_change(app, &who, id).await?;
    let back = format!("/patients/{}#appointments", patient.id);
    let Some(f) = form.value.as_ref() else {
        return Err(AppError::BadRequest("Choose a change.".into()));
    };
    let change = match Change::parse(&f.change, f.starts_at.as_deref(), app.now()) {
        Ok(change) => change,
        Err(Some(problem)) => return Ok(Flash::error(Redirect::to(back), problem)),
        Err(None) => return Err(AppError::BadRequest("Unknown change.".into())),
    };
    let (actor, pid, aid) = (who.actor(), patient.id.clone(), aid.to_string());
    let outcome = app
        .blocking(move |app, conn| {
            appointments::change(app, conn, &actor, &pid, &aid, change, Requester::Doctor)?
                .ok_or(AppError::NotFound)
        })
        .await?;
    Ok(match outcome {
        Ok(()) => Flash::success(Redirect::to(back), "Appointment updated."),
        Err(refusal) => Flash::error(Redirect::to(back), refusal.message()),
    })
}

#[cfg(test)]
mod tests {
    use super::dose_order_problem;

    #[test]
    fn doses_come_in_order() {
        assert_eq!(dose_order_problem(&[], 1, "2024-01-01"), None);
        assert!(dose_order_problem(&[], 2, "2024-01-01").is_some());
        let one = [(1, "2024-01-01".to_string())];
        assert_eq!(dose_order_problem(&one, 2, "2024-02-01"), None);
        assert!(dose_order_problem(&one, 1, "2024-02-01").is_some());
        assert!(dose_order_problem(&one, 3, "2024-02-01").is_some());
        assert!(dose_order_problem(&one, 2, "2023-12-31").is_some());
    }
}
