//! The scratch copy of a local source tree that the guest builds in.
//!
//! Backends write into their source folder (`build/`, `*.egg-info`), so the guest gets a
//! copy, never the user's tree. The copy keeps what a build needs and nothing that could
//! lead outside the tree: a symlink is kept only when it resolves inside the tree, and the
//! source is only ever opened for reading, one component at a time, without following
//! symlinks.

use super::fs::{
    Mtime, TreeWriter, create_dir_at, create_file_at, lstat_at, open_dir_at, open_dir_below,
    open_regular_file, set_fd_mtime, set_file_mtime, set_mtime_at, stat_mtime,
};
use super::path::{LinkRule, LinkTarget, RelPath, display_name, resolve_link};
use super::sdist::note_newest;
use super::tree::{Node, Tree};
use crate::limits::{LimitExceeded, StageLimits};
use rustix::fs::{FileType, Mode, OFlags, Stat};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// How deep the copy nests: folders further down are left out with a warning. Real
/// projects nest a few dozen levels at most; a tree nested thousands deep is an attack on
/// the host's time and memory, and no build needs what lies there.
pub const MAX_STAGE_DEPTH: usize = 64;

/// Folders of version-control systems: not copied (the guest cannot run VCS tools, and
/// they can be large).
pub const VCS_DIRS: &[&str] = &[".git", ".hg", ".svn", ".bzr"];

mod display;
mod git;
mod outcome;
use display::{abbreviate, join_display};
pub use git::{GitDir, stage_git_dir};
pub use outcome::{LinkSkip, StageError, StageWarning, StagedTree};

/// Copies the project folder `src` to `dest` (which must not exist, its parent must, or be
/// an empty folder).
///
/// - `src` is only opened for reading; every entry below it is opened relative to its
///   folder with `O_NOFOLLOW`, so a symlink is read as a link, never followed.
/// - Symlinks whose target resolves lexically inside the tree, and exists there, are kept
///   as relative links in canonical form; absolute, outside and dangling links are skipped
///   with a warning.
/// - Sockets, FIFOs and devices are skipped with a warning; so are names that are not
///   UTF-8. Version-control folders ([`VCS_DIRS`]) are skipped silently.
/// - Modification times are kept; files get mode 0644, or 0755 when any executable bit
///   was set (and are listed in [`StagedTree::executables`]).
/// - [`StageLimits`] bounds entries and bytes, counted while copying. On any error,
///   everything written is removed again.
pub fn stage_source_tree(
    src: &Path,
    dest: &Path,
    limits: &StageLimits,
) -> Result<StagedTree, StageError> {
    let source_root = rustix::fs::openat(
        rustix::fs::CWD,
        src,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StageError::Read {
        path: src.to_path_buf(),
        source: e.into(),
    })?;
    stage_from(source_root, src, dest, limits)
}

/// Copies the folder open as `source_root` (shown as `src`) to `dest`, as
/// [`stage_source_tree`] does.
fn stage_from(
    source_root: OwnedFd,
    src: &Path,
    dest: &Path,
    limits: &StageLimits,
) -> Result<StagedTree, StageError> {
    let writer = TreeWriter::create(dest).map_err(|source| StageError::Destination {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut stager = Stager {
        src,
        source_root,
        writer: &writer,
        limits,
        tree: Tree::default(),
        links: Vec::new(),
        link_dir_mtimes: HashMap::new(),
        dest_id: (0, 0),
        staged: StagedTree {
            root: dest.to_path_buf(),
            ..StagedTree::default()
        },
    };
    match stager.run() {
        Ok(()) => Ok(stager.staged),
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}

/// A symlink waiting until the whole tree is known.
struct PendingLink {
    path: RelPath,
    target: LinkTarget,
    raw_target: String,
    mtime: Mtime,
}

struct Stager<'a> {
    src: &'a Path,
    source_root: OwnedFd,
    writer: &'a TreeWriter,
    limits: &'a StageLimits,
    tree: Tree,
    links: Vec<PendingLink>,
    /// Times of the folders that hold links, set again once the links are written.
    link_dir_mtimes: HashMap<String, Mtime>,
    dest_id: (u64, u64),
    staged: StagedTree,
}

/// A folder being copied: its source and copy, open, and its subfolders still to visit.
struct Level {
    src: OwnedFd,
    dest: OwnedFd,
    path: Vec<String>,
    mtime: Mtime,
    subfolders: Vec<String>,
    has_links: bool,
}

impl Stager<'_> {
    /// Walks the source with one descriptor per level on each side: every folder is opened
    /// once, relative to its parent, never by a path from the root.
    fn run(&mut self) -> Result<(), StageError> {
        let root_stat =
            rustix::fs::fstat(&self.source_root).map_err(|e| self.read_error(&[], e.into()))?;
        let dest_error = |e: io::Error| StageError::Destination {
            path: self.staged.root.clone(),
            source: e,
        };
        let dest_stat = rustix::fs::fstat(self.writer.root()).map_err(|e| dest_error(e.into()))?;
        self.dest_id = identity(&dest_stat);
        let src = self
            .source_root
            .try_clone()
            .map_err(|e| self.read_error(&[], e))?;
        let dest = self.writer.root().try_clone().map_err(dest_error)?;
        let mut levels = vec![self.level(src, dest, Vec::new(), stat_mtime(&root_stat))?];
        while let Some(level) = levels.last_mut() {
            let Some(name) = level.subfolders.pop() else {
                let done = levels.pop().expect("the loop runs while there are levels");
                self.leave(done);
                continue;
            };
            let mut path = level.path.clone();
            path.push(name);
            let name = path.last().map(String::as_str).unwrap_or_default();
            let src = open_dir_at(&level.src, name).map_err(|e| self.read_error(&path, e))?;
            let dest =
                create_dir_at(&level.dest, name).map_err(|e| self.write_error_at(&path, e))?;
            let stat = rustix::fs::fstat(&src).map_err(|e| self.read_error(&path, e.into()))?;
            let next = self.level(src, dest, path, stat_mtime(&stat))?;
            levels.push(next);
        }
        self.write_links()?;
        self.staged.executables.sort();
        Ok(())
    }

    /// Copies the entries of the folder `path` (open as `src`, its copy as `dest`).
    fn level(
        &mut self,
        src: OwnedFd,
        dest: OwnedFd,
        path: Vec<String>,
        mtime: Mtime,
    ) -> Result<Level, StageError> {
        let links_before = self.links.len();
        let mut subfolders = Vec::new();
        for name in self.list(&src, &path)? {
            let mut components = path.clone();
            components.push(name);
            if let Some(sub) = self.entry(&src, &dest, components)? {
                subfolders.push(sub);
            }
        }
        // Visited last first, as before (the order of warnings).
        Ok(Level {
            has_links: self.links.len() > links_before,
            src,
            dest,
            path,
            mtime,
            subfolders,
        })
    }

    /// Everything below a folder is written: its time can be set, unless links are still
    /// to be written into it.
    fn leave(&mut self, level: Level) {
        if level.has_links {
            self.link_dir_mtimes
                .insert(level.path.join("/"), level.mtime);
        } else {
            let _ = set_fd_mtime(&level.dest, level.mtime);
        }
    }

    /// The UTF-8 names of a folder, sorted; others become warnings.
    fn list(&mut self, dir: &OwnedFd, folder: &[String]) -> Result<Vec<String>, StageError> {
        let entries =
            rustix::fs::Dir::read_from(dir).map_err(|e| self.read_error(folder, e.into()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.read_error(folder, e.into()))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            match std::str::from_utf8(raw) {
                Ok(name) => names.push(name.to_string()),
                Err(_) => self.staged.warnings.push(StageWarning::SkippedNonUtf8 {
                    path: join_display(folder, &display_name(raw)),
                }),
            }
        }
        names.sort();
        Ok(names)
    }

    /// Copies one entry of `dir` (copied to `dest`); returns the name of a folder to
    /// descend into.
    fn entry(
        &mut self,
        dir: &OwnedFd,
        dest: &OwnedFd,
        components: Vec<String>,
    ) -> Result<Option<String>, StageError> {
        let name = components.last().map(String::as_str).unwrap_or_default();
        let shown = components.join("/");
        if VCS_DIRS.contains(&name) {
            self.staged.skipped_vcs.push(shown);
            return Ok(None);
        }
        let Some(path) = RelPath::from_components(components.iter().map(String::as_str)) else {
            return Ok(None);
        };
        let stat = match lstat_at(dir, name) {
            Ok(stat) => stat,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.staged
                    .warnings
                    .push(StageWarning::SkippedChanged { path: shown });
                return Ok(None);
            }
            Err(e) => return Err(self.read_error(&components, e)),
        };
        let special = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                if identity(&stat) == self.dest_id {
                    self.staged
                        .warnings
                        .push(StageWarning::SkippedDestination { path: shown });
                    return Ok(None);
                }
                if components.len() > MAX_STAGE_DEPTH {
                    self.staged.warnings.push(StageWarning::SkippedTooDeep {
                        path: abbreviate(&components),
                    });
                    return Ok(None);
                }
                self.count_entry()?;
                self.tree
                    .place(&path, Node::Dir)
                    .map_err(|e| self.write_error(&path, io::Error::other(e)))?;
                return Ok(Some(name.to_string()));
            }
            FileType::RegularFile => {
                self.copy_file(dir, dest, name, &path)?;
                return Ok(None);
            }
            FileType::Symlink => {
                self.symlink(dir, name, &path, stat_mtime(&stat))?;
                return Ok(None);
            }
            FileType::Socket => "socket",
            FileType::Fifo => "FIFO",
            FileType::CharacterDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Unknown => "file of unknown type",
        };
        self.staged.warnings.push(StageWarning::SkippedSpecial {
            path: shown,
            kind: special,
        });
        Ok(None)
    }

    fn copy_file(
        &mut self,
        dir: &OwnedFd,
        dest_dir: &OwnedFd,
        name: &str,
        path: &RelPath,
    ) -> Result<(), StageError> {
        let (mut source, stat) = match open_regular_file(dir, name) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(self.read_error_at(path, e));
            }
            Err(_) => {
                // Gone, or no longer a regular file (swapped for a link or a FIFO).
                self.staged.warnings.push(StageWarning::SkippedChanged {
                    path: path.to_string(),
                });
                return Ok(());
            }
        };
        self.count_entry()?;
        // A file its size already puts over the limit is refused before a byte is copied
        // (the count while copying still holds for a file that grows).
        if self.staged.bytes.saturating_add(stat.st_size as u64) > self.limits.max_bytes {
            return Err(LimitExceeded::Bytes {
                limit: self.limits.max_bytes,
            }
            .into());
        }
        let executable = stat.st_mode & 0o111 != 0;
        self.tree
            .place(path, Node::File)
            .map_err(|e| self.write_error(path, io::Error::other(e)))?;
        let mut dest = create_file_at(dest_dir, name, executable, false)
            .map_err(|e| self.write_error(path, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = source
                .read(&mut buf)
                .map_err(|e| self.read_error_at(path, e))?;
            if n == 0 {
                break;
            }
            self.staged.bytes += n as u64;
            if self.staged.bytes > self.limits.max_bytes {
                return Err(LimitExceeded::Bytes {
                    limit: self.limits.max_bytes,
                }
                .into());
            }
            dest.write_all(&buf[..n])
                .map_err(|e| self.write_error(path, e))?;
        }
        let mtime = stat_mtime(&stat);
        let _ = set_file_mtime(&dest, mtime);
        note_newest(&mut self.staged.newest_mtime, mtime);
        if executable {
            self.staged.executables.push(path.to_string());
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        path: &RelPath,
        mtime: Mtime,
    ) -> Result<(), StageError> {
        let raw = match rustix::fs::readlinkat(dir, name, Vec::new()) {
            Ok(raw) => raw.into_bytes(),
            Err(_) => {
                self.staged.warnings.push(StageWarning::SkippedChanged {
                    path: path.to_string(),
                });
                return Ok(());
            }
        };
        let raw_target = display_name(&raw);
        let skip = |reason| StageWarning::SkippedSymlink {
            path: path.to_string(),
            target: raw_target.clone(),
            reason,
        };
        let target = match resolve_link(path, &raw, 0) {
            Ok(target) => target,
            Err(LinkRule::Absolute) => {
                self.staged.warnings.push(skip(LinkSkip::Absolute));
                return Ok(());
            }
            Err(LinkRule::Outside) => {
                self.staged.warnings.push(skip(LinkSkip::Outside));
                return Ok(());
            }
            Err(LinkRule::Name(_)) => {
                self.staged.warnings.push(skip(LinkSkip::BadTarget));
                return Ok(());
            }
        };
        self.count_entry()?;
        self.tree
            .place(path, Node::Symlink(target.resolved.clone()))
            .map_err(|e| self.write_error(path, io::Error::other(e)))?;
        self.links.push(PendingLink {
            path: path.clone(),
            target,
            raw_target,
            mtime,
        });
        Ok(())
    }

    /// Writes the symlinks once the whole tree is known, dropping those that dangle (which
    /// may make others dangle in turn).
    fn write_links(&mut self) -> Result<(), StageError> {
        loop {
            let dangling: Vec<String> = self
                .tree
                .symlinks()
                .filter(|(_, target)| self.tree.resolve(target).is_none())
                .map(|(path, _)| path.to_string())
                .collect();
            if dangling.is_empty() {
                break;
            }
            for path in dangling {
                self.tree.remove_symlink(&path);
            }
        }
        // Sorted, so that links of one folder are written from one open of it.
        let mut links = std::mem::take(&mut self.links);
        links.sort_by(|a, b| a.path.cmp(&b.path));
        let mut open: Option<(Option<RelPath>, OwnedFd)> = None;
        for link in links {
            if self.tree.get(link.path.as_str()).is_none() {
                self.staged.entries -= 1;
                self.staged.warnings.push(StageWarning::SkippedSymlink {
                    path: link.path.to_string(),
                    target: link.raw_target,
                    reason: LinkSkip::Dangling,
                });
                continue;
            }
            let parent = link.path.parent();
            let dir = match open.take() {
                Some((folder, dir)) if folder == parent => dir,
                _ => open_dir_below(
                    self.writer.root(),
                    parent.iter().flat_map(|p| p.components()),
                )
                .map_err(|e| self.write_error(&link.path, e))?,
            };
            rustix::fs::symlinkat(link.target.text.as_str(), &dir, link.path.file_name())
                .map_err(|e| self.write_error(&link.path, e.into()))?;
            let _ = set_mtime_at(&dir, link.path.file_name(), link.mtime);
            let folder = parent.as_ref().map_or("", RelPath::as_str);
            if let Some(mtime) = self.link_dir_mtimes.get(folder) {
                let _ = set_fd_mtime(&dir, *mtime);
            }
            open = Some((parent, dir));
        }
        // Folders whose links all dangled.
        let dirs = std::mem::take(&mut self.link_dir_mtimes);
        for (folder, mtime) in dirs {
            let components = folder.split('/').filter(|c| !c.is_empty());
            if let Ok(dir) = open_dir_below(self.writer.root(), components) {
                let _ = set_fd_mtime(&dir, mtime);
            }
        }
        Ok(())
    }

    fn count_entry(&mut self) -> Result<(), StageError> {
        self.staged.entries += 1;
        if self.staged.entries > self.limits.max_entries {
            return Err(LimitExceeded::Entries {
                limit: self.limits.max_entries,
            }
            .into());
        }
        Ok(())
    }

    fn read_error(&self, components: &[String], source: io::Error) -> StageError {
        StageError::Read {
            path: components
                .iter()
                .fold(self.src.to_path_buf(), |p, c| p.join(c)),
            source,
        }
    }

    fn read_error_at(&self, path: &RelPath, source: io::Error) -> StageError {
        StageError::Read {
            path: self.src.join(path.as_str()),
            source,
        }
    }

    fn write_error_at(&self, components: &[String], source: io::Error) -> StageError {
        StageError::Write {
            path: components
                .iter()
                .fold(self.writer.root_path().to_path_buf(), |p, c| p.join(c)),
            source,
        }
    }

    fn write_error(&self, path: &RelPath, source: io::Error) -> StageError {
        StageError::Write {
            path: self.writer.root_path().join(path.as_str()),
            source,
        }
    }
}

/// Identifies a file (device, inode).
#[allow(clippy::unnecessary_cast)]
fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

#[cfg(test)]
mod tests;
