//! The only place in medvault that touches ciphers, hashes and keys.
//!
//! The rest of the crate sees a small face: a [`KeyRing`] that derives one key per purpose
//! from the versioned root key, keyed digests for tokens and the audit chain, random ids and
//! tokens, constant-time comparison, and a [`PasswordHasher`] (argon2id with a pepper).

mod keys;
mod password;
mod random;

pub use keys::{KeyError, KeyRing, Purpose, RootKeys, SecretKey};
pub use password::{PasswordHashError, PasswordHasher};
pub use random::{constant_time_eq, random_id, random_password, random_token};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA-256 over `parts`, each length-prefixed so that ("ab","c") and ("a","bc") differ.
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
