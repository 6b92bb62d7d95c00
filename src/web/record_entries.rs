//! The doctor's forms on a patient's record: consultations (add and edit), vaccinations (doses
//! in order per vaccine) and appointments (book, change, cancel, mark done). Each change is one
//! transaction with its audit event; bad input comes back as the record page, 422, re-filled.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::app::App;
use crate::auth::CsrfForm;
use crate::crypto::random_id;
use crate::db::models::records::VaccinationRow;
use crate::records::appointments::{self, Change, Requester};
use crate::records::consultations::{self, Consultation, ConsultationText};
use crate::records::{self, validate};
use crate::web::appointment_form::{booking_of, AppointmentForm};
use crate::web::error::{AppError, Rejected};
use crate::web::patient_record::{patient_for_change, rerender, Doctor, RecordForm};
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

impl ConsultationForm {
    fn text(&self, field: ConsultationText) -> &str {
        match field {
            ConsultationText::Department => &self.department,
            ConsultationText::Block => &self.block,
            ConsultationText::Unit => &self.unit,
            ConsultationText::Diagnosis => &self.diagnosis,
            ConsultationText::Notes => &self.notes,
            ConsultationText::Prescription => &self.prescription,
        }
    }
}

/// The consultation the form asks for, or the form again with a message at each wrong field.
fn consultation_of(form: &CsrfForm<'_, ConsultationForm>) -> Result<Consultation, FormView> {
    let view = form_context_of(&form.context, &consultations::FIELD_NAMES);
    let Some(f) = form.value.as_ref() else {
        return Err(view.error(consultations::OCCURRED_AT, "Fill in the consultation."));
    };
    Consultation::check(&f.occurred_at, |field| f.text(field)).map_err(|p| view.with_problems(p))
}

#[post("/patients/<id>/consultations", data = "<form>")]
async fn add_consultation(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, ConsultationForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let consultation = match consultation_of(&form) {
        Ok(c) => c,
        Err(view) => {
            return Err(rerender(app, &who, &patient, RecordForm::Consultation, view).await)
        }
    };
    let (actor, pid, did) = (who.actor(), patient.id.clone(), who.user.id.clone());
    app.blocking(move |app, conn| {
        Ok(consultations::add(
            app,
            conn,
            &actor,
            &pid,
            &did,
            &consultation,
        )?)
    })
    .await?;
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
    let opened = app
        .blocking(move |app, conn| {
            consultations::open_for_edit(app, conn, &actor, &pid, &cid)?.ok_or(AppError::NotFound)
        })
        .await?;
    let mut layout = Layout::for_user(app, &who, flash);
    if opened.integrity_error() {
        layout = layout.with_message(
            "error",
            "Integrity error: part of this consultation was altered in the database and is not shown.",
        );
    }
    let view = opened.texts.into_iter().fold(
        FormView::default().value(
            consultations::OCCURRED_AT,
            validate::date_time_text(opened.occurred_at),
        ),
        |view, (field, shown)| view.value(field.name(), shown.text),
    );
    Ok(consultation_page(layout, &patient.id, &opened.id, view))
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
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let consultation = match consultation_of(&form) {
        Ok(c) => c,
        Err(view) => {
            let layout = Layout::for_user(app, &who, None);
            return Err(Rejected::form(consultation_page(
                layout,
                &patient.id,
                cid,
                view,
            )));
        }
    };
    let (actor, pid, cid) = (who.actor(), patient.id.clone(), cid.to_string());
    app.blocking(move |app, conn| {
        consultations::edit(app, conn, &actor, &pid, &cid, &consultation)?.ok_or(AppError::NotFound)
    })
    .await?;
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
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let mut view = form_context_of(&form.context, &VACCINATION_NAMES);
    let Some(f) = form.value.as_ref() else {
        view = view.error("vaccine", "Fill in the vaccination.");
        return Err(rerender(app, &who, &patient, RecordForm::Vaccination, view).await);
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
        return Err(rerender(app, &who, &patient, RecordForm::Vaccination, view).await);
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
        .await?;
    if let Err(problem) = outcome {
        let view = form_context_of(&form.context, &VACCINATION_NAMES).error("dose_number", problem);
        return Err(rerender(app, &who, &patient, RecordForm::Vaccination, view).await);
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
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let view = form_context_of(&form.context, &["starts_at", "reason"]);
    let booking = match booking_of(&form, app.now(), view) {
        Ok(booking) => booking,
        Err(view) => return Err(rerender(app, &who, &patient, RecordForm::Appointment, view).await),
    };
    let (actor, pid, did) = (who.actor(), patient.id.clone(), who.user.id.clone());
    let booked = app
        .blocking(move |app, conn| Ok(appointments::book(app, conn, &actor, &pid, &did, &booking)?))
        .await?;
    if let Err(problem) = booked {
        let view =
            form_context_of(&form.context, &["starts_at", "reason"]).error("starts_at", problem);
        return Err(rerender(app, &who, &patient, RecordForm::Appointment, view).await);
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
