//! Publishing verified artifacts into the output folder, through a directory handle.
//!
//! The output folder may lie in the project (`SOURCE/dist` by default), which is a
//! stranger's tree: a `dist` that is a symlink would send the artifacts, and the removal of
//! an older `.dist-info`, wherever it points. So the part of the path below the project is
//! opened (or created) one component at a time without following links, and everything is
//! then written relative to that one handle: a temporary name created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, synced, then `renameat` over the final name (which
//! replaces a link of that name, never follows it). Files get mode 0666 and folders 0777,
//! less the umask, as `python -m build` leaves them.

use crate::archive::fs::{open_dir_at, open_dir_path, open_regular_file};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// Why the output folder cannot be used, or an artifact not written into it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{path} is a symbolic link inside the project folder; wasm-build does not write \
         through links in a project it builds (the project chose where it points): remove \
         it, or choose the output folder with -o"
    )]
    LinkInProject { path: PathBuf },
    #[error("{path} is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("cannot use {path} as the output folder")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {name} into {dir}")]
    Write {
        name: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The output folder, held open.
#[derive(Debug)]
pub struct OutputDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl OutputDir {
    /// Opens `path`, creating what is missing. When `path` lies in `project` (a folder the
    /// caller trusts by path, whose content is a stranger's), the components below
    /// `project` are opened or created one at a time without following links; a link
    /// there is refused. Elsewhere the path is the user's own and is used as given.
    pub fn open(path: &Path, project: Option<&Path>) -> Result<Self, PublishError> {
        let open_error = |source| PublishError::Open {
            path: path.to_path_buf(),
            source,
        };
        let below = project.and_then(|project| relative_below(path, project));
        let fd = match (project, below) {
            (Some(project), Some(components)) => {
                let mut fd = open_dir_path(project).map_err(open_error)?;
                let mut walked = project.to_path_buf();
                for component in components {
                    walked.push(&component);
                    fd = open_or_create_component(&fd, &component, &walked)?;
                }
                fd
            }
            _ => {
                std::fs::create_dir_all(path).map_err(|source| match path.is_file() {
                    true => PublishError::NotAFolder {
                        path: path.to_path_buf(),
                    },
                    false => open_error(source),
                })?;
                rustix::fs::open(
                    path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| open_error(e.into()))?
            }
        };
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Checks, creating nothing, that [`OutputDir::open`] would not be refused for a link or
    /// a file on the way: the components of `path` below `project` that exist are folders,
    /// not links. (Missing ones are created when publishing.)
    pub fn check(path: &Path, project: Option<&Path>) -> Result<(), PublishError> {
        let Some((project, components)) =
            project.and_then(|project| Some((project, relative_below(path, project)?)))
        else {
            return match std::fs::metadata(path) {
                Ok(meta) if !meta.is_dir() => Err(PublishError::NotAFolder {
                    path: path.to_path_buf(),
                }),
                _ => Ok(()),
            };
        };
        let mut fd = open_dir_path(project).map_err(|source| PublishError::Open {
            path: project.to_path_buf(),
            source,
        })?;
        let mut walked = project.to_path_buf();
        for component in components {
            walked.push(&component);
            match rustix::fs::statat(&fd, component.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(e) => {
                    return Err(PublishError::Open {
                        path: walked,
                        source: e.into(),
                    });
                }
                Ok(_) => fd = open_or_refuse(&fd, &component, &walked)?,
            }
        }
        Ok(())
    }

    /// The folder's path, for messages and for the paths of what is published.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes exactly `size` bytes of `content` as `name` (a bare file name), replacing an
    /// older file of that name only once the new one is complete and synced.
    pub fn publish_file(
        &self,
        name: &str,
        content: impl Read,
        size: u64,
    ) -> Result<PathBuf, PublishError> {
        let write_error = |source| PublishError::Write {
            name: name.to_string(),
            dir: self.path.clone(),
            source,
        };
        let (tmp_name, mut tmp) = self.create_temporary_file().map_err(write_error)?;
        let written = (|| {
            let copied = io::copy(&mut content.take(size.saturating_add(1)), &mut tmp)?;
            if copied != size {
                return Err(io::Error::other(format!(
                    "it changed size after it was verified ({size} bytes, now {copied})"
                )));
            }
            tmp.flush()?;
            tmp.sync_all()?;
            Ok(rustix::fs::renameat(&self.fd, &tmp_name, &self.fd, name)?)
        })();
        if let Err(error) = written {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp_name, AtFlags::empty());
            return Err(write_error(error));
        }
        Ok(self.path.join(name))
    }

    /// Copies the folder `source` (a trusted handle; its tree is walked without following
    /// links and may hold only folders and regular files) into this folder as `name`,
    /// replacing an older folder of that name once the copy is complete.
    pub fn publish_tree(&self, name: &str, source: &OwnedFd) -> Result<PathBuf, PublishError> {
        let write_error = |source| PublishError::Write {
            name: name.to_string(),
            dir: self.path.clone(),
            source,
        };
        let tmp_name = temporary_name();
        rustix::fs::mkdirat(&self.fd, &tmp_name, Mode::from_raw_mode(0o777))
            .map_err(|e| write_error(e.into()))?;
        let copied = open_dir_at(&self.fd, &tmp_name).and_then(|tmp| copy_tree(source, &tmp, 0));
        let placed = copied.and_then(|()| self.replace_with(&tmp_name, name));
        if let Err(error) = placed {
            let _ = remove_tree_at(&self.fd, OsStr::new(&tmp_name));
            return Err(write_error(error));
        }
        Ok(self.path.join(name))
    }

    /// Moves `tmp_name` to `name`. An existing folder `name` is swapped out atomically and
    /// then removed; anything else there is replaced by the rename itself.
    fn replace_with(&self, tmp_name: &str, name: &str) -> io::Result<()> {
        match rustix::fs::renameat(&self.fd, tmp_name, &self.fd, name) {
            Ok(()) => Ok(()),
            Err(
                rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST,
            ) => {
                rustix::fs::renameat_with(
                    &self.fd,
                    tmp_name,
                    &self.fd,
                    name,
                    RenameFlags::EXCHANGE,
                )?;
                // `tmp_name` now holds the older folder.
                remove_tree_at(&self.fd, OsStr::new(tmp_name))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn create_temporary_file(&self) -> io::Result<(String, File)> {
        let name = temporary_name();
        let fd = rustix::fs::openat(
            &self.fd,
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        Ok((name, File::from(fd)))
    }
}

/// The components of `path` below `root`, compared lexically after making both absolute
/// against the working directory; `None` when `path` is not below `root` (or is `root`).
fn relative_below(path: &Path, root: &Path) -> Option<Vec<String>> {
    let absolute = |p: &Path| -> Option<PathBuf> {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(p)
        };
        let mut clean = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        Some(clean)
    };
    let rest = absolute(path)?
        .strip_prefix(absolute(root)?)
        .ok()?
        .to_path_buf();
    let components: Option<Vec<String>> = rest
        .components()
        .map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    components.filter(|c| !c.is_empty())
}

/// Opens the existing folder `name` in `dir` without following a link, saying why not.
fn open_or_refuse(dir: &OwnedFd, name: &str, walked: &Path) -> Result<OwnedFd, PublishError> {
    open_dir_at(dir, name).map_err(|source| refusal(dir, name, walked, source))
}

/// Why `name` in `dir` could not be opened as a folder: a link, something else, or `source`.
fn refusal(dir: &OwnedFd, name: &str, walked: &Path, source: io::Error) -> PublishError {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat)
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::Symlink =>
        {
            PublishError::LinkInProject {
                path: walked.to_path_buf(),
            }
        }
        Ok(stat)
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                != rustix::fs::FileType::Directory =>
        {
            PublishError::NotAFolder {
                path: walked.to_path_buf(),
            }
        }
        _ => PublishError::Open {
            path: walked.to_path_buf(),
            source,
        },
    }
}

/// Opens `name` in `dir` as a folder without following a link, creating it if missing.
fn open_or_create_component(
    dir: &OwnedFd,
    name: &str,
    walked: &Path,
) -> Result<OwnedFd, PublishError> {
    let refused = |source: io::Error| refusal(dir, name, walked, source);
    match open_dir_at(dir, name) {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(refused(e.into())),
            }
            open_dir_at(dir, name).map_err(refused)
        }
        Err(e) => Err(refused(e)),
    }
}

/// Deepest folder [`OutputDir::publish_tree`] copies: what it publishes was verified with a
/// lower bound (a `.dist-info` folder).
const MAX_TREE_DEPTH: usize = 64;

/// Copies the folders and regular files below `from` into `to`, without following links.
fn copy_tree(from: &OwnedFd, to: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(io::Error::other("the folder is nested too deep"));
    }
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(from)? {
        let entry = entry?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = std::str::from_utf8(raw)
            .map_err(|_| io::Error::other("a name that is not UTF-8"))?
            .to_string();
        names.push(name);
    }
    names.sort();
    for name in names {
        let stat = rustix::fs::statat(from, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Directory => {
                let source = open_dir_at(from, &name)?;
                rustix::fs::mkdirat(to, name.as_str(), Mode::from_raw_mode(0o777))?;
                copy_tree(&source, &open_dir_at(to, &name)?, depth + 1)?;
            }
            rustix::fs::FileType::RegularFile => {
                let (mut source, _) = open_regular_file(from, &name)?;
                let fd = rustix::fs::openat(
                    to,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                )?;
                let mut dest = File::from(fd);
                io::copy(&mut source, &mut dest)?;
                dest.sync_all()?;
            }
            other => {
                return Err(io::Error::other(format!(
                    "`{name}` is a {other:?}, not a file or folder"
                )));
            }
        }
    }
    Ok(())
}

/// Deepest older folder [`OutputDir::publish_tree`] removes when it replaces one: the
/// output folder may be the project's, and what is in it the project's.
const MAX_REMOVE_DEPTH: usize = 256;

/// Removes `name` in `dir` and everything below it, without following links.
fn remove_tree_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    remove_tree_within(dir, name, 0)
}

fn remove_tree_within(dir: &OwnedFd, name: &OsStr, depth: usize) -> io::Result<()> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    if depth >= MAX_REMOVE_DEPTH {
        return Err(io::Error::other(format!(
            "the folder it replaces is nested more than {MAX_REMOVE_DEPTH} levels deep"
        )));
    }
    let inner = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(inner.as_fd())? {
        let entry = entry?;
        let raw = entry.file_name().to_bytes();
        if raw != b"." && raw != b".." {
            names.push(OsString::from_vec(raw.to_vec()));
        }
    }
    for child in names {
        remove_tree_within(&inner, &child, depth + 1)?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

fn temporary_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        ".wasm-build-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests;
