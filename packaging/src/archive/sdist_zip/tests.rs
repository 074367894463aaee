//! Legacy `.zip` sdists, through the public `extract_sdist`.

use crate::archive::zip::attacks::two_zip64_end_records;
use crate::archive::zip::craft::{Entry, build};
use crate::archive::zip::{ZipError, ZipMemberRule, ZipRule};
use crate::archive::{ArchiveError, MemberRule, NameRule, NamedBy, extract_sdist};
use crate::limits::{ArchiveLimits, LimitExceeded};
use crate::test_support::{snapshot, write_file};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A realistic zip sdist under `top`: folders, PKG-INFO, a package, an executable script.
fn sdist(top: &str) -> Vec<Entry> {
    vec![
        Entry::dir(format!("{top}/")),
        Entry::file(
            format!("{top}/PKG-INFO"),
            "Metadata-Version: 1.0\nName: demo\nVersion: 1.0\n",
        ),
        Entry::file(
            format!("{top}/setup.py"),
            "from setuptools import setup\nsetup()\n",
        ),
        Entry::dir(format!("{top}/src/demo/")),
        Entry::file(format!("{top}/src/demo/__init__.py"), "x = 1\n"),
        Entry::file(format!("{top}/bin/run.sh"), "#!/bin/sh\necho hi\n").mode(0o100_755),
    ]
}

/// Extracts `bytes` named `name` into a fresh scratch folder: the result, the folder,
/// and (on failure) a check that nothing was left behind.
fn extract(
    name: &str,
    bytes: &[u8],
) -> (
    Result<crate::archive::ExtractedSdist, ArchiveError>,
    tempfile::TempDir,
) {
    extract_with(name, bytes, &ArchiveLimits::default())
}

fn extract_with(
    name: &str,
    bytes: &[u8],
    limits: &ArchiveLimits,
) -> (
    Result<crate::archive::ExtractedSdist, ArchiveError>,
    tempfile::TempDir,
) {
    let tmp = tempfile::tempdir().unwrap();
    let archive = write_file(tmp.path(), name, bytes);
    let before = snapshot(tmp.path());
    let result = extract_sdist(&archive, &tmp.path().join("dest"), limits);
    if result.is_err() {
        assert_eq!(
            snapshot(tmp.path()),
            before,
            "a refused sdist leaves nothing"
        );
    }
    (result, tmp)
}

fn refused(name: &str, bytes: &[u8]) -> ArchiveError {
    extract(name, bytes)
        .0
        .expect_err("the sdist must be refused")
}

#[test]
fn extracts_a_zip_sdist_with_executable_bits_and_times() {
    let (result, tmp) = extract("demo-1.0.zip", &build(&sdist("demo-1.0"), b"", false).bytes);
    let extracted = result.unwrap();
    let root = tmp.path().join("dest/demo-1.0");
    assert_eq!(extracted.root, root);
    assert_eq!(extracted.top_level, "demo-1.0");
    assert_eq!(extracted.filename.name.as_ref(), "demo");
    assert_eq!(extracted.filename.version.to_string(), "1.0");
    assert_eq!(extracted.executables, ["bin/run.sh"]);
    assert_eq!(extracted.members, 6);
    assert_eq!(
        std::fs::read_to_string(root.join("src/demo/__init__.py")).unwrap(),
        "x = 1\n"
    );
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("setup.py"), 0o644);
    // The craft's DOS time, 2024-06-15 12:30:00, read as UTC; folders too.
    let mtime = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mtime();
    assert_eq!(mtime("setup.py"), 1_718_454_600);
    assert_eq!(mtime("src/demo"), 1_718_454_600);
}

#[test]
fn the_top_level_folder_comes_from_the_name_or_the_first_member() {
    let bytes = build(&sdist("demo-1.0"), b"", false).bytes;
    let error = refused("other-1.0.zip", &bytes);
    assert!(
        matches!(
            error.member_rule(),
            Some(MemberRule::WrongTopLevel { expected }) if expected == "other-1.0"
        ),
        "{error}"
    );
    // Told by its bytes: a zip named otherwise is still a zip, named by its folder.
    let (result, _tmp) = extract("download", &bytes);
    let extracted = result.unwrap();
    assert_eq!(extracted.named_by, NamedBy::TopLevelFolder);
    assert_eq!(extracted.filename.top_level_dir(), "demo-1.0");
    let mut entries = sdist("demo-1.0");
    entries.push(Entry::file("elsewhere/x.py", "x"));
    let error = refused("demo-1.0.zip", &build(&entries, b"", false).bytes);
    assert!(
        matches!(
            error.member_rule(),
            Some(MemberRule::OutsideTopLevel { .. })
        ),
        "{error}"
    );
}

#[test]
fn member_names_follow_the_tar_rules() {
    let mut entries = sdist("demo-1.0");
    entries.push(Entry::file("demo-1.0/../../evil.py", "x"));
    let error = refused("demo-1.0.zip", &build(&entries, b"", false).bytes);
    assert_eq!(
        error.member_rule(),
        Some(&MemberRule::Name(NameRule::ParentDir)),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "member `demo-1.0/../../evil.py` refused: the path has a `..` component"
    );
}

#[test]
fn links_are_refused() {
    let mut entries = sdist("demo-1.0");
    entries.push(Entry::file("demo-1.0/passwd", "/etc/passwd").mode(0o120_777));
    let error = refused("demo-1.0.zip", &build(&entries, b"", false).bytes);
    assert!(
        matches!(
            error,
            ArchiveError::Zip(ZipError::Member {
                rule: ZipMemberRule::Symlink,
                ..
            })
        ),
        "{error}"
    );
}

#[test]
fn ambiguous_archives_are_refused() {
    let error = refused("demo-1.0.zip", &two_zip64_end_records());
    assert!(
        matches!(
            error,
            ArchiveError::Zip(ZipError::Structure(ZipRule::Zip64Misplaced { .. }))
        ),
        "{error}"
    );
    assert!(error.to_string().starts_with("not a valid zip archive: "));
}

#[test]
fn bad_data_found_while_writing_is_refused_as_such() {
    let mut built = build(&sdist("demo-1.0"), b"", false);
    // The CRC-32 of setup.py, in both headers: the file is written, then found wrong.
    let (local, central) = (built.offsets[2] as usize, built.central[2] as usize);
    built.bytes[local + 14] ^= 1;
    built.bytes[central + 16] ^= 1;
    let error = refused("demo-1.0.zip", &built.bytes);
    assert_eq!(
        error.to_string(),
        "member `demo-1.0/setup.py` does not match its CRC-32"
    );
}

#[test]
fn limits_hold() {
    let mut entries = sdist("demo-1.0");
    entries.push(Entry::file("demo-1.0/bomb.bin", vec![0u8; 8 << 20]));
    let bytes = build(&entries, b"", false).bytes;
    let limits = ArchiveLimits {
        ratio_grace_bytes: 1 << 20,
        deadline: None,
        ..ArchiveLimits::default()
    };
    let (result, _tmp) = extract_with("demo-1.0.zip", &bytes, &limits);
    assert!(
        matches!(
            result,
            Err(ArchiveError::Limit(LimitExceeded::CompressionRatio { .. }))
        ),
        "{:?}",
        result.map(drop)
    );
    let limits = ArchiveLimits {
        max_members: 3,
        ..ArchiveLimits::default()
    };
    let (result, _tmp) = extract_with("demo-1.0.zip", &bytes, &limits);
    assert!(matches!(
        result,
        Err(ArchiveError::Limit(LimitExceeded::Members { limit: 3 }))
    ));
}

#[test]
fn an_empty_zip_is_refused() {
    let error = refused("demo-1.0.zip", &build(&[], b"", false).bytes);
    assert!(matches!(error, ArchiveError::Empty), "{error}");
}

#[test]
fn a_built_sdist_must_be_a_tar_gz() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(
        tmp.path(),
        "demo-1.0.zip",
        &build(&sdist("demo-1.0"), b"", false).bytes,
    );
    let error =
        crate::verify::verify_sdist(&path, &crate::limits::ArtifactLimits::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "artifact `demo-1.0.zip` refused: invalid file name: a built sdist must be a \
         `.tar.gz` (PEP 625), not `demo-1.0.zip`"
    );
}
