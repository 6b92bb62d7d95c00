use diesel::prelude::*;

use crate::db::LoadOne;
use serde::Serialize;

use crate::access::Level;
use crate::db::schema::users;
use crate::db::Conn;

#[derive(Queryable, Selectable, Identifiable, Clone, Debug, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub level: String,
    #[serde(skip)]
    pub password_hash: String,
    pub must_change_password: bool,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Stored form (sealed or `plain:`); read it through `crate::fields`.
    #[serde(skip)]
    pub full_name: String,
    /// Stored form (sealed or `plain:`); read it through `crate::fields`.
    #[serde(skip)]
    pub email: String,
    #[serde(skip)]
    pub email_index: String,
    pub two_factor_enabled: bool,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub level: &'a str,
    pub password_hash: &'a str,
    pub must_change_password: bool,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the admin's user list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub level: Option<Level>,
}

impl User {
    /// The user's level; a value the schema's CHECK would refuse opens nothing.
    pub fn level(&self) -> Level {
        Level::parse(&self.level).unwrap_or(Level::Guest)
    }

    /// Lower-cased and trimmed, the form usernames are stored and looked up in.
    pub fn normalize_username(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    /// 3 to 64 characters: letters, digits, dot, dash, underscore, starting with a letter or digit.
    pub fn username_problem(name: &str) -> Option<&'static str> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !(3..=64).contains(&name.chars().count()) {
            Some("A username has 3 to 64 characters.")
        } else if !valid_chars {
            Some("A username uses only letters, digits, '.', '-' and '_'.")
        } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Some("A username starts with a letter or a digit.")
        } else {
            None
        }
    }

    pub fn find(id: &str, conn: &mut Conn) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .load_one(conn)
    }

    /// The accounts `ids` names that exist. PostgreSQL takes them in one cached statement
    /// (`= ANY($1)`, one array bound); SQLite would prepare an `IN (?, …)` of each length anew,
    /// so there it is one cached key lookup per id.
    pub fn find_many(ids: &[&str], conn: &mut Conn) -> QueryResult<Vec<User>> {
        match conn {
            _ if ids.is_empty() => Ok(Vec::new()),
            Conn::Postgres(inner) => users::table
                .filter(users::id.eq_any(ids))
                .select(User::as_select())
                .load(inner),
            Conn::Sqlite(_) => {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    found.extend(User::find(id, conn)?);
                }
                Ok(found)
            }
        }
    }

    pub fn find_by_username(username: &str, conn: &mut Conn) -> QueryResult<Option<User>> {
        users::table
            .filter(users::username.eq(username))
            .select(User::as_select())
            .load_one(conn)
    }

    pub fn insert(new: &NewUser<'_>, conn: &mut Conn) -> QueryResult<()> {
        diesel::insert_into(users::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    pub fn exists_active_admin(conn: &mut Conn) -> QueryResult<bool> {
        Ok(User::count_active_admins(conn)? > 0)
    }

    pub fn count_active_admins(conn: &mut Conn) -> QueryResult<i64> {
        users::table
            .filter(users::level.eq(Level::Admin.as_str()))
            .filter(users::active.eq(true))
            .count()
            .get_result(conn)
    }

    /// One page of users matching `filter`, by username, and how many match in all.
    pub fn list(
        filter: &UserFilter,
        offset: i64,
        limit: i64,
        conn: &mut Conn,
    ) -> QueryResult<(Vec<User>, i64)> {
        let query = || {
            let mut q = users::table.into_boxed();
            if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
                q = q.filter(users::username.like(like_pattern(search)).escape('\\'));
            }
            if let Some(level) = filter.level {
                q = q.filter(users::level.eq(level.as_str()));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(users::username.asc())
            .offset(offset)
            .limit(limit)
            .select(User::as_select())
            .load(conn)?;
        Ok((rows, total))
    }

    pub fn set_password(
        id: &str,
        password_hash: &str,
        must_change: bool,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(password_hash),
                users::must_change_password.eq(must_change),
                users::updated_at.eq(now),
            ))
            .execute(conn)
    }

    pub fn update_identity(
        id: &str,
        username: &str,
        level: Level,
        now: i64,
        conn: &mut Conn,
    ) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::username.eq(username),
                users::level.eq(level.as_str()),
                users::updated_at.eq(now),
            ))
            .execute(conn)
    }

    /// Writes the personal columns, already in their stored form.
    pub fn set_personal(
        id: &str,
        full_name: &str,
        email: &str,
        email_index: &str,
        conn: &mut Conn,
    ) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::full_name.eq(full_name),
                users::email.eq(email),
                users::email_index.eq(email_index),
            ))
            .execute(conn)
    }

    pub fn find_by_email_index(index: &str, conn: &mut Conn) -> QueryResult<Vec<User>> {
        users::table
            .filter(users::email_index.eq(index))
            .select(User::as_select())
            .load(conn)
    }

    pub fn set_active(id: &str, active: bool, now: i64, conn: &mut Conn) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((users::active.eq(active), users::updated_at.eq(now)))
            .execute(conn)
    }

    pub fn delete(id: &str, conn: &mut Conn) -> QueryResult<usize> {
        diesel::delete(users::table.find(id)).execute(conn)
    }

    /// Whether clinical data names this user, in which case deleting would leave orphans.
    pub fn owns_clinical_data(id: &str, conn: &mut Conn) -> QueryResult<bool> {
        super::records::names_in_records(id, conn)
    }
}

/// A LIKE pattern matching `text` anywhere, with LIKE's wildcards in `text` taken literally.
pub fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert_eq!(User::username_problem("dr.house"), None);
        assert!(User::username_problem("ab").is_some());
        assert!(User::username_problem("a b c").is_some());
        assert!(User::username_problem("_admin").is_some());
        assert!(User::username_problem("robert'); drop table users;--").is_some());
    }

    #[test]
    fn like_wildcards_in_searches_are_literal() {
        assert_eq!(like_pattern("a%b_c"), "%a\\%b\\_c%");
    }
}
