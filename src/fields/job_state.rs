//! The re-encryption job as the database records it: its row, and the root-key versions it has
//! retired. Start-up and restore read these to know what the field encryption must tolerate.

use std::collections::HashSet;

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{reencryption_jobs, root_key_checks};
use crate::db::{Conn, LoadOne};

#[derive(Queryable, Selectable, Clone, Debug, Serialize)]
#[diesel(table_name = reencryption_jobs)]
pub struct Job {
    pub id: i64,
    pub reason: String,
    pub state: String,
    pub total: i64,
    pub rewritten: i64,
    pub unreadable: i64,
    pub column_index: i32,
    pub after_row: String,
    pub plain_columns: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl Job {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// How far the job is, 0 to 100, by columns and rows visited.
    pub fn percent(&self, rows_visited: i64) -> i64 {
        if !self.is_running() || self.total == 0 {
            return 100;
        }
        (rows_visited * 100 / self.total).clamp(0, 99)
    }

    pub fn latest(conn: &mut Conn) -> QueryResult<Option<Job>> {
        reencryption_jobs::table
            .order(reencryption_jobs::id.desc())
            .select(Job::as_select())
            .load_one(conn)
    }

    pub fn running(conn: &mut Conn) -> QueryResult<Option<Job>> {
        Ok(Job::latest(conn)?.filter(Job::is_running))
    }

    /// The encrypted columns this job may find in plain form (they were plain before it).
    pub fn tolerated_plain(&self) -> HashSet<(String, String)> {
        parse_columns(&self.plain_columns)
    }
}

pub fn parse_columns(text: &str) -> HashSet<(String, String)> {
    text.split(',')
        .filter_map(|c| c.split_once('.'))
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .collect()
}

pub(crate) fn format_columns(columns: &HashSet<(String, String)>) -> String {
    let mut names: Vec<String> = columns.iter().map(|(t, c)| format!("{t}.{c}")).collect();
    names.sort();
    names.join(",")
}

pub fn retired_versions(conn: &mut Conn) -> QueryResult<std::collections::HashSet<u32>> {
    Ok(root_key_checks::table
        .filter(root_key_checks::retired.eq(true))
        .select(root_key_checks::version)
        .load::<i64>(conn)?
        .into_iter()
        .filter_map(|v| u32::try_from(v).ok())
        .collect())
}
