//! Field encryption: the one face the rest of medvault uses to seal and open column values.

use crate::ids::{OwnerId, RowId};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::aead::AeadKey;
use super::cache::KeyCache;
use super::envelope::{
    self, CryptoError, Decoded, FieldRef, Header, IntegrityError, StoredForm, PLAIN_PREFIX,
};
use super::kdf::{self, RowKey};
use super::keys::KeyRing;
use super::suite::{HashAlg, Suite};
use super::{aead, legacy};

/// Blind indexes are at least 16 bits (fewer would match half the table) and at most 256.
const BLIND_INDEX_MIN_BITS: u32 = 16;
const BLIND_INDEX_MAX_BITS: u32 = 256;

/// A value read back, and how it was stored.
pub struct Opened {
    /// Wiped from memory when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    pub form: StoredForm,
}

impl Opened {
    /// Refuses a `plain:` value. Anyone who can edit the database can write `plain:anything`,
    /// and it opens (there is nothing to authenticate), so a column whose policy is encrypted
    /// should call this unless a plain→sealed migration of that column is still running.
    pub fn require_sealed(self) -> Result<Opened, IntegrityError> {
        match self.form {
            StoredForm::Plain => Err(IntegrityError::UnexpectedPlain),
            StoredForm::Sealed { .. } => Ok(self),
        }
    }
}

/// What the cache holds per (root version, suite, table, owner, row): a ready AEAD instance,
/// or the legacy wrapper's row key. Both are wiped when the last copy is dropped.
#[derive(Clone)]
enum FieldKey {
    Aead(Arc<AeadKey>),
    Legacy(RowKey),
}

/// Seals and opens field values with keys derived per table and row from the root keys.
///
/// Holds the [`KeyRing`] behind an `Arc` so that it can be shared with the rest of the app
/// (`KeyRing` is `Clone` for an owner that holds it by value) and a bounded cache of row keys.
pub struct FieldCrypto {
    keys: Arc<KeyRing>,
    cache: KeyCache<FieldKey>,
}

impl FieldCrypto {
    /// `cache_capacity` row keys are kept (0: derive every time);
    /// [`super::DEFAULT_KEY_CACHE_CAPACITY`] suits most deployments.
    pub fn new(keys: Arc<KeyRing>, cache_capacity: usize) -> Self {
        FieldCrypto {
            keys,
            cache: KeyCache::new(cache_capacity),
        }
    }

    /// The root keys these values are sealed under: every version the database knows, after
    /// a rotation too.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.clone()
    }

    /// The root key version new values are sealed with.
    pub fn current_key_version(&self) -> u32 {
        self.keys.current_root_version()
    }

    /// Forgets every cached row key (and wipes it).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Encrypts `plaintext` for `field` with `suite` under the current root key version.
    pub fn seal(
        &self,
        field: &FieldRef<'_>,
        plaintext: &[u8],
        suite: Suite,
    ) -> Result<String, CryptoError> {
        Ok(envelope::encode(&self.seal_bytes(field, plaintext, suite)?))
    }

    /// The binary stored form (header ‖ body) of [`FieldCrypto::seal`], for values kept outside
    /// text columns, such as files: no base64 on the way in or out.
    pub fn seal_bytes(
        &self,
        field: &FieldRef<'_>,
        plaintext: &[u8],
        suite: Suite,
    ) -> Result<Vec<u8>, CryptoError> {
        let version = self.keys.current_root_version();
        let header = Header::new(suite, version).to_bytes();
        let key = self
            .field_key(version, suite, field)
            .ok_or(CryptoError::KeyUnavailable(version))?;
        let place = field.place_bytes();
        let bytes = match &key {
            FieldKey::Aead(aead) => aead::seal(suite.cipher, aead, &header, &place, plaintext)?,
            FieldKey::Legacy(row_key) => {
                legacy::seal(suite, row_key.expose(), &header, &place, plaintext)?
            }
        };
        Ok(bytes)
    }

    /// The stored form of a column that is not encrypted.
    pub fn seal_plain(plaintext: &str) -> String {
        format!("{PLAIN_PREFIX}{plaintext}")
    }

    /// Reads any stored form back. A sealed value opens only in the place it was sealed for,
    /// with the suite and key version its header names, and only if no bit of it has changed.
    pub fn open(&self, field: &FieldRef<'_>, stored: &str) -> Result<Opened, IntegrityError> {
        let (header, bytes) = match envelope::decode(stored)? {
            Decoded::Plain(value) => {
                return Ok(Opened {
                    plaintext: Zeroizing::new(value.as_bytes().to_vec()),
                    form: StoredForm::Plain,
                })
            }
            Decoded::Sealed { header, bytes } => (header, bytes),
        };
        self.open_sealed(field, header, bytes)
    }

    /// Opens the binary form made by [`FieldCrypto::seal_bytes`].
    pub fn open_bytes(
        &self,
        field: &FieldRef<'_>,
        sealed: &[u8],
    ) -> Result<Opened, IntegrityError> {
        let header = Header::from_bytes(sealed)?;
        self.open_sealed(field, header, Zeroizing::new(sealed.to_vec()))
    }

    fn open_sealed(
        &self,
        field: &FieldRef<'_>,
        header: Header,
        bytes: Zeroizing<Vec<u8>>,
    ) -> Result<Opened, IntegrityError> {
        let suite = header.suite;
        let key = self
            .field_key(header.key_version, suite, field)
            .ok_or(IntegrityError::UnknownKeyVersion(header.key_version))?;
        let place = field.place_bytes();
        let plaintext = match &key {
            FieldKey::Aead(aead) => aead::open(suite.cipher, aead, bytes, &place)?,
            FieldKey::Legacy(row_key) => legacy::open(suite, row_key.expose(), bytes, &place)?,
        };
        Ok(Opened {
            plaintext,
            form: StoredForm::Sealed {
                suite,
                key_version: header.key_version,
            },
        })
    }

    /// Whether a value in `form` should be rewritten to match `policy` (`None`: the column is
    /// not encrypted) and the current root key version.
    pub fn is_stale(&self, form: StoredForm, policy: Option<Suite>) -> bool {
        let current = match policy {
            None => StoredForm::Plain,
            Some(suite) => StoredForm::Sealed {
                suite,
                key_version: self.current_key_version(),
            },
        };
        form != current
    }

    /// A keyed blind index of `value` for (`table`, `column`): HMAC under that column's own key,
    /// truncated to `bits` (rounded down to whole bytes, clamped to 16..=256 and to the hash's
    /// length), as lowercase hex. Truncation is deliberate: distinct values sometimes share an
    /// index, so an index alone never pins down a value. Normalise `value` (case, spacing)
    /// before calling, the same way when storing and when searching.
    ///
    /// The key comes from the oldest root key version, like the other service keys, so that
    /// rotating the root key does not invalidate every stored index at once.
    pub fn blind_index(
        &self,
        table: &str,
        column: &str,
        hash: HashAlg,
        bits: u32,
        value: &[u8],
    ) -> Result<String, CryptoError> {
        let bits = bits.clamp(BLIND_INDEX_MIN_BITS, BLIND_INDEX_MAX_BITS);
        let bytes = ((bits / 8) as usize).min(hash.output_len());
        let version = self.keys.service_root_version();
        // The service version is by construction one the ring holds; if it were not, or HKDF
        // refused, an index under an empty key would be computable by anyone: refuse instead.
        let key = self
            .keys
            .with_root_key(version, |root| {
                kdf::blind_index_key(hash, root, table, column)
            })
            .flatten()
            .ok_or(CryptoError::KeyUnavailable(version))?;
        let mac = kdf::hmac(hash, &key, &[value]);
        if mac.len() < bytes {
            return Err(CryptoError::KeyUnavailable(version));
        }
        Ok(hex::encode(&mac[..bytes]))
    }

    /// The key for (`version`, `suite`, place), from the cache or freshly derived.
    /// `None` only if the ring does not hold root key `version`.
    fn field_key(&self, version: u32, suite: Suite, field: &FieldRef<'_>) -> Option<FieldKey> {
        // Cache id: everything the key depends on, each variable part length-prefixed.
        let mut id =
            Vec::with_capacity(20 + field.table.len() + field.owner_id.len() + field.row_id.len());
        id.extend_from_slice(&version.to_be_bytes());
        id.extend_from_slice(&[suite.cipher.id(), suite.hash.id()]);
        kdf::push_length_prefixed(&mut id, field.table.as_bytes());
        kdf::push_length_prefixed(&mut id, field.owner_id.as_bytes());
        kdf::push_length_prefixed(&mut id, field.row_id.as_bytes());
        if let Some(key) = self.cache.get(&id) {
            return Some(key);
        }
        let row_key = self.keys.with_root_key(version, |root| {
            let table_key = kdf::table_key(suite.hash, root, field.table)?;
            let info = kdf::row_info(OwnerId(field.owner_id), RowId(field.row_id), suite.cipher);
            kdf::row_key(suite.hash, &table_key, &info, suite.cipher)
        })??;
        let key = if suite.cipher.is_aead() {
            // The row key has the cipher's key length by construction, so this cannot fail.
            FieldKey::Aead(Arc::new(AeadKey::new(suite.cipher, row_key.expose())?))
        } else {
            FieldKey::Legacy(row_key)
        };
        self.cache.insert(&id, key.clone());
        Some(key)
    }
}
