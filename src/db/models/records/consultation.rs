//! Consultations and the list of their text fields.

use diesel::prelude::*;

use crate::db::schema::consultations;
use crate::db::Conn;
use crate::db::LoadOne;

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
