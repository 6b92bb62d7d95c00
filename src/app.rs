//! Start-up: the directories, the database, the root key and everything derived from it,
//! gathered in one [`App`] that the server, the command line and the tests share.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::ops::Deref;
use std::path::Path;
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
use crate::db::Db;
use crate::fields::{job, policy, Fields, Policy};
use crate::records::masking::Visibility;
use crate::state_seal::StateSeal;

/// The migration that brought the seal on the admin's state.
pub const SEAL_MIGRATION: &str = "20261202000005";

#[derive(Debug, thiserror::Error)]
#[error("medvault cannot start: {0}")]
pub struct StartupError(pub String);

/// Settings an admin switches at `/admin/security`, kept in memory so that no request pays a
/// query for them; saved to the database by the page that changes them.
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
        // Usernames, session addresses, the audit trail and sealed files are nobody else's
        // business on this machine: the folders are the owner's alone whatever the umask.
        for dir in [
            config.database_dir(),
            config.backups_dir(),
            config.storage_dir(),
        ] {
            fs::create_dir_all(&dir)
                .and_then(|()| restrict_permissions(&dir, 0o700))
                .map_err(|e| StartupError(format!("cannot create {}: {e}", dir.display())))?;
        }
        private_database_file(&config.database_file())?;
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
        let access = AccessTable::default();
        access.replace(PageGrant::load_granted(&mut conn).map_err(db_error)?);
        let security = SecuritySettings {
            bind_ip: AtomicBool::new(
                Setting::get_bool(Setting::BIND_SESSION_IP, true, &mut conn).map_err(db_error)?,
            ),
            bind_user_agent: AtomicBool::new(
                Setting::get_bool(Setting::BIND_SESSION_USER_AGENT, true, &mut conn)
                    .map_err(db_error)?,
            ),
            require_two_factor: RwLock::new(
                Setting::get(Setting::REQUIRE_TWO_FACTOR, &mut conn)
                    .map_err(db_error)?
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(Level::parse)
                    .collect(),
            ),
        };
        let newly_encryptable = Policy::insert_defaults(now, &mut conn).map_err(db_error)?;
        let fields = Fields::new(
            keys.clone(),
            Policy::load(&mut conn).map_err(db_error)?,
            job::retired_versions(&mut conn).map_err(db_error)?,
            job::Job::running(&mut conn)
                .map_err(db_error)?
                .map(|job| job.tolerated_plain()),
        );
        let id_length = Setting::get(policy::ID_LENGTH_SETTING, &mut conn)
            .map_err(db_error)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(config.id_length);
        let brute_force = BruteForceGuard::new(
            Setting::get(Setting::BRUTE_FORCE_POLICY, &mut conn)
                .map_err(db_error)?
                .and_then(|json| serde_json::from_str::<BruteForcePolicy>(&json).ok())
                .unwrap_or_default(),
            TRACKED_ENTRIES,
        );
        let masking = crate::records::visibility(&mut conn).map_err(db_error)?;
        let setup = SetupToken::default();
        if !User::exists_active_admin(&mut conn).map_err(db_error)? {
            setup.restore(random_token());
        }
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
            access,
            audit,
            security,
            setup,
            clock,
            tls: AtomicBool::new(false),
            fields,
            id_length: AtomicUsize::new(id_length),
            job_signal: JobSignal::default(),
            brute_force,
            state_seal,
            masking: RwLock::new(Arc::new(masking)),
            rotation: Mutex::new(()),
            backup_work: Default::default(),
            disk_probe: Default::default(),
        }));
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

    /// Reloads every in-memory copy of database state (page access, security settings, field
    /// policy, retired key versions, running job, id length, setup link) after a restore put
    /// another database in place.
    pub fn reload_from_database(&self) -> Result<(), crate::error::AppError> {
        let mut conn = self.db.conn()?;
        self.access.replace(PageGrant::load_granted(&mut conn)?);
        self.security.bind_ip.store(
            Setting::get_bool(Setting::BIND_SESSION_IP, true, &mut conn)?,
            Ordering::Relaxed,
        );
        self.security.bind_user_agent.store(
            Setting::get_bool(Setting::BIND_SESSION_USER_AGENT, true, &mut conn)?,
            Ordering::Relaxed,
        );
        self.security.set_two_factor_required(
            Setting::get(Setting::REQUIRE_TWO_FACTOR, &mut conn)?
                .unwrap_or_default()
                .split(',')
                .filter_map(Level::parse)
                .collect(),
        );
        self.brute_force.set_policy(
            Setting::get(Setting::BRUTE_FORCE_POLICY, &mut conn)?
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
        );
        self.fields.set_policy(Policy::load(&mut conn)?);
        self.set_masking(crate::records::visibility(&mut conn)?);
        self.fields.set_retired(job::retired_versions(&mut conn)?);
        let running = job::Job::running(&mut conn)?;
        let has_job = running.is_some();
        self.fields
            .set_migration(running.map(|job| job.tolerated_plain()));
        if let Some(length) =
            Setting::get(policy::ID_LENGTH_SETTING, &mut conn)?.and_then(|v| v.parse().ok())
        {
            self.id_length.store(length, Ordering::Relaxed);
        }
        if User::exists_active_admin(&mut conn)? {
            let _ = self.setup.0.lock().map(|mut slot| *slot = None);
        } else if self.setup.current().is_none() {
            self.setup.restore(random_token());
        }
        drop(conn);
        if has_job {
            self.job_signal.notify();
        }
        Ok(())
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
        refuse_if_readable_by_others(&path)?;
        let text = fs::read_to_string(&path).map_err(|e| {
            StartupError(format!("cannot read the key file {}: {e}", path.display()))
        })?;
        return RootKeys::parse(&text)
            .map_err(|e| StartupError(format!("key file {}: {e}", path.display())));
    }
    if database_has_keys {
        return Err(StartupError(format!(
            "the database was written under a root key, but there is no key file at {} and \
             MEDVAULT_MASTER_KEY is not set. Restore the key file or set MEDVAULT_MASTER_KEY.",
            path.display()
        )));
    }
    let keys = RootKeys::generate();
    write_key_file(&path, &keys.to_provider_text())?;
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

fn write_key_file(path: &Path, text: &str) -> Result<(), StartupError> {
    let fail = |e: std::io::Error| {
        StartupError(format!(
            "cannot create the key file {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
        restrict_permissions(dir, 0o700).map_err(fail)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// The database file is created 0600 before SQLite first opens it (SQLite gives its WAL and
/// shared-memory files the same mode), and an existing one is narrowed to 0600.
fn private_database_file(path: &Path) -> Result<(), StartupError> {
    let fail = |e: std::io::Error| {
        StartupError(format!(
            "cannot make the database {} private: {e}",
            path.display()
        ))
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(fail)?;
    restrict_permissions(path, 0o600).map_err(fail)
}

/// A key file that other accounts on the machine can read is a key that has leaked: the start
/// stops and says what to run.
fn refuse_if_readable_by_others(path: &Path) -> Result<(), StartupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(StartupError(format!(
                    "the key file {path} can be read or written by other users of this machine. \
                     Run `chmod 600 {path}` (and consider the key exposed: rotate it), then start \
                     again.",
                    path = path.display()
                )));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
