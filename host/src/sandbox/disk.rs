//! The disk limit, kept where the guest's bytes are written: at the WASI file layer.
//!
//! The guest can fill the host's disk only through the calls of [`wasi`], so each run keeps a
//! [`DiskAccount`] of what its writable mounts hold and [`wasi`] asks it before each call that
//! could make them hold more. Counted:
//!
//! - the writable mounts as the run finds them (the staged source, an earlier run's output),
//!   measured by the host before the guest starts ([`DiskAccount::for_run`]): file sizes plus
//!   [`ENTRY_BYTES`] for every entry;
//! - every entry the guest creates (file, folder, symlink, hard link): [`ENTRY_BYTES`], so
//!   that millions of empty files are not free;
//! - the size of every file the guest makes larger (write, pwrite, allocate, set_size), at its
//!   highest while any descriptor holds the file open, linked or not: a file unlinked while
//!   open still fills the disk.
//!
//! A call that would take the total past the limit is refused before it happens and ends the
//! run ([`DiskFull`]). So the mounts never hold more than the limit (plus what a file system
//! spends on its own bookkeeping), however fast or however the guest writes.
//!
//! Credited back, and only once it can no longer occupy the disk, so that builds that make
//! and delete temporary files are not charged for them forever:
//!
//! - a removed entry (unlink, rmdir, an entry replaced by a rename), less [`dirent_bytes`]
//!   for the slot it leaves in its folder (folders do not shrink on ext4);
//! - a file's content once its last link is gone, or a removed folder: at once when no
//!   descriptor holds it, else when the last one is closed;
//! - a file made smaller, when its last descriptor is closed.
//!
//! Hard links share their file's content: a link costs an entry, the bytes count once.

#[cfg(test)]
mod tests;
mod wasi;

pub(super) use self::wasi::add_to_linker;

use super::GuestRun;
use std::collections::HashMap;
use std::path::PathBuf;
use wasm_build_packaging::scratch::{self, TreeUsage};

pub(super) use wasm_build_packaging::limits::ENTRY_BYTES;

/// What a removed entry named `name_len` bytes keeps charged: its slot in the folder, which
/// the folder keeps (ext4 never gives folder blocks back until the folder is removed).
/// Renames pay it too, for the slot the old name leaves behind.
pub(super) fn dirent_bytes(name_len: usize) -> u64 {
    8 + (name_len.clamp(1, 255) as u64).next_multiple_of(8)
}

/// What a tree counts against the disk limit: its files' sizes and [`ENTRY_BYTES`] per entry.
fn charge(usage: &TreeUsage) -> u64 {
    usage
        .bytes
        .saturating_add(usage.entries.saturating_mul(ENTRY_BYTES))
}

/// What `roots` count against the disk limit (see [`charge`]), counting stopped once past
/// `stop_after`. A tree that cannot be walked counts as over any limit: what cannot be
/// measured is not let through.
pub(super) fn measure(roots: &[PathBuf], stop_after: u64) -> u64 {
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

/// The disk limit for each of `runs` runs like `run` that write into the same mounts at
/// once: what the mounts hold now plus an equal share of the room left. Each run counts
/// what it finds (the others' writes included) and what it adds, so together they never
/// take the mounts past `run.limits.disk`.
pub(crate) fn shared_disk_limit(run: &GuestRun, runs: u64) -> u64 {
    let limit = run.limits.disk;
    let held = measure(&writable_roots(run), limit);
    if held >= limit {
        return limit;
    }
    held + (limit - held) / runs.max(1)
}

fn writable_roots(run: &GuestRun) -> Vec<PathBuf> {
    run.mounts
        .iter()
        .filter(|m| m.writable)
        .map(|m| m.host.clone())
        .collect()
}

/// A call was refused: it would have taken the writable mounts past the disk limit.
#[derive(Debug, thiserror::Error)]
#[error("disk limit reached")]
pub(super) struct DiskFull;

/// What one run's writable mounts hold, as far as the limit is concerned, and the open
/// descriptors it must know about to tell when something is really freed.
#[derive(Debug)]
pub(super) struct DiskAccount {
    limit: u64,
    used: u64,
    /// The most `used` has been.
    peak: u64,
    /// A call was refused: the run ends as the disk limit, whatever the guest does next.
    hit: bool,
    /// Descriptors the guest opened with `path_open` and has not closed.
    fds: HashMap<u32, OpenFd>,
    /// The files and folders those descriptors hold, once identified, by their WASI inode
    /// number (a hash of device and inode).
    inodes: HashMap<u64, OpenInode>,
}

/// A descriptor the guest opened.
#[derive(Debug, Clone, Copy)]
struct OpenFd {
    /// Its inode, once the account needed to know it (see [`DiskAccount::unidentified`]).
    inode: Option<u64>,
    /// Whether its writes go to the end of the file.
    append: bool,
}

/// A file or folder that descriptors of the guest hold open.
#[derive(Debug)]
struct OpenInode {
    /// How many of the guest's descriptors hold it.
    open: u32,
    kind: Kind,
    /// The bytes of its content counted against the limit: its size when first seen, then
    /// the highest it reached.
    charged: u64,
    /// It may have been made smaller than `charged` (a truncating open, `set_size`): its
    /// size is looked at when the last descriptor closes.
    shrunk: bool,
    /// Its last link is gone: its content, and this much for its entry, are credited when
    /// the last descriptor closes.
    orphaned: Option<u64>,
}

/// A file's type, as far as the account cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Other,
}

/// What the account learns of a file from a stat.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    /// The WASI inode number.
    pub id: u64,
    pub kind: Kind,
    pub size: u64,
    pub links: u64,
}

/// An open regular file that a call may make larger.
#[derive(Debug, Clone, Copy)]
pub(super) struct Growable {
    id: u64,
    /// Bytes of it counted already: no write ending before this grows the count.
    pub charged: u64,
    pub append: bool,
}

impl DiskAccount {
    /// An account of `initial` bytes against `limit`.
    pub(super) fn new(limit: u64, initial: u64) -> Self {
        Self {
            limit,
            used: initial,
            peak: initial,
            hit: false,
            fds: HashMap::new(),
            inodes: HashMap::new(),
        }
    }

    /// The account of `run`: its writable mounts measured now, before the guest runs.
    pub(super) fn for_run(run: &GuestRun) -> Self {
        Self::new(
            run.limits.disk,
            measure(&writable_roots(run), run.limits.disk),
        )
    }

    /// Whether the mounts hold more than the limit (when measured before the run), or a
    /// call was refused.
    pub(super) fn over_limit(&self) -> bool {
        self.hit || self.used > self.limit
    }

    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used
    }

    /// Makes room for `bytes` more, or refuses (and the run ends as the disk limit).
    pub(super) fn reserve(&mut self, bytes: u64) -> Result<(), DiskFull> {
        if self.hit || self.used.saturating_add(bytes) > self.limit {
            self.hit = true;
            return Err(DiskFull);
        }
        Ok(())
    }

    /// Counts `bytes` the guest now holds (made room for with [`DiskAccount::reserve`]).
    pub(super) fn charge(&mut self, bytes: u64) {
        self.used = self.used.saturating_add(bytes);
        self.peak = self.peak.max(self.used);
    }

    /// The most the mounts held at once during the run (what was there before included).
    pub(super) fn high_water(&self) -> u64 {
        self.peak
    }

    fn credit(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// The guest opened `fd`; what it is is looked up when it matters.
    pub(super) fn opened(&mut self, fd: u32, append: bool) {
        self.forget(fd);
        self.fds.insert(
            fd,
            OpenFd {
                inode: None,
                append,
            },
        );
    }

    /// The guest opened `fd`, which is `stat`; `previous` is the size the file had before a
    /// truncating open made it smaller, which stays counted until the file is closed.
    pub(super) fn opened_as(&mut self, fd: u32, append: bool, stat: Stat, previous: Option<u64>) {
        self.opened(fd, append);
        self.identify(fd, stat);
        if let (Some(previous), Some(inode)) = (previous, self.inodes.get_mut(&stat.id))
            && inode.kind == Kind::File
            && previous > inode.charged
        {
            inode.charged = previous;
            inode.shrunk = true;
        }
    }

    /// Whether the account knows `fd` (a file or folder the guest opened) but not yet what
    /// it is.
    pub(super) fn needs_identity(&self, fd: u32) -> bool {
        self.fds.get(&fd).is_some_and(|open| open.inode.is_none())
    }

    /// The descriptors whose file or folder is not known yet: before it credits a removed
    /// file, the account must know every file that is still open.
    pub(super) fn unidentified(&self) -> Vec<u32> {
        self.fds
            .iter()
            .filter(|(_, open)| open.inode.is_none())
            .map(|(fd, _)| *fd)
            .collect()
    }

    /// `fd` holds `stat`. A file seen for the first time counts with the size it has: that
    /// is counted already (measured before the run, or charged as it grew).
    pub(super) fn identify(&mut self, fd: u32, stat: Stat) {
        let Some(open) = self.fds.get_mut(&fd) else {
            return;
        };
        if open.inode.is_some() {
            return;
        }
        open.inode = Some(stat.id);
        let inode = self.inodes.entry(stat.id).or_insert(OpenInode {
            open: 0,
            kind: stat.kind,
            charged: if stat.kind == Kind::File {
                stat.size
            } else {
                0
            },
            shrunk: false,
            orphaned: None,
        });
        inode.open += 1;
        if stat.kind == Kind::File && stat.size < inode.charged {
            inode.shrunk = true;
        }
    }

    /// `fd` as a file that may grow, when it is an identified regular file.
    pub(super) fn growable(&self, fd: u32) -> Option<Growable> {
        let open = self.fds.get(&fd)?;
        let id = open.inode?;
        let inode = self.inodes.get(&id)?;
        (inode.kind == Kind::File).then_some(Growable {
            id,
            charged: inode.charged,
            append: open.append,
        })
    }

    /// The file of `file` now reaches `end` bytes (at least).
    pub(super) fn grew(&mut self, file: Growable, end: u64) {
        let Some(inode) = self.inodes.get_mut(&file.id) else {
            return;
        };
        let more = end.saturating_sub(inode.charged);
        inode.charged += more;
        self.charge(more);
    }

    /// The file of `file` was set to `size` bytes.
    pub(super) fn resized(&mut self, file: Growable, size: u64) {
        self.grew(file, size);
        if let Some(inode) = self.inodes.get_mut(&file.id)
            && size < inode.charged
        {
            inode.shrunk = true;
        }
    }

    /// `fd` now appends, or no longer does.
    pub(super) fn set_append(&mut self, fd: u32, append: bool) {
        if let Some(open) = self.fds.get_mut(&fd) {
            open.append = append;
        }
    }

    /// Whether closing `fd` settles a file that may have been made smaller: its size must
    /// be looked at before the close.
    pub(super) fn size_needed_at_close(&self, fd: u32) -> bool {
        self.fds
            .get(&fd)
            .and_then(|open| self.inodes.get(&open.inode?))
            .is_some_and(|inode| inode.open == 1 && inode.shrunk && inode.orphaned.is_none())
    }

    /// The guest closed `fd`; `size` is its file's size just before, when
    /// [`DiskAccount::size_needed_at_close`] asked for it. The last close of a file whose
    /// links are all gone frees it; that of a file made smaller settles its count.
    pub(super) fn closed(&mut self, fd: u32, size: Option<u64>) {
        let Some(id) = self.fds.remove(&fd).and_then(|open| open.inode) else {
            return;
        };
        let Some(inode) = self.inodes.get_mut(&id) else {
            return;
        };
        inode.open -= 1;
        if inode.open > 0 {
            return;
        }
        let Some(inode) = self.inodes.remove(&id) else {
            return;
        };
        if let Some(entry) = inode.orphaned {
            self.credit(inode.charged.saturating_add(entry));
        } else if let Some(size) = size.filter(|_| inode.shrunk) {
            self.credit(inode.charged.saturating_sub(size));
        }
    }

    /// `fd` is no longer the guest's, for a reason that proves nothing about its file (a
    /// close that failed): it is dropped without crediting anything.
    pub(super) fn forget(&mut self, fd: u32) {
        let Some(id) = self.fds.remove(&fd).and_then(|open| open.inode) else {
            return;
        };
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.open -= 1;
            if inode.open == 0 {
                self.inodes.remove(&id);
            }
        }
    }

    /// `from` was renumbered to `to`, closing what `to` was (`size`: see
    /// [`DiskAccount::closed`]).
    pub(super) fn renumbered(&mut self, from: u32, to: u32, size: Option<u64>) {
        self.closed(to, size);
        if let Some(open) = self.fds.remove(&from) {
            self.fds.insert(to, open);
        }
    }

    /// Whether removing an entry that was `stat` may free its file or folder (its last
    /// link): then every open descriptor must be identified first.
    pub(super) fn frees(stat: &Stat) -> bool {
        stat.kind == Kind::Dir || stat.links <= 1
    }

    /// The entry `stat`, named `name_len` bytes, was removed (unlinked, a folder removed, or
    /// replaced by a rename). `all_identified` says whether every open descriptor is
    /// identified: without it nothing is credited that an unknown descriptor might hold.
    pub(super) fn removed(&mut self, stat: Stat, name_len: usize, all_identified: bool) {
        let entry = ENTRY_BYTES - dirent_bytes(name_len);
        if !Self::frees(&stat) {
            // Another link keeps the file: only this name is gone.
            self.credit(entry);
            return;
        }
        if !all_identified {
            return;
        }
        if let Some(inode) = self.inodes.get_mut(&stat.id) {
            // Open: freed when the last descriptor closes.
            inode.orphaned = Some(entry);
            return;
        }
        let content = if stat.kind == Kind::File {
            stat.size
        } else {
            0
        };
        self.credit(entry.saturating_add(content));
    }
}
