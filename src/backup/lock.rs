//! One server per home: the server holds an exclusive lock on `database/server.lock` while it
//! runs, so that a command-line restore (which would swap the file under the server's open
//! connections) can tell and refuse, while backups and listings go on regardless.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use crate::config::Config;

/// Held for as long as the server runs; the lock goes with the file when dropped.
pub struct ServerLock(#[allow(dead_code)] File);

fn lock_path(config: &Config) -> PathBuf {
    config.database_dir().join("server.lock")
}

fn open(config: &Config) -> std::io::Result<File> {
    // On a fresh home the server takes the lock before anything else creates database/.
    std::fs::create_dir_all(config.database_dir())?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(config))
}

/// Takes the lock, or says that another server runs on this home.
pub fn hold_server_lock(config: &Config) -> Result<ServerLock, String> {
    let file = open(config).map_err(|e| format!("cannot open the server lock: {e}"))?;
    try_exclusive(&file).map_err(|_| {
        "another medvault server runs on this home (database/server.lock is held)".to_string()
    })?;
    Ok(ServerLock(file))
}

/// Whether a server holds the lock now.
pub fn server_is_running(config: &Config) -> bool {
    match open(config) {
        Ok(file) => try_exclusive(&file).is_err(),
        Err(_) => false,
    }
}

#[cfg(unix)]
fn try_exclusive(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn try_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}
