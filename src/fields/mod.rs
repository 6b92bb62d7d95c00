//! Field encryption as the rest of medvault uses it: the admin's policy (which columns are
//! encrypted, under which suite per table), sealing and opening values in their place, blind
//! indexes, and the background job that rewrites values when the policy or the root key changes.

pub mod job_state;
pub mod policy;
pub mod registry;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::crypto::{
    stored_form, FieldCrypto, FieldRef, IntegrityError, KeyRing, StoredForm,
    DEFAULT_KEY_CACHE_CAPACITY,
};
use crate::ids::{OwnerId, RowId};

/// A value that could not be sealed or indexed: the crypto refused, for a key it cannot derive.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct SealError {
    what: &'static str,
    reason: String,
}

/// Why a value could not be stored: the database failed, or the value could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Db(e.into())
    }
}

impl SealError {
    fn new(what: &'static str, reason: impl std::fmt::Display) -> Self {
        SealError {
            what,
            reason: reason.to_string(),
        }
    }
}

pub use policy::Policy;

/// A value read for a page: the text, or the fact that it failed its integrity check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shown {
    pub text: String,
    pub integrity_error: bool,
}

pub struct Fields {
    crypto: RwLock<Arc<FieldCrypto>>,
    policy: RwLock<Arc<Policy>>,
    /// Root key versions no value uses any more; a value claiming one is refused.
    retired: RwLock<HashSet<u32>>,
    /// While a re-encryption job runs, a column may hold old and new forms side by side.
    migrating: AtomicBool,
    /// Encrypted columns that may still hold plain values from before the running job.
    tolerated_plain: RwLock<HashSet<(String, String)>>,
    /// What `/metrics` reports: values sealed, values opened, values refused.
    pub operations: Operations,
}

/// Counts of field encryption operations since the server started.
#[derive(Default)]
pub struct Operations {
    pub sealed: AtomicU64,
    pub opened: AtomicU64,
    pub refused: AtomicU64,
}

impl Fields {
    /// `migration`: the plain-tolerated columns of the running job, if one runs.
    pub fn new(
        keys: KeyRing,
        policy: Policy,
        retired: HashSet<u32>,
        migration: Option<HashSet<(String, String)>>,
    ) -> Fields {
        Fields {
            crypto: RwLock::new(Arc::new(FieldCrypto::new(
                Arc::new(keys),
                DEFAULT_KEY_CACHE_CAPACITY,
            ))),
            policy: RwLock::new(Arc::new(policy)),
            retired: RwLock::new(retired),
            migrating: AtomicBool::new(migration.is_some()),
            tolerated_plain: RwLock::new(migration.unwrap_or_default()),
            operations: Operations::default(),
        }
    }

    pub fn crypto(&self) -> Arc<FieldCrypto> {
        self.crypto
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    /// Uses `keys` from now on (after a root-key rotation).
    pub fn set_keys(&self, keys: KeyRing) {
        let crypto = FieldCrypto::new(Arc::new(keys), DEFAULT_KEY_CACHE_CAPACITY);
        *self.crypto.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(crypto);
    }

    pub fn set_retired(&self, retired: HashSet<u32>) {
        *self.retired.write().unwrap_or_else(|e| e.into_inner()) = retired;
    }

    /// A job started (with the columns whose plain values it may meet) or ended (`None`).
    pub fn set_migration(&self, tolerated_plain: Option<HashSet<(String, String)>>) {
        self.migrating
            .store(tolerated_plain.is_some(), Ordering::SeqCst);
        *self
            .tolerated_plain
            .write()
            .unwrap_or_else(|e| e.into_inner()) = tolerated_plain.unwrap_or_default();
    }

    pub fn is_migrating(&self) -> bool {
        self.migrating.load(Ordering::SeqCst)
    }

    /// `value` in the stored form the policy asks for at `field`'s column.
    pub fn seal(&self, field: &FieldRef<'_>, value: &str) -> Result<String, SealError> {
        self.operations.sealed.fetch_add(1, Ordering::Relaxed);
        match self.policy().target(field.table, field.column) {
            None => Ok(FieldCrypto::seal_plain(value)),
            Some(suite) => self
                .crypto()
                .seal(field, value.as_bytes(), suite)
                .map_err(|e| SealError::new("sealing a field", e)),
        }
    }

    /// The text of a stored value, if it is whole and in its own place.
    pub fn open(&self, field: &FieldRef<'_>, stored: &str) -> Result<String, IntegrityError> {
        let opened = (|| {
            let opened = self.crypto().open(field, stored)?;
            self.vet(field, opened.form)?;
            String::from_utf8(opened.plaintext.to_vec()).map_err(|_| IntegrityError::Forged)
        })();
        let counter = match opened {
            Ok(_) => &self.operations.opened,
            Err(_) => &self.operations.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        opened
    }

    /// Declares that a job is about to move values (a policy saved, a key rotated), before the
    /// new policy or key is in force: from this moment the old forms, and plain values in
    /// `plain_until_now`, are what the columns still hold. [`job::start`] then records the job.
    pub fn expect_migration(&self, plain_until_now: &HashSet<(String, String)>) {
        self.tolerated_plain
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(plain_until_now.iter().cloned());
        self.migrating.store(true, Ordering::SeqCst);
    }

    /// The rules a value that opened must still pass: a value claiming a retired key version is
    /// refused (an old copy written back), and a plain value in an encrypted column is refused
    /// (anyone who can edit the file can write `plain:anything`) unless the running job is
    /// moving that very column out of plain form. Once no job runs, every value of a column
    /// the policy governs is in its current form (the job saw to it), so one in any other form
    /// (under DES while the policy was DES, under an older root key) is an old copy written
    /// back, and refused.
    pub fn vet(&self, field: &FieldRef<'_>, form: StoredForm) -> Result<(), IntegrityError> {
        if !self.is_migrating() && registry::is_encryptable(field.table, field.column) {
            let target = self.policy().target(field.table, field.column);
            if self.crypto().is_stale(form, target) {
                return Err(match form {
                    StoredForm::Plain => IntegrityError::UnexpectedPlain,
                    StoredForm::Sealed { .. } => IntegrityError::OutdatedForm,
                });
            }
        }
        match form {
            StoredForm::Sealed { key_version, .. }
                if self
                    .retired
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&key_version) =>
            {
                Err(IntegrityError::UnknownKeyVersion(key_version))
            }
            StoredForm::Plain
                if self.policy().target(field.table, field.column).is_some()
                    && !self
                        .tolerated_plain
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&(field.table.to_string(), field.column.to_string())) =>
            {
                Err(IntegrityError::UnexpectedPlain)
            }
            _ => Ok(()),
        }
    }

    /// [`Fields::open`] for a page: an integrity error becomes a marked value, never data.
    pub fn show(&self, field: &FieldRef<'_>, stored: &str) -> Shown {
        match self.open(field, stored) {
            Ok(text) => Shown {
                text,
                integrity_error: false,
            },
            Err(e) => {
                tracing::warn!(table = field.table, column = field.column, row = field.row_id, error = %e, "field refused");
                Shown {
                    text: String::new(),
                    integrity_error: true,
                }
            }
        }
    }

    /// The blind index of `value` (normalised: trimmed, lower-cased) for `table`.`column`.
    pub fn blind_index(&self, table: &str, column: &str, value: &str) -> Result<String, SealError> {
        let normalised = value.trim().to_lowercase();
        if normalised.is_empty() {
            return Ok(String::new());
        }
        let policy = self.policy();
        self.crypto()
            .blind_index(
                table,
                column,
                policy.suite_for(table).hash,
                policy.blind_index_bits,
                normalised.as_bytes(),
            )
            .map_err(|e| SealError::new("blind index", e))
    }

    /// The blind indexes an exact search for `value` must look up: the policy's own and, while a
    /// re-encryption job is moving values, every index an earlier policy (another hash or
    /// width) may have left on rows the job has not reached yet. Widths are whole bytes, so
    /// each older index is a prefix of the full-length HMAC under its hash. The caller must
    /// check each match against the value itself: a truncated index is shared by other values.
    pub fn blind_index_candidates(
        &self,
        table: &str,
        column: &str,
        value: &str,
    ) -> Result<Vec<String>, SealError> {
        let normalised = value.trim().to_lowercase();
        if normalised.is_empty() {
            return Ok(Vec::new());
        }
        let mut candidates = vec![self.blind_index(table, column, value)?];
        if self.is_migrating() {
            let crypto = self.crypto();
            for hash in crate::crypto::HashAlg::ALL {
                let full = crypto
                    .blind_index(table, column, hash, 256, normalised.as_bytes())
                    .map_err(|e| SealError::new("blind index", e))?;
                candidates.extend((2..=full.len() / 2).map(|bytes| full[..bytes * 2].to_string()));
            }
            candidates.sort();
            candidates.dedup();
        }
        Ok(candidates)
    }

    /// The stored forms of an account's personal columns: full name, email and email index.
    pub fn seal_account(
        &self,
        user_id: &str,
        full_name: &str,
        email: &str,
    ) -> Result<[String; 3], SealError> {
        let at = |column| FieldRef {
            table: "users",
            column,
            row_id: user_id,
            owner_id: user_id,
        };
        Ok([
            self.seal(&at("full_name"), full_name.trim())?,
            self.seal(&at("email"), email.trim())?,
            self.blind_index("users", "email", email)?,
        ])
    }

    /// An account's full name and email for a page.
    pub fn show_account(&self, user: &crate::db::models::User) -> (Shown, Shown) {
        let at = |column| FieldRef {
            table: "users",
            column,
            row_id: &user.id,
            owner_id: &user.id,
        };
        (
            self.show(&at("full_name"), &user.full_name),
            self.show(&at("email"), &user.email),
        )
    }

    /// Seals and opens the columns of row `row` of `table`, which belongs to `owner`: what the
    /// record pages use.
    pub fn row<'a>(
        &'a self,
        table: &'a str,
        row: RowId<'a>,
        owner: impl Into<OwnerId<'a>>,
    ) -> RowFields<'a> {
        RowFields {
            fields: self,
            table,
            row_id: row.as_str(),
            owner_id: owner.into().as_str(),
        }
    }

    /// Whether `stored` is already in the form the policy wants at `table`.`column`.
    pub fn is_current(&self, table: &str, column: &str, stored: &str) -> bool {
        match stored_form(stored) {
            Ok(form) => !self
                .crypto()
                .is_stale(form, self.policy().target(table, column)),
            Err(_) => false,
        }
    }
}

/// One row's place, to seal and open its columns without repeating it.
pub struct RowFields<'a> {
    fields: &'a Fields,
    table: &'a str,
    row_id: &'a str,
    owner_id: &'a str,
}

impl RowFields<'_> {
    fn at<'c>(&'c self, column: &'c str) -> FieldRef<'c> {
        FieldRef {
            table: self.table,
            column,
            row_id: self.row_id,
            owner_id: self.owner_id,
        }
    }

    pub fn seal(&self, column: &str, value: &str) -> Result<String, SealError> {
        self.fields.seal(&self.at(column), value)
    }

    pub fn show(&self, column: &str, stored: &str) -> Shown {
        self.fields.show(&self.at(column), stored)
    }

    pub fn open(&self, column: &str, stored: &str) -> Result<String, IntegrityError> {
        self.fields.open(&self.at(column), stored)
    }
}
