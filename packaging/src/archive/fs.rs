//! File system access that never follows a symlink.
//!
//! Every path is walked one component at a time from an open folder descriptor with
//! `openat(O_NOFOLLOW)`, so a symlink anywhere on the way is an error (`ELOOP` or `ENOTDIR`),
//! never a detour. Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`: an existing name,
//! link or not, is never opened for writing. Nothing here resolves a path through the
//! kernel's path lookup beyond a single component.

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A modification time, as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mtime {
    pub seconds: i64,
    pub nanoseconds: u32,
}

impl Mtime {
    fn timestamps(self) -> Timestamps {
        let spec = Timespec {
            tv_sec: self.seconds,
            tv_nsec: i64::from(self.nanoseconds).min(999_999_999) as _,
        };
        Timestamps {
            last_access: spec,
            last_modification: spec,
        }
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens a folder given by the caller (the path is trusted up to its last component, which
/// must not be a symlink).
pub(crate) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        path,
        DIR_FLAGS,
        Mode::empty(),
    )?)
}

/// Opens the folder at `components` below `root`, refusing symlinks on the way.
pub(crate) fn open_dir_below<'a>(
    root: &OwnedFd,
    components: impl IntoIterator<Item = &'a str>,
) -> io::Result<OwnedFd> {
    let mut current = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())?;
    for component in components {
        current = rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty())?;
    }
    Ok(current)
}

/// Opens a regular file in `dir` for reading, refusing symlinks and anything that is not a
/// regular file once opened (`O_NONBLOCK` keeps a FIFO swapped in from blocking the open).
pub(crate) fn open_regular_file(dir: &OwnedFd, name: &str) -> io::Result<(File, rustix::fs::Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(kind),
        ));
    }
    // Reads should block normally from here on.
    rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
    Ok((File::from(fd), stat))
}

/// The error payload of [`open_regular_file`] when the opened entry is something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a regular file but a {0:?}")]
pub(crate) struct NotRegular(pub rustix::fs::FileType);

impl NotRegular {
    /// The file type found, when `e` came from [`open_regular_file`] finding no regular file.
    pub(crate) fn found_in(e: &io::Error) -> Option<rustix::fs::FileType> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<NotRegular>())
            .map(|n| n.0)
    }
}

/// The metadata of `name` in `dir`, without following a symlink.
pub(crate) fn lstat_at(dir: &OwnedFd, name: &str) -> io::Result<rustix::fs::Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// The modification time recorded in `stat`.
pub(crate) fn stat_mtime(stat: &rustix::fs::Stat) -> Mtime {
    #[allow(clippy::unnecessary_cast)]
    Mtime {
        seconds: stat.st_mtime as i64,
        nanoseconds: stat.st_mtime_nsec as u32,
    }
}

/// Writes a new tree under a destination folder, never following a symlink.
#[derive(Debug)]
pub(crate) struct TreeWriter {
    root: OwnedFd,
    root_path: PathBuf,
    created_root: bool,
}

impl TreeWriter {
    /// Creates `dest` (its parent must exist), or takes it if it is an empty folder that is
    /// not a symlink.
    pub(crate) fn create(dest: &Path) -> io::Result<Self> {
        let created_root = match std::fs::create_dir(dest) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let root = open_dir_path(dest)?;
        if !created_root {
            let mut entries = rustix::fs::Dir::read_from(&root)?;
            let occupied = entries.any(|entry| {
                entry.is_ok_and(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
            });
            if occupied {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not empty", dest.display()),
                ));
            }
        }
        Ok(Self {
            root,
            root_path: dest.to_path_buf(),
            created_root,
        })
    }

    /// The destination folder.
    pub(crate) fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The destination folder's descriptor.
    pub(crate) fn root(&self) -> &OwnedFd {
        &self.root
    }

    /// Opens (creating as needed) the folder `components` below the root.
    fn dir<'a>(&self, components: impl IntoIterator<Item = &'a str>) -> io::Result<OwnedFd> {
        let mut current = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for component in components {
            current = match rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    rustix::fs::mkdirat(&current, component, Mode::from_raw_mode(0o755))?;
                    rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty())?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(current)
    }

    /// Splits `path` into its parent folder (opened, created as needed) and its name.
    fn parent<'p>(&self, path: &'p [&'p str]) -> io::Result<(OwnedFd, &'p str)> {
        let (name, parents) = path
            .split_last()
            .ok_or_else(|| io::Error::other("empty path"))?;
        Ok((self.dir(parents.iter().copied())?, name))
    }

    /// Creates the folder at `path` and any missing parents.
    pub(crate) fn create_dir(&self, path: &[&str]) -> io::Result<()> {
        self.dir(path.iter().copied()).map(drop)
    }

    /// Creates a new regular file at `path` (mode 0644, or 0755 when executable). With
    /// `replace`, an earlier regular file of that name is removed first.
    pub(crate) fn create_file(
        &self,
        path: &[&str],
        executable: bool,
        replace: bool,
    ) -> io::Result<File> {
        let (parent, name) = self.parent(path)?;
        if replace {
            match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mode = if executable { 0o755 } else { 0o644 };
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Opens an earlier written regular file for reading (to copy a hard link).
    pub(crate) fn open_file(&self, path: &[&str]) -> io::Result<File> {
        let (name, parents) = path
            .split_last()
            .ok_or_else(|| io::Error::other("empty path"))?;
        let parent = open_dir_below(&self.root, parents.iter().copied())?;
        open_regular_file(&parent, name).map(|(file, _)| file)
    }

    /// Creates a symlink at `path` holding `target` (never resolved here).
    pub(crate) fn symlink(&self, path: &[&str], target: &str) -> io::Result<()> {
        let (parent, name) = self.parent(path)?;
        Ok(rustix::fs::symlinkat(target, &parent, name)?)
    }

    /// Sets the modification (and access) time of the entry at `path` without following
    /// it if it is a symlink. The root itself is `[]`.
    pub(crate) fn set_mtime(&self, path: &[&str], mtime: Mtime) -> io::Result<()> {
        match path.split_last() {
            None => Ok(rustix::fs::futimens(&self.root, &mtime.timestamps())?),
            Some((name, parents)) => {
                let parent = open_dir_below(&self.root, parents.iter().copied())?;
                Ok(rustix::fs::utimensat(
                    &parent,
                    *name,
                    &mtime.timestamps(),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?)
            }
        }
    }

    /// Removes everything written (and the destination itself if this writer created it).
    /// Used when extraction or staging fails, so a refused archive leaves nothing behind.
    pub(crate) fn discard(self) {
        if self.created_root {
            let _ = std::fs::remove_dir_all(&self.root_path);
            return;
        }
        // `remove_dir_all` does not follow symlinks; entries are removed one by one so the
        // (pre-existing, empty) destination folder itself stays.
        if let Ok(entries) = std::fs::read_dir(&self.root_path) {
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        let _ = std::fs::remove_dir_all(&path);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
    }
}

/// Sets the modification time of an open file.
pub(crate) fn set_file_mtime(file: &File, mtime: Mtime) -> io::Result<()> {
    Ok(rustix::fs::futimens(file.as_fd(), &mtime.timestamps())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn writes_files_dirs_and_links_without_following() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let writer = TreeWriter::create(&dest).unwrap();
        writer.create_dir(&["a", "b"]).unwrap();
        let mut f = writer.create_file(&["a", "b", "f"], true, false).unwrap();
        f.write_all(b"hi").unwrap();
        set_file_mtime(
            &f,
            Mtime {
                seconds: 1_000_000,
                nanoseconds: 5,
            },
        )
        .unwrap();
        drop(f);
        writer.symlink(&["a", "l"], "b").unwrap();
        // A symlink on the way is refused, not followed.
        let err = writer
            .create_file(&["a", "l", "g"], false, false)
            .unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::NOTDIR.raw_os_error())
        );
        // An existing name is never opened for writing.
        assert!(writer.create_file(&["a", "l"], false, false).is_err());
        assert!(writer.create_file(&["a", "b", "f"], false, false).is_err());
        let mut content = String::new();
        writer
            .open_file(&["a", "b", "f"])
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert_eq!(content, "hi");
        assert!(writer.open_file(&["a", "l"]).is_err());
        let meta = std::fs::metadata(dest.join("a/b/f")).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.mtime(), 1_000_000);
        assert_eq!(meta.permissions().mode() & 0o100, 0o100);
        writer
            .set_mtime(
                &["a", "l"],
                Mtime {
                    seconds: 7,
                    nanoseconds: 0,
                },
            )
            .unwrap();
        assert_eq!(
            std::fs::symlink_metadata(dest.join("a/l")).unwrap().mtime(),
            7
        );
        writer.discard();
        assert!(!dest.exists());
    }

    #[test]
    fn refuses_a_non_empty_destination_and_keeps_an_empty_one() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x"), "").unwrap();
        assert!(TreeWriter::create(tmp.path()).is_err());
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let writer = TreeWriter::create(&empty).unwrap();
        writer.create_dir(&["d"]).unwrap();
        writer.discard();
        assert!(empty.is_dir());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        // A destination that is a symlink is refused.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&empty, &link).unwrap();
        assert!(TreeWriter::create(&link).is_err());
    }
}
