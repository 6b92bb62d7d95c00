//! Backups on PostgreSQL. A backup is `pg_dump`'s custom format, of one snapshot of the
//! database while the pages go on. It is checked by restoring it into a scratch database of
//! its own (`pg_restore`), which medvault then checks as it checks a SQLite copy: the schema
//! exactly medvault's, key check values equal to the running key's, the admin state matching
//! its seal; and its row counts are recorded in the manifest. A restore does the same with the
//! backup it is given, migrates the scratch database to this build's schema, then replaces
//! every table's rows in the live database inside one write transaction: the other servers'
//! requests wait on the tables' locks for that moment and then see the restored rows, never a
//! mix, and each reloads the restored settings by the seal's MAC, as after any change.
//!
//! The role in `database_url` needs `CREATEDB` for the scratch databases. `pg_dump` and
//! `pg_restore` are taken from `PATH`, or the newest `/usr/lib/postgresql/*/bin` (Debian's);
//! the password goes to them in `PGPASSWORD`, never on a command line others can read.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_migrations::MigrationHarness;

use super::{
    check, free_name, manifest_path, sha256_file, sync_dir, write_manifest, BackupError,
    BackupInfo, KeyCheck, Kind, Manifest, Origin,
};
use crate::crypto::{constant_time_eq, KeyRing};
use crate::db::{Conn, POSTGRES_MIGRATIONS};
use crate::services::Services;

/// Makes a backup of the live PostgreSQL database at `url`: `pg_dump` to a temporary name,
/// restored into a scratch database and checked there, hashed, the manifest written, then
/// given its listed name. The safety backup a restore takes first is kept even if the state it
/// copies fails a check (that state may be the very damage being undone); it is listed as not
/// verified, and checked in full if it is ever restored.
pub(super) fn create(
    app: &Services,
    url: &str,
    author: &str,
    origin: Origin,
) -> Result<BackupInfo, BackupError> {
    let dir = app.config.backups_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| BackupError::failed("cannot create the backup folder", e))?;
    let now = app.now();
    let name = free_name(&dir, now, Kind::Postgres)?;
    let path = dir.join(&name);
    let partial = dir.join(format!(
        ".{name}.{}.partial",
        &crate::crypto::random_token()[..12]
    ));
    let result = (|| {
        dump(url, &partial)?;
        let checked = check_file(app, url, &partial);
        let (schema_version, key_checks, row_counts, integrity_checked) = match checked {
            Ok(found) => (
                found.schema_version,
                found.key_checks,
                Some(found.row_counts),
                true,
            ),
            Err(e) if origin == Origin::BeforeRestore => {
                tracing::warn!(error = %e, "the state a restore replaces fails its check; kept as not verified");
                (check::our_schema_version(), Vec::new(), None, false)
            }
            Err(e) => {
                return Err(BackupError::Failed(format!(
                    "the new backup failed its check: {e}"
                )))
            }
        };
        let (sha256, size) =
            sha256_file(&partial).map_err(|e| BackupError::failed("cannot read the dump", e))?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| BackupError::failed("cannot sync the dump", e))?;
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
            integrity_checked,
            row_counts,
        };
        write_manifest(&path, &manifest)?;
        std::fs::rename(&partial, &path).map_err(|e| {
            let _ = std::fs::remove_file(manifest_path(&path));
            BackupError::failed("cannot name the backup", e)
        })?;
        sync_dir(&dir);
        Ok(BackupInfo {
            name: name.clone(),
            size,
            created_at: now,
            author: author.into(),
            origin: Some(origin),
            verified: integrity_checked,
            manifest: Some(manifest),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    if let Ok(info) = &result {
        tracing::info!(backup = %info.name, size = info.size, "backup made");
    }
    result
}

/// What a backup file's checks found, for its manifest.
pub(super) struct Checked {
    pub schema_version: String,
    pub key_checks: Vec<KeyCheck>,
    pub row_counts: BTreeMap<String, i64>,
}

/// Every check of a backup file before it is listed: loaded into a scratch database, then
/// checked there.
pub(super) fn check_file(app: &Services, url: &str, file: &Path) -> Result<Checked, BackupError> {
    let scratch = restore_into_scratch(url, file)?;
    let mut conn = scratch.conn()?;
    let row_counts = row_counts(&mut conn)?;
    let (schema_version, key_checks) = check_scratch(&mut conn, &app.keys())?;
    Ok(Checked {
        schema_version,
        key_checks,
        row_counts,
    })
}

/// Restores the listed backup at `file` into the live database at `url`: its SHA-256 against
/// the manifest, loaded into a scratch database whose row counts must be the manifest's and
/// which must pass every check, migrated and brought up to date as a start would; then a
/// safety backup of the live state; then every table's rows replaced in one write transaction.
/// Returns the safety backup's name.
pub(super) fn restore(
    app: &Services,
    url: &str,
    file: &Path,
    manifest: &Manifest,
    author: &str,
) -> Result<String, BackupError> {
    let (sha, _) =
        sha256_file(file).map_err(|e| BackupError::failed("cannot read the backup", e))?;
    if !constant_time_eq(sha.as_bytes(), manifest.sha256.as_bytes()) {
        return Err(BackupError::Refused(
            "the backup's SHA-256 does not match its manifest: the file was changed or damaged"
                .into(),
        ));
    }
    let scratch = restore_into_scratch(url, file)?;
    let mut staged = scratch.conn()?;
    let counts = row_counts(&mut staged)?;
    if let Some(expected) = &manifest.row_counts {
        if let Some((table, n)) = expected.iter().find(|(t, n)| counts.get(*t) != Some(n)) {
            return Err(BackupError::Refused(format!(
                "the backup's {table} holds {} rows where its manifest says {n}",
                counts.get(table).copied().unwrap_or(0)
            )));
        }
    }
    let (version, _) = check_scratch(&mut staged, &app.keys())?;
    super::upgrade::bring_up_to_date(app, &mut staged, &version)?;
    let safety = super::create_backup_while_held(app, author, Origin::BeforeRestore)?;
    let mut live = app
        .db
        .conn()
        .map_err(|e| BackupError::failed("cannot reach the database", e))?;
    drop(staged);
    live.write_transaction(|live| replace_rows(live, &scratch))?;
    Ok(safety.name)
}

/// A PostgreSQL client program: on `PATH`, or the newest of Debian's versioned folders.
fn tool(name: &str) -> PathBuf {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    // Versions sort as numbers: 9 before 15.
    debian.sort_by_key(|p| {
        p.components()
            .filter_map(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
            .next()
            .unwrap_or(0)
    });
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    debian.pop().or(on_path).unwrap_or_else(|| name.into())
}

/// A `postgres://` URL taken apart so that its password can go in the environment.
struct Target {
    without_password: String,
    password: Option<String>,
}

fn target(url: &str) -> Target {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => Target {
                without_password: format!("{scheme}://{user}@{host}{tail}"),
                password: Some(percent_decode(password)),
            },
            None => Target {
                without_password: url.to_string(),
                password: None,
            },
        },
        None => Target {
            without_password: url.to_string(),
            password: None,
        },
    }
}

/// `%40` to `@` and so on, as libpq reads a URL's password.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The same server and credentials, database `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map(|q| &tail[q..]).unwrap_or("");
    format!("{scheme}://{authority}/{name}{query}")
}

fn command(program: &str, url: &str) -> (Command, String) {
    let target = target(url);
    let mut command = Command::new(tool(program));
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    command.env("PGCONNECT_TIMEOUT", "10");
    (command, target.without_password)
}

fn run(mut command: Command, what: &str) -> Result<(), BackupError> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            BackupError::failed(
                &format!("cannot run {what} (install PostgreSQL's client programs)"),
                e,
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // pg_dump names the server, never the password (it has none on its command line).
    let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Err(BackupError::Failed(format!("{what} failed: {first}")))
}

/// `pg_dump` of the live database into `file`, custom format, one snapshot.
pub(super) fn dump(url: &str, file: &Path) -> Result<(), BackupError> {
    // Made here first, the owner's alone: pg_dump truncates an existing file and keeps its mode,
    // where a file of its own would take the umask's (readable by every local account).
    super::private_file(file)
        .map_err(|e| BackupError::failed("cannot create the backup file", e))?;
    let (mut command, url) = command("pg_dump", url);
    command
        .arg("--format=custom")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--file")
        .arg(file)
        .arg("--dbname")
        .arg(url);
    run(command, "pg_dump")
}

/// Whether the file starts as a `pg_dump` custom-format archive does.
pub(super) fn is_dump(file: &Path) -> bool {
    let mut magic = [0u8; 5];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PGDMP")
}

/// A database of a check's own on the live database's server, dropped when it goes.
pub(super) struct Scratch {
    live_url: String,
    name: String,
    url: String,
}

impl Scratch {
    fn create(live_url: &str) -> Result<Scratch, BackupError> {
        let name = format!(
            "medvault_check_{}",
            crate::crypto::random_id(12).to_lowercase()
        );
        let mut live = PgConnection::establish(live_url)
            .map_err(|e| BackupError::failed("cannot reach the database", e))?;
        live.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .map_err(|e| {
                BackupError::Failed(format!(
                    "cannot create a scratch database to check the backup in ({e}): the role \
                     in database_url needs CREATEDB"
                ))
            })?;
        Ok(Scratch {
            url: with_database(live_url, &name),
            live_url: live_url.to_string(),
            name,
        })
    }

    pub(super) fn conn(&self) -> Result<Conn, BackupError> {
        PgConnection::establish(&self.url)
            .map(Conn::Postgres)
            .map_err(|e| BackupError::failed("cannot open the scratch database", e))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.live_url).and_then(|mut live| {
            live.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        });
        if let Err(e) = dropped {
            tracing::warn!(database = %self.name, error = %e, "cannot drop a scratch database; drop it by hand");
        }
    }
}

/// Restores `file` into a new scratch database. Anything `pg_restore` cannot load (a file
/// that is not a dump, a damaged one) is a refusal.
pub(super) fn restore_into_scratch(live_url: &str, file: &Path) -> Result<Scratch, BackupError> {
    if !is_dump(file) {
        return Err(BackupError::Refused(
            "the file is not a PostgreSQL backup (pg_dump's custom format)".into(),
        ));
    }
    let scratch = Scratch::create(live_url)?;
    let (mut command, url) = command("pg_restore", &scratch.url);
    command
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--exit-on-error")
        .arg("--single-transaction")
        .arg("--dbname")
        .arg(url)
        .arg(file);
    run(command, "pg_restore")
        .map_err(|e| BackupError::Refused(format!("the backup cannot be loaded: {e}")))?;
    Ok(scratch)
}

/// Every table of medvault's, parents first (every foreign key points at `users`).
const TABLES: [&str; 24] = [
    "users",
    "sessions",
    "page_access",
    "settings",
    "root_key_checks",
    "audit_events",
    "encryption_policies",
    "encrypted_columns",
    "reencryption_jobs",
    "two_factor",
    "recovery_codes",
    "patients",
    "care_assignments",
    "emergency_grants",
    "consultations",
    "medical_files",
    "vaccinations",
    "appointments",
    "field_visibility",
    "state_seal",
    "account_lockouts",
    "job_leases",
    "wrapped_root_keys",
    "__diesel_schema_migrations",
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows per table, as the manifest records them.
pub(super) fn row_counts(conn: &mut Conn) -> Result<BTreeMap<String, i64>, BackupError> {
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(conn)
            .map_err(|e| BackupError::Refused(format!("the backup's {table} cannot be read: {e}")))?
            .n;
        counts.insert(table.to_string(), n);
    }
    Ok(counts)
}

/// The checks of a SQLite copy, on a scratch database: its schema version (not newer than
/// this build's), its whole schema exactly what medvault's migrations make, key check values,
/// the seal. An older backup is checked after its schema is migrated.
pub(super) fn check_scratch(
    conn: &mut Conn,
    running: &KeyRing,
) -> Result<(String, Vec<KeyCheck>), BackupError> {
    let version = check::schema(conn)?;
    let key_checks = check::keys(conn, running)?;
    check::sealed_state(conn, &version, running)?;
    if version != check::our_schema_version() {
        conn.run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(|e| {
                BackupError::Refused(format!("the backup's schema cannot be migrated: {e}"))
            })?;
    }
    crate::db::shape::require_current(conn).map_err(|difference| {
        BackupError::Refused(format!(
            "the backup's schema is not medvault's: {difference}"
        ))
    })?;
    Ok((version, key_checks))
}

/// Replaces every row of the live database with the scratch database's, in the caller's write
/// transaction on `live`: every table emptied at once, then each filled with `COPY`.
pub(super) fn replace_rows(live: &mut Conn, scratch: &Scratch) -> Result<(), BackupError> {
    let Conn::Postgres(live) = live else {
        return Err(BackupError::OtherDatabase);
    };
    let failed =
        |e: diesel::result::Error| BackupError::failed("the restore failed, nothing changed", e);
    let tables = TABLES.iter().filter(|t| !t.starts_with("__")).copied();
    // The trail is append-only for the server, except here: a restore puts the backup's
    // whole trail (its chain checked with the rest) in place of the live one, within this
    // transaction, and the trigger is back before anyone else can write.
    live.batch_execute(&format!(
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate; \
         TRUNCATE {}; \
         ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_truncate;",
        tables.clone().collect::<Vec<_>>().join(", ")
    ))
    .map_err(failed)?;
    for table in tables {
        let mut rows = Vec::new();
        // A connection per table: Diesel's COPY TO (2.3) leaves the statement's final result
        // unread, and the connection refuses the next command.
        let mut reader = PgConnection::establish(&scratch.url)
            .map_err(|e| BackupError::failed("cannot open the scratch database", e))?;
        copy_out(&mut reader, table, &mut rows)
            .map_err(|e| BackupError::failed(&format!("cannot read the backup's {table}"), e))?;
        copy_in(live, table, &rows).map_err(|e| {
            BackupError::failed(
                &format!("the restore of {table} failed, nothing changed"),
                e,
            )
        })?;
    }
    Ok(())
}

/// The COPY statements name their table, which Diesel's typed COPY wants as a type: one arm
/// per table of the schema.
macro_rules! per_table {
    ($table:expr, |$t:ident| $body:expr) => {{
        use crate::db::schema::*;
        match $table {
            "users" => {
                let $t = users::table;
                $body
            }
            "sessions" => {
                let $t = sessions::table;
                $body
            }
            "page_access" => {
                let $t = page_access::table;
                $body
            }
            "settings" => {
                let $t = settings::table;
                $body
            }
            "root_key_checks" => {
                let $t = root_key_checks::table;
                $body
            }
            "audit_events" => {
                let $t = audit_events::table;
                $body
            }
            "encryption_policies" => {
                let $t = encryption_policies::table;
                $body
            }
            "encrypted_columns" => {
                let $t = encrypted_columns::table;
                $body
            }
            "reencryption_jobs" => {
                let $t = reencryption_jobs::table;
                $body
            }
            "two_factor" => {
                let $t = two_factor::table;
                $body
            }
            "recovery_codes" => {
                let $t = recovery_codes::table;
                $body
            }
            "patients" => {
                let $t = patients::table;
                $body
            }
            "care_assignments" => {
                let $t = care_assignments::table;
                $body
            }
            "emergency_grants" => {
                let $t = emergency_grants::table;
                $body
            }
            "consultations" => {
                let $t = consultations::table;
                $body
            }
            "medical_files" => {
                let $t = medical_files::table;
                $body
            }
            "vaccinations" => {
                let $t = vaccinations::table;
                $body
            }
            "appointments" => {
                let $t = appointments::table;
                $body
            }
            "field_visibility" => {
                let $t = field_visibility::table;
                $body
            }
            "state_seal" => {
                let $t = state_seal::table;
                $body
            }
            "account_lockouts" => {
                let $t = account_lockouts::table;
                $body
            }
            "job_leases" => {
                let $t = job_leases::table;
                $body
            }
            "wrapped_root_keys" => {
                let $t = wrapped_root_keys::table;
                $body
            }
            other => Err(diesel::result::Error::QueryBuilderError(
                format!("no table {other}").into(),
            )),
        }
    }};
}

fn copy_out(conn: &mut PgConnection, table: &str, into: &mut Vec<u8>) -> QueryResult<()> {
    per_table!(table, |t| {
        let mut out = diesel::copy_to(t).load_raw(conn)?;
        out.read_to_end(into)
            .map(|_| ())
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    })
}

fn copy_in(conn: &mut PgConnection, table: &str, rows: &[u8]) -> QueryResult<()> {
    use diesel::ExecuteCopyFromDsl;
    per_table!(table, |t| {
        diesel::copy_from(t)
            .from_raw_data(t, |out: &mut dyn Write| {
                out.write_all(rows)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
            })
            .execute(conn)
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment_decoded() {
        let t =
            target("postgres://medvault:p%40ss%3Aword@db.internal:5432/medvault?sslmode=require");
        assert_eq!(
            t.without_password,
            "postgres://medvault@db.internal:5432/medvault?sslmode=require"
        );
        assert_eq!(t.password.as_deref(), Some("p@ss:word"));
        let t = target("postgres://medvault@db/medvault");
        assert_eq!(t.without_password, "postgres://medvault@db/medvault");
        assert_eq!(t.password, None);
    }

    #[test]
    fn a_scratch_database_is_on_the_same_server_with_the_same_options() {
        assert_eq!(
            with_database(
                "postgres://u:p@h:5432/medvault?sslmode=verify-full",
                "scratch"
            ),
            "postgres://u:p@h:5432/scratch?sslmode=verify-full"
        );
        assert_eq!(
            with_database("postgres://u:p@h", "scratch"),
            "postgres://u:p@h/scratch"
        );
    }
}
