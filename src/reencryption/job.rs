//! The re-encryption job: after a policy change or a root-key rotation, rewrites every value
//! that is not in the form the policy wants, in batches, each batch one transaction together
//! with the job's cursor. A crash loses at most the batch in flight; the next start resumes.

use std::collections::HashSet;

use diesel::prelude::*;

use diesel::sql_types::{BigInt, Text};
use serde::Serialize;

use crate::audit::{action, Actor, Entry, Outcome};
use crate::crypto::FieldRef;
use crate::db::models::JobLease;
use crate::db::schema::{reencryption_jobs, root_key_checks};
use crate::db::Conn;
use crate::db::DbError;
use crate::fields::job_state::format_columns;
pub use crate::fields::job_state::{parse_columns, retired_versions, Job};
use crate::fields::registry::{encryptable_columns, ColumnSpec, TableSpec};
use crate::fields::SealError;
use crate::services::Services;

pub const BATCH_SIZE: i64 = 500;

/// The lease a server holds while it runs the job ([`JobLease`]): servers sharing a database
/// run it one at a time, and another takes it over where the cursor stands when its holder
/// dies.
pub const LEASE: &str = "reencryption";

/// Why a batch of the job could not run; the batch's transaction is rolled back and the job
/// resumes where its cursor stands.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::Db(DbError::Query(e))
    }
}

#[derive(QueryableByName)]
struct StoredValue {
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Text)]
    owner_id: String,
    #[diesel(sql_type = Text)]
    value: String,
    #[diesel(sql_type = Text)]
    index_value: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// The SQL below is built from compile-time names in `registry` only; values are always bound.

fn count_rows(table: &TableSpec, conn: &mut Conn) -> QueryResult<i64> {
    Ok(
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", table.name))
            .get_result::<Count>(conn)?
            .n,
    )
}

fn load_batch(
    table: &TableSpec,
    column: &ColumnSpec,
    after_row: &str,
    limit: i64,
    conn: &mut Conn,
) -> QueryResult<Vec<StoredValue>> {
    // Ids compared byte by byte on both backends, so that the cursor walks the same order
    // whatever collation a PostgreSQL database was created with.
    diesel::sql_query(format!(
        "SELECT {row} AS row_id, {owner} AS owner_id, {col} AS value, {index} AS index_value \
         FROM {table} WHERE {row}{bytes} > {p1} ORDER BY {row}{bytes} LIMIT {p2}",
        row = table.row_column,
        owner = table.owner_column,
        col = column.name,
        index = column.blind_index.unwrap_or("''"),
        table = table.name,
        bytes = conn.bytewise_collation(),
        p1 = conn.placeholder(1),
        p2 = conn.placeholder(2),
    ))
    .bind::<Text, _>(after_row)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

fn write_value(
    table: &TableSpec,
    column: &ColumnSpec,
    row_id: &str,
    value: &str,
    conn: &mut Conn,
) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "UPDATE {table} SET {col} = {p1} WHERE {row} = {p2}",
        table = table.name,
        col = column.name,
        row = table.row_column,
        p1 = conn.placeholder(1),
        p2 = conn.placeholder(2),
    ))
    .bind::<Text, _>(value)
    .bind::<Text, _>(row_id)
    .execute(conn)
}

fn write_index(
    table: &TableSpec,
    index_column: &str,
    row_id: &str,
    index: &str,
    conn: &mut Conn,
) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "UPDATE {table} SET {index_column} = {p1} WHERE {row} = {p2}",
        table = table.name,
        row = table.row_column,
        p1 = conn.placeholder(1),
        p2 = conn.placeholder(2),
    ))
    .bind::<Text, _>(index)
    .bind::<Text, _>(row_id)
    .execute(conn)
}

/// Every stored value of every encryptable column, as (table, column, row, owner, value).
pub fn for_each_value(
    conn: &mut Conn,
    mut visit: impl FnMut(&TableSpec, &ColumnSpec, &str, &str, &str),
) -> QueryResult<()> {
    for (table, column) in encryptable_columns() {
        let mut after = String::new();
        loop {
            let batch = load_batch(table, column, &after, 1000, conn)?;
            for v in &batch {
                visit(table, column, &v.row_id, &v.owner_id, &v.value);
            }
            match batch.last() {
                Some(last) if batch.len() == 1000 => after = last.row_id.clone(),
                _ => break,
            }
        }
    }
    Ok(())
}

/// How many values are not yet in the form the policy wants: the page's "still to do".
pub fn stale_count(app: &Services, conn: &mut Conn) -> QueryResult<i64> {
    Ok(census(app, conn)?.stale)
}

/// How many values the encryptable columns hold, and how many are not yet in the policy's form.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Census {
    pub total: i64,
    pub stale: i64,
}

pub fn census(app: &Services, conn: &mut Conn) -> QueryResult<Census> {
    let mut census = Census::default();
    for_each_value(conn, |table, column, _, _, value| {
        census.total += 1;
        if !app.fields.is_current(table.name, column.name, value) {
            census.stale += 1;
        }
    })?;
    Ok(census)
}

/// Starts a job (or restarts the running one from the beginning, for the newest policy).
/// `previously_plain` names the encryptable columns that were stored plain until now: only
/// there will the job (and the pages meanwhile) accept a plain value. Runs inside the caller's
/// transaction, which also records why.
pub fn start(
    app: &Services,
    reason: &str,
    previously_plain: HashSet<(String, String)>,
    conn: &mut Conn,
) -> QueryResult<i64> {
    let mut tolerated = previously_plain;
    if let Some(unfinished) = Job::running(conn)? {
        // The job being replaced had not finished moving its columns out of plain form.
        tolerated.extend(unfinished.tolerated_plain());
    }
    let mut total = 0;
    for (table, _) in encryptable_columns() {
        total += count_rows(table, conn)?;
    }
    let now = app.now();
    diesel::update(reencryption_jobs::table.filter(reencryption_jobs::state.eq("running")))
        .set((
            reencryption_jobs::state.eq("done"),
            reencryption_jobs::finished_at.eq(Some(now)),
        ))
        .execute(conn)?;
    let id = reencryption_jobs::table
        .select(diesel::dsl::max(reencryption_jobs::id))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0)
        + 1;
    diesel::insert_into(reencryption_jobs::table)
        .values((
            reencryption_jobs::id.eq(id),
            reencryption_jobs::reason.eq(reason),
            reencryption_jobs::state.eq("running"),
            reencryption_jobs::total.eq(total),
            reencryption_jobs::rewritten.eq(0),
            reencryption_jobs::unreadable.eq(0),
            reencryption_jobs::column_index.eq(0),
            reencryption_jobs::after_row.eq(""),
            reencryption_jobs::plain_columns.eq(format_columns(&tolerated)),
            reencryption_jobs::started_at.eq(now),
        ))
        .execute(conn)?;
    app.state_seal.reseal(now, conn)?;
    app.fields.set_migration(Some(tolerated));
    Ok(id)
}

/// What one call of [`run_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No job is running.
    Idle,
    /// A batch was written; more may follow.
    Progressed,
    /// The job has just finished.
    Finished,
    /// Another server holds the job's lease and runs it.
    HeldElsewhere,
}

/// Rewrites one batch of the running job in one transaction, cursor included.
pub fn run_batch(app: &Services, batch_size: i64) -> Result<Step, JobError> {
    let mut conn = app.db.conn()?;
    let columns = encryptable_columns();
    let step = conn.write_transaction(|conn| -> Result<Step, JobError> {
        // The policy, retired keys and tolerated columns below are this server's copy: made
        // the database's before a value is rewritten, or a change another server made a moment
        // ago would be missed, and values sealed under the policy it replaced.
        app.catch_up(conn)?;
        let Some(mut job) = Job::running(conn)? else {
            return Ok(Step::Idle);
        };
        // Taken or renewed in the batch's own transaction: a server whose lease ran out while
        // it was stalled cannot write a batch after another took the job over, because the
        // other took it in a transaction of its own that this one's writer lock kept waiting,
        // and read the cursor this one committed.
        if !JobLease::take(LEASE, &app.instance, app.lease_ttl_ms(), conn)? {
            return Ok(Step::HeldElsewhere);
        }
        let Some((table, column)) = columns.get(job.column_index as usize).copied() else {
            finish(app, &mut job, conn)?;
            return Ok(Step::Finished);
        };
        let crypto = app.fields.crypto();
        let policy = app.fields.policy();
        let target = policy.target(table.name, column.name);
        let batch = load_batch(table, column, &job.after_row, batch_size, conn)?;
        for stored in &batch {
            let field = FieldRef {
                table: table.name,
                column: column.name,
                row_id: &stored.row_id,
                owner_id: &stored.owner_id,
            };
            // The same rules as the pages: a forged plain value or an old copy under a retired
            // key must not be laundered into a freshly sealed one.
            let opened = crypto
                .open(&field, &stored.value)
                .and_then(|opened| app.fields.vet(&field, opened.form).map(|()| opened));
            match opened {
                Ok(opened) => {
                    let text = String::from_utf8_lossy(&opened.plaintext).into_owned();
                    if crypto.is_stale(opened.form, target) {
                        let resealed = app.fields.seal(&field, &text)?;
                        write_value(table, column, &stored.row_id, &resealed, conn)?;
                        job.rewritten += 1;
                    }
                    // The index key or width may have changed with the policy.
                    if let Some(index_column) = column.blind_index {
                        let index = app.fields.blind_index(table.name, column.name, &text)?;
                        if index != stored.index_value {
                            write_index(table, index_column, &stored.row_id, &index, conn)?;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(table = table.name, column = column.name, row = %stored.row_id, error = %e, "cannot re-encrypt an unreadable value");
                    job.unreadable += 1;
                }
            }
        }
        match batch.last() {
            Some(last) if batch.len() as i64 == batch_size => job.after_row = last.row_id.clone(),
            _ => {
                job.column_index += 1;
                job.after_row.clear();
            }
        }
        diesel::update(reencryption_jobs::table.find(job.id))
            .set((
                reencryption_jobs::rewritten.eq(job.rewritten),
                reencryption_jobs::unreadable.eq(job.unreadable),
                reencryption_jobs::column_index.eq(job.column_index),
                reencryption_jobs::after_row.eq(&job.after_row),
            ))
            .execute(conn)?;
        if job.column_index as usize >= columns.len() {
            finish(app, &mut job, conn)?;
            return Ok(Step::Finished);
        }
        app.state_seal.reseal(app.now(), conn)?;
        Ok(Step::Progressed)
    })?;
    if step == Step::Finished {
        app.fields.set_migration(None);
        let mut conn = app.db.conn()?;
        app.fields.set_retired(retired_versions(&mut conn)?);
    }
    Ok(step)
}

/// Marks the job done and, when every value was readable, retires the key versions that no
/// value uses any more.
fn finish(app: &Services, job: &mut Job, conn: &mut Conn) -> Result<(), JobError> {
    let now = app.now();
    diesel::update(reencryption_jobs::table.find(job.id))
        .set((
            reencryption_jobs::state.eq("done"),
            reencryption_jobs::finished_at.eq(Some(now)),
        ))
        .execute(conn)?;
    let current = i64::from(app.fields.crypto().current_key_version());
    let mut detail = format!(
        "{} value(s) rewritten, {} unreadable",
        job.rewritten, job.unreadable
    );
    if job.unreadable == 0 {
        let retired = diesel::update(
            root_key_checks::table
                .filter(root_key_checks::version.lt(current))
                .filter(root_key_checks::retired.eq(false)),
        )
        .set(root_key_checks::retired.eq(true))
        .execute(conn)?;
        if retired > 0 {
            detail.push_str(&format!(
                "; root key versions below {current} retired for field encryption"
            ));
        }
    }
    let actor = Actor {
        name: "re-encryption job".into(),
        ..Actor::default()
    };
    let outcome = if job.unreadable == 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    app.audit.append(
        conn,
        now,
        &Entry::new(&actor, action::ENCRYPTION_JOB_FINISHED, outcome)
            .target(format!("job {}", job.id))
            .detail(detail),
    )?;
    job.state = "done".into();
    JobLease::release(LEASE, &app.instance, conn)?;
    app.state_seal.reseal(now, conn)?;
    Ok(())
}

/// Runs batches until the job ends, another server holds it, or `max_batches` have run;
/// returns how many ran. Rests `reencryption_pause_ms` between batches.
pub fn run(app: &Services, max_batches: Option<usize>) -> Result<usize, JobError> {
    let pause = std::time::Duration::from_millis(app.config.reencryption_pause_ms);
    let mut ran = 0;
    while max_batches.is_none_or(|max| ran < max) {
        match run_batch(app, BATCH_SIZE)? {
            Step::Idle | Step::HeldElsewhere => break,
            Step::Progressed => {
                ran += 1;
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
            Step::Finished => {
                ran += 1;
                break;
            }
        }
    }
    Ok(ran)
}

/// The background worker: runs whatever job is pending, then waits to be woken, or for half a
/// lease (at most five seconds) to look again whether a job another server held is free. It
/// holds the services only while it runs a job, and stops once they are gone (a server that
/// was shut down, or a test's), so that it never writes to a database nobody serves any more.
pub fn spawn_worker(app: std::sync::Arc<Services>) {
    let signal = app.job_signal.clone();
    let look_again =
        std::time::Duration::from_millis((app.lease_ttl_ms() / 2).clamp(500, 5000) as u64);
    let services = std::sync::Arc::downgrade(&app);
    drop(app);
    let spawned = std::thread::Builder::new()
        .name("reencryption".into())
        .spawn(move || {
            while let Some(app) = services.upgrade() {
                if let Err(e) = run(&app, None) {
                    tracing::error!(error = %e, "re-encryption batch failed; retrying shortly");
                }
                drop(app);
                signal.wait(look_again);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the re-encryption worker");
    }
}
