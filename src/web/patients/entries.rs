//! The doctor's forms on a patient's record: consultations (add and edit), vaccinations (doses
//! in order per vaccine) and appointments (book, change, cancel, mark done). Each change is one
//! transaction with its audit event; bad input comes back as the record page, 422, re-filled.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use super::record::{back_to, patient_for_change, rerender, Doctor, RecordForm, Section};
use crate::app::App;
use crate::auth::CsrfForm;
use crate::records::appointments::{self, Change, Requester};
use crate::records::consultations::{self, Consultation, ConsultationText};
use crate::records::vaccinations::{self, Dose, DoseInput, DoseRefusal};
use crate::records::validate;
use crate::web::appointment_form::{booking_of, AppointmentForm};
use crate::web::error::{AppError, Rejected};
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
        back_to(&patient.id, Section::Consultations),
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
        back_to(&patient.id, Section::Consultations),
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

#[post("/patients/<id>/vaccinations", data = "<form>")]
async fn add_vaccination(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, VaccinationForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let view = form_context_of(&form.context, &vaccinations::FIELD_NAMES);
    let checked = match form.value.as_ref() {
        Some(f) => Dose::check(
            &DoseInput {
                vaccine: &f.vaccine,
                dose_number: &f.dose_number,
                given_on: &f.given_on,
                lot: &f.lot,
                given_by: &f.given_by,
            },
            app.clock.today(),
        ),
        None => Err(vec![("vaccine", "Fill in the vaccination.".to_string())]),
    };
    let dose = match checked {
        Ok(dose) => dose,
        Err(problems) => {
            let view = view.with_problems(problems);
            return Err(rerender(app, &who, &patient, RecordForm::Vaccination, view).await);
        }
    };
    let (actor, pid, recorded_by) = (who.actor(), patient.id.clone(), who.user.id.clone());
    let to_record = dose.clone();
    let recorded = app
        .blocking(move |app, conn| {
            Ok(vaccinations::record(
                app,
                conn,
                &actor,
                &pid,
                &recorded_by,
                &to_record,
            )?)
        })
        .await?;
    match recorded {
        Ok(_) => Ok(Flash::success(
            back_to(&patient.id, Section::Vaccinations),
            format!("Dose {} of {} recorded.", dose.number, dose.vaccine),
        )),
        Err(refusal @ DoseRefusal::OutOfOrder(_)) => {
            let view = view.error("dose_number", refusal.message());
            Err(rerender(app, &who, &patient, RecordForm::Vaccination, view).await)
        }
        Err(refusal @ DoseRefusal::RecordUnreadable) => {
            Err(AppError::Conflict(refusal.message()).into())
        }
    }
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
        back_to(&patient.id, Section::Appointments),
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
    let back = || back_to(&patient.id, Section::Appointments);
    let Some(f) = form.value.as_ref() else {
        return Err(AppError::BadRequest("Choose a change.".into()));
    };
    let change = match Change::parse(&f.change, f.starts_at.as_deref(), app.now()) {
        Ok(change) => change,
        Err(Some(problem)) => return Ok(Flash::error(back(), problem)),
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
        Ok(()) => Flash::success(back(), "Appointment updated."),
        Err(refusal) => Flash::error(back(), refusal.message()),
    })
}
