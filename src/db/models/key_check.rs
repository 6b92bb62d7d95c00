use diesel::prelude::*;

use crate::db::schema::root_key_checks;
use crate::db::Conn;

/// The key check values of the root key versions this database was written with.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<(i32, String)>> {
    root_key_checks::table
        .select((root_key_checks::version, root_key_checks::check_value))
        .order(root_key_checks::version.asc())
        .load(conn)
}

pub fn insert(version: i32, check_value: &str, now: i64, conn: &mut Conn) -> QueryResult<()> {
    diesel::insert_into(root_key_checks::table)
        .values((
            root_key_checks::version.eq(version),
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
        .load(conn)
}
