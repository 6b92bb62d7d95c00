//! The medical record: who may open whose record, and a patient's whole record read for a page
//! (every value opened through the field encryption; a value that fails its integrity check is
//! marked, never shown). The pages live in `web::patients` (a doctor's) and `web::records` (a
//! patient's own).

pub mod appointments;
pub mod consultations;
pub mod emergency;
pub mod files;
pub mod profile;
pub mod vaccinations;
pub mod validate;

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;

use crate::access::Level;
use crate::audit::{Actor, Entry, Outcome};
use crate::db::models::records::{
    AppointmentRow, CareTeam, ConsultationRow, EmergencyGrant, MedicalFileRow, PatientRow,
    ProfileColumn, VaccinationRow,
};
use crate::db::models::User;
use crate::db::Conn;
use crate::fields::Shown;
use crate::ids::{DoctorId, PatientId, RowId};
use crate::masking::{self, Mode, Visibility, PROFILE_FIELDS};
use crate::services::Services;

/// A field of a form and what is wrong with what was typed in it: a command's refusal is a list
/// of these, which the page shows next to each field.
pub type FieldProblem = (&'static str, String);

/// Why a user may open a patient's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The patient themself.
    Own,
    /// A doctor the patient is assigned to (or who registered them).
    Care,
    /// A doctor with running emergency access, until `expires_at`.
    Emergency { expires_at: i64 },
}

/// How `viewer` relates to the patient `patient_id`, if at all. Only patients open their own
/// record and only doctors open others'; no other level opens any.
pub fn relation(
    viewer: &User,
    patient_id: &str,
    now: i64,
    conn: &mut Conn,
) -> QueryResult<Option<Relation>> {
    match viewer.level() {
        Level::Patient if viewer.id == patient_id => Ok(Some(Relation::Own)),
        Level::Doctor => {
            if CareTeam::is_assigned(DoctorId(&viewer.id), PatientId(patient_id), conn)? {
                return Ok(Some(Relation::Care));
            }
            Ok(
                EmergencyGrant::active(&viewer.id, patient_id, now, conn)?.map(|g| {
                    Relation::Emergency {
                        expires_at: g.expires_at,
                    }
                }),
            )
        }
        _ => Ok(None),
    }
}

/// The patient account `id`, if it is one.
pub fn find_patient(id: &str, conn: &mut Conn) -> QueryResult<Option<User>> {
    Ok(User::find(id, conn)?.filter(|u| u.level() == Level::Patient))
}

/// The audit target naming a patient's record; the patient's access log reads events by it.
pub fn audit_target(patient_id: &str) -> String {
    format!("patient {patient_id}")
}

/// Appends an event about `patient_id`'s record.
pub fn audit(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    action: &'static str,
    patient_id: &str,
    detail: impl Into<String>,
) -> QueryResult<()> {
    app.audit.append(
        conn,
        app.now(),
        &Entry::new(actor, action, Outcome::Success)
            .target(audit_target(patient_id))
            .detail(detail),
    )
}

/// Appends the event of a change to `patient_id`'s record, described by `what`.
pub fn changed(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    what: impl Into<String>,
) -> QueryResult<()> {
    audit(
        app,
        conn,
        actor,
        crate::audit::action::RECORD_CHANGED,
        patient_id,
        what,
    )
}

#[derive(Serialize, Clone, Debug)]
pub struct ProfileItem {
    pub column: &'static str,
    pub title: &'static str,
    pub mode: Mode,
    pub text: String,
    pub integrity_error: bool,
}

#[derive(Serialize)]
pub struct ConsultationView {
    pub id: String,
    pub occurred_at: i64,
    pub doctor: String,
    pub department: Shown,
    pub block: Shown,
    pub unit: Shown,
    pub diagnosis: Shown,
    pub notes: Shown,
    pub prescription: Shown,
}

#[derive(Serialize)]
pub struct FileView {
    pub id: String,
    pub category: Shown,
    pub description: Shown,
    pub taken_on: Shown,
    pub file_name: Shown,
    pub content_type: String,
    pub size_bytes: i64,
    pub uploaded_by: String,
    pub created_at: i64,
}

#[derive(Serialize)]
pub struct VaccinationView {
    pub id: String,
    pub vaccine: Shown,
    pub dose_number: Shown,
    pub given_on: Shown,
    pub lot: Shown,
    pub given_by: Shown,
}

#[derive(Serialize)]
pub struct AppointmentView {
    pub id: String,
    pub starts_at: i64,
    pub doctor_id: String,
    pub doctor: String,
    pub reason: Shown,
    pub status: String,
    /// Booked or moved, not yet cancelled or done: the doctor's page offers its changes.
    pub live: bool,
    /// The patient's page offers to cancel it.
    pub open: bool,
}

/// A patient's whole record as a page shows it to one level.
#[derive(Serialize)]
pub struct RecordView {
    pub patient_id: String,
    pub username: String,
    pub name: String,
    pub has_profile: bool,
    pub profile: Vec<ProfileItem>,
    pub consultations: Vec<ConsultationView>,
    pub files: Vec<FileView>,
    pub vaccinations: Vec<VaccinationView>,
    pub appointments: Vec<AppointmentView>,
    /// How many values failed their integrity check (each is marked where it stands).
    pub integrity_errors: usize,
    /// Where each of them stands (`consultation <id> diagnosis`), for the audit trail.
    #[serde(skip)]
    pub broken_values: Vec<String>,
}

/// How a person is named on a record page: their full name, or their username.
pub fn display_name(app: &Services, user: &User) -> String {
    let (full_name, _) = app.fields.show_account(user);
    if full_name.integrity_error || full_name.text.is_empty() {
        user.username.clone()
    } else {
        full_name.text
    }
}

/// The display names of the people `ids` names (a record's few doctors, each many times);
/// `reader`, who is often one of them, is not looked up again.
fn names_of(
    app: &Services,
    reader: &User,
    ids: Vec<&str>,
    conn: &mut Conn,
) -> QueryResult<HashMap<String, String>> {
    let mut names = HashMap::new();
    if ids.contains(&reader.id.as_str()) {
        names.insert(reader.id.clone(), display_name(app, reader));
    }
    let unknown: Vec<&str> = ids.into_iter().filter(|id| *id != reader.id).collect();
    for user in User::find_many(&unknown, conn)? {
        names.insert(user.id.clone(), display_name(app, &user));
    }
    Ok(names)
}

/// The profile's fields as `level` sees them (hidden ones left out); `revealed` is shown in
/// full for this one render.
pub fn profile_items(
    app: &Services,
    row: &PatientRow,
    level: Level,
    visibility: &Visibility,
    revealed: Option<&str>,
) -> Vec<ProfileItem> {
    let sealed = app
        .fields
        .row("patients", RowId(&row.user_id), PatientId(&row.user_id));
    PROFILE_FIELDS
        .iter()
        .filter_map(|field| {
            let mut mode = visibility.mode(field.column, level);
            if mode == Mode::Masked && revealed == Some(field.column) {
                mode = Mode::Full;
            }
            if mode == Mode::Hidden {
                return None;
            }
            let shown = sealed.show(field.column, profile_column(row, field.column));
            Some(ProfileItem {
                column: field.column,
                title: field.title,
                mode,
                text: shown.text,
                integrity_error: shown.integrity_error,
            })
        })
        .collect()
}

/// The stored form of one profile column (empty for a name that is not one).
pub fn profile_column<'r>(row: &'r PatientRow, column: &str) -> &'r str {
    ProfileColumn::parse(column).map_or("", |c| c.stored(row))
}

/// The name a patient goes by on the pages: first and last name from the profile, else the
/// account's full name, else the username.
/// A patient's name as `level` may see it: each part full, masked or left out as the masking
/// policy says (a heading or a list line shows no more than the profile does); the username when
/// nothing of the name may be shown or it failed its integrity check.
pub fn patient_name(
    app: &Services,
    user: &User,
    profile: Option<&PatientRow>,
    level: Level,
) -> String {
    if let Some(row) = profile {
        let sealed = app
            .fields
            .row("patients", RowId(&row.user_id), PatientId(&row.user_id));
        let visibility = app.masking();
        let mut parts = Vec::new();
        for (column, stored) in [
            ("first_name", &row.first_name),
            ("last_name", &row.last_name),
        ] {
            let shown = sealed.show(column, stored);
            if shown.integrity_error {
                return user.username.clone();
            }
            match visibility.mode(column, level) {
                Mode::Full => parts.push(shown.text),
                Mode::Masked if !shown.text.is_empty() => parts.push(masking::mask(&shown.text)),
                Mode::Masked | Mode::Hidden => {}
            }
        }
        let name = parts.join(" ");
        if !name.trim().is_empty() {
            return name.trim().to_string();
        }
        return user.username.clone();
    }
    display_name(app, user)
}

/// Records that `actor` found `patient_id` by national ID outside their care: the patient's
/// access log shows every such lookup, even one that opened nothing.
pub fn audit_lookup(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
) -> QueryResult<()> {
    audit(
        app,
        conn,
        actor,
        crate::audit::action::RECORD_LOOKED_UP,
        patient_id,
        "found by national ID outside the doctor's care",
    )
}

/// Reads `patient`'s whole record for `level`, as `reader` (the doctor or the patient).
pub fn load_record(
    app: &Services,
    reader: &User,
    patient: &User,
    level: Level,
    revealed: Option<&str>,
    conn: &mut Conn,
) -> QueryResult<RecordView> {
    let pid = patient.id.as_str();
    let profile = PatientRow::find(pid, conn)?;
    let visibility = app.masking();
    let consultations = ConsultationRow::for_patient(pid, conn)?;
    let files = MedicalFileRow::for_patient(pid, conn)?;
    let vaccinations = VaccinationRow::for_patient(pid, conn)?;
    let appointments = AppointmentRow::for_patient(pid, conn)?;
    let mut people: Vec<&str> = consultations.iter().map(|c| c.doctor_id.as_str()).collect();
    people.extend(files.iter().map(|f| f.uploaded_by.as_str()));
    people.extend(appointments.iter().map(|a| a.doctor_id.as_str()));
    people.sort_unstable();
    people.dedup();
    let names = names_of(app, reader, people, conn)?;
    let name_of = |id: &str| names.get(id).cloned().unwrap_or_else(|| "—".into());

    let now = app.now();
    let mut view = RecordView {
        patient_id: patient.id.clone(),
        username: patient.username.clone(),
        name: patient_name(app, patient, profile.as_ref(), level),
        has_profile: profile.is_some(),
        profile: profile
            .as_ref()
            .map(|row| profile_items(app, row, level, &visibility, revealed))
            .unwrap_or_default(),
        consultations: consultations
            .iter()
            .map(|c| {
                let s = app
                    .fields
                    .row("consultations", RowId(&c.id), PatientId(pid));
                ConsultationView {
                    id: c.id.clone(),
                    occurred_at: c.occurred_at,
                    doctor: name_of(&c.doctor_id),
                    department: s.show("department", &c.department),
                    block: s.show("block", &c.block),
                    unit: s.show("unit", &c.unit),
                    diagnosis: s.show("diagnosis", &c.diagnosis),
                    notes: s.show("notes", &c.notes),
                    prescription: s.show("prescription", &c.prescription),
                }
            })
            .collect(),
        files: files
            .iter()
            .map(|f| {
                let s = app
                    .fields
                    .row("medical_files", RowId(&f.id), PatientId(pid));
                FileView {
                    id: f.id.clone(),
                    category: s.show("category", &f.category),
                    description: s.show("description", &f.description),
                    taken_on: s.show("taken_on", &f.taken_on),
                    file_name: s.show("file_name", &f.file_name),
                    content_type: f.content_type.clone(),
                    size_bytes: f.size_bytes,
                    uploaded_by: name_of(&f.uploaded_by),
                    created_at: f.created_at,
                }
            })
            .collect(),
        vaccinations: vaccinations
            .iter()
            .map(|v| {
                let s = app.fields.row("vaccinations", RowId(&v.id), PatientId(pid));
                VaccinationView {
                    id: v.id.clone(),
                    vaccine: s.show("vaccine", &v.vaccine),
                    dose_number: s.show("dose_number", &v.dose_number),
                    given_on: s.show("given_on", &v.given_on),
                    lot: s.show("lot", &v.lot),
                    given_by: s.show("given_by", &v.given_by),
                }
            })
            .collect(),
        appointments: appointments
            .iter()
            .map(|a| AppointmentView {
                id: a.id.clone(),
                starts_at: a.starts_at,
                doctor_id: a.doctor_id.clone(),
                doctor: name_of(&a.doctor_id),
                reason: app
                    .fields
                    .row("appointments", RowId(&a.id), PatientId(pid))
                    .show("reason", &a.reason),
                status: a.status.clone(),
                live: a
                    .status()
                    .is_some_and(appointments::AppointmentStatus::is_live),
                open: appointments::patient_may_cancel(a, now),
            })
            .collect(),
        integrity_errors: 0,
        broken_values: Vec::new(),
    };
    view.broken_values = broken_values(&view);
    view.integrity_errors = view.broken_values.len();
    Ok(view)
}

/// Where each value of `view` that failed its integrity check stands.
fn broken_values(view: &RecordView) -> Vec<String> {
    let mut places: Vec<String> = view
        .profile
        .iter()
        .filter(|p| p.integrity_error)
        .map(|p| format!("profile {}", p.column))
        .collect();
    let mut add = |kind: &str, id: &str, columns: &[(&str, &Shown)]| {
        places.extend(
            columns
                .iter()
                .filter(|(_, shown)| shown.integrity_error)
                .map(|(column, _)| format!("{kind} {id} {column}")),
        );
    };
    for c in &view.consultations {
        add(
            "consultation",
            &c.id,
            &[
                ("department", &c.department),
                ("block", &c.block),
                ("unit", &c.unit),
                ("diagnosis", &c.diagnosis),
                ("notes", &c.notes),
                ("prescription", &c.prescription),
            ],
        );
    }
    for f in &view.files {
        add(
            "file",
            &f.id,
            &[
                ("category", &f.category),
                ("description", &f.description),
                ("taken_on", &f.taken_on),
                ("file_name", &f.file_name),
            ],
        );
    }
    for v in &view.vaccinations {
        add(
            "vaccination",
            &v.id,
            &[
                ("vaccine", &v.vaccine),
                ("dose_number", &v.dose_number),
                ("given_on", &v.given_on),
                ("lot", &v.lot),
                ("given_by", &v.given_by),
            ],
        );
    }
    for a in &view.appointments {
        add("appointment", &a.id, &[("reason", &a.reason)]);
    }
    places
}

/// Records each value that failed its integrity check on a page someone opened: one event per
/// value and view, so that admins learn of an edited database from the first person who met it.
pub fn audit_integrity_errors(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    places: &[String],
) -> QueryResult<()> {
    for place in places {
        app.audit.append(
            conn,
            app.now(),
            &Entry::new(
                actor,
                crate::audit::action::FIELD_INTEGRITY_ERROR,
                Outcome::Failure,
            )
            .target(audit_target(patient_id))
            .detail(place.clone()),
        )?;
    }
    Ok(())
}
