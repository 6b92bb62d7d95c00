//! Randomness from the operating system's generator, and constant-time comparison.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, Rng, RngCore};
use subtle::ConstantTimeEq;

/// Letters and digits with the look-alikes (0/o, 1/l/i) left out: ids and one-time passwords
/// are sometimes read aloud or typed from paper.
const READABLE: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A 256-bit random token, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random id of `len` readable characters; never derived from personal data.
pub fn random_id(len: usize) -> String {
    (0..len)
        .map(|_| READABLE[OsRng.gen_range(0..READABLE.len())] as char)
        .collect()
}

/// A one-time password: four groups of four readable characters (about 79 bits).
pub fn random_password() -> String {
    (0..4).map(|_| random_id(4)).collect::<Vec<_>>().join("-")
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = random_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, random_token());
    }

    #[test]
    fn ids_use_only_readable_characters() {
        let id = random_id(64);
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| READABLE.contains(&b)));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
