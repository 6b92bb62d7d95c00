//! The database: a pool of connections to the embedded SQLite file or to PostgreSQL (chosen by
//! [`Location`]), embedded migrations for each, and [`Db::run`] to use a connection on a
//! blocking thread. SQL that only one of them accepts is in [`dialect`].
//!
//! The pool sits behind a gate so that a restore can swap the whole database file while the
//! server runs: every connection handed out counts as a reader, and every request in flight
//! holds a [`RequestPin`] (taken by a fairing before its handler runs). [`Db::replace_file`]
//! closes the gate to new requests, lets the requests in flight finish (they may still take
//! connections: they see the old database throughout), waits for the connections to come
//! back, swaps, and opens a new pool. A request therefore sees the old database or the new one
//! for its whole life, never a mix, and waits a moment at most.

pub mod dialect;
pub mod models;
pub mod schema;
pub mod shape;

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::connection::{InstrumentationEvent, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};

/// Why the database could not answer: a query failed, or no connection could be had (closed
/// for a restore that took too long, the pool exhausted, the blocking task lost).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl DbError {
    /// Whether the database is out of reach (no connection, or the one in use was lost), as
    /// opposed to a query it answered with an error: the first is a 503 that passes once the
    /// database is back, the second a fault of ours.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(e) => lost_connection(e),
        }
    }
}

/// Whether a query failed because the connection to the database was lost (PostgreSQL went
/// away, or restarted, while it was open).
pub fn lost_connection(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        e,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | Error::BrokenTransactionManager
    )
}

/// The connection every model method takes: the same query code runs on either database.
/// Where the two need different SQL, [`dialect`] matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub use crate::config::{redacted, Location};
pub(crate) use dialect::per_backend;

/// Loads the row a query finds, if any, for queries that find at most one (a key) or few rows
/// in the order wanted. Unlike Diesel's `first`, it sends no `LIMIT ?`: SQLite re-prepares a
/// statement whose LIMIT is a bound parameter each time the parameter is bound, which cost a
/// tenth of the record page's CPU (BENCHMARKS.md); without it the cached statement is reused.
pub trait LoadOne<'q, T> {
    fn load_one(self, conn: &mut Conn) -> diesel::QueryResult<Option<T>>;
}

impl<'q, Q, T> LoadOne<'q, T> for Q
where
    Q: diesel::query_dsl::LoadQuery<'q, Conn, T> + diesel::RunQueryDsl<Conn>,
{
    fn load_one(self, conn: &mut Conn) -> diesel::QueryResult<Option<T>> {
        Ok(self.load::<T>(conn)?.into_iter().next())
    }
}

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

type ConnPool = Pool<Manager>;

/// Connections in the pool, and requests that may use the database at once (see [`Db::run`]).
const POOL_SIZE: usize = 8;

/// How long a request waits for a restore to finish before it gives up with an error page.
const WAIT_FOR_SWAP: Duration = Duration::from_secs(30);
/// How long a restore waits for the connections in use to come back before it gives up (shorter
/// than [`WAIT_FOR_SWAP`], so that a thread waiting on a second connection is never stuck).
const WAIT_FOR_READERS: Duration = Duration::from_secs(15);

/// Opens connections of the backend [`Location`] names. Diesel's own manager would try each
/// backend in turn with the same string, and SQLite takes any string as a file name: a
/// PostgreSQL server that is down would leave a file called `postgres:` behind.
struct Manager {
    location: Location,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        match &self.location {
            Location::SqliteFile(file) => {
                let url = file.to_str().ok_or_else(|| {
                    diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                        "the database path is not UTF-8".into(),
                    ))
                })?;
                let mut conn = SqliteConnection::establish(url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // busy_timeout first, so that writers queue instead of failing; foreign keys
                // are off in SQLite unless asked for. (WAL is set once in `open_pool`: it
                // stays with the file.)
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(Conn::Sqlite(conn))
            }
            Location::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.set_instrumentation(|event: InstrumentationEvent<'_>| {
                    if let InstrumentationEvent::FinishQuery { error: Some(e), .. } = event {
                        if lost_connection(e) {
                            Liveness::note_loss();
                        }
                    }
                });
                Ok(Conn::Postgres(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

struct GateState {
    pool: Option<ConnPool>,
    /// Connections handed out and not yet returned.
    active: usize,
    /// Requests in flight that started before a swap began.
    pinned: usize,
    /// A swap is waiting or under way: no new request until it ends, and no new connection
    /// once the pinned requests are done.
    closing: bool,
}

struct Gate {
    location: Location,
    state: Mutex<GateState>,
    changed: Condvar,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    /// Connections this thread holds: a thread that holds one may take a second while a swap
    /// waits (the swap waits for both), instead of deadlocking against it.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

#[derive(Clone)]
pub struct Db {
    /// The migrations this process applied when it opened the database: an upgrade that
    /// happened in this start, not one a file merely claims.
    applied_at_open: Arc<Vec<String>>,
    gate: Arc<Gate>,
    /// One permit per pooled connection: a request waits for one on its async task before it
    /// takes a blocking thread, instead of parking a blocking thread on the pool's lock.
    permits: Arc<rocket::tokio::sync::Semaphore>,
}

/// A pooled connection that keeps the database from being swapped while it lives.
pub struct DbConn {
    conn: Option<PooledConnection<Manager>>,
    gate: Arc<Gate>,
}

impl Deref for DbConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Always `Some` until drop.
        self.conn.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

/// A request's claim on the database it started with: while any is held, a swap waits.
pub struct RequestPin {
    gate: Arc<Gate>,
}

impl Drop for RequestPin {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.pinned = state.pinned.saturating_sub(1);
        drop(state);
        self.gate.changed.notify_all();
    }
}

impl Drop for DbConn {
    fn drop(&mut self) {
        // Back to the pool first, then tell a waiting swap.
        drop(self.conn.take());
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        let mut state = self.gate.lock();
        state.active = state.active.saturating_sub(1);
        drop(state);
        self.gate.changed.notify_all();
    }
}

/// Whether a pooled connection still reaches the database. r2d2 would ping every connection it
/// hands out (`SELECT 1`), two of the doctor's page's twenty round trips to PostgreSQL
/// (BENCHMARKS.md); a connection is pinged instead when it was last checked [`RECHECK_AFTER`]
/// ago or more, or when a query on any connection has found its connection lost since (a
/// restarted PostgreSQL drops them all): so a dead connection is never handed out twice, and
/// after an outage every connection is tried before it serves.
struct Liveness;

/// How long a connection that was found alive is believed to be.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// The moment the [`Liveness`] times count from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// When (ms after [`EPOCH`], plus one) a query last found its connection lost; 0 if never.
static LAST_LOSS: AtomicU64 = AtomicU64::new(0);

/// Carried by each pooled connection: when (ms after [`EPOCH`], plus one) it was last found
/// alive.
struct CheckedAt(u64);

impl Liveness {
    fn now() -> u64 {
        EPOCH.elapsed().as_millis() as u64 + 1
    }

    fn note_loss() {
        LAST_LOSS.fetch_max(Self::now(), Ordering::Relaxed);
    }

    fn needs_check(conn: &PooledConnection<Manager>) -> bool {
        let Some(CheckedAt(at)) = PooledConnection::extensions(conn).get::<CheckedAt>() else {
            return true;
        };
        let now = Self::now();
        now.saturating_sub(*at) >= RECHECK_AFTER.as_millis() as u64
            || LAST_LOSS.load(Ordering::Relaxed) >= *at
    }

    /// A connection from `pool` that answers, pinging it if [`Liveness::needs_check`]; one that
    /// does not answer is flagged broken, so that the pool drops it, and the next one tried.
    fn checked_out(pool: &ConnPool) -> Result<PooledConnection<Manager>, DbError> {
        // Every idle connection may be dead (after an outage), then a new one is opened.
        for _ in 0..=POOL_SIZE {
            let mut conn = pool
                .get()
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            if !Self::needs_check(&conn) {
                return Ok(conn);
            }
            let checked = Self::now();
            match conn.ping() {
                Ok(()) => {
                    PooledConnection::extensions_mut(&mut conn).insert(CheckedAt(checked));
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a pooled connection no longer answers");
                    <Conn as Connection>::TransactionManager::transaction_manager_status_mut(
                        &mut conn,
                    )
                    .set_in_error();
                }
            }
        }
        Err(DbError::Unavailable(
            "no connection to the database answers".into(),
        ))
    }
}

fn build_pool(location: &Location) -> Result<ConnPool, String> {
    Pool::builder()
        .max_size(POOL_SIZE as u32)
        .test_on_check_out(false)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
        .build(Manager {
            location: location.clone(),
        })
        .map_err(|e| format!("cannot open {}: {e}", describe(location)))
}

/// The database as an operator would name it in a message.
fn describe(location: &Location) -> String {
    match location {
        Location::SqliteFile(file) => format!("the database {}", file.display()),
        Location::Postgres(url) => format!("the PostgreSQL database {}", redacted(url)),
    }
}

/// Opens the database and brings its schema up to date; returns the migrations it applied and
/// the opening lock, held on a connection of its own until dropped.
fn open_pool(location: &Location) -> Result<(ConnPool, Vec<String>, OpeningLock), String> {
    // The lock's connection is its own, outside the pool: closing it ends the session and
    // releases the lock whatever happens.
    let mut own = Manager {
        location: location.clone(),
    }
    .connect()
    .map_err(|e| format!("cannot open {}: {e}", describe(location)))?;
    dialect::begin_opening(&mut own)
        .map_err(|e| format!("cannot open {}: {e}", describe(location)))?;
    let opening = OpeningLock { conn: Some(own) };
    let pool = build_pool(location)?;
    let mut conn = pool
        .get()
        .map_err(|e| format!("cannot open {}: {e}", describe(location)))?;
    let applied = dialect::migrate(&mut conn)
        .map_err(|e| format!("cannot migrate {}: {e}", describe(location)))?;
    drop(conn);
    Ok((pool, applied, opening))
}

/// Held by a server from the moment it opens the database until its start-up writes are done
/// (see [`dialect::begin_opening`]): other servers opening the same database wait meanwhile.
pub struct OpeningLock {
    conn: Option<Conn>,
}

impl Drop for OpeningLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Closing the connection would release it too; unlocking first is quicker to see.
            let _ = dialect::end_opening(&mut conn);
        }
    }
}

impl Db {
    /// Opens (creating the SQLite file if needed) the database and brings its schema up to
    /// date. Other servers cannot open the same database while the lock returned is held.
    pub fn open(location: &Location) -> Result<(Db, OpeningLock), String> {
        let (pool, applied_at_open, opening) = open_pool(location)?;
        let db = Db {
            applied_at_open: Arc::new(applied_at_open),
            gate: Arc::new(Gate {
                location: location.clone(),
                state: Mutex::new(GateState {
                    pool: Some(pool),
                    active: 0,
                    pinned: 0,
                    closing: false,
                }),
                changed: Condvar::new(),
            }),
            permits: Arc::new(rocket::tokio::sync::Semaphore::new(POOL_SIZE)),
        };
        Ok((db, opening))
    }

    /// Whether migration `version` was applied when this process opened the database.
    pub fn migrated_now(&self, version: &str) -> bool {
        self.applied_at_open.iter().any(|v| v == version)
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.gate.location
    }

    /// The live database file, when the database is the embedded SQLite one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.gate.location {
            Location::SqliteFile(file) => Some(file),
            Location::Postgres(_) => None,
        }
    }

    /// Connections handed out to other threads than this one: a sign of traffic, read by
    /// work that should give way to it (backups).
    pub fn connections_in_use_by_others(&self) -> usize {
        let own = HELD.with(|h| h.get());
        self.gate.lock().active.saturating_sub(own)
    }

    /// Pins the database for a request, unless a swap is waiting or under way (then `None`:
    /// the request waits and tries again).
    pub fn try_pin(&self) -> Option<RequestPin> {
        let mut state = self.gate.lock();
        if state.closing {
            return None;
        }
        state.pinned += 1;
        Some(RequestPin {
            gate: self.gate.clone(),
        })
    }

    pub fn conn(&self) -> Result<DbConn, DbError> {
        let reentrant = HELD.with(|h| h.get() > 0);
        let deadline = Instant::now() + WAIT_FOR_SWAP;
        let mut state = self.gate.lock();
        // While pinned requests drain, connections are still handed out (on the old file);
        // after that, only to a thread that already holds one.
        while state.closing && state.pinned == 0 && !reentrant {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbError::Unavailable("a restore is taking too long".into()));
            }
            state = self
                .gate
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let Some(pool) = state.pool.clone() else {
            return Err(DbError::Unavailable("the database is closed".into()));
        };
        state.active += 1;
        drop(state);
        HELD.with(|h| h.set(h.get() + 1));
        // From here the count is ours: DbConn's drop gives it back, even if `get` fails.
        let mut held = DbConn {
            conn: None,
            gate: self.gate.clone(),
        };
        held.conn = Some(Liveness::checked_out(&pool)?);
        Ok(held)
    }

    /// Runs `work` with a connection on a blocking thread, off the async workers. Under load
    /// the requests beyond the pool's size queue here, on their async tasks: 32 connections of
    /// wrk kept some 24 blocking threads parked on the pool, each release waking one of them
    /// (BENCHMARKS.md).
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, E> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbError::Unavailable(format!("database permits: {e}")))?;
        let db = self.clone();
        rocket::tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = db.conn()?;
            work(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("blocking task: {e}")))?
    }

    /// Replaces the live database file while no request and no connection is in use: waits for
    /// the pinned requests to finish and the connections handed out to come back, checkpoints
    /// the WAL into the main file, closes every connection, lets `swap` put the new file in
    /// place, and opens a new pool on it. If `swap` fails, the old file is reopened and its
    /// error returned. New requests wait meanwhile. A request that restores must drop its own
    /// pin first.
    pub fn replace_file(
        &self,
        swap: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(), String> {
        let Location::SqliteFile(file) = &self.gate.location else {
            return Err(
                "only the embedded SQLite database is restored by replacing its file".into(),
            );
        };
        if HELD.with(|h| h.get() > 0) {
            return Err("a restore cannot run while its thread holds a connection".into());
        }
        let mut state = self.gate.lock();
        if state.closing {
            return Err("another restore is under way".into());
        }
        state.closing = true;
        let deadline = Instant::now() + WAIT_FOR_READERS;
        while state.active > 0 || state.pinned > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.closing = false;
                drop(state);
                self.gate.changed.notify_all();
                return Err("the database stayed busy; try the restore again".into());
            }
            state = self
                .gate
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let old = state.pool.take();
        drop(state);

        let swapped = checkpoint_and_close(old, file).and_then(|()| swap(file));
        // Whatever happened, open what is now at the live path: the new file, or the old one.
        let reopened = open_pool(&self.gate.location).map(|(pool, _, _)| pool);
        let mut state = self.gate.lock();
        let result = match reopened {
            Ok(pool) => {
                state.pool = Some(pool);
                swapped
            }
            Err(e) => Err(match swapped {
                Ok(()) => e,
                Err(first) => format!("{first}; then {e}"),
            }),
        };
        state.closing = false;
        drop(state);
        self.gate.changed.notify_all();
        result
    }
}

#[derive(diesel::QueryableByName)]
struct CheckpointOutcome {
    /// 1 when another connection kept the checkpoint from completing.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
}

/// Moves every WAL frame into the main file and closes every connection, so that the main file
/// alone holds the whole database and can be renamed over.
fn checkpoint_and_close(pool: Option<ConnPool>, file: &Path) -> Result<(), String> {
    if let Some(pool) = pool {
        let mut conn = pool
            .get()
            .map_err(|e| format!("cannot reach the database: {e}"))?;
        // A reader in another process (`medvault backup`) can keep the checkpoint from moving
        // every frame into the main file; SQLite then answers busy rather than failing, and
        // removing the WAL below would lose those frames.
        let outcome = diesel::RunQueryDsl::get_result::<CheckpointOutcome>(
            diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)"),
            &mut *conn,
        )
        .map_err(|e| format!("cannot checkpoint the database: {e}"))?;
        if outcome.busy != 0 {
            return Err(
                "another process is reading the database (a backup from the command \
                        line?); try the restore again when it is done"
                    .into(),
            );
        }
        drop(conn);
        drop(pool);
    }
    // The last connection to close removes the WAL itself; a leftover is empty after the
    // TRUNCATE checkpoint, so removing it loses nothing.
    for suffix in ["-wal", "-shm"] {
        let side = side_file(file, suffix);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", side.display())),
        }
    }
    Ok(())
}

/// `medvault.sqlite-wal` and the like, next to `file`.
pub fn side_file(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Marker {
        #[diesel(sql_type = Text)]
        v: String,
    }

    fn marker(db: &Db) -> String {
        let mut conn = db.conn().expect("connection");
        diesel::sql_query("SELECT v FROM marker")
            .get_result::<Marker>(&mut *conn)
            .expect("marker")
            .v
    }

    fn file_with_marker(path: &Path, value: &str) {
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute(&format!(
            "CREATE TABLE marker (v TEXT); INSERT INTO marker VALUES ('{value}');"
        ))
        .unwrap();
    }

    #[test]
    fn connections_of_other_threads_count_as_traffic_and_ones_own_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Location::SqliteFile(dir.path().join("live.sqlite")))
            .expect("open")
            .0;
        let own = db.conn().expect("connection");
        assert_eq!(db.connections_in_use_by_others(), 0);
        let (taken_tx, taken) = std::sync::mpsc::channel();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let other = db.clone();
        let page = std::thread::spawn(move || {
            let conn = other.conn().expect("connection");
            taken_tx.send(()).unwrap();
            let _ = release.recv();
            drop(conn);
        });
        taken.recv().unwrap();
        assert_eq!(db.connections_in_use_by_others(), 1);
        release_tx.send(()).unwrap();
        page.join().unwrap();
        assert_eq!(db.connections_in_use_by_others(), 0);
        drop(own);
    }

    #[test]
    fn a_swap_waits_for_pinned_requests_which_see_the_old_file_throughout() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sqlite");
        let next = dir.path().join("next.sqlite");
        file_with_marker(&live, "old");
        file_with_marker(&next, "new");
        let db = Db::open(&Location::SqliteFile(live.clone())).unwrap().0;

        // A request in flight reads once...
        let pin = db.try_pin().expect("no swap yet");
        assert_eq!(marker(&db), "old");
        let (done_tx, done) = std::sync::mpsc::channel();
        let swapper = db.clone();
        let next2 = next.clone();
        std::thread::spawn(move || {
            let result = swapper
                .replace_file(|live| std::fs::rename(&next2, live).map_err(|e| e.to_string()));
            done_tx.send(result).unwrap();
        });
        // ...the swap waits for it, and new requests wait for the swap...
        assert!(done.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(db.try_pin().is_none(), "a new request must wait");
        // ...while it reads again, from the same (old) file.
        assert_eq!(marker(&db), "old");
        drop(pin);
        done.recv_timeout(Duration::from_secs(10))
            .expect("the swap ends once the request is done")
            .expect("swap");
        let after = db.try_pin().expect("requests go on after the swap");
        assert_eq!(marker(&db), "new");
        drop(after);
    }

    #[test]
    fn a_swap_is_refused_while_another_process_reads_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sqlite");
        let next = dir.path().join("next.sqlite");
        file_with_marker(&live, "old");
        file_with_marker(&next, "new");
        let db = Db::open(&Location::SqliteFile(live.clone())).unwrap().0;
        // Another process's connection (as `medvault backup` has) reads under a snapshot...
        let outsider = rusqlite::Connection::open(&live).unwrap();
        outsider.execute_batch("BEGIN").unwrap();
        let seen: String = outsider
            .query_row("SELECT v FROM marker", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, "old");
        // ...while the server commits a change that stays in the WAL behind that snapshot.
        let mut conn = db.conn().unwrap();
        conn.batch_execute("UPDATE marker SET v = 'committed'")
            .unwrap();
        drop(conn);

        let swapped =
            db.replace_file(|live| std::fs::rename(&next, live).map_err(|e| e.to_string()));
        let refusal = swapped.expect_err("the swap must not go on");
        assert!(refusal.contains("another process"), "{refusal}");
        assert!(next.exists(), "the swap itself never ran");
        drop(outsider);
        assert_eq!(
            marker(&db),
            "committed",
            "the committed change is still there"
        );
    }
}
