use diesel::prelude::*;

use crate::db::schema::root_key_checks;
use crate::db::Conn;

/// A version as stored (a 64-bit rowid in SQLite, BIGINT in PostgreSQL) as the key ring counts
/// them; one out of range was not written by medvault.
fn version_of(stored: i64) -> QueryResult<i32> {
    i32::try_from(stored).map_err(|_| {
        diesel::result::Error::DeserializationError(
            format!("root key version {stored} is out of range").into(),
        )
    })
}

/// The key check values of the root key versions this database was written with.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<(i32, String)>> {
    root_key_checks::table
        .select((root_key_checks::version, root_key_checks::check_value))
        .order(root_key_checks::version.asc())
        .load::<(i64, String)>(conn)?
        .into_iter()
        .map(|(version, value)| Ok((version_of(version)?, value)))
        .collect()
}

pub fn insert(version: i32, check_value: &str, now: i64, conn: &mut Conn) -> QueryResult<()> {
    diesel::insert_into(root_key_checks::table)
        .values((
            root_key_checks::version.eq(i64::from(version)),
            root_key_checks::check_value.eq(check_value),
            root_key_checks::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Every version with when it was added and whether field encryption has retired it.
pub fn all_with_state(conn: &mut Conn) -> QueryResult<Vec<(i32, i64, bool)>> {
    root_key_checks::table
        .select((
            root_key_checks::version,
            root_key_checks::created_at,
            root_key_checks::retired,
        ))
        .order(root_key_checks::version.asc())
        .load::<(i64, i64, bool)>(conn)?
        .into_iter()
        .map(|(version, added, retired)| Ok((version_of(version)?, added, retired)))
        .collect()
}
