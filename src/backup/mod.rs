//! Backups of the database: consistent online copies (SQLite's backup API, or `pg_dump` on
//! PostgreSQL, see [`postgres`]) with a manifest beside each, checked before anything is
//! restored or listed, and restored without a restart.
//!
//! Names of backups come only from the listing of `database/backups/`: a name that is not a
//! regular file there, matching `medvault-<UTC timestamp>[-n].sqlite` (or `.pgdump`), does
//! not exist for us.
//! The root key lives in `secrets/`, outside `database/`, so no backup can hold it.

mod check;
mod create;
pub mod lock;
mod postgres;
pub mod priority;
pub mod requests;
pub(crate) mod restore;
pub mod schedule;
mod upgrade;
mod upload;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::services::Services;

pub use check::{our_schema_version, KeyCheck};
pub use create::create_backup;
use create::create_backup_while_held;
pub use restore::restore_backup;
pub use upload::{accept_upload, upload_path};

/// Why a backup was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// An admin (or the command line) asked for it.
    Manual,
    /// The schedule made it.
    Scheduled,
    /// Made automatically just before a restore replaced the data.
    BeforeRestore,
    /// Uploaded, and checked here before it was listed.
    Uploaded,
}

/// What sits beside every backup as `<name>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The latest migration applied to the copy.
    pub schema_version: String,
    /// The key check value of each root key version the copy was written under (never a key).
    pub key_checks: Vec<KeyCheck>,
    pub app_version: String,
    pub author: String,
    pub created_at: i64,
    pub origin: Origin,
    /// The copy passed its checks before it was listed: SQLite's `integrity_check`, or on
    /// PostgreSQL a restore into a scratch database checked there.
    pub integrity_checked: bool,
    /// Rows per table, as the check counted them (PostgreSQL backups); a restore counts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<BTreeMap<String, i64>>,
}

/// One listed backup, as the page and the command line show it.
#[derive(Clone, Debug, Serialize)]
pub struct BackupInfo {
    pub name: String,
    pub size: u64,
    pub created_at: i64,
    pub author: String,
    pub origin: Option<Origin>,
    /// A manifest is there, was checked when the backup was made or uploaded, and names this
    /// size; the SHA-256 itself is checked at restore.
    pub verified: bool,
    pub manifest: Option<Manifest>,
}

/// A refusal or failure of a backup action, worded for the admin who asked.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The name is not one the listing holds (malformed, a path, a symlink, absent).
    #[error("there is no backup named {0:?}")]
    UnknownName(String),
    /// The backup failed a check; the text names the check.
    #[error("{0}")]
    Refused(String),
    /// The disk or the database failed us.
    #[error("{0}")]
    Failed(String),
    /// Another backup or restore is under way in this server.
    #[error("another backup or restore is under way; try again when it has finished")]
    Busy,
    /// A backup of the other kind of database than this server's (a SQLite file on
    /// PostgreSQL, or the other way round).
    #[error(
        "this backup is of another kind of database than this server runs on: moving between \
         SQLite and PostgreSQL is not done by a restore"
    )]
    OtherDatabase,
}

impl From<diesel::result::Error> for BackupError {
    fn from(e: diesel::result::Error) -> Self {
        BackupError::failed("database", e)
    }
}

impl BackupError {
    pub fn failed(context: &str, err: impl std::fmt::Display) -> BackupError {
        BackupError::Failed(format!("{context}: {err}"))
    }
}

const PREFIX: &str = "medvault-";

/// What a backup is a copy of, by its name's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A copy of the SQLite file: `.sqlite`.
    Sqlite,
    /// `pg_dump`'s custom format: `.pgdump`.
    Postgres,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

    fn suffix(self) -> &'static str {
        match self {
            Kind::Sqlite => ".sqlite",
            Kind::Postgres => ".pgdump",
        }
    }

    /// The kind of backup `app`'s database makes and restores.
    pub fn of(app: &Services) -> Kind {
        match app.db.sqlite_file() {
            Some(_) => Kind::Sqlite,
            None => Kind::Postgres,
        }
    }

    fn of_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| name.ends_with(k.suffix()))
    }
}

/// Whether `name` has the shape of a backup's name: `medvault-YYYYMMDDTHHMMSSZ[-n].sqlite` (or
/// `.pgdump`). Nothing else (no separator, no `..`, no NUL) can pass.
pub fn is_backup_name(name: &str) -> bool {
    let Some(stem) = Kind::of_name(name).and_then(|kind| {
        name.strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(kind.suffix()))
    }) else {
        return false;
    };
    let (stamp, counter) = match stem.split_once('-') {
        Some((stamp, counter)) => (stamp, Some(counter)),
        None => (stem, None),
    };
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    let counter_ok =
        counter.is_none_or(|c| (1..=4).contains(&c.len()) && c.bytes().all(|d| d.is_ascii_digit()));
    stamp_ok && counter_ok
}

/// `medvault-20270115T083000Z` for `at` (seconds since the epoch, UTC).
fn stem_for(at: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| "19700101T000000Z".into());
    format!("{PREFIX}{stamp}")
}

/// A free name for a backup of `kind` made at `at`; two in the same second get `-2`, `-3`, ...
fn free_name(dir: &Path, at: i64, kind: Kind) -> Result<String, BackupError> {
    let stem = stem_for(at);
    let suffix = kind.suffix();
    for n in 1..10_000 {
        let name = if n == 1 {
            format!("{stem}{suffix}")
        } else {
            format!("{stem}-{n}{suffix}")
        };
        let taken = [dir.join(&name), manifest_path(&dir.join(&name))]
            .iter()
            .any(|p| fs::symlink_metadata(p).is_ok());
        if !taken {
            return Ok(name);
        }
    }
    Err(BackupError::Failed("too many backups in one second".into()))
}

pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

fn read_manifest(backup: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(manifest_path(backup)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every backup in the folder of the kind this server's database makes, newest first. Only
/// regular files (never symlinks) whose names have the backup shape are listed.
pub fn list(app: &Services) -> Result<Vec<BackupInfo>, BackupError> {
    let kind = Kind::of(app);
    let mut listed = list_dir(&app.config.backups_dir())?;
    listed.retain(|b| Kind::of_name(&b.name) == Some(kind));
    Ok(listed)
}

pub fn list_dir(dir: &Path) -> Result<Vec<BackupInfo>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::failed("cannot list the backups", e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_backup_name(&name) {
            continue;
        }
        // symlink_metadata: a symlink is not a regular file, so it is never listed.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let manifest = read_manifest(&entry.path());
        let modified = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        found.push(BackupInfo {
            size: meta.len(),
            created_at: manifest.as_ref().map_or(modified, |m| m.created_at),
            author: manifest
                .as_ref()
                .map_or_else(|| "unknown".into(), |m| m.author.clone()),
            origin: manifest.as_ref().map(|m| m.origin),
            verified: manifest
                .as_ref()
                .is_some_and(|m| m.integrity_checked && m.size == meta.len() && m.file == name),
            manifest,
            name,
        });
    }
    found.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
    Ok(found)
}

/// The listed backup called `name`, and its path; anything else is [`BackupError::UnknownName`].
pub fn find(app: &Services, name: &str) -> Result<(BackupInfo, PathBuf), BackupError> {
    let dir = app.config.backups_dir();
    list(app)?
        .into_iter()
        .find(|b| b.name == name)
        .map(|b| {
            let path = dir.join(&b.name);
            (b, path)
        })
        .ok_or_else(|| BackupError::UnknownName(name.to_string()))
}

/// Deletes a listed backup and its manifest.
pub fn delete(app: &Services, name: &str) -> Result<BackupInfo, BackupError> {
    let (info, path) = find(app, name)?;
    fs::remove_file(&path).map_err(|e| BackupError::failed("cannot delete the backup", e))?;
    match fs::remove_file(manifest_path(&path)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BackupError::failed("cannot delete the manifest", e)),
    }
    sync_dir(&app.config.backups_dir());
    Ok(info)
}

/// The hex SHA-256 and size of a file, read in one pass.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Copies `from` to `to` (created new), hashing on the way and syncing `to` to disk.
fn copy_hashing(from: &Path, to: &Path) -> std::io::Result<(String, u64)> {
    let mut src = fs::File::open(from)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The staged copy becomes the live database: the owner's alone.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut dst = options.open(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
        size += n as u64;
    }
    dst.sync_all()?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes `manifest` beside `backup` under a temporary name, syncs it and renames it in place.
/// A new file (truncated if it exists) that only its owner can read, whatever the umask: a
/// backup holds usernames, session addresses and the audit trail.
pub(crate) fn private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write_manifest(backup: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let path = manifest_path(backup);
    let partial = with_suffix(&path, ".partial");
    let text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| BackupError::failed("cannot write the manifest", e))?;
    let write = || -> std::io::Result<()> {
        let mut file = private_file(&partial)?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&partial, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&partial);
        BackupError::failed("cannot write the manifest", e)
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes a rename in `dir` durable. Best effort: not every platform can open a folder.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes what a crash in the middle of a backup, upload or restore left behind: temporary
/// files never carry a backup's name, so they were never listed and nothing refers to them.
pub fn remove_leftovers(app: &Services) {
    let dirs = [app.config.backups_dir(), app.config.database_dir()];
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".medvault-") && is_temporary(&name) {
                tracing::info!(file = %name, "removing a leftover of an interrupted backup or restore");
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn is_temporary(name: &str) -> bool {
    [".partial", ".staging", ".upload"]
        .iter()
        .any(|s| name.ends_with(s) || name.contains(&format!("{s}-")))
}
