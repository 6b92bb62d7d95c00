//! Bringing a backup's copy of the database up to this server's state, as a start would: shared
//! by the SQLite restore (`restore`) and PostgreSQL's (`postgres`), which sit side by side.

use super::BackupError;
use crate::db::models::key_check;
use crate::services::Services;

/// What a start would do to a migrated copy of `version`: seal a state from before seals as
/// found, give key versions added since the backup their check values, and seal the result.
pub(super) fn bring_up_to_date(
    app: &Services,
    conn: &mut crate::db::Conn,
    version: &str,
) -> Result<(), BackupError> {
    if version < crate::state_seal::SEAL_MIGRATION {
        // A backup from before seals: its state is sealed as found, as an upgrade would.
        app.audit
            .seal_unsealed_head(conn)
            .map_err(|e| BackupError::failed("staging", e))?;
    }
    // Versions added to the key file since the backup was made get their check value, as a
    // start would add them.
    let recorded = key_check::all(conn).map_err(|e| BackupError::failed("staging", e))?;
    for version in app.keys().root_versions() {
        if !recorded.iter().any(|(v, _)| *v as u32 == version) {
            if let Some(kcv) = app.keys().key_check_value(version) {
                key_check::insert(version as i32, &kcv, app.now(), conn)
                    .map_err(|e| BackupError::failed("staging", e))?;
            }
        }
    }
    app.state_seal
        .reseal(app.now(), conn)
        .map_err(|e| BackupError::failed("staging", e))
}
