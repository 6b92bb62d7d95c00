//! The medical record's rows as stored: every personal or clinical `String` here is a stored
//! form (sealed or `plain:`) that only `fields` opens. Queries take the connection last.
//!
//! One file per table; this module gathers them so that callers name `records::X`.

mod appointment;
mod care;
mod consultation;
mod emergency;
mod field_visibility;
mod medical_file;
mod patient;
mod vaccination;

pub use appointment::{AppointmentRow, AppointmentStatus};
pub use care::{CareTeam, PatientListing};
pub use consultation::{ConsultationRow, ConsultationText};
pub use emergency::EmergencyGrant;
pub use field_visibility::FieldVisibilityRows;
pub use medical_file::MedicalFileRow;
pub use patient::{PatientRow, ProfileColumn};
pub use vaccination::VaccinationRow;

use diesel::prelude::*;

use crate::db::schema::{
    appointments, consultations, emergency_grants, medical_files, patients, vaccinations,
};
use crate::db::Conn;

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
