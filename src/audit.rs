//! The audit trail: append-only events, each with an HMAC over the event and the previous
//! event's HMAC, so that an edited, inserted or deleted row breaks the chain at that row.

use diesel::prelude::*;
use serde::Serialize;

use crate::crypto::{constant_time_eq, keyed_digest_hex, SecretKey};
use crate::db::models::{AuditEvent, NewAuditEvent, Setting};
use crate::db::Conn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Who did it and from where. A guest has an empty id.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub id: String,
    pub name: String,
    pub ip: String,
}

/// One event, before it is chained. `detail` never holds a password, key, token or clinical value.
#[derive(Clone, Debug)]
pub struct Entry {
    pub actor: Actor,
    pub action: &'static str,
    pub target: String,
    pub outcome: Outcome,
    pub detail: String,
}

impl Entry {
    pub fn new(actor: &Actor, action: &'static str, outcome: Outcome) -> Self {
        Entry {
            actor: actor.clone(),
            action,
            target: String::new(),
            outcome,
            detail: String::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// The first link of the chain that does not hold, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub id: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checked: i64,
    pub first_broken: Option<BrokenLink>,
}

pub struct AuditLog {
    key: SecretKey,
    /// Events that open no transaction of their own wait here to be written together.
    queue: GroupCommit,
}

/// Events that come with no transaction of their own (every record view writes one) are
/// written in groups: the first waiting thread takes all the events queued so far, writes them
/// in one write transaction and wakes the others, whose events went in with its own. One
/// commit then carries as many views as arrived during the last one. On SQLite this keeps those
/// writers from meeting on its write lock, whose busy handler sleeps 1, 2, 5 ms and more before
/// it retries; on PostgreSQL each event alone cost eight round trips under the writer lock, and
/// a group costs seven. A thread in a caller's transaction already holds the write lock and
/// never queues here, so the two cannot wait on each other.
#[derive(Default)]
struct GroupCommit {
    state: std::sync::Mutex<Queue>,
    written: std::sync::Condvar,
}

#[derive(Default)]
struct Queue {
    /// Events not yet taken by a writer, each with its ticket and time.
    waiting: Vec<(u64, i64, Entry)>,
    next_ticket: u64,
    /// A thread is writing a group now.
    writing: bool,
    /// How each taken event's group ended, until its thread collects it.
    outcomes: std::collections::HashMap<u64, Result<(), GroupFailure>>,
}

/// Why a group was not written, told to every thread whose event was in it.
#[derive(Clone)]
struct GroupFailure {
    lost_connection: bool,
    message: String,
}

impl GroupFailure {
    fn of(e: &diesel::result::Error) -> Self {
        GroupFailure {
            lost_connection: crate::db::lost_connection(e),
            message: e.to_string(),
        }
    }

    /// The error each waiting thread returns: a lost connection stays one, so that its page is
    /// a 503 like the writer's.
    fn error(&self) -> diesel::result::Error {
        use diesel::result::{DatabaseErrorKind, Error};
        let kind = if self.lost_connection {
            DatabaseErrorKind::ClosedConnection
        } else {
            DatabaseErrorKind::Unknown
        };
        Error::DatabaseError(
            kind,
            Box::new(format!("audit events not written: {}", self.message)),
        )
    }
}

impl Queue {
    /// Settles the events of a group the writer took, however it ended (a writer that panics
    /// reports its group as failed rather than leaving its waiters asleep).
    fn settle(&mut self, tickets: &[u64], outcome: Result<(), GroupFailure>) {
        for ticket in tickets {
            self.outcomes.insert(*ticket, outcome.clone());
        }
        self.writing = false;
    }
}

/// Settles a group as failed if its writer unwinds before it could.
struct SettleOnPanic<'a> {
    queue: &'a GroupCommit,
    tickets: &'a [u64],
}

impl Drop for SettleOnPanic<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.state.lock().unwrap_or_else(|e| e.into_inner());
        state.settle(
            self.tickets,
            Err(GroupFailure {
                lost_connection: false,
                message: "the writer of this group stopped".into(),
            }),
        );
        self.queue.written.notify_all();
    }
}

impl AuditLog {
    pub fn new(key: SecretKey) -> Self {
        AuditLog {
            key,
            queue: GroupCommit::default(),
        }
    }

    /// The HMAC of one event: its id and time, every text column, and the previous event's HMAC.
    fn mac(&self, id: i64, at: i64, columns: [&str; 8]) -> String {
        let (id, at) = (id.to_string(), at.to_string());
        let mut parts: Vec<&[u8]> = vec![id.as_bytes(), at.as_bytes()];
        parts.extend(columns.iter().map(|c| c.as_bytes()));
        keyed_digest_hex(&self.key, &parts)
    }

    /// Appends `entry` at time `now`. Inside a caller's transaction it commits with the change it
    /// records; otherwise it is written with the other events waiting (see [`GroupCommit`]) and
    /// this returns once it is committed. The write lock is what keeps two events from chaining
    /// to the same parent, so a caller's transaction must be opened with `write_transaction`.
    pub fn append(&self, conn: &mut Conn, now: i64, entry: &Entry) -> QueryResult<()> {
        if in_transaction(conn)? {
            return self.chain(conn, &[(now, entry)]);
        }
        let queue = &self.queue;
        let lock = || queue.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, now, entry.clone()));
        loop {
            if let Some(outcome) = state.outcomes.remove(&ticket) {
                return outcome.map_err(|failure| failure.error());
            }
            if state.writing {
                state = queue.written.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Nobody is writing: this thread writes every event waiting, its own among them.
            state.writing = true;
            let group = std::mem::take(&mut state.waiting);
            drop(state);
            let tickets: Vec<u64> = group.iter().map(|(t, _, _)| *t).collect();
            let settle_on_panic = SettleOnPanic {
                queue,
                tickets: &tickets,
            };
            let events: Vec<(i64, &Entry)> = group.iter().map(|(_, at, e)| (*at, e)).collect();
            let outcome = conn
                .write_transaction(|conn| self.chain(conn, &events))
                .map_err(|e| GroupFailure::of(&e));
            std::mem::forget(settle_on_panic);
            state = lock();
            state.settle(&tickets, outcome);
            queue.written.notify_all();
        }
    }

    /// Chains `events` after the recorded head, in order, in the caller's write transaction.
    fn chain(&self, conn: &mut Conn, events: &[(i64, &Entry)]) -> QueryResult<()> {
        // Chain to the head the server recorded, not to whatever row is last now: when
        // events were cut off the end, the new event must not paper over the gap.
        let last = AuditEvent::last(conn)?.unwrap_or((0, String::new()));
        let recorded = Setting::get(Setting::AUDIT_HEAD, conn)?;
        let parsed = recorded.as_deref().and_then(parse_head);
        // A recorded end that is missing (while events exist) or fails its HMAC stays
        // visibly broken: the new end carries no valid HMAC either, so that the next event
        // cannot make a cut tail look whole.
        let genuine = match &parsed {
            None => recorded.is_none() && last.0 == 0,
            Some(head) => self.head_is_genuine(head),
        };
        let head = parsed.map(|head| (head.id, head.mac));
        let (head_id, mut prev_mac) = head.unwrap_or_else(|| last.clone());
        let mut id = head_id.max(last.0);
        let mut macs = Vec::with_capacity(events.len());
        for (at, entry) in events {
            id += 1;
            let mac = self.mac(
                id,
                *at,
                [
                    &entry.actor.id,
                    &entry.actor.name,
                    &entry.actor.ip,
                    entry.action,
                    &entry.target,
                    entry.outcome.as_str(),
                    &entry.detail,
                    &prev_mac,
                ],
            );
            macs.push((id, prev_mac, mac.clone()));
            prev_mac = mac;
        }
        let rows: Vec<NewAuditEvent<'_>> = events
            .iter()
            .zip(&macs)
            .map(|((at, entry), (id, prev_mac, mac))| NewAuditEvent {
                id: *id,
                at: *at,
                actor_id: &entry.actor.id,
                actor_name: &entry.actor.name,
                ip: &entry.actor.ip,
                action: entry.action,
                target: &entry.target,
                outcome: entry.outcome.as_str(),
                detail: &entry.detail,
                prev_mac,
                mac,
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        AuditEvent::insert_all(&rows, conn)?;
        let head = if genuine {
            self.head_text(id, &prev_mac)
        } else {
            format!("{id}:{prev_mac}:{UNSEALED}")
        };
        Setting::set(Setting::AUDIT_HEAD, &head, conn)
    }

    fn head_is_genuine(&self, head: &Head) -> bool {
        head.head_mac.as_deref().is_some_and(|m| {
            constant_time_eq(m.as_bytes(), self.head_mac(head.id, &head.mac).as_bytes())
        })
    }

    /// The HMAC of the trail's recorded end (the last event's id, which is the count of events,
    /// and its HMAC), so that whoever cuts events off the end cannot move the end back to match.
    fn head_mac(&self, id: i64, mac: &str) -> String {
        keyed_digest_hex(
            &self.key,
            &[b"audit head", id.to_string().as_bytes(), mac.as_bytes()],
        )
    }

    fn head_text(&self, id: i64, mac: &str) -> String {
        format!("{id}:{mac}:{}", self.head_mac(id, mac))
    }

    /// Gives a head written before heads carried their own HMAC one, once, at the start that
    /// upgrades the database; returns whether it did.
    pub fn seal_unsealed_head(&self, conn: &mut Conn) -> QueryResult<bool> {
        match Setting::get(Setting::AUDIT_HEAD, conn)?.and_then(|h| parse_head(&h)) {
            Some(Head {
                id,
                mac,
                head_mac: None,
            }) if !mac.is_empty() => {
                Setting::set(Setting::AUDIT_HEAD, &self.head_text(id, &mac), conn)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Walks the whole chain and names the first event that does not hold.
    pub fn verify(&self, conn: &mut Conn) -> QueryResult<VerifyReport> {
        let mut checked = 0;
        let (mut last_id, mut last_mac) = (0i64, String::new());
        let broken = |id: i64, reason: &str, checked| VerifyReport {
            checked,
            first_broken: Some(BrokenLink {
                id,
                reason: reason.to_string(),
            }),
        };
        loop {
            let batch = AuditEvent::batch_after(last_id, 1000, conn)?;
            if batch.is_empty() {
                break;
            }
            for row in batch {
                if row.id != last_id + 1 {
                    return Ok(broken(
                        last_id + 1,
                        "this event is missing: it was deleted",
                        checked,
                    ));
                }
                if !constant_time_eq(row.prev_mac.as_bytes(), last_mac.as_bytes()) {
                    return Ok(broken(
                        row.id,
                        "this event does not follow the one before it: an event was deleted or inserted",
                        checked,
                    ));
                }
                let expected = self.mac(
                    row.id,
                    row.at,
                    [
                        &row.actor_id,
                        &row.actor_name,
                        &row.ip,
                        &row.action,
                        &row.target,
                        &row.outcome,
                        &row.detail,
                        &row.prev_mac,
                    ],
                );
                if !constant_time_eq(expected.as_bytes(), row.mac.as_bytes()) {
                    return Ok(broken(
                        row.id,
                        "this event was edited after it was written",
                        checked,
                    ));
                }
                checked += 1;
                last_id = row.id;
                last_mac = row.mac;
            }
        }
        // The chain cannot show that events were cut off its end; the recorded head can, as
        // long as its own HMAC holds.
        let head = Setting::get(Setting::AUDIT_HEAD, conn)?;
        let head = match head.as_deref().map(parse_head) {
            None if checked == 0 => None,
            None | Some(None) => {
                return Ok(broken(
                    last_id + 1,
                    "the trail's recorded end is missing: events may have been cut off the end",
                    checked,
                ))
            }
            Some(Some(head)) => Some(head),
        };
        if let Some(head) = head {
            if !self.head_is_genuine(&head) {
                return Ok(broken(
                    last_id + 1,
                    "the trail's recorded end was edited: events may have been cut off the end",
                    checked,
                ));
            }
            if head.id != last_id || !constant_time_eq(head.mac.as_bytes(), last_mac.as_bytes()) {
                return Ok(broken(
                    last_id + 1,
                    "events after this point were deleted",
                    checked,
                ));
            }
        }
        Ok(VerifyReport {
            checked,
            first_broken: None,
        })
    }
}

/// Written in place of the head's HMAC once the recorded end was found missing or edited.
const UNSEALED: &str = "unsealed";

/// The recorded end of the trail: `id:mac:head_mac` (`id:mac` before heads had their own HMAC).
struct Head {
    id: i64,
    mac: String,
    head_mac: Option<String>,
}

fn parse_head(text: &str) -> Option<Head> {
    let mut parts = text.split(':');
    let id = parts.next()?.parse().ok()?;
    let mac = parts.next()?.to_string();
    let head_mac = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(Head { id, mac, head_mac })
}

/// Whether `conn` is inside a transaction (SQLite cannot nest `BEGIN IMMEDIATE`).
fn in_transaction(conn: &mut Conn) -> QueryResult<bool> {
    use diesel::connection::{Connection, TransactionManager};
    Ok(
        <Conn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()?
            .is_some(),
    )
}

/// Every action medvault records, named once.
pub mod action {
    pub const LOGIN_SUCCESS: &str = "login.success";
    pub const LOGIN_FAILURE: &str = "login.failure";
    pub const LOGOUT: &str = "logout";
    pub const SESSION_ENDED: &str = "session.ended";
    pub const ACCESS_DENIED: &str = "access.denied";
    pub const CSRF_REFUSED: &str = "csrf.refused";
    pub const SETUP_ADMIN_CREATED: &str = "setup.admin_created";
    pub const PASSWORD_CHANGED: &str = "account.password_changed";
    pub const PASSWORD_CHANGE_REFUSED: &str = "account.password_change_refused";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_ACTIVATED: &str = "user.activated";
    pub const USER_DEACTIVATED: &str = "user.deactivated";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_PASSWORD_RESET: &str = "user.password_reset";
    pub const USER_SESSIONS_ENDED: &str = "user.sessions_ended";
    pub const ACCESS_TABLE_SAVED: &str = "admin.access_saved";
    pub const SECURITY_SETTINGS_SAVED: &str = "admin.security_saved";
    pub const AUDIT_VERIFIED: &str = "admin.audit_verified";
    pub const ENCRYPTION_POLICY_SAVED: &str = "encryption.policy_saved";
    pub const ENCRYPTION_JOB_FINISHED: &str = "encryption.job_finished";
    pub const ROOT_KEY_ROTATED: &str = "encryption.root_key_rotated";
    /// Root key versions stored wrapped by the key manager: new, moved from the key file, or
    /// rewrapped under the key manager's new key.
    pub const ROOT_KEYS_WRAPPED: &str = "encryption.root_keys_wrapped";
    pub const FIELD_INTEGRITY_ERROR: &str = "encryption.integrity_error";
    pub const BACKUP_CREATED: &str = "backup.created";
    pub const BACKUP_DELETED: &str = "backup.deleted";
    pub const BACKUP_DOWNLOADED: &str = "backup.downloaded";
    pub const BACKUP_UPLOADED: &str = "backup.uploaded";
    pub const BACKUP_REFUSED: &str = "backup.refused";
    pub const BACKUP_RESTORED: &str = "backup.restored";
    pub const BACKUP_SETTINGS_SAVED: &str = "backup.settings_saved";
    pub const TWO_FACTOR_ENROLLED: &str = "2fa.enrolled";
    pub const TWO_FACTOR_DISABLED: &str = "2fa.disabled";
    pub const TWO_FACTOR_RESET: &str = "2fa.reset_by_admin";
    pub const TWO_FACTOR_FAILURE: &str = "2fa.failure";
    pub const RECOVERY_CODE_USED: &str = "2fa.recovery_code_used";
    pub const ACCOUNT_LOCKED: &str = "account.locked";
    pub const ACCOUNT_UNLOCKED: &str = "account.unlocked";
    pub const PATIENT_REGISTERED: &str = "record.patient_registered";
    pub const RECORD_VIEWED: &str = "record.viewed";
    pub const RECORD_LOOKED_UP: &str = "record.looked_up";
    pub const RECORD_CHANGED: &str = "record.changed";
    pub const RECORD_FIELD_REVEALED: &str = "record.field_revealed";
    pub const RECORD_EMERGENCY_ACCESS: &str = "record.emergency_access";
    pub const RECORD_REFUSED: &str = "record.refused";
    pub const FILE_UPLOADED: &str = "record.file_uploaded";
    pub const FILE_DOWNLOADED: &str = "record.file_downloaded";
    pub const FILE_INTEGRITY_ERROR: &str = "record.file_integrity_error";
    pub const FILE_LINK_REFUSED: &str = "record.file_link_refused";
    pub const CARE_ASSIGNED: &str = "care.assigned";
    pub const CARE_UNASSIGNED: &str = "care.unassigned";
    pub const MASKING_SAVED: &str = "admin.masking_saved";
    pub const STATE_SEALED: &str = "admin.state_sealed";
}
