//! Password hashing: argon2id with OWASP's parameters and a pepper (RFC 9106).
//!
//! The admin's hash-suite choice never applies here.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use rand::rngs::OsRng;

use super::SecretKey;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordHashError(String);

pub struct PasswordHasher {
    pepper: SecretKey,
    /// A hash of a random password, verified against when the user does not exist, so that an
    /// unknown username costs the same time as a wrong password.
    decoy_hash: String,
}

impl PasswordHasher {
    pub fn new(pepper: SecretKey) -> Result<Self, PasswordHashError> {
        let mut hasher = PasswordHasher {
            pepper,
            decoy_hash: String::new(),
        };
        hasher.decoy_hash = hasher.hash(&super::random_token())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Result<Argon2<'_>, PasswordHashError> {
        self.argon2_with(MEMORY_KIB, PASSES, LANES)
    }

    fn argon2_with(
        &self,
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    ) -> Result<Argon2<'_>, PasswordHashError> {
        let params = Params::new(memory_kib, passes, lanes, None)
            .map_err(|e| PasswordHashError(e.to_string()))?;
        Argon2::new_with_secret(
            self.pepper.expose(),
            Algorithm::Argon2id,
            Version::V0x13,
            params,
        )
        .map_err(|e| PasswordHashError(e.to_string()))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a fresh random salt.
    /// Slow on purpose: call it from a blocking thread.
    pub fn hash(&self, password: &str) -> Result<String, PasswordHashError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordHashError(e.to_string()))
    }

    /// A hash under other argon2id parameters, as an older medvault (or an imported account)
    /// left it: for tests of [`PasswordHasher::needs_rehash`] and for migrations.
    pub fn hash_with_params(
        &self,
        password: &str,
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    ) -> Result<String, PasswordHashError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2_with(memory_kib, passes, lanes)?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordHashError(e.to_string()))
    }

    /// Whether `phc` was made with other parameters than today's (weaker ones, say): the sign-in
    /// that proves the password then stores a new hash.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(0x13)
            || params.m_cost() != MEMORY_KIB
            || params.t_cost() != PASSES
            || params.p_cost() != LANES
    }

    /// Whether `password` matches `phc`; a malformed stored hash never matches.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        self.argon2()
            .map(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    }

    /// Spends the time of one verification and always fails.
    pub fn verify_decoy(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.decoy_hash);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &[u8]) -> PasswordHasher {
        PasswordHasher::new(SecretKey::from_bytes(pepper)).unwrap()
    }

    #[test]
    fn a_hash_with_older_parameters_still_verifies_and_asks_for_a_rehash() {
        let h = hasher(b"pepper-one");
        let old = h
            .hash_with_params("correct horse battery", 8 * 1024, 1, 1)
            .unwrap();
        assert!(h.verify("correct horse battery", &old));
        assert!(h.needs_rehash(&old));
        assert!(!h.needs_rehash(&h.hash("correct horse battery").unwrap()));
    }

    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let h = hasher(b"pepper-one");
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterz", &phc));
    }

    #[test]
    fn a_hash_is_useless_without_the_pepper() {
        let phc = hasher(b"pepper-one").hash("correct horse battery").unwrap();
        assert!(!hasher(b"pepper-two").verify("correct horse battery", &phc));
    }

    #[test]
    fn malformed_hashes_and_decoys_never_match() {
        let h = hasher(b"pepper");
        assert!(!h.verify("anything", "not a phc string"));
        assert!(!h.verify_decoy("anything"));
    }
}
