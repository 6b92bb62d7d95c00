//! Rotating the root key: a new version is added to the key file (or, under a key manager,
//! stored wrapped in the database), new values are sealed under it at once, and the
//! re-encryption job rewrites the old ones.

use crate::audit::{action, Actor, Entry, Outcome};
use crate::config::KeyProviderKind;
use crate::crypto::KeyRing;
use crate::db::models::{key_check, wrapped_key};
use crate::db::DbError;
use crate::key_manager;
use crate::private_files::{read_key_file, write_key_file, KeyFileError, KeyFileWrite};
use crate::reencryption::job::JobError;
use crate::services::Services;

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The admin can act on this: the message says how.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl From<diesel::result::Error> for RotationError {
    fn from(e: diesel::result::Error) -> Self {
        RotationError::Db(e.into())
    }
}

/// What a rotation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Version N+1 is in use.
    Rotated(u32),
    /// The key had already moved past the version the request rotated from: nothing was done.
    AlreadyAt(u32),
}

/// Adds root key version N+1 and starts re-encrypting. `from`: the version the admin saw in use
/// (absent: rotate whatever is in use). One rotation at a time: the lock is held across the key
/// file, the key ring and the database, so two requests cannot both make a version N+1.
pub fn rotate_root_key(
    app: &Services,
    actor: &Actor,
    from: Option<u32>,
) -> Result<Rotation, RotationError> {
    let _one_at_a_time = app.rotation.lock().unwrap_or_else(|e| e.into_inner());
    let in_use = app.fields.crypto().current_key_version();
    if from.is_some_and(|from| from != in_use) {
        return Ok(Rotation::AlreadyAt(in_use));
    }
    if app.config.key_provider() == KeyProviderKind::Env {
        return Err(RotationError::Refused(
            "The root key comes from MEDVAULT_MASTER_KEY, which medvault cannot change. Add a \
             new VERSION:BASE64 entry to it and restart to rotate."
                .into(),
        ));
    }
    let path = app.config.key_file_path();
    let mut conn = app.db.conn()?;
    // Where the keys are kept must still hold the very keys the database was written with: a
    // key file replaced or edited since the start would otherwise be rotated, and values
    // sealed before lost. Under a key manager the stored wrappings are unwrapped again.
    let (reread, rotated, wrapped, source) = match &app.key_manager {
        Some(manager) => {
            let stored = wrapped_key::all(&mut conn)?;
            let (reread, rotated, wrapped) = key_manager::rotated_root_keys(manager, &stored)
                .map_err(|e| RotationError::Refused(format!("Nothing was rotated: {e}")))?;
            (reread, rotated, Some(wrapped), "the stored root keys")
        }
        None => {
            let keys = read_key_file(&path)?;
            let rotated = keys.with_new_version();
            (KeyRing::new(keys), rotated, None, "the key file")
        }
    };
    for (version, recorded) in key_check::all(&mut conn)? {
        if !reread.matches_recorded(version, &recorded) {
            return Err(RotationError::Refused(format!(
                "Root key version {version} is no longer in {source} as this database knows it \
                 (its key check value differs or it is missing). Nothing was rotated; restore \
                 the keys the server started with."
            )));
        }
    }
    drop(conn);
    if reread.current_root_version() != in_use {
        return Err(RotationError::Refused(format!(
            "The newest version in {source} is {}, but version {in_use} is in use. Nothing \
             was rotated; restore the keys the server started with.",
            reread.current_root_version()
        )));
    }
    let version = rotated.current_version();
    if wrapped.is_none() {
        write_key_file(&path, &rotated, KeyFileWrite::Replace)?;
    }
    let ring = KeyRing::new(rotated);
    let check_value = ring
        .key_check_value(version)
        .ok_or_else(|| RotationError::Refused("no key check value for the new version".into()))?;
    // New values use the new key from now on; the job rewrites the rest, and until it is done
    // values under the older versions are what the columns hold.
    app.fields.expect_migration(&Default::default());
    app.fields.set_keys(ring);
    let mut conn = app.db.conn()?;
    let now = app.now();
    conn.write_transaction(|conn| {
        if let Some(wrapped) = &wrapped {
            wrapped_key::put(wrapped, now, conn)?;
        }
        key_check::insert(version as i32, &check_value, now, conn)?;
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::ROOT_KEY_ROTATED, Outcome::Success)
                .target(format!("root key version {version}")),
        )?;
        // Every encrypted column was sealed already: no plain value is expected anywhere.
        super::job::start(
            app,
            &format!("root key rotated to version {version}"),
            Default::default(),
            conn,
        )?;
        Ok::<_, RotationError>(())
    })?;
    app.job_signal.notify();
    Ok(Rotation::Rotated(version))
}
