//! Start-up: the directories, the database, the root key and everything derived from it,
//! gathered in one [`App`] that the server, the command line and the tests share.

use std::ops::Deref;
use std::sync::Arc;

use crate::audit::{action, Actor, AuditLog, Entry, Outcome};
use crate::config::Config;
use crate::crypto::SessionKeys;
use crate::crypto::{constant_time_eq, KeyRing, PasswordHasher, Purpose, RootKeys};
use crate::db::models::{key_check, wrapped_key, JobLease, PageGrant};
use crate::db::{Db, Location};
use crate::fields::Policy;
use crate::key_manager::{self, KeyManager};
use crate::private_files::{self, KeyFileWrite};
use crate::reencryption::job;
use crate::services::{Services, StoredState};
use crate::state_seal::{StateSeal, SEAL_MIGRATION};

#[derive(Debug, thiserror::Error)]
#[error("medvault cannot start: {0}")]
pub struct StartupError(pub String);

/// The services of the layers below, and what only the web server adds to them.
pub struct AppInner {
    services: Arc<Services>,
    pub sessions: SessionKeys,
    /// `/health`'s write probe of the database folder, remembered for a few seconds.
    pub disk_probe: crate::health::DiskProbe,
    /// `/health`'s probe of the key manager, remembered as the disk's is.
    pub key_manager_probe: crate::health::DiskProbe,
}

impl Deref for AppInner {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppInner {
    /// A handle on the services for a background worker of the layers below.
    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }
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
        // Before anything is created, opened or migrated: a key manager that cannot be reached,
        // refuses the credentials or lacks its key stops the start with nothing written.
        let key_manager = KeyManager::connect(&config)
            .map_err(|e| StartupError(e.to_string()))?
            .map(Arc::new);
        for dir in [
            config.database_dir(),
            config.backups_dir(),
            config.storage_dir(),
        ] {
            private_files::private_dir(&dir)
                .map_err(|e| StartupError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let location = config.database();
        if let Location::SqliteFile(file) = &location {
            private_files::private_database_file(file).map_err(|e| {
                StartupError(format!(
                    "cannot make the database {} private: {e}",
                    file.display()
                ))
            })?;
        }
        // Held to the end of this function: servers starting together on one PostgreSQL
        // database open it one at a time.
        let (db, _opening) = Db::open(&location).map_err(StartupError)?;
        let mut conn = db.conn().map_err(|e| StartupError(e.to_string()))?;
        // A trigger, rule or function of anyone else's would run with the server's rights.
        if let Err(difference) = crate::db::shape::require_current(&mut conn) {
            opening.refuse(format!(
                "the database {location} is not medvault's: {difference}. It was changed \
                 outside medvault; restore a backup (`medvault restore NAME` checks it first)."
            ))?;
        }
        let recorded = key_check::all(&mut conn).map_err(db_error)?;

        let opening_keys = std::time::Instant::now();
        let (root, wrapped_to_store, wrapped_why) = match &key_manager {
            None => (
                load_root_keys(&config, !recorded.is_empty())?,
                Vec::new(),
                None,
            ),
            Some(manager) => {
                let stored = wrapped_key::all(&mut conn).map_err(db_error)?;
                let opened = key_manager::open_root_keys(
                    manager,
                    &stored,
                    !recorded.is_empty(),
                    &config.key_file_path(),
                )
                .map_err(|e| StartupError(e.to_string()))?;
                (opened.keys, opened.to_store, opened.reason)
            }
        };
        // How long the key provider took (one unwrap per version under a key manager): what an
        // operator compares when a start is slow, and what BENCHMARKS.md quotes.
        tracing::info!(
            key_provider = config.key_provider().name(),
            versions = root.versions().count(),
            micros = opening_keys.elapsed().as_micros() as u64,
            "root keys opened"
        );
        let keys = KeyRing::new(root);
        let now = config.clock.now();
        check_root_keys(&keys, &recorded)?;

        // The admin's state is believed only once its seal holds; checked before this start
        // writes anything to it. A database without a seal is sealed only by the start that
        // applies the migration bringing seals (a new one, or an upgrade), and that is audited.
        let state_seal = StateSeal::new(keys.purpose_key(Purpose::StateSeal));
        let audit = AuditLog::new(keys.purpose_key(Purpose::AuditChain));
        // Checked and written in one transaction: a batch of another server's job (or of this
        // home's server, under a command) cannot commit between the check of the seal and this
        // start's reseal, which would seal a state older than the rows.
        let (newly_encryptable, stored) =
            conn.write_transaction(|conn| -> Result<_, StartupError> {
                let upgraded = !StateSeal::exists(conn)? && db.migrated_now(SEAL_MIGRATION);
                if upgraded {
                    audit.seal_unsealed_head(conn)?;
                } else if let Err(tampered) = state_seal.verify(conn)? {
                    opening.refuse(format!(
                        "the settings in {location} were changed outside medvault: {tampered}. \
                         Restore a backup (`medvault restore NAME` checks it first)."
                    ))?;
                }
                for version in keys.root_versions() {
                    if !recorded.iter().any(|(v, _)| *v as u32 == version) {
                        let kcv = keys
                            .key_check_value(version)
                            .ok_or_else(|| StartupError("key check value".into()))?;
                        key_check::insert(version as i32, &kcv, now, conn)?;
                    }
                }
                let system = Actor {
                    name: "medvault".into(),
                    ..Actor::default()
                };
                // Only now, with the keys checked against the database: the key manager's
                // wrappings.
                if let (Some(manager), Some(why)) = (&key_manager, wrapped_why) {
                    for wrapped in &wrapped_to_store {
                        wrapped_key::put(wrapped, now, conn)?;
                    }
                    let versions: Vec<String> = wrapped_to_store
                        .iter()
                        .map(|w| w.version.to_string())
                        .collect();
                    audit.append(
                        conn,
                        now,
                        &Entry::new(&system, action::ROOT_KEYS_WRAPPED, Outcome::Success)
                            .target(format!("root key versions {}", versions.join(", ")))
                            .detail(format!("{why}: {}", manager.describe())),
                    )?;
                    tracing::info!(key_manager = %manager.describe(), "{why}");
                }
                PageGrant::insert_missing_defaults(conn)?;
                // A SQLite file has one server (its home's lock): a job lease in it is a
                // stopped server's, which this one takes over at once rather than when the
                // lease runs out.
                if db.sqlite_file().is_some() {
                    JobLease::clear_all(conn)?;
                }
                let newly_encryptable = Policy::insert_defaults(now, conn)?;
                let stored = StoredState::load(&config, conn)?;
                // The defaults this start gave new pages and columns, and new key versions,
                // are sealed.
                state_seal.reseal(now, conn)?;
                if upgraded && !recorded.is_empty() {
                    audit.append(
                        conn,
                        now,
                        &Entry::new(&system, action::STATE_SEALED, Outcome::Success)
                            .target("settings")
                            .detail(
                                "upgrade: the settings, page access, encryption policy, jobs, \
                                 key versions, masking and the audit trail's end were sealed as \
                                 found",
                            ),
                    )?;
                }
                Ok((newly_encryptable, stored))
            })?;
        let fields = stored.field_encryption(keys.clone());
        drop(conn);

        let passwords = PasswordHasher::new(keys.purpose_key(Purpose::PasswordPepper))
            .map_err(|e| StartupError(e.to_string()))?;
        let sessions = SessionKeys::new(
            keys.purpose_key(Purpose::SessionSeed),
            config.session_key_interval,
        );
        let services = Services::new(config, db, passwords, audit, state_seal, fields)
            .with_key_manager(key_manager);
        services.put_in_force(stored);
        // The state just loaded and sealed is what other servers' changes are compared with.
        let mut conn = services
            .db
            .conn()
            .map_err(|e| StartupError(e.to_string()))?;
        services
            .mark_state_seen(&mut conn)
            .map_err(|e| StartupError(e.to_string()))?;
        drop(conn);
        let app = App(Arc::new(AppInner {
            services: Arc::new(services),
            sessions,
            disk_probe: Default::default(),
            key_manager_probe: Default::default(),
        }));
        if !newly_encryptable.is_empty() {
            // Columns that just became encryptable (a new installation, or an upgrade) may hold
            // plain values: encrypt them in the background.
            let mut conn = app.db.conn().map_err(|e| StartupError(e.to_string()))?;
            if job::stale_count(&app, &mut conn).map_err(db_error)? > 0 {
                conn.write_transaction(|conn| {
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

impl From<diesel::result::Error> for StartupError {
    fn from(e: diesel::result::Error) -> Self {
        db_error(e)
    }
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
