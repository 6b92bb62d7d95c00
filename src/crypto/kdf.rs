//! Hash-generic HMAC and HKDF (RFC 2104, RFC 5869), and the field-key hierarchy built on them.
//!
//! The hierarchy, each level an HKDF with the suite's hash:
//!
//! ```text
//! root key v ──HKDF(info "medvault/v1/table/<table>")──▶ table key (one hash length)
//! table key ──HKDF-Expand(info "medvault/v1/row" ‖ lp(owner) ‖ lp(row) ‖ cipher id)──▶ row key
//! root key v ──HKDF(info "medvault/v1/blind-index" ‖ lp(table) ‖ lp(column))──▶ blind-index key
//! ```
//!
//! Deriving per hash means a value relabelled with another hash id is opened with an unrelated
//! key; putting the cipher id in the row key's label means no key ever serves two algorithms.

use crate::ids::{OwnerId, RowId};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::suite::{Cipher, HashAlg};

/// Runs `$body` with `$H` bound to the hash type `$alg` names. Keeps the generic RustCrypto
/// types inside this file; everything else passes a [`HashAlg`] value.
macro_rules! with_hash {
    ($alg:expr, $H:ident => $body:expr) => {
        match $alg {
            HashAlg::Md5 => {
                type $H = md5::Md5;
                $body
            }
            HashAlg::Sha1 => {
                type $H = sha1::Sha1;
                $body
            }
            HashAlg::Sha224 => {
                type $H = sha2::Sha224;
                $body
            }
            HashAlg::Sha256 => {
                type $H = sha2::Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $H = sha2::Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $H = sha2::Sha512;
                $body
            }
            HashAlg::Sha3_224 => {
                type $H = sha3::Sha3_224;
                $body
            }
            HashAlg::Sha3_256 => {
                type $H = sha3::Sha3_256;
                $body
            }
            HashAlg::Sha3_384 => {
                type $H = sha3::Sha3_384;
                $body
            }
            HashAlg::Sha3_512 => {
                type $H = sha3::Sha3_512;
                $body
            }
        }
    };
}

/// HKDF-Extract salt for every field key, so these keys never coincide with the SHA-256
/// service keys `KeyRing::derive` makes from the same root key.
const FIELD_SALT: &[u8] = b"medvault field keys";

/// Longest key any cipher here takes (AES-256, ChaCha20, the legacy wrapper's row key).
pub(crate) const MAX_KEY_LEN: usize = 32;

/// A derived key of up to 32 bytes, on the stack so that copying it out of the cache costs
/// nothing; wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RowKey {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl RowKey {
    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(MAX_KEY_LEN)]
    }
}

/// Appends `part` with its length first (u32 big-endian), so that a sequence of parts is
/// unambiguous: ("ab", "c") and ("a", "bc") encode differently.
pub(crate) fn push_length_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    // Lengths above 4 GiB cannot occur for ids and names; saturating keeps this total.
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
}

/// HKDF (RFC 5869) with `hash`: extract with `salt` from `ikm`, then expand `info` into `out`.
/// Fails only if `out` is longer than 255 hash lengths, which no caller here asks for.
pub(crate) fn hkdf(
    hash: HashAlg,
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), hkdf::InvalidLength> {
    with_hash!(hash, H => Hkdf::<H>::new(salt, ikm).expand(info, out))
}

/// HKDF-Expand only, from a key that is already a pseudorandom key of at least one hash length.
fn hkdf_expand(hash: HashAlg, prk: &[u8], info: &[u8], out: &mut [u8]) -> Option<()> {
    with_hash!(hash, H => Hkdf::<H>::from_prk(prk).ok()?.expand(info, out).ok())
}

/// HMAC with `hash` over the concatenation of `parts` (callers length-prefix where needed).
pub(crate) fn hmac(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    with_hash!(hash, H => {
        // HMAC takes keys of any length (RFC 2104 hashes long ones), so this never fails;
        // the fallback keeps a bug from turning into a panic in a request.
        match <Hmac<H> as Mac>::new_from_slice(key) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    })
}

/// Whether `tag` is the HMAC of `parts`, compared in constant time.
pub(crate) fn hmac_verify(hash: HashAlg, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    with_hash!(hash, H => {
        match <Hmac<H> as Mac>::new_from_slice(key) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                // verify_slice compares with `subtle`, and refuses a tag of the wrong length.
                mac.verify_slice(tag).is_ok()
            }
            Err(_) => false,
        }
    })
}

/// A plain digest, only for the known-answer tests of the hash dispatch.
#[cfg(test)]
pub(crate) fn digest(hash: HashAlg, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    with_hash!(hash, H => H::digest(data).to_vec())
}

/// The key for every row of `table` under root key bytes `root`, one hash length long so that
/// it is a valid HKDF pseudorandom key for the next level. `None` if HKDF refuses (it cannot for
/// one hash length; a key of zeros must never stand in for one).
pub(crate) fn table_key(hash: HashAlg, root: &[u8], table: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut info = b"medvault/v1/table/".to_vec();
    info.extend_from_slice(table.as_bytes());
    let mut key = Zeroizing::new(vec![0u8; hash.output_len()]);
    hkdf(hash, Some(FIELD_SALT), root, &info, &mut key).ok()?;
    Some(key)
}

/// The label of a row key; also, with the root version and suite in front, the cache's key.
pub(crate) fn row_info(owner: OwnerId<'_>, row: RowId<'_>, cipher: Cipher) -> Vec<u8> {
    let (owner, row) = (owner.as_str(), row.as_str());
    let mut info = Vec::with_capacity(32 + owner.len() + row.len());
    info.extend_from_slice(b"medvault/v1/row");
    push_length_prefixed(&mut info, owner.as_bytes());
    push_length_prefixed(&mut info, row.as_bytes());
    info.push(cipher.id());
    info
}

/// The key for one row and one cipher: the AEAD key itself, or the legacy wrapper's master key.
/// `None` if HKDF refuses (a table key that is not a valid PRK, say): never a key of zeros.
pub(crate) fn row_key(
    hash: HashAlg,
    table_key: &[u8],
    info: &[u8],
    cipher: Cipher,
) -> Option<RowKey> {
    let len = match cipher.kind() {
        super::suite::CipherKind::Aead { .. } => cipher.key_len(),
        super::suite::CipherKind::Legacy { .. } => MAX_KEY_LEN,
    }
    .min(MAX_KEY_LEN);
    let mut key = RowKey {
        bytes: [0u8; MAX_KEY_LEN],
        len: len as u8,
    };
    hkdf_expand(hash, table_key, info, &mut key.bytes[..len])?;
    Some(key)
}

/// The key for one column's blind index.
pub(crate) fn blind_index_key(
    hash: HashAlg,
    root: &[u8],
    table: &str,
    column: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut info = b"medvault/v1/blind-index".to_vec();
    push_length_prefixed(&mut info, table.as_bytes());
    push_length_prefixed(&mut info, column.as_bytes());
    let mut key = Zeroizing::new(vec![0u8; hash.output_len()]);
    hkdf(hash, Some(FIELD_SALT), root, &info, &mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_match_the_hashes() {
        for hash in HashAlg::ALL {
            assert_eq!(digest(hash, b"").len(), hash.output_len(), "{hash:?}");
            assert_eq!(hmac(hash, b"k", &[b"m"]).len(), hash.output_len());
        }
    }

    #[test]
    fn hmac_verify_checks_content_and_length() {
        for hash in HashAlg::ALL {
            let tag = hmac(hash, b"key", &[b"a", b"b"]);
            assert!(hmac_verify(hash, b"key", &[b"ab"], &tag));
            assert!(!hmac_verify(hash, b"key", &[b"ab"], &tag[1..]));
            assert!(!hmac_verify(hash, b"kez", &[b"ab"], &tag));
            assert!(!hmac_verify(hash, b"key", &[b"ab"], &[]));
        }
    }

    #[test]
    fn keys_differ_by_hash_table_row_owner_and_cipher() {
        let root = [7u8; 32];
        let t = table_key(HashAlg::Sha256, &root, "patients").unwrap();
        let base = row_key(
            HashAlg::Sha256,
            &t,
            &row_info(OwnerId("o1"), RowId("r1"), Cipher::Aes256Gcm),
            Cipher::Aes256Gcm,
        )
        .unwrap();
        let t3 = table_key(HashAlg::Sha3_256, &root, "patients").unwrap();
        let others = [
            row_key(
                HashAlg::Sha3_256,
                &t3,
                &row_info(OwnerId("o1"), RowId("r1"), Cipher::Aes256Gcm),
                Cipher::Aes256Gcm,
            )
            .unwrap(),
            row_key(
                HashAlg::Sha256,
                &table_key(HashAlg::Sha256, &root, "visits").unwrap(),
                &row_info(OwnerId("o1"), RowId("r1"), Cipher::Aes256Gcm),
                Cipher::Aes256Gcm,
            )
            .unwrap(),
            row_key(
                HashAlg::Sha256,
                &t,
                &row_info(OwnerId("o1"), RowId("r2"), Cipher::Aes256Gcm),
                Cipher::Aes256Gcm,
            )
            .unwrap(),
            row_key(
                HashAlg::Sha256,
                &t,
                &row_info(OwnerId("o2"), RowId("r1"), Cipher::Aes256Gcm),
                Cipher::Aes256Gcm,
            )
            .unwrap(),
            row_key(
                HashAlg::Sha256,
                &t,
                &row_info(OwnerId("o1"), RowId("r1"), Cipher::ChaCha20Poly1305),
                Cipher::ChaCha20Poly1305,
            )
            .unwrap(),
        ];
        for other in &others {
            assert_ne!(base.expose(), other.expose());
        }
        assert_eq!(base.expose().len(), 32);
        // Length prefixes keep ("o1", "r1") and ("o1r", "1") apart.
        assert_ne!(
            row_info(OwnerId("o1"), RowId("r1"), Cipher::Aes256Gcm),
            row_info(OwnerId("o1r"), RowId("1"), Cipher::Aes256Gcm)
        );
    }

    #[test]
    fn a_derivation_that_hkdf_refuses_is_no_key_not_a_key_of_zeros() {
        // A "table key" shorter than one hash length is not a valid PRK: HKDF refuses it.
        for cipher in Cipher::ALL {
            assert!(row_key(HashAlg::Sha256, &[7u8; 4], b"info", cipher).is_none());
        }
        // Within the limits, keys come out and are not all zeros.
        let t = table_key(HashAlg::Sha256, &[1u8; 32], "t").unwrap();
        let key = row_key(HashAlg::Sha256, &t, b"info", Cipher::Aes256Gcm).unwrap();
        assert!(key.expose().iter().any(|b| *b != 0));
    }

    #[test]
    fn row_keys_have_the_cipher_key_length() {
        let t = table_key(HashAlg::Md5, &[1u8; 32], "t").unwrap();
        for cipher in Cipher::ALL {
            let key = row_key(
                HashAlg::Md5,
                &t,
                &row_info(OwnerId("o"), RowId("r"), cipher),
                cipher,
            )
            .unwrap();
            let want = if cipher.is_aead() {
                cipher.key_len()
            } else {
                32
            };
            assert_eq!(key.expose().len(), want, "{cipher:?}");
            assert!(key.expose().iter().any(|b| *b != 0));
        }
    }
}
