use super::*;
use crate::archive::{ArchiveError, LinkRule, MemberRule, NameRule};
use crate::limits::LimitExceeded;
use crate::test_support::{TarEntry, sdist_entries, snapshot, tar_gz, write_file};

fn check_with(
    file_name: &str,
    entries: &[TarEntry],
    limits: &ArtifactLimits,
) -> Result<VerifiedSdist, ArtifactError> {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), file_name, &tar_gz(entries));
    let before = snapshot(tmp.path());
    let result = verify_sdist(&path, limits);
    assert_eq!(snapshot(tmp.path()), before, "verification writes nothing");
    result
}

fn refused_as(file_name: &str, entries: &[TarEntry]) -> ArtifactRule {
    let err =
        check_with(file_name, entries, &ArtifactLimits::default()).expect_err("must be refused");
    assert_eq!(err.artifact, file_name);
    err.rule
}

fn refused(entries: &[TarEntry]) -> ArtifactRule {
    refused_as("demo-1.0.tar.gz", entries)
}

fn member_rule(rule: ArtifactRule) -> MemberRule {
    match rule {
        ArtifactRule::Archive(ArchiveError::Member { rule, .. }) => rule,
        other => panic!("expected a member refusal, got {other}"),
    }
}

fn good() -> Vec<TarEntry> {
    sdist_entries("demo-1.0", "demo", "1.0")
}

#[test]
fn accepts_a_correct_sdist() {
    let verified = check_with("demo-1.0.tar.gz", &good(), &ArtifactLimits::default()).unwrap();
    assert_eq!(verified.filename.name.as_ref(), "demo");
    assert_eq!(verified.top_level, "demo-1.0");
    assert_eq!(verified.metadata.version, "1.0");
    assert_eq!(verified.members, good().len() as u64);
}

#[test]
fn accepts_legacy_names_that_normalize_to_pkg_info() {
    let entries = sdist_entries("Zope.Interface-5.0", "zope.interface", "5.0");
    let verified = check_with(
        "Zope.Interface-5.0.tar.gz",
        &entries,
        &ArtifactLimits::default(),
    )
    .unwrap();
    assert_eq!(verified.filename.name.as_ref(), "zope-interface");
    let entries = sdist_entries("python-dateutil-2.8.2", "python-dateutil", "2.8.2");
    check_with(
        "python-dateutil-2.8.2.tar.gz",
        &entries,
        &ArtifactLimits::default(),
    )
    .unwrap();
}

#[test]
fn refuses_invalid_file_names() {
    for name in ["demo-1.0.zip", "demo.tar.gz", "demo-notaversion.tar.gz"] {
        let rule = refused_as(name, &good());
        assert!(
            matches!(rule, ArtifactRule::FileName { .. }),
            "{name}: {rule}"
        );
    }
}

#[test]
fn applies_the_extraction_member_rules() {
    let mut entries = good();
    entries.push(TarEntry::file("demo-1.0/../../evil", "x"));
    assert_eq!(
        member_rule(refused(&entries)),
        MemberRule::Name(NameRule::ParentDir)
    );
    let mut entries = good();
    entries.push(TarEntry::symlink("demo-1.0/l", "../../../etc"));
    assert_eq!(
        member_rule(refused(&entries)),
        MemberRule::Link(LinkRule::Outside)
    );
    let mut entries = good();
    entries.push(TarEntry::special("demo-1.0/dev", tar::EntryType::Char));
    assert!(matches!(
        member_rule(refused(&entries)),
        MemberRule::UnsupportedType(_)
    ));
}

#[test]
fn refuses_a_top_level_folder_other_than_the_file_name() {
    let entries = sdist_entries("other-1.0", "demo", "1.0");
    assert!(matches!(
        member_rule(refused(&entries)),
        MemberRule::WrongTopLevel { .. }
    ));
    let mut entries = good();
    entries.push(TarEntry::file("second-1.0/x", "x"));
    assert!(matches!(
        member_rule(refused(&entries)),
        MemberRule::OutsideTopLevel { .. }
    ));
}

#[test]
fn refuses_a_missing_pkg_info() {
    let entries: Vec<_> = good()
        .into_iter()
        .filter(|e| !e.name.ends_with(b"PKG-INFO"))
        .collect();
    assert!(
        matches!(refused(&entries), ArtifactRule::MissingFile { path } if path == "demo-1.0/PKG-INFO")
    );
    // A PKG-INFO that is a symlink does not count.
    let mut entries: Vec<_> = good()
        .into_iter()
        .filter(|e| !e.name.ends_with(b"PKG-INFO"))
        .collect();
    entries.push(TarEntry::symlink("demo-1.0/PKG-INFO", "pyproject.toml"));
    assert!(matches!(
        refused(&entries),
        ArtifactRule::MissingFile { .. }
    ));
}

fn with_pkg_info(text: &str) -> Vec<TarEntry> {
    let mut entries = good();
    for entry in &mut entries {
        if entry.name.ends_with(b"PKG-INFO") {
            entry.data = text.as_bytes().to_vec();
        }
    }
    entries
}

#[test]
fn refuses_pkg_info_inconsistent_with_the_name() {
    let rule = refused(&with_pkg_info(
        "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n",
    ));
    assert!(matches!(rule, ArtifactRule::NameMismatch { .. }), "{rule}");
    let rule = refused(&with_pkg_info(
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.1\n",
    ));
    assert!(
        matches!(rule, ArtifactRule::VersionMismatch { .. }),
        "{rule}"
    );
    let rule = refused(&with_pkg_info("this is not metadata\n"));
    assert!(matches!(rule, ArtifactRule::Metadata { .. }), "{rule}");
}

#[test]
fn refuses_bombs_and_oversized_files() {
    let mut entries = good();
    entries.push(TarEntry::file("demo-1.0/bomb", vec![0u8; 64 << 20]));
    let limits = ArtifactLimits {
        archive: crate::limits::ArchiveLimits {
            ratio_grace_bytes: 1 << 20,
            deadline: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = check_with("demo-1.0.tar.gz", &entries, &limits).unwrap_err();
    assert!(
        matches!(
            err.rule,
            ArtifactRule::Archive(ArchiveError::Limit(LimitExceeded::CompressionRatio { .. }))
        ),
        "{err}"
    );
    let limits = ArtifactLimits {
        max_artifact_bytes: 10,
        ..Default::default()
    };
    let err = check_with("demo-1.0.tar.gz", &good(), &limits).unwrap_err();
    assert!(
        matches!(
            err.rule,
            ArtifactRule::Limit(LimitExceeded::ArtifactBytes { .. })
        ),
        "{err}"
    );
}
