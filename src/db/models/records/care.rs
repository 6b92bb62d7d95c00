//! Which doctor treats which patient.

use diesel::prelude::*;

use super::PatientRow;
use crate::db::schema::{care_assignments, patients, users};
use crate::db::Conn;
use crate::ids::{DoctorId, PatientId, UserId};

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
