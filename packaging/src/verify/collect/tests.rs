use super::*;
use crate::archive::fs::open_dir_at;
use crate::test_support::{nest_folders, tempdir_for_many_folders};
use std::os::unix::fs::symlink;

/// `tmp/out` (the hook's output folder) and `tmp/outside/secret`.
fn scene() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/secret"), "secret").unwrap();
    (tmp, out)
}

fn rule_of(result: Result<CollectedArtifact, ArtifactError>) -> ArtifactRule {
    result.expect_err("must be refused").rule
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn collects_a_plain_file() {
    let (_tmp, out) = scene();
    std::fs::write(out.join("demo-1.0.tar.gz"), "bytes").unwrap();
    let collected = collect_artifact(&out, "demo-1.0.tar.gz").unwrap();
    assert_eq!(collected.path, out.join("demo-1.0.tar.gz"));
    assert_eq!(collected.file_name, "demo-1.0.tar.gz");
    assert_eq!(collected.size, 5);
    let mut text = String::new();
    use std::io::Read;
    (&collected.file).read_to_string(&mut text).unwrap();
    assert_eq!(text, "bytes");
}

#[test]
fn refuses_return_values_that_are_not_bare_names() {
    let (_tmp, out) = scene();
    for (returned, expected) in [
        ("", ReturnedNameRule::Empty),
        ("../outside/secret", ReturnedNameRule::HasSlash),
        ("/etc/passwd", ReturnedNameRule::HasSlash),
        ("sub/x.whl", ReturnedNameRule::HasSlash),
        ("..\\x.whl", ReturnedNameRule::HasBackslash),
        ("x.whl\0", ReturnedNameRule::HasControlChar),
        ("x\n.whl", ReturnedNameRule::HasControlChar),
        (".", ReturnedNameRule::DotName),
        ("..", ReturnedNameRule::DotName),
        (".hidden.whl", ReturnedNameRule::Hidden),
    ] {
        let rule = rule_of(collect_artifact(&out, returned));
        assert!(
            matches!(rule, ArtifactRule::ReturnedName(r) if r == expected),
            "{returned:?}: {rule}"
        );
    }
}

#[test]
fn refuses_a_missing_file() {
    let (_tmp, out) = scene();
    assert!(matches!(
        rule_of(collect_artifact(&out, "x.whl")),
        ArtifactRule::Missing
    ));
}

#[test]
fn refuses_symlinks_inside_or_outside() {
    let (tmp, out) = scene();
    std::fs::write(out.join("real.whl"), "x").unwrap();
    symlink("real.whl", out.join("inside.whl")).unwrap();
    symlink(tmp.path().join("outside/secret"), out.join("outside.whl")).unwrap();
    symlink("/nonexistent", out.join("dangling.whl")).unwrap();
    for name in ["inside.whl", "outside.whl", "dangling.whl"] {
        assert!(
            matches!(rule_of(collect_artifact(&out, name)), ArtifactRule::Symlink),
            "{name}"
        );
    }
}

#[test]
fn refuses_folders_and_fifos() {
    let (_tmp, out) = scene();
    std::fs::create_dir(out.join("dir.whl")).unwrap();
    mkfifo(&out.join("fifo.whl"));
    assert!(matches!(
        rule_of(collect_artifact(&out, "dir.whl")),
        ArtifactRule::NotRegularFile { kind: "folder" }
    ));
    assert!(matches!(
        rule_of(collect_artifact(&out, "fifo.whl")),
        ArtifactRule::NotRegularFile { kind: "FIFO" }
    ));
}

#[test]
fn refuses_hard_linked_files() {
    let (_tmp, out) = scene();
    std::fs::write(out.join("a.whl"), "x").unwrap();
    std::fs::hard_link(out.join("a.whl"), out.join("b.whl")).unwrap();
    assert!(matches!(
        rule_of(collect_artifact(&out, "a.whl")),
        ArtifactRule::HardLinked { links: 2 }
    ));
}

// --- Metadata folders ---

fn metadata_dir(out: &Path, name: &str, metadata: &str) -> PathBuf {
    let dir = out.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("METADATA"), metadata).unwrap();
    dir
}

const METADATA: &str = "Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\nRequires-Dist: six\n";

fn meta_rule(out: &Path, name: &str) -> ArtifactRule {
    collect_metadata_dir(out, name, &ArtifactLimits::default())
        .expect_err("must be refused")
        .rule
}

#[test]
fn collects_a_metadata_folder() {
    let (_tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    std::fs::create_dir(dir.join("licenses")).unwrap();
    std::fs::write(dir.join("licenses/LICENSE"), "MIT").unwrap();
    let collected =
        collect_metadata_dir(&out, "demo-1.0.dist-info", &ArtifactLimits::default()).unwrap();
    assert_eq!(collected.metadata.requires_dist, ["six"]);
    assert_eq!(collected.files, ["METADATA", "licenses/LICENSE"]);
}

#[test]
fn refuses_metadata_folders_not_named_dist_info() {
    let (_tmp, out) = scene();
    metadata_dir(&out, "demo-1.0.egg-info", METADATA);
    assert!(matches!(
        meta_rule(&out, "demo-1.0.egg-info"),
        ArtifactRule::NotDistInfo
    ));
    assert!(matches!(
        meta_rule(&out, ".dist-info"),
        ArtifactRule::ReturnedName(_)
    ));
    assert!(matches!(
        meta_rule(&out, "../x.dist-info"),
        ArtifactRule::ReturnedName(_)
    ));
}

#[test]
fn refuses_a_metadata_folder_that_is_a_symlink_or_a_file() {
    let (tmp, out) = scene();
    std::fs::create_dir(tmp.path().join("outside/demo-1.0.dist-info")).unwrap();
    symlink(
        tmp.path().join("outside/demo-1.0.dist-info"),
        out.join("demo-1.0.dist-info"),
    )
    .unwrap();
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::Symlink
    ));
    std::fs::write(out.join("file-1.0.dist-info"), "").unwrap();
    assert!(matches!(
        meta_rule(&out, "file-1.0.dist-info"),
        ArtifactRule::NotFolder
    ));
}

#[test]
fn refuses_symlinks_and_special_files_inside_a_metadata_folder() {
    let (tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    std::fs::create_dir(dir.join("sub")).unwrap();
    symlink(
        tmp.path().join("outside/secret"),
        dir.join("sub/entry_points.txt"),
    )
    .unwrap();
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::SymlinkInside { path } if path == "sub/entry_points.txt"
    ));

    let (_tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    mkfifo(&dir.join("fifo"));
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::SpecialInside { kind: "FIFO", .. }
    ));
}

#[test]
fn refuses_a_metadata_symlink() {
    let (tmp, out) = scene();
    let dir = out.join("demo-1.0.dist-info");
    std::fs::create_dir(&dir).unwrap();
    symlink(tmp.path().join("outside/secret"), dir.join("METADATA")).unwrap();
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::SymlinkInside { .. }
    ));
}

#[test]
fn refuses_missing_unparsable_or_mismatched_metadata() {
    let (_tmp, out) = scene();
    std::fs::create_dir(out.join("demo-1.0.dist-info")).unwrap();
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::MissingFile { .. }
    ));

    let (_tmp, out) = scene();
    metadata_dir(&out, "demo-1.0.dist-info", "not metadata\n");
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::Metadata { .. }
    ));

    let (_tmp, out) = scene();
    metadata_dir(&out, "demo-2.0.dist-info", METADATA);
    assert!(matches!(
        meta_rule(&out, "demo-2.0.dist-info"),
        ArtifactRule::DistInfoName { .. }
    ));
}

#[test]
fn refuses_metadata_folders_past_the_limits() {
    let (_tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    for i in 0..5 {
        std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
    }
    let limits = ArtifactLimits {
        archive: crate::limits::ArchiveLimits {
            max_members: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = collect_metadata_dir(&out, "demo-1.0.dist-info", &limits).unwrap_err();
    assert!(
        matches!(
            err.rule,
            ArtifactRule::Limit(LimitExceeded::Members { limit: 3 })
        ),
        "{err}"
    );
}

#[test]
fn publishes_the_collected_bytes_atomically() {
    let (tmp, out) = scene();
    std::fs::write(out.join("demo-1.0.tar.gz"), "verified bytes").unwrap();
    let collected = collect_artifact(&out, "demo-1.0.tar.gz").unwrap();
    let dist = tmp.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    std::fs::write(dist.join("demo-1.0.tar.gz"), "older build").unwrap();
    let published = collected
        .publish(&crate::publish::OutputDir::open(&dist, None).unwrap())
        .unwrap();
    assert_eq!(published, dist.join("demo-1.0.tar.gz"));
    assert_eq!(
        std::fs::read_to_string(&published).unwrap(),
        "verified bytes"
    );
    assert_eq!(
        std::fs::read_dir(&dist).unwrap().count(),
        1,
        "no temporary files left"
    );

    // A file that grew after it was collected is not published.
    std::fs::write(out.join("demo-1.0.tar.gz"), "verified bytes, and more").unwrap();
    let other = tmp.path().join("dist2");
    std::fs::create_dir(&other).unwrap();
    assert!(
        collected
            .publish(&crate::publish::OutputDir::open(&other, None).unwrap())
            .is_err()
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
}

#[test]
fn refuses_a_metadata_folder_nested_ten_thousand_deep() {
    // The walk opens one folder per level, relative to its parent, and stops at the depth
    // limit: it never looks at the 9,968 levels below (which used to take minutes).
    let tmp = tempdir_for_many_folders();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    nest_folders(&dir, 10_000, "d");
    let err = collect_metadata_dir(&out, "demo-1.0.dist-info", &ArtifactLimits::default())
        .expect_err("must be refused");
    assert!(
        matches!(&err.rule, ArtifactRule::TooDeep { limit: 32, path } if path == "d/d/d/…"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "artifact `demo-1.0.dist-info` refused: it nests folders more than 32 levels deep \
         (`d/d/d/…`); metadata needs no such depth"
    );
    crate::scratch::remove(&dir).unwrap();
}

#[test]
fn accepts_nesting_up_to_the_depth_limit() {
    let (_tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    // `d/…/d/bottom`: 31 folders and a file, 32 levels below the `.dist-info` folder.
    nest_folders(&dir, MAX_DIST_INFO_DEPTH - 1, "d");
    let collected =
        collect_metadata_dir(&out, "demo-1.0.dist-info", &ArtifactLimits::default()).unwrap();
    let deepest = format!("{}bottom", "d/".repeat(MAX_DIST_INFO_DEPTH - 1));
    assert_eq!(collected.files, ["METADATA", deepest.as_str()]);
    // One level more is refused.
    let bottom = dir.join(deepest);
    std::fs::remove_file(&bottom).unwrap();
    std::fs::create_dir(&bottom).unwrap();
    std::fs::write(bottom.join("deeper"), "x").unwrap();
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::TooDeep { .. }
    ));
}

#[test]
fn refuses_a_symlink_swapped_in_for_a_subfolder() {
    // A folder of the listing that is a symlink by the time it is opened is refused, not
    // followed: it is opened with O_NOFOLLOW relative to its parent.
    let (tmp, out) = scene();
    let dir = metadata_dir(&out, "demo-1.0.dist-info", METADATA);
    std::fs::create_dir(dir.join("sub")).unwrap();
    let parent = open_dir_path(&dir).unwrap();
    std::fs::remove_dir(dir.join("sub")).unwrap();
    symlink(tmp.path().join("outside"), dir.join("sub")).unwrap();
    // ENOTDIR or ELOOP, depending on the kernel: either way not followed.
    assert!(open_dir_at(&parent, "sub").is_err());
    assert!(matches!(
        meta_rule(&out, "demo-1.0.dist-info"),
        ArtifactRule::SymlinkInside { .. }
    ));
}
