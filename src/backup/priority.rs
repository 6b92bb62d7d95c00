//! Backups run at a lower CPU priority than the pages.
//!
//! A backup reads, checks and hashes the whole database. On the 2-core reference machine,
//! backups made back to back at normal priority took a core from the pages and the doctor's
//! record page's p99 went from 16 ms at rest to 68 ms (BENCHMARKS.md). At nice 10 the
//! scheduler gives a backup about a tenth of a busy machine and all of an idle one: the pages
//! keep their latency, and a backup only takes longer while the server is loaded.
//!
//! An unprivileged thread cannot raise its priority back, so the work gets a thread of its
//! own rather than one from a pool that pages would later reuse.

/// How much lower than the pages: nice 10 weighs about a tenth of nice 0.
const BACKUP_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority for good (Linux: per thread). Best effort: a
/// system that refuses leaves the backup at normal priority, with a warning.
pub fn lower_this_thread() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), BACKUP_NICENESS) {
        tracing::warn!(error = %e, "cannot lower the priority of the backup thread");
    }
}

/// Runs `work` on a new thread at the backups' priority and waits for it without holding an
/// async worker.
pub async fn at_backup_priority<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, result) = rocket::tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || {
            lower_this_thread();
            let _ = done.send(work());
        })
        .map_err(|e| format!("cannot start a backup thread: {e}"))?;
    result
        .await
        .map_err(|_| "the backup thread stopped before it answered".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work runs on a thread whose priority is lower than the caller's, and the caller's
    /// own priority is left alone.
    #[test]
    fn backup_work_runs_at_a_lower_priority_than_its_caller() {
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .expect("own priority");
        let runtime = rocket::tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let inside = runtime
            .block_on(at_backup_priority(|| {
                rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                    .expect("priority of the backup thread")
            }))
            .expect("the work ran");
        assert!(
            inside > caller,
            "backup nice {inside}, caller nice {caller}"
        );
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap(),
            caller
        );
    }
}
