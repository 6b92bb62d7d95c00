//! Time-based one-time passwords (RFC 6238) as authenticator apps expect them: HMAC-SHA-1,
//! 6 digits, 30-second steps; and the digests of recovery codes.

use rand::{rngs::OsRng, RngCore};
use totp_rs::{Algorithm, TOTP};

use super::{keyed_digest_hex, SecretKey};

pub const STEP_SECONDS: i64 = 30;
const DIGITS: usize = 6;
/// 160 bits, the size RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A new random TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    // The secret's length is ours (SECRET_BYTES), so the checked constructor's test is moot;
    // unchecked also accepts the RFC's test seeds.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP_SECONDS as u64,
        secret.to_vec(),
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    )
}

/// The secret as authenticator apps take it typed in: base32, no padding.
pub fn totp_secret_text(secret: &[u8]) -> String {
    totp(secret, "medvault", "").get_secret_base32()
}

/// The `otpauth://` URL and a PNG of its QR code (base64), drawn here, not by any service.
pub fn totp_enrolment(secret: &[u8], issuer: &str, account: &str) -> (String, Option<String>) {
    let totp = totp(secret, issuer, account);
    (totp.get_url(), totp.get_qr_base64().ok())
}

/// The code for the 30-second step `step` (RFC 6238 T), `digits` long.
pub fn totp_code_at_step(secret: &[u8], step: i64, digits: usize) -> String {
    let mut totp = totp(secret, "medvault", "");
    totp.digits = digits;
    totp.generate((step.max(0) * STEP_SECONDS) as u64)
}

/// The step of `now`.
pub fn totp_step(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// The step `code` belongs to, if it is the code of the current step or one step either side
/// and that step is later than `last_used_step`: a code works once, and never after a later one.
pub fn verify_totp(secret: &[u8], code: &str, now: i64, last_used_step: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = totp_step(now);
    (current - 1..=current + 1)
        .filter(|step| *step > last_used_step)
        .find(|step| {
            let expected = totp_code_at_step(secret, *step, DIGITS);
            super::constant_time_eq(expected.as_bytes(), code.as_bytes())
        })
}

/// The stored form of a recovery code: a keyed digest of its normalised text. The codes carry
/// 60 random bits each, so a keyed fast hash is enough; a stolen table alone reveals nothing.
pub fn recovery_code_digest(key: &SecretKey, user_id: &str, code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    keyed_digest_hex(
        key,
        &[b"recovery code", user_id.as_bytes(), normalised.as_bytes()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the SHA-1 seed and the 8-digit codes at its test times.
    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(
                totp_code_at_step(seed, totp_step(time), 8),
                code,
                "T={time}"
            );
        }
    }

    #[test]
    fn a_code_works_in_its_step_and_one_either_side_only() {
        let secret = new_totp_secret();
        let now = 1_800_000_015;
        let step = totp_step(now);
        for offset in [-1, 0, 1] {
            let code = totp_code_at_step(&secret, step + offset, 6);
            assert_eq!(verify_totp(&secret, &code, now, 0), Some(step + offset));
        }
        for offset in [-2, 2] {
            let code = totp_code_at_step(&secret, step + offset, 6);
            assert_eq!(verify_totp(&secret, &code, now, 0), None, "offset {offset}");
        }
    }

    #[test]
    fn a_used_step_and_earlier_steps_are_refused() {
        let secret = new_totp_secret();
        let now = 1_800_000_015;
        let step = totp_step(now);
        let code = totp_code_at_step(&secret, step, 6);
        assert_eq!(verify_totp(&secret, &code, now, step), None, "replay");
        let earlier = totp_code_at_step(&secret, step - 1, 6);
        assert_eq!(
            verify_totp(&secret, &earlier, now, step),
            None,
            "older than the last used"
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = new_totp_secret();
        for code in ["", "12345", "1234567", "abcdef", "12 34 5x"] {
            assert_eq!(
                verify_totp(&secret, code, 1_800_000_000, 0),
                None,
                "{code:?}"
            );
        }
    }

    #[test]
    fn enrolment_gives_a_url_and_a_qr_code() {
        let secret = new_totp_secret();
        let (url, qr) = totp_enrolment(&secret, "medvault", "dr.house");
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(url.contains(&totp_secret_text(&secret)));
        assert!(qr.is_some_and(|png| !png.is_empty()));
    }

    #[test]
    fn recovery_digests_ignore_case_and_dashes_and_depend_on_user_and_key() {
        let key = SecretKey::from_bytes(&[1; 32]);
        let a = recovery_code_digest(&key, "u1", "abcd-efgh-jkmn");
        assert_eq!(a, recovery_code_digest(&key, "u1", "ABCD EFGH JKMN"));
        assert_ne!(a, recovery_code_digest(&key, "u2", "abcd-efgh-jkmn"));
        assert_ne!(
            a,
            recovery_code_digest(&SecretKey::from_bytes(&[2; 32]), "u1", "abcd-efgh-jkmn")
        );
    }
}
