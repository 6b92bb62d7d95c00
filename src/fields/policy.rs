//! The admin's encryption policy: a suite per table, encrypted or not per column, the size of
//! blind indexes. Kept in the database, held in memory for every request.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::registry::{self, TABLES};
use crate::crypto::Suite;
use crate::db::models::Setting;
use crate::db::schema::{encrypted_columns, encryption_policies};
use crate::db::Conn;

pub const BLIND_INDEX_BITS_SETTING: &str = "fields.blind_index_bits";
pub const ID_LENGTH_SETTING: &str = "ids.length";
pub const DEFAULT_BLIND_INDEX_BITS: u32 = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub suites: HashMap<String, Suite>,
    pub encrypted: HashSet<(String, String)>,
    pub blind_index_bits: u32,
}

impl Policy {
    pub fn suite_for(&self, table: &str) -> Suite {
        self.suites.get(table).copied().unwrap_or_default()
    }

    /// The suite `table`.`column` is sealed with, or `None` when it is stored plain.
    pub fn target(&self, table: &str, column: &str) -> Option<Suite> {
        self.encrypted
            .contains(&(table.to_string(), column.to_string()))
            .then(|| self.suite_for(table))
    }

    pub fn is_encrypted(&self, table: &str, column: &str) -> bool {
        self.target(table, column).is_some()
    }

    /// Gives every table and encryptable column without a row its default, so a column added
    /// in a new version is encrypted from the start. Returns the columns that were added: until
    /// now they were stored plain.
    pub fn insert_defaults(now: i64, conn: &mut Conn) -> QueryResult<HashSet<(String, String)>> {
        let mut added = HashSet::new();
        for table in TABLES {
            crate::db::per_backend!(conn, |inner| diesel::insert_into(
                encryption_policies::table
            )
            .values((
                encryption_policies::table_name.eq(table.name),
                encryption_policies::cipher.eq(Suite::DEFAULT.cipher.key()),
                encryption_policies::hash.eq(Suite::DEFAULT.hash.key()),
                encryption_policies::updated_at.eq(now),
            ))
            .on_conflict(encryption_policies::table_name)
            .do_nothing()
            .execute(inner))?;
        }
        for (table, column) in registry::encryptable_columns() {
            let inserted = crate::db::per_backend!(conn, |inner| diesel::insert_into(
                encrypted_columns::table
            )
            .values((
                encrypted_columns::table_name.eq(table.name),
                encrypted_columns::column_name.eq(column.name),
                encrypted_columns::encrypted.eq(column.encrypted_by_default),
            ))
            .on_conflict((
                encrypted_columns::table_name,
                encrypted_columns::column_name,
            ))
            .do_nothing()
            .execute(inner))?;
            if inserted > 0 {
                added.insert((table.name.to_string(), column.name.to_string()));
            }
        }
        Ok(added)
    }

    /// The encryptable columns this policy stores plain.
    pub fn plain_columns(&self) -> HashSet<(String, String)> {
        registry::encryptable_columns()
            .into_iter()
            .filter(|(t, c)| !self.is_encrypted(t.name, c.name))
            .map(|(t, c)| (t.name.to_string(), c.name.to_string()))
            .collect()
    }

    /// The policy as stored. A suite this version cannot read falls back to the default rather
    /// than leaving values unsealed; the encryption page shows what is in force.
    pub fn load(conn: &mut Conn) -> QueryResult<Policy> {
        let suites = encryption_policies::table
            .select((
                encryption_policies::table_name,
                encryption_policies::cipher,
                encryption_policies::hash,
            ))
            .load::<(String, String, String)>(conn)?
            .into_iter()
            .map(|(table, cipher, hash)| {
                let suite = Suite::parse_keys(&cipher, &hash).unwrap_or_else(|e| {
                    tracing::error!(table, error = %e, "unknown suite in the policy; using the default");
                    Suite::DEFAULT
                });
                (table, suite)
            })
            .collect();
        let encrypted = encrypted_columns::table
            .filter(encrypted_columns::encrypted.eq(true))
            .select((
                encrypted_columns::table_name,
                encrypted_columns::column_name,
            ))
            .load::<(String, String)>(conn)?
            .into_iter()
            .filter(|(t, c)| registry::is_encryptable(t, c))
            .collect();
        let blind_index_bits = Setting::get(BLIND_INDEX_BITS_SETTING, conn)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_BLIND_INDEX_BITS);
        Ok(Policy {
            suites,
            encrypted,
            blind_index_bits,
        })
    }

    /// Writes the whole policy; the caller's transaction also audits it and starts the job.
    pub fn save(&self, now: i64, conn: &mut Conn) -> QueryResult<()> {
        for table in TABLES {
            let suite = self.suite_for(table.name);
            crate::db::per_backend!(conn, |inner| diesel::insert_into(
                encryption_policies::table
            )
            .values((
                encryption_policies::table_name.eq(table.name),
                encryption_policies::cipher.eq(suite.cipher.key()),
                encryption_policies::hash.eq(suite.hash.key()),
                encryption_policies::updated_at.eq(now),
            ))
            .on_conflict(encryption_policies::table_name)
            .do_update()
            .set((
                encryption_policies::cipher.eq(excluded(encryption_policies::cipher)),
                encryption_policies::hash.eq(excluded(encryption_policies::hash)),
                encryption_policies::updated_at.eq(excluded(encryption_policies::updated_at)),
            ))
            .execute(inner))?;
        }
        for (table, column) in registry::encryptable_columns() {
            crate::db::per_backend!(conn, |inner| diesel::insert_into(encrypted_columns::table)
                .values((
                    encrypted_columns::table_name.eq(table.name),
                    encrypted_columns::column_name.eq(column.name),
                    encrypted_columns::encrypted.eq(self.is_encrypted(table.name, column.name)),
                ))
                .on_conflict((
                    encrypted_columns::table_name,
                    encrypted_columns::column_name,
                ))
                .do_update()
                .set(encrypted_columns::encrypted.eq(excluded(encrypted_columns::encrypted)))
                .execute(inner))?;
        }
        Setting::set(
            BLIND_INDEX_BITS_SETTING,
            &self.blind_index_bits.to_string(),
            conn,
        )
    }
}
