//! Trees a stranger wrote (the sandbox's writable folders): measured while the stranger
//! runs, removed after it, however deep they nest.
//!
//! A guest can nest folders to any depth: it only ever needs the descriptor of the deepest
//! one. Walking such a tree by path fails past `PATH_MAX`, and walking it with a descriptor
//! per level (as `std::fs::remove_dir_all` does) fails past the process's open-file limit;
//! either way what lies below would be neither counted nor removed. The walk here holds one
//! folder open at a time (plus one while it lists it): it lists a folder, then descends into
//! each subfolder in turn, and climbs back through `..`, checking that it arrives in the
//! folder it came from (device and inode). Nothing is ever followed through a symlink.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::OwnedFd;
use std::path::Path;

/// What a tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Bytes of regular files (their sizes, not the blocks they occupy); a file with several
    /// hard links in the tree counts once.
    pub bytes: u64,
    /// Entries of any kind: files, folders, symlinks (not the root).
    pub entries: u64,
}

/// Measures the tree at `root`. `stop` is asked after every entry; once it answers true
/// the walk ends and what was counted so far is returned.
pub fn usage(root: &Path, mut stop: impl FnMut(&TreeUsage) -> bool) -> io::Result<TreeUsage> {
    let mut usage = TreeUsage::default();
    let mut linked = HashSet::new();
    walk(root, &mut |visit: Visit<'_>| {
        if let Visit::Entry { stat, .. } = visit {
            usage.entries += 1;
            if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                && (stat.st_nlink <= 1 || linked.insert(identity(stat)))
            {
                #[allow(clippy::unnecessary_cast)]
                let size = stat.st_size as u64;
                usage.bytes = usage.bytes.saturating_add(size);
            }
            if stop(&usage) {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(usage)
}

/// Removes the tree at `root` and `root` itself. A `root` that does not exist is not an
/// error.
pub fn remove(root: &Path) -> io::Result<()> {
    let walked = walk(root, &mut |visit: Visit<'_>| {
        match visit {
            Visit::Entry { dir, name, stat } => {
                if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
                    ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty()))?;
                }
            }
            Visit::Left { dir, name } => {
                ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))?;
            }
        }
        Ok(ControlFlow::Continue(()))
    });
    match walked {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    match std::fs::remove_dir(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What the walk shows its visitor.
enum Visit<'a> {
    /// An entry of `dir` (a folder is shown before the walk enters it).
    Entry {
        dir: &'a OwnedFd,
        name: &'a CStr,
        stat: &'a Stat,
    },
    /// The walk has been through the folder `name` of `dir` and is back in `dir`.
    Left { dir: &'a OwnedFd, name: &'a CStr },
}

type Visitor<'v> = dyn FnMut(Visit<'_>) -> io::Result<ControlFlow<()>> + 'v;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// One folder on the way down: its name in its parent, its identity, and the subfolders
/// still to visit.
struct Level {
    name: CString,
    id: (u64, u64),
    subfolders: Vec<CString>,
}

fn walk(root: &Path, visit: &mut Visitor<'_>) -> io::Result<()> {
    let mut dir = rustix::fs::openat(rustix::fs::CWD, root, DIR_FLAGS, Mode::empty())?;
    let Some(subfolders) = list(&dir, visit)? else {
        return Ok(());
    };
    let mut levels = vec![Level {
        name: CString::default(),
        id: identity(&rustix::fs::fstat(&dir)?),
        subfolders,
    }];
    while let Some(level) = levels.last_mut() {
        if let Some(name) = level.subfolders.pop() {
            let child = match rustix::fs::openat(&dir, name.as_c_str(), DIR_FLAGS, Mode::empty()) {
                Ok(child) => child,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let id = identity(&rustix::fs::fstat(&child)?);
            let Some(subfolders) = list(&child, visit)? else {
                return Ok(());
            };
            levels.push(Level {
                name,
                id,
                subfolders,
            });
            dir = child;
            continue;
        }
        let done = levels.pop().expect("the loop runs while there are levels");
        let Some(parent) = levels.last() else {
            break;
        };
        let up = rustix::fs::openat(&dir, c"..", DIR_FLAGS, Mode::empty())?;
        if identity(&rustix::fs::fstat(&up)?) != parent.id {
            return Err(io::Error::other(
                "a folder was moved while the tree was walked",
            ));
        }
        dir = up;
        if visit(Visit::Left {
            dir: &dir,
            name: &done.name,
        })?
        .is_break()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Shows every entry of `dir` to the visitor; returns its subfolders, or `None` when the
/// visitor stopped the walk.
fn list(dir: &OwnedFd, visit: &mut Visitor<'_>) -> io::Result<Option<Vec<CString>>> {
    let mut subfolders = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if visit(Visit::Entry {
            dir,
            name,
            stat: &stat,
        })?
        .is_break()
        {
            return Ok(None);
        }
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            subfolders.push(name.to_owned());
        }
    }
    Ok(Some(subfolders))
}

#[allow(clippy::unnecessary_cast)]
fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

fn ignore_missing(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A chain of `depth` folders with 200-character names below `root` (far deeper than
    /// PATH_MAX allows to name), made one level at a time from a descriptor, with a file
    /// of `size` bytes at the bottom.
    fn deep_chain(root: &Path, depth: usize, size: usize) {
        let name = "d".repeat(200);
        let mut dir = rustix::fs::openat(rustix::fs::CWD, root, DIR_FLAGS, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = rustix::fs::openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty()).unwrap();
        }
        let file = rustix::fs::openat(
            &dir,
            "bottom",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&file, &vec![7u8; size]).unwrap();
    }

    #[test]
    fn measures_and_removes_trees_deeper_than_path_max() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("tree");
        fs::create_dir(&root).unwrap();
        deep_chain(&root, 100, 1000);
        fs::write(root.join("top"), b"abc").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert_eq!(
            usage(&root, |_| false).unwrap(),
            TreeUsage {
                bytes: 1003,
                entries: 103
            }
        );
        remove(&root).unwrap();
        assert!(!root.exists());
        assert!(
            std::path::Path::new("/etc").is_dir(),
            "the link was not followed"
        );
        remove(&root).unwrap();
    }

    #[test]
    fn hard_links_count_their_bytes_once() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("file"), [0u8; 100]).unwrap();
        for i in 0..3 {
            fs::hard_link(
                root.path().join("file"),
                root.path().join(format!("link-{i}")),
            )
            .unwrap();
        }
        fs::write(root.path().join("other"), [0u8; 10]).unwrap();
        assert_eq!(
            usage(root.path(), |_| false).unwrap(),
            TreeUsage {
                bytes: 110,
                entries: 5
            }
        );
    }

    #[test]
    fn usage_stops_when_asked() {
        let root = tempfile::tempdir().unwrap();
        for i in 0..10 {
            fs::write(root.path().join(i.to_string()), b"x").unwrap();
        }
        let seen = usage(root.path(), |u| u.entries >= 3).unwrap();
        assert_eq!(seen.entries, 3);
    }
}
