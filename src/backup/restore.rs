//! Restoring a backup without a restart. Every check runs on a staging copy next to the live
//! file; the current state is backed up; then the staged file is renamed over the live one while
//! no connection is in use (rename is atomic, so a crash leaves the old database or the new).

use std::fs;

use super::{
    check, copy_hashing, create_backup_while_held, find, sync_dir, with_suffix, BackupError,
    BackupInfo, Origin,
};
use crate::crypto::constant_time_eq;
use crate::db::Location;
use crate::services::Services;

/// What a restore did: the backup put in place and the backup of the state it replaced.
#[derive(Debug)]
pub struct Restored {
    pub restored: BackupInfo,
    pub safety_backup: String,
}

/// Checks the listed backup `name`, backs up the current state, and swaps the backup in.
pub fn restore_backup(app: &Services, name: &str, author: &str) -> Result<Restored, BackupError> {
    let _one_at_a_time = app.backup_work.start().ok_or(BackupError::Busy)?;
    let (info, path) = find(app, name)?;
    let Some(manifest) = info.manifest.clone() else {
        return Err(BackupError::Refused(
            "the backup has no manifest, so its SHA-256 cannot be checked: upload it through \
             the page, which checks it and writes one"
                .into(),
        ));
    };
    if let Location::Postgres(url) = app.db.location() {
        let safety_backup = super::postgres::restore(app, url, &path, &manifest, author)?;
        return reloaded(app, info, safety_backup);
    }
    let live = app
        .db
        .sqlite_file()
        .ok_or(BackupError::OtherDatabase)?
        .to_path_buf();
    let dir = live
        .parent()
        .map(|p| p.to_path_buf())
        .ok_or_else(|| BackupError::Failed("the database file has no folder".into()))?;
    // Next to the live file, so that the final rename stays on one file system.
    let staging = dir.join(format!(
        ".medvault-restore-{}-{}.staging",
        app.now(),
        &crate::crypto::random_token()[..12]
    ));
    let _ = fs::remove_file(&staging);
    let result = stage(app, &path, &staging, &manifest.sha256).and_then(|()| {
        let safety = create_backup_while_held(app, author, Origin::BeforeRestore)?;
        app.db
            .replace_file(|live| {
                fs::rename(&staging, live)
                    .map_err(|e| format!("cannot put the backup in place: {e}"))?;
                sync_dir(&dir);
                Ok(())
            })
            .map_err(|e| BackupError::Failed(format!("the swap failed, nothing changed: {e}")))?;
        Ok(safety.name)
    });
    for leftover in [
        staging.clone(),
        with_suffix(&staging, "-journal"),
        with_suffix(&staging, "-wal"),
        with_suffix(&staging, "-shm"),
    ] {
        let _ = fs::remove_file(leftover);
    }
    reloaded(app, info, result?)
}

/// After the restored rows are in place: this server's in-memory state loaded from them.
fn reloaded(
    app: &Services,
    info: BackupInfo,
    safety_backup: String,
) -> Result<Restored, BackupError> {
    app.reload_from_database()
        .map_err(|e| BackupError::Failed(format!("the backup is in place, but {e}")))?;
    tracing::info!(backup = %info.name, safety = %safety_backup, "backup restored");
    Ok(Restored {
        restored: info,
        safety_backup,
    })
}

/// Copies the backup to `staging` and runs every check on that copy (the bytes that will be
/// used are the bytes that were hashed): SHA-256, integrity, schema (migrating an older one),
/// key check values. The staged file ends self-contained (no WAL) and synced.
fn stage(
    app: &Services,
    backup: &std::path::Path,
    staging: &std::path::Path,
    expected_sha: &str,
) -> Result<(), BackupError> {
    let (sha, _) = copy_hashing(backup, staging)
        .map_err(|e| BackupError::failed("cannot copy the backup", e))?;
    if !constant_time_eq(sha.as_bytes(), expected_sha.as_bytes()) {
        return Err(BackupError::Refused(
            "the backup's SHA-256 does not match its manifest: the file was changed or damaged"
                .into(),
        ));
    }
    let mut conn = check::open_copy(staging)?;
    check::integrity(&mut conn, check::Depth::Full)?;
    let version = check::schema(&mut conn)?;
    check::exact_shape(&mut conn, &version)?;
    check::keys(&mut conn, &app.keys())?;
    check::sealed_state(&mut conn, &version, &app.keys())?;
    check::migrate(&mut conn)?;
    super::upgrade::bring_up_to_date(app, &mut conn, &version)?;
    drop(conn);
    fs::File::open(staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::failed("cannot sync the staged copy", e))
}
