//! Directory listings read from one snapshot per directory stream.
//!
//! wasmtime-wasi's `fd_readdir` lists the whole directory and stats every entry on each
//! call, then skips the `cookie` entries the guest has read already. wasi-libc reads a
//! directory in 4 KiB chunks (about 100 entries), so one `os.listdir` of a folder of N
//! entries cost about N²/100 stats: 40,000 for a folder of 2,000 files. This shadow lists
//! the directory once, when the guest starts reading it (cookie 0: `opendir`,
//! `rewinddir`), and serves the later chunks from that listing, as a kernel's directory
//! stream does. The bytes of each chunk are those wasmtime-wasi would write at that cookie
//! (the listing is its own output, made into a host buffer); what differs is only when the
//! directory is read. A stream goes on from the listing its cookie 0 made, so an entry
//! added or removed while it is read may or may not appear, as POSIX allows, and a loop
//! that removes each entry it reads sees every entry once (wasmtime-wasi's own chunks,
//! each a new listing, skipped as many entries as had been removed). A new stream sees the
//! directory as it is.
//!
//! One listing is kept per run (readers read a stream to its end before the next), for the
//! descriptor and directory it was made from (a descriptor closed and its number reused
//! for another directory is another listing; for the same directory, a stream that starts
//! past cookie 0 — `seekdir` to a cookie of an earlier stream — goes on from the earlier
//! listing), and only up to [`MAX_LISTING_BYTES`]. A larger directory costs one listing at
//! the bound when a stream starts (its first chunk is served from it) and then one listing
//! by wasmtime-wasi per chunk, as without this shadow.

use super::guest_memory::with_guest_memory;
use wasmtime::{AsContextMut, Caller, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wasmtime_wasi::runtime::in_tokio;
use wiggle::{GuestMemory, GuestPtr};

const MODULE: &str = "wasi_snapshot_preview1";
const SUCCESS: i32 = 0;
/// The largest listing kept, in bytes of dirents (24 bytes and the name each).
pub(super) const MAX_LISTING_BYTES: usize = 16 << 20;
/// The first host buffer a listing is read into; doubled until the listing fits.
const FIRST_BUFFER: usize = 64 << 10;
/// A dirent's fixed part: `d_next` (u64), `d_ino` (u64), `d_namlen` (u32), `d_type` (u8),
/// padding.
const DIRENT_BYTES: usize = 24;
/// In the host buffer: where `bufused` is written, where the listing starts.
const USED_AT: u32 = 0;
const LISTING_AT: u32 = 8;

/// The run's directory listing, if it has one.
pub(super) struct Listings {
    last: Option<Listing>,
    /// The descriptor and directory last found larger than `max_bytes`: its later chunks go
    /// straight to wasmtime-wasi, one listing each, as without this shadow.
    too_large: Option<(i32, DirId)>,
    max_bytes: usize,
    /// How many times wasmtime-wasi listed a directory for this shadow.
    #[cfg(test)]
    scans: usize,
}

impl Default for Listings {
    fn default() -> Self {
        Listings {
            last: None,
            too_large: None,
            max_bytes: MAX_LISTING_BYTES,
            #[cfg(test)]
            scans: 0,
        }
    }
}

/// What listing a directory into a host buffer gave.
enum Listed {
    Whole(Listing),
    /// The first `max_bytes` of a larger listing.
    Prefix(Vec<u8>),
    /// wasmtime-wasi's answer was an error, or not whole entries.
    Failed,
}

/// The directory behind a descriptor (device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirId {
    dev: u64,
    ino: u64,
}

struct Listing {
    fd: i32,
    dir: DirId,
    /// The dirents from cookie 0, as wasmtime-wasi writes them.
    bytes: Vec<u8>,
    /// Where each entry starts in `bytes`: entry `i` is the one after cookie `i`.
    starts: Vec<usize>,
}

impl Listing {
    /// The bytes a read at `cookie` gets, before truncation to the guest's buffer.
    fn after_cookie(&self, cookie: u64) -> &[u8] {
        let start = usize::try_from(cookie)
            .ok()
            .and_then(|c| self.starts.get(c).copied())
            .unwrap_or(self.bytes.len());
        &self.bytes[start..]
    }
}

/// Where a store keeps the WASI context and the run's listing.
pub(super) type Parts<T> = fn(&mut T) -> (&mut WasiP1Ctx, &mut Listings);

/// Shadows `fd_readdir` of `linker`'s WASI preview 1 (added before).
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    parts: Parts<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_readdir",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              buf: i32,
              buf_len: i32,
              cookie: i64,
              bufused: i32| {
            let fuel = caller.as_context_mut().hostcall_fuel();
            let read = Read {
                fd,
                buf,
                buf_len,
                cookie,
                bufused,
            };
            with_guest_memory(&mut caller, |state, mut memory| {
                let (wasi, listings) = parts(state);
                wasi.set_hostcall_fuel(fuel);
                readdir(wasi, listings, &mut memory, read)
            })
        },
    )?;
    Ok(())
}

/// The arguments of one `fd_readdir`.
#[derive(Clone, Copy)]
struct Read {
    fd: i32,
    buf: i32,
    buf_len: i32,
    cookie: i64,
    bufused: i32,
}

fn readdir(
    wasi: &mut WasiP1Ctx,
    listings: &mut Listings,
    memory: &mut GuestMemory<'_>,
    read: Read,
) -> wasmtime::Result<i32> {
    let original = |wasi: &mut WasiP1Ctx, memory: &mut GuestMemory<'_>| {
        in_tokio(p1::fd_readdir(
            wasi,
            memory,
            read.fd,
            read.buf,
            read.buf_len,
            read.cookie,
            read.bufused,
        ))
    };
    // Anything but a directory we can stat (a bad descriptor, a file) gets wasmtime-wasi's
    // own answer, errors included.
    let Some(dir) = dir_id(wasi, read.fd) else {
        listings.last = None;
        return original(wasi, memory);
    };
    let fresh = match &listings.last {
        Some(last) => read.cookie == 0 || last.fd != read.fd || last.dir != dir,
        None => true,
    };
    if fresh {
        listings.last = None;
        let known_large = listings.too_large == Some((read.fd, dir));
        if known_large && read.cookie != 0 {
            return original(wasi, memory);
        }
        // A folder known to be large is read at the bound at once: one listing per call.
        let first = if known_large {
            listings.max_bytes
        } else {
            FIRST_BUFFER
        };
        match list(wasi, listings, read.fd, dir, first)? {
            Listed::Whole(listing) => {
                listings.too_large = None;
                listings.last = Some(listing);
            }
            Listed::Prefix(prefix) => {
                listings.too_large = Some((read.fd, dir));
                // A stream's first chunk is the prefix of its listing: served from the
                // bytes just read rather than by listing the folder once more.
                if read.cookie == 0 && read.buf_len as u32 as usize <= prefix.len() {
                    return serve(memory, read, &prefix);
                }
                return original(wasi, memory);
            }
            Listed::Failed => return original(wasi, memory),
        }
    }
    match &listings.last {
        Some(listing) => serve(memory, read, listing.after_cookie(read.cookie as u64)),
        None => original(wasi, memory),
    }
}

/// Writes as much of `bytes` as the guest's buffer holds, and how much that was.
fn serve(memory: &mut GuestMemory<'_>, read: Read, bytes: &[u8]) -> wasmtime::Result<i32> {
    let len = bytes.len().min(read.buf_len as u32 as usize);
    let at = GuestPtr::<u8>::new(read.buf as u32);
    memory.copy_from_slice(&bytes[..len], at.as_array(len as u32))?;
    memory.write(GuestPtr::<u32>::new(read.bufused as u32), len as u32)?;
    Ok(SUCCESS)
}

/// The directory `fd` names, or `None` when it names no directory.
fn dir_id(wasi: &mut WasiP1Ctx, fd: i32) -> Option<DirId> {
    let mut scratch = [0u8; 64];
    let mut memory = GuestMemory::Unshared(&mut scratch);
    let errno = in_tokio(p1::fd_filestat_get(wasi, &mut memory, fd, 0)).ok()?;
    if errno != SUCCESS {
        return None;
    }
    let stat = memory.read(GuestPtr::<types::Filestat>::new(0)).ok()?;
    (stat.filetype == types::Filetype::Directory).then_some(DirId {
        dev: stat.dev,
        ino: stat.ino,
    })
}

/// Lists `fd` from cookie 0 with wasmtime-wasi's `fd_readdir` into a host buffer of
/// `first` bytes, and once more at the bound (`listings.max_bytes`) if that was too small:
/// at most two listings.
fn list(
    wasi: &mut WasiP1Ctx,
    listings: &mut Listings,
    fd: i32,
    dir: DirId,
    first: usize,
) -> wasmtime::Result<Listed> {
    let mut size = first.min(listings.max_bytes);
    loop {
        let mut host = vec![0u8; LISTING_AT as usize + size];
        let mut memory = GuestMemory::Unshared(&mut host);
        #[cfg(test)]
        {
            listings.scans += 1;
        }
        let errno = in_tokio(p1::fd_readdir(
            wasi,
            &mut memory,
            fd,
            LISTING_AT as i32,
            size as i32,
            0,
            USED_AT as i32,
        ))?;
        if errno != SUCCESS {
            return Ok(Listed::Failed);
        }
        let used = memory.read(GuestPtr::<u32>::new(USED_AT))? as usize;
        host.truncate(LISTING_AT as usize + used);
        let bytes = host.split_off(LISTING_AT as usize);
        if used < size {
            return Ok(match entry_starts(&bytes) {
                Some(starts) => Listed::Whole(Listing {
                    fd,
                    dir,
                    bytes,
                    starts,
                }),
                None => Listed::Failed,
            });
        }
        // A full buffer may have cut the last entry.
        if size >= listings.max_bytes {
            return Ok(Listed::Prefix(bytes));
        }
        size = listings.max_bytes;
    }
}

/// Where each dirent of `bytes` starts; `None` if they do not fill it exactly.
fn entry_starts(bytes: &[u8]) -> Option<Vec<usize>> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        let namlen = bytes.get(at + 16..at + 20)?;
        let namlen = u32::from_le_bytes(namlen.try_into().ok()?) as usize;
        at = at.checked_add(DIRENT_BYTES + namlen)?;
    }
    (at == bytes.len()).then_some(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirent(name: &str, next: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; DIRENT_BYTES];
        bytes[0..8].copy_from_slice(&next.to_le_bytes());
        bytes[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes
    }

    #[test]
    fn a_cookie_skips_that_many_entries() {
        let bytes: Vec<u8> = [dirent(".", 1), dirent("..", 2), dirent("abc", 3)].concat();
        let starts = entry_starts(&bytes).unwrap();
        assert_eq!(starts, [0, 25, 51]);
        let listing = Listing {
            fd: 3,
            dir: DirId { dev: 1, ino: 2 },
            bytes: bytes.clone(),
            starts,
        };
        assert_eq!(listing.after_cookie(0), &bytes[..]);
        assert_eq!(listing.after_cookie(2), &bytes[51..]);
        assert!(listing.after_cookie(3).is_empty());
        assert!(listing.after_cookie(u64::MAX).is_empty());
    }

    /// A context whose descriptor 3 is `dir`.
    fn context(dir: &std::path::Path) -> WasiP1Ctx {
        wasmtime_wasi::WasiCtxBuilder::new()
            .preopened_dir(dir, "/d", wasmtime_wasi::FsPerms::ReadWrite)
            .unwrap()
            .build_p1()
    }

    /// What one `fd_readdir` of fd 3 writes, by wasmtime-wasi itself or through the
    /// listing: (errno, the bytes written into a buffer of `buf_len`).
    fn chunk(
        wasi: &mut WasiP1Ctx,
        listings: Option<&mut Listings>,
        buf_len: usize,
        cookie: i64,
    ) -> (i32, Vec<u8>) {
        let mut host = vec![0xAAu8; 8 + buf_len];
        let mut memory = GuestMemory::Unshared(&mut host);
        let read = Read {
            fd: 3,
            buf: 8,
            buf_len: buf_len as i32,
            cookie,
            bufused: 0,
        };
        let errno = match listings {
            Some(listings) => readdir(wasi, listings, &mut memory, read).unwrap(),
            None => in_tokio(p1::fd_readdir(
                wasi,
                &mut memory,
                3,
                8,
                buf_len as i32,
                cookie,
                0,
            ))
            .unwrap(),
        };
        let used = u32::from_le_bytes(host[0..4].try_into().unwrap()) as usize;
        (errno, host[8..8 + used.min(buf_len)].to_vec())
    }

    /// Every chunk, at every cookie and buffer size, is the one wasmtime-wasi writes.
    #[test]
    fn each_chunk_is_what_wasmtime_wasi_writes() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..60 {
            let name = format!("{i:02}{}", "x".repeat(i * 3));
            if i % 7 == 0 {
                std::fs::create_dir(dir.path().join(name)).unwrap();
            } else {
                std::fs::write(dir.path().join(name), b"").unwrap();
            }
        }
        let mut wasi = context(dir.path());
        let mut listings = Listings::default();
        for buf_len in [0, 1, 23, 24, 25, 100, 4096, 1 << 16] {
            for cookie in [0, 1, 2, 3, 10, 30, 61, 62, 63, 100, -1] {
                let ours = chunk(&mut wasi, Some(&mut listings), buf_len, cookie);
                let theirs = chunk(&mut wasi, None, buf_len, cookie);
                assert_eq!(ours, theirs, "buffer {buf_len}, cookie {cookie}");
            }
        }
        // Not a directory, or no descriptor: wasmtime-wasi's own errors.
        for fd in [0, 99] {
            let mut host = vec![0u8; 64];
            let mut memory = GuestMemory::Unshared(&mut host);
            let read = Read {
                fd,
                buf: 8,
                buf_len: 32,
                cookie: 0,
                bufused: 0,
            };
            let ours = readdir(&mut wasi, &mut listings, &mut memory, read).unwrap();
            let theirs = in_tokio(p1::fd_readdir(&mut wasi, &mut memory, fd, 8, 32, 0, 0)).unwrap();
            assert_eq!(ours, theirs);
            assert_ne!(ours, SUCCESS);
        }
    }

    /// A listing larger than the bound is not kept: each chunk is still wasmtime-wasi's; a
    /// stream's first chunk costs one listing here (two when the bound is above the first
    /// buffer) and is served from it; every later chunk goes to wasmtime-wasi (`scans` does
    /// not grow), one listing each, as without the shadow.
    #[test]
    fn a_listing_over_the_bound_costs_what_wasmtime_wasi_s_own_does() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..100 {
            std::fs::write(dir.path().join(format!("file-{i:03}")), b"").unwrap();
        }
        let mut wasi = context(dir.path());
        // 102 entries of 24 bytes and their names: about 3.3 KB.
        let mut listings = Listings {
            max_bytes: 2048,
            ..Listings::default()
        };
        for (buf_len, cookie, scans) in [(1024, 0, 1), (1024, 40, 1), (1024, 80, 1), (300, 0, 2)] {
            let ours = chunk(&mut wasi, Some(&mut listings), buf_len, cookie);
            let theirs = chunk(&mut wasi, None, buf_len, cookie);
            assert_eq!(ours, theirs, "buffer {buf_len}, cookie {cookie}");
            assert_eq!(listings.scans, scans, "buffer {buf_len}, cookie {cookie}");
            assert!(listings.last.is_none());
        }
        // A first chunk larger than the bound: wasmtime-wasi's own.
        let ours = chunk(&mut wasi, Some(&mut listings), 4096, 0);
        assert_eq!(ours, chunk(&mut wasi, None, 4096, 0));
        // Under a bound it fits: kept, and later chunks cost nothing.
        listings.max_bytes = 4096;
        chunk(&mut wasi, Some(&mut listings), 1024, 0);
        let scans = listings.scans;
        assert!(listings.last.is_some());
        chunk(&mut wasi, Some(&mut listings), 1024, 40);
        assert_eq!(listings.scans, scans);
    }

    /// A listing over the first buffer is read once more at the bound: two listings.
    #[test]
    fn a_listing_over_the_first_buffer_is_read_again_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        // 2,200 entries of 24 + 10 bytes: about 75 KB, over the first 64 KiB.
        for i in 0..2200 {
            std::fs::write(dir.path().join(format!("f-{i:08}")), b"").unwrap();
        }
        let mut wasi = context(dir.path());
        for (max_bytes, kept) in [(128 << 10, true), (70 << 10, false)] {
            let mut listings = Listings {
                max_bytes,
                ..Listings::default()
            };
            let ours = chunk(&mut wasi, Some(&mut listings), 4096, 0);
            assert_eq!(ours, chunk(&mut wasi, None, 4096, 0));
            assert_eq!(listings.scans, 2);
            assert_eq!(listings.last.is_some(), kept);
        }
    }

    #[test]
    fn a_cut_listing_is_not_kept() {
        let bytes = dirent("abc", 1);
        assert!(entry_starts(&bytes[..bytes.len() - 1]).is_none());
        assert!(entry_starts(&bytes[..10]).is_none());
    }
}
