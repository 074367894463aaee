//! Disk usage of the guest's writable folders, checked while the guest runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The shortest pause between two walks of the writable folders.
const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// Walks the writable mounts now and then and tells when they hold more than the limit.
/// Walking costs time proportional to the tree, so the pause between walks grows with it
/// (at most ~5 % of the run goes to walking).
pub struct DiskWatch {
    roots: Vec<PathBuf>,
    limit: u64,
    next_check: Instant,
}

impl DiskWatch {
    pub fn new(roots: Vec<PathBuf>, limit: u64) -> Self {
        Self {
            roots,
            limit,
            next_check: Instant::now() + MIN_INTERVAL,
        }
    }

    /// Whether the writable folders are over the limit; walks them only when due.
    pub fn over_limit(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_check {
            return false;
        }
        let used = usage(&self.roots, self.limit);
        let took = now.elapsed();
        self.next_check = Instant::now() + MIN_INTERVAL.max(took * 20);
        used > self.limit
    }
}

/// Bytes held by regular files under `roots`, without following links. Stops counting
/// once past `stop_after`.
pub fn usage(roots: &[PathBuf], stop_after: u64) -> u64 {
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total = total.saturating_add(meta.len());
                if total > stop_after {
                    return total;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("y"), vec![0u8; 24]).unwrap();
        assert_eq!(usage(&[dir.path().to_path_buf()], u64::MAX), 1024);
        assert!(usage(&[dir.path().to_path_buf()], 10) > 10);
    }
}
