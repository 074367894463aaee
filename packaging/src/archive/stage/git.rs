//! The `.git` folder of a project folder that is a git work tree, copied for the guest's
//! read-only use (its git emulation reads it; the host never parses it).
//!
//! Only a `.git` folder at the top of the source is copied, by the same no-follow walk as
//! the source itself ([`stage_from`]): symlinks inside it are kept only when they resolve
//! inside it, so nothing outside the `.git` folder is ever read. A `.git` *file* (a linked
//! worktree or a submodule, pointing at a repository elsewhere) and a `.git` symlink are not
//! followed: the source then counts as having no repository.

use super::{StageError, StagedTree, stage_from};
use crate::archive::fs::{lstat_at, open_dir_at};
use crate::limits::StageLimits;
use rustix::fs::{FileType, Mode, OFlags};
use std::io;
use std::path::Path;

/// What the top of a project folder holds under the name `.git`.
#[derive(Debug)]
pub enum GitDir {
    /// No `.git` at all.
    Absent,
    /// A `.git` that is not a folder (a file pointing elsewhere, a symlink, …): not
    /// followed; `kind` says what it is.
    NotFollowed { kind: &'static str },
    /// The folder, copied.
    Staged(StagedTree),
}

/// Copies `src/.git` to `dest` when it is a folder, within `limits` (the caller passes
/// what the source copy left of its own limits, so that both together stay within them).
pub fn stage_git_dir(src: &Path, dest: &Path, limits: &StageLimits) -> Result<GitDir, StageError> {
    let read_error = |path: &Path, source: io::Error| StageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let root = rustix::fs::openat(
        rustix::fs::CWD,
        src,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| read_error(src, e.into()))?;
    let git_path = src.join(".git");
    let stat = match lstat_at(&root, ".git") {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(GitDir::Absent),
        Err(e) => return Err(read_error(&git_path, e)),
    };
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {
            // Opened without following a link: a swap for a symlink since the lstat fails.
            let dir = open_dir_at(&root, ".git").map_err(|e| read_error(&git_path, e))?;
            return stage_from(dir, &git_path, dest, limits).map(GitDir::Staged);
        }
        FileType::RegularFile => "a file (a linked worktree or a submodule)",
        FileType::Symlink => "a symlink",
        _ => "not a folder",
    };
    Ok(GitDir::NotFollowed { kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitExceeded;
    use std::fs;

    fn limits() -> StageLimits {
        StageLimits::default()
    }

    #[test]
    fn copies_a_git_folder_and_drops_links_out_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("project");
        fs::create_dir_all(src.join(".git/refs/heads")).unwrap();
        fs::write(src.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        fs::write(src.join(".git/refs/heads/main"), "0".repeat(40)).unwrap();
        let secret = tmp.path().join("secret");
        fs::write(&secret, "outside").unwrap();
        std::os::unix::fs::symlink(&secret, src.join(".git/packed-refs")).unwrap();
        std::os::unix::fs::symlink("../../secret", src.join(".git/config")).unwrap();
        let dest = tmp.path().join("copy");
        let GitDir::Staged(staged) = stage_git_dir(&src, &dest, &limits()).unwrap() else {
            panic!("not staged");
        };
        assert_eq!(
            fs::read_to_string(dest.join("HEAD")).unwrap(),
            "ref: refs/heads/main\n"
        );
        assert!(dest.join("refs/heads/main").is_file());
        assert!(fs::symlink_metadata(dest.join("packed-refs")).is_err());
        assert!(fs::symlink_metadata(dest.join("config")).is_err());
        assert_eq!(staged.warnings.len(), 2, "{:?}", staged.warnings);
    }

    #[test]
    fn a_git_file_or_link_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("elsewhere");
        fs::create_dir_all(&repo).unwrap();
        fs::write(repo.join("HEAD"), "x").unwrap();
        let file = tmp.path().join("worktree");
        fs::create_dir_all(&file).unwrap();
        fs::write(file.join(".git"), "gitdir: ../elsewhere\n").unwrap();
        let link = tmp.path().join("linked");
        fs::create_dir_all(&link).unwrap();
        std::os::unix::fs::symlink(&repo, link.join(".git")).unwrap();
        let none = tmp.path().join("plain");
        fs::create_dir_all(&none).unwrap();
        for (src, expected) in [(&file, "a file"), (&link, "a symlink")] {
            let dest = tmp.path().join("copy");
            match stage_git_dir(src, &dest, &limits()).unwrap() {
                GitDir::NotFollowed { kind } => assert!(kind.starts_with(expected), "{kind}"),
                other => panic!("{other:?}"),
            }
            assert!(!dest.exists());
        }
        let dest = tmp.path().join("copy");
        assert!(matches!(
            stage_git_dir(&none, &dest, &limits()).unwrap(),
            GitDir::Absent
        ));
    }

    #[test]
    fn the_copy_keeps_to_its_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("project");
        fs::create_dir_all(src.join(".git/objects/pack")).unwrap();
        fs::write(src.join(".git/objects/pack/pack-1.pack"), vec![0u8; 4096]).unwrap();
        let dest = tmp.path().join("copy");
        let small = StageLimits {
            max_entries: 100,
            max_bytes: 1000,
        };
        let error = stage_git_dir(&src, &dest, &small).unwrap_err();
        assert!(
            matches!(
                error,
                StageError::Limit(LimitExceeded::Bytes { limit: 1000 })
            ),
            "{error:?}"
        );
        assert!(!dest.exists());
    }
}
