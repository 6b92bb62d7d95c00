//! The only place in medvault that touches ciphers, hashes and keys.
//!
//! The rest of the crate sees a small face: a [`KeyRing`] that derives one key per purpose
//! from the versioned root key, keyed digests for tokens and the audit chain, random ids and
//! tokens, constant-time comparison, a [`PasswordHasher`] (argon2id with a pepper), and
//! [`FieldCrypto`], which seals column values with the admin's chosen [`Suite`] into a
//! self-describing, place-bound stored form (see `envelope.rs`).

mod aead;
mod cache;
mod envelope;
mod field;
mod file;
mod kdf;
mod keys;
mod legacy;
mod password;
mod random;
mod session_keys;
mod suite;
mod totp;

#[cfg(test)]
mod kat_ciphers;
#[cfg(test)]
mod kat_hashes;

pub use cache::DEFAULT_KEY_CACHE_CAPACITY;
pub use envelope::{
    parse_header, stored_form, CryptoError, FieldRef, Header, IntegrityError, StoredForm,
};
pub use field::{FieldCrypto, Opened};
pub use file::{
    file_link_token, open_file, seal_file, sha256_hex, verify_file_link, FileKey, FileLink,
};
pub use keys::{KeyError, KeyRing, Purpose, RootKeys, SecretKey};
pub use password::{PasswordHashError, PasswordHasher};
pub use random::{constant_time_eq, random_id, random_password, random_token};
pub use session_keys::SessionKeys;
pub use suite::{Cipher, HashAlg, Strength, Suite, UnknownSuite};
pub use totp::{
    new_totp_secret, recovery_code_digest, totp_code_at_step, totp_enrolment, totp_secret_text,
    totp_step, verify_totp, STEP_SECONDS,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA-256 over `parts`, each length-prefixed so that ("ab","c") and ("a","bc") differ.
#[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub fn keyed_digest(key: &SecretKey, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// [`keyed_digest`] as lowercase hex, the form stored in the database.
pub fn keyed_digest_hex(key: &SecretKey, parts: &[&[u8]]) -> String {
    hex::encode(keyed_digest(key, parts))
}
