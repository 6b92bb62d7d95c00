//! What SQLite and PostgreSQL do differently, in one place: how a write transaction takes the
//! database's write lock, how migrations run once when several servers start together, how a
//! query with bound values is spelled, what the database's clock reads, and [`per_backend!`] for the statements Diesel builds
//! for each backend but not for both at once (`ON CONFLICT`).
//!
//! Every write transaction on PostgreSQL takes one transaction-level advisory lock. That is
//! the guarantee SQLite's `BEGIN IMMEDIATE` gives and that the read-check-write steps above
//! were written against (the audit chain's head, a TOTP step used once, a care-team check):
//! one writer at a time, across every instance on the database. Readers are not held up.
//! The audit chain needs this order anyway (each event's MAC covers the one before it), and
//! nearly every write appends an audit event, so finer locks would buy little.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

use super::{Conn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// Advisory lock keys on PostgreSQL ("medvault" as the bytes of an i64, plus one).
const WRITER_LOCK: i64 = 0x6d65_6476_6175_6c74;
const OPENING_LOCK: i64 = WRITER_LOCK + 1;

/// The oldest PostgreSQL medvault starts on (15): the version its migrations and tests run on.
const OLDEST_POSTGRES: i32 = 150_000;

/// Runs the same code for whichever backend `conn` is, with `$inner` bound to the backend's
/// own connection: for statements Diesel builds for each backend but not through
/// [`Conn`] (an `ON CONFLICT` upsert).
macro_rules! per_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($inner) => $body,
            $crate::db::Conn::Postgres($inner) => $body,
        }
    };
}
// Named by its module (`crate::db::per_backend!`), not exported from the crate's root.
pub(crate) use per_backend;

impl Conn {
    /// A transaction that holds the database's write lock from its first statement, so that
    /// what `work` reads stays true until it commits: `BEGIN IMMEDIATE` on SQLite, the writer
    /// lock on PostgreSQL. Rolls back when `work` fails.
    pub fn write_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match self {
            Conn::Sqlite(inner) => {
                AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
            }
            Conn::Postgres(inner) => {
                // One round trip for both: the lock is taken as the transaction begins.
                let begun = AnsiTransactionManager::begin_transaction_sql(
                    inner,
                    &format!("BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"),
                );
                if let Err(e) = begun {
                    // The BEGIN may have run without the lock: end it here, since Diesel only
                    // counts a transaction whose whole opening succeeded. A connection that
                    // cannot even roll back is flagged, so that the pool drops it.
                    if inner.batch_execute("ROLLBACK").is_err() {
                        AnsiTransactionManager::transaction_manager_status_mut(inner)
                            .set_in_error();
                    }
                    return Err(e.into());
                }
            }
        }
        match work(self) {
            Ok(value) => {
                <Conn as Connection>::TransactionManager::commit_transaction(self)?;
                Ok(value)
            }
            Err(e) => {
                <Conn as Connection>::TransactionManager::rollback_transaction(self)?;
                Err(e)
            }
        }
    }

    /// A read-only transaction whose reads all see one moment of the database: a deferred
    /// transaction on SQLite (in WAL, its snapshot is taken at its first read), REPEATABLE READ
    /// on PostgreSQL, where each statement would otherwise see the latest commit.
    pub fn snapshot_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match self {
            Conn::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN")?,
            Conn::Postgres(inner) => AnsiTransactionManager::begin_transaction_sql(
                inner,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )?,
        }
        let result = work(self);
        // Nothing was written: ending it either way is the same, and rollback cannot fail
        // on a write that did not happen.
        <Conn as Connection>::TransactionManager::rollback_transaction(self)?;
        result
    }

    /// [`Conn::write_transaction`], or, when a transaction is already open on this
    /// connection, `work` inside it holding the write lock: on PostgreSQL the writer lock is
    /// taken there (once per transaction, it is held to its end); on SQLite the open
    /// transaction is one of medvault's write transactions, which hold the lock already.
    pub fn write_transaction_or_join<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        let open = <Conn as Connection>::TransactionManager::transaction_manager_status_mut(self)
            .transaction_depth()?
            .is_some();
        if !open {
            return self.write_transaction(work);
        }
        if let Conn::Postgres(inner) = self {
            inner.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITER_LOCK})"))?;
        }
        work(self)
    }

    /// `$n` on PostgreSQL, `?` on SQLite: the n-th (from 1) bound value of a hand-written query.
    pub fn placeholder(&self, n: usize) -> String {
        match self {
            Conn::Sqlite(_) => "?".into(),
            Conn::Postgres(_) => format!("${n}"),
        }
    }

    /// The database's own clock in Unix milliseconds, as an SQL expression: what job leases
    /// expire by, so that servers whose clocks disagree still agree on when one ran out.
    /// `clock_timestamp()` rather than `now()`, which stands still for a whole transaction.
    pub fn database_clock_ms(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Conn::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// What follows a text column to compare it byte by byte, as SQLite always does;
    /// PostgreSQL otherwise sorts by the database's collation.
    pub fn bytewise_collation(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => r#" COLLATE "C""#,
        }
    }
}

#[derive(QueryableByName)]
struct ServerVersion {
    #[diesel(sql_type = Text)]
    server_version_num: String,
}

/// Takes the lock a server holds while it opens the database (migrations, then the start's
/// own checks and first writes: key check values, default settings, the seal over them), so
/// that servers starting together on one PostgreSQL database open it one after the other:
/// the second finds the schema migrated and the state sealed, never half made. A session
/// lock, released by [`end_opening`] or when the connection closes. SQLite needs none: one
/// server per home holds the file (`backup::lock`).
pub(super) fn begin_opening(conn: &mut Conn) -> Result<(), String> {
    if matches!(conn, Conn::Postgres(_)) {
        require_supported_postgres(conn)?;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({OPENING_LOCK})"))
            .map_err(|e| format!("cannot take the opening lock: {e}"))?;
    }
    Ok(())
}

pub(super) fn end_opening(conn: &mut Conn) -> QueryResult<()> {
    if matches!(conn, Conn::Postgres(_)) {
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({OPENING_LOCK})"))?;
    }
    Ok(())
}

/// Brings the schema up to date; returns the migrations applied. On PostgreSQL the caller
/// holds the opening lock ([`begin_opening`]).
pub(super) fn migrate(conn: &mut Conn) -> Result<Vec<String>, String> {
    let applied = if matches!(conn, Conn::Postgres(_)) {
        let applied = conn
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(|e| e.to_string())?;
        versions(&applied)
    } else {
        // WAL lets readers go on while one writer writes; it stays with the file.
        conn.batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(|e| format!("cannot switch to WAL: {e}"))?;
        let applied = conn
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| e.to_string())?;
        versions(&applied)
    };
    Ok(applied)
}

fn versions(applied: &[diesel::migration::MigrationVersion<'_>]) -> Vec<String> {
    applied.iter().map(|v| v.to_string()).collect()
}

fn require_supported_postgres(conn: &mut Conn) -> Result<(), String> {
    let version = diesel::sql_query("SHOW server_version_num")
        .get_result::<ServerVersion>(conn)
        .map_err(|e| format!("cannot read the server's version: {e}"))?;
    let number: i32 = version.server_version_num.parse().unwrap_or(0);
    if number < OLDEST_POSTGRES {
        return Err(format!(
            "PostgreSQL {}.{} is too old: medvault needs 15 or newer",
            number / 10_000,
            number % 10_000
        ));
    }
    Ok(())
}
