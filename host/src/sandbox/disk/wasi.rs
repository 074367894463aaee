//! The WASI preview 1 calls that can make the writable mounts hold more or less, wrapped so
//! that the run's [`DiskAccount`] sees each one.
//!
//! Each wrapper shadows wasmtime-wasi's import of the same name in the `Linker`, asks the
//! account (and, when it must, stats the file through the same WASI context) before the call,
//! runs wasmtime-wasi's own implementation of the call (the function its linker glue calls,
//! `wasi_snapshot_preview1::NAME`), and records what the call did. A call the account
//! refuses does not happen: the guest traps, and the run ends as the disk limit.

use super::{DiskAccount, ENTRY_BYTES, Growable, Kind, Stat, dirent_bytes};
use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1 as _};
use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wasmtime_wasi::runtime::in_tokio;
use wiggle::{GuestError, GuestMemory, GuestPtr};

const MODULE: &str = "wasi_snapshot_preview1";
const SUCCESS: i32 = 0;

/// Where a store keeps the WASI context and the disk account of its run.
pub(in crate::sandbox) type Parts<T> = fn(&mut T) -> (&mut WasiP1Ctx, &mut DiskAccount);

/// Shadows the calls of `linker`'s WASI preview 1 (added before) that change what the
/// writable mounts hold with wrappers that keep `parts`' disk account.
pub(in crate::sandbox) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    parts: Parts<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_write",
        move |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
            call(&mut caller, parts, |c| {
                c.write(fd, iovs, iovs_len, None, nwritten, |wasi, memory| {
                    in_tokio(p1::fd_write(wasi, memory, fd, iovs, iovs_len, nwritten))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pwrite",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              offset: i64,
              nwritten: i32| {
            call(&mut caller, parts, |c| {
                c.write(
                    fd,
                    iovs,
                    iovs_len,
                    Some(offset),
                    nwritten,
                    |wasi, memory| {
                        in_tokio(p1::fd_pwrite(
                            wasi, memory, fd, iovs, iovs_len, offset, nwritten,
                        ))
                    },
                )
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_allocate",
        move |mut caller: Caller<'_, T>, fd: i32, offset: i64, len: i64| {
            call(&mut caller, parts, |c| {
                let end = (offset as u64).saturating_add(len as u64);
                c.grow(fd, end, false, |wasi, memory| {
                    p1::fd_allocate(wasi, memory, fd, offset, len)
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_set_size",
        move |mut caller: Caller<'_, T>, fd: i32, size: i64| {
            call(&mut caller, parts, |c| {
                c.grow(fd, size as u64, true, |wasi, memory| {
                    in_tokio(p1::fd_filestat_set_size(wasi, memory, fd, size))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        move |mut caller: Caller<'_, T>, fd: i32, flags: i32| {
            call(&mut caller, parts, |c| {
                let errno =
                    c.original(|wasi, memory| p1::fd_fdstat_set_flags(wasi, memory, fd, flags))?;
                if errno == SUCCESS {
                    let append = flags as u16 & types::Fdflags::APPEND.bits() != 0;
                    c.disk.set_append(fd as u32, append);
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_close",
        move |mut caller: Caller<'_, T>, fd: i32| {
            call(&mut caller, parts, |c| {
                let size = c.size_at_close(fd);
                let errno = c.original(|wasi, memory| in_tokio(p1::fd_close(wasi, memory, fd)))?;
                if errno == SUCCESS {
                    c.disk.closed(fd as u32, size);
                } else {
                    c.disk.forget(fd as u32);
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_renumber",
        move |mut caller: Caller<'_, T>, from: i32, to: i32| {
            call(&mut caller, parts, |c| {
                let size = if from == to {
                    None
                } else {
                    c.size_at_close(to)
                };
                let errno =
                    c.original(|wasi, memory| in_tokio(p1::fd_renumber(wasi, memory, from, to)))?;
                if errno == SUCCESS && from != to {
                    c.disk.renumbered(from as u32, to as u32, size);
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        move |mut caller: Caller<'_, T>,
              dirfd: i32,
              dirflags: i32,
              path: i32,
              path_len: i32,
              oflags: i32,
              rights_base: i64,
              rights_inheriting: i64,
              fdflags: i32,
              opened: i32| {
            call(&mut caller, parts, |c| {
                let open = Open {
                    dirfd,
                    follow: dirflags as u32 & types::Lookupflags::SYMLINK_FOLLOW.bits() != 0,
                    path: (path, path_len),
                    creating: oflags as u16 & types::Oflags::CREAT.bits() != 0,
                    truncating: oflags as u16 & types::Oflags::TRUNC.bits() != 0,
                    append: fdflags as u16 & types::Fdflags::APPEND.bits() != 0,
                    opened,
                };
                c.open(open, |wasi, memory| {
                    in_tokio(p1::path_open(
                        wasi,
                        memory,
                        dirfd,
                        dirflags,
                        path,
                        path_len,
                        oflags,
                        rights_base,
                        rights_inheriting,
                        fdflags,
                        opened,
                    ))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_create_directory",
        move |mut caller: Caller<'_, T>, dirfd: i32, path: i32, path_len: i32| {
            call(&mut caller, parts, |c| {
                c.create(|wasi, memory| {
                    in_tokio(p1::path_create_directory(
                        wasi, memory, dirfd, path, path_len,
                    ))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_symlink",
        move |mut caller: Caller<'_, T>,
              target: i32,
              target_len: i32,
              dirfd: i32,
              path: i32,
              path_len: i32| {
            call(&mut caller, parts, |c| {
                c.create(|wasi, memory| {
                    in_tokio(p1::path_symlink(
                        wasi, memory, target, target_len, dirfd, path, path_len,
                    ))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_link",
        move |mut caller: Caller<'_, T>,
              src_fd: i32,
              src_flags: i32,
              src: i32,
              src_len: i32,
              dst_fd: i32,
              dst: i32,
              dst_len: i32| {
            call(&mut caller, parts, |c| {
                c.create(|wasi, memory| {
                    in_tokio(p1::path_link(
                        wasi, memory, src_fd, src_flags, src, src_len, dst_fd, dst, dst_len,
                    ))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_unlink_file",
        move |mut caller: Caller<'_, T>, dirfd: i32, path: i32, path_len: i32| {
            call(&mut caller, parts, |c| {
                c.remove(dirfd, (path, path_len), |wasi, memory| {
                    in_tokio(p1::path_unlink_file(wasi, memory, dirfd, path, path_len))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_remove_directory",
        move |mut caller: Caller<'_, T>, dirfd: i32, path: i32, path_len: i32| {
            call(&mut caller, parts, |c| {
                c.remove(dirfd, (path, path_len), |wasi, memory| {
                    in_tokio(p1::path_remove_directory(
                        wasi, memory, dirfd, path, path_len,
                    ))
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_rename",
        move |mut caller: Caller<'_, T>,
              src_fd: i32,
              src: i32,
              src_len: i32,
              dst_fd: i32,
              dst: i32,
              dst_len: i32| {
            call(&mut caller, parts, |c| {
                c.rename(
                    (src_fd, src, src_len),
                    (dst_fd, dst, dst_len),
                    |wasi, memory| {
                        in_tokio(p1::path_rename(
                            wasi, memory, src_fd, src, src_len, dst_fd, dst, dst_len,
                        ))
                    },
                )
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// One wrapped call: the guest's WASI context, its memory, the disk account.
struct Call<'a> {
    wasi: &'a mut WasiP1Ctx,
    memory: GuestMemory<'a>,
    disk: &'a mut DiskAccount,
    /// The store's hostcall fuel, which each call into the implementation starts with (as
    /// its own linker glue does).
    fuel: usize,
}

/// Runs `f` with the parts of the caller's store, as wasmtime-wasi's glue does.
fn call<T, R>(
    caller: &mut Caller<'_, T>,
    parts: Parts<T>,
    f: impl FnOnce(&mut Call<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => {
            let (bytes, state) = memory.data_and_store_mut(&mut *caller);
            let (wasi, disk) = parts(state);
            f(&mut Call {
                wasi,
                memory: GuestMemory::Unshared(bytes),
                disk,
                fuel,
            })
        }
        Some(Extern::SharedMemory(memory)) => {
            let (wasi, disk) = parts(caller.data_mut());
            f(&mut Call {
                wasi,
                memory: GuestMemory::Shared(memory.data()),
                disk,
                fuel,
            })
        }
        _ => wasmtime::bail!("missing required memory export"),
    }
}

/// What `path_open` was asked.
struct Open {
    dirfd: i32,
    follow: bool,
    path: (i32, i32),
    creating: bool,
    truncating: bool,
    append: bool,
    /// Where the new descriptor is written.
    opened: i32,
}

impl Call<'_> {
    /// Runs wasmtime-wasi's implementation of the call.
    fn original(
        &mut self,
        mut f: impl FnMut(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
    ) -> wasmtime::Result<i32> {
        self.wasi.set_hostcall_fuel(self.fuel);
        f(self.wasi, &mut self.memory)
    }

    /// Makes room for `bytes`, or ends the run.
    fn reserve(&mut self, bytes: u64) -> wasmtime::Result<()> {
        self.disk.reserve(bytes).map_err(wasmtime::Error::new)
    }

    fn stat_fd(&mut self, fd: u32) -> Option<Stat> {
        self.wasi.set_hostcall_fuel(self.fuel);
        in_tokio(self.wasi.fd_filestat_get(&mut self.memory, fd.into()))
            .ok()
            .map(stat)
    }

    fn stat_path(&mut self, dirfd: i32, follow: bool, (path, len): (i32, i32)) -> Option<Stat> {
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
    fn name_len(&self, (path, len): (i32, i32)) -> usize {
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
    fn growable(&mut self, fd: i32) -> Result<Option<Growable>, i32> {
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
    fn write(
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
    fn grow(
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
    fn size_at_close(&mut self, fd: i32) -> Option<u64> {
        let fd = fd as u32;
        if !self.disk.size_needed_at_close(fd) {
            return None;
        }
        self.stat_fd(fd).map(|stat| stat.size)
    }

    /// `path_open`: creating a file costs an entry; a truncating open keeps the file's old
    /// size counted until the file is closed.
    fn open(
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
    fn create(
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
    fn remove(
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
    fn rename(
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
    fn removed(&mut self, stat: Stat, name_len: usize) {
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
