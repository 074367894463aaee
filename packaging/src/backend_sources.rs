//! The Python sources of an in-tree backend (`backend-path`), as the host finds them in a
//! staged tree before any guest has run in it: what the host compiles to bytecode once, so
//! that hook runs do not compile the backend's own modules again in every run.
//!
//! Each source is named by a key that binds its bytes to the path the guest imports it
//! from: `sha256(guest path + "\0" + bytes)`. The guest computes the same key from the file
//! it is about to import and takes bytecode only under that key, so bytecode is never used
//! for another file, another path, or a file the backend changed.
//!
//! The walk never follows a symlink: every folder is opened relative to its parent with
//! `O_NOFOLLOW` and every file is opened the same way and checked to be a regular file.
//! What lies behind a link is imported from source, as without bytecode.

use crate::archive::MAX_STAGE_DEPTH;
use crate::archive::fs::{lstat_at, open_dir_at, open_dir_below, open_dir_path, open_regular_file};
use rustix::fs::FileType;
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

/// At most this many `.py` files: far above the largest backend that builds itself
/// (setuptools: 338), and a bound on the host's work for a tree that is not a backend.
pub const MAX_SOURCES: usize = 2_000;
/// At most this many bytes of them together (setuptools: 3.4 MB).
pub const MAX_SOURCE_BYTES: u64 = 32 << 20;

/// One `.py` file of an in-tree backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSource {
    /// Where the guest imports it from, e.g. `/src/src/hatchling/build.py`.
    pub guest_path: String,
    /// `sha256(guest_path + "\0" + bytes)`, hex.
    pub key: String,
    pub size: u64,
}

/// Why a tree's backend sources are not collected.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("the backend-path folders hold more than {MAX_SOURCES} Python files")]
    TooMany,
    #[error("the backend-path folders hold more than {} MiB of Python files", MAX_SOURCE_BYTES >> 20)]
    TooLarge,
    #[error("reading the backend-path folders: {0}")]
    Io(#[from] io::Error),
}

/// The `.py` files below the `backend_path` folders (relative, `/`-separated, as the
/// project reader checked them) of the tree at `root`, which the guest sees at
/// `guest_root`; sorted by guest path, each once. A `backend-path` folder that is missing
/// or a symlink contributes nothing.
///
/// A file whose `__pycache__` holds a `.pyc` for the guest's interpreter (`pyc_tag`, e.g.
/// `cpython-313`; any tag when `None`) is left out: the import system would take that
/// `.pyc`, whatever its source says, and so must the guest.
pub fn collect(
    root: &Path,
    guest_root: &str,
    backend_path: &[String],
    pyc_tag: Option<&str>,
) -> Result<Vec<BackendSource>, SourcesError> {
    let root_fd = open_dir_path(root)?;
    let mut found = BTreeMap::new();
    let mut total = 0u64;
    for entry in backend_path {
        let components: Vec<&str> = entry.split('/').filter(|c| !c.is_empty()).collect();
        let dir = match open_dir_below(&root_fd, components.iter().copied()) {
            Ok(dir) => dir,
            // Missing, a symlink on the way, or not a folder: the guest finds nothing there
            // this walk could vouch for.
            Err(e)
                if matches!(
                    Errno::from_io_error(&e),
                    Some(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::XDEV)
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let base = guest_join(guest_root, entry);
        Walk {
            pyc_tag,
            found: &mut found,
            total: &mut total,
        }
        .folder(&dir, &base, 0)?;
    }
    Ok(found.into_values().collect())
}

fn guest_join(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    if rel.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

/// One walk of a `backend-path` folder, adding to what earlier ones found.
struct Walk<'a> {
    pyc_tag: Option<&'a str>,
    found: &'a mut BTreeMap<String, BackendSource>,
    total: &'a mut u64,
}

impl Walk<'_> {
    fn folder(&mut self, dir: &OwnedFd, guest_dir: &str, depth: usize) -> Result<(), SourcesError> {
        let names = listing(dir)?;
        let shipped = match names.iter().any(|n| n == "__pycache__") {
            true => self.shipped_bytecode(dir)?,
            false => Shipped::Stems(Vec::new()),
        };
        for name in names {
            let stat = match lstat_at(dir, &name) {
                Ok(stat) => stat,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let path = format!("{guest_dir}/{name}");
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory if depth < MAX_STAGE_DEPTH && name != "__pycache__" => {
                    let child = open_dir_at(dir, &name)?;
                    self.folder(&child, &path, depth + 1)?;
                }
                FileType::RegularFile if name.ends_with(".py") => {
                    let stem = &name[..name.len() - 3];
                    if self.found.contains_key(&path) || shipped.has(stem) {
                        continue;
                    }
                    self.add(dir, &name, path)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add(&mut self, dir: &OwnedFd, name: &str, path: String) -> Result<(), SourcesError> {
        if self.found.len() >= MAX_SOURCES {
            return Err(SourcesError::TooMany);
        }
        let (file, stat) = open_regular_file(dir, name)?;
        #[allow(clippy::unnecessary_cast)]
        let size = stat.st_size as u64;
        *self.total += size;
        if *self.total > MAX_SOURCE_BYTES {
            return Err(SourcesError::TooLarge);
        }
        let key = source_key(&path, file.take(size))?;
        self.found.insert(
            path.clone(),
            BackendSource {
                guest_path: path,
                key,
                size,
            },
        );
        Ok(())
    }

    /// The `.pyc` files for the guest's interpreter in `dir/__pycache__`.
    fn shipped_bytecode(&self, dir: &OwnedFd) -> Result<Shipped, SourcesError> {
        let kind = FileType::from_raw_mode(lstat_at(dir, "__pycache__")?.st_mode);
        if kind != FileType::Directory {
            // A link, which the guest follows and this walk does not, may lead to a `.pyc`
            // of any name; anything else holds nothing the import system reads.
            return Ok(match kind {
                FileType::Symlink => Shipped::Any,
                _ => Shipped::Stems(Vec::new()),
            });
        }
        let cache = match open_dir_at(dir, "__pycache__") {
            Ok(cache) => cache,
            // Replaced since: count it as a link.
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::LOOP | Errno::NOTDIR)) => {
                return Ok(Shipped::Any);
            }
            Err(e) => return Err(e.into()),
        };
        let stems = listing(&cache)?
            .into_iter()
            .filter_map(|name| {
                let rest = name.strip_suffix(".pyc")?;
                let (stem, tag) = rest.split_once('.')?;
                let tag = tag
                    .strip_suffix(".opt-1")
                    .or_else(|| tag.strip_suffix(".opt-2"))
                    .unwrap_or(tag);
                self.pyc_tag
                    .is_none_or(|wanted| wanted == tag)
                    .then(|| stem.to_string())
            })
            .collect();
        Ok(Shipped::Stems(stems))
    }
}

/// The `.pyc` files a folder's `__pycache__` ships for the guest's interpreter.
enum Shipped {
    /// Those of these module names.
    Stems(Vec<String>),
    /// Perhaps any (`__pycache__` is a link).
    Any,
}

impl Shipped {
    fn has(&self, stem: &str) -> bool {
        match self {
            Shipped::Stems(stems) => stems.iter().any(|s| s == stem),
            Shipped::Any => true,
        }
    }
}

/// The names in `dir` (UTF-8 ones; the guest imports no other), sorted.
fn listing(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// `sha256(guest_path + "\0" + bytes)`, hex: the key under which the guest looks for the
/// bytecode of the file it imports from `guest_path`.
pub fn source_key(guest_path: &str, mut bytes: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(guest_path.as_bytes());
    hasher.update([0u8]);
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = bytes.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(crate::cache::hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests;
