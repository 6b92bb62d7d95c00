//! `medvault restore NAME` while a server runs on the same home. The command line cannot swap
//! the file under the server's connections, so it leaves a request in
//! `database/restore-requests/` and waits; the server's worker carries it out exactly as the
//! page does (checks, safety backup, swap while requests wait) and leaves the answer beside it.
//! Whoever can write into `database/` holds the data already: the folder is the authority.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::audit::{action, Actor, Entry, Outcome};
use crate::config::Config;
use crate::crypto::random_id;
use crate::services::Services;

const REQUEST: &str = "request";
const TAKEN: &str = "taken";
const RESULT: &str = "result";

pub fn requests_dir(config: &Config) -> PathBuf {
    config.database_dir().join("restore-requests")
}

fn file(config: &Config, id: &str, kind: &str) -> PathBuf {
    requests_dir(config).join(format!("{id}.{kind}"))
}

/// A request id: what [`submit`] makes, and nothing else is served.
fn is_request_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Writes `content` to `path` whole or not at all.
fn write_whole(path: &Path, content: &str) -> std::io::Result<()> {
    let temp = path.with_extension("partial");
    let mut out = fs::File::create(&temp)?;
    out.write_all(content.as_bytes())?;
    out.sync_all()?;
    fs::rename(&temp, path)
}

/// Leaves a request to restore `name` for the running server; returns its id.
pub fn submit(config: &Config, name: &str) -> std::io::Result<String> {
    let dir = requests_dir(config);
    fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    let id = random_id(16);
    write_whole(&file(config, &id, REQUEST), name)?;
    Ok(id)
}

/// The server's answer to request `id`: `Ok(message)` if it restored, `Err(message)` if not.
pub fn take_result(config: &Config, id: &str) -> Option<Result<String, String>> {
    let path = file(config, id, RESULT);
    let text = fs::read_to_string(&path).ok()?;
    let _ = fs::remove_file(&path);
    Some(match text.split_once('\n') {
        Some(("ok", message)) => Ok(message.to_string()),
        Some((_, message)) => Err(message.to_string()),
        None => Err(text),
    })
}

/// Takes request `id` back if the server has not picked it up; whether it was still there.
pub fn withdraw(config: &Config, id: &str) -> bool {
    fs::remove_file(file(config, id, REQUEST)).is_ok()
}

/// Restores `name` for the command line, audited as such; the message to print, or why not.
pub fn restore_for_command_line(app: &Services, name: &str) -> Result<String, String> {
    let actor = Actor {
        id: String::new(),
        name: "command line".into(),
        ip: "local".into(),
    };
    let (entry, answer) = match super::restore_backup(app, name, "command line") {
        Ok(done) => (
            Entry::new(&actor, action::BACKUP_RESTORED, Outcome::Success)
                .target(done.restored.name.clone())
                .detail(format!(
                    "state before the restore saved as {}",
                    done.safety_backup
                )),
            Ok(format!(
                "restored {}; the state before it was saved as {}",
                done.restored.name, done.safety_backup
            )),
        ),
        Err(e) => (
            Entry::new(&actor, action::BACKUP_REFUSED, Outcome::Denied)
                .target(
                    name.chars()
                        .filter(|c| !c.is_control())
                        .take(120)
                        .collect::<String>(),
                )
                .detail(format!("restore: {e}")),
            Err(e.to_string()),
        ),
    };
    let written = app
        .db
        .conn()
        .and_then(|mut conn| Ok(app.audit.append(&mut conn, app.now(), &entry)?));
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot audit a command-line restore");
    }
    answer
}

/// Carries out every waiting request; how many. Each is claimed by a rename first, so that a
/// request is served once even if the command line withdraws it at the same moment.
pub fn serve_pending(app: &Services) -> usize {
    let Ok(entries) = fs::read_dir(requests_dir(&app.config)) else {
        return 0;
    };
    let mut served = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(id) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(".request"))
            .filter(|id| is_request_id(id))
        else {
            continue;
        };
        let taken = file(&app.config, id, TAKEN);
        if fs::rename(entry.path(), &taken).is_err() {
            continue;
        }
        let name = fs::read_to_string(&taken).unwrap_or_default();
        let answer = match restore_for_command_line(app, name.trim()) {
            Ok(message) => format!("ok\n{message}"),
            Err(message) => format!("refused\n{message}"),
        };
        if let Err(e) = write_whole(&file(&app.config, id, RESULT), &answer) {
            tracing::error!(error = %e, "cannot answer a command-line restore");
        }
        let _ = fs::remove_file(&taken);
        served += 1;
    }
    served
}

/// The server's worker: looks for requests twice a second.
pub fn spawn_worker(app: std::sync::Arc<Services>) {
    let spawned = std::thread::Builder::new()
        .name("restore-requests".into())
        .spawn(move || loop {
            serve_pending(&app);
            std::thread::sleep(Duration::from_millis(500));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the command-line restore worker");
    }
}

/// Waits for the server's answer to request `id`. If the server stops before taking the
/// request, the request is withdrawn and `None` returned: the caller restores by itself.
pub fn wait(config: &Config, id: &str, limit: Duration) -> Option<Result<String, String>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(answer) = take_result(config, id) {
            return Some(answer);
        }
        if !super::lock::server_is_running(config) {
            if withdraw(config, id) {
                return None;
            }
            if let Some(answer) = take_result(config, id) {
                return Some(answer);
            }
            return Some(Err(
                "the server stopped during the restore; the live database is \
                 wholly the old one or wholly the restored one: check it, then run the \
                 restore again"
                    .into(),
            ));
        }
        if Instant::now() >= deadline {
            let _ = withdraw(config, id);
            return Some(Err(
                "the server did not answer the restore request in time".into()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
