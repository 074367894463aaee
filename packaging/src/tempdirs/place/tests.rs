use super::*;

const GIB: u64 = 1 << 30;

fn facts(free_bytes: u64, available: u64) -> MemoryFacts {
    MemoryFacts {
        free_bytes,
        free_inodes: u64::MAX,
        available,
    }
}

fn memory(facts: MemoryFacts) -> impl FnOnce() -> Result<MemoryFacts, String> {
    move || Ok(facts)
}

fn budget(scratch: u64, guests: u64) -> Budget {
    Budget {
        scratch,
        entries: scratch / 4096,
        guests,
    }
}

#[test]
fn memory_only_when_the_budget_fits_in_half_the_free_space_and_half_what_guests_leave() {
    let plenty = facts(24 * GIB, 23 * GIB);
    // Half of 23 GiB less 2 GiB for the guest.
    let room = 21 * GIB / 2;
    let place = decide(None, false, budget(8 * GIB, 2 * GIB), memory(plenty));
    assert_eq!(place.folder, Path::new(MEMORY_FOLDER));
    assert_eq!(
        place.reason,
        PlaceReason::Memory {
            budget: 8 * GIB,
            room
        }
    );
    // Past half of what the guests leave: on disk, saying why.
    let place = decide(None, false, budget(room + 1, 2 * GIB), memory(plenty));
    assert_eq!(place.folder, std::env::temp_dir());
    let PlaceReason::NotMemory(why) = &place.reason else {
        panic!("{place:?}");
    };
    assert!(why.contains("(10752 MiB) do not fit in /dev/shm"), "{why}");
    assert!(
        why.contains("23552 MiB of memory available less 2048 MiB"),
        "{why}"
    );
    // Guests that would take everything leave no room at all.
    assert_eq!(plenty.room(30 * GIB), 0);
    // Half of a small /dev/shm (a container's 64 MiB) is the bound.
    let small = facts(64 << 20, 23 * GIB);
    assert_eq!(small.room(0), 32 << 20);
    let place = decide(None, false, budget(4 * GIB, 0), memory(small));
    assert!(
        matches!(place.reason, PlaceReason::NotMemory(_)),
        "{place:?}"
    );
    // And so are half its inodes.
    let few_inodes = MemoryFacts {
        free_inodes: 1000,
        ..plenty
    };
    let entries = |entries| Budget {
        entries,
        ..budget(GIB, 0)
    };
    assert!(few_inodes.fits(entries(500)).is_ok());
    let why = few_inodes.fits(entries(501)).unwrap_err();
    assert!(
        why.contains("(501 files and folders) do not fit in half of /dev/shm's 1000 free inodes"),
        "{why}"
    );
}

#[test]
fn a_named_folder_or_a_set_tmpdir_wins_without_reading_memory() {
    let unread = || -> Result<MemoryFacts, String> { panic!("memory was read") };
    let asked = decide(Some(Path::new("/var/tmp")), true, budget(1, 0), unread);
    assert_eq!(
        asked,
        ScratchPlace {
            folder: PathBuf::from("/var/tmp"),
            reason: PlaceReason::Asked
        }
    );
    let unread = || -> Result<MemoryFacts, String> { panic!("memory was read") };
    let tmpdir = decide(None, true, budget(1, 0), unread);
    assert_eq!(tmpdir.reason, PlaceReason::TmpDir);
    assert_eq!(tmpdir.folder, std::env::temp_dir());
    // Memory that cannot be used says why.
    let place = decide(None, false, budget(1, 0), || {
        Err("/dev/shm is not a tmpfs".into())
    });
    assert_eq!(
        place.reason,
        PlaceReason::NotMemory("/dev/shm is not a tmpfs".into())
    );
    assert_eq!(
        place.reason.to_string(),
        "not in memory: /dev/shm is not a tmpfs"
    );
    // A folder that cannot be made in memory falls back to disk; elsewhere it is an error.
    let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let memory_place = decide(None, false, budget(1, 0), memory(facts(GIB, GIB)));
    let fallback = after_failure(&memory_place, &error).unwrap();
    assert_eq!(fallback.folder, std::env::temp_dir());
    assert!(
        matches!(&fallback.reason, PlaceReason::NotMemory(why) if why.contains("no folder could be made in /dev/shm"))
    );
    assert_eq!(after_failure(&tmpdir, &error), None);
}

#[test]
fn huge_pages_for_every_file_keep_scratch_folders_out_of_memory() {
    let line = |options: &str| {
        format!(
            "25 23 0:21 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs {options}\n\
             30 23 0:25 / /run rw shared:5 - tmpfs tmpfs rw,huge=always\n"
        )
    };
    let madvise = "always within_size advise [never] deny force";
    assert!(!huge_pages_always(&line("rw,size=24683792k"), madvise));
    assert!(!huge_pages_always(&line("rw,huge=within_size"), madvise));
    assert!(huge_pages_always(&line("rw,size=1g,huge=always"), madvise));
    assert!(huge_pages_always(
        &line("rw"),
        "always within_size advise never deny [force]"
    ));
    // The last mount on the folder is the one seen.
    let remounted = format!(
        "{}26 25 0:22 / /dev/shm rw - tmpfs tmpfs rw\n",
        line("rw,huge=always")
    );
    assert!(!huge_pages_always(&remounted, madvise));
}

#[test]
fn mem_available_is_read_in_bytes() {
    let meminfo = "MemTotal:       24683792 kB\nMemFree:         1000 kB\n\
                   MemAvailable:   24244864 kB\nBuffers: 1 kB\n";
    assert_eq!(mem_available(meminfo), Some(24_244_864 * 1024));
    assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    assert_eq!(mem_available("MemAvailable: lots\n"), None);
}

/// A control-group hierarchy under a private root: `files` are (path, contents).
fn hierarchy(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = root.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    root
}

#[test]
fn the_tightest_control_group_on_the_way_to_the_root_bounds_the_memory() {
    // v2: the group itself is unlimited, its parent has 1 GiB with 256 MiB used.
    let root = hierarchy(&[
        ("memory.max", "max\n"),
        ("memory.current", "5000000000\n"),
        ("jobs/memory.max", "1073741824\n"),
        ("jobs/memory.current", "268435456\n"),
        ("jobs/build/memory.max", "max\n"),
        ("jobs/build/memory.current", "1000\n"),
    ]);
    assert_eq!(
        cgroup_headroom("0::/jobs/build\n", root.path()),
        Some((1 << 30) - (256 << 20))
    );
    // memory.high bounds too.
    fs::write(root.path().join("jobs/build/memory.high"), "2000\n").unwrap();
    assert_eq!(cgroup_headroom("0::/jobs/build\n", root.path()), Some(1000));
    // v1: the memory controller's own hierarchy, mounted co-listed or not.
    let root = hierarchy(&[
        ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory/memory.usage_in_bytes", "10\n"),
        ("memory/api/x/memory.limit_in_bytes", "2147483648\n"),
        ("memory/api/x/memory.usage_in_bytes", "1073741824\n"),
    ]);
    let groups = "9:name=systemd:/\n4:memory:/api/x\n0::/\n";
    assert_eq!(cgroup_headroom(groups, root.path()), Some(1 << 30));
    // A group that cannot be read is bounded by the ancestors that can.
    assert_eq!(
        cgroup_headroom("4:memory:/gone\n", root.path()),
        Some(9_223_372_036_854_771_712 - 10)
    );
    assert_eq!(cgroup_headroom("", root.path()), Some(u64::MAX));
    // A group none of whose levels can be read may have a limit nobody sees.
    let unmounted = tempfile::tempdir().unwrap();
    assert_eq!(
        cgroup_headroom("0::/user.slice/build\n", unmounted.path()),
        None
    );
    assert_eq!(cgroup_headroom("0::/\n", unmounted.path()), Some(u64::MAX));
}

#[test]
fn this_machines_memory_folder_is_read_or_refused_with_a_reason() {
    // Whatever the machine has, the answer is facts or a reason naming the folder.
    match memory_facts() {
        Ok(facts) => {
            assert!(facts.available > 0 && facts.free_inodes > 0, "{facts:?}");
            assert_eq!(memory_folder(), Some(PathBuf::from(MEMORY_FOLDER)));
        }
        Err(why) => {
            assert!(
                why.contains(MEMORY_FOLDER) || why.contains("meminfo"),
                "{why}"
            );
        }
    }
}

/// Builds of one process share the room: a second build that would fit alone does not fit
/// beside the first one's reservation, and fits again once that is given back.
#[test]
fn builds_in_memory_at_once_share_the_room() {
    if std::env::var_os("TMPDIR").is_some_and(|v| !v.is_empty()) {
        let (place, reservation) = choose(None, budget(1, 0));
        assert_eq!(place.reason, PlaceReason::TmpDir);
        assert!(reservation.is_none());
        return;
    }
    let facts = memory_facts().expect("this machine's /dev/shm is a tmpfs (CI's is)");
    let share = Budget {
        scratch: facts.room(0) / 5 * 3,
        entries: 1,
        guests: 0,
    };
    let (first, held) = choose(None, share);
    assert!(
        matches!(first.reason, PlaceReason::Memory { .. }) && held.is_some(),
        "{first:?}"
    );
    let (second, none) = choose(None, share);
    assert!(
        matches!(&second.reason, PlaceReason::NotMemory(why) if why.contains("do not fit")),
        "{second:?}"
    );
    assert!(none.is_none());
    drop(held);
    let (third, again) = choose(None, share);
    assert!(
        matches!(third.reason, PlaceReason::Memory { .. }),
        "{third:?}"
    );
    drop(again);
}

#[test]
fn a_hybrid_hosts_v2_line_is_not_where_its_memory_limits_are() {
    let root = hierarchy(&[
        ("memory/build/memory.limit_in_bytes", "4096\n"),
        ("memory/build/memory.usage_in_bytes", "1024\n"),
    ]);
    // The v2 group has no memory files (its controller is v1's): not "unreadable".
    let groups = "5:memory:/build\n0::/user.slice/session-2.scope\n";
    assert_eq!(cgroup_headroom(groups, root.path()), Some(3072));
}
