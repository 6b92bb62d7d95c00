//! Anti brute force: per-account lockout with a lock time that doubles, per-address token
//! buckets for sign-in, second factor and setup, an optional progressive delay, and an
//! application-wide rate limit per client address.
//!
//! An account's failures and locks are an [`AccountRecord`] in the database, so that every
//! server on it counts them together (`auth::lockout` loads and saves them); the rules here
//! decide on a record. What stays in memory, bounded, is per server: the attempts being checked
//! right now, and the per-address buckets (a flood from one address is held off by each server,
//! and in front of several by the load balancer's own limit).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

/// What the database holds of one account: the times of the failures still counted, until
/// when it is locked (0: never was), and how many locks it has had since it last signed in
/// (each lasts twice the one before). Read and written by `db::models::account_lockout`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountRecord {
    pub failures: Vec<i64>,
    pub locked_until: i64,
    pub locks: u32,
}

/// What an admin sets at `/admin/security`. Every method can be switched on and off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BruteForcePolicy {
    pub lockout_enabled: bool,
    /// Failures within the window that lock the account.
    pub lockout_failures: u32,
    pub lockout_window_seconds: i64,
    /// The first lock's length; each further lock lasts twice the one before, up to
    /// `lockout_max_seconds`.
    pub lockout_seconds: i64,
    /// The longest a lock lasts, however often it doubled: a lockout slows a guesser down and
    /// must never lock the owner out for long.
    #[serde(default = "default_lockout_max_seconds")]
    pub lockout_max_seconds: i64,
    pub throttle_enabled: bool,
    /// Attempts an address may make at once, and how many come back per minute.
    pub throttle_burst: u32,
    pub throttle_per_minute: u32,
    pub delay_enabled: bool,
    pub delay_base_ms: u64,
    pub delay_max_ms: u64,
    pub rate_limit_enabled: bool,
    pub rate_limit_burst: u32,
    pub rate_limit_per_minute: u32,
}

impl Default for BruteForcePolicy {
    fn default() -> Self {
        BruteForcePolicy {
            lockout_enabled: true,
            lockout_failures: 5,
            lockout_window_seconds: 15 * 60,
            lockout_seconds: 5 * 60,
            lockout_max_seconds: default_lockout_max_seconds(),
            throttle_enabled: true,
            throttle_burst: 20,
            throttle_per_minute: 10,
            delay_enabled: false,
            delay_base_ms: 250,
            delay_max_ms: 4000,
            rate_limit_enabled: true,
            rate_limit_burst: 600,
            rate_limit_per_minute: 600,
        }
    }
}

fn default_lockout_max_seconds() -> i64 {
    60 * 60
}

/// A map that never holds more than `capacity` entries: when full, entries `idle` says can go
/// are swept out, and if that is not enough the oldest half goes. An attacker cycling through
/// addresses or usernames cannot grow it without limit.
pub struct BoundedMap<K, V> {
    entries: HashMap<K, (i64, V)>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }

    /// The entry for `key`, made with `make` if absent, touched at `now`.
    pub fn entry(
        &mut self,
        key: K,
        now: i64,
        make: impl FnOnce() -> V,
        idle: impl Fn(&V) -> bool,
    ) -> &mut V {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, v)| !idle(v));
            if self.entries.len() >= self.capacity {
                let mut touched: Vec<i64> = self.entries.values().map(|(t, _)| *t).collect();
                touched.sort_unstable();
                let cutoff = touched[touched.len() / 2];
                self.entries.retain(|_, (t, _)| *t > cutoff);
            }
        }
        let slot = self.entries.entry(key).or_insert_with(|| (now, make()));
        slot.0 = now;
        &mut slot.1
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: i64,
}

impl Bucket {
    /// Takes a token, refilling at `per_minute`; the seconds to wait when empty.
    fn take(&mut self, now: i64, burst: u32, per_minute: u32) -> Result<(), i64> {
        let refill = (now - self.at).max(0) as f64 * per_minute as f64 / 60.0;
        self.tokens = (self.tokens + refill).min(burst as f64);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let per_second = (per_minute.max(1) as f64) / 60.0;
            Err(((1.0 - self.tokens) / per_second).ceil().max(1.0) as i64)
        }
    }
}

/// Why an attempt on an account was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptRefused {
    /// The account is locked until then.
    Locked(i64),
    /// As many attempts as the lockout has room for are being checked already; should they all
    /// fail, one more would be past the limit. It is refused, and not counted.
    Busy,
}

/// An attempt on an account (a password or code about to be checked), held while it is
/// checked. Attempts in flight count toward the lockout together with the failures, so that
/// concurrent guesses cannot all be checked against the same count: with a limit of five, no
/// more than five are ever checked on one server before the lock (with several servers, five
/// on each at the same moment at most; one after the other, five in all).
pub struct Attempt<'g> {
    guard: &'g BruteForceGuard,
    account: String,
    refused: Option<AttemptRefused>,
    /// Counted in flight (lockout on, and let through).
    counted: bool,
}

impl Attempt<'_> {
    pub fn refused(&self) -> Option<AttemptRefused> {
        self.refused
    }

    pub fn is_refused(&self) -> bool {
        self.refused.is_some()
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.counted {
            let mut accounts = self
                .guard
                .accounts
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(in_flight) = accounts.get_mut(&self.account) {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }
}

/// What a failed attempt did to the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted,
    /// This failure locked the account until the given time.
    LockedUntil(i64),
}

pub const TRACKED_ENTRIES: usize = 20_000;

pub struct BruteForceGuard {
    policy: RwLock<BruteForcePolicy>,
    /// Attempts on each account begun on this server and not yet ended: each may still fail.
    accounts: Mutex<BoundedMap<String, u32>>,
    auth_buckets: Mutex<BoundedMap<String, Bucket>>,
    request_buckets: Mutex<BoundedMap<String, Bucket>>,
}

impl BruteForceGuard {
    pub fn new(policy: BruteForcePolicy, capacity: usize) -> Self {
        BruteForceGuard {
            policy: RwLock::new(policy),
            accounts: Mutex::new(BoundedMap::new(capacity)),
            auth_buckets: Mutex::new(BoundedMap::new(capacity)),
            request_buckets: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    pub fn policy(&self) -> BruteForcePolicy {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policy(&self, policy: BruteForcePolicy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Until when the account of `record` is locked, if it is.
    pub fn locked_until(&self, record: &AccountRecord, now: i64) -> Option<i64> {
        if !self.policy().lockout_enabled {
            return None;
        }
        Some(record.locked_until).filter(|until| *until > now)
    }

    /// Begins an attempt on `account`, whose record is `record`: refused while it is locked, or
    /// while the attempts being checked already fill what is left before the lock. Hold it
    /// until the attempt's failure (or success) is recorded.
    pub fn begin_attempt(&self, account: &str, record: &AccountRecord, now: i64) -> Attempt<'_> {
        let policy = self.policy();
        let mut attempt = Attempt {
            guard: self,
            account: account.to_string(),
            refused: None,
            counted: false,
        };
        if !policy.lockout_enabled {
            return attempt;
        }
        let failures = self.failures(record, now) as u32;
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let in_flight = accounts.entry(account.to_string(), now, || 0, |n| *n == 0);
        attempt.refused = if record.locked_until > now {
            Some(AttemptRefused::Locked(record.locked_until))
        } else if failures + *in_flight >= policy.lockout_failures.max(1) {
            Some(AttemptRefused::Busy)
        } else {
            *in_flight += 1;
            attempt.counted = true;
            None
        };
        drop(accounts);
        attempt
    }

    /// Counts a failed password, code or recovery code in `record`; the caller saves it.
    pub fn count_failure(&self, record: &mut AccountRecord, now: i64) -> FailureOutcome {
        let policy = self.policy();
        if !policy.lockout_enabled {
            return FailureOutcome::Counted;
        }
        // While locked, nothing counts: an attacker hammering a locked account must not push
        // its lock further out (the attempts are refused before any password is checked).
        if record.locked_until > now {
            return FailureOutcome::LockedUntil(record.locked_until);
        }
        let window = policy.lockout_window_seconds;
        record.failures.retain(|t| now - t <= window);
        record.failures.push(now);
        if record.failures.len() as u32 >= policy.lockout_failures.max(1) {
            let factor = 1i64 << record.locks.min(16);
            let lock = policy
                .lockout_seconds
                .saturating_mul(factor)
                .min(policy.lockout_max_seconds.max(policy.lockout_seconds));
            record.locked_until = now + lock;
            record.locks = record.locks.saturating_add(1);
            record.failures.clear();
            return FailureOutcome::LockedUntil(record.locked_until);
        }
        FailureOutcome::Counted
    }

    /// How many failures `record` has in the window: the progressive delay grows with it.
    pub fn failures(&self, record: &AccountRecord, now: i64) -> usize {
        let window = self.policy().lockout_window_seconds;
        record
            .failures
            .iter()
            .filter(|t| now - **t <= window)
            .count()
    }

    /// How long a record says anything after its last change: its failures' window or its
    /// longest lock, whichever is longer. Older rows are pruned.
    pub fn record_lifetime(&self) -> i64 {
        let policy = self.policy();
        policy
            .lockout_window_seconds
            .max(policy.lockout_max_seconds)
            .max(policy.lockout_seconds)
    }

    /// Takes a sign-in attempt from `address`'s bucket; the seconds to wait when it is empty.
    pub fn take_auth_attempt(&self, address: &str, now: i64) -> Result<(), i64> {
        let policy = self.policy();
        if !policy.throttle_enabled {
            return Ok(());
        }
        let mut buckets = self.auth_buckets.lock().unwrap_or_else(|e| e.into_inner());
        Self::take(
            &mut buckets,
            address,
            now,
            policy.throttle_burst,
            policy.throttle_per_minute,
        )
    }

    /// Takes a request from `address`'s application-wide bucket.
    pub fn take_request(&self, address: &str, now: i64) -> Result<(), i64> {
        let policy = self.policy();
        if !policy.rate_limit_enabled {
            return Ok(());
        }
        let mut buckets = self
            .request_buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Self::take(
            &mut buckets,
            address,
            now,
            policy.rate_limit_burst,
            policy.rate_limit_per_minute,
        )
    }

    fn take(
        buckets: &mut BoundedMap<String, Bucket>,
        address: &str,
        now: i64,
        burst: u32,
        per_minute: u32,
    ) -> Result<(), i64> {
        let full_after = 60 * burst as i64 / per_minute.max(1) as i64;
        buckets
            .entry(
                address.to_string(),
                now,
                || Bucket {
                    tokens: burst as f64,
                    at: now,
                },
                // A bucket that has refilled completely is the same as no bucket.
                |b| now - b.at >= full_after,
            )
            .take(now, burst, per_minute)
    }

    /// How long to hold back the answer to a failure, growing with the account's failures.
    pub fn delay_ms(&self, failures: usize) -> u64 {
        let policy = self.policy();
        if !policy.delay_enabled || failures == 0 {
            return 0;
        }
        let exponent = (failures - 1).min(16) as u32;
        policy
            .delay_base_ms
            .saturating_mul(1u64 << exponent)
            .min(policy.delay_max_ms)
    }

    /// Entries held, for the memory bound's test.
    pub fn tracked(&self) -> (usize, usize, usize) {
        fn len<V>(m: &Mutex<BoundedMap<String, V>>) -> usize {
            m.lock().unwrap_or_else(|e| e.into_inner()).len()
        }
        (
            len(&self.accounts),
            len(&self.auth_buckets),
            len(&self.request_buckets),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> BruteForceGuard {
        BruteForceGuard::new(BruteForcePolicy::default(), 1000)
    }

    #[test]
    fn five_failures_lock_and_each_lock_lasts_twice_as_long() {
        let g = guard();
        let mut doc = AccountRecord::default();
        let mut now = 1_000_000;
        for _ in 0..4 {
            assert_eq!(g.count_failure(&mut doc, now), FailureOutcome::Counted);
        }
        assert_eq!(
            g.count_failure(&mut doc, now),
            FailureOutcome::LockedUntil(now + 300)
        );
        assert!(g.locked_until(&doc, now + 299).is_some());
        assert!(g.locked_until(&doc, now + 300).is_none());
        // Nothing counts while locked.
        assert_eq!(
            g.count_failure(&mut doc, now + 10),
            FailureOutcome::LockedUntil(now + 300)
        );
        now += 301;
        for _ in 0..4 {
            g.count_failure(&mut doc, now);
        }
        assert_eq!(
            g.count_failure(&mut doc, now),
            FailureOutcome::LockedUntil(now + 600)
        );
    }

    #[test]
    fn concurrent_attempts_never_outnumber_what_is_left_before_the_lock() {
        let g = guard();
        let limit = g.policy().lockout_failures as usize;
        // Four wrong passwords already: one attempt may be checked, the others wait.
        let mut ana = AccountRecord::default();
        for _ in 0..limit - 1 {
            assert_eq!(g.count_failure(&mut ana, 0), FailureOutcome::Counted);
        }
        let first = g.begin_attempt("ana", &ana, 1);
        assert_eq!(first.refused(), None);
        let second = g.begin_attempt("ana", &ana, 1);
        assert_eq!(second.refused(), Some(AttemptRefused::Busy));
        drop(second);
        // The first fails and locks; a busy refusal counted nothing.
        assert!(matches!(
            g.count_failure(&mut ana, 1),
            FailureOutcome::LockedUntil(_)
        ));
        drop(first);
        assert!(matches!(
            g.begin_attempt("ana", &ana, 2).refused(),
            Some(AttemptRefused::Locked(_))
        ));

        // From nothing, six guesses at once: five are checked, the sixth is refused.
        let fresh = guard();
        let mut bo = AccountRecord::default();
        let attempts: Vec<_> = (0..limit + 1)
            .map(|_| fresh.begin_attempt("bo", &bo, 0))
            .collect();
        let checked = attempts.iter().filter(|a| !a.is_refused()).count();
        assert_eq!(checked, limit);
        for _ in 0..checked {
            fresh.count_failure(&mut bo, 0);
        }
        drop(attempts);
        assert!(fresh.locked_until(&bo, 0).is_some());
        // An attempt that ends without a failure gives its place back.
        let other = guard();
        let cy = AccountRecord::default();
        drop(other.begin_attempt("cy", &cy, 0));
        let all: Vec<_> = (0..limit)
            .map(|_| other.begin_attempt("cy", &cy, 0))
            .collect();
        assert!(all.iter().all(|a| !a.is_refused()));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let g = guard();
        let mut doc = AccountRecord::default();
        for i in 0..10 {
            assert_eq!(
                g.count_failure(&mut doc, i * 16 * 60),
                FailureOutcome::Counted
            );
        }
        assert_eq!(
            doc.failures.len(),
            1,
            "the old ones are dropped from the record"
        );
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let g = guard();
        for _ in 0..20 {
            assert!(g.take_auth_attempt("192.0.2.1", 0).is_ok());
        }
        assert_eq!(g.take_auth_attempt("192.0.2.1", 0), Err(6));
        assert!(
            g.take_auth_attempt("192.0.2.2", 0).is_ok(),
            "another address"
        );
        assert!(
            g.take_auth_attempt("192.0.2.1", 6).is_ok(),
            "one token back after 6 s"
        );
    }

    #[test]
    fn memory_stays_bounded_with_100000_addresses_and_usernames() {
        let g = BruteForceGuard::new(BruteForcePolicy::default(), TRACKED_ENTRIES);
        for i in 0..100_000u32 {
            let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let _ = g.take_auth_attempt(&address, 0);
            let _ = g.take_request(&address, 0);
            drop(g.begin_attempt(&format!("user{i}"), &AccountRecord::default(), 0));
        }
        let (accounts, auth, requests) = g.tracked();
        assert!(accounts <= TRACKED_ENTRIES, "{accounts}");
        assert!(auth <= TRACKED_ENTRIES, "{auth}");
        assert!(requests <= TRACKED_ENTRIES, "{requests}");
    }

    #[test]
    fn the_delay_doubles_up_to_its_ceiling() {
        let g = guard();
        assert_eq!(g.delay_ms(3), 0, "off by default");
        g.set_policy(BruteForcePolicy {
            delay_enabled: true,
            ..BruteForcePolicy::default()
        });
        assert_eq!(g.delay_ms(1), 250);
        assert_eq!(g.delay_ms(3), 1000);
        assert_eq!(g.delay_ms(10), 4000);
    }
}
