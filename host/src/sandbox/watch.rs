//! Disk usage of the guest's writable folders, checked while the guest runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasm_build_packaging::scratch::{self, TreeUsage};

/// The shortest pause between two walks of the writable folders.
const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// What each entry (file, folder, symlink) costs besides a file's bytes: about the block
/// and inode it takes on the host. Without it a guest could fill the host's inodes and
/// folder blocks with millions of empty files at no cost.
pub const ENTRY_BYTES: u64 = 4096;

/// What a tree counts against the disk limit.
pub fn charge(usage: &TreeUsage) -> u64 {
    usage
        .bytes
        .saturating_add(usage.entries.saturating_mul(ENTRY_BYTES))
}

/// Walks the writable mounts now and then and tells when they hold more than the limit.
/// Walking costs time proportional to the tree, so the pause between walks grows with it
/// (at most ~5 % of the run goes to walking). The walk runs in the epoch callback, on the
/// guest's thread, so the tree holds still while it is measured.
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
        let used = charged(&self.roots, self.limit);
        let took = now.elapsed();
        self.next_check = Instant::now() + MIN_INTERVAL.max(took * 20);
        used > self.limit
    }
}

/// What `roots` count against the disk limit (see [`charge`]), counting stopped once past
/// `stop_after`. A tree that cannot be walked counts as over any limit: what cannot be
/// measured is not let through.
pub fn charged(roots: &[PathBuf], stop_after: u64) -> u64 {
    let mut total = 0u64;
    for root in roots {
        let measured = scratch::usage(root, |usage| {
            total.saturating_add(charge(usage)) > stop_after
        });
        match measured {
            Ok(usage) => total = total.saturating_add(charge(&usage)),
            Err(_) => return u64::MAX,
        }
        if total > stop_after {
            break;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("y"), vec![0u8; 24]).unwrap();
        let roots = [dir.path().to_path_buf()];
        assert_eq!(charged(&roots, u64::MAX), 1024 + 3 * ENTRY_BYTES);
        assert!(charged(&roots, 10) > 10);
        // Empty files are not free.
        for i in 0..100 {
            std::fs::write(dir.path().join(format!("empty-{i}")), b"").unwrap();
        }
        assert_eq!(charged(&roots, u64::MAX), 1024 + 103 * ENTRY_BYTES);
    }

    #[test]
    fn a_tree_that_cannot_be_walked_is_over_any_limit() {
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        assert_eq!(charged(&[missing], 10), u64::MAX);
    }
}
