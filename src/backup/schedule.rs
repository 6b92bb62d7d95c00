//! Automatic backups: one every interval (default daily), keeping the last N (default 14). Both
//! are set at `/admin/backups` and kept in the settings table. "Due" is computed from the app's
//! clock and the newest backup, so tests call [`run_due_backups`] instead of waiting for a thread.

use std::time::Duration;

use serde::Serialize;

use super::{create_backup, delete, list, BackupError, BackupInfo, Origin};
use crate::db::models::Setting;
use crate::db::Conn;
use crate::services::Services;

pub const INTERVAL_SETTING: &str = "backup.interval_hours";
pub const KEEP_SETTING: &str = "backup.keep";
pub const DEFAULT_INTERVAL_HOURS: i64 = 24;
pub const DEFAULT_KEEP: i64 = 14;
/// The job lease under which one server at a time looks at the schedule and makes the backup.
pub const LEASE: &str = "backup-schedule";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// Hours between automatic backups; 0 switches them off.
    pub interval_hours: i64,
    /// How many backups to keep; older ones are deleted after each automatic backup.
    pub keep: i64,
}

impl Schedule {
    pub fn load(conn: &mut Conn) -> diesel::QueryResult<Schedule> {
        let read = |name, default: i64, conn: &mut Conn| -> diesel::QueryResult<i64> {
            Ok(Setting::get(name, conn)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(default))
        };
        Ok(Schedule {
            interval_hours: read(INTERVAL_SETTING, DEFAULT_INTERVAL_HOURS, conn)?,
            keep: read(KEEP_SETTING, DEFAULT_KEEP, conn)?,
        })
    }

    pub fn save(&self, conn: &mut Conn) -> diesel::QueryResult<()> {
        Setting::set(INTERVAL_SETTING, &self.interval_hours.to_string(), conn)?;
        Setting::set(KEEP_SETTING, &self.keep.to_string(), conn)
    }
}

/// What one look at the schedule did.
#[derive(Debug, Default)]
pub struct ScheduleRun {
    pub made: Option<BackupInfo>,
    pub deleted: Vec<String>,
}

/// Makes a backup if the newest is at least one interval old (or there is none), then deletes
/// the oldest beyond the number to keep: on the one server that holds the schedule's lease
/// (nothing, on the others).
pub fn run_due_backups(app: &Services) -> Result<ScheduleRun, BackupError> {
    app.while_holding(LEASE, || run_due_backups_holding_lease(app))
        .map_err(|e| BackupError::failed("cannot take the backup schedule's lease", e))?
        .unwrap_or_else(|| Ok(ScheduleRun::default()))
}

fn run_due_backups_holding_lease(app: &Services) -> Result<ScheduleRun, BackupError> {
    let schedule = {
        let mut conn = app
            .db
            .conn()
            .map_err(|e| BackupError::failed("cannot reach the database", e))?;
        Schedule::load(&mut conn).map_err(|e| BackupError::failed("cannot read the schedule", e))?
    };
    let mut run = ScheduleRun::default();
    if schedule.interval_hours <= 0 {
        return Ok(run);
    }
    let newest = list(app)?.first().map(|b| b.created_at);
    let due = newest.is_none_or(|at| app.now() - at >= schedule.interval_hours * 3600);
    if !due {
        return Ok(run);
    }
    let made = create_backup(app, "schedule", Origin::Scheduled)?;
    audit_scheduled(app, &made);
    run.made = Some(made);
    let keep = usize::try_from(schedule.keep.max(1)).unwrap_or(usize::MAX);
    for old in list(app)?.into_iter().skip(keep) {
        delete(app, &old.name)?;
        run.deleted.push(old.name);
    }
    Ok(run)
}

fn audit_scheduled(app: &Services, made: &BackupInfo) {
    use crate::audit::{action, Actor, Entry, Outcome};
    let actor = Actor {
        name: "schedule".into(),
        ..Actor::default()
    };
    let entry = Entry::new(&actor, action::BACKUP_CREATED, Outcome::Success)
        .target(made.name.clone())
        .detail(format!("scheduled, {} bytes", made.size));
    let written = app
        .db
        .conn()
        .and_then(|mut conn| Ok(app.audit.append(&mut conn, app.now(), &entry)?));
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot audit a scheduled backup");
    }
}

/// The background thread of the server: looks at the schedule every minute.
pub fn spawn_worker(app: std::sync::Arc<Services>) {
    let spawned = std::thread::Builder::new()
        .name("backups".into())
        .spawn(move || {
            super::priority::lower_this_thread();
            loop {
                if let Err(e) = run_due_backups(&app) {
                    tracing::error!(error = %e, "scheduled backup failed; trying again in a minute");
                }
                std::thread::sleep(Duration::from_secs(60));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the backup schedule");
    }
}
