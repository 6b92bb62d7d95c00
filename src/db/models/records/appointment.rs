//! Appointments and where each stands.

use diesel::prelude::*;

use crate::db::schema::appointments;
use crate::db::Conn;
use crate::db::LoadOne;

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
