//! The versioned root key and the keys derived from it, one per purpose (HKDF, RFC 5869).

use base64::{engine::general_purpose::STANDARD, Engine};
use hkdf::Hkdf;
use rand::{rngs::OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Key material that is wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        SecretKey(bytes.to_vec())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the root key is empty")]
    Empty,
    #[error("root key version {0:?} is not a positive whole number")]
    BadVersion(String),
    #[error("root key version {0} is not valid base64")]
    BadBase64(u32),
    #[error("root key version {0} is {1} bytes long; it must be exactly 32 bytes (256 bits)")]
    BadLength(u32, usize),
    #[error("root key version {0} is given twice")]
    DuplicateVersion(u32),
}

/// Every root key version the key provider holds; the newest encrypts, older ones only open.
/// `Clone` so that field encryption can share the ring (`Arc<KeyRing>`); each copy is wiped
/// when dropped.
#[derive(Clone)]
pub struct RootKeys {
    /// Sorted by version, ascending; never empty.
    versions: Vec<(u32, Zeroizing<[u8; 32]>)>,
}

impl RootKeys {
    /// A new random root key, version 1.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        RootKeys {
            versions: vec![(1, key)],
        }
    }

    /// Parses the key provider's text: entries separated by newlines or commas, each either
    /// `VERSION:BASE64` or a bare `BASE64` (version 1).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut versions: Vec<(u32, Zeroizing<[u8; 32]>)> = Vec::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (version, encoded) = match entry.split_once(':') {
                Some((v, k)) => {
                    let version = v
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| KeyError::BadVersion(v.to_string()))?;
                    (version, k.trim())
                }
                None => (1, entry),
            };
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyError::BadBase64(version))?,
            );
            push_version(&mut versions, version, &bytes)?;
        }
        RootKeys::from_versions(versions)
    }

    /// The root keys a key manager unwrapped: each `(version, bytes)` as it was wrapped.
    pub fn from_unwrapped(parts: Vec<(u32, Zeroizing<Vec<u8>>)>) -> Result<Self, KeyError> {
        let mut versions: Vec<(u32, Zeroizing<[u8; 32]>)> = Vec::new();
        for (version, bytes) in parts {
            if version == 0 {
                return Err(KeyError::BadVersion(version.to_string()));
            }
            push_version(&mut versions, version, &bytes)?;
        }
        RootKeys::from_versions(versions)
    }

    /// The versions gathered by [`RootKeys::parse`] or [`RootKeys::from_unwrapped`], in order.
    fn from_versions(mut versions: Vec<(u32, Zeroizing<[u8; 32]>)>) -> Result<Self, KeyError> {
        if versions.is_empty() {
            return Err(KeyError::Empty);
        }
        versions.sort_by_key(|(v, _)| *v);
        Ok(RootKeys { versions })
    }

    /// Hands root key `version`'s bytes to `wrap` (a key manager's wrapping); they go nowhere
    /// else. `None` when this version is not held.
    pub fn wrap_version<T, E>(
        &self,
        version: u32,
        wrap: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        self.key(version).map(|key| wrap(key))
    }

    /// The text [`RootKeys::parse`] reads back, for the key file.
    pub fn to_provider_text(&self) -> Zeroizing<String> {
        let mut text = String::new();
        for (version, key) in &self.versions {
            text.push_str(&format!("{version}:{}\n", STANDARD.encode(key.as_ref())));
        }
        Zeroizing::new(text)
    }

    /// These keys plus a new random key one version above the newest: a rotation.
    pub fn with_new_version(&self) -> RootKeys {
        let mut versions = self.versions.clone();
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        versions.push((self.current_version() + 1, key));
        RootKeys { versions }
    }

    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.versions.iter().map(|(v, _)| *v)
    }

    pub fn current_version(&self) -> u32 {
        self.versions.last().map(|(v, _)| *v).unwrap_or(1)
    }

    fn key(&self, version: u32) -> Option<&[u8; 32]> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| &**k)
    }
}

/// Adds root key `version`, which must be 32 bytes and not given already.
fn push_version(
    versions: &mut Vec<(u32, Zeroizing<[u8; 32]>)>,
    version: u32,
    bytes: &[u8],
) -> Result<(), KeyError> {
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::BadLength(version, bytes.len()))?;
    if versions.iter().any(|(v, _)| *v == version) {
        return Err(KeyError::DuplicateVersion(version));
    }
    versions.push((version, Zeroizing::new(key)));
    Ok(())
}

/// What a derived key is for. Each purpose has its own HKDF label, so no key serves two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proves at start-up that the key provider gave the key the database was written with.
    KeyCheck,
    /// Chains the audit trail's HMACs.
    AuditChain,
    /// argon2id's secret parameter: a stolen database alone cannot be brute-forced.
    PasswordPepper,
    /// Seeds the session keys that are renewed every interval.
    SessionSeed,
    /// Rocket's private-cookie key.
    CookieSecret,
    /// Keys the digests of two-factor recovery codes.
    RecoveryCodes,
    /// Signs the expiring download links of medical files.
    FileLinks,
    /// Seals the admin's state (settings, access, encryption policy, jobs, masking).
    StateSeal,
}

impl Purpose {
    /// Rocket's cookie key is 512 bits; every other purpose key is 256.
    fn key_len(self) -> usize {
        match self {
            Purpose::CookieSecret => 64,
            _ => 32,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Purpose::KeyCheck => "medvault/v1/key-check",
            Purpose::AuditChain => "medvault/v1/audit-chain",
            Purpose::PasswordPepper => "medvault/v1/password-pepper",
            Purpose::SessionSeed => "medvault/v1/session-seed",
            Purpose::CookieSecret => "medvault/v1/cookie-secret",
            Purpose::RecoveryCodes => "medvault/v1/recovery-codes",
            Purpose::FileLinks => "medvault/v1/file-links",
            Purpose::StateSeal => "medvault/v1/state-seal",
        }
    }
}

/// Derives every key medvault uses from the root keys.
#[derive(Clone)]
pub struct KeyRing {
    root: RootKeys,
}

impl KeyRing {
    pub fn new(root: RootKeys) -> Self {
        KeyRing { root }
    }

    pub fn root_versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.root.versions()
    }

    pub fn current_root_version(&self) -> u32 {
        self.root.current_version()
    }

    /// The service key for `purpose`. Service keys come from the oldest root key the provider
    /// holds, so that rotating the root key (which re-encrypts fields) does not invalidate every
    /// password hash and audit link at once.
    #[allow(
        clippy::expect_used,
        reason = "a key ring always holds its oldest root version"
    )]
    pub fn purpose_key(&self, purpose: Purpose) -> SecretKey {
        let base = self.service_root_version();
        self.derive(base, purpose.label().as_bytes(), purpose.key_len())
            .expect("the oldest root version is always present")
    }

    /// The root key version service keys (and blind-index keys) come from: the oldest held.
    pub fn service_root_version(&self) -> u32 {
        self.root.versions.first().map(|(v, _)| *v).unwrap_or(1)
    }

    /// Runs `f` on root key `version`'s bytes, for derivations with another hash than
    /// [`KeyRing::derive`]'s SHA-256 (field keys, see `kdf.rs`). Crypto-internal: the root key
    /// never leaves this module.
    pub(super) fn with_root_key<R>(&self, version: u32, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.root.key(version).map(|key| f(key))
    }

    /// HKDF-SHA-256 from root key `version` with `info` as the label.
    pub fn derive(&self, version: u32, info: &[u8], len: usize) -> Option<SecretKey> {
        let root = self.root.key(version)?;
        let hk = Hkdf::<Sha256>::new(Some(b"medvault root key"), root);
        let mut out = Zeroizing::new(vec![0u8; len]);
        hk.expand(info, &mut out).ok()?;
        Some(SecretKey::from_bytes(&out))
    }

    /// Whether this ring holds root key `version` as the database recorded it (its key check
    /// value).
    pub fn matches_recorded(&self, version: i32, check_value: &str) -> bool {
        u32::try_from(version)
            .ok()
            .and_then(|v| self.key_check_value(v))
            .is_some_and(|kcv| super::constant_time_eq(kcv.as_bytes(), check_value.as_bytes()))
    }

    /// A short value that identifies root key `version` without revealing it, stored in the
    /// database so that a start with the wrong key fails before anything is written.
    pub fn key_check_value(&self, version: u32) -> Option<String> {
        let key = self.derive(version, Purpose::KeyCheck.label().as_bytes(), 32)?;
        let digest = super::keyed_digest(&key, &[b"medvault key check value"]);
        Some(hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_bare_and_versioned_entries() {
        let keys = RootKeys::parse(&format!("{KEY_A}\n2:{KEY_A}")).unwrap();
        assert_eq!(keys.versions().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(keys.current_version(), 2);
    }

    #[test]
    fn refuses_short_keys_bad_versions_and_duplicates() {
        assert_eq!(
            RootKeys::parse("AAEC").err(),
            Some(KeyError::BadLength(1, 3))
        );
        assert_eq!(
            RootKeys::parse(&format!("0:{KEY_A}")).err(),
            Some(KeyError::BadVersion("0".into()))
        );
        assert_eq!(
            RootKeys::parse(&format!("{KEY_A},1:{KEY_A}")).err(),
            Some(KeyError::DuplicateVersion(1))
        );
        assert_eq!(RootKeys::parse(" \n").err(), Some(KeyError::Empty));
        assert_eq!(
            RootKeys::parse("not base64!").err(),
            Some(KeyError::BadBase64(1))
        );
    }

    #[test]
    fn provider_text_round_trips() {
        let keys = RootKeys::generate();
        let again = RootKeys::parse(&keys.to_provider_text()).unwrap();
        let (a, b) = (KeyRing::new(keys), KeyRing::new(again));
        assert_eq!(a.key_check_value(1), b.key_check_value(1));
    }

    #[test]
    fn unwrapped_versions_make_the_same_ring_and_bad_ones_are_refused() {
        let keys = RootKeys::generate().with_new_version();
        let parts: Vec<(u32, Zeroizing<Vec<u8>>)> = keys
            .versions()
            .map(|v| {
                let bytes = keys
                    .wrap_version(v, |b| Ok::<_, ()>(b.to_vec()))
                    .unwrap()
                    .unwrap();
                (v, Zeroizing::new(bytes))
            })
            .collect();
        let again = RootKeys::from_unwrapped(parts).unwrap();
        let (a, b) = (KeyRing::new(keys), KeyRing::new(again));
        assert_eq!(a.key_check_value(1), b.key_check_value(1));
        assert_eq!(a.key_check_value(2), b.key_check_value(2));
        assert_eq!(
            RootKeys::from_unwrapped(vec![(1, Zeroizing::new(vec![0; 16]))]).err(),
            Some(KeyError::BadLength(1, 16))
        );
        assert_eq!(
            RootKeys::from_unwrapped(Vec::new()).err(),
            Some(KeyError::Empty)
        );
        assert!(RootKeys::generate()
            .wrap_version(2, |_| Ok::<_, ()>(()))
            .is_none());
    }

    #[test]
    fn each_purpose_gets_its_own_key() {
        let ring = KeyRing::new(RootKeys::generate());
        let audit = ring.purpose_key(Purpose::AuditChain);
        let pepper = ring.purpose_key(Purpose::PasswordPepper);
        assert_ne!(audit.expose(), pepper.expose());
        assert_eq!(
            audit.expose(),
            ring.purpose_key(Purpose::AuditChain).expose()
        );
    }

    #[test]
    fn different_root_keys_have_different_check_values() {
        let a = KeyRing::new(RootKeys::generate());
        let b = KeyRing::new(RootKeys::generate());
        assert_ne!(a.key_check_value(1), b.key_check_value(1));
        assert_eq!(a.key_check_value(7), None);
    }
}
