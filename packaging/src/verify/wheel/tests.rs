use super::*;
use crate::archive::zip::{ZipMemberRule, ZipRule};
use crate::archive::{MemberRule, NameRule, PlacementRule};
use crate::limits::LimitExceeded;
use crate::test_support::{
    ZipEntry, patch_all, patch_first, patch_headers, patch_unix_mode, record_for, snapshot,
    wheel_files, wheel_zip, write_file, zip_bytes,
};
use crate::verify::record::record_hash;

const WHEEL: &str = "demo-1.0-py3-none-any.whl";
const DIST_INFO: &str = "demo-1.0.dist-info";

fn good_files() -> Vec<(String, Vec<u8>)> {
    wheel_files("demo", "1.0")
}

fn check_with(
    file_name: &str,
    bytes: &[u8],
    limits: &ArtifactLimits,
) -> Result<VerifiedWheel, ArtifactError> {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), file_name, bytes);
    let before = snapshot(tmp.path());
    let result = verify_wheel(&path, limits);
    assert_eq!(snapshot(tmp.path()), before, "verification writes nothing");
    result
}

fn check(file_name: &str, bytes: &[u8]) -> Result<VerifiedWheel, ArtifactError> {
    check_with(file_name, bytes, &ArtifactLimits::default())
}

/// Verifies, expects a refusal naming the artifact, returns the rule.
fn refused_with(file_name: &str, bytes: &[u8], limits: &ArtifactLimits) -> ArtifactRule {
    let err = check_with(file_name, bytes, limits).expect_err("the wheel must be refused");
    assert_eq!(err.artifact, file_name);
    assert!(err.to_string().contains(file_name));
    err.rule
}

fn refused(bytes: &[u8]) -> ArtifactRule {
    refused_with(WHEEL, bytes, &ArtifactLimits::default())
}

/// A wheel of `files` with a correct RECORD.
fn wheel(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    wheel_zip(files, DIST_INFO)
}

/// A wheel of `files` with the given RECORD text.
fn wheel_with_record(files: &[(String, Vec<u8>)], record: &str) -> Vec<u8> {
    let mut entries: Vec<ZipEntry> = files
        .iter()
        .map(|(p, d)| ZipEntry::file(p.clone(), d))
        .collect();
    entries.push(ZipEntry::file(format!("{DIST_INFO}/RECORD"), record));
    zip_bytes(&entries)
}

fn good_record() -> String {
    String::from_utf8(record_for(&good_files(), &format!("{DIST_INFO}/RECORD"))).unwrap()
}

fn replace_file(files: &mut [(String, Vec<u8>)], path: &str, data: &str) {
    let entry = files.iter_mut().find(|(p, _)| p == path).unwrap();
    entry.1 = data.as_bytes().to_vec();
}

// --- Good wheels ---

#[test]
fn accepts_a_correct_wheel() {
    let verified = check(WHEEL, &wheel(&good_files())).unwrap();
    assert_eq!(verified.filename.name.as_ref(), "demo");
    assert_eq!(verified.dist_info, DIST_INFO);
    assert_eq!(verified.metadata.version, "1.0");
    assert!(verified.root_is_purelib);
    assert_eq!(verified.members, 5);
    let data: u64 = good_files().iter().map(|(_, d)| d.len() as u64).sum();
    assert!(verified.unpacked_bytes > data);
}

#[test]
fn accepts_folders_data_schemes_signatures_and_strong_hashes() {
    let mut files = good_files();
    files.push((
        "demo-1.0.data/scripts/demo-cli".into(),
        b"#!python\n".to_vec(),
    ));
    files.push(("demo-1.0.data/purelib/extra.py".into(), b"z = 3\n".to_vec()));
    let mut record = String::from_utf8(record_for(&files, &format!("{DIST_INFO}/RECORD"))).unwrap();
    // sha512 instead of sha256 for one entry, with padding.
    let init = b"print('hello')\n";
    use base64::Engine as _;
    use sha2::Digest as _;
    let sha512 = base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha512::digest(init));
    record = record.replace(&record_hash(init), &format!("sha512={sha512}"));
    let mut entries = vec![ZipEntry::Dir("demo/".into())];
    entries.extend(files.iter().map(|(p, d)| ZipEntry::file(p.clone(), d)));
    entries.push(ZipEntry::file(format!("{DIST_INFO}/RECORD"), record));
    entries.push(ZipEntry::file(
        format!("{DIST_INFO}/RECORD.jws"),
        "signature",
    ));
    check(WHEEL, &zip_bytes(&entries)).unwrap();
}

#[test]
fn accepts_legacy_spellings_of_name_and_version() {
    // File name escaped and normalized; dist-info and METADATA in the project's spelling.
    let dist_info = "Demo.Pkg-01.0.dist-info";
    let files = vec![
        ("demo_pkg/__init__.py".to_string(), b"".to_vec()),
        (
            format!("{dist_info}/METADATA"),
            b"Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 01.0\n".to_vec(),
        ),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n".to_vec(),
        ),
    ];
    let verified = check(
        "demo_pkg-1.0-py3-none-any.whl",
        &wheel_zip(&files, dist_info),
    )
    .unwrap();
    assert!(!verified.root_is_purelib);
}

// --- File name and container ---

#[test]
fn refuses_an_invalid_file_name() {
    for name in [
        "demo-1.0.whl",
        "demo-1.0-py3-none-any.zip",
        "demo-1.0-py3-none-a$y.whl",
    ] {
        let rule = refused_with(name, &wheel(&good_files()), &ArtifactLimits::default());
        assert!(
            matches!(rule, ArtifactRule::FileName { .. }),
            "{name}: {rule}"
        );
    }
}

#[test]
fn refuses_what_is_not_a_zip() {
    let rule = refused(b"this is not a zip file at all");
    assert!(
        matches!(
            rule,
            ArtifactRule::Zip(ZipError::Structure(ZipRule::NoEndRecord))
        ),
        "{rule}"
    );
    assert!(rule.to_string().starts_with("not a valid zip archive: "));
}

#[test]
fn refuses_local_headers_that_disagree_with_the_central_directory() {
    let mut bytes = wheel(&good_files());
    patch_first(&mut bytes, b"demo/__init__.py", b"demo/__evil__.py");
    let rule = refused(&bytes);
    assert!(
        matches!(
            rule,
            ArtifactRule::Zip(ZipError::Member {
                rule: ZipMemberRule::LocalMismatch("name"),
                ..
            })
        ),
        "{rule}"
    );
}

#[test]
fn refuses_duplicate_members() {
    let mut files = good_files();
    files.push(("demo/b.py".into(), b"evil".to_vec()));
    files.push(("demo/a.py".into(), b"good".to_vec()));
    let mut bytes = wheel(&files);
    patch_all(&mut bytes, b"demo/b.py", b"demo/a.py");
    assert_eq!(
        refused(&bytes).to_string(),
        "member `demo/a.py` appears more than once"
    );
}

#[test]
fn refuses_members_differing_only_in_case() {
    let mut files = good_files();
    files.push(("demo/Mod.py".into(), b"a".to_vec()));
    files.push(("demo/mod.py".into(), b"b".to_vec()));
    let rule = refused(&wheel(&files));
    assert!(matches!(rule, ArtifactRule::CaseDuplicate { .. }), "{rule}");
}

// --- Member names and types ---

fn with_member_renamed(from: &str, to: &str) -> ArtifactRule {
    let mut files = good_files();
    files.push((from.to_string(), b"evil".to_vec()));
    let mut bytes = wheel(&files);
    patch_all(&mut bytes, from.as_bytes(), to.as_bytes());
    refused(&bytes)
}

fn member_rule(rule: ArtifactRule) -> MemberRule {
    match rule {
        ArtifactRule::Member { rule, .. } => rule,
        other => panic!("expected a member rule, got {other}"),
    }
}

#[test]
fn refuses_zip_slip_members() {
    let rule = member_rule(with_member_renamed("xx/evil.py", "../evil.py"));
    assert_eq!(rule, MemberRule::Name(NameRule::ParentDir));
}

#[test]
fn refuses_absolute_members() {
    let rule = member_rule(with_member_renamed("x/etc/evil", "/etc/evilx"));
    assert_eq!(rule, MemberRule::Name(NameRule::Absolute));
}

#[test]
fn refuses_backslash_nul_and_empty_component_members() {
    let rule = member_rule(with_member_renamed("demo/xx/evil.py", "demo\\..\\evil.py"));
    assert_eq!(rule, MemberRule::Name(NameRule::Backslash));
    let rule = member_rule(with_member_renamed("demo/xevil.py", "demo/\0evil.py"));
    assert_eq!(rule, MemberRule::Name(NameRule::Nul));
    let rule = member_rule(with_member_renamed("demo/x/evil.py", "demo//xevil.py"));
    assert_eq!(rule, MemberRule::Name(NameRule::EmptyComponent));
    let rule = member_rule(with_member_renamed("demo/x/evil.py", "demo/./evil.py"));
    assert_eq!(rule, MemberRule::Name(NameRule::CurDir));
}

#[test]
fn refuses_ambiguous_non_ascii_names() {
    let mut files = good_files();
    files.push(("demo/é.py".into(), b"x".to_vec()));
    let mut bytes = wheel(&files);
    // Clear the UTF-8 flag in both headers: cp437 readers would see another name.
    patch_headers(&mut bytes, "demo/é.py", |header, local| {
        let at = if local { 6 } else { 8 };
        header[at + 1] &= !(1 << 3);
    });
    let rule = refused(&bytes);
    assert!(
        matches!(
            rule,
            ArtifactRule::Zip(ZipError::Member {
                rule: ZipMemberRule::AmbiguousName,
                ..
            })
        ),
        "{rule}"
    );
}

#[test]
fn refuses_symlink_members() {
    let files = good_files();
    let mut entries: Vec<ZipEntry> = files
        .iter()
        .map(|(p, d)| ZipEntry::file(p.clone(), d))
        .collect();
    entries.push(ZipEntry::Symlink(
        "demo/passwd".into(),
        "/etc/passwd".into(),
    ));
    entries.push(ZipEntry::file(format!("{DIST_INFO}/RECORD"), good_record()));
    let rule = refused(&zip_bytes(&entries));
    assert_eq!(rule.to_string(), "member `demo/passwd` is a symlink");
}

#[test]
fn refuses_device_members() {
    let mut bytes = wheel(&good_files());
    patch_unix_mode(&mut bytes, "demo/__init__.py", 0o020_644);
    let rule = refused(&bytes);
    assert!(
        matches!(
            rule,
            ArtifactRule::Zip(ZipError::Member {
                rule: ZipMemberRule::Special(0o020_000),
                ..
            })
        ),
        "{rule}"
    );
}

#[test]
fn refuses_encrypted_members() {
    let mut bytes = wheel(&good_files());
    patch_headers(&mut bytes, "demo/__init__.py", |header, local| {
        header[if local { 6 } else { 8 }] |= 1;
    });
    let rule = refused(&bytes);
    assert_eq!(rule.to_string(), "member `demo/__init__.py` is encrypted");
}

#[test]
fn refuses_a_file_that_is_also_a_folder() {
    let mut files = good_files();
    files.push(("demo/x".into(), b"file".to_vec()));
    files.push(("demo/x/y.py".into(), b"inside".to_vec()));
    let rule = member_rule(refused(&wheel(&files)));
    assert_eq!(
        rule,
        MemberRule::Placement(PlacementRule::ThroughFile {
            file: "demo/x".into()
        })
    );
}

// --- .dist-info and .data ---

#[test]
fn refuses_a_name_or_version_that_does_not_match_the_file_name() {
    let bytes = wheel(&good_files());
    for name in ["other-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"] {
        let rule = refused_with(name, &bytes, &ArtifactLimits::default());
        assert!(
            matches!(rule, ArtifactRule::DistInfoName { .. }),
            "{name}: {rule}"
        );
    }
}

#[test]
fn refuses_two_dist_info_folders() {
    let mut files = good_files();
    files.push(("evil-6.6.dist-info/METADATA".into(), b"Name: evil".to_vec()));
    let rule = refused(&wheel(&files));
    match rule {
        ArtifactRule::DistInfoCount { found } => {
            assert_eq!(found, ["demo-1.0.dist-info", "evil-6.6.dist-info"]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn refuses_a_wheel_without_dist_info() {
    let rule = refused(&zip_bytes(&[ZipEntry::file("demo/__init__.py", "")]));
    assert!(matches!(rule, ArtifactRule::DistInfoCount { found } if found.is_empty()));
}

#[test]
fn refuses_metadata_that_disagrees_with_the_file_name() {
    let mut files = good_files();
    replace_file(
        &mut files,
        &format!("{DIST_INFO}/METADATA"),
        "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n",
    );
    let rule = refused(&wheel(&files));
    assert!(
        matches!(rule, ArtifactRule::NameMismatch { ref found, .. } if found == "other"),
        "{rule}"
    );

    let mut files = good_files();
    replace_file(
        &mut files,
        &format!("{DIST_INFO}/METADATA"),
        "Metadata-Version: 2.1\nName: Demo\nVersion: 1.0.1\n",
    );
    let rule = refused(&wheel(&files));
    assert!(
        matches!(rule, ArtifactRule::VersionMismatch { .. }),
        "{rule}"
    );
}

#[test]
fn refuses_unparsable_or_missing_metadata() {
    let mut files = good_files();
    replace_file(&mut files, &format!("{DIST_INFO}/METADATA"), "garbage\n");
    let rule = refused(&wheel(&files));
    assert!(matches!(rule, ArtifactRule::Metadata { .. }), "{rule}");

    let files: Vec<_> = good_files()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("METADATA"))
        .collect();
    let rule = refused(&wheel(&files));
    assert_eq!(
        rule.to_string(),
        format!("`{DIST_INFO}/METADATA` is missing (or not a regular file)")
    );
}

#[test]
fn refuses_a_bad_wheel_file() {
    for (text, expect) in [
        (
            "Wheel-Version: 2.0\nRoot-Is-Purelib: true\n",
            "Wheel-Version",
        ),
        (
            "Wheel-Version: 1.0\nRoot-Is-Purelib: maybe\n",
            "Root-Is-Purelib",
        ),
        ("Root-Is-Purelib: true\n", "lacks the `Wheel-Version`"),
    ] {
        let mut files = good_files();
        replace_file(&mut files, &format!("{DIST_INFO}/WHEEL"), text);
        let rule = refused(&wheel(&files));
        assert!(rule.to_string().contains(expect), "{rule}");
    }
    let files: Vec<_> = good_files()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("WHEEL"))
        .collect();
    let rule = refused(&wheel(&files));
    assert!(matches!(rule, ArtifactRule::MissingFile { .. }), "{rule}");
}

#[test]
fn refuses_several_or_misnamed_data_folders() {
    let mut files = good_files();
    files.push(("demo-1.0.data/scripts/a".into(), b"a".to_vec()));
    files.push(("other-1.0.data/scripts/b".into(), b"b".to_vec()));
    let rule = refused(&wheel(&files));
    assert!(matches!(rule, ArtifactRule::DataDirCount { .. }), "{rule}");

    let mut files = good_files();
    files.push(("other-1.0.data/scripts/b".into(), b"b".to_vec()));
    let rule = refused(&wheel(&files));
    assert!(matches!(rule, ArtifactRule::DataDirName { .. }), "{rule}");

    let mut files = good_files();
    files.push(("demo-1.0.data/../../etc".into(), b"b".to_vec()));
    let rule = member_rule(refused(&wheel(&files)));
    assert_eq!(rule, MemberRule::Name(NameRule::ParentDir));

    for bad in ["demo-1.0.data/home/x", "demo-1.0.data/scripts"] {
        let mut files = good_files();
        files.push((bad.into(), b"b".to_vec()));
        let rule = refused(&wheel(&files));
        assert!(
            matches!(rule, ArtifactRule::DataScheme { .. }),
            "{bad}: {rule}"
        );
    }
}

// --- RECORD ---

#[test]
fn refuses_a_wrong_record_hash() {
    let files = good_files();
    let record = good_record().replace(&record_hash(b"print('hello')\n"), &record_hash(b"other"));
    let rule = refused(&wheel_with_record(&files, &record));
    assert_eq!(
        rule.to_string(),
        "RECORD hash of `demo/__init__.py` does not match its contents"
    );
}

#[test]
fn refuses_a_wrong_record_size() {
    let files = good_files();
    let record = good_record().replace(",3000\n", ",2999\n");
    let rule = refused(&wheel_with_record(&files, &record));
    assert!(
        matches!(rule, ArtifactRule::RecordSize { ref path, actual: 3000, .. } if path == "demo/data.bin"),
        "{rule}"
    );
}

#[test]
fn refuses_a_member_missing_from_record() {
    let mut files = good_files();
    let record = good_record();
    files.push(("demo/backdoor.py".into(), b"import os".to_vec()));
    let rule = refused(&wheel_with_record(&files, &record));
    assert_eq!(
        rule.to_string(),
        "member `demo/backdoor.py` is not listed in RECORD"
    );
}

#[test]
fn refuses_an_extra_record_entry() {
    let record = format!("{}demo/ghost.py,{},1\n", good_record(), record_hash(b"x"));
    let rule = refused(&wheel_with_record(&good_files(), &record));
    assert!(
        matches!(rule, ArtifactRule::RecordListsMissing { ref path } if path == "demo/ghost.py"),
        "{rule}"
    );
}

#[test]
fn refuses_a_record_entry_listed_twice() {
    let first = good_record().lines().next().unwrap().to_string();
    let record = format!("{}{first}\n", good_record());
    let rule = refused(&wheel_with_record(&good_files(), &record));
    assert!(
        matches!(rule, ArtifactRule::RecordDuplicate { .. }),
        "{rule}"
    );
}

#[test]
fn refuses_weak_missing_or_malformed_record_hashes() {
    let hash = record_hash(b"print('hello')\n");
    for (replacement, check) in [
        ("md5=abc".to_string(), "md5"),
        (String::new(), "no hash"),
        ("sha256=not-base64!".to_string(), "valid digest"),
    ] {
        let record = good_record().replace(&hash, &replacement);
        let rule = refused(&wheel_with_record(&good_files(), &record));
        assert!(rule.to_string().contains(check), "{rule}");
    }
    let record = good_record().replace(",3000\n", ",3e3\n");
    let rule = refused(&wheel_with_record(&good_files(), &record));
    assert!(matches!(rule, ArtifactRule::RecordSyntax { .. }), "{rule}");
    let rule = refused(&wheel_with_record(&good_files(), "a,b\n"));
    assert!(
        matches!(rule, ArtifactRule::RecordSyntax { line: 1, .. }),
        "{rule}"
    );
}

#[test]
fn refuses_a_wheel_without_record() {
    let mut entries: Vec<ZipEntry> = good_files()
        .iter()
        .map(|(p, d)| ZipEntry::file(p.clone(), d))
        .collect();
    entries.push(ZipEntry::file("demo/x.py", ""));
    let rule = refused(&zip_bytes(&entries));
    assert!(
        matches!(rule, ArtifactRule::MissingFile { ref path } if path.ends_with("RECORD")),
        "{rule}"
    );
}

// --- Sizes ---

#[test]
fn refuses_decompression_bombs() {
    let mut files = good_files();
    files.push(("demo/bomb.bin".into(), vec![0u8; 64 << 20]));
    let bytes = wheel(&files);
    assert!(bytes.len() < 200_000);
    let limits = ArtifactLimits {
        archive: crate::limits::ArchiveLimits {
            ratio_grace_bytes: 1 << 20,
            deadline: None,
            ..Default::default()
        },
        ..Default::default()
    };
    // Refused on the declared sizes, before anything is decompressed.
    let rule = refused_with(WHEEL, &bytes, &limits);
    assert!(
        matches!(
            rule,
            ArtifactRule::Limit(LimitExceeded::CompressionRatio { limit: 100, .. })
        ),
        "{rule}"
    );
}

#[test]
fn refuses_members_larger_than_their_headers_say() {
    let mut bytes = wheel(&good_files());
    // Both headers claim 100 bytes for a 3000-byte member.
    patch_headers(&mut bytes, "demo/data.bin", |header, local| {
        let at = if local { 22 } else { 24 };
        header[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    });
    let rule = refused(&bytes);
    assert_eq!(
        rule.to_string(),
        "member `demo/data.bin` unpacks to more than the 100 bytes its headers declare"
    );
}

#[test]
fn refuses_too_many_members_too_many_bytes_and_too_large_files() {
    let bytes = wheel(&good_files());
    let limits = |archive: crate::limits::ArchiveLimits, max_artifact_bytes| ArtifactLimits {
        max_artifact_bytes,
        archive,
    };
    let rule = refused_with(
        WHEEL,
        &bytes,
        &limits(
            crate::limits::ArchiveLimits {
                max_members: 2,
                ..Default::default()
            },
            u64::MAX,
        ),
    );
    assert!(
        matches!(
            rule,
            ArtifactRule::Limit(LimitExceeded::Members { limit: 2 })
        ),
        "{rule}"
    );
    let rule = refused_with(
        WHEEL,
        &bytes,
        &limits(
            crate::limits::ArchiveLimits {
                max_unpacked_bytes: 1000,
                ..Default::default()
            },
            u64::MAX,
        ),
    );
    assert!(
        matches!(
            rule,
            ArtifactRule::Limit(LimitExceeded::UnpackedBytes { limit: 1000 })
        ),
        "{rule}"
    );
    let rule = refused_with(WHEEL, &bytes, &limits(Default::default(), 100));
    assert!(
        matches!(
            rule,
            ArtifactRule::Limit(LimitExceeded::ArtifactBytes { limit: 100, .. })
        ),
        "{rule}"
    );
}

// --- The artifact file itself ---

#[test]
fn refuses_a_wheel_path_that_is_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let real = write_file(tmp.path(), "real.whl", &wheel(&good_files()));
    let link = tmp.path().join(WHEEL);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = verify_wheel(&link, &ArtifactLimits::default()).unwrap_err();
    assert!(matches!(err.rule, ArtifactRule::Symlink), "{err}");
}
