//! Accepting an uploaded backup: the same checks as a restore before it is ever listed.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    check, free_name, manifest_path, sha256_file, sync_dir, with_suffix, write_manifest,
    BackupError, BackupInfo, Kind, Manifest, Origin,
};
use crate::crypto::constant_time_eq;
use crate::db::Location;
use crate::services::Services;

/// Where an upload waits while it is checked: in the backups folder (so the final rename stays
/// on one file system), under a name the listing never shows.
pub fn upload_path(app: &Services) -> PathBuf {
    app.config.backups_dir().join(format!(
        ".medvault-{}-{}.upload",
        app.now(),
        crate::crypto::random_token()
    ))
}

/// Checks the uploaded file at `received` (integrity, schema, key check values and, when a
/// manifest came with it, its SHA-256), writes a manifest marked as uploaded and lists it.
/// `received` is removed whatever happens.
pub fn accept_upload(
    app: &Services,
    received: &Path,
    sent_manifest: Option<&str>,
    author: &str,
) -> Result<BackupInfo, BackupError> {
    let result = accept(app, received, sent_manifest, author);
    for leftover in ["", "-journal", "-wal", "-shm"] {
        let _ = fs::remove_file(with_suffix(received, leftover));
    }
    result
}

fn accept(
    app: &Services,
    received: &Path,
    sent_manifest: Option<&str>,
    author: &str,
) -> Result<BackupInfo, BackupError> {
    if let Some(text) = sent_manifest.filter(|t| !t.trim().is_empty()) {
        let sent: Manifest = serde_json::from_str(text).map_err(|_| {
            BackupError::Refused("the manifest sent with the backup cannot be read".into())
        })?;
        let (sha, _) =
            sha256_file(received).map_err(|e| BackupError::failed("cannot read the upload", e))?;
        if !constant_time_eq(sha.as_bytes(), sent.sha256.as_bytes()) {
            return Err(BackupError::Refused(
                "the backup's SHA-256 does not match the manifest sent with it".into(),
            ));
        }
    }
    let kind = Kind::of(app);
    let (schema_version, key_checks, row_counts) = match app.db.location() {
        Location::Postgres(url) => {
            let found = super::postgres::check_file(app, url, received)?;
            (
                found.schema_version,
                found.key_checks,
                Some(found.row_counts),
            )
        }
        Location::SqliteFile(_) => {
            let (version, keys) = check::check_copy(received, &app.keys(), check::Depth::Full)?;
            (version, keys, None)
        }
    };
    // Hashed after the check: opening it may have folded a WAL into the file.
    let (sha256, size) =
        sha256_file(received).map_err(|e| BackupError::failed("cannot read the upload", e))?;
    let dir = app.config.backups_dir();
    let now = app.now();
    let name = free_name(&dir, now, kind)?;
    let path = dir.join(&name);
    let manifest = Manifest {
        format: 1,
        file: name.clone(),
        sha256,
        size,
        schema_version,
        key_checks,
        app_version: env!("CARGO_PKG_VERSION").into(),
        author: author.into(),
        created_at: now,
        origin: Origin::Uploaded,
        integrity_checked: true,
        row_counts,
    };
    fs::File::open(received)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::failed("cannot sync the upload", e))?;
    write_manifest(&path, &manifest)?;
    fs::rename(received, &path).map_err(|e| {
        let _ = fs::remove_file(manifest_path(&path));
        BackupError::failed("cannot name the upload", e)
    })?;
    sync_dir(&dir);
    Ok(BackupInfo {
        name,
        size,
        created_at: now,
        author: author.into(),
        origin: Some(Origin::Uploaded),
        verified: true,
        manifest: Some(manifest),
    })
}
