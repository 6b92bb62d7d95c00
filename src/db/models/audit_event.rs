use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::audit_events;
use crate::db::Conn;

#[derive(Queryable, Selectable, Clone, Debug, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub actor_id: String,
    pub actor_name: String,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub prev_mac: String,
    pub mac: String,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub id: i64,
    pub at: i64,
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub ip: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub prev_mac: &'a str,
    pub mac: &'a str,
}

/// What the audit page narrows the trail to.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
}

impl AuditEvent {
    /// The newest event's id and MAC, in one cached statement: the row whose id is the
    /// largest, rather than `ORDER BY id DESC LIMIT ?`, which SQLite re-prepares on every call.
    pub fn last(conn: &mut Conn) -> QueryResult<Option<(i64, String)>> {
        diesel::alias!(audit_events as newest_events: NewestEvents);
        let newest = newest_events
            .select(diesel::dsl::max(newest_events.field(audit_events::id)))
            .single_value();
        crate::db::LoadOne::load_one(
            audit_events::table
                .filter(audit_events::id.nullable().eq(newest))
                .select((audit_events::id, audit_events::mac)),
            conn,
        )
    }

    /// Writes `rows` in one statement (a batch insert, which Diesel builds per backend).
    pub fn insert_all(rows: &[NewAuditEvent<'_>], conn: &mut Conn) -> QueryResult<()> {
        crate::db::per_backend!(conn, |inner| diesel::insert_into(audit_events::table)
            .values(rows)
            .execute(inner)
            .map(|_| ()))
    }

    /// Up to `limit` events with ids above `after`, oldest first: the verifier's walk.
    pub fn batch_after(after: i64, limit: i64, conn: &mut Conn) -> QueryResult<Vec<AuditEvent>> {
        audit_events::table
            .filter(audit_events::id.gt(after))
            .order(audit_events::id.asc())
            .limit(limit)
            .select(AuditEvent::as_select())
            .load(conn)
    }

    /// One page of events matching `filter`, newest first, and how many match in all.
    pub fn list(
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
        conn: &mut Conn,
    ) -> QueryResult<(Vec<AuditEvent>, i64)> {
        let query = || {
            let mut q = audit_events::table.into_boxed();
            if let Some(actor) = filter.actor.as_deref().filter(|s| !s.is_empty()) {
                q = q.filter(audit_events::actor_name.eq(actor));
            }
            if let Some(action) = filter.action.as_deref().filter(|s| !s.is_empty()) {
                q = q.filter(audit_events::action.eq(action));
            }
            if let Some(from) = filter.from {
                q = q.filter(audit_events::at.ge(from));
            }
            if let Some(until) = filter.until {
                q = q.filter(audit_events::at.lt(until));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(audit_events::id.desc())
            .offset(offset)
            .limit(limit)
            .select(AuditEvent::as_select())
            .load(conn)?;
        Ok((rows, total))
    }

    /// The distinct actions recorded, for the filter's select.
    pub fn actions(conn: &mut Conn) -> QueryResult<Vec<String>> {
        audit_events::table
            .select(audit_events::action)
            .distinct()
            .order(audit_events::action.asc())
            .load(conn)
    }
}

impl AuditEvent {
    /// Every event about `target` by anyone but `except_actor`, newest first.
    pub fn about(
        target: &str,
        except_actor: &str,
        conn: &mut Conn,
    ) -> QueryResult<Vec<AuditEvent>> {
        use crate::db::schema::audit_events;
        audit_events::table
            .filter(audit_events::target.eq(target))
            .filter(audit_events::actor_id.ne(except_actor))
            .order(audit_events::id.desc())
            .select(AuditEvent::as_select())
            .load(conn)
    }
}
