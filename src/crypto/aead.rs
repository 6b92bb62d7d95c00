//! The modern suites: AEAD with a fresh random nonce per value.
//!
//! Sealed bytes are `header ‖ nonce ‖ ciphertext ‖ tag`, with associated data
//! `header ‖ place`, so the header (suite, key version) and the value's place are authenticated
//! without being encrypted.

// AES-GCM comes from aes-gcm 0.11 (aead 0.6), whose AES uses VAES where the CPU has it: about
// 2.5 times the throughput of 0.10 on large values (BENCHMARKS.md). The other AEADs are still
// on aead 0.5, hence two sets of traits.
use aes_gcm::aead::{AeadInOut, KeyInit as KeyInit06};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use aes_gcm_siv::aead::generic_array::GenericArray;
use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::Aes256GcmSiv;
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use rand::RngCore;
use zeroize::Zeroizing;

use super::envelope::{CryptoError, IntegrityError, HEADER_LEN};
use super::suite::{Cipher, CipherKind};

/// Every AEAD here has a 128-bit tag.
pub(crate) const TAG_LEN: usize = 16;

/// Longest nonce (XChaCha20's 192 bits).
const MAX_NONCE_LEN: usize = 24;

/// An AEAD with its key schedule already computed. Setting up AES-GCM costs about as much as
/// sealing a short field, so the row-key cache keeps these rather than raw keys.
///
/// Wiped on drop: AES-GCM's round keys and GHASH key by aes-gcm's `zeroize` feature,
/// AES-GCM-SIV's by the `aes` 0.8 and `polyval` features, and the ChaCha20 keys by
/// chacha20poly1305 itself (see Cargo.toml).
pub(crate) enum AeadKey {
    Aes256Gcm(Aes256Gcm),
    Aes128Gcm(Aes128Gcm),
    /// Boxed: its two key schedules make it half again as large as the others.
    Aes256GcmSiv(Box<Aes256GcmSiv>),
    ChaCha20Poly1305(ChaCha20Poly1305),
    XChaCha20Poly1305(XChaCha20Poly1305),
}

/// Runs `$gcm` with `$aead` bound to an AES-GCM instance (aead 0.6), or `$body` with it bound
/// to any other algorithm's (aead 0.5).
macro_rules! with_aead {
    ($key:expr, $aead:ident => $gcm:expr, $body:expr) => {
        match $key {
            AeadKey::Aes256Gcm($aead) => $gcm,
            AeadKey::Aes128Gcm($aead) => $gcm,
            AeadKey::Aes256GcmSiv($aead) => $body,
            AeadKey::ChaCha20Poly1305($aead) => $body,
            AeadKey::XChaCha20Poly1305($aead) => $body,
        }
    };
}

impl AeadKey {
    /// `None` for a legacy cipher or a key of the wrong length.
    pub(crate) fn new(cipher: Cipher, key: &[u8]) -> Option<AeadKey> {
        Some(match cipher {
            Cipher::Aes256Gcm => {
                AeadKey::Aes256Gcm(<Aes256Gcm as KeyInit06>::new_from_slice(key).ok()?)
            }
            Cipher::Aes128Gcm => {
                AeadKey::Aes128Gcm(<Aes128Gcm as KeyInit06>::new_from_slice(key).ok()?)
            }
            Cipher::Aes256GcmSiv => {
                AeadKey::Aes256GcmSiv(Box::new(Aes256GcmSiv::new_from_slice(key).ok()?))
            }
            Cipher::ChaCha20Poly1305 => {
                AeadKey::ChaCha20Poly1305(ChaCha20Poly1305::new_from_slice(key).ok()?)
            }
            Cipher::XChaCha20Poly1305 => {
                AeadKey::XChaCha20Poly1305(XChaCha20Poly1305::new_from_slice(key).ok()?)
            }
            _ => return None,
        })
    }

    /// Raw AEAD encryption in place with the given nonce; returns the tag. `None` if the nonce
    /// has the wrong length or the message is longer than the algorithm allows.
    pub(crate) fn encrypt_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        with_aead!(self, aead => {
            let nonce = nonce.try_into().ok()?;
            let tag = aead.encrypt_inout_detached(nonce, aad, buf.into()).ok()?;
            tag.as_slice().try_into().ok()
        }, {
            let nonce = GenericArray::from_exact_iter(nonce.iter().copied())?;
            let tag = aead.encrypt_in_place_detached(&nonce, aad, buf).ok()?;
            tag.as_slice().try_into().ok()
        })
    }

    /// Checks `tag` and only then decrypts `buf` in place; `Some(())` means authentic.
    pub(crate) fn decrypt_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Option<()> {
        with_aead!(self, aead => {
            let nonce = nonce.try_into().ok()?;
            let tag = tag.try_into().ok()?;
            aead.decrypt_inout_detached(nonce, aad, buf.into(), tag).ok()
        }, {
            let nonce = GenericArray::from_exact_iter(nonce.iter().copied())?;
            let tag = GenericArray::from_exact_iter(tag.iter().copied())?;
            aead.decrypt_in_place_detached(&nonce, aad, buf, &tag).ok()
        })
    }
}

fn nonce_len(cipher: Cipher) -> Option<usize> {
    match cipher.kind() {
        CipherKind::Aead { nonce_len } => Some(nonce_len.min(MAX_NONCE_LEN)),
        CipherKind::Legacy { .. } => None,
    }
}

fn associated_data(header: &[u8], place: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + place.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(place);
    aad
}

/// `header ‖ nonce ‖ ciphertext ‖ tag` for `plaintext`, under a fresh random nonce.
pub(crate) fn seal(
    cipher: Cipher,
    key: &AeadKey,
    header: &[u8; HEADER_LEN],
    place: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let nonce_len = nonce_len(cipher).ok_or(CryptoError::TooLong)?;
    let body_at = HEADER_LEN + nonce_len;
    let mut out = Vec::with_capacity(body_at + plaintext.len() + TAG_LEN);
    out.extend_from_slice(header);
    let mut nonce = [0u8; MAX_NONCE_LEN];
    // ThreadRng is a CSPRNG (ChaCha12) seeded and periodically reseeded from the OS; it
    // avoids a system call per value. 96 random bits stay well inside GCM's collision bound
    // for the number of values one row key ever seals.
    rand::thread_rng().fill_bytes(&mut nonce[..nonce_len]);
    out.extend_from_slice(&nonce[..nonce_len]);
    out.extend_from_slice(plaintext);
    let aad = associated_data(header, place);
    let tag = key
        .encrypt_detached(&nonce[..nonce_len], &aad, &mut out[body_at..])
        .ok_or(CryptoError::TooLong)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Authenticates and decrypts sealed `bytes` (header included) in place, returning the
/// plaintext in the same (wiped-on-drop) buffer.
pub(crate) fn open(
    cipher: Cipher,
    key: &AeadKey,
    mut bytes: Zeroizing<Vec<u8>>,
    place: &[u8],
) -> Result<Zeroizing<Vec<u8>>, IntegrityError> {
    let nonce_len = nonce_len(cipher).ok_or(IntegrityError::Forged)?;
    let body_at = HEADER_LEN + nonce_len;
    if bytes.len() < body_at + TAG_LEN {
        return Err(IntegrityError::Truncated);
    }
    let tag_at = bytes.len() - TAG_LEN;
    let (front, tag) = bytes.split_at_mut(tag_at);
    let (header_and_nonce, body) = front.split_at_mut(body_at);
    let (header, nonce) = header_and_nonce.split_at(HEADER_LEN);
    let aad = associated_data(header, place);
    key.decrypt_detached(nonce, &aad, body, tag)
        .ok_or(IntegrityError::Forged)?;
    bytes.truncate(tag_at);
    bytes.drain(..body_at);
    Ok(bytes)
}
