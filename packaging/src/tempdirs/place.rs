//! Where a build's scratch folder is made.
//!
//! A backend that copies thousands of files (setuptools' `build/lib`, then the wheel's
//! tree) spends much of its time in the kernel creating and removing them; on a tmpfs that
//! costs a fraction of what a journalled disk file system does (bench/README.md, "Scratch
//! folders in memory": botocore's wheel 9.9 s with the scratch folder on ext4, 5.9 s on
//! tmpfs). But a folder in memory is memory: a hostile build filling its scratch folder to
//! its limits fills memory instead of disk. So the scratch folder goes into memory
//! ([`MEMORY_FOLDER`]) only when what the running builds may write there at most (the
//! caller's [`Budget`]) fits in half of the folder's free space and inodes and in half of
//! the memory left once the guests took theirs (the machine's `MemAvailable`, less where a
//! control group leaves less); otherwise into `$TMPDIR`, as before. A folder the user
//! names (`--scratch-dir`) or a `$TMPDIR` the user set is used as it is.

use rustix::fs::Mode;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// The memory-backed folder scratch folders may go into.
pub const MEMORY_FOLDER: &str = "/dev/shm";
/// `f_type` of a tmpfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Where scratch folders go, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchPlace {
    pub folder: PathBuf,
    pub reason: PlaceReason,
}

/// Why a [`ScratchPlace`] was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceReason {
    /// The user named the folder (`--scratch-dir`, `WASM_BUILD_SCRATCH_DIR`).
    Asked,
    /// `$TMPDIR` is set: temporary files go where the user put them.
    TmpDir,
    /// In memory: `budget` bytes fit in the `room` there was.
    Memory { budget: u64, room: u64 },
    /// `$TMPDIR` is not set and memory could not be used, for this reason: the system's
    /// temporary folder (on some systems itself a tmpfs, whose room nothing checks).
    NotMemory(String),
}

impl std::fmt::Display for PlaceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaceReason::Asked => f.write_str("asked for"),
            PlaceReason::TmpDir => f.write_str("$TMPDIR"),
            PlaceReason::Memory { budget, room } => write!(
                f,
                "in memory: the running builds' limits, {} MiB, fit in {} MiB",
                budget >> 20,
                room >> 20
            ),
            PlaceReason::NotMemory(why) => write!(f, "not in memory: {why}"),
        }
    }
}

/// What builds may hold at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Bytes in their scratch folders.
    pub scratch: u64,
    /// Files, folders and links there.
    pub entries: u64,
    /// Bytes of their guests' memory.
    pub guests: u64,
}

impl Budget {
    fn plus(self, other: Budget) -> Budget {
        Budget {
            scratch: self.scratch.saturating_add(other.scratch),
            entries: self.entries.saturating_add(other.entries),
            guests: self.guests.saturating_add(other.guests),
        }
    }

    fn minus(self, other: Budget) -> Budget {
        Budget {
            scratch: self.scratch.saturating_sub(other.scratch),
            entries: self.entries.saturating_sub(other.entries),
            guests: self.guests.saturating_sub(other.guests),
        }
    }
}

/// What the builds of this process whose scratch folders are in memory may still hold.
static RESERVED: Mutex<Budget> = Mutex::new(Budget {
    scratch: 0,
    entries: 0,
    guests: 0,
});

fn reserved() -> std::sync::MutexGuard<'static, Budget> {
    RESERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A build's share of memory, from [`choose`]: given back when dropped, once its scratch
/// folder is gone.
#[derive(Debug)]
pub struct Reservation(Budget);

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = reserved();
        *reserved = reserved.minus(self.0);
    }
}

/// What decides whether scratch folders may go into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFacts {
    /// Free bytes in [`MEMORY_FOLDER`].
    pub free_bytes: u64,
    /// Free inodes there.
    pub free_inodes: u64,
    /// The memory this process may still use: the machine's `MemAvailable`, or less where a
    /// control group's limit leaves less.
    pub available: u64,
}

impl MemoryFacts {
    /// The bytes builds whose guests may take `guests` bytes may put in memory: half the
    /// folder's free space (other programs use it too) and half the memory the guests
    /// leave, so that builds filling everything to their limits leave the machine the other
    /// half.
    pub fn room(&self, guests: u64) -> u64 {
        (self.free_bytes / 2).min(self.available.saturating_sub(guests) / 2)
    }

    /// The room there is for `budget`, or why it does not fit (also: more entries than
    /// half the folder's free inodes).
    pub fn fits(&self, budget: Budget) -> Result<u64, String> {
        let room = self.room(budget.guests);
        if budget.scratch > room {
            return Err(format!(
                "the running builds' limits ({} MiB) do not fit in {MEMORY_FOLDER}: half its \
                 {} MiB free and half of the {} MiB of memory available less {} MiB for \
                 the guests",
                budget.scratch >> 20,
                self.free_bytes >> 20,
                self.available >> 20,
                budget.guests >> 20
            ));
        }
        if budget.entries > self.free_inodes / 2 {
            return Err(format!(
                "the running builds' limits ({} files and folders) do not fit in half of \
                 {MEMORY_FOLDER}'s {} free inodes",
                budget.entries, self.free_inodes
            ));
        }
        Ok(room)
    }
}

/// Chooses where a build's scratch folder goes: `asked`, else `$TMPDIR` when set, else
/// memory when `budget` fits beside what this process's other builds in memory reserved
/// (the reservation returned holds this one's until it is dropped), else the system's
/// temporary folder. The first time a process chooses memory it removes what killed
/// processes left there ([`super::sweep_stale`]), since that holds memory until someone
/// does.
pub fn choose(asked: Option<&Path>, budget: Budget) -> (ScratchPlace, Option<Reservation>) {
    let tmpdir_set = std::env::var_os("TMPDIR").is_some_and(|v| !v.is_empty());
    // Held while deciding, so that two builds cannot both take the same room.
    let mut reserved = reserved();
    let total = reserved.plus(budget);
    let place = decide(asked, tmpdir_set, total, memory_facts);
    if !matches!(place.reason, PlaceReason::Memory { .. }) {
        return (place, None);
    }
    *reserved = total;
    drop(reserved);
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        let _ = super::sweep_stale(&place.folder);
    });
    (place, Some(Reservation(budget)))
}

/// Where a scratch folder goes that [`choose`] cannot bound (a build requirement built
/// from its sdist, inside a build): `asked`, else the temporary folder, never memory.
pub fn off_memory(asked: Option<&Path>) -> PathBuf {
    asked.map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// `place`, or the temporary folder when memory was chosen but the folder could not be
/// made there (`error`).
pub fn after_failure(place: &ScratchPlace, error: &std::io::Error) -> Option<ScratchPlace> {
    matches!(place.reason, PlaceReason::Memory { .. }).then(|| ScratchPlace {
        folder: std::env::temp_dir(),
        reason: PlaceReason::NotMemory(format!(
            "no folder could be made in {MEMORY_FOLDER} ({error})"
        )),
    })
}

fn decide(
    asked: Option<&Path>,
    tmpdir_set: bool,
    budget: Budget,
    memory: impl FnOnce() -> Result<MemoryFacts, String>,
) -> ScratchPlace {
    let (folder, reason) = if let Some(folder) = asked {
        (folder.to_path_buf(), PlaceReason::Asked)
    } else if tmpdir_set {
        (std::env::temp_dir(), PlaceReason::TmpDir)
    } else {
        match memory().and_then(|facts| facts.fits(budget)) {
            Ok(room) => (
                PathBuf::from(MEMORY_FOLDER),
                PlaceReason::Memory {
                    budget: budget.scratch,
                    room,
                },
            ),
            Err(why) => (std::env::temp_dir(), PlaceReason::NotMemory(why)),
        }
    };
    ScratchPlace { folder, reason }
}

/// [`MEMORY_FOLDER`] when it is what a shared temporary folder in memory must be: a tmpfs
/// folder (not a link) owned by root, writable by all and sticky, as `/tmp` is, that does
/// not give every file a huge page; `None` otherwise.
pub fn memory_folder() -> Option<PathBuf> {
    memory_folder_facts()
        .ok()
        .map(|_| PathBuf::from(MEMORY_FOLDER))
}

fn memory_folder_facts() -> Result<rustix::fs::StatFs, String> {
    let dir = rustix::fs::open(MEMORY_FOLDER, super::DIR_FLAGS, Mode::empty())
        .map_err(|e| format!("{MEMORY_FOLDER} cannot be opened as a folder ({e})"))?;
    let stat = rustix::fs::fstat(&dir).map_err(|e| format!("{MEMORY_FOLDER}: {e}"))?;
    if stat.st_uid != 0 || stat.st_mode & 0o7777 != 0o1777 {
        return Err(format!(
            "{MEMORY_FOLDER} is not a sticky folder of root's (mode {:o})",
            stat.st_mode & 0o7777
        ));
    }
    let fs = rustix::fs::fstatfs(&dir).map_err(|e| format!("{MEMORY_FOLDER}: {e}"))?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    if i64::from(fs.f_type) != TMPFS_MAGIC {
        return Err(format!("{MEMORY_FOLDER} is not a tmpfs"));
    }
    // A huge page for every file would make a small file cost 2 MiB, not the 4 KiB the
    // disk limit counts.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let shmem =
        fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled").unwrap_or_default();
    if huge_pages_always(&mountinfo, &shmem) {
        return Err(format!("{MEMORY_FOLDER} gives every file huge pages"));
    }
    Ok(fs)
}

/// Whether `/proc/self/mountinfo` mounts [`MEMORY_FOLDER`] (the last mount there wins)
/// with `huge=always`, or `shmem_enabled` forces huge pages on every tmpfs.
fn huge_pages_always(mountinfo: &str, shmem_enabled: &str) -> bool {
    let mount = mountinfo
        .lines()
        .rfind(|line| line.split(' ').nth(4) == Some(MEMORY_FOLDER));
    let options = mount
        .and_then(|line| line.split_once(" - "))
        .and_then(|(_, tail)| tail.split(' ').nth(2))
        .unwrap_or("");
    options.split(',').any(|o| o == "huge=always") || shmem_enabled.contains("[force]")
}

/// The facts [`choose`] decides on, read now.
pub fn memory_facts() -> Result<MemoryFacts, String> {
    let fs = memory_folder_facts()?;
    #[allow(clippy::unnecessary_cast)]
    let block = fs.f_bsize as u64;
    let meminfo = fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("/proc/meminfo cannot be read ({e})"))?;
    let machine = mem_available(&meminfo).ok_or("/proc/meminfo has no MemAvailable")?;
    let groups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let headroom = cgroup_headroom(&groups, Path::new("/sys/fs/cgroup")).ok_or(
        "the memory limit of this process's control group cannot be read (/sys/fs/cgroup)",
    )?;
    #[allow(clippy::unnecessary_cast)]
    Ok(MemoryFacts {
        free_bytes: (fs.f_bavail as u64).saturating_mul(block),
        // A tmpfs mounted with `nr_inodes=0` has no inode limit (and says 0 of 0).
        free_inodes: if fs.f_files == 0 {
            u64::MAX
        } else {
            fs.f_ffree as u64
        },
        available: machine.min(headroom),
    })
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The least headroom (limit less usage) of this process's memory control groups and their
/// ancestors, as `/proc/self/cgroup` (`groups`) names them under `root`: `u64::MAX` where
/// none is limited; `None` when the process is in a group below the root of a memory
/// hierarchy and no level of it can be read (a limit may be there, unseen). Control groups
/// v2 (`0::/path`: `memory.max` and `memory.high`, `memory.current`) and v1
/// (`N:memory:/path`, mounted at `memory/`: `memory.limit_in_bytes`,
/// `memory.usage_in_bytes`).
fn cgroup_headroom(groups: &str, root: &Path) -> Option<u64> {
    // On a hybrid host the memory controller is v1's; the v2 line names a group without it.
    let v1_memory = groups.lines().any(|line| {
        line.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
    });
    let mut least = u64::MAX;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (base, limit_files, usage_file): (PathBuf, &[&str], &str) =
            if controllers.is_empty() && !v1_memory {
                (
                    root.to_path_buf(),
                    &["memory.max", "memory.high"],
                    "memory.current",
                )
            } else if controllers.split(',').any(|c| c == "memory") {
                (
                    root.join("memory"),
                    &["memory.limit_in_bytes"],
                    "memory.usage_in_bytes",
                )
            } else {
                continue;
            };
        let read = |dir: &Path, name: &str| fs::read_to_string(dir.join(name)).ok();
        let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());
        // From the process's own group up to the root of the hierarchy.
        let mut dir = base.join(path.trim_start_matches('/'));
        let mut seen = false;
        loop {
            if let Some(usage) = read(&dir, usage_file) {
                seen = true;
                if let Some(usage) = number(Some(usage)) {
                    for limit in limit_files.iter().filter_map(|f| number(read(&dir, f))) {
                        least = least.min(limit.saturating_sub(usage));
                    }
                }
            }
            if dir == base || !dir.pop() {
                break;
            }
        }
        let in_a_group = !path.trim_matches('/').is_empty();
        if in_a_group && !seen {
            return None;
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests;
