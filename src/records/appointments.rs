//! Appointments: booking one, and the changes a doctor or a patient may make to it. One rule
//! for each, shared by the doctor's record page and the patient's own page.

use super::validate;
use crate::audit::Actor;
use crate::crypto::random_id;
use crate::db::models::records::AppointmentRow;
pub use crate::db::models::records::AppointmentStatus;
use crate::db::Conn;
use crate::fields::StoreError;
use crate::ids::{PatientId, RowId};
use crate::services::Services;

/// The longest reason for a visit, in characters.
pub const REASON_MAX_CHARS: usize = 500;

/// A booking whose fields passed their rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    pub starts_at: i64,
    pub reason: String,
}

use super::FieldProblem;

impl Booking {
    /// The booking for the form's `starts_at` (`2024-03-31T14:30`, UTC) and `reason`, or each
    /// field's problem: the time must be in the future, the reason given and not too long.
    pub fn check(starts_at: &str, reason: &str, now: i64) -> Result<Booking, Vec<FieldProblem>> {
        let starts_at = validate::date_time(starts_at)
            .map_err(str::to_string)
            .and_then(|t| future(t, now));
        let reason = validate::text(reason, REASON_MAX_CHARS, true, "reason");
        match (starts_at, reason) {
            (Ok(starts_at), Ok(reason)) => Ok(Booking { starts_at, reason }),
            (starts_at, reason) => Err([
                starts_at.err().map(|e| ("starts_at", e)),
                reason.err().map(|e| ("reason", e)),
            ]
            .into_iter()
            .flatten()
            .collect()),
        }
    }
}

fn future(at: i64, now: i64) -> Result<i64, String> {
    if at > now {
        Ok(at)
    } else {
        Err("Choose a time in the future.".into())
    }
}

pub const DOCTOR_TAKEN: &str = "The doctor already has an appointment at this time.";

/// Books `patient_id` with `doctor_id`, unless the doctor has another live appointment then;
/// returns the new appointment's id. Audited as a change to the patient's record.
pub fn book(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    doctor_id: &str,
    booking: &Booking,
) -> Result<Result<String, &'static str>, StoreError> {
    let now = app.now();
    let id = random_id(app.id_length());
    conn.write_transaction(|conn| {
        // Sealed under the lock, after catching up: the policy is the database's.
        app.catch_up(conn)?;
        let row = AppointmentRow {
            id: id.clone(),
            patient_id: patient_id.to_string(),
            doctor_id: doctor_id.to_string(),
            starts_at: booking.starts_at,
            reason: app
                .fields
                .row("appointments", RowId(&id), PatientId(patient_id))
                .seal("reason", &booking.reason)?,
            status: AppointmentStatus::Booked.as_str().into(),
            created_at: now,
            updated_at: now,
        };
        if AppointmentRow::doctor_is_booked(doctor_id, booking.starts_at, "", conn)? {
            return Ok(Err(DOCTOR_TAKEN));
        }
        AppointmentRow::insert(&row, conn)?;
        super::changed(
            app,
            conn,
            actor,
            patient_id,
            format!("appointment {id} booked"),
        )?;
        Ok(Ok(id))
    })
}

/// Who asks for a change: a doctor of the patient's care team, or the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    Doctor,
    Patient,
}

/// A change to an appointment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Reschedule(i64),
    Cancel,
    Complete,
}

impl Change {
    /// The change a doctor's form asks for: `reschedule` (to `starts_at`), `cancel` or `done`.
    /// `Err(None)`: not a change medvault knows; `Err(Some(problem))`: a time that will not do.
    pub fn parse(word: &str, starts_at: Option<&str>, now: i64) -> Result<Change, Option<String>> {
        match word {
            "reschedule" => validate::date_time(starts_at.unwrap_or_default())
                .map_err(|e| Some(e.to_string()))
                .and_then(|t| future(t, now).map_err(Some))
                .map(Change::Reschedule),
            "cancel" => Ok(Change::Cancel),
            "done" => Ok(Change::Complete),
            _ => Err(None),
        }
    }

    /// The word the audit trail and the form use for it.
    pub fn word(self) -> &'static str {
        match self {
            Change::Reschedule(_) => "reschedule",
            Change::Cancel => "cancel",
            Change::Complete => "done",
        }
    }
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// The appointment is cancelled or done: nothing changes it any more.
    Over(String),
    /// A patient may only cancel a live appointment that is still ahead.
    NotCancellableByPatient,
    /// The doctor has another live appointment at the new time.
    DoctorTaken,
}

impl ChangeRefusal {
    pub fn message(&self) -> String {
        match self {
            ChangeRefusal::Over(status) => format!("This appointment is {status} already."),
            ChangeRefusal::NotCancellableByPatient => {
                "This appointment can no longer be cancelled.".into()
            }
            ChangeRefusal::DoctorTaken => DOCTOR_TAKEN.into(),
        }
    }
}

/// The rule for every change, whoever asks: an appointment that is over stays over; a patient
/// may only cancel, and only a live appointment that has not started; a doctor may move,
/// cancel or complete any live one.
pub fn may_change(
    row: &AppointmentRow,
    change: Change,
    by: Requester,
    now: i64,
) -> Result<(), ChangeRefusal> {
    let live = row.status().is_some_and(AppointmentStatus::is_live);
    match by {
        Requester::Patient if change != Change::Cancel || !live || row.starts_at <= now => {
            Err(ChangeRefusal::NotCancellableByPatient)
        }
        Requester::Doctor if !live => Err(ChangeRefusal::Over(row.status.clone())),
        _ => Ok(()),
    }
}

/// Whether the patient's page offers to cancel this appointment.
pub fn patient_may_cancel(row: &AppointmentRow, now: i64) -> bool {
    may_change(row, Change::Cancel, Requester::Patient, now).is_ok()
}

/// Makes `change` to the patient's appointment `appointment_id` in one transaction, audited;
/// `None` when the patient has no such appointment (someone else's id is simply not found).
pub fn change(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    appointment_id: &str,
    change: Change,
    by: Requester,
) -> diesel::QueryResult<Option<Result<(), ChangeRefusal>>> {
    conn.write_transaction(|conn| {
        let Some(row) = AppointmentRow::find(patient_id, appointment_id, conn)? else {
            return Ok(None);
        };
        let now = app.now();
        if let Err(refusal) = may_change(&row, change, by, now) {
            return Ok(Some(Err(refusal)));
        }
        match change {
            Change::Reschedule(at) => {
                if AppointmentRow::doctor_is_booked(&row.doctor_id, at, &row.id, conn)? {
                    return Ok(Some(Err(ChangeRefusal::DoctorTaken)));
                }
                AppointmentRow::set_time(&row, at, now, conn)?;
            }
            Change::Cancel => {
                AppointmentRow::set_status(&row, AppointmentStatus::Cancelled, now, conn)?
            }
            Change::Complete => {
                AppointmentRow::set_status(&row, AppointmentStatus::Done, now, conn)?
            }
        }
        let what = match by {
            Requester::Patient => format!("appointment {} cancelled by the patient", row.id),
            Requester::Doctor => format!("appointment {} {}", row.id, change.word()),
        };
        super::changed(app, conn, actor, patient_id, what)?;
        Ok(Some(Ok(())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn row(status: AppointmentStatus, starts_at: i64) -> AppointmentRow {
        AppointmentRow {
            id: "a".into(),
            patient_id: "p".into(),
            doctor_id: "d".into(),
            starts_at,
            reason: String::new(),
            status: status.as_str().into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_patient_cancels_only_a_live_appointment_still_ahead() {
        let ahead = NOW + 3600;
        for status in AppointmentStatus::ALL {
            assert_eq!(
                patient_may_cancel(&row(status, ahead), NOW),
                status.is_live(),
                "{status:?}"
            );
        }
        assert!(!patient_may_cancel(
            &row(AppointmentStatus::Booked, NOW),
            NOW
        ));
        assert!(!patient_may_cancel(
            &row(AppointmentStatus::Changed, NOW - 1),
            NOW
        ));
        // A patient's only change is cancelling.
        for change in [Change::Complete, Change::Reschedule(ahead + 60)] {
            assert_eq!(
                may_change(
                    &row(AppointmentStatus::Booked, ahead),
                    change,
                    Requester::Patient,
                    NOW
                ),
                Err(ChangeRefusal::NotCancellableByPatient)
            );
        }
    }

    #[test]
    fn a_doctor_changes_any_live_appointment_and_none_that_is_over() {
        for change in [
            Change::Cancel,
            Change::Complete,
            Change::Reschedule(NOW + 60),
        ] {
            for status in AppointmentStatus::ALL {
                // Past or ahead: a doctor completes yesterday's visit.
                for starts_at in [NOW - 3600, NOW + 3600] {
                    let decided =
                        may_change(&row(status, starts_at), change, Requester::Doctor, NOW);
                    if status.is_live() {
                        assert_eq!(decided, Ok(()));
                    } else {
                        assert_eq!(decided, Err(ChangeRefusal::Over(status.as_str().into())));
                    }
                }
            }
        }
        let unknown = AppointmentRow {
            status: "lost".into(),
            ..row(AppointmentStatus::Booked, NOW + 60)
        };
        assert!(may_change(&unknown, Change::Cancel, Requester::Doctor, NOW).is_err());
    }

    #[test]
    fn a_booking_is_in_the_future_with_a_reason_of_at_most_500_characters() {
        let at = "2027-03-31T14:30";
        let ok = Booking::check(at, "  Check-up ", NOW).expect("a good booking");
        assert_eq!(ok.reason, "Check-up");
        let problems = |starts_at: &str, reason: &str| {
            Booking::check(starts_at, reason, NOW)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|(field, _)| field)
                .collect::<Vec<_>>()
        };
        assert_eq!(problems("2020-01-01T10:00", "x"), ["starts_at"]);
        assert_eq!(problems("tomorrow", "x"), ["starts_at"]);
        assert_eq!(problems(at, " "), ["reason"]);
        assert_eq!(problems(at, &"é".repeat(500)), Vec::<&str>::new());
        assert_eq!(problems(at, &"é".repeat(501)), ["reason"]);
        assert_eq!(problems("", ""), ["starts_at", "reason"]);
    }

    #[test]
    fn a_change_is_one_of_three_and_a_new_time_is_ahead() {
        assert_eq!(Change::parse("cancel", None, NOW), Ok(Change::Cancel));
        assert_eq!(Change::parse("done", None, NOW), Ok(Change::Complete));
        assert!(matches!(
            Change::parse("reschedule", Some("2027-03-31T14:30"), NOW),
            Ok(Change::Reschedule(_))
        ));
        assert!(matches!(
            Change::parse("reschedule", Some("2020-03-31T14:30"), NOW),
            Err(Some(_))
        ));
        assert_eq!(Change::parse("delete", None, NOW), Err(None));
        for change in [Change::Cancel, Change::Complete, Change::Reschedule(0)] {
            let at = Some("2027-03-31T14:30");
            let parsed = Change::parse(change.word(), at, NOW).expect("its own word");
            assert_eq!(parsed.word(), change.word());
        }
    }
}
