//! The keys a session token's stored digest is made with: renewed every interval, so that a
//! session whose key has passed ends (and a stolen digest table is useless for long).

use super::{keyed_digest_hex, SecretKey};

pub struct SessionKeys {
    seed: SecretKey,
    interval: i64,
}

impl SessionKeys {
    pub fn new(seed: SecretKey, interval: i64) -> Self {
        SessionKeys {
            seed,
            interval: interval.max(1),
        }
    }

    pub fn epoch(&self, now: i64) -> i64 {
        now.div_euclid(self.interval)
    }

    /// The stored form of `token` under the session key of `epoch`.
    pub fn digest(&self, token: &str, epoch: i64) -> String {
        let epoch = epoch.to_string();
        keyed_digest_hex(
            &self.seed,
            &[b"session token", epoch.as_bytes(), token.as_bytes()],
        )
    }
}
