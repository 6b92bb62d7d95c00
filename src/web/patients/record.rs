//! `/patients/<id>`: a doctor's view of one patient's whole record, with its forms; revealing a
//! masked value; emergency access to a record outside the doctor's care; the profile form.
//! Every view and change writes an audit event the patient sees at `/account/access-log`.

use crate::ids::{DoctorId, PatientId};
use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::Status;
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
use crate::db::models::User;
use crate::masking::{Mode, PROFILE_FIELDS};
use crate::records::profile::{self, Profile, ProfileColumn};
use crate::records::{self, validate, Relation};
use crate::web::error::{AppError, Rejected};
use crate::web::{form_context_of, FormView, Layout};

pub fn routes() -> Vec<Route> {
    routes![view, reveal, emergency, save_profile]
}

pub(crate) type Doctor = Allowed<page::Patients>;

/// What a doctor may do with a patient's record, or the patient a refusal names.
pub(crate) enum Access {
    Granted(User),
    Refused(User),
}

/// The patient `id` and the doctor's relation to them. Not a patient: 404.
pub(crate) async fn access(app: &App, who: &Doctor, id: &str) -> Result<Access, AppError> {
    let (viewer, id) = (who.user.clone(), id.to_string());
    app.blocking(move |app, conn| {
        let patient = records::find_patient(&id, conn)?.ok_or(AppError::NotFound)?;
        Ok(match records::relation(&viewer, &id, app.now(), conn)? {
            Some(_) => Access::Granted(patient),
            None => Access::Refused(patient),
        })
    })
    .await
}

/// The patient `id` if the doctor may change their record; 403 (audited) otherwise.
pub(crate) async fn patient_for_change(
    app: &App,
    who: &Doctor,
    id: &str,
) -> Result<User, AppError> {
    match access(app, who, id).await? {
        Access::Granted(patient) => Ok(patient),
        Access::Refused(patient) => {
            audit_refusal(app, who, &patient.id).await;
            Err(AppError::Forbidden)
        }
    }
}

async fn audit_refusal(app: &App, who: &Doctor, patient_id: &str) {
    let (actor, pid) = (who.actor(), patient_id.to_string());
    let written = app
        .blocking(move |app, conn| {
            Ok(app.audit.append(
                conn,
                app.now(),
                &crate::audit::Entry::new(
                    &actor,
                    action::RECORD_REFUSED,
                    crate::audit::Outcome::Denied,
                )
                .target(records::audit_target(&pid))
                .detail("not in this doctor's care"),
            )?)
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot audit a refused record");
    }
}

/// The forms of the record page, one of which may come back with errors.
#[derive(Serialize, Default)]
pub(crate) struct RecordForms {
    pub profile: FormView,
    pub consultation: FormView,
    pub scan: FormView,
    pub vaccination: FormView,
    pub appointment: FormView,
}

/// The record page, or the patient it was refused for.
pub(crate) enum RecordPage {
    Shown(Template),
    Refused(User),
}

/// Renders patient `patient_id`'s record for a doctor and writes the view's audit event, all
/// in one go on the database (the page is the one doctors load most); a patient outside the
/// doctor's care comes back as [`RecordPage::Refused`], a non-patient as 404.
pub(crate) async fn render_record(
    app: &App,
    who: &Doctor,
    patient_id: &str,
    mut forms: RecordForms,
    revealed: Option<String>,
    flash: Option<FlashMessage<'_>>,
) -> Result<RecordPage, AppError> {
    let (actor, viewer, id) = (who.actor(), who.user.clone(), patient_id.to_string());
    let reveal = revealed.clone();
    let loaded = app
        .blocking(move |app, conn| {
            let patient = records::find_patient(&id, conn)?.ok_or(AppError::NotFound)?;
            let Some(relation) = records::relation(&viewer, &id, app.now(), conn)? else {
                return Ok(Err(patient));
            };
            let record = records::load_record(
                app,
                &viewer,
                &patient,
                Level::Doctor,
                reveal.as_deref(),
                conn,
            )?;
            let emergency = matches!(relation, Relation::Emergency { .. });
            let (action, detail) = match &reveal {
                Some(field) => (action::RECORD_FIELD_REVEALED, format!("field {field}")),
                None if emergency => (action::RECORD_VIEWED, "emergency access".to_string()),
                None => (action::RECORD_VIEWED, "record".to_string()),
            };
            records::audit(app, conn, &actor, action, &patient.id, detail)?;
            records::audit_integrity_errors(app, conn, &actor, &patient.id, &record.broken_values)?;
            Ok(Ok((record, relation)))
        })
        .await?;
    let (record, relation) = match loaded {
        Ok(loaded) => loaded,
        Err(patient) => return Ok(RecordPage::Refused(patient)),
    };
    let mut layout = Layout::for_user(app, who, flash);
    if record.integrity_errors > 0 {
        layout = layout.with_message(
            "error",
            format!(
                "Integrity error: {} value(s) of this record were altered in the database and are not shown.",
                record.integrity_errors
            ),
        );
    }
    if forms.profile.values.is_empty() {
        // The edit form starts from what the doctor sees in full; a masked or hidden value
        // stays out of the page (left blank, it keeps the stored one).
        for item in record.profile.iter().filter(|i| i.mode == Mode::Full) {
            if !item.integrity_error {
                forms
                    .profile
                    .values
                    .insert(item.column.to_string(), item.text.clone());
            }
        }
    }
    let emergency_until = match relation {
        Relation::Emergency { expires_at } => Some(expires_at),
        _ => None,
    };
    let today = validate::date_text(app.clock.today());
    Ok(RecordPage::Shown(Template::render(
        "records/patient",
        context! {
            layout, record, forms, emergency_until, today,
            blood_types: validate::BLOOD_TYPES, genders: validate::GENDERS,
            categories: crate::records::files::CATEGORIES,
            profile_fields: PROFILE_FIELDS,
            max_upload: crate::web::size_text(app.config.max_upload_bytes),
        },
    )))
}

/// The page a doctor gets for a patient outside their care: 403, with the emergency form.
fn refused_page(app: &App, who: &Doctor, patient: &User, form: FormView) -> (Status, Template) {
    let layout = Layout::for_user(app, who, None);
    (
        Status::Forbidden,
        Template::render(
            "records/refused",
            context! { layout, patient_id: &patient.id, username: &patient.username, form,
            hours: app.config.emergency_access_lifetime / 3600 },
        ),
    )
}

/// The part of the record page a change sends the doctor back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Profile,
    Consultations,
    Files,
    Vaccinations,
    Appointments,
}

/// The record page of `patient_id`, at `section`.
pub(crate) fn back_to(patient_id: &str, section: Section) -> Redirect {
    let fragment = match section {
        Section::Profile => uri!("#profile"),
        Section::Consultations => uri!("#consultations"),
        Section::Files => uri!("#files"),
        Section::Vaccinations => uri!("#vaccinations"),
        Section::Appointments => uri!("#appointments"),
    };
    Redirect::to(uri!(_, view(id = patient_id), fragment))
}

#[get("/patients/<id>")]
pub(crate) async fn view(
    who: Doctor,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    id: &str,
) -> Result<Result<Template, (Status, Template)>, AppError> {
    match render_record(app, &who, id, RecordForms::default(), None, flash).await? {
        RecordPage::Shown(page) => Ok(Ok(page)),
        RecordPage::Refused(patient) => {
            audit_refusal(app, &who, &patient.id).await;
            Ok(Err(refused_page(app, &who, &patient, FormView::default())))
        }
    }
}

#[derive(FromForm)]
pub struct RevealForm {
    field: String,
}

/// Shows one masked value of this patient in full, for this page only; audited.
#[post("/patients/<id>/reveal", data = "<form>")]
async fn reveal(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, RevealForm>,
) -> Result<Template, AppError> {
    let field = form
        .value
        .as_ref()
        .map(|f| f.field.clone())
        .unwrap_or_default();
    let patient = patient_for_change(app, &who, id).await?;
    let visibility = app.masking();
    if visibility.mode(&field, Level::Doctor) != Mode::Masked {
        return Err(AppError::BadRequest(
            "Only a masked value can be revealed.".into(),
        ));
    }
    match render_record(
        app,
        &who,
        &patient.id,
        RecordForms::default(),
        Some(field),
        None,
    )
    .await?
    {
        RecordPage::Shown(page) => Ok(page),
        RecordPage::Refused(_) => Err(AppError::Forbidden),
    }
}

#[derive(FromForm)]
pub struct EmergencyForm {
    reason: String,
}

/// Opens a record outside the doctor's care for a while, with a written reason the patient sees.
#[post("/patients/<id>/emergency", data = "<form>")]
async fn emergency(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, EmergencyForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let patient = match access(app, &who, id).await? {
        Access::Granted(patient) | Access::Refused(patient) => patient,
    };
    let typed = form.value.as_ref().map_or("", |f| f.reason.as_str());
    let reason = match records::emergency::check_reason(typed) {
        Ok(reason) => reason,
        Err(problem) => {
            let view = FormView::default()
                .value("reason", typed.trim())
                .error("reason", problem);
            let (status, page) = refused_page(app, &who, &patient, view);
            let status = if status == Status::Forbidden {
                Status::UnprocessableEntity
            } else {
                status
            };
            return Err(Rejected::page((status, page)));
        }
    };
    let (actor, doctor_id, pid) = (who.actor(), who.user.id.clone(), patient.id.clone());
    let lifetime = app.config.emergency_access_lifetime;
    app.blocking(move |app, conn| {
        let (doctor, patient) = (DoctorId(&doctor_id), PatientId(&pid));
        Ok::<_, AppError>(records::emergency::grant(
            app, conn, &actor, doctor, patient, &reason, lifetime,
        )?)
    })
    .await?;
    Ok(Flash::warning(
        Redirect::to(uri!(crate::web::patients::record::view(id = &patient.id))),
        "Emergency access granted. It is audited and shown to the patient.",
    ))
}

#[derive(FromForm)]
pub struct ProfileForm {
    national_id: String,
    first_name: String,
    last_name: String,
    date_of_birth: String,
    gender: String,
    blood_type: String,
    phone: String,
    email: String,
    address: String,
    postal_code: String,
    height_cm: String,
    weight_kg: String,
    allergies: String,
    /// Sent only by the registration form (`/patients/new`), which also creates the account.
    pub username: Option<String>,
}

impl ProfileForm {
    fn value(&self, column: ProfileColumn) -> &str {
        match column {
            ProfileColumn::NationalId => &self.national_id,
            ProfileColumn::FirstName => &self.first_name,
            ProfileColumn::LastName => &self.last_name,
            ProfileColumn::DateOfBirth => &self.date_of_birth,
            ProfileColumn::Gender => &self.gender,
            ProfileColumn::BloodType => &self.blood_type,
            ProfileColumn::Phone => &self.phone,
            ProfileColumn::Email => &self.email,
            ProfileColumn::Address => &self.address,
            ProfileColumn::PostalCode => &self.postal_code,
            ProfileColumn::HeightCm => &self.height_cm,
            ProfileColumn::WeightKg => &self.weight_kg,
            ProfileColumn::Allergies => &self.allergies,
        }
    }
}

/// The profile the form asks for, or the form again with a message at each wrong field. A blank
/// value of a field in `kept_if_blank` keeps the stored one.
pub(crate) fn profile_of(
    form: &CsrfForm<'_, ProfileForm>,
    today: time::Date,
    kept_if_blank: &[ProfileColumn],
    view: FormView,
) -> Result<Profile, FormView> {
    let Some(f) = form.value.as_ref() else {
        return Err(view.error("national_id", "Fill in the profile."));
    };
    Profile::check(|column| f.value(column), today, kept_if_blank)
        .map_err(|p| view.with_problems(p))
}

#[post("/patients/<id>/profile", data = "<form>")]
async fn save_profile(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, ProfileForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    // The form never shows a value the doctor sees masked or not at all, so it cannot send it
    // back: left blank, it keeps the stored one.
    let visibility = app.masking();
    let not_shown: Vec<ProfileColumn> = ProfileColumn::ALL
        .into_iter()
        .filter(|c| visibility.mode(c.name(), Level::Doctor) != Mode::Full)
        .collect();
    let view = form_context_of(&form.context, &ProfileColumn::NAMES);
    let profile = match profile_of(&form, app.clock.today(), &not_shown, view.clone()) {
        Ok(profile) => profile,
        Err(view) => return Err(rerender(app, &who, &patient, RecordForm::Profile, view).await),
    };
    let (actor, pid) = (who.actor(), patient.id.clone());
    let saved = app
        .blocking(move |app, conn| Ok(profile::save(app, conn, &actor, &pid, &profile)?))
        .await?;
    if let Err((field, problem)) = saved {
        let view = view.error(field, problem);
        return Err(rerender(app, &who, &patient, RecordForm::Profile, view).await);
    }
    Ok(Flash::success(
        back_to(&patient.id, Section::Profile),
        "Profile saved.",
    ))
}

/// One of the record page's forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordForm {
    Profile,
    Consultation,
    Scan,
    Vaccination,
    Appointment,
}

impl RecordForms {
    /// The forms with `which` re-filled from `view`, the others blank.
    fn with(which: RecordForm, view: FormView) -> RecordForms {
        let mut forms = RecordForms::default();
        let slot = match which {
            RecordForm::Profile => &mut forms.profile,
            RecordForm::Consultation => &mut forms.consultation,
            RecordForm::Scan => &mut forms.scan,
            RecordForm::Vaccination => &mut forms.vaccination,
            RecordForm::Appointment => &mut forms.appointment,
        };
        *slot = view;
        forms
    }
}

/// The record page again with form `which` re-filled and its errors shown: 422.
pub(crate) async fn rerender(
    app: &App,
    who: &Doctor,
    patient: &User,
    which: RecordForm,
    view: FormView,
) -> Rejected {
    let forms = RecordForms::with(which, view);
    match render_record(app, who, &patient.id, forms, None, None).await {
        Ok(RecordPage::Shown(page)) => Rejected::form(page),
        Ok(RecordPage::Refused(_)) => AppError::Forbidden.into(),
        Err(e) => e.into(),
    }
}
