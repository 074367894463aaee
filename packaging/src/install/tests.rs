use super::*;
use crate::archive::zip::ZipMemberRule;
use std::io::{Cursor, Write};

fn wheel(members: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        if name.ends_with('/') {
            zip.add_directory(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
        } else {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
    }
    let bytes = zip.finish().unwrap().into_inner();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&bytes).unwrap();
    file
}

fn install(
    members: &[(&str, &[u8])],
    budget: u64,
) -> (tempfile::TempDir, Result<(), InstallError>) {
    let dir = tempfile::tempdir().unwrap();
    let file = wheel(members);
    let mut site = SitePackages::create(&dir.path().join("site"), budget).unwrap();
    let result = site.install(file.as_file(), "w-1.0-py3-none-any.whl");
    (dir, result)
}

#[test]
fn installs_the_importable_parts() {
    let (dir, result) = install(
        &[
            ("pkg/", b""),
            ("pkg/__init__.py", b"x = 1\n"),
            ("w-1.0.data/purelib/extra.py", b"e"),
            ("w-1.0.data/platlib/sub/plat.py", b"p"),
            ("w-1.0.data/scripts/tool", b"#!/bin/sh"),
            ("w-1.0.data/data/share/x", b"d"),
            ("w-1.0.dist-info/METADATA", b"Name: w"),
        ],
        1 << 20,
    );
    result.unwrap();
    let site = dir.path().join("site");
    assert_eq!(
        std::fs::read(site.join("pkg/__init__.py")).unwrap(),
        b"x = 1\n"
    );
    assert_eq!(std::fs::read(site.join("extra.py")).unwrap(), b"e");
    assert_eq!(std::fs::read(site.join("sub/plat.py")).unwrap(), b"p");
    assert!(site.join("w-1.0.dist-info/METADATA").is_file());
    assert!(!site.join("tool").exists() && !site.join("share").exists());
    assert!(!site.join("w-1.0.data").exists());
}

#[test]
fn refuses_names_that_leave_the_folder() {
    for name in ["../evil.py", "/abs.py", "a\\b.py", "a/./b.py", "a//b.py"] {
        let (dir, result) = install(&[(name, b"x")], 1 << 20);
        assert!(
            matches!(result, Err(InstallError::Name { .. })),
            "{name}: {result:?}"
        );
        assert!(!dir.path().join("evil.py").exists());
    }
}

/// A wheel of `members` whose name `written` is then renamed `as_name` in place (zip
/// writers refuse what these tests need: duplicates, a file inside a file).
fn renamed(members: &[(&str, &[u8])], written: &str, as_name: &str) -> tempfile::NamedTempFile {
    assert_eq!(written.len(), as_name.len());
    let file = wheel(members);
    let mut bytes = std::fs::read(file.path()).unwrap();
    for at in 0..bytes.len() - written.len() {
        if &bytes[at..at + written.len()] == written.as_bytes() {
            bytes[at..at + written.len()].copy_from_slice(as_name.as_bytes());
        }
    }
    std::fs::write(file.path(), &bytes).unwrap();
    file
}

#[test]
fn refuses_duplicates_and_files_inside_files() {
    let install = |file: tempfile::NamedTempFile| {
        let dir = tempfile::tempdir().unwrap();
        let mut site = SitePackages::create(&dir.path().join("site"), 1 << 20).unwrap();
        site.install(file.as_file(), "w.whl")
    };
    let result = install(renamed(&[("a.py", b"1"), ("b.py", b"2")], "b.py", "a.py"));
    assert!(
        matches!(result, Err(InstallError::DuplicateMember { .. })),
        "{result:?}"
    );
    let result = install(renamed(
        &[("a", b"1"), ("z/b.py", b"2")],
        "z/b.py",
        "a/b.py",
    ));
    assert!(
        matches!(
            result,
            Err(InstallError::Refused {
                source: ZipError::Member {
                    rule: ZipMemberRule::Name(MemberRule::Placement(_)),
                    ..
                },
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn never_writes_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let mut packages = SitePackages::create(&site, 1 << 20).unwrap();
    // Something else put a link into the folder while it was being filled.
    std::os::unix::fs::symlink(outside.path(), site.join("pkg")).unwrap();
    let file = wheel(&[("pkg/__init__.py", b"x")]);
    let result = packages.install(file.as_file(), "w.whl");
    assert!(
        matches!(result, Err(InstallError::Write { .. })),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn keeps_to_the_budget() {
    let (_dir, result) = install(&[("a.py", &[b'x'; 100]), ("b.py", &[b'y'; 100])], 150);
    assert!(
        matches!(result, Err(InstallError::TooLarge { .. })),
        "{result:?}"
    );
    let (_dir, result) = install(&[("a.py", &[b'x'; 100]), ("b.py", &[b'y'; 100])], 200);
    result.unwrap();
}

#[test]
fn a_file_that_is_not_a_zip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"not a zip").unwrap();
    let mut site = SitePackages::create(&dir.path().join("site"), 1 << 20).unwrap();
    let error = site.install(file.as_file(), "w.whl").unwrap_err();
    assert_eq!(error.to_string(), "w.whl is refused");
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "not a valid zip archive: there is no end-of-central-directory record in its last \
         64 KiB"
    );
}

/// Issue 14's two-zip64 wheel, whose hidden members CPython's `zipfile` would install.
#[test]
fn refuses_a_wheel_installers_read_differently() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&crate::archive::zip::attacks::two_zip64_end_records())
        .unwrap();
    let mut site = SitePackages::create(&dir.path().join("site"), 1 << 20).unwrap();
    let error = site.install(file.as_file(), "demo.whl").unwrap_err();
    assert!(
        matches!(
            error,
            InstallError::Refused {
                source: ZipError::Structure(_),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("site")).unwrap().count(),
        0
    );
}
