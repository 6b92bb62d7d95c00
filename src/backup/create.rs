//! Making a backup: `VACUUM INTO` a temporary name while requests go on (it is one read
//! transaction, so it sees one consistent state and never blocks writers in WAL mode), check the
//! copy, hash it, write the manifest, and only then give the copy its listed name.

use std::fs;

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{
    check, free_name, manifest_path, sha256_file, sync_dir, with_suffix, write_manifest,
    BackupError, BackupInfo, Manifest, Origin,
};
use crate::app::App;

/// Makes a backup of the live database now; `author` is who asked (a username, or "schedule").
pub fn create_backup(app: &App, author: &str, origin: Origin) -> Result<BackupInfo, BackupError> {
    let dir = app.config.backups_dir();
    fs::create_dir_all(&dir)
        .map_err(|e| BackupError::failed("cannot create the backup folder", e))?;
    let now = app.now();
    let name = free_name(&dir, now)?;
    let path = dir.join(&name);
    // The dot and the suffix keep the copy out of the listing until it is whole and checked.
    let partial = dir.join(format!(".{name}.partial"));
    let result = write_copy(app, &partial).and_then(|()| {
        let (schema_version, key_checks) =
            check::check_copy(&partial, &app.keys, check::Depth::Quick)
                .map_err(|e| BackupError::Failed(format!("the new copy failed its check: {e}")))?;
        let (sha256, size) =
            sha256_file(&partial).map_err(|e| BackupError::failed("cannot read the copy", e))?;
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
            origin,
            integrity_checked: true,
        };
        // The manifest first: a crash between the two renames leaves a manifest without a
        // backup (ignored), never a listed backup without its manifest.
        write_manifest(&path, &manifest)?;
        fs::rename(&partial, &path).map_err(|e| {
            let _ = fs::remove_file(manifest_path(&path));
            BackupError::failed("cannot name the backup", e)
        })?;
        sync_dir(&dir);
        Ok(BackupInfo {
            name: name.clone(),
            size,
            created_at: now,
            author: author.into(),
            origin: Some(origin),
            verified: true,
            manifest: Some(manifest),
        })
    });
    if result.is_err() {
        for leftover in [
            partial.clone(),
            with_suffix(&partial, "-journal"),
            with_suffix(&partial, "-wal"),
            with_suffix(&partial, "-shm"),
        ] {
            let _ = fs::remove_file(leftover);
        }
    }
    if let Ok(info) = &result {
        tracing::info!(backup = %info.name, size = info.size, "backup made");
    }
    result
}

/// `VACUUM INTO` the temporary file on a pooled connection, then sync it to disk.
fn write_copy(app: &App, partial: &std::path::Path) -> Result<(), BackupError> {
    let target = partial
        .to_str()
        .ok_or_else(|| BackupError::Failed("the backup folder's path is not UTF-8".into()))?
        .to_string();
    let mut conn = app
        .db
        .conn()
        .map_err(|e| BackupError::failed("cannot reach the database", e))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(&target)
        .execute(&mut *conn)
        .map_err(|e| BackupError::failed("cannot copy the database", e))?;
    drop(conn);
    fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::failed("cannot sync the copy", e))
}
