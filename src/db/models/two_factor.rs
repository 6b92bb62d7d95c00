use diesel::prelude::*;

use crate::db::LoadOne;

use crate::db::schema::{recovery_codes, two_factor, users};
use crate::db::Conn;

/// A user's TOTP secret (stored sealed) and the last step a code was accepted for.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = two_factor)]
pub struct TwoFactor {
    pub user_id: String,
    pub secret: String,
    pub enabled: bool,
    pub last_used_step: i64,
    pub created_at: i64,
}

impl TwoFactor {
    pub fn find(user_id: &str, conn: &mut Conn) -> QueryResult<Option<TwoFactor>> {
        two_factor::table
            .find(user_id)
            .select(TwoFactor::as_select())
            .load_one(conn)
    }

    /// Starts (or restarts) an enrolment with a new sealed secret, not yet enabled.
    pub fn begin_enrolment(
        user_id: &str,
        sealed_secret: &str,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<()> {
        diesel::delete(two_factor::table.find(user_id)).execute(conn)?;
        diesel::insert_into(two_factor::table)
            .values((
                two_factor::user_id.eq(user_id),
                two_factor::secret.eq(sealed_secret),
                two_factor::enabled.eq(false),
                two_factor::last_used_step.eq(0),
                two_factor::created_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn enable(user_id: &str, conn: &mut Conn) -> QueryResult<()> {
        diesel::update(two_factor::table.find(user_id))
            .set(two_factor::enabled.eq(true))
            .execute(conn)?;
        diesel::update(users::table.find(user_id))
            .set(users::two_factor_enabled.eq(true))
            .execute(conn)
            .map(|_| ())
    }

    /// Records `step` as used, only if it is later than the last one: of two sign-ins racing
    /// with the same code, one wins. Returns whether this call won.
    pub fn use_step(user_id: &str, step: i64, conn: &mut Conn) -> QueryResult<bool> {
        Ok(diesel::update(
            two_factor::table
                .find(user_id)
                .filter(two_factor::last_used_step.lt(step)),
        )
        .set(two_factor::last_used_step.eq(step))
        .execute(conn)?
            == 1)
    }

    /// Turns two-factor sign-in off and forgets the secret and the recovery codes.
    pub fn remove(user_id: &str, conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(two_factor::table.find(user_id)).execute(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?;
        diesel::update(users::table.find(user_id))
            .set(users::two_factor_enabled.eq(false))
            .execute(conn)
            .map(|_| ())
    }
}

pub struct RecoveryCode;

impl RecoveryCode {
    /// Replaces the user's recovery codes with `digests`.
    pub fn replace_all(
        user_id: &str,
        digests: &[(String, String)],
        conn: &mut Conn,
    ) -> QueryResult<()> {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?;
        for (id, digest) in digests {
            diesel::insert_into(recovery_codes::table)
                .values((
                    recovery_codes::id.eq(id),
                    recovery_codes::user_id.eq(user_id),
                    recovery_codes::code_digest.eq(digest),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Spends the unused code with `digest`; returns whether there was one.
    pub fn spend(user_id: &str, digest: &str, now: i64, conn: &mut Conn) -> QueryResult<bool> {
        Ok(diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::code_digest.eq(digest))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(now)))
        .execute(conn)?
            == 1)
    }

    pub fn count_unused(user_id: &str, conn: &mut Conn) -> QueryResult<i64> {
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)
    }
}
