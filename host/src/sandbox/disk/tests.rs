use super::*;

const MIB: u64 = 1 << 20;

fn file(id: u64, size: u64, links: u64) -> Stat {
    Stat {
        id,
        kind: Kind::File,
        size,
        links,
    }
}

fn folder(id: u64) -> Stat {
    Stat {
        id,
        kind: Kind::Dir,
        size: 4096,
        links: 2,
    }
}

/// The account's view of `fd`, which must be a growable file.
fn growable(account: &DiskAccount, fd: u32) -> Growable {
    account.growable(fd).expect("a growable file")
}

/// Creates a file of `size` bytes as the wrappers would: an entry, then its writes.
fn create(account: &mut DiskAccount, fd: u32, id: u64, size: u64) {
    account.reserve(ENTRY_BYTES).unwrap();
    account.charge(ENTRY_BYTES);
    account.opened_as(fd, false, file(id, 0, 1), None);
    let file = growable(account, fd);
    account.reserve(size).unwrap();
    account.grew(file, size);
}

#[test]
fn counts_bytes_and_entries_of_the_mounts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/x"), vec![0u8; 1000]).unwrap();
    std::fs::write(dir.path().join("y"), vec![0u8; 24]).unwrap();
    let roots = [dir.path().to_path_buf()];
    assert_eq!(measure(&roots, u64::MAX), 1024 + 3 * ENTRY_BYTES);
    assert!(measure(&roots, 10) > 10);
    // Empty files are not free.
    for i in 0..100 {
        std::fs::write(dir.path().join(format!("empty-{i}")), b"").unwrap();
    }
    assert_eq!(measure(&roots, u64::MAX), 1024 + 103 * ENTRY_BYTES);
}

#[test]
fn runs_writing_into_the_same_mounts_at_once_share_the_room_left() {
    let (mounted, read_only) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(mounted.path().join("held"), vec![0u8; 1000]).unwrap();
    std::fs::write(read_only.path().join("big"), vec![0u8; 50_000]).unwrap();
    let held = 1000 + ENTRY_BYTES;
    let run = |disk: u64| GuestRun {
        args: Vec::new(),
        env: Vec::new(),
        mounts: vec![
            crate::sandbox::Mount::read_write(mounted.path(), "/a"),
            crate::sandbox::Mount::read_only(read_only.path(), "/b"),
        ],
        limits: crate::sandbox::Limits {
            disk,
            ..Default::default()
        },
        log: crate::sandbox::LogSink::Capture,
        determinism: None,
    };
    // Each of two runs may add half of what is left: together no more than one could.
    let limit = held + 2 * MIB;
    assert_eq!(shared_disk_limit(&run(limit), 2), held + MIB);
    assert_eq!(shared_disk_limit(&run(limit), 1), limit);
    // Mounts already over the limit: each run finds them so and stops at once.
    assert_eq!(shared_disk_limit(&run(held - 1), 2), held - 1);
}

#[test]
fn a_tree_that_cannot_be_walked_is_over_any_limit() {
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    assert_eq!(measure(&[missing], 10), u64::MAX);
}

#[test]
fn refuses_what_would_pass_the_limit_and_stays_over_it() {
    let mut account = DiskAccount::new(10 * MIB, 4 * MIB);
    account.reserve(6 * MIB).unwrap();
    assert!(!account.over_limit());
    assert!(account.reserve(6 * MIB + 1).is_err());
    assert!(account.over_limit());
    // A refused call ends the run: nothing is let through after it.
    assert!(account.reserve(0).is_err());
    assert_eq!(account.used(), 4 * MIB);
}

#[test]
fn a_file_counts_at_its_highest_and_writes_inside_it_are_free() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    create(&mut account, 5, 1, 3 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 3 * MIB);
    // Overwriting what is there does not grow it; a write past its end does.
    let f = growable(&account, 5);
    account.grew(f, 2 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 3 * MIB);
    account.grew(f, 4 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 4 * MIB);
    // Closed without having shrunk: nothing to settle, it stays counted.
    assert!(!account.size_needed_at_close(5));
    account.closed(5, None);
    assert_eq!(account.used(), ENTRY_BYTES + 4 * MIB);
}

#[test]
fn an_unlinked_open_file_counts_until_its_last_descriptor_closes() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    create(&mut account, 5, 1, MIB);
    account.opened(6, false);
    // Unlinking it needs every descriptor identified first (the wrappers stat them).
    assert_eq!(account.unidentified(), [6]);
    account.identify(6, file(1, MIB, 1));
    account.removed(file(1, MIB, 1), 6, true);
    let f = growable(&account, 5);
    account.grew(f, 3 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 3 * MIB);
    account.closed(5, None);
    assert_eq!(account.used(), ENTRY_BYTES + 3 * MIB, "6 still holds it");
    account.closed(6, None);
    assert_eq!(account.used(), dirent_bytes(6), "its name's slot stays");
}

#[test]
fn a_removed_file_is_credited_only_when_no_descriptor_may_hold_it() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    create(&mut account, 5, 1, MIB);
    account.closed(5, None);
    // A descriptor the account could not identify might hold the file.
    account.opened(7, false);
    account.removed(file(1, MIB, 1), 4, false);
    assert_eq!(account.used(), ENTRY_BYTES + MIB);
    // Identified as another file, it does not.
    create(&mut account, 8, 2, MIB);
    account.closed(8, None);
    account.identify(7, file(3, 0, 1));
    account.removed(file(2, MIB, 1), 4, true);
    assert_eq!(account.used(), ENTRY_BYTES + MIB + dirent_bytes(4));
}

#[test]
fn hard_links_count_the_bytes_once_and_free_them_with_the_last_link() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    create(&mut account, 5, 1, 10 * MIB);
    account.closed(5, None);
    for _ in 0..3 {
        account.reserve(ENTRY_BYTES).unwrap();
        account.charge(ENTRY_BYTES);
    }
    assert_eq!(account.used(), 4 * ENTRY_BYTES + 10 * MIB);
    for links in (2..=4).rev() {
        account.removed(file(1, 10 * MIB, links), 4, true);
    }
    assert_eq!(account.used(), ENTRY_BYTES + 10 * MIB + 3 * dirent_bytes(4));
    account.removed(file(1, 10 * MIB, 1), 4, true);
    assert_eq!(account.used(), 4 * dirent_bytes(4));
}

#[test]
fn a_truncated_file_is_settled_when_closed() {
    // A 10 MiB file from before the run, counted when the mounts were measured.
    let mut account = DiskAccount::new(u64::MAX, ENTRY_BYTES + 10 * MIB);
    // Opened with O_TRUNC: 0 bytes now, its 10 MiB still counted while it is open.
    account.opened_as(5, false, file(1, 0, 1), Some(10 * MIB));
    let f = growable(&account, 5);
    account.grew(f, 4 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 10 * MIB);
    assert!(account.size_needed_at_close(5));
    account.closed(5, Some(4 * MIB));
    assert_eq!(account.used(), ENTRY_BYTES + 4 * MIB);
    // set_size down, then closed.
    account.opened(6, false);
    account.identify(6, file(1, 4 * MIB, 1));
    let f = growable(&account, 6);
    account.resized(f, MIB);
    account.closed(6, Some(MIB));
    assert_eq!(account.used(), ENTRY_BYTES + MIB);
}

#[test]
fn a_removed_folder_is_credited_when_its_last_descriptor_closes() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    account.charge(ENTRY_BYTES);
    account.opened(4, false);
    account.identify(4, folder(9));
    assert!(account.growable(4).is_none(), "a folder is no file to grow");
    account.removed(folder(9), 3, true);
    assert_eq!(account.used(), ENTRY_BYTES);
    account.closed(4, None);
    assert_eq!(account.used(), dirent_bytes(3));
}

#[test]
fn a_renumbered_descriptor_keeps_its_file() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    create(&mut account, 5, 1, MIB);
    create(&mut account, 6, 2, MIB);
    account.removed(file(2, MIB, 1), 4, true);
    // 5 replaces 6: 6's file (unlinked) is closed and freed, 5's goes on as 6.
    account.renumbered(5, 6, None);
    assert_eq!(account.used(), ENTRY_BYTES + MIB + dirent_bytes(4));
    assert!(account.growable(5).is_none());
    let f = growable(&account, 6);
    account.grew(f, 2 * MIB);
    assert_eq!(account.used(), ENTRY_BYTES + 2 * MIB + dirent_bytes(4));
}

#[test]
fn appending_descriptors_are_followed() {
    let mut account = DiskAccount::new(u64::MAX, 0);
    account.opened(5, true);
    account.identify(5, file(1, 0, 1));
    assert!(growable(&account, 5).append);
    account.set_append(5, false);
    assert!(!growable(&account, 5).append);
}
