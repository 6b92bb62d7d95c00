//! The legacy suites, wrapped so that they cannot be forged or replayed elsewhere.
//!
//! For each value: a fresh random salt; HKDF(row key, salt) gives a cipher key, a separate MAC
//! key and the IV; the plaintext is encrypted (CBC with PKCS#7, or RC4 with the first 3072
//! keystream bytes dropped; never ECB); then HMAC covers
//! `header ‖ salt ‖ IV ‖ len(ciphertext) ‖ ciphertext ‖ place`. Opening checks the MAC in constant
//! time before anything is decrypted, so padding errors can never become an oracle.
//!
//! Sealed bytes are `header ‖ salt ‖ ciphertext ‖ MAC` (the IV is derived, so not stored).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::generic_array::{ArrayLength, GenericArray};
use cbc::cipher::{
    BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit, StreamCipher,
};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use super::envelope::{CryptoError, IntegrityError, HEADER_LEN};
use super::kdf::{hkdf, hmac, hmac_verify};
use super::suite::{Cipher, CipherKind, Suite};

/// Per-value salt: 128 bits, so salts (and so message keys) never repeat in practice.
pub(crate) const SALT_LEN: usize = 16;

/// RC4's first keystream bytes are measurably biased; RFC 4345 and Mironov ("(Not So) Random
/// Shuffles of RC4") recommend discarding them. 3072 is the conservative "RC4-drop[3072]".
pub(crate) const RC4_DROP: usize = 3072;

/// The keys of one value, from HKDF(row key, salt): cipher key ‖ MAC key ‖ IV.
struct MessageKeys {
    material: Zeroizing<Vec<u8>>,
    enc_len: usize,
    mac_len: usize,
}

impl MessageKeys {
    fn derive(suite: Suite, row_key: &[u8], salt: &[u8]) -> Option<Self> {
        let enc_len = suite.cipher.key_len();
        // A MAC key of one hash length: HMAC gains nothing from more (RFC 2104 §3).
        let mac_len = suite.hash.output_len();
        let iv_len = block_len(suite.cipher);
        let mut info = b"medvault/v1/legacy-message".to_vec();
        info.extend_from_slice(&[suite.cipher.id(), suite.hash.id()]);
        let mut material = Zeroizing::new(vec![0u8; enc_len + mac_len + iv_len]);
        hkdf(suite.hash, Some(salt), row_key, &info, &mut material).ok()?;
        Some(MessageKeys {
            material,
            enc_len,
            mac_len,
        })
    }

    fn enc_key(&self) -> &[u8] {
        &self.material[..self.enc_len]
    }

    fn mac_key(&self) -> &[u8] {
        &self.material[self.enc_len..self.enc_len + self.mac_len]
    }

    fn iv(&self) -> &[u8] {
        &self.material[self.enc_len + self.mac_len..]
    }
}

fn block_len(cipher: Cipher) -> usize {
    match cipher.kind() {
        CipherKind::Legacy { block_len } => block_len,
        CipherKind::Aead { .. } => 0,
    }
}

fn cbc_encrypt_with<C>(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Option<Vec<u8>>
where
    C: BlockEncryptMut + BlockCipher + KeyInit,
{
    let encryptor = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

/// Decrypts in place; returns the plaintext length, or `None` on a bad key, IV or padding.
fn cbc_decrypt_with<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Option<usize>
where
    C: BlockDecryptMut + BlockCipher + KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    decryptor
        .decrypt_padded_mut::<Pkcs7>(buf)
        .ok()
        .map(<[u8]>::len)
}

/// CBC with PKCS#7 padding (the known-answer tests call this directly).
pub(crate) fn cbc_encrypt(
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
    plaintext: &[u8],
) -> Option<Vec<u8>> {
    match cipher {
        Cipher::Aes256Cbc => cbc_encrypt_with::<aes::Aes256>(key, iv, plaintext),
        Cipher::TripleDesEde3Cbc => cbc_encrypt_with::<des::TdesEde3>(key, iv, plaintext),
        Cipher::DesCbc => cbc_encrypt_with::<des::Des>(key, iv, plaintext),
        // Big-endian Blowfish is Schneier's original (and OpenSSL's); BlowfishLE is not.
        Cipher::BlowfishCbc => cbc_encrypt_with::<blowfish::Blowfish>(key, iv, plaintext),
        Cipher::Cast128Cbc => cbc_encrypt_with::<cast5::Cast5>(key, iv, plaintext),
        _ => None,
    }
}

pub(crate) fn cbc_decrypt(cipher: Cipher, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Option<usize> {
    match cipher {
        Cipher::Aes256Cbc => cbc_decrypt_with::<aes::Aes256>(key, iv, buf),
        Cipher::TripleDesEde3Cbc => cbc_decrypt_with::<des::TdesEde3>(key, iv, buf),
        Cipher::DesCbc => cbc_decrypt_with::<des::Des>(key, iv, buf),
        Cipher::BlowfishCbc => cbc_decrypt_with::<blowfish::Blowfish>(key, iv, buf),
        Cipher::Cast128Cbc => cbc_decrypt_with::<cast5::Cast5>(key, iv, buf),
        _ => None,
    }
}

/// XORs RC4-drop[3072] keystream into `data` (encryption and decryption alike).
pub(crate) fn rc4_drop3072<K: ArrayLength<u8>>(key: &GenericArray<u8, K>, data: &mut [u8]) {
    let mut rc4 = rc4::Rc4::<K>::new(key);
    let mut discard = [0u8; RC4_DROP];
    rc4.apply_keystream(&mut discard);
    discard.zeroize();
    rc4.apply_keystream(data);
}

fn rc4_apply(key: &[u8], data: &mut [u8]) -> Option<()> {
    let key = GenericArray::<u8, rc4::consts::U16>::from_exact_iter(key.iter().copied())?;
    rc4_drop3072(&key, data);
    Some(())
}

fn mac_parts<'a>(
    header: &'a [u8],
    salt: &'a [u8],
    iv: &'a [u8],
    ct_len: &'a [u8; 8],
    ciphertext: &'a [u8],
    place: &'a [u8],
) -> [&'a [u8]; 6] {
    [header, salt, iv, ct_len, ciphertext, place]
}

/// `header ‖ salt ‖ ciphertext ‖ MAC` for `plaintext`.
pub(crate) fn seal(
    suite: Suite,
    row_key: &[u8],
    header: &[u8; HEADER_LEN],
    place: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    // ThreadRng: a CSPRNG seeded from the OS (see aead.rs).
    rand::thread_rng().fill_bytes(&mut salt);
    let keys = MessageKeys::derive(suite, row_key, &salt).ok_or(CryptoError::TooLong)?;
    let ciphertext = if block_len(suite.cipher) == 0 {
        let mut buf = plaintext.to_vec();
        rc4_apply(keys.enc_key(), &mut buf).ok_or(CryptoError::TooLong)?;
        buf
    } else {
        cbc_encrypt(suite.cipher, keys.enc_key(), keys.iv(), plaintext)
            .ok_or(CryptoError::TooLong)?
    };
    let ct_len = (ciphertext.len() as u64).to_be_bytes();
    let mac = hmac(
        suite.hash,
        keys.mac_key(),
        &mac_parts(header, &salt, keys.iv(), &ct_len, &ciphertext, place),
    );
    let mut out = Vec::with_capacity(HEADER_LEN + SALT_LEN + ciphertext.len() + mac.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&mac);
    Ok(out)
}

/// Verifies the MAC over sealed `bytes` (header included) and only then decrypts, in place.
pub(crate) fn open(
    suite: Suite,
    row_key: &[u8],
    mut bytes: Zeroizing<Vec<u8>>,
    place: &[u8],
) -> Result<Zeroizing<Vec<u8>>, IntegrityError> {
    let mac_len = suite.hash.output_len();
    let body_at = HEADER_LEN + SALT_LEN;
    if bytes.len() < body_at + mac_len {
        return Err(IntegrityError::Truncated);
    }
    let mac_at = bytes.len() - mac_len;
    let keys = {
        let salt = &bytes[HEADER_LEN..body_at];
        MessageKeys::derive(suite, row_key, salt).ok_or(IntegrityError::Forged)?
    };
    {
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (ciphertext, mac) = rest.split_at(mac_at - body_at);
        let ct_len = (ciphertext.len() as u64).to_be_bytes();
        let parts = mac_parts(header, salt, keys.iv(), &ct_len, ciphertext, place);
        if !hmac_verify(suite.hash, keys.mac_key(), &parts, mac) {
            return Err(IntegrityError::Forged);
        }
    }
    // Authentic from here on: a failure below means a bug or a key collision, not an attack,
    // but it is still refused rather than shown.
    let ciphertext = &mut bytes[body_at..mac_at];
    let plain_len = if block_len(suite.cipher) == 0 {
        rc4_apply(keys.enc_key(), ciphertext).ok_or(IntegrityError::Forged)?;
        ciphertext.len()
    } else {
        cbc_decrypt(suite.cipher, keys.enc_key(), keys.iv(), ciphertext)
            .ok_or(IntegrityError::Forged)?
    };
    bytes.truncate(body_at + plain_len);
    bytes.drain(..body_at);
    Ok(bytes)
}
