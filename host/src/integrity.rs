//! Integrity of the read-only trees the guest sees (the runtime's stdlib, build
//! environments): a content manifest checked when a tree is made, and a cheap metadata
//! fingerprint checked before every reuse.
//!
//! The guest only ever gets these trees read-only, but wasmtime-wasi's permission checks
//! have had bypasses, so the host does not rely on that one layer: a tree whose fingerprint
//! changed is checked against its content manifest again, and recreated if that fails.
//!
//! A seal lies beside what it seals, in the cache, so it is tagged with the cache's seal
//! key, which the cache does not hold ([`SealKey`]): a seal without a valid tag is no seal,
//! and the content is checked again. Every entry must belong to the user: a file of another
//! user (left from a time the cache was open to others) could be changed after its check.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use wasm_build_packaging::cache::{self, SealKey, hex};

/// The content manifest of a tree of regular files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// sha256 over the lines `"{sha256} {size} {path}\n"` of every regular file, sorted by
    /// path (relative, `/`-separated). The recipe in `python-wasm/` computes the same.
    pub sha256: String,
    pub files: u64,
    pub size: u64,
}

/// Computes the content manifest of `root`. Anything but regular files and folders (a
/// symlink, a device) is an error: these trees hold nothing else when intact.
pub fn manifest(root: &Path) -> Result<Manifest> {
    let mut files = Vec::new();
    for (rel, path, meta) in walk(root, true)? {
        if meta.is_dir() {
            continue;
        }
        if !meta.file_type().is_file() {
            bail!("{} is not a regular file", path.display());
        }
        let (sha, len) = cache::sha256_file(&path)?;
        files.push(ManifestFile {
            path: rel,
            sha256: sha,
            size: len,
        });
    }
    Ok(Manifest::of(files))
}

/// One regular file of a [`Manifest`]: its path relative to the tree's root, `/`-separated.
pub(crate) struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    /// The manifest of a tree holding exactly `files` (as their writer saw them).
    pub(crate) fn of(files: Vec<ManifestFile>) -> Manifest {
        let size = files.iter().map(|file| file.size).sum();
        let mut lines: Vec<String> = files
            .into_iter()
            .map(|file| format!("{} {} {}\n", file.sha256, file.size, file.path))
            .collect();
        lines.sort_by(|a, b| line_path(a).as_bytes().cmp(line_path(b).as_bytes()));
        let mut hasher = Sha256::new();
        for line in &lines {
            hasher.update(line.as_bytes());
        }
        Manifest {
            sha256: hex(&hasher.finalize()),
            files: lines.len() as u64,
            size,
        }
    }
}

fn line_path(line: &str) -> &str {
    line.splitn(3, ' ').nth(2).unwrap_or("")
}

/// A hash of every entry's path, type, size, inode and change times, read with `lstat`.
/// Any write to the tree changes the ctime of what it touched, and ctime cannot be set
/// from user space, so an equal fingerprint means an untouched tree.
pub fn fingerprint(root: &Path) -> Result<String> {
    fingerprint_of(walk(root, true)?)
}

/// [`fingerprint`] of a tree whoever owns it: what changes when anything in it changes, for
/// keys of what is derived from a tree the host does not keep (`--python-home`), not for
/// trusting its content.
pub(crate) fn identity(root: &Path) -> Result<String> {
    fingerprint_of(walk(root, false)?)
}

fn fingerprint_of(entries: Vec<(String, PathBuf, fs::Metadata)>) -> Result<String> {
    let mut entries: Vec<String> = entries
        .into_iter()
        .map(|(rel, _, meta)| {
            format!(
                "{rel}\0{:o}\0{}\0{}\0{}\0{}\0{}\0{}\n",
                meta.mode(),
                meta.len(),
                meta.ino(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec()
            )
        })
        .collect();
    entries.sort();
    let mut hasher = Sha256::new();
    for entry in &entries {
        hasher.update(entry.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// The [`fingerprint`] of a single regular file of the user's (its metadata, not its
/// contents).
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let meta = fs::symlink_metadata(path)
        .with_context(|| format!("reading metadata of {}", path.display()))?;
    fingerprint_of_file(path, &meta)
}

/// [`file_fingerprint`] from metadata already read (`fstat` of a file opened without
/// following links: the fingerprint of exactly the file read).
pub(crate) fn fingerprint_of_file(path: &Path, meta: &fs::Metadata) -> Result<String> {
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    ensure_ours(path, meta)?;
    Ok(format!(
        "{:o} {} {} {} {} {} {} {}",
        meta.mode(),
        meta.len(),
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

/// Refuses an entry of another user.
fn ensure_ours(path: &Path, meta: &fs::Metadata) -> Result<()> {
    anyhow::ensure!(
        cache::is_ours(meta),
        "{} belongs to uid {}, not to this user",
        path.display(),
        meta.uid()
    );
    Ok(())
}

/// Whether `path` is a regular file of the user's (not a link): only then may its content
/// be checked and trusted.
pub(crate) fn is_own_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && cache::is_ours(&meta))
}

/// A cache file whose content was checked once (by sha256) and whose metadata fingerprint
/// was recorded then, tagged with the seal key: while the fingerprint matches a seal with a
/// valid tag, the content is the one checked, and the costly hash is skipped.
pub struct SealedFile<'a> {
    pub path: &'a Path,
    pub seal: PathBuf,
    key: &'a SealKey,
}

impl<'a> SealedFile<'a> {
    /// The seal for `path`: `path` with `.seal` appended.
    pub fn beside(path: &'a Path, key: &'a SealKey) -> SealedFile<'a> {
        let mut seal = path.as_os_str().to_owned();
        seal.push(".seal");
        SealedFile {
            path,
            seal: PathBuf::from(seal),
            key,
        }
    }

    /// Whether the file is unchanged since [`Self::seal_now`] (and the seal is the host's).
    pub fn is_sealed(&self) -> bool {
        file_fingerprint(self.path).is_ok_and(|current| self.holds(&current))
    }

    /// Whether the seal (the host's) records `fingerprint`: the file read with that
    /// fingerprint is the one whose content was checked.
    pub(crate) fn holds(&self, fingerprint: &str) -> bool {
        cache::read_tagged(&self.seal, self.key, &self.label())
            .is_some_and(|seal| seal == fingerprint)
    }

    /// Records the file's current fingerprint; call right after checking its content.
    pub fn seal_now(&self) -> Result<()> {
        self.seal_as(&file_fingerprint(self.path)?)
    }

    /// Records `fingerprint`, that of the file as it was read and checked (if the path now
    /// names another file, or the file changed since, the seal holds for neither).
    pub(crate) fn seal_as(&self, fingerprint: &str) -> Result<()> {
        cache::write_tagged(&self.seal, self.key, &self.label(), fingerprint)
    }

    /// What the seal's tag is about: this path (a seal moved to another file is no seal).
    fn label(&self) -> String {
        format!("seal of file {}", self.path.display())
    }
}

/// Every entry under `root` (not `root` itself), without following symlinks; with
/// `own_only`, an entry of another user is an error.
fn walk(root: &Path, own_only: bool) -> Result<Vec<(String, PathBuf, fs::Metadata)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        let entries = fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("reading metadata of {}", path.display()))?;
            if own_only {
                ensure_ours(&path, &meta)?;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                bail!("{} has a name that is not UTF-8", path.display());
            };
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_dir() {
                stack.push((rel.clone(), path.clone()));
            }
            out.push((rel, path, meta));
        }
    }
    Ok(out)
}

/// A tree checked once by content, with its fingerprint kept beside it (outside the tree,
/// where no guest can reach), tagged with the seal key.
pub struct SealedTree<'a> {
    pub root: &'a Path,
    /// Where the fingerprint is kept.
    pub seal: PathBuf,
    /// The content manifest the tree must have (from something the cache does not hold,
    /// or from a record tagged with the seal key).
    pub expected_sha256: &'a str,
    pub key: &'a SealKey,
}

/// What [`SealedTree::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeState {
    /// Unchanged since sealed (or re-checked by content and resealed).
    Intact,
    /// The content differs from the manifest: the tree must be recreated.
    Damaged(String),
    /// Not there.
    Missing,
}

impl SealedTree<'_> {
    /// Fast path: the fingerprint matches the seal. Slow path: the content manifest matches,
    /// and the seal is renewed (after a copy or restore of the cache, say).
    pub fn check(&self) -> Result<TreeState> {
        if !self.root.is_dir() {
            return Ok(TreeState::Missing);
        }
        // A tree with an entry of another user, or one that cannot be walked, is made again.
        let current = match fingerprint(self.root) {
            Ok(current) => current,
            Err(e) => return Ok(TreeState::Damaged(format!("{e:#}"))),
        };
        if cache::read_tagged(&self.seal, self.key, &self.label()).is_some_and(|s| s == current) {
            return Ok(TreeState::Intact);
        }
        let found = match manifest(self.root) {
            Ok(found) => found.sha256,
            Err(e) => return Ok(TreeState::Damaged(format!("{e:#}"))),
        };
        if found != self.expected_sha256 {
            return Ok(TreeState::Damaged(format!(
                "content manifest is {found}, expected {}",
                self.expected_sha256
            )));
        }
        self.seal_now()?;
        Ok(TreeState::Intact)
    }

    /// Records the tree's current fingerprint as the trusted one.
    pub fn seal_now(&self) -> Result<()> {
        let current = fingerprint(self.root)?;
        cache::write_tagged(&self.seal, self.key, &self.label(), &current)
    }

    /// What the seal's tag is about: this tree.
    fn label(&self) -> String {
        format!("seal of tree {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("lib/pkg")).unwrap();
        fs::write(dir.path().join("lib/pkg/a.py"), "a = 1\n").unwrap();
        fs::write(dir.path().join("lib/b.py"), "b = 2\n").unwrap();
        dir
    }

    #[test]
    fn manifest_matches_the_recipe_format() {
        let dir = tree();
        let m = manifest(dir.path()).unwrap();
        let a = cache::sha256_bytes(b"a = 1\n");
        let b = cache::sha256_bytes(b"b = 2\n");
        let expected =
            cache::sha256_bytes(format!("{b} 6 lib/b.py\n{a} 6 lib/pkg/a.py\n").as_bytes());
        assert_eq!(m.sha256, expected);
        assert_eq!((m.files, m.size), (2, 12));
    }

    #[test]
    fn manifest_refuses_symlinks() {
        let dir = tree();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("lib/link")).unwrap();
        assert!(manifest(dir.path()).is_err());
    }

    fn key() -> SealKey {
        SealKey::ephemeral().unwrap()
    }

    #[test]
    fn sealed_file_detects_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("module");
        fs::write(&path, "abc").unwrap();
        let key = key();
        let sealed = SealedFile::beside(&path, &key);
        assert!(!sealed.is_sealed());
        sealed.seal_now().unwrap();
        assert!(sealed.is_sealed());
        // Same size, same bytes even: a rewrite changes the change time.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, "abc").unwrap();
        assert!(!sealed.is_sealed());
    }

    /// Whoever can write the cache can write a seal; without the key it is no seal.
    #[test]
    fn a_seal_without_the_key_is_no_seal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("module");
        fs::write(&path, "abc").unwrap();
        let key = key();
        let sealed = SealedFile::beside(&path, &key);
        let current = file_fingerprint(&path).unwrap();
        // The fingerprint alone (the seal of old), and one tagged with another key.
        fs::write(&sealed.seal, &current).unwrap();
        assert!(!sealed.is_sealed());
        cache::write_tagged(
            &sealed.seal,
            &SealKey::ephemeral().unwrap(),
            &sealed.label(),
            &current,
        )
        .unwrap();
        assert!(!sealed.is_sealed());
        // A valid seal of another file, moved here.
        let other = dir.path().join("other");
        fs::write(&other, "abc").unwrap();
        let other_seal = SealedFile::beside(&other, &key);
        other_seal.seal_now().unwrap();
        fs::rename(&other_seal.seal, &sealed.seal).unwrap();
        assert!(!sealed.is_sealed());
        sealed.seal_now().unwrap();
        assert!(sealed.is_sealed());

        // A tree's seal, likewise.
        let tree = tree();
        let expected = manifest(tree.path()).unwrap().sha256;
        let sealed = SealedTree {
            root: tree.path(),
            seal: dir.path().join("tree.seal"),
            expected_sha256: &expected,
            key: &key,
        };
        sealed.seal_now().unwrap();
        fs::write(tree.path().join("lib/b.py"), "b = 3\n").unwrap();
        let forged = fingerprint(tree.path()).unwrap();
        fs::write(&sealed.seal, &forged).unwrap();
        assert!(matches!(sealed.check().unwrap(), TreeState::Damaged(_)));
    }

    #[test]
    fn entries_of_other_users_are_not_trusted() {
        // Only root can give a file away.
        if cache::euid() != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("module");
        fs::write(&path, "abc").unwrap();
        let key = key();
        let sealed = SealedFile::beside(&path, &key);
        sealed.seal_now().unwrap();
        assert!(sealed.is_sealed() && is_own_file(&path));
        std::os::unix::fs::lchown(&path, Some(65534), None).unwrap();
        assert!(!sealed.is_sealed() && !is_own_file(&path));
        assert!(sealed.seal_now().is_err());

        let tree = tree();
        let expected = manifest(tree.path()).unwrap().sha256;
        let sealed = SealedTree {
            root: tree.path(),
            seal: dir.path().join("tree.seal"),
            expected_sha256: &expected,
            key: &key,
        };
        assert_eq!(sealed.check().unwrap(), TreeState::Intact);
        std::os::unix::fs::lchown(tree.path().join("lib/b.py"), Some(65534), None).unwrap();
        match sealed.check().unwrap() {
            TreeState::Damaged(why) => assert!(why.contains("belongs to uid 65534"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sealed_tree_detects_changes() {
        let dir = tree();
        let seal_dir = tempfile::tempdir().unwrap();
        let expected = manifest(dir.path()).unwrap().sha256;
        let key = key();
        let sealed = SealedTree {
            root: dir.path(),
            seal: seal_dir.path().join("seal"),
            expected_sha256: &expected,
            key: &key,
        };
        // No seal yet: checked by content, then sealed.
        assert_eq!(sealed.check().unwrap(), TreeState::Intact);
        assert_eq!(sealed.check().unwrap(), TreeState::Intact);
        // Same size, different bytes.
        fs::write(dir.path().join("lib/b.py"), "b = 3\n").unwrap();
        assert!(matches!(sealed.check().unwrap(), TreeState::Damaged(_)));
        fs::write(dir.path().join("lib/b.py"), "b = 2\n").unwrap();
        assert_eq!(sealed.check().unwrap(), TreeState::Intact);
        // An added file.
        fs::write(dir.path().join("lib/evil.pth"), "import os\n").unwrap();
        assert!(matches!(sealed.check().unwrap(), TreeState::Damaged(_)));
    }
}
