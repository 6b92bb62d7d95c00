//! Vaccination doses.

use diesel::prelude::*;

use crate::db::schema::vaccinations;
use crate::db::Conn;

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
