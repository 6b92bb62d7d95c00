//! Uploaded files (scans, lab results): the row; the bytes live in private storage.

use diesel::prelude::*;

use crate::db::schema::medical_files;
use crate::db::Conn;
use crate::db::LoadOne;

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

    pub fn find(
        patient_id: &str,
        id: &str,
        conn: &mut Conn,
    ) -> QueryResult<Option<MedicalFileRow>> {
        medical_files::table
            .filter(medical_files::patient_id.eq(patient_id))
            .filter(medical_files::id.eq(id))
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
