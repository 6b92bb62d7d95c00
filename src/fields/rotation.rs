//! Rotating the root key: a new version is added to the key file, new values are sealed under
//! it at once, and the re-encryption job rewrites the old ones.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::crypto::{KeyRing, RootKeys};
use crate::db::models::key_check;
use crate::error::AppError;

/// Adds root key version N+1 and starts re-encrypting. Returns the new version.
pub fn rotate_root_key(app: &App, actor: &Actor) -> Result<u32, AppError> {
    if app.config.master_key.is_some() {
        return Err(AppError::Conflict(
            "The root key comes from MEDVAULT_MASTER_KEY, which medvault cannot change. Add a \
             new VERSION:BASE64 entry to it and restart to rotate."
                .into(),
        ));
    }
    let path = app.config.key_file_path();
    let text =
        fs::read_to_string(&path).map_err(|e| AppError::internal("reading the key file", e))?;
    let keys = RootKeys::parse(&text).map_err(|e| AppError::internal("the key file", e))?;
    let rotated = keys.with_new_version();
    let version = rotated.current_version();
    replace_key_file(&path, &rotated.to_provider_text())?;
    let ring = KeyRing::new(rotated);
    let check_value = ring
        .key_check_value(version)
        .ok_or_else(|| AppError::Internal("no key check value for the new version".into()))?;
    // New values use the new key from now on; the job rewrites the rest, and until it is done
    // values under the older versions are what the columns hold.
    app.fields.expect_migration(&Default::default());
    app.fields.set_keys(ring);
    let mut conn = app.db.conn()?;
    let now = app.now();
    conn.immediate_transaction(|conn| {
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
        Ok::<_, AppError>(())
    })?;
    app.job_signal.notify();
    Ok(version)
}

/// Writes the new key file beside the old one, then renames it over: a crash leaves either
/// the old file or the new one, never half of one.
fn replace_key_file(path: &Path, text: &str) -> Result<(), AppError> {
    let fail = |e: std::io::Error| AppError::internal("writing the key file", e);
    let staged = path.with_extension("key.new");
    let _ = fs::remove_file(&staged);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&staged, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}
