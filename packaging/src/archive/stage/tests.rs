use super::*;
use crate::test_support::snapshot;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;

fn set_mtime(path: &Path, seconds: i64) {
    let spec = rustix::fs::Timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: spec,
            last_modification: spec,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// `tmp/project` (the user's tree), `tmp/outside/secret`, and `tmp/scratch` for the copy.
struct Scene {
    tmp: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    fn in_dir(tmp: tempfile::TempDir) -> Self {
        std::fs::create_dir(tmp.path().join("project")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), "secret").unwrap();
        Self { tmp }
    }

    fn src(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("scratch")
    }

    fn file(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.src().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.src().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    fn stage(&self) -> Result<StagedTree, StageError> {
        stage_source_tree(&self.src(), &self.dest(), &StageLimits::default())
    }
}

fn skipped_link(staged: &StagedTree, path: &str) -> Option<LinkSkip> {
    staged.warnings.iter().find_map(|w| match w {
        StageWarning::SkippedSymlink {
            path: p, reason, ..
        } if p == path => Some(*reason),
        _ => None,
    })
}

#[test]
fn copies_a_project_and_leaves_the_source_untouched() {
    let scene = Scene::new();
    scene.file("pyproject.toml", "[project]\nname = 'demo'\n");
    scene.file("src/demo/__init__.py", "x = 1\n");
    let script = scene.file("bin/run.sh", "#!/bin/sh\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    scene.link("README.md", "docs/readme.txt");
    scene.file("docs/readme.txt", "read me\n");
    scene.link("src/pkg_alias", "demo");
    scene.link("self", ".");
    scene.file(".git/HEAD", "ref: refs/heads/main\n");
    scene.file("vendor/sub/.git", "gitdir: ../../.git/modules/sub\n");
    scene.file("vendor/sub/mod.py", "y = 2\n");
    set_mtime(&scene.src().join("src/demo/__init__.py"), 1_400_000_000);
    set_mtime(&scene.src().join("src/demo"), 1_400_000_001);
    set_mtime(&scene.src().join("src"), 1_400_000_004);
    set_mtime(&scene.src().join("README.md"), 1_400_000_002);
    set_mtime(&scene.src(), 1_400_000_003);

    let before = snapshot(scene.tmp.path());
    let staged = scene.stage().unwrap();
    let after: Vec<_> = snapshot(scene.tmp.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with("scratch"))
        .collect();
    assert_eq!(
        after, before,
        "the source tree and its surroundings are bit-identical"
    );

    let dest = scene.dest();
    assert_eq!(staged.root, dest);
    assert!(staged.warnings.is_empty(), "{:?}", staged.warnings);
    assert_eq!(staged.executables, ["bin/run.sh"]);
    assert_eq!(staged.skipped_vcs, [".git", "vendor/sub/.git"]);
    assert!(!dest.join(".git").exists());
    assert!(!dest.join("vendor/sub/.git").exists());
    assert_eq!(
        std::fs::read_to_string(dest.join("vendor/sub/mod.py")).unwrap(),
        "y = 2\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("README.md")).unwrap(),
        Path::new("docs/readme.txt")
    );
    assert_eq!(
        std::fs::read_link(dest.join("src/pkg_alias")).unwrap(),
        Path::new("demo")
    );
    assert_eq!(
        std::fs::read_link(dest.join("self")).unwrap(),
        Path::new(".")
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("src/pkg_alias/__init__.py")).unwrap(),
        "x = 1\n"
    );
    let meta = |p: &str| std::fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(meta("bin/run.sh").permissions().mode() & 0o777, 0o755);
    assert_eq!(meta("pyproject.toml").permissions().mode() & 0o777, 0o644);
    assert_eq!(meta("src/demo/__init__.py").mtime(), 1_400_000_000);
    assert_eq!(meta("src/demo").mtime(), 1_400_000_001);
    // A folder holding a link keeps its time too (links are written last).
    assert_eq!(meta("src").mtime(), 1_400_000_004);
    assert_eq!(meta("README.md").mtime(), 1_400_000_002);
    assert_eq!(std::fs::metadata(&dest).unwrap().mtime(), 1_400_000_003);
    // 5 files, 6 folders and 3 links were copied.
    assert_eq!(staged.entries, 14);
    let copied = [
        "pyproject.toml",
        "src/demo/__init__.py",
        "bin/run.sh",
        "docs/readme.txt",
        "vendor/sub/mod.py",
    ];
    let bytes: u64 = copied.iter().map(|p| meta(p).len()).sum();
    assert_eq!(staged.bytes, bytes);
}

#[test]
fn skips_links_that_leave_the_tree() {
    let scene = Scene::new();
    scene.file("a.py", "");
    scene.link("escape", "../outside/secret");
    scene.link("deep/escape", "../../outside");
    scene.link("absolute", "/etc/passwd");
    let staged = scene.stage().unwrap();
    assert_eq!(skipped_link(&staged, "escape"), Some(LinkSkip::Outside));
    assert_eq!(
        skipped_link(&staged, "deep/escape"),
        Some(LinkSkip::Outside)
    );
    assert_eq!(skipped_link(&staged, "absolute"), Some(LinkSkip::Absolute));
    for name in ["escape", "deep/escape", "absolute"] {
        assert!(
            std::fs::symlink_metadata(scene.dest().join(name)).is_err(),
            "{name}"
        );
    }
    assert!(scene.dest().join("deep").is_dir());
}

#[test]
fn skips_dangling_and_looping_links_even_in_chains() {
    let scene = Scene::new();
    scene.file("real.py", "");
    scene.link("dangling", "missing.py");
    scene.link("chain", "dangling");
    scene.link("loop_a", "loop_b");
    scene.link("loop_b", "loop_a");
    scene.link("into_file", "real.py/x");
    scene.link("good", "real.py");
    let staged = scene.stage().unwrap();
    for name in ["dangling", "chain", "loop_a", "loop_b", "into_file"] {
        assert_eq!(
            skipped_link(&staged, name),
            Some(LinkSkip::Dangling),
            "{name}"
        );
        assert!(
            std::fs::symlink_metadata(scene.dest().join(name)).is_err(),
            "{name}"
        );
    }
    assert_eq!(skipped_link(&staged, "good"), None);
    assert!(scene.dest().join("good").exists());
}

#[test]
fn links_are_rewritten_so_lexical_checks_hold_on_disk() {
    // `deep/deeper/s` points at the root; `x -> deep/deeper/s/..` is lexically
    // `deep/deeper`, but the kernel would resolve it to the root's parent.
    let scene = Scene::new();
    scene.file("deep/deeper/f", "f");
    scene.link("deep/deeper/s", "../..");
    scene.link("x", "deep/deeper/s/..");
    let staged = scene.stage().unwrap();
    assert!(staged.warnings.is_empty(), "{:?}", staged.warnings);
    assert_eq!(
        std::fs::read_link(scene.dest().join("x")).unwrap(),
        Path::new("deep/deeper")
    );
    let resolved = std::fs::canonicalize(scene.dest().join("x")).unwrap();
    assert!(resolved.starts_with(std::fs::canonicalize(scene.dest()).unwrap()));
}

#[test]
fn skips_fifos_sockets_and_non_utf8_names() {
    let scene = Scene::new();
    scene.file("a.py", "");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        scene.src().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(scene.src().join("sock")).unwrap();
    std::fs::write(scene.src().join(OsStr::from_bytes(b"bad\xffname")), "").unwrap();
    let staged = scene.stage().unwrap();
    assert!(staged.warnings.contains(&StageWarning::SkippedSpecial {
        path: "fifo".into(),
        kind: "FIFO"
    }));
    assert!(staged.warnings.contains(&StageWarning::SkippedSpecial {
        path: "sock".into(),
        kind: "socket"
    }));
    assert!(staged.warnings.contains(&StageWarning::SkippedNonUtf8 {
        path: "bad\u{fffd}name".into()
    }));
    let names: Vec<_> = std::fs::read_dir(scene.dest())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [OsStr::new("a.py")]);
    // Every warning reads as a sentence.
    for warning in &staged.warnings {
        assert!(warning.to_string().starts_with("skipped `"), "{warning}");
    }
}

#[test]
fn refuses_too_many_entries() {
    let scene = Scene::new();
    for i in 0..10 {
        scene.file(&format!("f{i}"), "x");
    }
    let limits = StageLimits {
        max_entries: 5,
        ..StageLimits::default()
    };
    let err = stage_source_tree(&scene.src(), &scene.dest(), &limits).unwrap_err();
    assert!(
        matches!(err, StageError::Limit(LimitExceeded::Entries { limit: 5 })),
        "{err}"
    );
    assert!(err.to_string().contains("max_entries"));
    assert!(!scene.dest().exists(), "a failed copy is removed");
}

#[test]
fn refuses_too_many_bytes() {
    let scene = Scene::new();
    scene.file("big", &"x".repeat(10_000));
    let limits = StageLimits {
        max_bytes: 4_000,
        ..StageLimits::default()
    };
    let err = stage_source_tree(&scene.src(), &scene.dest(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            StageError::Limit(LimitExceeded::Bytes { limit: 4_000 })
        ),
        "{err}"
    );
    assert!(!scene.dest().exists());
}

#[test]
fn never_copies_the_destination_into_itself() {
    let scene = Scene::new();
    scene.file("a.py", "");
    let dest = scene.src().join("build-scratch");
    let staged = stage_source_tree(&scene.src(), &dest, &StageLimits::default()).unwrap();
    assert_eq!(
        staged.warnings,
        [StageWarning::SkippedDestination {
            path: "build-scratch".into()
        }]
    );
    assert!(dest.join("a.py").is_file());
    assert!(!dest.join("build-scratch").exists());
}

#[test]
fn refuses_a_destination_that_is_not_empty() {
    let scene = Scene::new();
    scene.file("a.py", "");
    std::fs::create_dir(scene.dest()).unwrap();
    std::fs::write(scene.dest().join("keep"), "keep").unwrap();
    let err = scene.stage().unwrap_err();
    assert!(matches!(err, StageError::Destination { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(scene.dest().join("keep")).unwrap(),
        "keep"
    );
}

#[test]
fn a_source_that_is_not_a_folder_is_an_error() {
    let scene = Scene::new();
    let file = scene.file("a.py", "");
    let err = stage_source_tree(&file, &scene.dest(), &StageLimits::default()).unwrap_err();
    assert!(matches!(err, StageError::Read { .. }), "{err}");
    assert!(!scene.dest().exists());
}

#[test]
fn a_folder_whose_links_all_dangle_keeps_its_time() {
    let scene = Scene::new();
    scene.file("a/keep.py", "");
    scene.link("a/dangling", "nowhere");
    set_mtime(&scene.src().join("a"), 1_300_000_000);
    let staged = scene.stage().unwrap();
    assert_eq!(
        skipped_link(&staged, "a/dangling"),
        Some(LinkSkip::Dangling)
    );
    let meta = std::fs::metadata(scene.dest().join("a")).unwrap();
    assert_eq!(meta.mtime(), 1_300_000_000);
}

#[test]
fn stages_a_tree_nested_ten_thousand_deep_up_to_the_depth_limit() {
    // One descriptor per level on each side, each folder opened once relative to its
    // parent: what lies below the depth limit is left out with one warning, not walked.
    let scene = Scene::in_dir(crate::test_support::tempdir_for_many_folders());
    scene.file("pyproject.toml", "[project]\n");
    crate::test_support::nest_folders(&scene.src(), 10_000, "d");
    let staged = scene.stage().unwrap();
    assert_eq!(
        staged.warnings,
        [StageWarning::SkippedTooDeep {
            path: "d/d/d/…/d".into()
        }]
    );
    assert_eq!(
        staged.warnings[0].to_string(),
        "skipped `d/d/d/…/d`: it nests folders more than 64 levels deep"
    );
    // pyproject.toml and 64 folders.
    assert_eq!(staged.entries, 1 + MAX_STAGE_DEPTH as u64);
    let deepest = scene.dest().join("d/".repeat(MAX_STAGE_DEPTH));
    assert!(deepest.is_dir());
    assert_eq!(std::fs::read_dir(&deepest).unwrap().count(), 0);
    crate::scratch::remove(&scene.src()).unwrap();
}
