//! Medical files at rest: each file is sealed with AES-256-GCM under a random key of its own,
//! bound to the file's id. The key is kept sealed in the database through the field encryption,
//! so a change of suite or root key rewrites a few dozen bytes, never the file.
//!
//! Sealed layout: `mvf1` ‖ 96-bit nonce ‖ ciphertext ‖ tag. A key seals exactly one file once,
//! so the random nonce never repeats under it.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::envelope::IntegrityError;
use super::keys::SecretKey;

const MAGIC: &[u8; 4] = b"mvf1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A file's own 256-bit key.
pub struct FileKey(Zeroizing<[u8; 32]>);

impl FileKey {
    pub fn generate() -> FileKey {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        FileKey(key)
    }

    /// The key as text, to be sealed into the `file_key` column.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    pub fn from_text(text: &str) -> Result<FileKey, IntegrityError> {
        let bytes = Zeroizing::new(hex::decode(text).map_err(|_| IntegrityError::BadEncoding)?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(IntegrityError::Truncated);
        }
        key.copy_from_slice(&bytes);
        Ok(FileKey(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.0).into())
    }
}

/// `content` sealed for the file `file_id`.
#[allow(
    clippy::expect_used,
    reason = "AES-GCM seals up to 64 GiB, far above the largest upload setting"
)]
pub fn seal_file(key: &FileKey, file_id: &str, content: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + content.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(content);
    let aad = [MAGIC.as_slice(), file_id.as_bytes()].concat();
    let body_start = MAGIC.len() + NONCE_LEN;
    let tag = key
        .cipher()
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, (&mut out[body_start..]).into())
        .expect("AES-GCM seals up to 64 GiB");
    out.extend_from_slice(&tag);
    out
}

/// The content of a sealed file, only if it is whole and was sealed for `file_id` with `key`.
pub fn open_file(
    key: &FileKey,
    file_id: &str,
    sealed: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>, IntegrityError> {
    if sealed.len() < MAGIC.len() + NONCE_LEN + TAG_LEN {
        return Err(IntegrityError::Truncated);
    }
    if &sealed[..MAGIC.len()] != MAGIC {
        return Err(IntegrityError::UnknownForm);
    }
    let mut sealed = Zeroizing::new(sealed);
    let nonce: [u8; NONCE_LEN] = sealed[MAGIC.len()..MAGIC.len() + NONCE_LEN]
        .try_into()
        .map_err(|_| IntegrityError::Truncated)?;
    let tag_start = sealed.len() - TAG_LEN;
    let tag: [u8; TAG_LEN] = sealed[tag_start..]
        .try_into()
        .map_err(|_| IntegrityError::Truncated)?;
    let aad = [MAGIC.as_slice(), file_id.as_bytes()].concat();
    let body = &mut sealed[MAGIC.len() + NONCE_LEN..tag_start];
    key.cipher()
        .decrypt_inout_detached(&Nonce::from(nonce), &aad, body.into(), &Tag::from(tag))
        .map_err(|_| IntegrityError::Forged)?;
    let content = body.to_vec();
    Ok(Zeroizing::new(content))
}

/// SHA-256 of `content`, lowercase hex.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// A signed, expiring link token naming `user_id`, and the file `file_id` of the patient
/// `patient_id`: `user.patient.file.expiry.mac`. The patient's id lets the download find the
/// file by patient, as every query of a record does (a database sharded by patient).
pub fn file_link_token(
    key: &SecretKey,
    user_id: &str,
    patient_id: &str,
    file_id: &str,
    expires_at: i64,
) -> String {
    let expiry = expires_at.to_string();
    let mac = super::keyed_digest(
        key,
        &[
            b"file link",
            user_id.as_bytes(),
            patient_id.as_bytes(),
            file_id.as_bytes(),
            expiry.as_bytes(),
        ],
    );
    format!(
        "{user_id}.{patient_id}.{file_id}.{expiry}.{}",
        hex::encode(mac)
    )
}

/// What a valid link token names.
#[derive(Debug, PartialEq, Eq)]
pub struct FileLink {
    pub user_id: String,
    pub patient_id: String,
    pub file_id: String,
    pub expires_at: i64,
}

/// The link `token` names, if its MAC holds (compared in constant time). Expiry and user are
/// the caller's to check.
pub fn verify_file_link(key: &SecretKey, token: &str) -> Option<FileLink> {
    let mut parts = token.split('.');
    let (user_id, patient_id, file_id, expiry, mac) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() {
        return None;
    }
    let expires_at: i64 = expiry.parse().ok()?;
    let expected = file_link_token(key, user_id, patient_id, file_id, expires_at);
    let given = format!("{user_id}.{patient_id}.{file_id}.{expiry}.{mac}");
    super::constant_time_eq(expected.as_bytes(), given.as_bytes()).then(|| FileLink {
        user_id: user_id.to_string(),
        patient_id: patient_id.to_string(),
        file_id: file_id.to_string(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_opens_only_whole_with_its_key_and_id() {
        let key = FileKey::generate();
        let sealed = seal_file(&key, "file1", b"%PDF-1.7 scan");
        assert_eq!(
            open_file(&key, "file1", sealed.clone()).unwrap().as_slice(),
            b"%PDF-1.7 scan"
        );
        assert!(open_file(&key, "file2", sealed.clone()).is_err());
        assert!(open_file(&FileKey::generate(), "file1", sealed.clone()).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open_file(&key, "file1", bad).is_err(), "byte {i}");
        }
        assert!(open_file(&key, "file1", sealed[..sealed.len() - 1].to_vec()).is_err());
    }

    #[test]
    fn a_file_key_survives_its_text_form() {
        let key = FileKey::generate();
        let again = FileKey::from_text(&key.to_text()).unwrap();
        let sealed = seal_file(&key, "f", b"x");
        assert_eq!(open_file(&again, "f", sealed).unwrap().as_slice(), b"x");
        assert!(FileKey::from_text("abcd").is_err());
    }

    #[test]
    fn sha256_matches_fips_180_4() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_link_verifies_only_unaltered() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let token = file_link_token(&key, "user1", "patient1", "file1", 1000);
        assert_eq!(
            verify_file_link(&key, &token),
            Some(FileLink {
                user_id: "user1".into(),
                patient_id: "patient1".into(),
                file_id: "file1".into(),
                expires_at: 1000
            })
        );
        let longer = token.replace(".1000.", ".999999.");
        assert_eq!(verify_file_link(&key, &longer), None);
        let other_user = token.replacen("user1", "user2", 1);
        assert_eq!(verify_file_link(&key, &other_user), None);
        let other_patient = token.replacen("patient1", "patient2", 1);
        assert_eq!(verify_file_link(&key, &other_patient), None);
        assert_eq!(
            verify_file_link(&SecretKey::from_bytes(&[8; 32]), &token),
            None
        );
        assert_eq!(verify_file_link(&key, "a.b.c.d"), None);
        assert_eq!(verify_file_link(&key, &format!("{token}.x")), None);
    }
}
