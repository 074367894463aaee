//! What a user hands over as an sdist: folder names that differ from the file name, renamed
//! files, other formats, broken archives; and the messages each gets.

use super::*;
use crate::archive::NamedBy;
use std::error::Error as _;

/// The error as the CLI prints it: the message, then each cause (anyhow's `{:#}`).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn extract_ok(name: &str, bytes: &[u8]) -> ExtractedSdist {
    let scene = Scene::new();
    let extracted = scene
        .extract(name, bytes, &ArchiveLimits::default())
        .unwrap_or_else(|e| panic!("{name}: {}", chain(&e)));
    assert!(extracted.root.is_dir());
    extracted
}

// --- The top-level folder may spell the name otherwise (issue 19, item 7) ---

/// `ruamel_yaml-0.19.1.tar.gz` as PyPI serves it: the file name normalized per PEP 625,
/// the folder and PKG-INFO as the project spells its name.
fn ruamel_yaml() -> Vec<u8> {
    tar_gz(&sdist_entries(
        "ruamel.yaml-0.19.1",
        "ruamel.yaml",
        "0.19.1",
    ))
}

#[test]
fn a_top_folder_spelling_the_name_otherwise_is_accepted() {
    let extracted = extract_ok("ruamel_yaml-0.19.1.tar.gz", &ruamel_yaml());
    assert_eq!(extracted.top_level, "ruamel.yaml-0.19.1");
    assert!(extracted.root.ends_with("ruamel.yaml-0.19.1"));
    assert_eq!(extracted.filename.name.as_ref(), "ruamel-yaml");
    assert_eq!(extracted.filename.version.to_string(), "0.19.1");
    assert_eq!(extracted.named_by, NamedBy::FileName);
}

#[test]
fn a_top_folder_spelling_the_version_otherwise_is_accepted() {
    // PEP 440 equality: 2.0 == 2.0.0, and the folder's `Foo.Bar` is `foo-bar`.
    let bytes = tar_gz(&sdist_entries("Foo.Bar-2.0.0", "Foo.Bar", "2.0.0"));
    let extracted = extract_ok("foo_bar-2.0.tar.gz", &bytes);
    assert_eq!(extracted.filename.name.as_ref(), "foo-bar");
    assert_eq!(extracted.top_level, "Foo.Bar-2.0.0");
}

#[test]
fn the_built_sdist_check_accepts_the_same_folders() {
    let scene = Scene::new();
    let path = scene.archive("ruamel_yaml-0.19.1.tar.gz", &ruamel_yaml());
    let verified =
        crate::verify::verify_sdist(&path, &crate::limits::ArtifactLimits::default()).unwrap();
    assert_eq!(verified.top_level, "ruamel.yaml-0.19.1");
    assert_eq!(verified.metadata.name, "ruamel.yaml");
}

#[test]
fn a_top_folder_of_another_project_or_version_is_still_refused() {
    for top in ["ruamel.yml-0.19.1", "ruamel.yaml-0.19.2", "ruamel.yaml"] {
        let entries = sdist_entries(top, "ruamel.yaml", "0.19.1");
        let err = refused_as(
            "ruamel_yaml-0.19.1.tar.gz",
            &tar_gz(&entries),
            &ArchiveLimits::default(),
        );
        assert_eq!(
            err.to_string(),
            format!(
                "member `{top}/` refused: its top-level folder does not name the project and \
                 version of the file name (`ruamel_yaml-0.19.1`)"
            )
        );
    }
}

// --- A renamed sdist (issue 15, item 12) ---

#[test]
fn a_renamed_sdist_is_named_by_its_top_folder() {
    let bytes = tar_gz(&sdist_entries("tomli-2.5.0", "tomli", "2.5.0"));
    let extracted = extract_ok("v2.5.0.tar.gz", &bytes);
    assert_eq!(extracted.filename.name.as_ref(), "tomli");
    assert_eq!(extracted.filename.version.to_string(), "2.5.0");
    assert_eq!(extracted.named_by, NamedBy::TopLevelFolder);
    assert!(extracted.root.ends_with("tomli-2.5.0"));
}

#[test]
fn a_renamed_sdist_without_pkg_info_is_named_by_its_top_folder() {
    // A forge's tag archive: the project's files, no PKG-INFO.
    let entries = [
        TarEntry::dir("tomli-2.5.0/"),
        TarEntry::file("tomli-2.5.0/pyproject.toml", "[project]\n"),
    ];
    let extracted = extract_ok("v2.5.0.tar.gz", &tar_gz(&entries));
    assert_eq!(extracted.filename.name.as_ref(), "tomli");
    assert_eq!(extracted.named_by, NamedBy::TopLevelFolder);
}

#[test]
fn a_renamed_sdist_whose_folder_gives_nothing_is_named_by_pkg_info() {
    let entries = sdist_entries("src", "tomli", "2.5.0");
    let extracted = extract_ok("main.tar.gz", &tar_gz(&entries));
    assert_eq!(extracted.filename.name.as_ref(), "tomli");
    assert_eq!(extracted.filename.version.to_string(), "2.5.0");
    assert_eq!(extracted.named_by, NamedBy::PkgInfo);
    assert_eq!(extracted.top_level, "src");
}

#[test]
fn a_renamed_sdist_that_names_nothing_is_refused_with_what_to_do() {
    let entries = [
        TarEntry::dir("tomli-main/"),
        TarEntry::file("tomli-main/pyproject.toml", "[project]\n"),
    ];
    let err = refused_as("main.tar.gz", &tar_gz(&entries), &ArchiveLimits::default());
    assert_eq!(
        chain(&err),
        "cannot tell which project it holds: neither its file name `main.tar.gz` nor its \
         top-level folder `tomli-main` is `{name}-{version}`, and it has no PKG-INFO that \
         gives them; rename it to `{name}-{version}.tar.gz` or build from the project folder"
    );
}

#[test]
fn pkg_info_must_agree_with_the_top_folder() {
    let entries = sdist_entries("tomli-2.5.0", "tomli", "2.4.0");
    let err = refused_as(
        "v2.5.0.tar.gz",
        &tar_gz(&entries),
        &ArchiveLimits::default(),
    );
    assert_eq!(
        err.to_string(),
        "its PKG-INFO gives tomli 2.4.0, but its top-level folder gives tomli 2.5.0 \
         (`tomli-2.5.0`): they must name the same project and version"
    );
    let entries = sdist_entries("tomli-2.5.0", "tomlkit", "2.5.0");
    let err = refused_as(
        "tomli-2.5.0.tar.gz",
        &tar_gz(&entries),
        &ArchiveLimits::default(),
    );
    assert!(matches!(err, ArchiveError::PkgInfoMismatch { .. }), "{err}");
}

// --- Other formats (issue 15, item 12) ---

#[test]
fn other_formats_are_named() {
    let mut ustar = tar_bytes(&[top(), TarEntry::file("pkg-1.0/a", "x")]);
    ustar[257..263].copy_from_slice(b"ustar\0");
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "demo-1.0-py3-none-any.whl",
            b"PK\x03\x04wheel bytes",
            "`demo-1.0-py3-none-any.whl` is a wheel, not an sdist: wasm-build builds wheels \
             from project folders and sdists, and a wheel needs no build",
        ),
        (
            "demo-1.0.tar.xz",
            b"\xfd7zXZ\x00\x00\x04",
            "`demo-1.0.tar.xz` is a .tar.xz archive; sdists are .tar.gz (PEP 625) or legacy .zip",
        ),
        (
            "demo-1.0.tar.bz2",
            b"BZh91AY&SY",
            "`demo-1.0.tar.bz2` is a .tar.bz2 archive; sdists are .tar.gz (PEP 625) or legacy \
             .zip",
        ),
        (
            "demo-1.0.tar",
            &ustar,
            "`demo-1.0.tar` is a plain .tar archive; sdists are .tar.gz (PEP 625) or legacy .zip",
        ),
        (
            "demo-1.0.tar.gz",
            b"",
            "`demo-1.0.tar.gz` is empty; sdists are .tar.gz (PEP 625) or legacy .zip",
        ),
        (
            "demo-1.0.tar.gz",
            b"<!DOCTYPE html>",
            "`demo-1.0.tar.gz` is not an sdist: it is neither a gzip-compressed tar nor a zip \
             archive; sdists are .tar.gz (PEP 625) or legacy .zip",
        ),
    ];
    for (name, bytes, message) in cases {
        let err = refused_as(name, bytes, &ArchiveLimits::default());
        assert!(matches!(err, ArchiveError::Format { .. }), "{name}: {err}");
        assert_eq!(chain(&err), *message, "{name}");
    }
}

// --- Broken archives: one fact, the cause chained once ---

#[test]
fn a_truncated_archive_names_the_member_and_chains_the_cause_once() {
    let data: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let whole = tar_gz(&[top(), TarEntry::file("pkg-1.0/big.bin", &data)]);
    let cut = &whole[..whole.len() / 2];
    let err = refused_as("pkg-1.0.tar.gz", cut, &ArchiveLimits::default());
    assert!(
        matches!(&err, ArchiveError::Corrupt { at: CorruptAt::Member(m), .. } if m == "pkg-1.0/big.bin"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the archive is truncated or corrupt (member `pkg-1.0/big.bin`)"
    );
    let cause = err
        .source()
        .expect("the I/O error is the source")
        .to_string();
    assert!(!cause.is_empty());
    let full = chain(&err);
    assert_eq!(
        full.matches(cause.as_str()).count(),
        1,
        "the cause is printed once: {full}"
    );
}

#[test]
fn a_broken_header_after_a_member_says_where() {
    let mut raw = tar_bytes(&[top(), TarEntry::file("pkg-1.0/a", "x")]);
    // Garble the next header block (the end-of-archive marker) into a bad checksum.
    let end = raw.len() - 1024;
    raw[end..end + 512].fill(b'7');
    let err = refused_as("pkg-1.0.tar.gz", &gzip(&raw), &ArchiveLimits::default());
    assert!(
        matches!(&err, ArchiveError::Corrupt { at: CorruptAt::After(m), .. } if m == "pkg-1.0/a"),
        "{}",
        chain(&err)
    );
    assert!(
        err.to_string()
            .starts_with("the archive is truncated or corrupt (after member `pkg-1.0/a`)")
    );
}

#[test]
fn io_errors_are_sources_never_repeated_in_messages() {
    // The destination cannot be created: its parent is missing.
    let scene = Scene::new();
    let archive = scene.archive("pkg-1.0.tar.gz", &tar_gz(&[top()]));
    let dest = scene.tmp.path().join("missing/dest");
    let err = extract_sdist(&archive, &dest, &ArchiveLimits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Destination { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("cannot use {} as the destination", dest.display())
    );
    let cause = err.source().unwrap().to_string();
    assert_eq!(chain(&err).matches(&cause).count(), 1);

    let missing = scene.tmp.path().join("archives/nope.tar.gz");
    let err = extract_sdist(&missing, &scene.dest(), &ArchiveLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read {}", missing.display())
    );
    assert!(err.source().is_some());
}

#[test]
fn limits_and_rules_are_said_once() {
    // A limit is the reason itself: in the message, not chained again.
    let limits = ArchiveLimits {
        max_members: 1,
        ..ArchiveLimits::default()
    };
    let bytes = tar_gz(&[top(), TarEntry::file("pkg-1.0/a", "x")]);
    let err = refused_as("pkg-1.0.tar.gz", &bytes, &limits);
    assert_eq!(
        chain(&err),
        "archive refused: more than 1 members (limit `max_members`)"
    );
    // The same through the built-sdist check, whose message names the artifact.
    let scene = Scene::new();
    let path = scene.archive("pkg-1.0.tar.gz", &bytes);
    let artifact_limits = crate::limits::ArtifactLimits {
        archive: limits,
        ..Default::default()
    };
    let err = crate::verify::verify_sdist(&path, &artifact_limits).unwrap_err();
    assert_eq!(
        chain(&err),
        "artifact `pkg-1.0.tar.gz` refused: archive refused: more than 1 members (limit \
         `max_members`)"
    );
    let rule = refused(&[top(), TarEntry::file("/etc/passwd", "x")]);
    let err = ArchiveError::Member {
        member: "/etc/passwd".into(),
        rule,
    };
    assert_eq!(
        chain(&err),
        "member `/etc/passwd` refused: the path is absolute"
    );
}

#[test]
fn a_corrupt_built_sdist_keeps_its_cause_through_the_artifact_error() {
    let data: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let whole = tar_gz(&[top(), TarEntry::file("pkg-1.0/big.bin", &data)]);
    let scene = Scene::new();
    let path = scene.archive("pkg-1.0.tar.gz", &whole[..whole.len() / 2]);
    let err =
        crate::verify::verify_sdist(&path, &crate::limits::ArtifactLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "artifact `pkg-1.0.tar.gz` refused: the archive is truncated or corrupt (member \
         `pkg-1.0/big.bin`)"
    );
    let cause = err.source().expect("the I/O error is chained").to_string();
    assert_eq!(chain(&err).matches(&cause).count(), 1, "{}", chain(&err));
}

// --- Deep names: bounded work ---

#[test]
fn deep_members_extract_and_the_folders_they_imply_count_as_members() {
    let deep = format!("pkg-1.0/{}mod.py", "d/".repeat(300));
    let bytes = tar_gz(&[top(), TarEntry::file(deep.as_bytes(), "x = 1\n")]);
    let scene = Scene::new();
    let extracted = scene
        .extract("pkg-1.0.tar.gz", &bytes, &ArchiveLimits::default())
        .unwrap();
    let file = extracted.root.join(deep.strip_prefix("pkg-1.0/").unwrap());
    assert_eq!(std::fs::read_to_string(file).unwrap(), "x = 1\n");
    // Two members, but 302 folders and a file: past a limit of 100 members.
    let limits = ArchiveLimits {
        max_members: 100,
        ..ArchiveLimits::default()
    };
    let err = refused_as("pkg-1.0.tar.gz", &bytes, &limits);
    assert!(
        matches!(
            err,
            ArchiveError::Limit(LimitExceeded::Members { limit: 100 })
        ),
        "{err}"
    );
}

#[test]
fn names_longer_than_path_max_are_refused_and_shown_cut_short() {
    let long = format!("pkg-1.0/{}", "a/".repeat(3000));
    let err = refused_as(
        "pkg-1.0.tar.gz",
        &tar_gz(&[top(), TarEntry::file(long.as_bytes(), "x")]),
        &ArchiveLimits::default(),
    );
    assert_eq!(
        err.member_rule(),
        Some(&MemberRule::Name(NameRule::TooLong))
    );
    let message = err.to_string();
    assert!(
        message.ends_with("…` refused: the name is longer than 4096 bytes"),
        "{message}"
    );
    assert!(message.len() < 700, "{} bytes", message.len());
}
