//! A key manager that holds the key wrapping medvault's root keys: OpenBao's or Vault's transit
//! engine, or an AES key in a PKCS#11 HSM. The key manager's own key never leaves it; the root
//! keys are stored in the database only wrapped by it (`wrapped_root_keys`), are unwrapped once
//! at start and then held in memory, wiped on drop. Per-row key derivation stays in the
//! process, so no page waits on the key manager and one that goes away while the server runs
//! changes nothing but `/health`.
//!
//! Why the database and not the key file: every server sharing the database finds the same
//! wrapped keys (a rotation made by one is there for the others), the server's disk holds no
//! key material at all, and a backup carries the wrapped keys its values need, which only the
//! key manager can open.

mod pkcs11;
mod transit;

use zeroize::Zeroizing;

use crate::config::{Config, KeyProviderKind};
use crate::crypto::{KeyRing, RootKeys};
use crate::db::models::wrapped_key::WrappedRootKey;

/// What stops a start, or a rotation, that needs the key manager; the message says what to
/// check. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyManagerError(pub String);

impl KeyManagerError {
    /// The key manager answered, and says its key did not wrap this value.
    fn not_this_key(detail: impl std::fmt::Display) -> KeyManagerError {
        KeyManagerError(format!(
            "{detail}. The root keys in this database were wrapped by another key (another key \
             manager, or a key deleted and made again under the same name): start with the key \
             manager and key that wrapped them"
        ))
    }
}

/// The key manager `key_provider` names.
pub enum KeyManager {
    Transit(transit::Transit),
    Pkcs11(pkcs11::Hsm),
}

impl KeyManager {
    /// Reaches the key manager and checks its key (there, of a type that can wrap, usable with
    /// these credentials); `None` when the root key is in the key file or the environment.
    pub fn connect(config: &Config) -> Result<Option<KeyManager>, KeyManagerError> {
        match config.key_provider() {
            KeyProviderKind::File | KeyProviderKind::Env => Ok(None),
            KeyProviderKind::Transit => Ok(Some(KeyManager::Transit(transit::Transit::connect(
                config,
            )?))),
            KeyProviderKind::Pkcs11 => Ok(Some(KeyManager::Pkcs11(pkcs11::Hsm::connect(config)?))),
        }
    }

    pub fn provider(&self) -> &'static str {
        match self {
            KeyManager::Transit(_) => KeyProviderKind::Transit.name(),
            KeyManager::Pkcs11(_) => KeyProviderKind::Pkcs11.name(),
        }
    }

    /// The key manager's key new wrappings are made with.
    pub fn wrapping_key(&self) -> &str {
        match self {
            KeyManager::Transit(t) => t.key_name(),
            KeyManager::Pkcs11(h) => h.key_label(),
        }
    }

    /// Root key `version` of `keys`, wrapped by the key manager's key.
    pub fn wrap(&self, keys: &RootKeys, version: u32) -> Result<WrappedRootKey, KeyManagerError> {
        let wrapped = keys
            .wrap_version(version, |bytes| match self {
                KeyManager::Transit(t) => t.wrap(bytes),
                KeyManager::Pkcs11(h) => h.wrap(bytes),
            })
            .ok_or_else(|| KeyManagerError(format!("root key version {version} is not held")))??;
        Ok(WrappedRootKey {
            version,
            provider: self.provider().into(),
            wrapping_key: self.wrapping_key().into(),
            wrapped,
        })
    }

    /// Every stored version unwrapped. A version wrapped by another provider, or that the key
    /// manager cannot unwrap (another key manager's key, a key deleted and made again), stops
    /// the start.
    pub fn unwrap_all(&self, stored: &[WrappedRootKey]) -> Result<RootKeys, KeyManagerError> {
        let mut parts = Vec::with_capacity(stored.len());
        for key in stored {
            if key.provider != self.provider() {
                return Err(KeyManagerError(format!(
                    "root key version {} was wrapped by key provider {}, but key_provider is {}. \
                     Start with the key provider that wrapped it.",
                    key.version,
                    key.provider,
                    self.provider()
                )));
            }
            let bytes: Zeroizing<Vec<u8>> = match self {
                KeyManager::Transit(t) => t.unwrap(&key.wrapped, &key.wrapping_key),
                KeyManager::Pkcs11(h) => h.unwrap(&key.wrapped, &key.wrapping_key),
            }
            .map_err(|e| {
                KeyManagerError(format!(
                    "the key manager could not unwrap root key version {} with its key {:?}: \
                     {e}",
                    key.version, key.wrapping_key
                ))
            })?;
            parts.push((key.version, bytes));
        }
        RootKeys::from_unwrapped(parts).map_err(|e| {
            KeyManagerError(format!(
                "the key manager unwrapped something that is not a root key: {e}"
            ))
        })
    }

    /// `key` wrapped again under the key manager's newest key, when it is not already: after
    /// the transit key was rotated, or `pkcs11_key` names a new HSM key. `None`: up to date.
    pub fn rewrap_if_stale(
        &self,
        key: &WrappedRootKey,
    ) -> Result<Option<WrappedRootKey>, KeyManagerError> {
        let rewrapped = match self {
            KeyManager::Transit(t) => t.rewrap_if_stale(&key.wrapped, &key.wrapping_key)?,
            KeyManager::Pkcs11(h) => h.rewrap_if_stale(&key.wrapped, &key.wrapping_key)?,
        };
        Ok(rewrapped.map(|wrapped| WrappedRootKey {
            wrapped,
            wrapping_key: self.wrapping_key().into(),
            ..key.clone()
        }))
    }

    /// Whether the key manager answers now and still has its key: what `/health` reports.
    pub fn reachable(&self) -> bool {
        match self {
            KeyManager::Transit(t) => t.reachable(),
            KeyManager::Pkcs11(h) => h.reachable(),
        }
    }

    /// For messages and `/health`: which key manager, which key.
    pub fn describe(&self) -> String {
        match self {
            KeyManager::Transit(t) => t.describe(),
            KeyManager::Pkcs11(h) => h.describe(),
        }
    }
}

/// The root keys a start under a key manager opens with, and the wrapped versions it must
/// store once the database's checks have passed (nothing is written before).
pub struct Opened {
    pub keys: RootKeys,
    pub to_store: Vec<WrappedRootKey>,
    /// Why `to_store` is not empty, for the audit trail.
    pub reason: Option<&'static str>,
}

/// What the key manager makes of the database's wrapped keys:
/// - none, on a new database: a new root key, to be wrapped and stored;
/// - none, on a database written under the key file: that file's keys, wrapped (a clinic
///   moving to a key manager); the caller checks them against the key check values first;
/// - some: unwrapped, and any not under the key manager's newest key rewrapped.
pub fn open_root_keys(
    manager: &KeyManager,
    stored: &[WrappedRootKey],
    database_has_keys: bool,
    key_file: &std::path::Path,
) -> Result<Opened, KeyManagerError> {
    if stored.is_empty() {
        let (keys, reason) = if database_has_keys {
            if !key_file.exists() {
                return Err(KeyManagerError(format!(
                    "the database was written under a root key that is neither stored wrapped \
                     in it nor in a key file at {}. Start once with the key file in place (its \
                     keys are then wrapped by the key manager and stored), or with the key \
                     provider it was written under.",
                    key_file.display()
                )));
            }
            let keys = crate::private_files::read_key_file(key_file)
                .map_err(|e| KeyManagerError(e.to_string()))?;
            (keys, "the key file's root keys wrapped by the key manager")
        } else {
            (
                RootKeys::generate(),
                "a new root key wrapped by the key manager",
            )
        };
        let to_store = keys
            .versions()
            .map(|version| manager.wrap(&keys, version))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Opened {
            keys,
            to_store,
            reason: Some(reason),
        });
    }
    let keys = manager.unwrap_all(stored)?;
    let mut to_store = Vec::new();
    for key in stored {
        if let Some(rewrapped) = manager.rewrap_if_stale(key)? {
            to_store.push(rewrapped);
        }
    }
    let reason = (!to_store.is_empty()).then_some("rewrapped under the key manager's newest key");
    Ok(Opened {
        keys,
        to_store,
        reason,
    })
}

/// A rotation under a key manager: the stored versions unwrapped again (they must still be
/// the keys `in_use` was opened with), plus a new version, wrapped.
pub fn rotated_root_keys(
    manager: &KeyManager,
    stored: &[WrappedRootKey],
) -> Result<(KeyRing, RootKeys, WrappedRootKey), KeyManagerError> {
    let keys = manager.unwrap_all(stored)?;
    let reread = KeyRing::new(keys.clone());
    let rotated = keys.with_new_version();
    let wrapped = manager.wrap(&rotated, rotated.current_version())?;
    Ok((reread, rotated, wrapped))
}
