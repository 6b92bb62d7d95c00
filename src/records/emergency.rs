//! Emergency access: a doctor opens a record outside their care for a while, with a written
//! reason. The grant is audited, its reason kept sealed, and the patient sees both.

use crate::audit::{action, Actor};
use crate::crypto::random_id;
use crate::db::models::records::EmergencyGrant;
use crate::db::Conn;
use crate::fields::StoreError;
use crate::ids::{DoctorId, PatientId, RowId};
use crate::services::Services;

/// The shortest and longest reason, in characters: long enough to say why, short enough to read.
const REASON_MIN_CHARS: usize = 15;
const REASON_MAX_CHARS: usize = 500;

/// The reason as typed, trimmed, or what is wrong with it.
pub fn check_reason(text: &str) -> Result<String, &'static str> {
    let reason = text.trim();
    match reason.chars().count() {
        n if n < REASON_MIN_CHARS => {
            Err("Write why you need this record now, in at least 15 characters.")
        }
        n if n > REASON_MAX_CHARS => Err("The reason has at most 500 characters."),
        _ => Ok(reason.to_string()),
    }
}

/// Grants `doctor` access to `patient`'s record for `lifetime` seconds, for `reason` (checked by
/// [`check_reason`]); returns the grant's id.
pub fn grant(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    doctor: DoctorId<'_>,
    patient: PatientId<'_>,
    reason: &str,
    lifetime: i64,
) -> Result<String, StoreError> {
    let now = app.now();
    let id = random_id(app.id_length());
    conn.write_transaction(|conn| {
        // Sealed under the lock, after catching up: the policy is the database's.
        app.catch_up(conn)?;
        let sealed = app
            .fields
            .row("emergency_grants", RowId(&id), patient)
            .seal("reason", reason)?;
        EmergencyGrant::insert(
            &EmergencyGrant {
                id: id.clone(),
                doctor_id: doctor.as_str().to_string(),
                patient_id: patient.as_str().to_string(),
                reason: sealed,
                granted_at: now,
                expires_at: now + lifetime,
            },
            conn,
        )?;
        super::audit(
            app,
            conn,
            actor,
            action::RECORD_EMERGENCY_ACCESS,
            patient.as_str(),
            format!("grant {id}, {lifetime} s; reason kept sealed"),
        )?;
        Ok(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_has_15_to_500_characters_after_trimming() {
        assert!(check_reason("  too short    ").is_err());
        assert_eq!(
            check_reason("  Unconscious in A&E now  ").unwrap(),
            "Unconscious in A&E now"
        );
        assert!(check_reason(&"é".repeat(15)).is_ok());
        assert!(check_reason(&"é".repeat(500)).is_ok());
        assert!(check_reason(&"é".repeat(501)).is_err());
    }
}
