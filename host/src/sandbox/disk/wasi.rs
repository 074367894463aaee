//! The WASI preview 1 calls that can make the writable mounts hold more or less, wrapped so
//! that the run's [`DiskAccount`] sees each one.
//!
//! Each wrapper shadows wasmtime-wasi's import of the same name in the `Linker`, asks the
//! account (and, when it must, stats the file through the same WASI context) before the call,
//! runs wasmtime-wasi's own implementation of the call (the function its linker glue calls,
//! `wasi_snapshot_preview1::NAME`), and records what the call did. A call the account
//! refuses does not happen: the guest traps, and the run ends as the disk limit.

use super::DiskAccount;
use wasmtime::{Caller, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wasmtime_wasi::runtime::in_tokio;

const MODULE: &str = "wasi_snapshot_preview1";
pub(super) const SUCCESS: i32 = 0;

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

mod call;

use self::call::{Open, call};
