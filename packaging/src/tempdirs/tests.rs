use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

/// A private stand-in for `$TMPDIR`.
fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A folder as a process that died would have left it: our name, nobody holding it.
fn leftover(tmp: &Path, name: &str, bytes: usize) -> PathBuf {
    let path = tmp.join(name);
    fs::create_dir_all(path.join("src-0/deep")).unwrap();
    fs::write(path.join("src-0/deep/file"), vec![1u8; bytes]).unwrap();
    path
}

#[test]
fn names_are_recognised_exactly() {
    for name in [
        "wasm-build-abcDEF1234",
        "wasm-build-root-abcDEF1234",
        "wasm-build-run-0123456789",
        "wasm-build-cache-zzzzzzzzzz",
    ] {
        assert!(is_ours(name), "{name}");
    }
    for name in [
        "wasm-build-abc",
        "wasm-build-test-abcDEF1234",
        "wasm-build-abcDEF1234x",
        "wasm-build-abcDEF12.4",
        ".wasm-build-abcDEF1234",
        "wasm-build-cache",
    ] {
        assert!(!is_ours(name), "{name}");
    }
}

#[test]
fn a_held_folder_is_private_named_as_its_kind_and_removed_when_dropped() {
    let tmp = tmp();
    for kind in TempKind::ALL {
        let held = HeldDir::new_in(tmp.path(), kind).unwrap();
        let name = held
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with(kind.prefix()) && is_ours(&name), "{name}");
        let mode = fs::metadata(held.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::create_dir_all(held.path().join("a/b")).unwrap();
        let path = held.path().to_path_buf();
        drop(held);
        assert!(!path.exists());
    }
}

#[test]
fn a_sweep_removes_what_nobody_holds_and_leaves_what_is_held() {
    let tmp = tmp();
    let live = HeldDir::new_in(tmp.path(), TempKind::Scratch).unwrap();
    fs::write(live.path().join("work"), b"in progress").unwrap();
    let dead = leftover(tmp.path(), "wasm-build-deadDEAD00", 1000);
    let dead_root = leftover(tmp.path(), "wasm-build-root-deadDEAD00", 10);
    let swept = sweep_stale(tmp.path()).unwrap();
    assert_eq!(
        swept,
        Swept {
            folders: 2,
            bytes: 1010
        }
    );
    assert!(!dead.exists() && !dead_root.exists());
    assert_eq!(fs::read(live.path().join("work")).unwrap(), b"in progress");
}

#[test]
fn a_sweep_leaves_other_names_links_and_files_alone() {
    let tmp = tmp();
    let other = leftover(tmp.path(), "wasm-build-test-abcDEF1234", 10);
    let target = leftover(tmp.path(), "elsewhere", 10);
    std::os::unix::fs::symlink(&target, tmp.path().join("wasm-build-linkLINK00")).unwrap();
    fs::write(tmp.path().join("wasm-build-fileFILE00"), b"x").unwrap();
    assert_eq!(sweep_stale(tmp.path()).unwrap(), Swept::default());
    assert!(other.join("src-0/deep/file").exists());
    assert!(target.join("src-0/deep/file").exists());
    assert!(tmp.path().join("wasm-build-fileFILE00").exists());
}

#[test]
fn a_sweep_leaves_another_users_folder_alone() {
    if !rustix::process::getuid().is_root() {
        // Only root can make a folder another user owns.
        return;
    }
    let tmp = tmp();
    let theirs = leftover(tmp.path(), "wasm-build-theirsTHEI", 10);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    assert_eq!(sweep_stale(tmp.path()).unwrap(), Swept::default());
    assert!(theirs.join("src-0/deep/file").exists());
}

#[test]
fn a_shared_folder_without_the_sticky_bit_is_not_swept() {
    let tmp = tmp();
    let dead = leftover(tmp.path(), "wasm-build-deadDEAD00", 10);
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(sweep_stale(tmp.path()).unwrap(), Swept::default());
    assert!(dead.exists());
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(sweep_stale(tmp.path()).unwrap().folders, 1);
}

#[test]
fn a_folder_a_sweep_holds_is_not_handed_out() {
    let tmp = tmp();
    // A sweep that holds every folder it sees: the maker must not take one it cannot lock.
    let held = HeldDir::new_in(tmp.path(), TempKind::Run).unwrap();
    let fd = rustix::fs::open(held.path(), DIR_FLAGS, Mode::empty()).unwrap();
    assert_eq!(
        rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive),
        Err(Errno::WOULDBLOCK),
        "a second open file description cannot take the lock of a held folder"
    );
}

#[test]
fn remove_held_removes_this_process_folders_now() {
    let tmp = tmp();
    let a = HeldDir::new_in(tmp.path(), TempKind::Scratch).unwrap();
    let b = HeldDir::new_in(tmp.path(), TempKind::Cache).unwrap();
    fs::create_dir_all(a.path().join("x/y")).unwrap();
    // (Only this test's: the other tests of this process hold folders too.)
    let failed = remove_held_where(|path| path.starts_with(tmp.path()));
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!a.path().exists() && !b.path().exists());
    // Their owners then find nothing to remove.
    a.remove().unwrap();
    drop(b);
}
