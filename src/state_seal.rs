//! The seal on the admin's state: every setting, page grant, encryption policy row, re-encryption
//! job, root-key version state and masking choice, written out as one snapshot and HMAC'd under
//! a key of its own derived from the root key.
//!
//! These rows decide how a stored value is judged (a column declared plain accepts `plain:`
//! text; a running job tolerates plain values and re-seals them as genuine) and who sees what.
//! Whoever can write the database file could otherwise change them; without the root key they
//! cannot make the seal match. The seal is checked before the state is believed (at every start
//! and for every backup that is restored or uploaded) and rewritten in the same transaction as
//! every change medvault makes to that state. One snapshot rather than a MAC per row, so that a
//! deleted row (a 2FA requirement, a masking choice) is caught like an edited one.
//!
//! What it cannot catch: the whole file put back to an earlier moment, seal included (a
//! rollback). The audit trail, backups kept elsewhere, and signed records answer for that.

use diesel::prelude::*;
use diesel::upsert::excluded;
use serde::{Deserialize, Serialize};

use crate::crypto::{constant_time_eq, keyed_digest_hex, SecretKey};
use crate::db::models::Setting;
use crate::db::schema::{
    encrypted_columns, encryption_policies, field_visibility, page_access, reencryption_jobs,
    root_key_checks, settings, state_seal,
};
use crate::db::{Conn, LoadOne};

/// The migration that brought the seal on the admin's state.
pub const SEAL_MIGRATION: &str = "20261202000005";

/// One sealed row: its table, its key within the table, and its values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRow {
    pub table: String,
    pub key: String,
    pub value: String,
}

/// How the stored state departs from the seal, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Tampered(pub String);

pub struct StateSeal {
    key: SecretKey,
    /// The generation this server's last reseal wrote, and when: see
    /// [`StateSeal::just_wrote_newer_than`].
    own_write: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

/// How long a server's own reseal outranks an older snapshot read by its follower: far longer
/// than the transaction that wrote it, and short enough that a reseal whose transaction rolled
/// back holds nothing up for long.
const OWN_WRITE_PRECEDENCE: std::time::Duration = std::time::Duration::from_secs(2);

const LABEL: &[u8] = b"medvault state seal v1";

impl StateSeal {
    pub fn new(key: SecretKey) -> Self {
        StateSeal {
            key,
            own_write: Default::default(),
        }
    }

    fn mac(&self, snapshot: &str) -> String {
        keyed_digest_hex(&self.key, &[LABEL, snapshot.as_bytes()])
    }

    /// Seals the state as it stands in `conn`; call it inside the transaction that changed it.
    pub fn reseal(&self, now: i64, conn: &mut Conn) -> QueryResult<()> {
        let snapshot = encode(&snapshot(conn)?);
        let mac = self.mac(&snapshot);
        crate::db::per_backend!(conn, |inner| diesel::insert_into(state_seal::table)
            .values((
                state_seal::id.eq(1),
                state_seal::snapshot.eq(&snapshot),
                state_seal::mac.eq(&mac),
                state_seal::sealed_at.eq(now),
                state_seal::generation.eq(1),
            ))
            .on_conflict(state_seal::id)
            .do_update()
            .set((
                state_seal::snapshot.eq(excluded(state_seal::snapshot)),
                state_seal::mac.eq(excluded(state_seal::mac)),
                state_seal::sealed_at.eq(excluded(state_seal::sealed_at)),
                state_seal::generation.eq(state_seal::generation + 1),
            ))
            .execute(inner))?;
        let generation: Option<i64> = state_seal::table
            .select(state_seal::generation)
            .load_one(conn)?;
        *self.own_write.lock().unwrap_or_else(|e| e.into_inner()) =
            generation.map(|g| (g, std::time::Instant::now()));
        Ok(())
    }

    /// The seal's MAC as stored, with its generation: the MAC changes with every change to the
    /// admin's state, so a server that sees another than the one it loaded knows another server
    /// changed it; the generation orders two states.
    pub fn current_mac(conn: &mut Conn) -> QueryResult<Option<(String, i64)>> {
        state_seal::table
            .select((state_seal::mac, state_seal::generation))
            .load_one(conn)
    }

    /// Whether this server resealed, a moment ago, a state newer than `generation`: a page puts
    /// its change in force in memory as it commits it, so a follower's snapshot taken before
    /// that commit is older than what is in force, and putting it in force would undo the
    /// change until the next look.
    pub fn just_wrote_newer_than(&self, generation: i64) -> bool {
        self.own_write
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|(own, at)| own > generation && at.elapsed() < OWN_WRITE_PRECEDENCE)
    }

    /// Whether a seal exists at all (a database from before seals has none).
    pub fn exists(conn: &mut Conn) -> QueryResult<bool> {
        let id: Option<i64> = state_seal::table.select(state_seal::id).load_one(conn)?;
        Ok(id.is_some())
    }

    /// Checks the state in `conn` against its seal and names the first row that departs.
    pub fn verify(&self, conn: &mut Conn) -> QueryResult<Result<(), Tampered>> {
        let sealed: Option<(String, String)> = state_seal::table
            .select((state_seal::snapshot, state_seal::mac))
            .load_one(conn)?;
        let Some((sealed, mac)) = sealed else {
            return Ok(Err(Tampered(
                "the seal on the settings is missing (it was deleted)".into(),
            )));
        };
        if !constant_time_eq(self.mac(&sealed).as_bytes(), mac.as_bytes()) {
            return Ok(Err(Tampered(
                "the seal on the settings does not match its contents (it was edited)".into(),
            )));
        }
        let Ok(sealed) = serde_json::from_str::<Vec<StateRow>>(&sealed) else {
            return Ok(Err(Tampered(
                "the seal on the settings is unreadable".into(),
            )));
        };
        let live = snapshot(conn)?;
        Ok(match first_difference(&sealed, &live) {
            None => Ok(()),
            Some(difference) => Err(Tampered(difference)),
        })
    }
}

fn encode(rows: &[StateRow]) -> String {
    // Serialising plain strings cannot fail.
    serde_json::to_string(rows).unwrap_or_default()
}

fn first_difference(sealed: &[StateRow], live: &[StateRow]) -> Option<String> {
    let place = |r: &StateRow| format!("{} `{}`", r.table, r.key);
    for row in live {
        match sealed
            .iter()
            .find(|s| s.table == row.table && s.key == row.key)
        {
            None => return Some(format!("{} was added outside medvault", place(row))),
            Some(s) if s.value != row.value => {
                return Some(format!(
                    "{} was changed outside medvault (medvault saved {}, the file says {})",
                    place(row),
                    s.value,
                    row.value
                ))
            }
            Some(_) => {}
        }
    }
    sealed
        .iter()
        .find(|s| !live.iter().any(|r| r.table == s.table && r.key == s.key))
        .map(|s| format!("{} was deleted outside medvault", place(s)))
}

fn row(table: &str, key: String, value: String) -> StateRow {
    StateRow {
        table: table.into(),
        key,
        value,
    }
}

fn joined(parts: &[&str]) -> String {
    // JSON keeps the parts apart whatever they contain.
    serde_json::to_string(parts).unwrap_or_default()
}

/// The sealed state as it stands, in a fixed order. The audit head is left out: it moves with
/// every event and carries its own MAC (see `audit`).
pub fn snapshot(conn: &mut Conn) -> QueryResult<Vec<StateRow>> {
    let mut rows = Vec::new();
    for (name, value) in settings::table
        .filter(settings::name.ne(Setting::AUDIT_HEAD))
        .order(settings::name)
        .load::<(String, String)>(conn)?
    {
        rows.push(row("settings", name, value));
    }
    for (level, page, allowed) in page_access::table
        .order((page_access::level, page_access::page))
        .load::<(String, String, bool)>(conn)?
    {
        rows.push(row(
            "page_access",
            joined(&[&level, &page]),
            allowed.to_string(),
        ));
    }
    for (table, cipher, hash) in encryption_policies::table
        .order(encryption_policies::table_name)
        .select((
            encryption_policies::table_name,
            encryption_policies::cipher,
            encryption_policies::hash,
        ))
        .load::<(String, String, String)>(conn)?
    {
        rows.push(row("encryption_policies", table, joined(&[&cipher, &hash])));
    }
    for (table, column, encrypted) in encrypted_columns::table
        .order((
            encrypted_columns::table_name,
            encrypted_columns::column_name,
        ))
        .load::<(String, String, bool)>(conn)?
    {
        rows.push(row(
            "encrypted_columns",
            joined(&[&table, &column]),
            encrypted.to_string(),
        ));
    }
    type JobRow = (
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        i32,
        String,
        String,
        i64,
        Option<i64>,
    );
    for job in reencryption_jobs::table
        .order(reencryption_jobs::id)
        .select((
            reencryption_jobs::id,
            reencryption_jobs::reason,
            reencryption_jobs::state,
            reencryption_jobs::total,
            reencryption_jobs::rewritten,
            reencryption_jobs::unreadable,
            reencryption_jobs::column_index,
            reencryption_jobs::after_row,
            reencryption_jobs::plain_columns,
            reencryption_jobs::started_at,
            reencryption_jobs::finished_at,
        ))
        .load::<JobRow>(conn)?
    {
        let numbers = [
            job.3.to_string(),
            job.4.to_string(),
            job.5.to_string(),
            job.6.to_string(),
            job.9.to_string(),
            job.10.map(|f| f.to_string()).unwrap_or_default(),
        ];
        rows.push(row(
            "reencryption_jobs",
            job.0.to_string(),
            joined(&[
                &job.1,
                &job.2,
                &numbers[0],
                &numbers[1],
                &numbers[2],
                &numbers[3],
                &job.7,
                &job.8,
                &numbers[4],
                &numbers[5],
            ]),
        ));
    }
    for (version, check_value, retired) in root_key_checks::table
        .order(root_key_checks::version)
        .select((
            root_key_checks::version,
            root_key_checks::check_value,
            root_key_checks::retired,
        ))
        .load::<(i64, String, bool)>(conn)?
    {
        rows.push(row(
            "root_key_checks",
            version.to_string(),
            joined(&[&check_value, &retired.to_string()]),
        ));
    }
    for (field, level, mode) in field_visibility::table
        .order((field_visibility::field, field_visibility::level))
        .load::<(String, String, String)>(conn)?
    {
        rows.push(row("field_visibility", joined(&[&field, &level]), mode));
    }
    Ok(rows)
}
