//! The on-disk cache shared by concurrent wasm-build processes.
//!
//! Layout (one folder per concern, each versioned so a format change never reads old data):
//!
//! ```text
//! <root>/runtimes-v1/<id>-<sha256>/   unpacked or downloaded interpreters
//! <root>/compiled-v1/                 precompiled modules (wasmtime artifacts)
//! <root>/index-v1/                    index pages with their HTTP caching headers
//! <root>/wheels-v1/                   downloaded files, content-addressed by sha256
//! <root>/envs-v1/<key>/               unpacked build environments with bytecode
//! <root>/sdist-wheels-v1/<sha256>/     wheels of build requirements built from the sdist
//!                                     with that sha256, each with a tagged record
//! <root>/bytecode-v1/<xx>/<key>       bytecode of one in-tree backend module, tagged
//! ```
//!
//! Every entry is written under a temporary name in the same folder and renamed into place,
//! so a reader sees either nothing or a complete entry. Entries that several processes may
//! create at once are additionally guarded by a lock file.
//!
//! Only the user may be able to write the cache (checked whenever it and its buckets are
//! opened, see [`folders`]), and what stands for an entry's content is tagged with a key
//! the cache does not hold (see [`seal_key`]).

mod folders;
mod seal_key;

pub use folders::{Place, UnsafeFolder, euid, is_ours};
pub use seal_key::{SEAL_KEY_FILE, SealKey, SealKeyError, default_seal_key_file};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable that overrides the cache location.
pub const CACHE_DIR_ENV: &str = "WASM_BUILD_CACHE_DIR";

/// The cache root and how it was chosen.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// Where the seal key is kept; `None` for the default place, found on first use.
    key_file: Option<PathBuf>,
    /// Read (or made) on first use: commands that never check an entry never touch it.
    key: OnceLock<SealKey>,
    /// Holds a throw-away cache alive for `--no-cache`, locked so that `cache prune` of
    /// another process leaves it alone (see [`crate::tempdirs`]).
    _temporary: Option<crate::tempdirs::HeldDir>,
}

impl Cache {
    /// Opens the user's cache: `$WASM_BUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/wasm-build`,
    /// else `~/.cache/wasm-build`, with the user's seal key ([`default_seal_key_file`]).
    pub fn from_env() -> Result<Self> {
        Self::at(default_root()?)
    }

    /// Opens (and creates) a cache at `root`, with the user's seal key. Refuses a cache
    /// another user could write (see [`UnsafeFolder`]).
    pub fn at(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open(root, None)
    }

    /// [`Cache::at`] with the seal key kept in `key_file` (made if missing).
    pub fn with_key_file(root: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Result<Self> {
        Self::open(root, Some(key_file.into()))
    }

    fn open(root: impl Into<PathBuf>, key_file: Option<PathBuf>) -> Result<Self> {
        let root = std::path::absolute(root.into()).context("finding the cache folder")?;
        create_private_dir(&root)?;
        folders::check_own(&root, Place::Cache, true)?;
        folders::check_above(&root, Place::Cache)?;
        Ok(Self {
            root,
            key_file,
            key: OnceLock::new(),
            _temporary: None,
        })
    }

    /// A cache that lives only as long as this value (`--no-cache`), made 0700 by this
    /// process, with a seal key that lives only in this process.
    pub fn temporary() -> Result<Self> {
        let dir = crate::tempdirs::HeldDir::new(crate::tempdirs::TempKind::Cache)
            .context("creating a temporary cache folder")?;
        folders::check_own(dir.path(), Place::Cache, false)?;
        Ok(Self {
            root: dir.path().to_path_buf(),
            key_file: None,
            key: OnceLock::from(SealKey::ephemeral()?),
            _temporary: Some(dir),
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this cache disappears at the end of the process.
    pub fn is_temporary(&self) -> bool {
        self._temporary.is_some()
    }

    /// The key the cache's records are tagged with, read or made on first use.
    pub fn seal_key(&self) -> Result<&SealKey> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let file = match &self.key_file {
            Some(file) => file.clone(),
            None => default_seal_key_file()?,
        };
        let key = SealKey::load_or_create(&file)?;
        Ok(self.key.get_or_init(|| key))
    }

    /// The folder of one bucket, created on first use; refused if another user could write
    /// it.
    pub fn bucket(&self, bucket: Bucket) -> Result<PathBuf> {
        let dir = self.root.join(bucket.dir_name());
        create_private_dir(&dir)?;
        folders::check_own(&dir, Place::Cache, false)?;
        Ok(dir)
    }
}

/// The cache's top-level folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Runtimes,
    Compiled,
    Index,
    Wheels,
    Envs,
    /// Memory images of prepared backends (see the host's `prepared` module).
    Prepared,
    /// Pure wheels of build requirements built from their sdist, by the sdist's sha256.
    SdistWheels,
    /// Bytecode of in-tree backends (see the host's `backend_bytecode` module).
    Bytecode,
}

impl Bucket {
    /// All buckets, for `cache clean`.
    pub const ALL: [Bucket; 8] = [
        Bucket::Runtimes,
        Bucket::Compiled,
        Bucket::Index,
        Bucket::Wheels,
        Bucket::Envs,
        Bucket::Prepared,
        Bucket::SdistWheels,
        Bucket::Bytecode,
    ];

    /// The bucket's folder name under the cache root.
    pub fn dir_name(self) -> &'static str {
        match self {
            Bucket::Runtimes => "runtimes-v1",
            Bucket::Compiled => "compiled-v1",
            Bucket::Index => "index-v1",
            Bucket::Wheels => "wheels-v1",
            Bucket::Envs => "envs-v1",
            Bucket::Prepared => "prepared-v1",
            Bucket::SdistWheels => "sdist-wheels-v1",
            Bucket::Bytecode => "bytecode-v1",
        }
    }
}

fn default_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("wasm-build"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).context(
        "cannot find the cache folder: set WASM_BUILD_CACHE_DIR, XDG_CACHE_HOME or HOME",
    )?;
    Ok(PathBuf::from(home).join(".cache").join("wasm-build"))
}

/// Creates `dir` (and parents) readable by the owner only: the cache holds what the host
/// later trusts, so no other local user may write it.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating cache folder {}", dir.display()))
}

/// Writes `bytes` to `dest` atomically: a temporary file in the same folder, synced, then
/// renamed over `dest`.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let parent = parent_of(dest)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("moving a temporary file to {}", dest.display()))?;
    Ok(())
}

/// Writes a record that stands for content: `value` (one line) and its tag under `key` for
/// `label` (what the record is about: the entry's name and role), atomically.
pub fn write_tagged(dest: &Path, key: &SealKey, label: &str, value: &str) -> Result<()> {
    write_atomic(
        dest,
        format!("{value}\n{}\n", key.tag(label, value)).as_bytes(),
    )
}

/// The value of a record [`write_tagged`] wrote with this key and label; `None` when it is
/// missing, malformed or its tag does not verify (whoever wrote it did not have the key).
pub fn read_tagged(path: &Path, key: &SealKey, label: &str) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    let (value, tag) = text.strip_suffix('\n')?.split_once('\n')?;
    key.verify(label, value, tag).then(|| value.to_string())
}

/// Writes `payload` after a header that stands for it (its sha256, and that value's tag
/// under `key` for `label`), atomically: a record and its content in one file. Not synced
/// to disk (a build may write hundreds): an entry a crash cut short fails its check and
/// counts as missing.
pub fn write_tagged_bytes(dest: &Path, key: &SealKey, label: &str, payload: &[u8]) -> Result<()> {
    let sha256 = sha256_bytes(payload);
    let mut bytes = format!("{sha256}\n{}\n", key.tag(label, &sha256)).into_bytes();
    bytes.extend_from_slice(payload);
    let parent = parent_of(dest)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    tmp.write_all(&bytes)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("moving a temporary file to {}", dest.display()))?;
    Ok(())
}

/// The payload of a file [`write_tagged_bytes`] wrote with this key and label; `None` when
/// it is missing, longer than `max` bytes, malformed, or its header does not verify or does
/// not match the payload.
pub fn read_tagged_bytes(path: &Path, key: &SealKey, label: &str, max: u64) -> Option<Vec<u8>> {
    const HEADER: u64 = 512;
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(max + HEADER)
        .read_to_end(&mut bytes)
        .ok()?;
    let newline = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|at| from + at)
    };
    let first = newline(0)?;
    let second = newline(first + 1)?;
    let sha256 = std::str::from_utf8(&bytes[..first]).ok()?;
    let tag = std::str::from_utf8(&bytes[first + 1..second]).ok()?;
    let payload = &bytes[second + 1..];
    let intact = payload.len() as u64 <= max
        && key.verify(label, sha256, tag)
        && sha256_bytes(payload) == sha256;
    intact.then(|| payload.to_vec())
}

/// A temporary folder next to `dest` that [`publish_dir`] later renames into place.
pub fn staging_dir_for(dest: &Path) -> Result<tempfile::TempDir> {
    let parent = parent_of(dest)?;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))
}

/// Renames a fully written staging folder to `dest`. If another process got there first
/// (`dest` exists), its entry wins and the staging folder is removed.
pub fn publish_dir(staging: tempfile::TempDir, dest: &Path) -> Result<()> {
    let path = staging.keep();
    match fs::rename(&path, dest) {
        Ok(()) => Ok(()),
        Err(e) if dest.is_dir() => {
            // Lost a race against an identical entry; ours is redundant.
            let _ = fs::remove_dir_all(&path);
            let _ = e;
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&path);
            Err(e).with_context(|| format!("moving {} to {}", path.display(), dest.display()))
        }
    }
}

fn parent_of(path: &Path) -> Result<&Path> {
    path.parent()
        .with_context(|| format!("{} has no parent folder", path.display()))
}

/// An exclusive advisory lock on a lock file, released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub fn acquire(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Self { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Lower-case hex of the sha256 of everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Lower-case hex of the sha256 of a file's contents, with its size.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    sha256_reader(file).with_context(|| format!("reading {}", path.display()))
}

/// Lower-case hex of the sha256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("entry");
        write_atomic(&dest, b"first").unwrap();
        write_atomic(&dest, b"second").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"second");
        // No temporary files are left next to the entry.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn publish_dir_keeps_the_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("env");
        let a = staging_dir_for(&dest).unwrap();
        fs::write(a.path().join("marker"), "a").unwrap();
        let b = staging_dir_for(&dest).unwrap();
        fs::write(b.path().join("marker"), "b").unwrap();
        publish_dir(a, &dest).unwrap();
        publish_dir(b, &dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("marker")).unwrap(), "a");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn tagged_bytes_are_read_back_only_whole_and_with_the_writers_key_and_label() {
        let dir = tempfile::tempdir().unwrap();
        let key = SealKey::ephemeral().unwrap();
        let entry = dir.path().join("entry");
        let payload = b"\x00binary\npayload\n";
        write_tagged_bytes(&entry, &key, "label", payload).unwrap();
        assert_eq!(
            read_tagged_bytes(&entry, &key, "label", 64).unwrap(),
            payload
        );
        assert_eq!(read_tagged_bytes(&entry, &key, "other label", 64), None);
        assert_eq!(read_tagged_bytes(&entry, &key, "label", 4), None);
        let other = SealKey::ephemeral().unwrap();
        assert_eq!(read_tagged_bytes(&entry, &other, "label", 64), None);
        // The header stays, the payload changes: not the content the tag stands for.
        let mut bytes = fs::read(&entry).unwrap();
        *bytes.last_mut().unwrap() = b'!';
        fs::write(&entry, &bytes).unwrap();
        assert_eq!(read_tagged_bytes(&entry, &key, "label", 64), None);
        // Someone without the key writes a header of their own.
        let forged = format!("{}\n{}\nevil", sha256_bytes(b"evil"), "0".repeat(64));
        fs::write(&entry, forged).unwrap();
        assert_eq!(read_tagged_bytes(&entry, &key, "label", 64), None);
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
