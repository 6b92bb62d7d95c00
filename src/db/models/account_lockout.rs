//! An account's wrong passwords and codes, and its lock, as every server on the database sees
//! them. The rules that read and change them are in `brute_force`; this is their row.

use diesel::prelude::*;

use crate::db::schema::account_lockouts;
use crate::db::{Conn, LoadOne};

pub use crate::brute_force::AccountRecord;

impl AccountRecord {
    /// The account's record; an account without a row has no failures.
    pub fn load(account: &str, conn: &mut Conn) -> QueryResult<AccountRecord> {
        let row: Option<(String, i64, i64)> = account_lockouts::table
            .find(account)
            .select((
                account_lockouts::failures,
                account_lockouts::locked_until,
                account_lockouts::locks,
            ))
            .load_one(conn)?;
        Ok(row
            .map(|(failures, locked_until, locks)| AccountRecord {
                // A time that does not parse was not written by medvault; it counts for nothing.
                failures: failures.split(',').filter_map(|t| t.parse().ok()).collect(),
                locked_until,
                locks: u32::try_from(locks).unwrap_or(u32::MAX),
            })
            .unwrap_or_default())
    }

    /// Writes the record for `account` (the caller holds the write lock: see
    /// `Conn::write_transaction`).
    pub fn save(&self, account: &str, now: i64, conn: &mut Conn) -> QueryResult<()> {
        let failures = self
            .failures
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let row = (
            account_lockouts::account.eq(account),
            account_lockouts::failures.eq(&failures),
            account_lockouts::locked_until.eq(self.locked_until),
            account_lockouts::locks.eq(i64::from(self.locks)),
            account_lockouts::updated_at.eq(now),
        );
        crate::db::per_backend!(conn, |inner| diesel::insert_into(account_lockouts::table)
            .values(row)
            .on_conflict(account_lockouts::account)
            .do_update()
            .set((
                account_lockouts::failures.eq(&failures),
                account_lockouts::locked_until.eq(self.locked_until),
                account_lockouts::locks.eq(i64::from(self.locks)),
                account_lockouts::updated_at.eq(now),
            ))
            .execute(inner))?;
        Ok(())
    }

    /// Forgets `account`'s failures and locks (a sign-in, an admin's unlock).
    pub fn forget(account: &str, conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(account_lockouts::table.find(account)).execute(conn)?;
        Ok(())
    }

    /// Removes the rows last changed before `before`: their failures are out of the window and
    /// their locks over, so they say nothing any more. Keeps the table as small as the guessing
    /// of the last hour, whatever usernames were tried.
    pub fn prune(before: i64, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(account_lockouts::table.filter(account_lockouts::updated_at.lt(before)))
            .execute(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel_migrations::MigrationHarness;

    fn migrated() -> Conn {
        let mut conn = Conn::Sqlite(
            diesel::SqliteConnection::establish(":memory:").expect("in-memory database"),
        );
        conn.run_pending_migrations(crate::db::SQLITE_MIGRATIONS)
            .expect("migrations");
        conn
    }

    #[test]
    fn a_record_is_saved_loaded_forgotten_and_pruned_when_it_has_nothing_left_to_say() {
        let mut conn = migrated();
        assert_eq!(
            AccountRecord::load("ana", &mut conn).unwrap(),
            AccountRecord::default()
        );
        let record = AccountRecord {
            failures: vec![100, 160],
            locked_until: 400,
            locks: 2,
        };
        record.save("ana", 160, &mut conn).unwrap();
        record.save("ana", 170, &mut conn).unwrap();
        assert_eq!(AccountRecord::load("ana", &mut conn).unwrap(), record);
        AccountRecord::default().save("bo", 50, &mut conn).unwrap();
        assert_eq!(AccountRecord::prune(100, &mut conn).unwrap(), 1, "bo only");
        AccountRecord::forget("ana", &mut conn).unwrap();
        assert_eq!(
            AccountRecord::load("ana", &mut conn).unwrap(),
            AccountRecord::default()
        );
        // A time that is not a number, written by someone else, counts for nothing.
        conn.batch_execute("INSERT INTO account_lockouts VALUES ('cy', '5,x,7', 0, 0, 7);")
            .unwrap();
        assert_eq!(
            AccountRecord::load("cy", &mut conn).unwrap().failures,
            vec![5, 7]
        );
    }
}
