//! Start-up: the directories, the database, the root key and everything derived from it,
//! gathered in one [`App`] that the server, the command line and the tests share.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::access::{AccessTable, Level};
use crate::audit::{action, Actor, AuditLog, Entry, Outcome};
use crate::auth::throttle::{BruteForceGuard, BruteForcePolicy, TRACKED_ENTRIES};
use crate::auth::SessionKeys;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::{constant_time_eq, random_token, KeyRing, PasswordHasher, Purpose, RootKeys};
use crate::db::models::{key_check, PageGrant, Setting, User};
use crate::db::{Db, DbError};
use crate::fields::{job, policy, Fields, Policy};
use crate::private_files::{self, KeyFileWrite};
use crate::records::masking::Visibility;
use crate::state_seal::StateSeal;

/// The migration that brought the seal on the admin's state.
pub const SEAL_MIGRATION: &str = "20261202000005";

#[derive(Debug, thiserror::Error)]
#[error("medvault cannot start: {0}")]
pub struct StartupError(pub String);

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
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (mut pending, _) = self
            .wake
            .wait_timeout_while(pending, timeout, |p| !*p)
            .unwrap_or_else(|e| e.into_inner());
        *pending = false;
    }
}

pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub keys: KeyRing,
    pub passwords: PasswordHasher,
    pub sessions: SessionKeys,
    pub access: AccessTable,
    pub audit: AuditLog,
    pub security: SecuritySettings,
    pub setup: SetupToken,
    pub clock: Clock,
    /// Whether the server runs under TLS, so that cookies are marked Secure.
    pub tls: AtomicBool,
    pub fields: Fields,
    /// Length of new random ids, set at `/admin/encryption`.
    pub id_length: AtomicUsize,
    pub job_signal: JobSignal,
    pub brute_force: BruteForceGuard,
    /// Seals the admin's state; every change to it reseals in its own transaction.
    pub state_seal: StateSeal,
    /// How profile fields are shown per level, held in memory like the other admin settings so
    /// that an edit made to the file while the server runs changes nothing.
    masking: RwLock<Arc<Visibility>>,
    /// One backup or restore at a time.
    pub backup_work: crate::backup::BackupWork,
    /// Held by a root-key rotation from reading the key file to its last database write.
    pub rotation: Mutex<()>,
    /// `/health`'s write probe of the database folder, remembered for a few seconds.
    pub disk_probe: crate::health::DiskProbe,
}

/// Everything a request handler needs, cheap to clone into a blocking task.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens medvault's home: creates the folders, migrates the database, loads or creates the
    /// root key and checks it against the database. A database that is not in the state
    /// medvault left it in (a schema of anyone else's, settings edited outside medvault) stops
    /// the start.
    pub fn open(config: Config) -> Result<App, StartupError> {
        App::open_as(config, Opening::Serve)
    }

    /// [`App::open`] for `medvault restore` on a stopped server: a live database that fails
    /// its checks is reported, not refused, since putting a checked backup in its place is the
    /// way out. The backup is checked as always before it replaces anything.
    pub fn open_for_restore(config: Config) -> Result<App, StartupError> {
        App::open_as(config, Opening::Restore)
    }

    fn open_as(config: Config, opening: Opening) -> Result<App, StartupError> {
        config.validate().map_err(|e| StartupError(e.to_string()))?;
        for dir in [
            config.database_dir(),
            config.backups_dir(),
            config.storage_dir(),
        ] {
            private_files::private_dir(&dir)
                .map_err(|e| StartupError(format!("cannot create {}: {e}", dir.display())))?;
        }
        private_files::private_database_file(&config.database_file()).map_err(|e| {
            StartupError(format!(
                "cannot make the database {} private: {e}",
                config.database_file().display()
            ))
        })?;
        let db = Db::open(&config.database_file()).map_err(StartupError)?;
        let mut conn = db.conn().map_err(|e| StartupError(e.to_string()))?;
        if let Err(difference) = crate::db::shape::require_current(&mut conn) {
            opening.refuse(format!(
                "the database {} is not medvault's: {difference}. It was changed outside \
                 medvault; restore a backup (`medvault restore NAME` checks it first).",
                config.database_file().display()
            ))?;
        }
        let recorded = key_check::all(&mut conn).map_err(db_error)?;

        let root = load_root_keys(&config, !recorded.is_empty())?;
        let keys = KeyRing::new(root);
        let now = config.clock.now();
        check_root_keys(&keys, &recorded)?;

        // The admin's state is believed only once its seal holds; checked before this start
        // writes anything to it. A database without a seal is sealed only by the start that
        // applies the migration bringing seals (a new one, or an upgrade), and that is audited.
        let state_seal = StateSeal::new(keys.purpose_key(Purpose::StateSeal));
        let audit = AuditLog::new(keys.purpose_key(Purpose::AuditChain));
        let upgraded =
            !StateSeal::exists(&mut conn).map_err(db_error)? && db.migrated_now(SEAL_MIGRATION);
        if upgraded {
            audit.seal_unsealed_head(&mut conn).map_err(db_error)?;
        } else if let Err(tampered) = state_seal.verify(&mut conn).map_err(db_error)? {
            opening.refuse(format!(
                "the settings in {} were changed outside medvault: {tampered}. Restore a \
                 backup (`medvault restore NAME` checks it first).",
                config.database_file().display()
            ))?;
        }
        for version in keys.root_versions() {
            if !recorded.iter().any(|(v, _)| *v as u32 == version) {
                let kcv = keys
                    .key_check_value(version)
                    .ok_or_else(|| StartupError("key check value".into()))?;
                key_check::insert(version as i32, &kcv, now, &mut conn).map_err(db_error)?;
            }
        }

        PageGrant::insert_missing_defaults(&mut conn).map_err(db_error)?;
        let newly_encryptable = Policy::insert_defaults(now, &mut conn).map_err(db_error)?;
        let stored = StoredState::load(&config, &mut conn).map_err(db_error)?;
        let fields = Fields::new(
            keys.clone(),
            stored.policy.clone(),
            stored.retired.clone(),
            stored.migration.clone(),
        );
        // The defaults this start gave new pages and columns, and new key versions, are sealed.
        state_seal.reseal(now, &mut conn).map_err(db_error)?;
        if upgraded && !recorded.is_empty() {
            let actor = Actor {
                name: "medvault".into(),
                ..Actor::default()
            };
            audit
                .append(
                    &mut conn,
                    now,
                    &Entry::new(&actor, action::STATE_SEALED, Outcome::Success)
                        .target("settings")
                        .detail(
                            "upgrade: the settings, page access, encryption policy, jobs, key \
                             versions, masking and the audit trail's end were sealed as found",
                        ),
                )
                .map_err(db_error)?;
        }
        drop(conn);

        let passwords = PasswordHasher::new(keys.purpose_key(Purpose::PasswordPepper))
            .map_err(|e| StartupError(e.to_string()))?;
        let sessions = SessionKeys::new(
            keys.purpose_key(Purpose::SessionSeed),
            config.session_key_interval,
        );
        let clock = config.clock.clone();
        let app = App(Arc::new(AppInner {
            config,
            db,
            keys,
            passwords,
            sessions,
            access: AccessTable::default(),
            audit,
            security: SecuritySettings::default(),
            setup: SetupToken::default(),
            clock,
            tls: AtomicBool::new(false),
            fields,
            id_length: AtomicUsize::new(0),
            job_signal: JobSignal::default(),
            brute_force: BruteForceGuard::new(BruteForcePolicy::default(), TRACKED_ENTRIES),
            state_seal,
            masking: RwLock::new(Arc::new(Visibility::default())),
            rotation: Mutex::new(()),
            backup_work: Default::default(),
            disk_probe: Default::default(),
        }));
        app.put_in_force(stored);
        if !newly_encryptable.is_empty() {
            // Columns that just became encryptable (a new installation, or an upgrade) may hold
            // plain values: encrypt them in the background.
            let mut conn = app.db.conn().map_err(|e| StartupError(e.to_string()))?;
            if job::stale_count(&app, &mut conn).map_err(db_error)? > 0 {
                conn.immediate_transaction(|conn| {
                    job::start(
                        &app,
                        "encrypting existing values under the new policy",
                        newly_encryptable,
                        conn,
                    )?;
                    app.state_seal.reseal(app.now(), conn)
                })
                .map_err(db_error)?;
            }
        }
        Ok(app)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn id_length(&self) -> usize {
        self.id_length.load(Ordering::Relaxed)
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

    pub fn secure_cookies(&self) -> bool {
        self.tls.load(Ordering::Relaxed)
    }

    /// Reloads every in-memory copy of database state after a restore put another database in
    /// place: the same loader as at start, so the restored settings are in force exactly as if
    /// the server had started on them.
    pub fn reload_from_database(&self) -> Result<(), DbError> {
        let mut conn = self.db.conn()?;
        let stored = StoredState::load(&self.config, &mut conn)?;
        drop(conn);
        let has_job = stored.migration.is_some();
        self.put_in_force(stored);
        if has_job {
            self.job_signal.notify();
        }
        Ok(())
    }

    /// Makes `stored` the state every request sees.
    fn put_in_force(&self, stored: StoredState) {
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
        if stored.admin_exists {
            self.setup.clear();
        } else if self.setup.current().is_none() {
            self.setup.restore(random_token());
        }
    }
}

/// The admin's state as the database holds it: what medvault keeps in memory so that no
/// request pays a query for it. Loaded here alone, at start and after a restore.
struct StoredState {
    granted: HashSet<(Level, crate::access::Page)>,
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
    fn load(config: &Config, conn: &mut crate::db::Conn) -> diesel::QueryResult<StoredState> {
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
            retired: job::retired_versions(conn)?,
            migration: job::Job::running(conn)?.map(|job| job.tolerated_plain()),
            masking: Visibility::load(conn)?,
            id_length: Setting::get(policy::ID_LENGTH_SETTING, conn)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(config.id_length),
            admin_exists: User::exists_active_admin(conn)?,
        })
    }
}

/// What a start is for, which decides whether a live database that fails its checks stops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    Serve,
    Restore,
}

impl Opening {
    fn refuse(self, problem: String) -> Result<(), StartupError> {
        match self {
            Opening::Serve => Err(StartupError(problem)),
            Opening::Restore => {
                tracing::error!("{problem}");
                Ok(())
            }
        }
    }
}

fn db_error(e: diesel::result::Error) -> StartupError {
    StartupError(format!("database: {e}"))
}

/// The root key from `MEDVAULT_MASTER_KEY`, else the key file; a missing key file is created
/// with a new key, unless the database already holds data written under some key.
fn load_root_keys(config: &Config, database_has_keys: bool) -> Result<RootKeys, StartupError> {
    if let Some(text) = config.master_key.as_ref().map(|k| k.expose()) {
        return RootKeys::parse(text)
            .map_err(|e| StartupError(format!("MEDVAULT_MASTER_KEY: {e}")));
    }
    let path = config.key_file_path();
    if path.exists() {
        return private_files::read_key_file(&path).map_err(|e| StartupError(e.to_string()));
    }
    if database_has_keys {
        return Err(StartupError(format!(
            "the database was written under a root key, but there is no key file at {} and \
             MEDVAULT_MASTER_KEY is not set. Restore the key file or set MEDVAULT_MASTER_KEY.",
            path.display()
        )));
    }
    let keys = RootKeys::generate();
    private_files::write_key_file(&path, &keys, KeyFileWrite::New)
        .map_err(|e| StartupError(e.to_string()))?;
    tracing::info!(path = %path.display(), "created a new root key file");
    Ok(keys)
}

fn check_root_keys(keys: &KeyRing, recorded: &[(i32, String)]) -> Result<(), StartupError> {
    for (version, check_value) in recorded {
        match keys.key_check_value(*version as u32) {
            Some(kcv) if constant_time_eq(kcv.as_bytes(), check_value.as_bytes()) => {}
            Some(_) => {
                return Err(StartupError(format!(
                    "the root key given for version {version} is not the key this database was \
                     written with (key check value mismatch). Start with the right key file or \
                     MEDVAULT_MASTER_KEY."
                )))
            }
            None => {
                return Err(StartupError(format!(
                    "this database was written with root key version {version}, which the key \
                     provider does not hold. Add it to the key file or MEDVAULT_MASTER_KEY."
                )))
            }
        }
    }
    Ok(())
}
