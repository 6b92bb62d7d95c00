//! What `/health` checks that is worth remembering between requests.

/// A probe of `/health` (the disk's write, the key manager's answer), remembered for a few
/// seconds: the page is open to everyone, and a monitor (or anyone else) asking many times a
/// second must not make the disk sync, or the key manager answer, each time.
#[derive(Default)]
pub struct DiskProbe {
    last: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// How many times the disk was actually probed.
    probes: std::sync::atomic::AtomicU64,
}

impl DiskProbe {
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn writable(&self, dir: &std::path::Path, now: std::time::Instant) -> bool {
        self.check(now, || probe_write(dir))
    }

    /// `probe`'s answer, or the one it gave less than [`DiskProbe::EVERY`] ago.
    pub fn check(&self, now: std::time::Instant, probe: impl FnOnce() -> bool) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, writable)) = *last {
            if now.saturating_duration_since(at) < Self::EVERY {
                return writable;
            }
        }
        self.probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = probe();
        *last = Some((now, answer));
        answer
    }

    pub fn probes(&self) -> u64 {
        self.probes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn probe_write(dir: &std::path::Path) -> bool {
    use std::io::Write;
    let probe = dir.join(".health-probe");
    let writable = std::fs::File::create(&probe)
        .and_then(|mut f| {
            f.write_all(b"ok")?;
            f.sync_all()
        })
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    writable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_probed_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let probe = DiskProbe::default();
        let start = std::time::Instant::now();
        for i in 0..100 {
            assert!(probe.writable(dir.path(), start + std::time::Duration::from_millis(i)));
        }
        assert_eq!(probe.probes(), 1);
        assert!(probe.writable(dir.path(), start + DiskProbe::EVERY));
        assert_eq!(probe.probes(), 2);
        // A folder that is gone is reported, after the interval.
        let gone = dir.path().join("gone");
        assert!(!probe.writable(&gone, start + DiskProbe::EVERY * 2));
    }
}
