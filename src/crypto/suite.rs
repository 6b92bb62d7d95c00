//! The cipher and hash an admin may choose for a column, and how each is named.
//!
//! Every choice has three names that must never change once values are stored:
//! a one-byte id (written into every sealed value's header), a text key (stored in settings),
//! and a title (shown on the admin page). Renumbering an id would make old values unreadable.

use std::fmt;

/// How much trust a choice deserves; the admin page warns on anything but `Modern`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strength {
    /// Current, well-analysed constructions.
    Modern,
    /// Not broken in this use, but small blocks, small keys or old designs: avoid for new data.
    Legacy,
    /// Practical attacks are published: keep only to read old data.
    Broken,
}

impl Strength {
    pub fn title(self) -> &'static str {
        match self {
            Strength::Modern => "modern",
            Strength::Legacy => "legacy",
            Strength::Broken => "broken",
        }
    }
}

/// The cipher that protects a value's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    Aes256Gcm,
    Aes128Gcm,
    Aes256GcmSiv,
    ChaCha20Poly1305,
    XChaCha20Poly1305,
    Aes256Cbc,
    TripleDesEde3Cbc,
    DesCbc,
    BlowfishCbc,
    Cast128Cbc,
    Rc4Drop3072,
}

/// What a cipher needs from the envelope: AEADs carry a nonce and a tag; legacy ciphers are
/// wrapped in encrypt-then-MAC with a per-message salt (see `legacy.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CipherKind {
    Aead {
        nonce_len: usize,
    },
    /// `block_len` 0 means a stream cipher (no padding, no IV).
    Legacy {
        block_len: usize,
    },
}

impl Cipher {
    pub const ALL: [Cipher; 11] = [
        Cipher::Aes256Gcm,
        Cipher::Aes128Gcm,
        Cipher::Aes256GcmSiv,
        Cipher::ChaCha20Poly1305,
        Cipher::XChaCha20Poly1305,
        Cipher::Aes256Cbc,
        Cipher::TripleDesEde3Cbc,
        Cipher::DesCbc,
        Cipher::BlowfishCbc,
        Cipher::Cast128Cbc,
        Cipher::Rc4Drop3072,
    ];

    /// Written into every sealed value's header; never renumber.
    pub fn id(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::Aes128Gcm => 2,
            Cipher::Aes256GcmSiv => 3,
            Cipher::ChaCha20Poly1305 => 4,
            Cipher::XChaCha20Poly1305 => 5,
            Cipher::Aes256Cbc => 16,
            Cipher::TripleDesEde3Cbc => 17,
            Cipher::DesCbc => 18,
            Cipher::BlowfishCbc => 19,
            Cipher::Cast128Cbc => 20,
            Cipher::Rc4Drop3072 => 21,
        }
    }

    pub fn from_id(id: u8) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The name stored in settings; never rename.
    pub fn key(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::Aes128Gcm => "aes-128-gcm",
            Cipher::Aes256GcmSiv => "aes-256-gcm-siv",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
            Cipher::XChaCha20Poly1305 => "xchacha20-poly1305",
            Cipher::Aes256Cbc => "aes-256-cbc",
            Cipher::TripleDesEde3Cbc => "3des-ede3-cbc",
            Cipher::DesCbc => "des-cbc",
            Cipher::BlowfishCbc => "blowfish-cbc",
            Cipher::Cast128Cbc => "cast128-cbc",
            Cipher::Rc4Drop3072 => "rc4-drop3072",
        }
    }

    pub fn from_key(key: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.key() == key)
    }

    pub fn title(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES-256-GCM",
            Cipher::Aes128Gcm => "AES-128-GCM",
            Cipher::Aes256GcmSiv => "AES-256-GCM-SIV",
            Cipher::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Cipher::XChaCha20Poly1305 => "XChaCha20-Poly1305",
            Cipher::Aes256Cbc => "AES-256-CBC + HMAC",
            Cipher::TripleDesEde3Cbc => "3DES-EDE3-CBC + HMAC",
            Cipher::DesCbc => "DES-CBC + HMAC",
            Cipher::BlowfishCbc => "Blowfish-CBC + HMAC",
            Cipher::Cast128Cbc => "CAST-128-CBC + HMAC",
            Cipher::Rc4Drop3072 => "RC4-drop3072 + HMAC",
        }
    }

    pub fn strength(self) -> Strength {
        match self {
            Cipher::Aes256Gcm
            | Cipher::Aes128Gcm
            | Cipher::Aes256GcmSiv
            | Cipher::ChaCha20Poly1305
            | Cipher::XChaCha20Poly1305
            | Cipher::Aes256Cbc => Strength::Modern,
            // 64-bit blocks (Sweet32) or old designs; the MAC keeps them from being forged.
            Cipher::TripleDesEde3Cbc | Cipher::BlowfishCbc | Cipher::Cast128Cbc => Strength::Legacy,
            // DES: 56-bit keys are brute-forced in hours. RC4: keystream biases.
            Cipher::DesCbc | Cipher::Rc4Drop3072 => Strength::Broken,
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self.kind(), CipherKind::Aead { .. })
    }

    pub(crate) fn kind(self) -> CipherKind {
        match self {
            Cipher::Aes256Gcm
            | Cipher::Aes128Gcm
            | Cipher::Aes256GcmSiv
            | Cipher::ChaCha20Poly1305 => CipherKind::Aead { nonce_len: 12 },
            Cipher::XChaCha20Poly1305 => CipherKind::Aead { nonce_len: 24 },
            Cipher::Aes256Cbc => CipherKind::Legacy { block_len: 16 },
            Cipher::TripleDesEde3Cbc
            | Cipher::DesCbc
            | Cipher::BlowfishCbc
            | Cipher::Cast128Cbc => CipherKind::Legacy { block_len: 8 },
            Cipher::Rc4Drop3072 => CipherKind::Legacy { block_len: 0 },
        }
    }

    /// Length of the key the cipher itself takes. Blowfish, CAST-128 and RC4 accept several
    /// lengths; 128 bits is the usual choice and the most any of them makes good use of.
    pub(crate) fn key_len(self) -> usize {
        match self {
            Cipher::Aes256Gcm
            | Cipher::Aes256GcmSiv
            | Cipher::ChaCha20Poly1305
            | Cipher::XChaCha20Poly1305
            | Cipher::Aes256Cbc => 32,
            Cipher::Aes128Gcm | Cipher::BlowfishCbc | Cipher::Cast128Cbc | Cipher::Rc4Drop3072 => {
                16
            }
            Cipher::TripleDesEde3Cbc => 24,
            Cipher::DesCbc => 8,
        }
    }
}

/// The hash that drives key derivation (HKDF) and, for legacy ciphers, the MAC (HMAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 10] = [
        HashAlg::Md5,
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sha3_224,
        HashAlg::Sha3_256,
        HashAlg::Sha3_384,
        HashAlg::Sha3_512,
    ];

    /// Written into every sealed value's header; never renumber.
    pub fn id(self) -> u8 {
        match self {
            HashAlg::Md5 => 1,
            HashAlg::Sha1 => 2,
            HashAlg::Sha224 => 3,
            HashAlg::Sha256 => 4,
            HashAlg::Sha384 => 5,
            HashAlg::Sha512 => 6,
            HashAlg::Sha3_224 => 7,
            HashAlg::Sha3_256 => 8,
            HashAlg::Sha3_384 => 9,
            HashAlg::Sha3_512 => 10,
        }
    }

    pub fn from_id(id: u8) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.id() == id)
    }

    /// The name stored in settings; never rename.
    pub fn key(self) -> &'static str {
        match self {
            HashAlg::Md5 => "md5",
            HashAlg::Sha1 => "sha-1",
            HashAlg::Sha224 => "sha-224",
            HashAlg::Sha256 => "sha-256",
            HashAlg::Sha384 => "sha-384",
            HashAlg::Sha512 => "sha-512",
            HashAlg::Sha3_224 => "sha3-224",
            HashAlg::Sha3_256 => "sha3-256",
            HashAlg::Sha3_384 => "sha3-384",
            HashAlg::Sha3_512 => "sha3-512",
        }
    }

    pub fn from_key(key: &str) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.key() == key)
    }

    pub fn title(self) -> &'static str {
        match self {
            HashAlg::Md5 => "MD5",
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha224 => "SHA-224",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
            HashAlg::Sha3_224 => "SHA3-224",
            HashAlg::Sha3_256 => "SHA3-256",
            HashAlg::Sha3_384 => "SHA3-384",
            HashAlg::Sha3_512 => "SHA3-512",
        }
    }

    /// Judged by collision resistance, the property admins know these names by. (Used as
    /// HMAC/HKDF here, even MD5 is not known to be forgeable, but the warning errs on caution.)
    pub fn strength(self) -> Strength {
        match self {
            HashAlg::Md5 => Strength::Broken,
            HashAlg::Sha1 => Strength::Legacy,
            _ => Strength::Modern,
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Md5 => 16,
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 | HashAlg::Sha3_224 => 28,
            HashAlg::Sha256 | HashAlg::Sha3_256 => 32,
            HashAlg::Sha384 | HashAlg::Sha3_384 => 48,
            HashAlg::Sha512 | HashAlg::Sha3_512 => 64,
        }
    }
}

/// A column's encryption policy: which cipher seals it and which hash derives its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    pub cipher: Cipher,
    pub hash: HashAlg,
}

/// A settings value that names no known cipher or hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownSuite {
    #[error("unknown cipher {0:?}")]
    Cipher(String),
    #[error("unknown hash {0:?}")]
    Hash(String),
}

impl Suite {
    /// AES-256-GCM with SHA-256 key derivation: what new columns get.
    pub const DEFAULT: Suite = Suite {
        cipher: Cipher::Aes256Gcm,
        hash: HashAlg::Sha256,
    };

    pub fn new(cipher: Cipher, hash: HashAlg) -> Self {
        Suite { cipher, hash }
    }

    /// Every combination, cipher-major.
    pub fn all() -> impl Iterator<Item = Suite> {
        Cipher::ALL.into_iter().flat_map(|cipher| {
            HashAlg::ALL
                .into_iter()
                .map(move |hash| Suite { cipher, hash })
        })
    }

    /// Reads the two settings keys back, e.g. `Suite::parse_keys("aes-256-gcm", "sha-256")`.
    pub fn parse_keys(cipher: &str, hash: &str) -> Result<Suite, UnknownSuite> {
        let cipher =
            Cipher::from_key(cipher).ok_or_else(|| UnknownSuite::Cipher(cipher.to_string()))?;
        let hash = HashAlg::from_key(hash).ok_or_else(|| UnknownSuite::Hash(hash.to_string()))?;
        Ok(Suite { cipher, hash })
    }

    /// The weaker of the two parts: a suite is as trustworthy as its weakest link.
    pub fn strength(self) -> Strength {
        self.cipher.strength().max(self.hash.strength())
    }

    pub fn title(self) -> String {
        format!("{} / {}", self.cipher.title(), self.hash.title())
    }
}

impl Default for Suite {
    fn default() -> Self {
        Suite::DEFAULT
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.cipher.key(), self.hash.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_and_keys_are_unique_and_round_trip() {
        let ids: HashSet<u8> = Cipher::ALL.iter().map(|c| c.id()).collect();
        let keys: HashSet<&str> = Cipher::ALL.iter().map(|c| c.key()).collect();
        assert_eq!((ids.len(), keys.len()), (11, 11));
        for c in Cipher::ALL {
            assert_eq!(Cipher::from_id(c.id()), Some(c));
            assert_eq!(Cipher::from_key(c.key()), Some(c));
        }
        let ids: HashSet<u8> = HashAlg::ALL.iter().map(|h| h.id()).collect();
        let keys: HashSet<&str> = HashAlg::ALL.iter().map(|h| h.key()).collect();
        assert_eq!((ids.len(), keys.len()), (10, 10));
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_id(h.id()), Some(h));
            assert_eq!(HashAlg::from_key(h.key()), Some(h));
        }
        assert_eq!(Cipher::from_id(0), None);
        assert_eq!(HashAlg::from_id(0), None);
    }

    #[test]
    fn ids_never_change() {
        // Stored values depend on these numbers; this test is the tripwire for renumbering.
        let cipher_ids: Vec<u8> = Cipher::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(cipher_ids, [1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21]);
        let hash_ids: Vec<u8> = HashAlg::ALL.iter().map(|h| h.id()).collect();
        assert_eq!(hash_ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn strengths_match_the_security_model() {
        assert_eq!(Cipher::DesCbc.strength(), Strength::Broken);
        assert_eq!(Cipher::Rc4Drop3072.strength(), Strength::Broken);
        assert_eq!(HashAlg::Md5.strength(), Strength::Broken);
        for c in [
            Cipher::TripleDesEde3Cbc,
            Cipher::BlowfishCbc,
            Cipher::Cast128Cbc,
        ] {
            assert_eq!(c.strength(), Strength::Legacy);
        }
        assert_eq!(HashAlg::Sha1.strength(), Strength::Legacy);
        assert_eq!(Suite::DEFAULT.strength(), Strength::Modern);
        assert_eq!(
            Suite::new(Cipher::Aes256Gcm, HashAlg::Md5).strength(),
            Strength::Broken
        );
    }

    #[test]
    fn parses_settings_keys() {
        assert_eq!(
            Suite::parse_keys("aes-256-gcm", "sha-256"),
            Ok(Suite::DEFAULT)
        );
        assert_eq!(
            Suite::parse_keys("rot13", "sha-256"),
            Err(UnknownSuite::Cipher("rot13".into()))
        );
        assert_eq!(
            Suite::parse_keys("des-cbc", "crc32"),
            Err(UnknownSuite::Hash("crc32".into()))
        );
        assert_eq!(Suite::all().count(), 110);
    }
}
