//! Leases on background jobs: which server runs a job while several share the database. Time
//! is the database's clock ([`Conn::database_clock_ms`]), never a server's own.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::schema::job_leases;
use crate::db::Conn;

/// Who holds a lease, and for how many more milliseconds by the database's clock (negative
/// once it ran out).
#[derive(QueryableByName, Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    #[diesel(sql_type = Text)]
    pub holder: String,
    #[diesel(sql_type = BigInt)]
    pub remaining_ms: i64,
}

pub struct JobLease;

impl JobLease {
    /// Takes the lease `name` for `holder` for `ttl_ms`, or renews it if `holder` has it
    /// already; refused (false) while another holder's lease runs. One statement, so that two
    /// servers taking an expired lease at the same moment cannot both get it.
    pub fn take(name: &str, holder: &str, ttl_ms: i64, conn: &mut Conn) -> QueryResult<bool> {
        let now = conn.database_clock_ms();
        let taken = diesel::sql_query(format!(
            "INSERT INTO job_leases (name, holder, expires_at_ms) VALUES ({p1}, {p2}, {now} + {p3}) \
             ON CONFLICT (name) DO UPDATE \
             SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at_ms <= {now}",
            p1 = conn.placeholder(1),
            p2 = conn.placeholder(2),
            p3 = conn.placeholder(3),
        ))
        .bind::<Text, _>(name)
        .bind::<Text, _>(holder)
        .bind::<BigInt, _>(ttl_ms)
        .execute(conn)?;
        Ok(taken == 1)
    }

    /// Gives the lease up, if `holder` has it, so that another server need not wait for it to
    /// run out.
    pub fn release(name: &str, holder: &str, conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(
            job_leases::table
                .filter(job_leases::name.eq(name))
                .filter(job_leases::holder.eq(holder)),
        )
        .execute(conn)
        .map(|_| ())
    }

    /// Gives up every lease `holder` has.
    pub fn release_all_of(holder: &str, conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(job_leases::table.filter(job_leases::holder.eq(holder)))
            .execute(conn)
            .map(|_| ())
    }

    /// Ends every lease: for a database only one server can use, at its start.
    pub fn clear_all(conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(job_leases::table).execute(conn).map(|_| ())
    }

    pub fn holder(name: &str, conn: &mut Conn) -> QueryResult<Option<LeaseHolder>> {
        diesel::sql_query(format!(
            "SELECT holder, expires_at_ms - {now} AS remaining_ms FROM job_leases \
             WHERE name = {p1}",
            now = conn.database_clock_ms(),
            p1 = conn.placeholder(1),
        ))
        .bind::<Text, _>(name)
        .get_result(conn)
        .optional()
    }
}
