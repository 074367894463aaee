use super::*;
use crate::archive::{
    CorruptAt, LinkRule, MemberRule, NameRule, NodeKind, PlacementRule, SourceFormat,
};
use crate::limits::LimitExceeded;
use crate::test_support::{TarEntry, gzip, sdist_entries, snapshot, tar_bytes, tar_gz, write_file};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use tar::EntryType;

/// A scratch area: `canary.txt` and `outside/` next to where `dest` goes, and the archive
/// in `archives/`.
struct Scene {
    tmp: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("canary.txt"), "canary").unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), "secret").unwrap();
        std::fs::create_dir(tmp.path().join("archives")).unwrap();
        Self { tmp }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }

    fn archive(&self, name: &str, bytes: &[u8]) -> PathBuf {
        write_file(&self.tmp.path().join("archives"), name, bytes)
    }

    fn extract(
        &self,
        name: &str,
        bytes: &[u8],
        limits: &ArchiveLimits,
    ) -> Result<ExtractedSdist, ArchiveError> {
        let archive = self.archive(name, bytes);
        extract_sdist(&archive, &self.dest(), limits)
    }
}

/// Extracts `bytes` as `name`, expects a failure, and checks that nothing outside the
/// destination changed and that the destination is gone.
fn refused_as(name: &str, bytes: &[u8], limits: &ArchiveLimits) -> ArchiveError {
    let scene = Scene::new();
    let archive = scene.archive(name, bytes);
    let before = snapshot(scene.tmp.path());
    let err = extract_sdist(&archive, &scene.dest(), limits).expect_err("extraction must fail");
    assert!(
        !scene.dest().exists(),
        "the destination is removed on failure"
    );
    assert_eq!(
        snapshot(scene.tmp.path()),
        before,
        "nothing outside dest changed"
    );
    err
}

/// Like [`refused_as`] for an archive named `pkg-1.0.tar.gz`, returning the member rule
/// and checking the message names the member.
fn refused(entries: &[TarEntry]) -> MemberRule {
    let err = refused_as(
        "pkg-1.0.tar.gz",
        &tar_gz(entries),
        &ArchiveLimits::default(),
    );
    match err {
        ArchiveError::Member { member, rule } => {
            assert!(!member.is_empty());
            assert!(err_message(&member, &rule).contains(&member));
            rule
        }
        other => panic!("expected a member refusal, got {other}"),
    }
}

fn err_message(member: &str, rule: &MemberRule) -> String {
    ArchiveError::Member {
        member: member.to_string(),
        rule: rule.clone(),
    }
    .to_string()
}

fn top() -> TarEntry {
    TarEntry::dir("pkg-1.0/")
}

// --- The happy path ---

#[test]
fn extracts_a_realistic_sdist() {
    let scene = Scene::new();
    let entries = sdist_entries("demo-1.0", "demo", "1.0");
    let extracted = scene
        .extract(
            "demo-1.0.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        )
        .unwrap();
    let root = scene.dest().join("demo-1.0");
    assert_eq!(extracted.root, root);
    assert_eq!(extracted.top_level, "demo-1.0");
    assert_eq!(extracted.filename.name.as_ref(), "demo");
    assert_eq!(extracted.filename.version.to_string(), "1.0");
    assert_eq!(extracted.executables, ["bin/run.sh"]);
    assert_eq!(extracted.members, entries.len() as u64);

    assert_eq!(
        std::fs::read_to_string(root.join("src/demo/__init__.py")).unwrap(),
        "x = 1\n"
    );
    // The hard link is a copy with the same contents.
    assert_eq!(
        std::fs::read_to_string(root.join("src/demo/copy.py")).unwrap(),
        "x = 1\n"
    );
    // The symlink is kept, relative, and resolves inside.
    assert_eq!(
        std::fs::read_link(root.join("docs/README.md")).unwrap(),
        Path::new("../pyproject.toml")
    );
    assert!(
        std::fs::read_to_string(root.join("docs/README.md"))
            .unwrap()
            .contains("flit_core")
    );
    // Modes: 0755 for the executable, 0644 otherwise.
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("pyproject.toml"), 0o644);
    // Modification times come from the archive, folders included.
    let mtime = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mtime();
    assert_eq!(mtime("src/demo/__init__.py"), 1_500_000_004);
    assert_eq!(mtime("PKG-INFO"), 1_500_000_001);
    assert_eq!(mtime("src/demo"), 1_500_000_003);
    assert_eq!(mtime("src"), 1_500_000_002);
    assert_eq!(mtime(""), 1_500_000_000);
    assert_eq!(mtime("docs/README.md"), 1_600_000_000);
    assert_eq!(
        extracted.newest_mtime.map(|m| m.seconds),
        Some(1_600_000_000)
    );
}

#[test]
fn reading_applies_the_same_rules_and_writes_nothing() {
    let scene = Scene::new();
    let entries = sdist_entries("demo-1.0", "demo", "1.0");
    let archive = scene.archive("demo-1.0.tar.gz", &tar_gz(&entries));
    let before = snapshot(scene.tmp.path());
    let file = std::fs::File::open(&archive).unwrap();
    let read = read_sdist_file(&file, "demo-1.0.tar.gz", &ArchiveLimits::default()).unwrap();
    assert_eq!(snapshot(scene.tmp.path()), before);
    assert_eq!(read.top_level, "demo-1.0");
    assert_eq!(read.filename.name.as_ref(), "demo");
    assert_eq!(read.named_by, NamedBy::FileName);
    let pkg_info = String::from_utf8(read.pkg_info.unwrap()).unwrap();
    assert!(pkg_info.contains("Name: demo"), "{pkg_info}");
    assert_eq!(read.newest_mtime.map(|m| m.seconds), Some(1_600_000_000));

    // What extraction refuses, reading refuses.
    let mut hostile = entries.clone();
    hostile.push(TarEntry::symlink("demo-1.0/out", "../../etc/passwd"));
    let archive = scene.archive("demo-1.0.tar.gz", &tar_gz(&hostile));
    let file = std::fs::File::open(&archive).unwrap();
    let error = read_sdist_file(&file, "demo-1.0.tar.gz", &ArchiveLimits::default());
    assert!(
        matches!(error, Err(ArchiveError::Member { .. })),
        "{error:?}"
    );
    // And what is not a tar.gz is named as what it is.
    let archive = scene.archive("demo-1.0.tar.gz", b"PK\x03\x04 not an sdist");
    let file = std::fs::File::open(&archive).unwrap();
    let error = read_sdist_file(&file, "demo-1.0.tar.gz", &ArchiveLimits::default());
    assert!(
        matches!(error, Err(ArchiveError::Format { .. })),
        "{error:?}"
    );
}

#[test]
fn legacy_dashed_names_are_split_with_pkg_info() {
    let scene = Scene::new();
    let entries = sdist_entries("python-dateutil-2.8.2", "python-dateutil", "2.8.2");
    let extracted = scene
        .extract(
            "python-dateutil-2.8.2.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        )
        .unwrap();
    assert_eq!(extracted.filename.name.as_ref(), "python-dateutil");
    assert_eq!(extracted.filename.raw_version, "2.8.2");
}

#[test]
fn tolerates_dot_prefixes_git_archive_headers_long_names_and_pax_times() {
    let scene = Scene::new();
    let long = format!("pkg-1.0/{}/file.py", "d".repeat(120));
    let entries = [
        TarEntry::global_pax(&[("comment", b"0123456789abcdef")]),
        TarEntry::dir("./"),
        TarEntry::dir("./pkg-1.0/"),
        TarEntry::file("./pkg-1.0/a.py", "a").pax("mtime", "1700000000.25"),
        TarEntry::file(long.as_bytes(), "long"),
        TarEntry::symlink("pkg-1.0/link", format!("{}/file.py", "d".repeat(120))),
    ];
    let extracted = scene
        .extract(
            "pkg-1.0.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        )
        .unwrap();
    let root = extracted.root;
    let meta = std::fs::metadata(root.join("a.py")).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    assert_eq!(std::fs::read_to_string(root.join("link")).unwrap(), "long");
}

#[test]
fn a_later_duplicate_file_wins() {
    let scene = Scene::new();
    let entries = [
        top(),
        TarEntry::file("pkg-1.0/a", "first").mode(0o755),
        TarEntry::file("pkg-1.0/a", "second"),
    ];
    let extracted = scene
        .extract(
            "pkg-1.0.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(extracted.root.join("a")).unwrap(),
        "second"
    );
    assert!(extracted.executables.is_empty());
}

#[test]
fn extracts_into_an_existing_empty_folder_only() {
    let scene = Scene::new();
    std::fs::create_dir(scene.dest()).unwrap();
    let bytes = tar_gz(&sdist_entries("pkg-1.0", "pkg", "1.0"));
    scene
        .extract("pkg-1.0.tar.gz", &bytes, &ArchiveLimits::default())
        .unwrap();
    // Now it is not empty: refused, and left as it was.
    let before = snapshot(&scene.dest());
    let err = scene
        .extract("pkg-1.0.tar.gz", &bytes, &ArchiveLimits::default())
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Destination { .. }), "{err}");
    assert_eq!(snapshot(&scene.dest()), before);
}

#[test]
fn links_are_rewritten_so_lexical_checks_hold_on_disk() {
    // `s` points at the top folder; `x -> a/b/s/..` is lexically `a/b`, but on disk,
    // followed through `s`, it would be the folder *above* the top folder.
    let scene = Scene::new();
    let entries = [
        top(),
        TarEntry::dir("pkg-1.0/a/b/"),
        TarEntry::symlink("pkg-1.0/a/b/s", "../.."),
        TarEntry::symlink("pkg-1.0/x", "a/b/s/.."),
    ];
    let extracted = scene
        .extract(
            "pkg-1.0.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read_link(extracted.root.join("x")).unwrap(),
        Path::new("a/b")
    );
    let resolved = std::fs::canonicalize(extracted.root.join("x")).unwrap();
    assert!(resolved.starts_with(std::fs::canonicalize(&extracted.root).unwrap()));
}

// --- One test per refusal rule ---

#[test]
fn refuses_absolute_paths() {
    let rule = refused(&[top(), TarEntry::file("/tmp/evil", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::Absolute));
}

#[test]
fn refuses_parent_components() {
    let rule = refused(&[top(), TarEntry::file("pkg-1.0/../../outside/evil", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::ParentDir));
}

#[test]
fn refuses_symlinks_pointing_outside_the_tree() {
    let rule = refused(&[top(), TarEntry::symlink("pkg-1.0/l", "../../outside")]);
    assert_eq!(rule, MemberRule::Link(LinkRule::Outside));
    // Outside the top-level folder but inside dest is outside too.
    let rule = refused(&[top(), TarEntry::symlink("pkg-1.0/l", "../other")]);
    assert_eq!(rule, MemberRule::Link(LinkRule::Outside));
}

#[test]
fn refuses_absolute_symlinks() {
    let rule = refused(&[top(), TarEntry::symlink("pkg-1.0/l", "/etc/passwd")]);
    assert_eq!(rule, MemberRule::Link(LinkRule::Absolute));
}

#[test]
fn refuses_writing_through_a_symlink() {
    // Even an in-tree link may not be written through: the member would land somewhere
    // other than its name says.
    let rule = refused(&[
        top(),
        TarEntry::dir("pkg-1.0/sub/"),
        TarEntry::symlink("pkg-1.0/l", "sub"),
        TarEntry::file("pkg-1.0/l/evil", "x"),
    ]);
    assert_eq!(
        rule,
        MemberRule::Placement(PlacementRule::ThroughSymlink {
            link: "pkg-1.0/l".into()
        })
    );
}

#[test]
fn refuses_writing_inside_a_file() {
    let rule = refused(&[
        top(),
        TarEntry::file("pkg-1.0/f", "x"),
        TarEntry::file("pkg-1.0/f/g", "y"),
    ]);
    assert_eq!(
        rule,
        MemberRule::Placement(PlacementRule::ThroughFile {
            file: "pkg-1.0/f".into()
        })
    );
}

#[test]
fn refuses_hard_links_outside_the_archive() {
    let rule = refused(&[top(), TarEntry::hard_link("pkg-1.0/h", "/etc/passwd")]);
    assert!(matches!(rule, MemberRule::HardLinkTarget { .. }), "{rule}");
    let rule = refused(&[
        top(),
        TarEntry::hard_link("pkg-1.0/h", "pkg-1.0/../../outside/secret"),
    ]);
    assert!(matches!(rule, MemberRule::HardLinkTarget { .. }), "{rule}");
}

#[test]
fn refuses_hard_links_to_members_not_yet_extracted() {
    let rule = refused(&[
        top(),
        TarEntry::hard_link("pkg-1.0/h", "pkg-1.0/later"),
        TarEntry::file("pkg-1.0/later", "x"),
    ]);
    assert_eq!(
        rule,
        MemberRule::HardLinkTarget {
            target: "pkg-1.0/later".into()
        }
    );
}

#[test]
fn refuses_hard_links_to_folders_links_or_themselves() {
    for target in ["pkg-1.0/d", "pkg-1.0/l", "pkg-1.0/h"] {
        let rule = refused(&[
            top(),
            TarEntry::dir("pkg-1.0/d/"),
            TarEntry::symlink("pkg-1.0/l", "d"),
            TarEntry::file("pkg-1.0/h", "x"),
            TarEntry::hard_link("pkg-1.0/h", target),
        ]);
        assert!(
            matches!(rule, MemberRule::HardLinkTarget { .. }),
            "{target}: {rule}"
        );
    }
}

#[test]
fn refuses_device_files() {
    for (kind, name) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
    ] {
        let rule = refused(&[top(), TarEntry::special("pkg-1.0/dev", kind)]);
        assert_eq!(rule, MemberRule::UnsupportedType(name.into()));
    }
}

#[test]
fn refuses_fifos() {
    let rule = refused(&[top(), TarEntry::special("pkg-1.0/fifo", EntryType::Fifo)]);
    assert_eq!(rule, MemberRule::UnsupportedType("FIFO".into()));
}

#[test]
fn refuses_sparse_and_unknown_member_types() {
    let rule = refused(&[top(), TarEntry::special("pkg-1.0/s", EntryType::GNUSparse)]);
    assert_eq!(rule, MemberRule::UnsupportedType("GNU sparse file".into()));
    let rule = refused(&[top(), TarEntry::special("pkg-1.0/s", EntryType::new(b'Z'))]);
    assert!(matches!(rule, MemberRule::UnsupportedType(_)), "{rule}");
}

#[test]
fn refuses_members_outside_the_top_level_folder() {
    let rule = refused(&[top(), TarEntry::file("other-1.0/setup.py", "x")]);
    assert_eq!(
        rule,
        MemberRule::OutsideTopLevel {
            top: "pkg-1.0".into()
        }
    );
}

#[test]
fn refuses_a_top_level_folder_other_than_the_archive_name() {
    let rule = refused(&[
        TarEntry::dir("evil-1.0/"),
        TarEntry::file("evil-1.0/setup.py", "x"),
    ]);
    assert_eq!(
        rule,
        MemberRule::WrongTopLevel {
            expected: "pkg-1.0".into()
        }
    );
    // Nor the same project at another version.
    let rule = refused(&[TarEntry::dir("pkg-1.1/"), TarEntry::file("pkg-1.1/a", "x")]);
    assert!(matches!(rule, MemberRule::WrongTopLevel { .. }), "{rule}");
}

#[test]
fn refuses_a_second_top_level_folder_when_the_name_gives_none() {
    let entries = [
        TarEntry::file("one-1.0/a", "x"),
        TarEntry::file("two-1.0/b", "y"),
    ];
    let err = refused_as("upload.bin", &tar_gz(&entries), &ArchiveLimits::default());
    assert_eq!(
        err.member_rule(),
        Some(&MemberRule::OutsideTopLevel {
            top: "one-1.0".into()
        })
    );
}

#[test]
fn refuses_top_level_files_and_links() {
    let rule = refused(&[TarEntry::file("pkg-1.0", "x")]);
    assert!(matches!(rule, MemberRule::OutsideTopLevel { .. }), "{rule}");
    let rule = refused(&[TarEntry::symlink("pkg-1.0", "/")]);
    assert!(matches!(rule, MemberRule::OutsideTopLevel { .. }), "{rule}");
}

#[test]
fn refuses_a_top_level_folder_that_is_not_name_version() {
    let entries = [TarEntry::file("src/setup.py", "x")];
    let err = refused_as("upload.bin", &tar_gz(&entries), &ArchiveLimits::default());
    assert!(matches!(err, ArchiveError::Unnamed { .. }), "{err}");
}

#[test]
fn refuses_a_duplicate_that_would_replace_a_folder() {
    let rule = refused(&[
        top(),
        TarEntry::dir("pkg-1.0/d/"),
        TarEntry::file("pkg-1.0/d", "x"),
    ]);
    assert_eq!(
        rule,
        MemberRule::Placement(PlacementRule::Replaces {
            existing: NodeKind::Dir,
            new: NodeKind::File
        })
    );
    let rule = refused(&[
        top(),
        TarEntry::file("pkg-1.0/f", "x"),
        TarEntry::dir("pkg-1.0/f/"),
    ]);
    assert!(matches!(
        rule,
        MemberRule::Placement(PlacementRule::Replaces { .. })
    ));
}

#[test]
fn refuses_a_duplicate_that_would_replace_a_link() {
    for second in [
        TarEntry::file("pkg-1.0/l", "x"),
        TarEntry::symlink("pkg-1.0/l", "b"),
        TarEntry::dir("pkg-1.0/l/"),
    ] {
        let rule = refused(&[top(), TarEntry::symlink("pkg-1.0/l", "a"), second]);
        assert!(
            matches!(
                rule,
                MemberRule::Placement(PlacementRule::Replaces {
                    existing: NodeKind::Symlink,
                    ..
                })
            ),
            "{rule}"
        );
    }
}

#[test]
fn refuses_names_with_nul() {
    let rule = refused(&[
        top(),
        TarEntry::file("pkg-1.0/a", "x").pax("path", b"pkg-1.0/a\0b"),
    ]);
    assert_eq!(rule, MemberRule::Name(NameRule::Nul));
}

#[test]
fn refuses_names_with_backslashes() {
    let rule = refused(&[top(), TarEntry::file("pkg-1.0\\..\\..\\evil", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::Backslash));
}

#[test]
fn refuses_names_that_are_not_utf8() {
    let rule = refused(&[top(), TarEntry::file(b"pkg-1.0/\xff\xfe", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::NotUtf8));
}

#[test]
fn refuses_names_with_control_characters() {
    let rule = refused(&[top(), TarEntry::file("pkg-1.0/a\x1b[2Jb", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::ControlChar));
}

#[test]
fn refuses_empty_components() {
    let rule = refused(&[top(), TarEntry::file("pkg-1.0//a", "x")]);
    assert_eq!(rule, MemberRule::Name(NameRule::EmptyComponent));
}

#[test]
fn refuses_files_named_like_folders() {
    let rule = refused(&[top(), TarEntry::file("pkg-1.0/a/", "x")]);
    assert_eq!(rule, MemberRule::NonFolderWithSlash);
}

#[test]
fn refuses_repeated_pax_keys() {
    let rule = refused(&[
        top(),
        TarEntry::file("pkg-1.0/a", "x")
            .pax("path", "pkg-1.0/a")
            .pax("path", "pkg-1.0/../../evil"),
    ]);
    assert_eq!(rule, MemberRule::DuplicatePaxKey { key: "path".into() });
}

#[test]
fn refuses_malformed_pax_records() {
    let mut entries = vec![top(), TarEntry::file("pkg-1.0/a", "x")];
    // A PAX header whose record length is wrong.
    let mut pax = TarEntry::special("PaxHeaders/a", EntryType::XHeader);
    pax.data = b"99 path=pkg-1.0/a\n".to_vec();
    entries.insert(1, pax);
    let rule = refused(&entries);
    assert_eq!(rule, MemberRule::MalformedPax);
}

#[test]
fn refuses_global_pax_headers_that_rename_members() {
    let rule = refused(&[
        TarEntry::global_pax(&[("path", b"pkg-1.0/../../evil")]),
        top(),
        TarEntry::file("pkg-1.0/a", "x"),
    ]);
    assert_eq!(rule, MemberRule::GlobalPaxKey { key: "path".into() });
}

#[test]
fn refuses_long_names_that_disagree_with_pax_names() {
    let long = format!("pkg-1.0/{}", "a".repeat(120));
    let rule = refused(&[
        top(),
        TarEntry::file(long.as_bytes(), "x").pax("path", "pkg-1.0/b"),
    ]);
    assert_eq!(rule, MemberRule::ConflictingNames);
}

// --- Limits ---

#[test]
fn refuses_too_many_members() {
    let limits = ArchiveLimits {
        max_members: 3,
        ..ArchiveLimits::default()
    };
    let entries: Vec<_> = (0..5)
        .map(|i| TarEntry::file(format!("pkg-1.0/f{i}"), "x"))
        .collect();
    let err = refused_as("pkg-1.0.tar.gz", &tar_gz(&entries), &limits);
    assert!(
        matches!(
            err,
            ArchiveError::Limit(LimitExceeded::Members { limit: 3 })
        ),
        "{err}"
    );
}

#[test]
fn refuses_too_many_unpacked_bytes() {
    let limits = ArchiveLimits {
        max_unpacked_bytes: 100_000,
        max_compression_ratio: u64::MAX,
        ..ArchiveLimits::default()
    };
    let entries = [top(), TarEntry::file("pkg-1.0/big", vec![1u8; 200_000])];
    let err = refused_as("pkg-1.0.tar.gz", &tar_gz(&entries), &limits);
    assert!(
        matches!(
            err,
            ArchiveError::Limit(LimitExceeded::UnpackedBytes { limit: 100_000 })
        ),
        "{err}"
    );
}

#[test]
fn refuses_decompression_bombs_early() {
    // 64 MiB of zeros compress to about 64 KiB: a ratio near 1000.
    let limits = ArchiveLimits {
        max_compression_ratio: 100,
        ratio_grace_bytes: 1 << 20,
        deadline: None,
        ..ArchiveLimits::default()
    };
    let entries = [top(), TarEntry::file("pkg-1.0/bomb", vec![0u8; 64 << 20])];
    let bytes = tar_gz(&entries);
    assert!(bytes.len() < 200_000);
    let err = refused_as("pkg-1.0.tar.gz", &bytes, &limits);
    match err {
        ArchiveError::Limit(LimitExceeded::CompressionRatio { limit, unpacked }) => {
            assert_eq!(limit, 100);
            assert!(unpacked < 8 << 20, "stopped early, after {unpacked} bytes");
        }
        other => panic!("expected the ratio limit, got {other}"),
    }
}

#[test]
fn refuses_hard_link_bombs() {
    // One 1 MB file and many hard links to it: each copy counts.
    let limits = ArchiveLimits {
        max_unpacked_bytes: 5_000_000,
        max_compression_ratio: u64::MAX,
        ..ArchiveLimits::default()
    };
    let mut entries = vec![top(), TarEntry::file("pkg-1.0/big", vec![3u8; 1_000_000])];
    entries.extend((0..10).map(|i| TarEntry::hard_link(format!("pkg-1.0/h{i}"), "pkg-1.0/big")));
    let err = refused_as("pkg-1.0.tar.gz", &tar_gz(&entries), &limits);
    assert!(
        matches!(
            err,
            ArchiveError::Limit(LimitExceeded::UnpackedBytes { .. })
        ),
        "{err}"
    );
}

#[test]
fn header_sizes_are_not_trusted() {
    // A header claiming 1 GB over 10 bytes of data: the stream ends early.
    let mut liar = TarEntry::file("pkg-1.0/a", "0123456789");
    liar.size_override = Some(1 << 30);
    let mut raw = tar_bytes(&[top(), liar]);
    raw.truncate(raw.len() - 1024); // drop the end-of-archive blocks
    let err = refused_as("pkg-1.0.tar.gz", &gzip(&raw), &ArchiveLimits::default());
    assert!(
        matches!(&err, ArchiveError::Corrupt { at: CorruptAt::Member(m), .. } if m == "pkg-1.0/a"),
        "{err}"
    );
}

#[test]
fn refuses_what_is_not_a_tar_gz() {
    // Zip bytes are read as a (legacy) zip sdist, whatever the name says.
    let err = refused_as(
        "pkg-1.0.tar.gz",
        b"PK\x03\x04 not gzip",
        &ArchiveLimits::default(),
    );
    assert_eq!(
        err.to_string(),
        "not a valid zip archive: there is no end-of-central-directory record in its last \
         64 KiB"
    );
    let err = refused_as("pkg-1.0.tar.gz", b"\xfd7zXZ\x00", &ArchiveLimits::default());
    assert!(
        matches!(
            err,
            ArchiveError::Format {
                format: SourceFormat::TarXz,
                ..
            }
        ),
        "{err}"
    );
    let err = refused_as("pkg-1.0.tar.gz", &gzip(b""), &ArchiveLimits::default());
    assert!(matches!(err, ArchiveError::Empty), "{err}");
}

#[test]
fn collect_verify_extract_use_one_handle() {
    // The default flow: the backend's sdist is collected from /out, verified, and the
    // wheel is built from its extraction, all from the same open file.
    let scene = Scene::new();
    let out = scene.tmp.path().join("archives");
    scene.archive(
        "demo-1.0.tar.gz",
        &tar_gz(&sdist_entries("demo-1.0", "demo", "1.0")),
    );
    let collected = crate::verify::collect_artifact(&out, "demo-1.0.tar.gz").unwrap();
    let limits = crate::limits::ArtifactLimits::default();
    crate::verify::verify_sdist_file(&collected.file, &collected.file_name, &limits).unwrap();
    let extracted = extract_sdist_file(
        &collected.file,
        &collected.file_name,
        &scene.dest(),
        &limits.archive,
    )
    .unwrap();
    assert_eq!(extracted.filename.name.as_ref(), "demo");
    assert_eq!(extracted.executables, ["bin/run.sh"]);
}

mod inputs;
