use diesel::prelude::*;

use crate::db::LoadOne;
use serde::Serialize;

use crate::db::models::User;
use crate::db::schema::{sessions, users};
use crate::db::Conn;

/// A signed-in browser. The cookie holds a random token; only its keyed digest is stored here.
#[derive(Queryable, Selectable, Identifiable, Clone, Debug, Serialize)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    #[serde(skip)]
    pub token_digest: String,
    pub key_epoch: i64,
    pub user_id: String,
    #[serde(skip)]
    pub csrf_token: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// [`STAGE_FULL`], or [`STAGE_SECOND_FACTOR`] between the password and the code.
    pub stage: String,
}

pub const STAGE_FULL: &str = "full";
pub const STAGE_SECOND_FACTOR: &str = "second_factor";

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub token_digest: &'a str,
    pub key_epoch: i64,
    pub user_id: &'a str,
    pub csrf_token: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub stage: &'a str,
}

impl SessionRow {
    pub fn is_full(&self) -> bool {
        self.stage == STAGE_FULL
    }

    pub fn insert(new: &NewSession<'_>, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(sessions::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    pub fn find_by_digest(digest: &str, conn: &mut Conn) -> QueryResult<Option<SessionRow>> {
        sessions::table
            .filter(sessions::token_digest.eq(digest))
            .select(SessionRow::as_select())
            .load_one(conn)
    }

    /// The session whose token has `digest`, with its account (`None` if the account is gone),
    /// in one statement: every signed-in request asks for both.
    pub fn find_with_user(
        digest: &str,
        conn: &mut Conn,
    ) -> QueryResult<Option<(SessionRow, Option<User>)>> {
        sessions::table
            .left_join(users::table)
            .filter(sessions::token_digest.eq(digest))
            .select((SessionRow::as_select(), Option::<User>::as_select()))
            .load_one(conn)
    }

    pub fn touch(id: &str, now: i64, conn: &mut Conn) -> QueryResult<usize> {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)
    }

    pub fn delete(id: &str, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(sessions::table.find(id)).execute(conn)
    }

    /// Ends one of `user_id`'s sessions; another user's id matches nothing.
    pub fn delete_for_user(id: &str, user_id: &str, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(
            sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::user_id.eq(user_id)),
        )
        .execute(conn)
    }

    pub fn delete_all_for_user(user_id: &str, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }

    /// Ends every session of the user but `keep` (the one making the change).
    pub fn delete_others_of_user(user_id: &str, keep: &str, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::id.ne(keep)),
        )
        .execute(conn)
    }

    pub fn list_for_user(user_id: &str, conn: &mut Conn) -> QueryResult<Vec<SessionRow>> {
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .order(sessions::last_seen_at.desc())
            .select(SessionRow::as_select())
            .load(conn)
    }

    pub fn count_for_user(user_id: &str, conn: &mut Conn) -> QueryResult<i64> {
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .count()
            .get_result(conn)
    }

    /// Removes sessions that can no longer be used: from an older key epoch, idle too long,
    /// or past their lifetime.
    pub fn delete_stale(
        current_epoch: i64,
        idle_cutoff: i64,
        created_cutoff: i64,
        conn: &mut Conn,
    ) -> QueryResult<usize> {
        diesel::delete(
            sessions::table.filter(
                sessions::key_epoch
                    .lt(current_epoch)
                    .or(sessions::last_seen_at.lt(idle_cutoff))
                    .or(sessions::created_at.lt(created_cutoff)),
            ),
        )
        .execute(conn)
    }
}
