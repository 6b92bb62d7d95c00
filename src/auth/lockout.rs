//! An account's lockout as every server on the database counts it: the rules are
//! `brute_force`'s, the record is the account's row, read and written here.

use diesel::QueryResult;

use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::brute_force::{AccountRecord, Attempt, FailureOutcome};
use crate::db::Conn;

/// Begins an attempt on `account` against its current record (see
/// [`crate::brute_force::BruteForceGuard::begin_attempt`]).
pub fn begin_attempt<'a>(
    app: &'a App,
    account: &str,
    now: i64,
    conn: &mut Conn,
) -> QueryResult<Attempt<'a>> {
    let record = AccountRecord::load(account, conn)?;
    Ok(app.brute_force.begin_attempt(account, &record, now))
}

/// Until when `account` is locked, if it is.
pub fn locked_until(
    app: &App,
    account: &str,
    now: i64,
    conn: &mut Conn,
) -> QueryResult<Option<i64>> {
    let record = AccountRecord::load(account, conn)?;
    Ok(app.brute_force.locked_until(&record, now))
}

/// How long to hold back the answer to `account`'s failure (the progressive delay).
pub fn delay_ms(app: &App, account: &str, now: i64, conn: &mut Conn) -> QueryResult<u64> {
    let record = AccountRecord::load(account, conn)?;
    Ok(app
        .brute_force
        .delay_ms(app.brute_force.failures(&record, now)))
}

/// Counts a wrong password or code against `account` and, when that locks it, writes the lock
/// to the audit trail (named after `actor`). Read, counted and written under the database's
/// write lock, so that failures on several servers at once are all counted.
pub fn count_failure(
    app: &App,
    conn: &mut Conn,
    actor: &Actor,
    account: &str,
    now: i64,
) -> QueryResult<()> {
    let outcome = conn.write_transaction_or_join(|conn| {
        let mut record = AccountRecord::load(account, conn)?;
        let outcome = app.brute_force.count_failure(&mut record, now);
        record.save(account, now, conn)?;
        AccountRecord::prune(now - app.brute_force.record_lifetime(), conn)?;
        Ok::<_, diesel::result::Error>(outcome)
    })?;
    if let FailureOutcome::LockedUntil(until) = outcome {
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::ACCOUNT_LOCKED, Outcome::Denied)
                .target(format!("user {}", actor.name))
                .detail(format!("locked for {} s", until - now)),
        )?;
    }
    Ok(())
}

/// Forgets `account`'s failures and locks: the owner signed in, or an admin unlocked it.
/// Returns whether it was locked.
pub fn forget(app: &App, account: &str, now: i64, conn: &mut Conn) -> QueryResult<bool> {
    let record = AccountRecord::load(account, conn)?;
    AccountRecord::forget(account, conn)?;
    Ok(app.brute_force.locked_until(&record, now).is_some())
}
