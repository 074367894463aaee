//! Property tests: hostile archives and trees, generated at random, never make extraction,
//! staging or verification panic, write outside their destination, or leave a link that
//! leads out of the tree.

use crate::archive::{extract_sdist, stage_source_tree};
use crate::limits::{ArchiveLimits, ArtifactLimits, StageLimits};
use crate::test_support::{
    TarEntry, ZipEntry, gzip, record_for, snapshot, tar_gz, try_zip_bytes, wheel_files, wheel_zip,
};
use crate::verify::{verify_sdist, verify_wheel};
use proptest::prelude::*;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Small limits so that a generated bomb is cheap to hit.
fn limits() -> ArchiveLimits {
    ArchiveLimits {
        max_members: 64,
        max_unpacked_bytes: 1 << 20,
        max_compression_ratio: 50,
        ratio_grace_bytes: 64 << 10,
        deadline: None,
    }
}

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"a".to_vec()),
        4 => Just(b"b".to_vec()),
        4 => Just(b"..".to_vec()),
        2 => Just(b"pkg-1.0".to_vec()),
        2 => Just(b".".to_vec()),
        1 => Just(b"".to_vec()),
        1 => Just(b"\\..".to_vec()),
        1 => Just(b"\0".to_vec()),
        1 => Just(b"\xff".to_vec()),
        1 => Just(b"\n".to_vec()),
        2 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

/// A path of 1 to 4 components, sometimes absolute, with or without a trailing slash.
fn raw_path() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::bool::weighted(0.1),
        proptest::collection::vec(component(), 1..5),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(absolute, components, slash)| {
            let mut out = if absolute { b"/".to_vec() } else { Vec::new() };
            out.extend(components.join(&b'/'));
            if slash {
                out.push(b'/');
            }
            out
        })
}

/// A member name: often a plain one inside the expected top-level folder (so that some
/// archives pass and their trees get checked), often a hostile one.
fn member_name() -> impl Strategy<Value = Vec<u8>> {
    let plain = proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..4)
        .prop_map(|c| format!("pkg-1.0/{}", c.join("/")).into_bytes());
    prop_oneof![
        8 => plain,
        4 => raw_path().prop_map(|p| [b"pkg-1.0/".as_slice(), &p].concat()),
        1 => raw_path(),
    ]
}

fn tar_entry() -> impl Strategy<Value = TarEntry> {
    let data = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        4 => (member_name(), data).prop_map(|(n, d)| TarEntry::file(n, d).mode(0o755)),
        2 => member_name().prop_map(TarEntry::dir),
        3 => (member_name(), raw_path()).prop_map(|(n, t)| TarEntry::symlink(n, t)),
        2 => (member_name(), member_name()).prop_map(|(n, t)| TarEntry::hard_link(n, t)),
        1 => member_name().prop_map(|n| TarEntry::special(n, EntryType::Fifo)),
        1 => member_name().prop_map(|n| TarEntry::special(n, EntryType::Char)),
        1 => (member_name(), 0u64..(1 << 22)).prop_map(|(n, size)| {
            // A header that lies about its size.
            let mut entry = TarEntry::file(n, b"short");
            entry.size_override = Some(size);
            entry
        }),
        1 => (member_name(), 1usize..(2 << 20)).prop_map(|(n, size)| TarEntry::file(n, vec![0u8; size])),
    ]
}

/// Walks `root` without following links and checks every entry: only files, folders and
/// symlinks; every symlink relative, lexically inside `root`, and (when it resolves at
/// all) resolving inside `root` on disk.
fn assert_contained(root: &Path) {
    let canonical_root = std::fs::canonicalize(root).unwrap();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                assert!(
                    target.is_relative(),
                    "{} -> {}",
                    path.display(),
                    target.display()
                );
                let mut depth = path
                    .parent()
                    .unwrap()
                    .strip_prefix(root)
                    .unwrap()
                    .components()
                    .count() as i64;
                for component in target.components() {
                    match component {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    assert!(
                        depth >= 0,
                        "{} -> {} leaves the tree",
                        path.display(),
                        target.display()
                    );
                }
                if let Ok(resolved) = std::fs::canonicalize(&path) {
                    assert!(
                        resolved.starts_with(&canonical_root),
                        "{} resolves to {}",
                        path.display(),
                        resolved.display()
                    );
                }
            } else {
                assert!(
                    kind.is_file(),
                    "{} is not a file, folder or link",
                    path.display()
                );
            }
        }
    }
}

/// A scratch folder with a canary and an `outside/` folder next to where output goes.
fn scene() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("canary.txt"), "canary").unwrap();
    std::fs::create_dir(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/secret"), "secret").unwrap();
    tmp
}

fn extract_and_check(tmp: &Path, archive_bytes: &[u8]) -> Result<PathBuf, ()> {
    let archive = tmp.join("pkg-1.0.tar.gz");
    std::fs::write(&archive, archive_bytes).unwrap();
    let dest = tmp.join("dest");
    let before = snapshot(tmp);
    let result = extract_sdist(&archive, &dest, &limits());
    let after: Vec<_> = snapshot(tmp)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("dest"))
        .collect();
    assert_eq!(after, before, "nothing outside dest changed");
    match result {
        Ok(extracted) => {
            let names: Vec<_> = std::fs::read_dir(&dest)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["pkg-1.0"], "a single top-level folder");
            assert_contained(&extracted.root);
            Ok(extracted.root)
        }
        Err(_) => {
            assert!(!dest.exists(), "a failed extraction leaves nothing");
            Err(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn extraction_of_hostile_archives_stays_inside(entries in proptest::collection::vec(tar_entry(), 1..8)) {
        let tmp = scene();
        let _ = extract_and_check(tmp.path(), &tar_gz(&entries));
    }

    #[test]
    fn verification_of_hostile_sdists_never_panics(entries in proptest::collection::vec(tar_entry(), 1..12)) {
        let tmp = scene();
        let path = tmp.path().join("pkg-1.0.tar.gz");
        std::fs::write(&path, tar_gz(&entries)).unwrap();
        let before = snapshot(tmp.path());
        let limits = ArtifactLimits { archive: limits(), ..Default::default() };
        let _ = verify_sdist(&path, &limits);
        prop_assert_eq!(snapshot(tmp.path()), before);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let tmp = scene();
        let _ = extract_and_check(tmp.path(), &bytes);
        let _ = extract_and_check(tmp.path(), &gzip(&bytes));
        let wheel = tmp.path().join("demo-1.0-py3-none-any.whl");
        std::fs::write(&wheel, &bytes).unwrap();
        let _ = verify_wheel(&wheel, &ArtifactLimits::default());
        let sdist = tmp.path().join("demo-1.0.tar.gz");
        std::fs::write(&sdist, gzip(&bytes)).unwrap();
        let _ = verify_sdist(&sdist, &ArtifactLimits::default());
    }

    #[test]
    fn mutated_wheels_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let files = wheel_files("demo", "1.0");
        let mut bytes = wheel_zip(&files, "demo-1.0.dist-info");
        for (index, byte) in flips {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        let tmp = scene();
        let wheel = tmp.path().join("demo-1.0-py3-none-any.whl");
        std::fs::write(&wheel, &bytes).unwrap();
        let before = snapshot(tmp.path());
        let _ = verify_wheel(&wheel, &ArtifactLimits::default());
        prop_assert_eq!(snapshot(tmp.path()), before);
    }

    #[test]
    fn wheels_with_hostile_names_are_refused(names in proptest::collection::vec(member_name(), 1..6)) {
        // Extra members beside a correct wheel, all listed in a correct RECORD: the wheel
        // may pass only if no extra name is absolute, climbs with `..`, or holds a
        // backslash or NUL.
        let mut files = wheel_files("demo", "1.0");
        let mut safe = true;
        for name in &names {
            let Ok(name) = String::from_utf8(name.clone()) else { continue };
            if name.starts_with('/') || name.contains(['\\', '\0'])
                || name.split('/').any(|c| c == "..")
            {
                safe = false;
            }
            files.push((name, b"x".to_vec()));
        }
        let record_path = "demo-1.0.dist-info/RECORD";
        let mut entries: Vec<ZipEntry> = files.iter().map(|(p, d)| ZipEntry::file(p.clone(), d)).collect();
        entries.push(ZipEntry::file(record_path, record_for(&files, record_path)));
        let written = try_zip_bytes(&entries);
        prop_assume!(written.is_ok());
        let tmp = scene();
        let wheel = tmp.path().join("demo-1.0-py3-none-any.whl");
        std::fs::write(&wheel, written.unwrap()).unwrap();
        if verify_wheel(&wheel, &ArtifactLimits::default()).is_ok() {
            prop_assert!(safe, "accepted hostile names {:?}", names);
        }
    }
}

/// Two links where the second walks `..` out of the first (`a/s -> ..`, `b -> a/s/..`):
/// a lexical check folds `s/..` away, the kernel resolves `s` first. With random depths and
/// step counts, plus a few random entries around them.
fn link_through_link() -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    let first = prop_oneof![Just("a/s"), Just("a/b/s"), Just("s")];
    (
        first,
        0usize..4,
        prop_oneof![Just("b"), Just("a/x"), Just("c/d/x")],
        0usize..3,
        1usize..4,
        proptest::collection::vec(tree_op(), 0..3),
    )
        .prop_map(
            |(first, first_ups, second, second_ups, second_downs, noise)| {
                let first_target = vec![".."; first_ups.max(1)].join("/");
                let mut second_target: Vec<&str> = vec![".."; second_ups];
                second_target.push(first);
                second_target.extend(std::iter::repeat_n("..", second_downs));
                let mut ops = vec![
                    (first.as_bytes().to_vec(), Some(first_target.into_bytes())),
                    (
                        second.as_bytes().to_vec(),
                        Some(second_target.join("/").into_bytes()),
                    ),
                ];
                ops.extend(noise);
                ops
            },
        )
}

fn tree_op() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    // Few names, and link targets built from those names, `..` steps and `.`: links often
    // point through one another, which is where a lexical check and the kernel could
    // disagree (`a/s -> ..` then `b -> a/s/..`).
    let names = || {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("s"),
            Just("a/s"),
            Just("a/b"),
            Just("a/b/s")
        ]
    };
    let target = (
        prop::bool::weighted(0.05),
        0usize..3,
        proptest::option::weighted(0.7, names()),
        0usize..3,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(absolute, ups, through, downs_up, dot)| {
            let mut parts: Vec<&str> = vec![".."; ups];
            parts.extend(through);
            if dot {
                parts.push(".");
            }
            parts.extend(std::iter::repeat_n("..", downs_up));
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
            .into_bytes()
        });
    (
        names().prop_map(|n| n.as_bytes().to_vec()),
        proptest::option::weighted(0.6, target),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn extraction_of_link_chains_stays_inside(ops in prop_oneof![link_through_link(), proptest::collection::vec(tree_op(), 1..6)]) {
        // Dense links among few names: where lexical checks and the kernel could disagree.
        // Few members, so that many archives pass and their links get checked on disk.
        let mut entries = vec![TarEntry::dir("pkg-1.0/")];
        for (name, target) in ops {
            let name = [b"pkg-1.0/".as_slice(), &name].concat();
            entries.push(match target {
                Some(target) => TarEntry::symlink(name, target),
                None => TarEntry::file(name, b"x"),
            });
        }
        let tmp = scene();
        let _ = extract_and_check(tmp.path(), &tar_gz(&entries));
    }

    #[test]
    fn staging_random_trees_never_leaves_them(ops in prop_oneof![link_through_link(), proptest::collection::vec(tree_op(), 1..16)]) {
        use std::os::unix::ffi::OsStrExt;
        let tmp = scene();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for (name, target) in &ops {
            let path = src.join(std::ffi::OsStr::from_bytes(name));
            if let Some(parent) = path.parent()
                && std::fs::create_dir_all(parent).is_err()
            {
                continue;
            }
            let _ = match target {
                Some(target) => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path),
                None => std::fs::write(&path, name),
            };
        }
        let before = snapshot(tmp.path());
        let dest = tmp.path().join("dest");
        let staged = stage_source_tree(&src, &dest, &StageLimits::default());
        let after: Vec<_> = snapshot(tmp.path())
            .into_iter()
            .filter(|(path, _)| !path.starts_with("dest"))
            .collect();
        prop_assert_eq!(after, before);
        prop_assert!(staged.is_ok(), "{:?}", staged.err());
        assert_contained(&dest);
    }
}
