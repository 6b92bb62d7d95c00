//! The medical record's rows as stored: every personal or clinical `String` here is a stored
//! form (sealed or `plain:`) that only `fields` opens. Queries take the connection last.

use crate::ids::{DoctorId, PatientId, UserId};
use diesel::prelude::*;

use crate::db::LoadOne;

use crate::db::schema::{
    appointments, care_assignments, consultations, emergency_grants, field_visibility,
    medical_files, patients, users, vaccinations,
};
use crate::db::Conn;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    pub user_id: String,
    pub national_id: String,
    pub national_id_index: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: String,
    pub gender: String,
    pub blood_type: String,
    pub phone: String,
    pub email: String,
    pub address: String,
    pub postal_code: String,
    pub height_cm: String,
    pub weight_kg: String,
    pub allergies: String,
    pub updated_at: i64,
}

/// A column of the patient profile, in the order pages show it. Everything that lists the
/// profile (the form, the row, the masking table, the encryption registry's checks) derives from
/// this list, and every `match` on it is exhaustive: a new field that one of them does not
/// handle is a compile error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileColumn {
    NationalId,
    FirstName,
    LastName,
    DateOfBirth,
    Gender,
    BloodType,
    Phone,
    Email,
    Address,
    PostalCode,
    HeightCm,
    WeightKg,
    Allergies,
}

impl ProfileColumn {
    pub const ALL: [ProfileColumn; 13] = [
        ProfileColumn::NationalId,
        ProfileColumn::FirstName,
        ProfileColumn::LastName,
        ProfileColumn::DateOfBirth,
        ProfileColumn::Gender,
        ProfileColumn::BloodType,
        ProfileColumn::Phone,
        ProfileColumn::Email,
        ProfileColumn::Address,
        ProfileColumn::PostalCode,
        ProfileColumn::HeightCm,
        ProfileColumn::WeightKg,
        ProfileColumn::Allergies,
    ];

    /// The column names (which are also the form's field names), in the same order.
    pub const NAMES: [&'static str; 13] = {
        let mut names = [""; 13];
        let mut i = 0;
        while i < names.len() {
            names[i] = ProfileColumn::ALL[i].name();
            i += 1;
        }
        names
    };

    pub const fn name(self) -> &'static str {
        match self {
            ProfileColumn::NationalId => "national_id",
            ProfileColumn::FirstName => "first_name",
            ProfileColumn::LastName => "last_name",
            ProfileColumn::DateOfBirth => "date_of_birth",
            ProfileColumn::Gender => "gender",
            ProfileColumn::BloodType => "blood_type",
            ProfileColumn::Phone => "phone",
            ProfileColumn::Email => "email",
            ProfileColumn::Address => "address",
            ProfileColumn::PostalCode => "postal_code",
            ProfileColumn::HeightCm => "height_cm",
            ProfileColumn::WeightKg => "weight_kg",
            ProfileColumn::Allergies => "allergies",
        }
    }

    /// What pages and the encryption page call this column.
    pub const fn title(self) -> &'static str {
        match self {
            ProfileColumn::NationalId => "National ID",
            ProfileColumn::FirstName => "First name",
            ProfileColumn::LastName => "Last name",
            ProfileColumn::DateOfBirth => "Date of birth",
            ProfileColumn::Gender => "Gender",
            ProfileColumn::BloodType => "Blood type",
            ProfileColumn::Phone => "Phone",
            ProfileColumn::Email => "Email",
            ProfileColumn::Address => "Address",
            ProfileColumn::PostalCode => "Postal code",
            ProfileColumn::HeightCm => "Height (cm)",
            ProfileColumn::WeightKg => "Weight (kg)",
            ProfileColumn::Allergies => "Allergies",
        }
    }

    pub fn parse(name: &str) -> Option<ProfileColumn> {
        ProfileColumn::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The stored form of this column in `row`.
    pub fn stored(self, row: &PatientRow) -> &str {
        match self {
            ProfileColumn::NationalId => &row.national_id,
            ProfileColumn::FirstName => &row.first_name,
            ProfileColumn::LastName => &row.last_name,
            ProfileColumn::DateOfBirth => &row.date_of_birth,
            ProfileColumn::Gender => &row.gender,
            ProfileColumn::BloodType => &row.blood_type,
            ProfileColumn::Phone => &row.phone,
            ProfileColumn::Email => &row.email,
            ProfileColumn::Address => &row.address,
            ProfileColumn::PostalCode => &row.postal_code,
            ProfileColumn::HeightCm => &row.height_cm,
            ProfileColumn::WeightKg => &row.weight_kg,
            ProfileColumn::Allergies => &row.allergies,
        }
    }

    /// Puts `stored` (already in its stored form) in this column of `row`.
    pub fn store(self, row: &mut PatientRow, stored: String) {
        let slot = match self {
            ProfileColumn::NationalId => &mut row.national_id,
            ProfileColumn::FirstName => &mut row.first_name,
            ProfileColumn::LastName => &mut row.last_name,
            ProfileColumn::DateOfBirth => &mut row.date_of_birth,
            ProfileColumn::Gender => &mut row.gender,
            ProfileColumn::BloodType => &mut row.blood_type,
            ProfileColumn::Phone => &mut row.phone,
            ProfileColumn::Email => &mut row.email,
            ProfileColumn::Address => &mut row.address,
            ProfileColumn::PostalCode => &mut row.postal_code,
            ProfileColumn::HeightCm => &mut row.height_cm,
            ProfileColumn::WeightKg => &mut row.weight_kg,
            ProfileColumn::Allergies => &mut row.allergies,
        };
        *slot = stored;
    }
}

impl PatientRow {
    /// A profile with nothing in it yet, for a patient registered now.
    pub fn empty(user_id: &str) -> PatientRow {
        PatientRow {
            user_id: user_id.to_string(),
            national_id: String::new(),
            national_id_index: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            date_of_birth: String::new(),
            gender: String::new(),
            blood_type: String::new(),
            phone: String::new(),
            email: String::new(),
            address: String::new(),
            postal_code: String::new(),
            height_cm: String::new(),
            weight_kg: String::new(),
            allergies: String::new(),
            updated_at: 0,
        }
    }

    pub fn find(user_id: &str, conn: &mut Conn) -> QueryResult<Option<PatientRow>> {
        patients::table
            .find(user_id)
            .select(PatientRow::as_select())
            .load_one(conn)
    }

    pub fn find_by_national_id_index(
        indexes: &[String],
        conn: &mut Conn,
    ) -> QueryResult<Vec<PatientRow>> {
        patients::table
            .filter(patients::national_id_index.eq_any(indexes))
            .select(PatientRow::as_select())
            .load(conn)
    }

    /// Inserts the profile, or replaces every column but its creation.
    pub fn save(row: &PatientRow, conn: &mut Conn) -> QueryResult<()> {
        crate::db::per_backend!(conn, |inner| diesel::insert_into(patients::table)
            .values(row)
            .on_conflict(patients::user_id)
            .do_update()
            .set((
                patients::national_id.eq(&row.national_id),
                patients::national_id_index.eq(&row.national_id_index),
                patients::first_name.eq(&row.first_name),
                patients::last_name.eq(&row.last_name),
                patients::date_of_birth.eq(&row.date_of_birth),
                patients::gender.eq(&row.gender),
                patients::blood_type.eq(&row.blood_type),
                patients::phone.eq(&row.phone),
                patients::email.eq(&row.email),
                patients::address.eq(&row.address),
                patients::postal_code.eq(&row.postal_code),
                patients::height_cm.eq(&row.height_cm),
                patients::weight_kg.eq(&row.weight_kg),
                patients::allergies.eq(&row.allergies),
                patients::updated_at.eq(row.updated_at),
            ))
            .execute(inner))
        .map(|_| ())
    }
}

/// A patient account and its profile, if one was filled in.
pub type PatientListing = (crate::db::models::User, Option<PatientRow>);

/// Which doctor treats which patient.
pub struct CareTeam;

impl CareTeam {
    /// Puts `patient` in `doctor`'s care, as decided by `by`; false if they already were.
    pub fn assign(
        doctor: DoctorId<'_>,
        patient: PatientId<'_>,
        by: UserId<'_>,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<bool> {
        crate::db::per_backend!(conn, |inner| diesel::insert_into(care_assignments::table)
            .values((
                care_assignments::doctor_id.eq(doctor.as_str()),
                care_assignments::patient_id.eq(patient.as_str()),
                care_assignments::assigned_by.eq(by.as_str()),
                care_assignments::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(inner))
        .map(|n| n > 0)
    }

    pub fn unassign(
        doctor: DoctorId<'_>,
        patient: PatientId<'_>,
        conn: &mut Conn,
    ) -> QueryResult<bool> {
        diesel::delete(care_assignments::table.find((doctor.as_str(), patient.as_str())))
            .execute(conn)
            .map(|n| n > 0)
    }

    pub fn is_assigned(
        doctor: DoctorId<'_>,
        patient: PatientId<'_>,
        conn: &mut Conn,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            care_assignments::table.find((doctor.as_str(), patient.as_str())),
        ))
        .get_result(conn)
    }

    /// Every (doctor id, patient id) pair.
    pub fn all(conn: &mut Conn) -> QueryResult<Vec<(String, String)>> {
        care_assignments::table
            .select((care_assignments::doctor_id, care_assignments::patient_id))
            .order((care_assignments::doctor_id, care_assignments::patient_id))
            .load(conn)
    }

    /// The patients in `doctor_id`'s care, with their profiles.
    pub fn patients_of(doctor_id: &str, conn: &mut Conn) -> QueryResult<Vec<PatientListing>> {
        let ids = care_assignments::table
            .filter(care_assignments::doctor_id.eq(doctor_id))
            .select(care_assignments::patient_id);
        let accounts: Vec<crate::db::models::User> = users::table
            .filter(users::id.eq_any(ids))
            .select(crate::db::models::User::as_select())
            .load(conn)?;
        let ids: Vec<&str> = accounts.iter().map(|u| u.id.as_str()).collect();
        let mut profiles: std::collections::HashMap<String, PatientRow> = patients::table
            .filter(patients::user_id.eq_any(&ids))
            .select(PatientRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|p| (p.user_id.clone(), p))
            .collect();
        Ok(accounts
            .into_iter()
            .map(|u| {
                let profile = profiles.remove(&u.id);
                (u, profile)
            })
            .collect())
    }

    /// The doctors treating `patient_id`.
    pub fn doctors_of(
        patient_id: &str,
        conn: &mut Conn,
    ) -> QueryResult<Vec<crate::db::models::User>> {
        let ids = care_assignments::table
            .filter(care_assignments::patient_id.eq(patient_id))
            .select(care_assignments::doctor_id);
        users::table
            .filter(users::id.eq_any(ids))
            .filter(users::active.eq(true))
            .order(users::username.asc())
            .select(crate::db::models::User::as_select())
            .load(conn)
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = emergency_grants)]
pub struct EmergencyGrant {
    pub id: String,
    pub doctor_id: String,
    pub patient_id: String,
    pub reason: String,
    pub granted_at: i64,
    pub expires_at: i64,
}

impl EmergencyGrant {
    pub fn insert(grant: &EmergencyGrant, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(emergency_grants::table)
            .values(grant)
            .execute(conn)
            .map(|_| ())
    }

    /// The grant of `doctor_id` to `patient_id` that is still running at `now`, if any.
    pub fn active(
        doctor_id: &str,
        patient_id: &str,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<Option<EmergencyGrant>> {
        emergency_grants::table
            .filter(emergency_grants::doctor_id.eq(doctor_id))
            .filter(emergency_grants::patient_id.eq(patient_id))
            .filter(emergency_grants::expires_at.gt(now))
            .order(emergency_grants::expires_at.desc())
            .select(EmergencyGrant::as_select())
            .load_one(conn)
    }

    pub fn for_patient(patient_id: &str, conn: &mut Conn) -> QueryResult<Vec<EmergencyGrant>> {
        emergency_grants::table
            .filter(emergency_grants::patient_id.eq(patient_id))
            .order(emergency_grants::granted_at.desc())
            .select(EmergencyGrant::as_select())
            .load(conn)
    }
}

/// The text fields of a consultation, in the order the form shows them. Each is also the name of
/// its form field and of its (encryptable) column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsultationText {
    Department,
    Block,
    Unit,
    Diagnosis,
    Notes,
    Prescription,
}

impl ConsultationText {
    pub const ALL: [ConsultationText; 6] = [
        ConsultationText::Department,
        ConsultationText::Block,
        ConsultationText::Unit,
        ConsultationText::Diagnosis,
        ConsultationText::Notes,
        ConsultationText::Prescription,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ConsultationText::Department => "department",
            ConsultationText::Block => "block",
            ConsultationText::Unit => "unit",
            ConsultationText::Diagnosis => "diagnosis",
            ConsultationText::Notes => "notes",
            ConsultationText::Prescription => "prescription",
        }
    }

    /// What pages and the encryption page call this field.
    pub const fn title(self) -> &'static str {
        match self {
            ConsultationText::Department => "Department",
            ConsultationText::Block => "Block",
            ConsultationText::Unit => "Unit",
            ConsultationText::Diagnosis => "Diagnosis",
            ConsultationText::Notes => "Notes",
            ConsultationText::Prescription => "Prescription",
        }
    }

    /// The stored (maybe sealed) form of this field in `row`.
    pub fn stored(self, row: &ConsultationRow) -> &str {
        match self {
            ConsultationText::Department => &row.department,
            ConsultationText::Block => &row.block,
            ConsultationText::Unit => &row.unit,
            ConsultationText::Diagnosis => &row.diagnosis,
            ConsultationText::Notes => &row.notes,
            ConsultationText::Prescription => &row.prescription,
        }
    }

    pub fn store(self, row: &mut ConsultationRow, stored: String) {
        let slot = match self {
            ConsultationText::Department => &mut row.department,
            ConsultationText::Block => &mut row.block,
            ConsultationText::Unit => &mut row.unit,
            ConsultationText::Diagnosis => &mut row.diagnosis,
            ConsultationText::Notes => &mut row.notes,
            ConsultationText::Prescription => &mut row.prescription,
        };
        *slot = stored;
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = consultations)]
pub struct ConsultationRow {
    pub id: String,
    pub patient_id: String,
    pub doctor_id: String,
    pub occurred_at: i64,
    pub department: String,
    pub block: String,
    pub unit: String,
    pub diagnosis: String,
    pub notes: String,
    pub prescription: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ConsultationRow {
    pub fn insert(row: &ConsultationRow, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(consultations::table)
            .values(row)
            .execute(conn)
            .map(|_| ())
    }

    /// Replaces the editable columns of the patient's consultation `row.id`.
    pub fn update(row: &ConsultationRow, conn: &mut Conn) -> QueryResult<bool> {
        diesel::update(
            consultations::table
                .find(&row.id)
                .filter(consultations::patient_id.eq(&row.patient_id)),
        )
        .set((
            consultations::occurred_at.eq(row.occurred_at),
            consultations::department.eq(&row.department),
            consultations::block.eq(&row.block),
            consultations::unit.eq(&row.unit),
            consultations::diagnosis.eq(&row.diagnosis),
            consultations::notes.eq(&row.notes),
            consultations::prescription.eq(&row.prescription),
            consultations::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n > 0)
    }

    pub fn find(
        patient_id: &str,
        id: &str,
        conn: &mut Conn,
    ) -> QueryResult<Option<ConsultationRow>> {
        consultations::table
            .find(id)
            .filter(consultations::patient_id.eq(patient_id))
            .select(ConsultationRow::as_select())
            .load_one(conn)
    }

    pub fn for_patient(patient_id: &str, conn: &mut Conn) -> QueryResult<Vec<ConsultationRow>> {
        consultations::table
            .filter(consultations::patient_id.eq(patient_id))
            .order(consultations::occurred_at.desc())
            .select(ConsultationRow::as_select())
            .load(conn)
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = medical_files)]
pub struct MedicalFileRow {
    pub id: String,
    pub patient_id: String,
    pub uploaded_by: String,
    pub category: String,
    pub description: String,
    pub taken_on: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub file_key: String,
    pub created_at: i64,
}

impl MedicalFileRow {
    pub fn insert(row: &MedicalFileRow, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(medical_files::table)
            .values(row)
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(id: &str, conn: &mut Conn) -> QueryResult<Option<MedicalFileRow>> {
        medical_files::table
            .find(id)
            .select(MedicalFileRow::as_select())
            .load_one(conn)
    }

    pub fn for_patient(patient_id: &str, conn: &mut Conn) -> QueryResult<Vec<MedicalFileRow>> {
        medical_files::table
            .filter(medical_files::patient_id.eq(patient_id))
            .order(medical_files::created_at.desc())
            .select(MedicalFileRow::as_select())
            .load(conn)
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = vaccinations)]
pub struct VaccinationRow {
    pub id: String,
    pub patient_id: String,
    pub recorded_by: String,
    pub vaccine: String,
    pub dose_number: String,
    pub given_on: String,
    pub lot: String,
    pub given_by: String,
    pub created_at: i64,
}

impl VaccinationRow {
    pub fn insert(row: &VaccinationRow, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(vaccinations::table)
            .values(row)
            .execute(conn)
            .map(|_| ())
    }

    pub fn for_patient(patient_id: &str, conn: &mut Conn) -> QueryResult<Vec<VaccinationRow>> {
        vaccinations::table
            .filter(vaccinations::patient_id.eq(patient_id))
            .order(vaccinations::created_at.asc())
            .select(VaccinationRow::as_select())
            .load(conn)
    }
}

/// Where an appointment stands, stored as its lower-case name. Booked and changed (moved) ones
/// are live; cancelled and done ones are over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppointmentStatus {
    Booked,
    Changed,
    Cancelled,
    Done,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 4] = [
        AppointmentStatus::Booked,
        AppointmentStatus::Changed,
        AppointmentStatus::Cancelled,
        AppointmentStatus::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Changed => "changed",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<AppointmentStatus> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    pub fn is_live(self) -> bool {
        matches!(self, AppointmentStatus::Booked | AppointmentStatus::Changed)
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = appointments)]
pub struct AppointmentRow {
    pub id: String,
    pub patient_id: String,
    pub doctor_id: String,
    pub starts_at: i64,
    pub reason: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AppointmentRow {
    /// Its status; a text medvault never writes reads as none, and so as not live.
    pub fn status(&self) -> Option<AppointmentStatus> {
        AppointmentStatus::parse(&self.status)
    }

    pub fn insert(row: &AppointmentRow, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(appointments::table)
            .values(row)
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(
        patient_id: &str,
        id: &str,
        conn: &mut Conn,
    ) -> QueryResult<Option<AppointmentRow>> {
        appointments::table
            .find(id)
            .filter(appointments::patient_id.eq(patient_id))
            .select(AppointmentRow::as_select())
            .load_one(conn)
    }

    /// Moves the patient's appointment `row.id`. (Filtered by the patient too, like every
    /// query of the record: a database sharded by patient finds it on one shard.)
    pub fn set_time(
        row: &AppointmentRow,
        starts_at: i64,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<()> {
        diesel::update(
            appointments::table
                .find(&row.id)
                .filter(appointments::patient_id.eq(&row.patient_id)),
        )
        .set((
            appointments::starts_at.eq(starts_at),
            appointments::status.eq(AppointmentStatus::Changed.as_str()),
            appointments::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
    }

    pub fn set_status(
        row: &AppointmentRow,
        status: AppointmentStatus,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<()> {
        diesel::update(
            appointments::table
                .find(&row.id)
                .filter(appointments::patient_id.eq(&row.patient_id)),
        )
        .set((
            appointments::status.eq(status.as_str()),
            appointments::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
    }

    pub fn for_patient(patient_id: &str, conn: &mut Conn) -> QueryResult<Vec<AppointmentRow>> {
        appointments::table
            .filter(appointments::patient_id.eq(patient_id))
            .order(appointments::starts_at.desc())
            .select(AppointmentRow::as_select())
            .load(conn)
    }

    /// Whether `doctor_id` has another live appointment at exactly `starts_at`.
    pub fn doctor_is_booked(
        doctor_id: &str,
        starts_at: i64,
        except_id: &str,
        conn: &mut Conn,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            appointments::table
                .filter(appointments::doctor_id.eq(doctor_id))
                .filter(appointments::starts_at.eq(starts_at))
                .filter(appointments::id.ne(except_id))
                .filter(appointments::status.ne_all([
                    AppointmentStatus::Cancelled.as_str(),
                    AppointmentStatus::Done.as_str(),
                ])),
        ))
        .get_result(conn)
    }
}

/// The admin's choices of how profile fields are shown, as (field, level, mode).
pub struct FieldVisibilityRows;

impl FieldVisibilityRows {
    pub fn all(conn: &mut Conn) -> QueryResult<Vec<(String, String, String)>> {
        field_visibility::table
            .select((
                field_visibility::field,
                field_visibility::level,
                field_visibility::mode,
            ))
            .load(conn)
    }

    pub fn replace_all(rows: &[(String, String, String)], conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(field_visibility::table).execute(conn)?;
        for (field, level, mode) in rows {
            diesel::insert_into(field_visibility::table)
                .values((
                    field_visibility::field.eq(field),
                    field_visibility::level.eq(level),
                    field_visibility::mode.eq(mode),
                ))
                .execute(conn)?;
        }
        Ok(())
    }
}

/// Whether `user_id` appears in any clinical row, as patient or as author.
pub fn names_in_records(user_id: &str, conn: &mut Conn) -> QueryResult<bool> {
    use diesel::dsl::exists;
    let checks = [
        diesel::select(exists(patients::table.find(user_id))).get_result(conn)?,
        diesel::select(exists(
            consultations::table.filter(
                consultations::patient_id
                    .eq(user_id)
                    .or(consultations::doctor_id.eq(user_id)),
            ),
        ))
        .get_result(conn)?,
        diesel::select(exists(
            medical_files::table.filter(
                medical_files::patient_id
                    .eq(user_id)
                    .or(medical_files::uploaded_by.eq(user_id)),
            ),
        ))
        .get_result(conn)?,
        diesel::select(exists(
            vaccinations::table.filter(
                vaccinations::patient_id
                    .eq(user_id)
                    .or(vaccinations::recorded_by.eq(user_id)),
            ),
        ))
        .get_result(conn)?,
        diesel::select(exists(
            appointments::table.filter(
                appointments::patient_id
                    .eq(user_id)
                    .or(appointments::doctor_id.eq(user_id)),
            ),
        ))
        .get_result(conn)?,
        diesel::select(exists(
            emergency_grants::table.filter(
                emergency_grants::patient_id
                    .eq(user_id)
                    .or(emergency_grants::doctor_id.eq(user_id)),
            ),
        ))
        .get_result(conn)?,
    ];
    Ok(checks.into_iter().any(|c| c))
}
