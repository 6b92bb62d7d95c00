//! Making a backup: copy the live database page by page under one read transaction to a
//! temporary name while requests go on (in WAL mode the transaction sees one consistent state
//! and never blocks writers), check the copy, hash it, write the manifest, and only then give
//! the copy its listed name.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;

use super::check::KeyCheck;
use super::{
    check, free_name, manifest_path, private_file, sha256_file, sync_dir, with_suffix,
    write_manifest, BackupError, BackupInfo, Kind, Manifest, Origin,
};
use crate::db::Location;
use crate::services::Services;

/// Makes a backup of the live database now; `author` is who asked (a username, or "schedule").
/// One backup or restore at a time: while another runs, [`BackupError::Busy`].
pub fn create_backup(
    app: &Services,
    author: &str,
    origin: Origin,
) -> Result<BackupInfo, BackupError> {
    let _one_at_a_time = app.backup_work.start().ok_or(BackupError::Busy)?;
    create_backup_while_held(app, author, origin)
}

/// [`create_backup`] for a caller that already holds `app.backup_work` (a restore's safety copy).
pub(super) fn create_backup_while_held(
    app: &Services,
    author: &str,
    origin: Origin,
) -> Result<BackupInfo, BackupError> {
    if let Location::Postgres(url) = app.db.location() {
        return super::postgres::create(app, url, author, origin);
    }
    let dir = app.config.backups_dir();
    fs::create_dir_all(&dir)
        .map_err(|e| BackupError::failed("cannot create the backup folder", e))?;
    let now = app.now();
    let name = free_name(&dir, now, Kind::Sqlite)?;
    let path = dir.join(&name);
    // The dot and the suffix keep the copy out of the listing until it is whole and checked.
    // A random part too: a `medvault backup` in another process may pick the same name.
    let partial = dir.join(format!(
        ".{name}.{}.partial",
        &crate::crypto::random_token()[..12]
    ));
    // How long each stage took, for the log line: operators see where a slow backup waits.
    let mut stages = Stages::default();
    let started = Instant::now();
    let result = write_copy(app, &partial).and_then(|copy| {
        stages.copy = started.elapsed();
        let shape = match origin {
            Origin::BeforeRestore => check::Shape::AsFound,
            _ => check::Shape::Exact,
        };
        let (checked, hashed) = check_and_hash(app, &partial, shape, &mut stages)?;
        let (schema_version, key_checks) = checked
            .map_err(|e| BackupError::Failed(format!("the new copy failed its check: {e}")))?;
        let (sha256, size) = hashed.map_err(|e| BackupError::failed("cannot read the copy", e))?;
        let synced = Instant::now();
        copy.sync_data()
            .map_err(|e| BackupError::failed("cannot sync the copy", e))?;
        stages.sync = synced.elapsed();
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
            row_counts: None,
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
        tracing::info!(
            backup = %info.name,
            size = info.size,
            copy_ms = stages.copy.as_millis() as u64,
            check_ms = stages.check.as_millis() as u64,
            hash_ms = stages.hash.as_millis() as u64,
            sync_ms = stages.sync.as_millis() as u64,
            "backup made"
        );
    }
    result
}

/// How long the stages of one backup took.
#[derive(Default)]
struct Stages {
    copy: Duration,
    check: Duration,
    hash: Duration,
    sync: Duration,
}

/// Pages copied per step: 4 MiB of 4 KiB pages. The disk writes that in some 10 ms, and a
/// page's own commit that has to wait behind it waits no longer than that.
const PAGES_PER_STEP: i32 = 1024;

/// Steps the copy may run ahead of its syncs. A thread of its own syncs the copy after every
/// step while the next steps are copied, so the copying and the disk work at once; but never
/// more than this many steps behind, so the kernel never holds more than some 20 MiB of it
/// dirty: a whole database's worth of dirty pages would be written back all at once and stall
/// the live database's own small syncs meanwhile.
const STEPS_AHEAD_OF_SYNC: usize = 4;

/// Copies the live database into `partial`, syncing it as it goes; returns the file, for the
/// last sync once it is checked.
fn write_copy(app: &Services, partial: &Path) -> Result<fs::File, BackupError> {
    // An empty file is a new database to SQLite; opening it here gives the handle to sync.
    let file =
        private_file(partial).map_err(|e| BackupError::failed("cannot create the copy", e))?;
    // A restore waits for connections in use before it swaps the live file; this one counts.
    let _in_use = app
        .db
        .conn()
        .map_err(|e| BackupError::failed("cannot reach the database", e))?;
    std::thread::scope(|scope| {
        let (steps_done, steps) = std::sync::mpsc::sync_channel::<()>(STEPS_AHEAD_OF_SYNC - 1);
        let syncer = scope.spawn(|| {
            for () in steps {
                file.sync_data()?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut step_began = Instant::now();
        // A failed send means the syncer stopped on an error, which its join reports.
        let copied = copy_pages(
            app.db.sqlite_file().ok_or(BackupError::OtherDatabase)?,
            partial,
            PAGES_PER_STEP,
            || {
                let _ = steps_done.send(());
                let pause =
                    pause_after_step(step_began.elapsed(), app.db.connections_in_use_by_others());
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                step_began = Instant::now();
                Ok(())
            },
        );
        drop(steps_done);
        let synced = syncer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
        copied?;
        synced.map_err(|e| BackupError::failed("cannot sync the copy", e))
    })?;
    Ok(file)
}

/// The longest a backup pauses between two steps: under steady traffic it still advances.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// How long the copy waits after a step that took `step_took`, when `others_in_use`
/// connections are handed out to the pages. A step writes as fast as the disk takes it, and
/// at full load that disk work and the kernel's share of it (not lowered by nice) doubled the
/// pages' p99 (BENCHMARKS.md). So while pages are being served the copy waits as long as its
/// last step took and runs at half speed; an idle server's backup never waits.
fn pause_after_step(step_took: Duration, others_in_use: usize) -> Duration {
    if others_in_use == 0 {
        Duration::ZERO
    } else {
        step_took.min(LONGEST_PAUSE)
    }
}

type Checked = Result<(String, Vec<KeyCheck>), BackupError>;

/// Checks the copy and hashes it at once, on two threads: the two together take as long as the
/// check alone. The copy is opened for the check first, because that rewrites its header (out
/// of WAL) and the hash must be of the final bytes; after that the check only reads.
fn check_and_hash(
    app: &Services,
    partial: &Path,
    shape: check::Shape,
    stages: &mut Stages,
) -> Result<(Checked, std::io::Result<(String, u64)>), BackupError> {
    let started = Instant::now();
    let mut conn = check::open_copy(partial)
        .map_err(|e| BackupError::Failed(format!("the new copy failed its check: {e}")))?;
    Ok(std::thread::scope(|scope| {
        let hasher = scope.spawn(|| {
            let hashed = sha256_file(partial);
            (hashed, started.elapsed())
        });
        let checked = check::check_open_copy(&mut conn, &app.keys(), check::Depth::Quick, shape);
        stages.check = started.elapsed();
        let hashed = match hasher.join() {
            Ok((hashed, took)) => {
                stages.hash = took;
                hashed
            }
            Err(_) => Err(std::io::Error::other("the hashing thread panicked")),
        };
        (checked, hashed)
    }))
}

/// Copies `source` into the new database `copy` page by page with SQLite's online backup API,
/// calling `between_steps` after every step but the last. Unlike `VACUUM INTO` it does not
/// rebuild the copy's indexes, so it runs at the speed of the disk.
///
/// The copy runs inside one read transaction on its own connection. In WAL mode that is a
/// snapshot: writers go on, and the copy is of one moment. Without it SQLite would restart the
/// copy after every write by another connection, and every page view writes an audit event.
fn copy_pages(
    source: &Path,
    copy: &Path,
    pages_per_step: i32,
    mut between_steps: impl FnMut() -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    let failed = |e: rusqlite::Error| BackupError::failed("cannot copy the database", e);
    let source = Connection::open(source).map_err(failed)?;
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(failed)?;
    source.execute_batch("BEGIN DEFERRED").map_err(failed)?;
    // A deferred transaction takes its snapshot at its first read.
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(failed)?;
    let mut copy = Connection::open(copy).map_err(failed)?;
    // The copy is a new file nobody else reads; the caller syncs it and checks it before it is
    // listed, so SQLite's own journal and syncs would only slow it down.
    copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(failed)?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(failed)?;
        let mut busy_waits = 0;
        loop {
            match backup.step(pages_per_step).map_err(failed)? {
                StepResult::Done => break,
                StepResult::More => between_steps()?,
                // Only the copy could be busy or locked, and nothing else opens it; the source
                // is read under the snapshot taken above. Wait a moment all the same, a while.
                _ if busy_waits < 500 => {
                    busy_waits += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return Err(BackupError::Failed("the copy stayed locked".into())),
            }
        }
    }
    drop(copy);
    source.execute_batch("COMMIT").map_err(failed)?;
    // While the snapshot was held, SQLite could not move the frames written since into the
    // database file, and the WAL grew by every page view's audit event. The next commit that
    // finds the WAL long would copy them back and sync, holding up the page views queued behind
    // it; done here, the backup's thread pays for it. PASSIVE never waits for writers.
    source
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &Path) -> i64 {
        Connection::open(path)
            .and_then(|c| c.query_row("SELECT count(*) FROM note", [], |r| r.get(0)))
            .expect("counted")
    }

    /// A live database in WAL mode with one table of notes, and a connection that writes it.
    fn live_database_of_notes(dir: &Path) -> (std::path::PathBuf, Connection) {
        let live = dir.join("live.sqlite");
        let writer = Connection::open(&live).expect("opened");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);",
            )
            .expect("schema");
        (live, writer)
    }

    /// A write by another connection than the copy's, as a page view's audit event is.
    fn add_note(writer: &Connection, body: &str) -> Result<(), BackupError> {
        writer
            .execute("INSERT INTO note (body) VALUES (?1)", [body])
            .map(|_| ())
            .map_err(|e| BackupError::failed("write", e))
    }

    #[test]
    fn a_backup_gives_way_to_pages_in_use_and_never_waits_on_an_idle_server() {
        let step = Duration::from_millis(40);
        assert_eq!(pause_after_step(step, 0), Duration::ZERO);
        assert_eq!(pause_after_step(step, 1), step);
        assert_eq!(pause_after_step(step, 7), step);
        assert_eq!(
            pause_after_step(Duration::from_secs(30), 3),
            LONGEST_PAUSE,
            "a slow step under traffic still leaves the backup moving"
        );
    }

    #[test]
    fn a_copy_in_small_steps_finishes_under_writes_and_holds_the_moment_it_began() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (live, writer) = live_database_of_notes(dir.path());
        for _ in 0..200 {
            writer
                .execute("INSERT INTO note (body) VALUES (?1)", ["x".repeat(1000)])
                .expect("row");
        }
        let copy = dir.path().join("copy.sqlite");
        let mut steps = 0;
        // One page per step and a write by another connection after every step: without its
        // snapshot the copy would start over after each one and never end.
        copy_pages(&live, &copy, 1, || {
            steps += 1;
            if steps > 1_000 {
                return Err(BackupError::Failed("the copy keeps starting over".into()));
            }
            add_note(&writer, "later")
        })
        .expect("the copy finished");
        assert!(steps > 50, "the copy took {steps} steps, not one per page");
        assert_eq!(
            rows(&copy),
            200,
            "the copy holds the rows of the moment it began"
        );
        assert_eq!(rows(&live), 200 + steps, "the writes went on meanwhile");
    }

    #[test]
    fn the_writes_made_during_a_copy_are_checkpointed_into_the_database_file_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (live, writer) = live_database_of_notes(dir.path());
        let mut written = 0;
        copy_pages(&live, &dir.path().join("copy.sqlite"), 1, || {
            written += 1;
            add_note(&writer, "during")
        })
        .expect("the copy finished");
        assert!(written > 0, "the copy took more than one step");
        // The database file alone, without its WAL: what a checkpoint has moved into it.
        let file_alone = dir.path().join("file-alone.sqlite");
        fs::copy(&live, &file_alone).expect("copied");
        assert_eq!(
            rows(&file_alone),
            written,
            "the rows written behind the copy's snapshot are in the database file, not left in \
             the WAL for the next page's commit to move"
        );
    }
}
