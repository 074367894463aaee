//! One wrapped WASI call: the guest's WASI context, its memory and the disk account, and
//! what each wrapper asks the account before and tells it after.

use super::super::{DiskAccount, ENTRY_BYTES, Growable, Kind, Stat, dirent_bytes};
use super::{Parts, SUCCESS};
use crate::sandbox::guest_memory::with_guest_memory;
use wasmtime::{AsContextMut, Caller};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wasmtime_wasi::runtime::in_tokio;
use wiggle::{GuestError, GuestMemory, GuestPtr};

/// One wrapped call: the guest's WASI context, its memory, the disk account.
pub(super) struct Call<'a> {
    pub(super) wasi: &'a mut WasiP1Ctx,
    pub(super) memory: GuestMemory<'a>,
    pub(super) disk: &'a mut DiskAccount,
    /// The store's hostcall fuel, which each call into the implementation starts with (as
    /// its own linker glue does).
    pub(super) fuel: usize,
}

/// Runs `f` with the parts of the caller's store, as wasmtime-wasi's glue does.
pub(super) fn call<T, R>(
    caller: &mut Caller<'_, T>,
    parts: Parts<T>,
    f: impl FnOnce(&mut Call<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    with_guest_memory(caller, |state, memory| {
        let (wasi, disk) = parts(state);
        f(&mut Call {
            wasi,
            memory,
            disk,
            fuel,
        })
    })
}

/// What `path_open` was asked.
pub(super) struct Open {
    pub(super) dirfd: i32,
    pub(super) follow: bool,
    pub(super) path: (i32, i32),
    pub(super) creating: bool,
    pub(super) truncating: bool,
    pub(super) append: bool,
    /// Where the new descriptor is written.
    pub(super) opened: i32,
}

impl Call<'_> {
    /// Runs wasmtime-wasi's implementation of the call.
    pub(super) fn original(
        &mut self,
        mut f: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        self.wasi.set_hostcall_fuel(self.fuel);
        f(self.wasi, &mut self.memory)
    }

    /// Makes room for `bytes`, or ends the run.
    pub(super) fn reserve(&mut self, bytes: u64) -> wasmtime::Result<()> {
        self.disk.reserve(bytes).map_err(wasmtime::Error::new)
    }

    pub(super) fn stat_fd(&mut self, fd: u32) -> Option<Stat> {
        self.wasi.set_hostcall_fuel(self.fuel);
        in_tokio(self.wasi.fd_filestat_get(&mut self.memory, fd.into()))
            .ok()
            .map(stat)
    }

    pub(super) fn stat_path(
        &mut self,
        dirfd: i32,
        follow: bool,
        (path, len): (i32, i32),
    ) -> Option<Stat> {
        let flags = if follow {
            types::Lookupflags::SYMLINK_FOLLOW
        } else {
            types::Lookupflags::empty()
        };
        self.wasi.set_hostcall_fuel(self.fuel);
        let path = GuestPtr::<str>::new((path as u32, len as u32));
        in_tokio(
            self.wasi
                .path_filestat_get(&mut self.memory, (dirfd as u32).into(), flags, path),
        )
        .ok()
        .map(stat)
    }

    /// The length of the last component of a guest path (the longest possible if it cannot
    /// be read: the call itself then fails).
    pub(super) fn name_len(&self, (path, len): (i32, i32)) -> usize {
        let path = GuestPtr::<str>::new((path as u32, len as u32));
        self.memory.as_cow_str(path).map_or(255, |path| {
            path.trim_end_matches('/')
                .rsplit('/')
                .next()
                .map_or(0, str::len)
        })
    }

    /// `fd` as a file that may grow: identified first if the account knows it but not what
    /// it is. `Ok(None)` for what the account does not follow (stdout, stderr, preopened
    /// folders) and for anything but regular files; `Err` with an errno when a file the
    /// guest opened cannot be looked at, which is refused rather than let through unseen.
    pub(super) fn growable(&mut self, fd: i32) -> Result<Option<Growable>, i32> {
        let fd = fd as u32;
        if self.disk.needs_identity(fd) {
            match self.stat_fd(fd) {
                Some(stat) => self.disk.identify(fd, stat),
                None => return Err(types::Errno::Io as i32),
            }
        }
        Ok(self.disk.growable(fd))
    }

    /// `fd_write` (`at` none) or `fd_pwrite`: the write may not end past what the limit
    /// allows. It ends at most at its offset plus the length of the first non-empty buffer
    /// (the only one wasmtime-wasi writes); the offset of an appending descriptor is the
    /// file's size, which is at most what is charged for it.
    pub(super) fn write(
        &mut self,
        fd: i32,
        iovs: i32,
        iovs_len: i32,
        at: Option<i64>,
        nwritten: i32,
        mut original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        let file = match self.growable(fd) {
            Ok(Some(file)) => file,
            Ok(None) => return self.original(original),
            Err(errno) => return Ok(errno),
        };
        let len = first_buffer_len(&self.memory, iovs, iovs_len)?;
        let start = match (file.append, at) {
            (true, _) => file.charged,
            (false, Some(offset)) => offset as u64,
            (false, None) => {
                self.wasi.set_hostcall_fuel(self.fuel);
                match self.wasi.fd_tell(&mut self.memory, (fd as u32).into()) {
                    Ok(position) => position,
                    // Not a file to wasmtime-wasi after all: nothing to count.
                    Err(_) => return self.original(original),
                }
            }
        };
        self.reserve(start.saturating_add(len).saturating_sub(file.charged))?;
        let errno = self.original(&mut original)?;
        if errno == SUCCESS {
            let written = self
                .memory
                .read(GuestPtr::<u32>::new(nwritten as u32))
                .map_err(wasmtime::Error::new)?;
            self.disk.grew(file, start.saturating_add(written.into()));
        }
        Ok(errno)
    }

    /// `fd_allocate` or (`resize`) `fd_filestat_set_size`: the file may not grow past what
    /// the limit allows.
    pub(super) fn grow(
        &mut self,
        fd: i32,
        end: u64,
        resize: bool,
        original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        let file = match self.growable(fd) {
            Ok(Some(file)) => file,
            Ok(None) => return self.original(original),
            Err(errno) => return Ok(errno),
        };
        self.reserve(end.saturating_sub(file.charged))?;
        let errno = self.original(original)?;
        if errno == SUCCESS {
            if resize {
                self.disk.resized(file, end);
            } else {
                self.disk.grew(file, end);
            }
        }
        Ok(errno)
    }

    /// The size of `fd`'s file, when closing it settles a file that may have shrunk.
    pub(super) fn size_at_close(&mut self, fd: i32) -> Option<u64> {
        let fd = fd as u32;
        if !self.disk.size_needed_at_close(fd) {
            return None;
        }
        self.stat_fd(fd).map(|stat| stat.size)
    }

    /// `path_open`: creating a file costs an entry; a truncating open keeps the file's old
    /// size counted until the file is closed.
    pub(super) fn open(
        &mut self,
        open: Open,
        original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        let before = if open.creating || open.truncating {
            self.stat_path(open.dirfd, open.follow, open.path)
        } else {
            None
        };
        let creates = open.creating && before.is_none();
        if creates {
            self.reserve(ENTRY_BYTES)?;
        }
        let errno = self.original(original)?;
        if errno != SUCCESS {
            return Ok(errno);
        }
        let fd = self
            .memory
            .read(GuestPtr::<u32>::new(open.opened as u32))
            .map_err(wasmtime::Error::new)?;
        if creates {
            self.disk.charge(ENTRY_BYTES);
        }
        match (open.creating || open.truncating)
            .then(|| self.stat_fd(fd))
            .flatten()
        {
            Some(stat) => {
                let previous = before.filter(|b| b.id == stat.id).map(|b| b.size);
                self.disk.opened_as(fd, open.append, stat, previous);
            }
            None => self.disk.opened(fd, open.append),
        }
        Ok(errno)
    }

    /// `path_create_directory`, `path_symlink`, `path_link`: a new entry.
    pub(super) fn create(
        &mut self,
        original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        self.reserve(ENTRY_BYTES)?;
        let errno = self.original(original)?;
        if errno == SUCCESS {
            self.disk.charge(ENTRY_BYTES);
        }
        Ok(errno)
    }

    /// `path_unlink_file`, `path_remove_directory`.
    pub(super) fn remove(
        &mut self,
        dirfd: i32,
        path: (i32, i32),
        original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        let before = self.stat_path(dirfd, false, path);
        let errno = self.original(original)?;
        if let (SUCCESS, Some(stat)) = (errno, before) {
            let name_len = self.name_len(path);
            self.removed(stat, name_len);
        }
        Ok(errno)
    }

    /// `path_rename`: the old name leaves a slot in its folder; an entry it replaces is
    /// removed (unless both names are links of one file, which rename leaves alone).
    pub(super) fn rename(
        &mut self,
        (src_fd, src, src_len): (i32, i32, i32),
        (dst_fd, dst, dst_len): (i32, i32, i32),
        original: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        let replaced = self.stat_path(dst_fd, false, (dst, dst_len));
        let moved = replaced.and_then(|_| self.stat_path(src_fd, false, (src, src_len)));
        let slot = dirent_bytes(self.name_len((src, src_len)));
        self.reserve(slot)?;
        let errno = self.original(original)?;
        if errno == SUCCESS {
            self.disk.charge(slot);
            if let (Some(replaced), Some(moved)) = (replaced, moved)
                && replaced.id != moved.id
            {
                let name_len = self.name_len((dst, dst_len));
                self.removed(replaced, name_len);
            }
        }
        Ok(errno)
    }

    /// Records that `stat`'s entry is gone, after identifying every open descriptor when
    /// its file may be freed.
    pub(super) fn removed(&mut self, stat: Stat, name_len: usize) {
        let mut all_identified = true;
        if DiskAccount::frees(&stat) {
            for fd in self.disk.unidentified() {
                match self.stat_fd(fd) {
                    Some(stat) => self.disk.identify(fd, stat),
                    None => all_identified = false,
                }
            }
        }
        self.disk.removed(stat, name_len, all_identified);
    }
}

/// The length of the first non-empty buffer of a `ciovec` array, or 0.
fn first_buffer_len(memory: &GuestMemory<'_>, iovs: i32, len: i32) -> wasmtime::Result<u64> {
    let first = || -> Result<u64, GuestError> {
        let array = GuestPtr::<[types::Ciovec]>::new((iovs as u32, len as u32));
        for iov in array.iter() {
            let iov = memory.read(iov?)?;
            if iov.buf_len != 0 {
                return Ok(iov.buf_len.into());
            }
        }
        Ok(0)
    };
    first().map_err(wasmtime::Error::new)
}

fn stat(stat: types::Filestat) -> Stat {
    Stat {
        id: stat.ino,
        kind: match stat.filetype {
            types::Filetype::RegularFile => Kind::File,
            types::Filetype::Directory => Kind::Dir,
            _ => Kind::Other,
        },
        size: stat.size,
        links: stat.nlink,
    }
}
