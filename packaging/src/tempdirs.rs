//! wasm-build's folders in `$TMPDIR` (a build's scratch folder, the sandbox's empty root, a
//! `runtime run` folder, a `--no-cache` cache), made so that a later process can tell
//! whether the one that made them still lives.
//!
//! Each such folder is locked (`flock`) through a descriptor of the folder itself, held
//! for as long as the folder is used: the kernel drops the lock when the process ends,
//! however it ends (a crash, `SIGKILL`, a machine reboot). `cache prune` then removes
//! ([`sweep_stale`]) only the folders it can lock itself: nobody holds them. Nothing is
//! written inside the folder (the sandbox's empty root must stay empty), and the lock does
//! not depend on process ids, which another PID namespace sharing `/tmp` would not see.
//!
//! A sweep and a process making a folder cannot both win: the maker locks its fresh folder
//! and then checks that the name still leads to the folder it locked; if a sweep got the
//! lock first (and removed the folder), the maker makes another.
//!
//! A process that is told to stop (`SIGINT`, `SIGTERM`) can remove every folder it holds
//! with [`remove_held`], from any thread.

pub mod place;

use crate::scratch;
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a folder is for; each kind has its own name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempKind {
    /// A build's scratch folder: `wasm-build-XXXXXXXXXX`.
    Scratch,
    /// The sandbox's empty root: `wasm-build-root-XXXXXXXXXX`.
    Root,
    /// A `runtime run` folder: `wasm-build-run-XXXXXXXXXX`.
    Run,
    /// A throw-away cache (`--no-cache`): `wasm-build-cache-XXXXXXXXXX`.
    Cache,
}

impl TempKind {
    const ALL: [TempKind; 4] = [
        TempKind::Scratch,
        TempKind::Root,
        TempKind::Run,
        TempKind::Cache,
    ];

    /// The folder name's prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            TempKind::Scratch => "wasm-build-",
            TempKind::Root => "wasm-build-root-",
            TempKind::Run => "wasm-build-run-",
            TempKind::Cache => "wasm-build-cache-",
        }
    }
}

/// Random characters after the prefix (tempfile's alphabet: ASCII letters and digits).
const RANDOM_CHARS: usize = 10;

/// Whether `name` is one wasm-build makes: a prefix, then exactly [`RANDOM_CHARS`] letters
/// and digits. (`wasm-build-test-…` and the like are someone else's.)
pub fn is_ours(name: &str) -> bool {
    TempKind::ALL.iter().any(|kind| {
        name.strip_prefix(kind.prefix()).is_some_and(|rest| {
            rest.len() == RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    })
}

/// The folders this process holds, for [`remove_held`].
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A folder in `$TMPDIR`, locked while this value lives; removed (at any depth) when it
/// is dropped.
#[derive(Debug)]
pub struct HeldDir {
    path: PathBuf,
    /// The folder's own descriptor, holding its lock.
    _lock: OwnedFd,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl HeldDir {
    /// Makes and locks a fresh folder of `kind` in `std::env::temp_dir()` (mode 0700).
    pub fn new(kind: TempKind) -> io::Result<Self> {
        Self::new_in(&std::env::temp_dir(), kind)
    }

    /// [`HeldDir::new`] in `parent`.
    pub fn new_in(parent: &Path, kind: TempKind) -> io::Result<Self> {
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix(kind.prefix())
                .rand_bytes(RANDOM_CHARS)
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(parent)?;
            // From here on the folder is removed by this value, not by `TempDir`.
            let path = dir.keep();
            let lock = match rustix::fs::open(&path, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                // A sweep removed it before it could be opened.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                // A sweep holds it, and removes it.
                Err(Errno::WOULDBLOCK) => continue,
                Err(e) => {
                    let _ = scratch::remove(&path);
                    return Err(e.into());
                }
            }
            // A sweep that locked the folder first may have removed it before we locked
            // what was left of it: the name must still lead to the folder we hold.
            let ours = identity(&rustix::fs::fstat(&lock)?);
            match rustix::fs::statat(rustix::fs::CWD, &path, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if identity(&now) == ours => {}
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
            held().push(path.clone());
            return Ok(Self { path, _lock: lock });
        }
        Err(io::Error::other(format!(
            "could not make a folder in {} in {ATTEMPTS} attempts: something removes them as \
             they are made",
            parent.display()
        )))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the folder now, reporting a failure (dropping it only tries).
    pub fn remove(self) -> io::Result<()> {
        scratch::remove(&self.path)
        // Drop releases the lock and tries again, which finds nothing.
    }
}

impl Drop for HeldDir {
    fn drop(&mut self) {
        let _ = scratch::remove(&self.path);
        held().retain(|p| p != &self.path);
    }
}

/// Removes every folder this process holds, now, from any thread: for a process about to
/// end on a signal while its builds may still run. Their owners find them gone.
pub fn remove_held() -> Vec<(PathBuf, io::Error)> {
    remove_held_where(|_| true)
}

fn remove_held_where(wanted: impl Fn(&Path) -> bool) -> Vec<(PathBuf, io::Error)> {
    let paths: Vec<PathBuf> = held().iter().filter(|p| wanted(p)).cloned().collect();
    let mut failed = Vec::new();
    for path in paths {
        // The owner may still be writing into it: a few tries.
        let mut last = None;
        for _ in 0..5 {
            match scratch::remove(&path) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Some(error) = last {
            failed.push((path, error));
        }
    }
    failed
}

/// What [`sweep_stale`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub folders: u64,
    /// Bytes of the files in them.
    pub bytes: u64,
}

/// Removes the folders of [`is_ours`] names in `tmp` that belong to this user and that
/// nobody holds: what processes that ended without cleaning up (killed, crashed) left.
/// A folder another process holds, another user's folder, or anything that is not a
/// folder is left alone. A `tmp` that other users may write and that is not sticky is not
/// swept at all (an entry could be swapped under the sweep).
pub fn sweep_stale(tmp: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let tmp_fd = rustix::fs::open(tmp, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())?;
    let tmp_stat = rustix::fs::fstat(&tmp_fd)?;
    let shared = tmp_stat.st_mode & 0o002 != 0 || tmp_stat.st_mode & 0o020 != 0;
    if shared && tmp_stat.st_mode & 0o1000 == 0 {
        return Ok(swept);
    }
    let me = rustix::process::getuid().as_raw();
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_ours(&name) {
            continue;
        }
        let Ok(fd) = rustix::fs::openat(&tmp_fd, name.as_str(), DIR_FLAGS, Mode::empty()) else {
            continue;
        };
        let stat = rustix::fs::fstat(&fd)?;
        if stat.st_uid != me {
            continue;
        }
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        // Still the folder that was locked under that name.
        match rustix::fs::statat(&tmp_fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if identity(&now) == identity(&stat) => {}
            _ => continue,
        }
        let path = tmp.join(&name);
        let usage = scratch::usage(&path, |_| false).unwrap_or_default();
        scratch::remove(&path)?;
        swept.folders += 1;
        swept.bytes += usage.bytes;
        // The lock goes with `fd`, after the folder is gone.
    }
    Ok(swept)
}

#[allow(clippy::unnecessary_cast)]
fn identity(stat: &rustix::fs::Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

#[cfg(test)]
mod tests;
