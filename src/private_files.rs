//! What only medvault's own account may read: its folders, the database file and the root key
//! file. Usernames, session addresses, the audit trail and sealed files are nobody else's
//! business on the machine, whatever the umask. The key file is read and written here alone.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::crypto::{random_token, RootKeys};

/// Creates `dir` (and its parents) and makes it the owner's alone.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    restrict_permissions(dir, 0o700)
}

/// The database file is created 0600 before SQLite first opens it (SQLite gives its WAL and
/// shared-memory files the same mode), and an existing one is narrowed to 0600.
pub fn private_database_file(path: &Path) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    restrict_permissions(path, 0o600)
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "the key file {path} can be read or written by other users of this machine. Run \
         `chmod 600 {path}` (and consider the key exposed: rotate it), then start again."
    )]
    ReadableByOthers { path: String },
    #[error("cannot read the key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("key file {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("cannot write the key file {path}: {reason}")]
    Unwritable { path: String, reason: String },
}

/// The root keys in the key file at `path`. A file other accounts can read is a key that has
/// leaked: it is refused, with what to run.
pub fn read_key_file(path: &Path) -> Result<RootKeys, KeyFileError> {
    let shown = path.display().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(KeyFileError::ReadableByOthers { path: shown });
            }
        }
    }
    let text = fs::read_to_string(path).map_err(|e| KeyFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    RootKeys::parse(&text).map_err(|e| KeyFileError::Malformed {
        path: shown,
        reason: e.to_string(),
    })
}

/// Whether a key file write may take the place of an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileWrite {
    /// The first key: there must be no file yet (a key file is never silently overwritten).
    New,
    /// A rotation: the new file replaces the old one.
    Replace,
}

/// Writes `keys` to `path` whole: a staging file of its own (mode 0600, synced) is linked or
/// renamed into place and the folder synced, so a crash leaves the old file or the new one,
/// never half of one.
pub fn write_key_file(path: &Path, keys: &RootKeys, how: KeyFileWrite) -> Result<(), KeyFileError> {
    let fail = |e: std::io::Error| KeyFileError::Unwritable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        private_dir(dir).map_err(fail)?;
    }
    // A name of its own: two writers (there is one at a time, but another process may share the
    // home) never write into the same staging file.
    let staged = path.with_extension(format!("key.new-{}", &random_token()[..16]));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&staged)?;
        file.write_all(keys.to_provider_text().as_bytes())?;
        file.sync_all()?;
        match how {
            // A hard link fails if the name is taken, where a rename would replace it.
            KeyFileWrite::New => fs::hard_link(&staged, path),
            KeyFileWrite::Replace => fs::rename(&staged, path),
        }
    })();
    let _ = fs::remove_file(&staged);
    written.map_err(fail)?;
    if let Some(dir) = path.parent() {
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_never_replaces_one_that_exists_and_a_rotation_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("root.key");
        let first = RootKeys::generate();
        write_key_file(&path, &first, KeyFileWrite::New).unwrap();
        let again = write_key_file(&path, &RootKeys::generate(), KeyFileWrite::New);
        assert!(matches!(again, Err(KeyFileError::Unwritable { .. })));
        assert_eq!(
            read_key_file(&path).unwrap().to_provider_text().as_str(),
            first.to_provider_text().as_str()
        );
        let rotated = first.with_new_version();
        write_key_file(&path, &rotated, KeyFileWrite::Replace).unwrap();
        assert_eq!(
            read_key_file(&path).unwrap().to_provider_text().as_str(),
            rotated.to_provider_text().as_str()
        );
        // No staging file is left beside it.
        let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        write_key_file(&path, &RootKeys::generate(), KeyFileWrite::New).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::ReadableByOthers { .. })
        ));
    }
}
