//! The checks a copy of the database passes before it is listed or restored: SQLite's own
//! integrity check, a schema this server knows, and key check values equal to the running key's.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;
use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::crypto::{constant_time_eq, KeyRing, Purpose};
use crate::db::models::key_check;
use crate::db::{Conn, SQLITE_MIGRATIONS};
use crate::state_seal::StateSeal;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheck {
    pub version: i32,
    pub check_value: String,
}

#[derive(QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    version: String,
}

/// The latest migration this build knows.
pub fn our_schema_version() -> String {
    MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .ok()
        .into_iter()
        .flatten()
        .map(|m| m.name().version().to_string())
        .max()
        .unwrap_or_default()
}

/// Opens a copy (never the live file) for checking. Switching it out of WAL makes it one
/// self-contained file that can be hashed, renamed and opened anywhere.
pub(super) fn open_copy(path: &Path) -> Result<Conn, BackupError> {
    let url = path
        .to_str()
        .ok_or_else(|| BackupError::Failed("the backup folder's path is not UTF-8".into()))?;
    let mut conn = SqliteConnection::establish(url).map_err(|e| {
        BackupError::Refused(format!("the file cannot be opened as a database: {e}"))
    })?;
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = DELETE;")
        .map_err(|_| not_a_database())?;
    Ok(Conn::Sqlite(conn))
}

fn not_a_database() -> BackupError {
    BackupError::Refused(
        "the file is not a readable SQLite database (it is corrupt or not a backup)".into(),
    )
}

/// How thoroughly a copy is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Depth {
    /// `integrity_check`: pages, records and every index against its table. Before a restore
    /// and for an upload, which come from outside or from the past.
    Full,
    /// `quick_check`: pages and records, not index consistency, about five times faster. For a
    /// copy SQLite itself has just written; it gets the full check before it is ever restored.
    Quick,
}

/// `PRAGMA integrity_check` (or `quick_check`) must answer exactly `ok`.
pub(super) fn integrity(conn: &mut Conn, depth: Depth) -> Result<(), BackupError> {
    let sql = match depth {
        Depth::Full => "SELECT integrity_check FROM pragma_integrity_check()",
        Depth::Quick => "SELECT quick_check AS integrity_check FROM pragma_quick_check()",
    };
    let rows: Vec<IntegrityRow> = diesel::sql_query(sql)
        .load(conn)
        .map_err(|_| not_a_database())?;
    match rows.as_slice() {
        [row] if row.integrity_check == "ok" => Ok(()),
        rows => Err(BackupError::Refused(format!(
            "the database's integrity check failed: {}",
            rows.iter()
                .take(3)
                .map(|r| r.integrity_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// The latest migration applied to the copy; refused when it is newer than this build's.
pub(super) fn schema(conn: &mut Conn) -> Result<String, BackupError> {
    let rows: Vec<VersionRow> = diesel::sql_query(
        "SELECT CAST(version AS TEXT) AS version FROM __diesel_schema_migrations \
         ORDER BY version DESC LIMIT 1",
    )
    .load(conn)
    .map_err(|_| {
        BackupError::Refused("the file is a SQLite database but not a medvault one".into())
    })?;
    let Some(theirs) = rows.into_iter().next().map(|r| r.version) else {
        return Err(BackupError::Refused(
            "the file is a SQLite database but not a medvault one".into(),
        ));
    };
    let ours = our_schema_version();
    if theirs > ours {
        return Err(BackupError::Refused(format!(
            "the backup's schema ({theirs}) is newer than this server's ({ours}): upgrade medvault first"
        )));
    }
    Ok(theirs)
}

/// The copy's whole schema must be what medvault's own migrations produce at `version`: a
/// trigger, view, index or table of anyone else's would run or be read as medvault's.
pub(super) fn exact_shape(conn: &mut Conn, version: &str) -> Result<(), BackupError> {
    crate::db::shape::require_exact(conn, version).map_err(|difference| {
        BackupError::Refused(format!(
            "the backup's schema is not medvault's: {difference}"
        ))
    })
}

/// The copy's admin state must match its seal. A copy from before seals existed has none to
/// check: it is sealed when a restore migrates it (see `restore::stage`).
pub(super) fn sealed_state(
    conn: &mut Conn,
    version: &str,
    running: &KeyRing,
) -> Result<(), BackupError> {
    if version < crate::state_seal::SEAL_MIGRATION {
        return Ok(());
    }
    let seal = StateSeal::new(running.purpose_key(Purpose::StateSeal));
    match seal.verify(conn) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(tampered)) => Err(BackupError::Refused(format!(
            "the backup's settings were changed outside medvault: {tampered}"
        ))),
        Err(_) => Err(BackupError::Refused(
            "the backup's settings cannot be read".into(),
        )),
    }
}

/// Brings an older copy's schema up to this build's (on a staging copy only).
pub(super) fn migrate(conn: &mut Conn) -> Result<(), BackupError> {
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| BackupError::Refused(format!("the backup's schema cannot be migrated: {e}")))
}

/// The copy's key check values, each equal to the running key's for that version.
pub(super) fn keys(conn: &mut Conn, running: &KeyRing) -> Result<Vec<KeyCheck>, BackupError> {
    let recorded = key_check::all(conn).map_err(|_| {
        BackupError::Refused("the backup has no key check values: it is not a medvault one".into())
    })?;
    if recorded.is_empty() {
        return Err(BackupError::Refused(
            "the backup has no key check values: it is not a medvault one".into(),
        ));
    }
    for (version, value) in &recorded {
        match running.key_check_value(*version as u32) {
            Some(ours) if constant_time_eq(ours.as_bytes(), value.as_bytes()) => {}
            Some(_) => {
                return Err(BackupError::Refused(format!(
                    "the backup was written under another root key (key check value of version \
                     {version} differs): it comes from another installation"
                )))
            }
            None => {
                return Err(BackupError::Refused(format!(
                    "the backup was written under root key version {version}, which this \
                     server's key provider does not hold"
                )))
            }
        }
    }
    Ok(recorded
        .into_iter()
        .map(|(version, check_value)| KeyCheck {
            version,
            check_value,
        })
        .collect())
}

/// Every check a copy must pass before it is listed: integrity, schema version and its exact
/// shape, keys.
pub(super) fn check_copy(
    path: &Path,
    running: &KeyRing,
    depth: Depth,
) -> Result<(String, Vec<KeyCheck>), BackupError> {
    check_open_copy(&mut open_copy(path)?, running, depth, Shape::Exact)
}

/// Whether [`check_open_copy`] holds the copy's schema to medvault's exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    Exact,
    /// For the safety copy a restore takes of whatever state it replaces, which may be the very
    /// damage being undone; it is held to the exact shape if it is ever restored.
    AsFound,
}

/// [`check_copy`] on a copy [`open_copy`] has opened; it only reads.
pub(super) fn check_open_copy(
    conn: &mut Conn,
    running: &KeyRing,
    depth: Depth,
    shape: Shape,
) -> Result<(String, Vec<KeyCheck>), BackupError> {
    integrity(conn, depth)?;
    let schema_version = schema(conn)?;
    let key_checks = keys(conn, running)?;
    if shape == Shape::Exact {
        exact_shape(conn, &schema_version)?;
        sealed_state(conn, &schema_version, running)?;
    }
    Ok((schema_version, key_checks))
}
