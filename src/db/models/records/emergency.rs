//! Emergency-access grants: a doctor outside the care team opening a record, with a reason.

use diesel::prelude::*;

use crate::db::schema::emergency_grants;
use crate::db::Conn;
use crate::db::LoadOne;

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
