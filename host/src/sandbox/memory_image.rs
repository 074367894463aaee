//! Memory images: the linear memory of an instance after a command ran in it and returned
//! without finalizing the interpreter (`wasm_build_prepare`), kept as the pages that differ
//! from a fresh instance of the same module, and written into later fresh instances before
//! they start (`wasm_build_start`). See `crate::prepared` for what the host keeps this way.
//!
//! Only memory is kept: the module's one mutable global, the shadow stack pointer, is back
//! at its initial value once an export returns, and the table never changes. Whatever an
//! image holds, the guest that runs from it is as confined as any other: it is data in the
//! guest's own memory. What it decides is what that guest computes, so the host keeps
//! images like build environments: written by itself, checked by sha256 and sealed.
//!
//! An image is read through one open descriptor, and known by the metadata fingerprint of
//! that file as read ([`ImageFile::identity`], the fingerprint a seal records): whoever
//! reads it again (a child process, or this one for a lean image) checks that it reads the
//! same unchanged file instead of hashing ~12 MB again.

use anyhow::{Context, Result, bail, ensure};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use wasm_build_packaging::cache;
use wasmtime::{AsContextMut, Instance};

const MAGIC: &[u8; 16] = b"wasm-build-mem-1";
/// The unit of comparison and copy: the host's page.
const PAGE: usize = 4096;
const WASM_PAGE: u64 = 64 << 10;
/// Beyond this a 32-bit memory cannot go.
const MAX_MEMORY: u64 = 4 << 30;

/// A decoded image, ready to be written into instances.
#[derive(Clone)]
pub struct MemoryImage {
    /// Where it was read from (a child process reads it again from there).
    pub path: PathBuf,
    /// The fingerprint of the file as read ([`ImageFile::identity`]): a reader of the path
    /// checks that it reads the same, unchanged file.
    pub identity: String,
    inner: Arc<Decoded>,
}

/// An image file's bytes, read through one descriptor, and the fingerprint of that file.
pub struct ImageFile {
    path: PathBuf,
    /// `integrity::fingerprint_of_file` of the open file (not of whatever the path names
    /// later): inode, size and change times, so any write or replacement changes it.
    pub identity: String,
    bytes: Vec<u8>,
}

impl ImageFile {
    /// Reads `path`, which must be a regular file of the user's (a link is refused).
    pub fn read(path: &Path) -> Result<Self> {
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading metadata of {}", path.display()))?;
        let identity = crate::integrity::fingerprint_of_file(path, &meta)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            identity,
            bytes,
        })
    }

    /// Reads `path`, which must still be the file read with `identity`, unchanged.
    fn read_same(path: &Path, identity: &str) -> Result<Self> {
        let file = Self::read(path)?;
        ensure!(
            file.identity == identity,
            "the memory image {} changed after the host checked it",
            path.display()
        );
        Ok(file)
    }

    /// The sha256 of the bytes read, for a file whose content must be checked.
    pub fn sha256(&self) -> String {
        cache::sha256_bytes(&self.bytes)
    }

    /// The decoded image; with `keep`, holding the bytes (else they are read again, from
    /// the same unchanged file, when an instance of this process needs them).
    pub fn decode(self, keep: bool) -> Result<MemoryImage> {
        let mut inner = decode(self.bytes)
            .with_context(|| format!("reading the memory image {}", self.path.display()))?;
        if !keep {
            inner.bytes.take();
        }
        Ok(MemoryImage {
            path: self.path,
            identity: self.identity,
            inner: Arc::new(inner),
        })
    }
}

struct Decoded {
    /// Size of the memory the image was taken from, in bytes.
    memory_len: u64,
    /// `(first page, page count)` of each run of changed pages, in order.
    runs: Vec<(u32, u32)>,
    /// The file; the runs' contents follow one another from `data_start`. Not kept by
    /// [`ImageFile::decode`] without `keep` until an instance is given the image in this process.
    bytes: OnceLock<Vec<u8>>,
    data_start: usize,
}

impl MemoryImage {
    /// Reads and checks the structure of an image file.
    pub fn load(path: &Path) -> Result<Self> {
        ImageFile::read(path)?.decode(true)
    }

    /// Reads `path` again, which must still be the file this image was read from, unchanged.
    pub(crate) fn load_same(path: &Path, identity: &str) -> Result<Self> {
        ImageFile::read_same(path, identity)?.decode(true)
    }

    /// The file's bytes: kept, or read again from the unchanged file (decoded already).
    fn bytes(&self) -> Result<&[u8]> {
        if let Some(bytes) = self.inner.bytes.get() {
            return Ok(bytes);
        }
        let again = ImageFile::read_same(&self.path, &self.identity)?;
        Ok(self.inner.bytes.get_or_init(|| again.bytes))
    }

    /// Writes the image into the memory of a fresh instance of the module it was taken
    /// from, growing it to the image's size (through the store's memory limit).
    pub(super) fn restore(&self, mut store: impl AsContextMut, instance: &Instance) -> Result<()> {
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the module exports no memory")?;
        let current = memory.data_size(&store) as u64;
        let wanted = self.inner.memory_len;
        ensure!(
            wanted >= current,
            "the memory image is smaller ({wanted} bytes) than a fresh instance's memory ({current})"
        );
        if wanted > current {
            memory
                .grow(&mut store, (wanted - current) / WASM_PAGE)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("growing the memory to the image's size")?;
        }
        let bytes = self.bytes()?;
        let target = memory.data_mut(&mut store);
        let mut offset = self.inner.data_start;
        for &(page, pages) in &self.inner.runs {
            let (start, len) = (page as usize * PAGE, pages as usize * PAGE);
            target[start..start + len].copy_from_slice(&bytes[offset..offset + len]);
            offset += len;
        }
        Ok(())
    }
}

/// Encodes the pages of `memory` that differ from `fresh` (the memory of a fresh instance of
/// the same module; pages past its end count as zero).
pub(super) fn encode(memory: &[u8], fresh: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        memory.len() >= fresh.len()
            && memory.len().is_multiple_of(PAGE)
            && memory.len() as u64 <= MAX_MEMORY,
        "unexpected memory sizes {} and {}",
        memory.len(),
        fresh.len()
    );
    let zero = [0u8; PAGE];
    let changed = |page: usize| {
        let range = page * PAGE..(page + 1) * PAGE;
        let before = fresh.get(range.clone()).unwrap_or(&zero);
        memory[range] != *before
    };
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for page in 0..memory.len() / PAGE {
        if !changed(page) {
            continue;
        }
        match runs.last_mut() {
            Some((first, count)) if (*first + *count) as usize == page => *count += 1,
            _ => runs.push((page as u32, 1)),
        }
    }
    let pages: usize = runs.iter().map(|&(_, n)| n as usize).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + runs.len() * 8 + pages * PAGE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(memory.len() as u64).to_le_bytes());
    out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    for &(first, count) in &runs {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
    for &(first, count) in &runs {
        let start = first as usize * PAGE;
        out.extend_from_slice(&memory[start..start + count as usize * PAGE]);
    }
    Ok(out)
}

fn decode(bytes: Vec<u8>) -> Result<Decoded> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let slice = bytes.get(at..at + n).context("the image is truncated")?;
        at += n;
        Ok(slice)
    };
    ensure!(take(MAGIC.len())? == MAGIC, "not a wasm-build memory image");
    let memory_len = u64::from_le_bytes(take(8)?.try_into()?);
    ensure!(
        memory_len.is_multiple_of(WASM_PAGE) && memory_len <= MAX_MEMORY,
        "a memory of {memory_len} bytes is not a wasm memory"
    );
    let count = u32::from_le_bytes(take(4)?.try_into()?) as usize;
    let mut runs = Vec::with_capacity(count.min(1 << 20));
    let mut end = 0u64;
    for _ in 0..count {
        let first = u32::from_le_bytes(take(4)?.try_into()?);
        let pages = u32::from_le_bytes(take(4)?.try_into()?);
        let (start, stop) = (first as u64, first as u64 + pages as u64);
        ensure!(
            pages > 0 && start >= end && stop * PAGE as u64 <= memory_len,
            "the image's page runs overlap or leave the memory"
        );
        end = stop;
        runs.push((first, pages));
    }
    let header = at;
    let pages: u64 = runs.iter().map(|&(_, n)| n as u64).sum();
    if (bytes.len() - header) as u64 != pages * PAGE as u64 {
        bail!(
            "the image holds {} bytes of pages, its runs name {}",
            bytes.len() - header,
            pages * PAGE as u64
        );
    }
    Ok(Decoded {
        memory_len,
        runs,
        bytes: OnceLock::from(bytes),
        data_start: header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(fill: &[u8]) -> Vec<u8> {
        fill.iter().flat_map(|&b| [b; PAGE]).collect()
    }

    #[test]
    fn an_image_holds_exactly_the_changed_pages() {
        let fresh = pages(&[1, 2, 3, 0]);
        // pages 1 and 2 changed, 3 unchanged; the memory grew by 12 pages of which 2 are used
        let mut memory = pages(&[1, 9, 9, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 8]);
        memory[PAGE * 15 + 5] = 1;
        let bytes = encode(&memory, &fresh).unwrap();
        let image = decode(bytes).unwrap();
        assert_eq!(image.memory_len, memory.len() as u64);
        assert_eq!(image.runs, vec![(1, 2), (6, 1), (15, 1)]);
        let bytes = image.bytes.get().unwrap();
        assert_eq!(bytes.len() - image.data_start, 4 * PAGE);

        let mut rebuilt = fresh.clone();
        rebuilt.resize(memory.len(), 0);
        let mut offset = image.data_start;
        for &(page, count) in &image.runs {
            let (start, len) = (page as usize * PAGE, count as usize * PAGE);
            rebuilt[start..start + len].copy_from_slice(&bytes[offset..offset + len]);
            offset += len;
        }
        assert!(rebuilt == memory);
    }

    #[test]
    fn a_malformed_image_is_refused() {
        let memory = pages(&[0; 16]);
        let mut changed = memory.clone();
        changed[PAGE * 3] = 1;
        let good = encode(&changed, &memory).unwrap();
        assert!(decode(good.clone()).is_ok());
        assert!(
            decode(good[..good.len() - 1].to_vec()).is_err(),
            "truncated"
        );
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        assert!(decode(bad_magic).is_err());
        // a run past the end of the memory
        let mut past_end = good.clone();
        past_end[MAGIC.len() + 12..MAGIC.len() + 16].copy_from_slice(&100u32.to_le_bytes());
        assert!(decode(past_end).is_err());
        // a memory size that is no whole number of wasm pages
        let mut odd = good;
        odd[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&(PAGE as u64).to_le_bytes());
        assert!(decode(odd).is_err());
    }

    /// An image loaded without its bytes reads them again when an instance needs them, and
    /// only from the file it was read from, unchanged.
    #[test]
    fn a_lean_image_reads_its_bytes_again_only_if_unchanged() {
        let memory = pages(&[0; 16]);
        let mut changed = memory.clone();
        changed[PAGE * 3] = 1;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.image");
        std::fs::write(&path, encode(&changed, &memory).unwrap()).unwrap();
        let lean = ImageFile::read(&path).unwrap().decode(false).unwrap();
        assert!(lean.inner.bytes.get().is_none(), "no bytes kept");
        assert_eq!(lean.identity, MemoryImage::load(&path).unwrap().identity);
        assert_eq!(lean.bytes().unwrap(), std::fs::read(&path).unwrap());

        let other = ImageFile::read(&path).unwrap().decode(false).unwrap();
        let mut changed_again = changed.clone();
        changed_again[PAGE * 3] = 2;
        std::fs::write(&path, encode(&changed_again, &memory).unwrap()).unwrap();
        assert!(other.bytes().is_err(), "a changed file is refused");
        assert!(lean.bytes().is_ok(), "bytes once read are kept");

        // The same bytes in another file (moved over it) are another file.
        let moved = ImageFile::read(&path).unwrap().decode(false).unwrap();
        let copy = dir.path().join("copy.image");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::rename(&copy, &path).unwrap();
        assert!(moved.bytes().is_err(), "a replaced file is refused");
        assert!(ImageFile::read(&copy).is_err(), "gone");
        let link = dir.path().join("link.image");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(ImageFile::read(&link).is_err(), "a link is refused");
    }
}
