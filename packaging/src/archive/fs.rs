//! File system access that never follows a symlink.
//!
//! Every path is walked one component at a time from an open folder descriptor with
//! `openat(O_NOFOLLOW)`, so a symlink anywhere on the way is an error (`ELOOP` or `ENOTDIR`),
//! never a detour. Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`: an existing name,
//! link or not, is never opened for writing. Nothing here resolves a path through the
//! kernel's path lookup beyond a single component.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
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

/// Opens the folder at `components` below `root`, refusing symlinks on the way (`ELOOP`
/// or `ENOTDIR`).
///
/// Where the kernel offers `openat2` (Linux 5.6+), the kernel walks the whole path with
/// `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`, one call per `PATH_MAX`-sized stretch, so a
/// path thousands of folders deep costs a few calls, not one per level. Elsewhere it is
/// walked one `openat(O_NOFOLLOW)` per component.
pub(crate) fn open_dir_below<'a>(
    root: &OwnedFd,
    components: impl IntoIterator<Item = &'a str>,
) -> io::Result<OwnedFd> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
    const STRETCH: usize = 3072;
    let mut current = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())?;
    let mut stretch = String::new();
    let mut components = components.into_iter().peekable();
    while let Some(component) = components.next() {
        if NO_OPENAT2.load(Ordering::Relaxed) {
            current = rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty())?;
            continue;
        }
        if !stretch.is_empty() {
            stretch.push('/');
        }
        stretch.push_str(component);
        let full = components
            .peek()
            .is_none_or(|next| stretch.len() + 1 + next.len() > STRETCH);
        if !full {
            continue;
        }
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
        match rustix::fs::openat2(
            &current,
            stretch.as_str(),
            DIR_FLAGS,
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => current = fd,
            // No openat2 here (old kernel, or a seccomp filter): walk component-wise.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                for component in stretch.split('/') {
                    current = rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty())?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        stretch.clear();
    }
    Ok(current)
}

/// Opens the folder `name` of `dir`, refusing a symlink (`ELOOP`) or anything but a folder
/// (`ENOTDIR`).
pub(crate) fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
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

    /// Opens (creating as needed) the folder `components` below the root. It or its parent
    /// usually exists (one call); otherwise the path is walked from the root, creating
    /// what is missing.
    fn dir(&self, components: &[&str]) -> io::Result<OwnedFd> {
        let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        match open_dir_below(&self.root, components.iter().copied()) {
            Err(e) if not_found(&e) => {}
            other => return other,
        }
        if let Some((last, parents)) = components.split_last() {
            match open_dir_below(&self.root, parents.iter().copied()) {
                Ok(parent) => return create_dir_at(&parent, last),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let mut current = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for component in components {
            current = create_dir_at(&current, component)?;
        }
        Ok(current)
    }

    /// Splits `path` into its parent folder (opened, created as needed) and its name.
    fn parent<'p>(&self, path: &'p [&'p str]) -> io::Result<(OwnedFd, &'p str)> {
        let (name, parents) = path
            .split_last()
            .ok_or_else(|| io::Error::other("empty path"))?;
        Ok((self.dir(parents)?, name))
    }

    /// Creates the folder at `path` and any missing parents.
    pub(crate) fn create_dir(&self, path: &[&str]) -> io::Result<()> {
        self.dir(path).map(drop)
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
        create_file_at(&parent, name, executable, replace)
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
        // `scratch::remove` walks any depth (`remove_dir_all` holds a descriptor per level)
        // and never follows a symlink.
        if self.created_root {
            let _ = crate::scratch::remove(&self.root_path);
            return;
        }
        // Entries are removed one by one so the (pre-existing, empty) destination folder
        // itself stays.
        if let Ok(entries) = std::fs::read_dir(&self.root_path) {
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        let _ = crate::scratch::remove(&path);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
    }
}

/// Creates the folder `name` in `parent` (an existing folder is taken, a symlink is not)
/// and opens it.
pub(crate) fn create_dir_at(parent: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_dir_at(parent, name)
}

/// Creates the new regular file `name` in `parent` (mode 0644, or 0755 when executable),
/// never opening an existing name. With `replace`, an earlier regular file of that name is
/// removed first.
pub(crate) fn create_file_at(
    parent: &OwnedFd,
    name: &str,
    executable: bool,
    replace: bool,
) -> io::Result<File> {
    if replace {
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mode = if executable { 0o755 } else { 0o644 };
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

/// Sets the modification (and access) time of an open folder or file.
pub(crate) fn set_fd_mtime(fd: &OwnedFd, mtime: Mtime) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &mtime.timestamps())?)
}

/// Sets the modification time of `name` in `dir` without following a symlink.
pub(crate) fn set_mtime_at(dir: &OwnedFd, name: &str, mtime: Mtime) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &mtime.timestamps(),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
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
        let refusals = [rustix::io::Errno::NOTDIR, rustix::io::Errno::LOOP];
        assert!(
            refusals
                .map(|e| Some(e.raw_os_error()))
                .contains(&err.raw_os_error()),
            "{err}"
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
    fn opens_deep_folders_and_refuses_links_on_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let root = open_dir_path(tmp.path()).unwrap();
        // Deeper than one openat2 stretch, with 200-character names (past PATH_MAX).
        let name = "n".repeat(200);
        let components = vec![name.as_str(); 40];
        let writer = TreeWriter::create(&tmp.path().join("w")).unwrap();
        writer.create_dir(&components).unwrap();
        let deep = open_dir_below(writer.root(), components.iter().copied()).unwrap();
        rustix::fs::mkdirat(&deep, "leaf", Mode::from_raw_mode(0o755)).unwrap();
        let mut with_leaf = components.clone();
        with_leaf.push("leaf");
        assert!(open_dir_below(writer.root(), with_leaf.iter().copied()).is_ok());
        // A symlink at any depth is refused, not followed.
        rustix::fs::symlinkat("/", &deep, "up").unwrap();
        let mut through_link = components.clone();
        through_link.extend(["up", "tmp"]);
        assert!(open_dir_below(writer.root(), through_link.iter().copied()).is_err());
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("link")).unwrap();
        assert!(open_dir_below(&root, ["link"]).is_err());
        assert!(open_dir_below(&root, ["w", name.as_str()]).is_ok());
        crate::scratch::remove(&tmp.path().join("w")).unwrap();
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
