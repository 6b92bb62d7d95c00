//! What the layers below the pages share: the database, the field encryption, the audit trail
//! and its seal, the clock, and the admin's state held in memory. The record's rules, the
//! re-encryption job, key rotation, backups and account creation take this, not the web
//! server's [`crate::App`], which is built at the top around one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::access::{AccessTable, Level, Page};
use crate::audit::AuditLog;
use crate::brute_force::{BruteForceGuard, BruteForcePolicy, TRACKED_ENTRIES};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::{constant_time_eq, random_id, random_token, KeyRing, PasswordHasher};
use crate::db::models::{key_check, wrapped_key, JobLease, PageGrant, Setting, User};
use crate::db::{Conn, Db, DbError};
use crate::fields::job_state;
use crate::fields::{policy, Fields, Policy};
use crate::key_manager::KeyManager;
use crate::masking::Visibility;
use crate::state_seal::StateSeal;

pub struct Services {
    pub config: Config,
    pub db: Db,
    pub passwords: PasswordHasher,
    pub audit: AuditLog,
    /// Seals the admin's state; every change to it reseals in its own transaction.
    pub state_seal: StateSeal,
    pub clock: Clock,
    pub fields: Fields,
    /// This server among those sharing the database (host, process, a random part): how a
    /// job lease names its holder, and what an operator reads to find it.
    pub instance: String,
    /// Shared with the re-encryption worker, which waits on it without keeping the services alive.
    pub job_signal: Arc<JobSignal>,
    /// Held by a root-key rotation from reading the key file to its last database write.
    pub rotation: Mutex<()>,
    /// One backup or restore at a time.
    pub backup_work: BackupWork,
    /// The key manager that unwrapped the root keys (`transit`, `pkcs11`); `None` for the key
    /// file and the environment. Needed again only to wrap a new version (a rotation) and for
    /// `/health`'s probe.
    pub key_manager: Option<Arc<KeyManager>>,
    // The admin's state, in memory so that no request pays a query for it, and so that an edit
    // made to the file while the server runs changes nothing. Loaded by [`StoredState::load`].
    pub access: AccessTable,
    pub security: SecuritySettings,
    pub setup: SetupToken,
    pub brute_force: BruteForceGuard,
    /// Length of new random ids, set at `/admin/encryption`.
    id_length: AtomicUsize,
    /// How profile fields are shown per level.
    masking: RwLock<Arc<Visibility>>,
    /// The seal's MAC when the state in force was last compared with the database's (see
    /// [`Services::catch_up`]); `None` until then.
    state_seen: Mutex<Option<String>>,
}

impl Services {
    /// The services around what start-up opened and checked; the admin's state is put in force
    /// by [`Services::put_in_force`] before anyone uses them.
    pub fn new(
        config: Config,
        db: Db,
        passwords: PasswordHasher,
        audit: AuditLog,
        state_seal: StateSeal,
        fields: Fields,
    ) -> Services {
        Services {
            clock: config.clock.clone(),
            config,
            db,
            passwords,
            audit,
            state_seal,
            fields,
            instance: instance_name(),
            job_signal: Arc::default(),
            rotation: Mutex::new(()),
            backup_work: BackupWork::default(),
            key_manager: None,
            access: AccessTable::default(),
            security: SecuritySettings::default(),
            setup: SetupToken::default(),
            brute_force: BruteForceGuard::new(BruteForcePolicy::default(), TRACKED_ENTRIES),
            id_length: AtomicUsize::new(0),
            masking: RwLock::new(Arc::new(Visibility::default())),
            state_seen: Mutex::new(None),
        }
    }

    pub fn with_key_manager(mut self, key_manager: Option<Arc<KeyManager>>) -> Services {
        self.key_manager = key_manager;
        self
    }

    /// The root keys in force: every version this server holds, a rotation's new one
    /// included. Service keys (`purpose_key`) come from the oldest, which a rotation keeps.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.fields.crypto().key_ring()
    }

    /// How long a job lease lasts without renewal, in milliseconds.
    pub fn lease_ttl_ms(&self) -> i64 {
        self.config.job_lease_seconds * 1000
    }

    /// Gives up every job lease this server holds: at a shutdown, so that another server takes
    /// its jobs over at once instead of when the leases run out (an upgrade, a restart).
    pub fn release_leases(&self) {
        let released = self
            .db
            .conn()
            .and_then(|mut conn| Ok(JobLease::release_all_of(&self.instance, &mut conn)?));
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot give up this server's job leases; they run out by themselves");
        }
    }

    /// Runs `work` while this server holds the job lease `name`, renewed every third of a
    /// lease from a thread of its own for as long as `work` takes, then given up; `None`,
    /// without running it, while another server holds the lease. For work done outside a
    /// transaction (a backup); the re-encryption job renews its lease inside each batch.
    pub fn while_holding<T>(
        &self,
        name: &str,
        work: impl FnOnce() -> T,
    ) -> Result<Option<T>, DbError> {
        let ttl = self.lease_ttl_ms();
        if !JobLease::take(name, &self.instance, ttl, &mut *self.db.conn()?)? {
            return Ok(None);
        }
        let finished = JobSignal::default();
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                let every = Duration::from_millis((ttl / 3) as u64);
                while !finished.wait_for(every) {
                    let renewed = self.db.conn().and_then(|mut conn| {
                        Ok(JobLease::take(name, &self.instance, ttl, &mut conn)?)
                    });
                    match renewed {
                        Ok(true) => {}
                        Ok(false) => tracing::error!(
                            lease = name,
                            "another server took this server's job lease; it was not renewed in time"
                        ),
                        Err(e) => tracing::warn!(lease = name, error = %e, "cannot renew a job lease"),
                    }
                }
            });
            let outcome = work();
            finished.notify();
            outcome
        });
        JobLease::release(name, &self.instance, &mut *self.db.conn()?)?;
        Ok(Some(outcome))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn id_length(&self) -> usize {
        self.id_length.load(Ordering::Relaxed)
    }

    pub fn set_id_length(&self, length: usize) {
        self.id_length.store(length, Ordering::Relaxed);
    }

    pub fn masking(&self) -> Arc<Visibility> {
        self.masking
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_masking(&self, visibility: Visibility) {
        *self.masking.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(visibility);
    }

    /// Reloads every in-memory copy of database state after a restore put another database in
    /// place: the same loader as at start, so the restored settings are in force exactly as if
    /// the server had started on them.
    pub fn reload_from_database(&self) -> Result<(), DbError> {
        let mut conn = self.db.conn()?;
        let stored = StoredState::load(&self.config, &mut conn)?;
        self.mark_state_seen(&mut conn)?;
        drop(conn);
        let has_job = stored.migration.is_some();
        self.put_in_force(stored);
        if has_job {
            self.job_signal.notify();
        }
        Ok(())
    }

    /// Puts the admin's state of the database in force if another server changed it since it
    /// was last compared: its seal's MAC is the version (it changes with every change to that
    /// state). Believed only if the seal holds. Run in a transaction of the caller's, so that
    /// what it loads is one moment's state; inside a write transaction nothing can change it
    /// until that commits. A database only this server uses needs none of this.
    pub fn catch_up(&self, conn: &mut Conn) -> Result<(), DbError> {
        if self.db.sqlite_file().is_some() {
            return Ok(());
        }
        let current = StateSeal::current_mac(conn)?;
        let mut seen = self.state_seen.lock().unwrap_or_else(|e| e.into_inner());
        let mac = current.as_ref().map(|(mac, _)| mac.clone());
        if mac == *seen {
            return Ok(());
        }
        if let Some((_, generation)) = current {
            if self.state_seal.just_wrote_newer_than(generation) {
                // Older than what this server just put in force: looked at again next time.
                return Ok(());
            }
        }
        match self.state_seal.verify(conn)? {
            Ok(()) => {
                if !self.take_new_root_versions(conn)? {
                    // Seen again at the next look, when the key manager may answer.
                    return Ok(());
                }
                let stored = StoredState::load(&self.config, conn)?;
                let has_job = stored.migration.is_some();
                // The setup link is this server's own: an admin made elsewhere ends it, and
                // a reload never makes a new one (only a start or a restore does).
                let admin_exists = stored.admin_exists;
                self.apply(stored);
                if admin_exists {
                    self.setup.clear();
                }
                if has_job {
                    self.job_signal.notify();
                }
            }
            Err(tampered) => tracing::error!(
                %tampered,
                "the admin's state in the database fails its seal: kept the state in force"
            ),
        }
        *seen = mac;
        Ok(())
    }

    /// Root key versions another server added (its admin rotated the key): under a key
    /// manager, unwrapped from the wrapped keys the servers share and, once they match the key
    /// check values, used here too, so that this server opens what the other now seals. False
    /// while the key manager cannot be asked (the caller looks again later).
    fn take_new_root_versions(&self, conn: &mut Conn) -> Result<bool, DbError> {
        let recorded = key_check::all(conn)?;
        let held = self.keys();
        let missing: Vec<i32> = recorded
            .iter()
            .map(|(version, _)| *version)
            .filter(|version| {
                !held
                    .root_versions()
                    .any(|v| i64::from(v) == i64::from(*version))
            })
            .collect();
        if missing.is_empty() {
            return Ok(true);
        }
        let Some(manager) = &self.key_manager else {
            tracing::error!(
                versions = ?missing,
                "another server added root key versions this server does not hold: values \
                 sealed under them cannot be opened here. Give this server the new key file or \
                 MEDVAULT_MASTER_KEY and restart it"
            );
            return Ok(true);
        };
        let stored = wrapped_key::all(conn)?;
        let ring = match manager.unwrap_all(&stored) {
            Ok(root) => KeyRing::new(root),
            Err(e) => {
                tracing::error!(error = %e, versions = ?missing, "cannot unwrap another server's new root key versions yet");
                return Ok(false);
            }
        };
        let matches = recorded
            .iter()
            .all(|(version, check_value)| ring.matches_recorded(*version, check_value));
        if !matches {
            tracing::error!(
                versions = ?missing,
                "the wrapped root keys do not match the database's key check values: kept the keys in force"
            );
            return Ok(true);
        }
        self.fields.set_keys(ring);
        tracing::info!(versions = ?missing, "took the root key versions another server added");
        Ok(true)
    }

    /// Remembers the database's state as the one in force (at start, after a restore).
    pub fn mark_state_seen(&self, conn: &mut Conn) -> Result<(), DbError> {
        let mac = StateSeal::current_mac(conn)?.map(|(mac, _)| mac);
        *self.state_seen.lock().unwrap_or_else(|e| e.into_inner()) = mac;
        Ok(())
    }

    /// Makes `stored` the state every request sees, and offers a setup link if no admin
    /// exists yet (at start and after a restore).
    pub fn put_in_force(&self, stored: StoredState) {
        let admin_exists = stored.admin_exists;
        self.apply(stored);
        if admin_exists {
            self.setup.clear();
        } else if self.setup.current().is_none() {
            self.setup.restore(random_token());
        }
    }

    fn apply(&self, stored: StoredState) {
        self.access.replace(stored.granted);
        self.security
            .bind_ip
            .store(stored.bind_ip, Ordering::Relaxed);
        self.security
            .bind_user_agent
            .store(stored.bind_user_agent, Ordering::Relaxed);
        self.security
            .set_two_factor_required(stored.two_factor_levels);
        self.brute_force.set_policy(stored.brute_force);
        self.fields.set_policy(stored.policy);
        self.fields.set_retired(stored.retired);
        self.fields.set_migration(stored.migration);
        self.set_masking(stored.masking);
        self.id_length.store(stored.id_length, Ordering::Relaxed);
    }
}

impl Drop for Services {
    /// A server shut down (or a test's, restarted) leaves no lease behind.
    fn drop(&mut self) {
        self.release_leases();
    }
}

/// `host:pid:random`. The random part tells apart two processes that got the same pid (a
/// restarted container).
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{}", std::process::id(), random_id(8))
}

/// How often a server on a shared database looks whether another changed the admin's state.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// Keeps the admin's state in memory the same as the database's when several servers share one
/// PostgreSQL database: every [`FOLLOW_INTERVAL`] it reads the seal's MAC (one small query),
/// and when another server's change moved it, loads the state again, believed only if its
/// seal holds, as at start. A version checked this way, rather than `LISTEN/NOTIFY`, needs no
/// connection held open per server and cannot miss a change made while it was reconnecting:
/// the MAC it compares is the state itself. Stops once the services are gone.
pub fn spawn_state_follower(app: Arc<Services>) {
    let services = Arc::downgrade(&app);
    drop(app);
    let spawned = std::thread::Builder::new()
        .name("state-follower".into())
        .spawn(move || loop {
            std::thread::sleep(FOLLOW_INTERVAL);
            let Some(app) = services.upgrade() else {
                break;
            };
            let looked = app
                .db
                .conn()
                .and_then(|mut conn| conn.snapshot_transaction(|conn| app.catch_up(conn)));
            if let Err(e) = looked {
                tracing::warn!(error = %e, "cannot look for another server's settings changes");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start following other servers' settings changes");
    }
}

/// Settings an admin switches at `/admin/security`, kept in memory so that no request pays a
/// query for them; saved to the database by the page that changes them.
#[derive(Default)]
pub struct SecuritySettings {
    pub bind_ip: AtomicBool,
    pub bind_user_agent: AtomicBool,
    /// Levels that must sign in with a second factor.
    pub require_two_factor: RwLock<HashSet<Level>>,
}

impl SecuritySettings {
    pub fn two_factor_required(&self, level: Level) -> bool {
        self.require_two_factor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&level)
    }

    pub fn set_two_factor_required(&self, levels: HashSet<Level>) {
        *self
            .require_two_factor
            .write()
            .unwrap_or_else(|e| e.into_inner()) = levels;
    }

    pub fn bind_ip(&self) -> bool {
        self.bind_ip.load(Ordering::Relaxed)
    }

    pub fn bind_user_agent(&self) -> bool {
        self.bind_user_agent.load(Ordering::Relaxed)
    }
}

/// The single-use token of the first-run setup link, while no admin exists.
#[derive(Default)]
pub struct SetupToken(Mutex<Option<String>>);

impl SetupToken {
    /// Takes the token if `offered` matches it: it works once.
    pub fn redeem(&self, offered: &str) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_deref() {
            Some(token) if constant_time_eq(token.as_bytes(), offered.as_bytes()) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// Whether `offered` is the current token, without using it up.
    pub fn matches(&self, offered: &str) -> bool {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), offered.as_bytes()))
    }

    /// Puts a token back after a failed attempt to use it (a form error, say).
    pub fn restore(&self, token: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    pub fn current(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Withdraws the link: an admin exists.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Wakes the re-encryption worker when a job starts, instead of it polling the database.
#[derive(Default)]
pub struct JobSignal {
    pending: Mutex<bool>,
    wake: Condvar,
}

impl JobSignal {
    pub fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits until notified or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        self.wait_for(timeout);
    }

    /// [`JobSignal::wait`], saying whether it was notified.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (mut pending, _) = self
            .wake
            .wait_timeout_while(pending, timeout, |p| !*p)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *pending, false)
    }
}

/// The admin's state as the database holds it: what medvault keeps in memory so that no
/// request pays a query for it. Loaded here alone, at start and after a restore.
pub struct StoredState {
    granted: HashSet<(Level, Page)>,
    bind_ip: bool,
    bind_user_agent: bool,
    two_factor_levels: HashSet<Level>,
    brute_force: BruteForcePolicy,
    policy: Policy,
    retired: HashSet<u32>,
    /// The plain-tolerated columns of the running re-encryption job, if one runs.
    migration: Option<HashSet<(String, String)>>,
    masking: Visibility,
    /// The admin's id length, else the configured one.
    id_length: usize,
    admin_exists: bool,
}

impl StoredState {
    /// The field encryption under this policy, these retired key versions and this job.
    pub fn field_encryption(&self, keys: KeyRing) -> Fields {
        Fields::new(
            keys,
            self.policy.clone(),
            self.retired.clone(),
            self.migration.clone(),
        )
    }

    pub fn load(config: &Config, conn: &mut Conn) -> diesel::QueryResult<StoredState> {
        Ok(StoredState {
            granted: PageGrant::load_granted(conn)?,
            bind_ip: Setting::get_bool(Setting::BIND_SESSION_IP, true, conn)?,
            bind_user_agent: Setting::get_bool(Setting::BIND_SESSION_USER_AGENT, true, conn)?,
            two_factor_levels: Setting::get(Setting::REQUIRE_TWO_FACTOR, conn)?
                .unwrap_or_default()
                .split(',')
                .filter_map(Level::parse)
                .collect(),
            brute_force: Setting::get(Setting::BRUTE_FORCE_POLICY, conn)?
                .and_then(|json| serde_json::from_str::<BruteForcePolicy>(&json).ok())
                .unwrap_or_default(),
            policy: Policy::load(conn)?,
            retired: job_state::retired_versions(conn)?,
            migration: job_state::Job::running(conn)?.map(|job| job.tolerated_plain()),
            masking: Visibility::load(conn)?,
            id_length: Setting::get(policy::ID_LENGTH_SETTING, conn)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(config.id_length),
            admin_exists: User::exists_active_admin(conn)?,
        })
    }
}

/// Held by a backup or a restore for its whole run: two at once would pick the same names and
/// trample each other's temporary files, and a restore must not swap under a backup's copy.
#[derive(Default)]
pub struct BackupWork(std::sync::Mutex<()>);

impl BackupWork {
    /// The right to run, or `None` while another run holds it.
    pub fn start(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}
