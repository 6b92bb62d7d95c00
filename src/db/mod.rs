//! The database: a pool of SQLite connections with the pragmas medvault relies on, embedded
//! migrations, and [`Db::run`] to use a connection on a blocking thread.

pub mod models;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{connection::SimpleConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::AppError;

/// The connection type every model method takes, so that PostgreSQL can join through Diesel's
/// `MultiConnection` without touching the models.
pub type Conn = SqliteConnection;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // busy_timeout first, so that writers queue instead of failing; foreign keys are off in
        // SQLite unless asked for. (WAL is set once in `Db::open`: it stays with the file.)
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<SqliteConnection>>,
}

impl Db {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(file: &Path) -> Result<Db, String> {
        let url = file
            .to_str()
            .ok_or_else(|| format!("database path {} is not UTF-8", file.display()))?;
        let pool = Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(ConnectionManager::<SqliteConnection>::new(url))
            .map_err(|e| format!("cannot open the database {}: {e}", file.display()))?;
        let db = Db { pool };
        let mut conn = db.conn().map_err(|e| e.to_string())?;
        // WAL lets readers go on while one writer writes.
        conn.batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(|e| format!("cannot switch {} to WAL: {e}", file.display()))?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| format!("cannot migrate the database {}: {e}", file.display()))?;
        Ok(db)
    }

    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<SqliteConnection>>, AppError> {
        self.pool
            .get()
            .map_err(|e| AppError::internal("database pool", e))
    }

    /// Runs `work` with a connection on a blocking thread, off the async workers.
    pub async fn run<T, F>(&self, work: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, AppError> + Send + 'static,
    {
        let db = self.clone();
        rocket::tokio::task::spawn_blocking(move || {
            let mut conn = db.conn()?;
            work(&mut conn)
        })
        .await
        .map_err(|e| AppError::internal("blocking task", e))?
    }
}
