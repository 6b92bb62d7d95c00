//! The stored form of a field: text that says how it was written.
//!
//! ```text
//! sealed:  "mv1:" base64( header ‖ body )
//!          header = format (0x01) ‖ cipher id ‖ hash id ‖ root key version (u32 big-endian)
//!          AEAD body   = nonce ‖ ciphertext ‖ tag
//!          legacy body = salt ‖ ciphertext ‖ HMAC
//! plain:   "plain:" value            (columns that are not encrypted, or not yet)
//! ```
//!
//! The header is authenticated (AEAD associated data, or under the legacy MAC), and so is the
//! value's place: table, column, row id and owner id.

use base64::{engine::general_purpose::STANDARD, Engine};
use zeroize::Zeroizing;

use super::kdf::push_length_prefixed;
use super::suite::{Cipher, HashAlg, Suite};

pub(crate) const SEALED_PREFIX: &str = "mv1:";
pub(crate) const PLAIN_PREFIX: &str = "plain:";
/// The first header byte: the binary layout's version. Bump it to change the layout.
pub(crate) const FORMAT_V1: u8 = 1;
pub(crate) const HEADER_LEN: usize = 7;

/// Why a stored value was refused. None of these carries key material or plaintext; the web
/// layer shows them as "integrity error" and writes them to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("integrity error: the stored value is in no known form (expected `mv1:` or `plain:`)")]
    UnknownForm,
    #[error("integrity error: the stored value is not valid base64")]
    BadEncoding,
    #[error("integrity error: the stored value is too short to be whole")]
    Truncated,
    #[error("integrity error: the stored value has unknown format version {0}")]
    UnknownFormat(u8),
    #[error("integrity error: the stored value names unknown cipher id {0}")]
    UnknownCipher(u8),
    #[error("integrity error: the stored value names unknown hash id {0}")]
    UnknownHash(u8),
    #[error("integrity error: the stored value needs root key version {0}, which the key provider does not hold")]
    UnknownKeyVersion(u32),
    #[error("integrity error: the stored value failed authentication (altered, moved to another place, or sealed under another key)")]
    Forged,
    #[error("integrity error: the field is meant to be encrypted but holds a plain value")]
    UnexpectedPlain,
    #[error("integrity error: the value is sealed in an older form than its column's policy (an old copy written back)")]
    OutdatedForm,
}

/// Why sealing failed; none of these can be caused by the plaintext's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("root key version {0} is not held by the key provider")]
    KeyUnavailable(u32),
    #[error("the value is too long to encrypt")]
    TooLong,
}

/// The clear part at the front of every sealed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub format: u8,
    pub suite: Suite,
    pub key_version: u32,
}

impl Header {
    pub(crate) fn new(suite: Suite, key_version: u32) -> Self {
        Header {
            format: FORMAT_V1,
            suite,
            key_version,
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let v = self.key_version.to_be_bytes();
        [
            self.format,
            self.suite.cipher.id(),
            self.suite.hash.id(),
            v[0],
            v[1],
            v[2],
            v[3],
        ]
    }

    /// Reads the header at the front of `bytes`; checks only that every field is known.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Header, IntegrityError> {
        let Some(&[format, cipher, hash, v0, v1, v2, v3]) = bytes.get(..HEADER_LEN) else {
            return Err(IntegrityError::Truncated);
        };
        if format != FORMAT_V1 {
            return Err(IntegrityError::UnknownFormat(format));
        }
        let cipher = Cipher::from_id(cipher).ok_or(IntegrityError::UnknownCipher(cipher))?;
        let hash = HashAlg::from_id(hash).ok_or(IntegrityError::UnknownHash(hash))?;
        Ok(Header {
            format,
            suite: Suite { cipher, hash },
            key_version: u32::from_be_bytes([v0, v1, v2, v3]),
        })
    }
}

/// How a stored value was written, so that a re-encryption job can tell what is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredForm {
    Plain,
    Sealed { suite: Suite, key_version: u32 },
}

/// A stored value taken apart, before any authentication.
pub(crate) enum Decoded<'a> {
    Plain(&'a str),
    Sealed {
        header: Header,
        /// Header and body; wiped on drop because opening decrypts in place.
        bytes: Zeroizing<Vec<u8>>,
    },
}

/// Splits off the prefix and decodes the base64. Never panics, whatever `stored` is.
pub(crate) fn decode(stored: &str) -> Result<Decoded<'_>, IntegrityError> {
    if let Some(value) = stored.strip_prefix(PLAIN_PREFIX) {
        return Ok(Decoded::Plain(value));
    }
    let encoded = stored
        .strip_prefix(SEALED_PREFIX)
        .ok_or(IntegrityError::UnknownForm)?;
    // STANDARD requires canonical padding and trailing bits, so each stored text has exactly one
    // binary reading: a flipped character can never decode to the same bytes.
    let bytes = Zeroizing::new(
        STANDARD
            .decode(encoded)
            .map_err(|_| IntegrityError::BadEncoding)?,
    );
    let header = Header::from_bytes(&bytes)?;
    Ok(Decoded::Sealed { header, bytes })
}

/// The header of a sealed value, without opening it (nothing is authenticated yet: use it to
/// plan work, such as finding values a re-encryption job must rewrite, never to trust them).
pub fn parse_header(stored: &str) -> Result<Header, IntegrityError> {
    match decode(stored)? {
        Decoded::Sealed { header, .. } => Ok(header),
        Decoded::Plain(_) => Err(IntegrityError::UnknownForm),
    }
}

/// The form of a stored value (plain, or sealed with which suite and key version), without
/// opening it; like [`parse_header`], unauthenticated.
pub fn stored_form(stored: &str) -> Result<StoredForm, IntegrityError> {
    Ok(match decode(stored)? {
        Decoded::Plain(_) => StoredForm::Plain,
        Decoded::Sealed { header, .. } => StoredForm::Sealed {
            suite: header.suite,
            key_version: header.key_version,
        },
    })
}

/// Turns binary header ‖ body into the stored text.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(SEALED_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    text.push_str(SEALED_PREFIX);
    STANDARD.encode_string(bytes, &mut text);
    text
}

/// Where a field lives. Bound into every sealed value, so a value only opens in its own place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRef<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
    pub owner_id: &'a str,
}

impl FieldRef<'_> {
    /// The place, length-prefixed part by part so that no two places encode alike.
    pub(crate) fn place_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self.table.len() + self.column.len() + self.row_id.len() + self.owner_id.len(),
        );
        push_length_prefixed(&mut out, self.table.as_bytes());
        push_length_prefixed(&mut out, self.column.as_bytes());
        push_length_prefixed(&mut out, self.row_id.as_bytes());
        push_length_prefixed(&mut out, self.owner_id.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        for suite in Suite::all() {
            let header = Header::new(suite, 0xdead_beef);
            assert_eq!(Header::from_bytes(&header.to_bytes()), Ok(header));
        }
    }

    #[test]
    fn refuses_unknown_fields_and_short_headers() {
        let good = Header::new(Suite::DEFAULT, 1).to_bytes();
        assert_eq!(
            Header::from_bytes(&good[..6]),
            Err(IntegrityError::Truncated)
        );
        let mut bad = good;
        bad[0] = 2;
        assert_eq!(
            Header::from_bytes(&bad),
            Err(IntegrityError::UnknownFormat(2))
        );
        let mut bad = good;
        bad[1] = 99;
        assert_eq!(
            Header::from_bytes(&bad),
            Err(IntegrityError::UnknownCipher(99))
        );
        let mut bad = good;
        bad[2] = 0;
        assert_eq!(
            Header::from_bytes(&bad),
            Err(IntegrityError::UnknownHash(0))
        );
    }

    #[test]
    fn decodes_forms() {
        assert!(matches!(decode("plain:x"), Ok(Decoded::Plain("x"))));
        assert!(matches!(decode("x"), Err(IntegrityError::UnknownForm)));
        assert!(matches!(decode("mv1:*"), Err(IntegrityError::BadEncoding)));
        // Non-canonical trailing bits ("AB==" would be canonical "AA==").
        assert!(matches!(
            decode("mv1:AB=="),
            Err(IntegrityError::BadEncoding)
        ));
        let text = encode(&Header::new(Suite::DEFAULT, 3).to_bytes());
        assert_eq!(
            stored_form(&text),
            Ok(StoredForm::Sealed {
                suite: Suite::DEFAULT,
                key_version: 3
            })
        );
        assert_eq!(stored_form("plain:"), Ok(StoredForm::Plain));
        assert_eq!(parse_header("plain:"), Err(IntegrityError::UnknownForm));
    }

    #[test]
    fn places_encode_unambiguously() {
        let a = FieldRef {
            table: "t",
            column: "ab",
            row_id: "c",
            owner_id: "o",
        };
        let b = FieldRef {
            column: "a",
            row_id: "bc",
            ..a
        };
        assert_ne!(a.place_bytes(), b.place_bytes());
    }
}
