//! Who may write the folders the cache depends on.
//!
//! The cache holds native code that runs outside the sandbox, so only the user may be able to
//! change it: the cache folder and its buckets must belong to the user (the effective uid)
//! and be writable by nobody else. A folder above the cache that another user can write lets
//! them rename the cache away and put their own in its place, so every folder on the way
//! must belong to root or the user and be writable by nobody else, unless its sticky bit
//! keeps others from renaming what they do not own (as in `/tmp`). `/` itself is not
//! checked: it is the administrator's, and inside user namespaces it can show the overflow
//! uid. The chain is checked both as written and as resolved, so a symlink on the way is
//! covered where it lives and where it leads. ACLs that grant writing show in the group
//! bits (the ACL mask), so they are refused too.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Group- and other-write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// The effective uid of this process: the owner of what it creates (read once; wasm-build
/// never changes it, and tree walks ask for every entry).
pub fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| rustix::process::geteuid().as_raw())
}

/// Whether `meta` belongs to this process's user.
pub fn is_ours(meta: &Metadata) -> bool {
    meta.uid() == euid()
}

/// Which folder a check is about, for the message and its fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The cache folder or one of its buckets.
    Cache,
    /// The folder holding the seal key.
    SealKey,
}

impl Place {
    fn alternative(self) -> &'static str {
        match self {
            Place::Cache => "set WASM_BUILD_CACHE_DIR to a folder of your own",
            Place::SealKey => "set XDG_STATE_HOME to a folder of your own",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Cache => "the cache folder",
            Place::SealKey => "the folder of the cache's seal key",
        })
    }
}

/// A folder the cache depends on that another user could change.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeFolder {
    #[error(
        "{place} {} belongs to uid {owner}, not to you (uid {euid}), so another user could \
         change the native code wasm-build runs outside the sandbox; make it yours \
         (`chown -R {euid} {}` as root) or {}",
        dir.display(), dir.display(), place.alternative()
    )]
    Owner {
        place: Place,
        dir: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error(
        "{place} {} can be written by other users (mode {mode:04o}), so they could change the \
         native code wasm-build runs outside the sandbox; run `chmod go-w {}` or {}",
        dir.display(), dir.display(), place.alternative()
    )]
    Writable {
        place: Place,
        dir: PathBuf,
        mode: u32,
    },
    #[error(
        "{place} {} is not a folder (a symbolic link?); remove it and wasm-build makes it again",
        dir.display()
    )]
    NotAFolder { place: Place, dir: PathBuf },
    #[error(
        "the folder {} above {place} {} belongs to uid {owner}, who could swap what is below \
         it; {}",
        dir.display(), below.display(), place.alternative()
    )]
    OwnerAbove {
        place: Place,
        dir: PathBuf,
        below: PathBuf,
        owner: u32,
    },
    #[error(
        "the folder {} above {place} {} can be written by other users (mode {mode:04o}, no \
         sticky bit), who could swap what is below it; run `chmod go-w {}` (or `chmod +t {}`) \
         or {}",
        dir.display(), below.display(), dir.display(), dir.display(), place.alternative()
    )]
    WritableAbove {
        place: Place,
        dir: PathBuf,
        below: PathBuf,
        mode: u32,
    },
    #[error("cannot check who may write {place} {}", dir.display())]
    Inspect {
        place: Place,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Checks a folder wasm-build keeps trusted files in: a folder (`follow`: reached through a
/// symlink the user chose, as the cache root may be), the user's, and writable by no one
/// else.
pub(crate) fn check_own(dir: &Path, place: Place, follow: bool) -> Result<(), UnsafeFolder> {
    let meta = if follow {
        fs::metadata(dir)
    } else {
        fs::symlink_metadata(dir)
    };
    let meta = meta.map_err(|source| UnsafeFolder::Inspect {
        place,
        dir: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(UnsafeFolder::NotAFolder {
            place,
            dir: dir.to_path_buf(),
        });
    }
    if !is_ours(&meta) {
        return Err(UnsafeFolder::Owner {
            place,
            dir: dir.to_path_buf(),
            owner: meta.uid(),
            euid: euid(),
        });
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(UnsafeFolder::Writable {
            place,
            dir: dir.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Checks every folder above `dir` (an existing folder), as written and as resolved, up to
/// and excluding `/`: each must belong to root or the user, and be writable by no one else
/// unless its sticky bit is set.
pub(crate) fn check_above(dir: &Path, place: Place) -> Result<(), UnsafeFolder> {
    let inspect = |source| UnsafeFolder::Inspect {
        place,
        dir: dir.to_path_buf(),
        source,
    };
    let written = std::path::absolute(dir).map_err(inspect)?;
    let resolved = fs::canonicalize(&written).map_err(inspect)?;
    let mut seen = BTreeSet::new();
    let euid = euid();
    for above in written
        .ancestors()
        .skip(1)
        .chain(resolved.ancestors().skip(1))
    {
        if above.parent().is_none() || !seen.insert(above) {
            continue;
        }
        let meta = fs::metadata(above).map_err(|source| UnsafeFolder::Inspect {
            place,
            dir: above.to_path_buf(),
            source,
        })?;
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(UnsafeFolder::OwnerAbove {
                place,
                dir: above.to_path_buf(),
                below: dir.to_path_buf(),
                owner: meta.uid(),
            });
        }
        if meta.mode() & WRITABLE_BY_OTHERS != 0 && meta.mode() & STICKY == 0 {
            return Err(UnsafeFolder::WritableAbove {
                place,
                dir: above.to_path_buf(),
                below: dir.to_path_buf(),
                mode: meta.mode() & 0o7777,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_folder_others_can_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        check_own(dir.path(), Place::Cache, false).unwrap();
        for mode in [0o777, 0o770, 0o702, 0o1777] {
            chmod(dir.path(), mode);
            let error = check_own(dir.path(), Place::Cache, false).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, UnsafeFolder::Writable { .. }), "{message}");
            assert!(
                message.contains(&format!("chmod go-w {}", dir.path().display()))
                    && message.contains(&format!("(mode {mode:04o})"))
                    && message.contains("WASM_BUILD_CACHE_DIR"),
                "{message}"
            );
        }
        // Readable by others is a matter of privacy, not of trust.
        chmod(dir.path(), 0o755);
        check_own(dir.path(), Place::Cache, false).unwrap();
    }

    #[test]
    fn a_link_is_followed_only_where_the_user_chose_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        check_own(&link, Place::Cache, true).unwrap();
        assert!(matches!(
            check_own(&link, Place::Cache, false),
            Err(UnsafeFolder::NotAFolder { .. })
        ));
    }

    #[test]
    fn a_folder_above_that_others_can_write_is_refused_unless_sticky() {
        let top = tempfile::tempdir().unwrap();
        let shared = top.path().join("shared");
        let cache = shared.join("mine/cache");
        fs::create_dir_all(&cache).unwrap();
        check_above(&cache, Place::Cache).unwrap();

        chmod(&shared, 0o777);
        let error = check_above(&cache, Place::Cache).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, UnsafeFolder::WritableAbove { dir, .. } if *dir == shared),
            "{message}"
        );
        assert!(
            message.contains(&format!("chmod go-w {}", shared.display()))
                && message.contains(&cache.display().to_string()),
            "{message}"
        );
        // The sticky bit keeps others from renaming what is not theirs, as in /tmp.
        chmod(&shared, 0o1777);
        check_above(&cache, Place::Cache).unwrap();

        // Through a symlink: the folders where it leads are checked too.
        chmod(&shared, 0o777);
        let link = top.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        assert!(matches!(
            check_above(&link, Place::Cache),
            Err(UnsafeFolder::WritableAbove { dir, .. }) if dir == shared
        ));
        chmod(&shared, 0o755);
    }

    #[test]
    fn folders_of_other_users_are_refused() {
        // Only root can give a folder away; elsewhere this is covered by the message tests.
        if euid() != 0 {
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let theirs = top.path().join("theirs");
        let cache = theirs.join("cache");
        fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::chown(&cache, Some(65534), None).unwrap();
        let message = check_own(&cache, Place::Cache, false)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("belongs to uid 65534, not to you (uid 0)")
                && message.contains(&format!("chown -R 0 {}", cache.display())),
            "{message}"
        );
        std::os::unix::fs::chown(&cache, Some(0), None).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        assert!(matches!(
            check_above(&cache, Place::Cache),
            Err(UnsafeFolder::OwnerAbove { owner: 65534, .. })
        ));
    }
}
