//! Building from a git checkout (issue 19, item 8): the guest answers the `git` commands
//! of setuptools-scm and hatch-vcs from the checkout's `.git`, mounted read-only, with an
//! emulation on dulwich. Fixtures are made here with the host's `git`; the versions and
//! sdist contents are compared with what pypa/build makes natively from the same checkout.

mod common;

use common::python::tools_python;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the host's git in `dir` with a fixed identity and clock.
fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_DATE", "2024-03-01T12:00:00+01:00")
        .env("GIT_COMMITTER_DATE", "2024-03-01T12:00:00+01:00")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const SETUPTOOLS_SCM: &str = r#"[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "scm-demo"
dynamic = ["version"]

[tool.setuptools]
packages = ["scm_demo"]

[tool.setuptools_scm]
"#;

const HATCH_VCS: &str = r#"[build-system]
requires = ["hatchling", "hatch-vcs"]
build-backend = "hatchling.build"

[project]
name = "vcs-demo"
dynamic = ["version"]

[tool.hatch.version]
source = "vcs"

[tool.hatch.build.targets.wheel]
packages = ["vcs_demo"]
"#;

/// A checkout in `dir/name`: `pyproject`, the package `package`, a tracked data file no
/// package holds, an untracked file; committed and tagged `v1.2.3` (annotated).
fn checkout(dir: &Path, name: &str, pyproject: &str, package: &str) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(root.join(package)).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    fs::write(root.join("pyproject.toml"), pyproject).unwrap();
    fs::write(root.join(package).join("__init__.py"), "VALUE = 1\n").unwrap();
    fs::write(root.join("data/extra.txt"), "tracked, in no package\n").unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "."]);
    git(&root, &["commit", "-q", "-m", "first"]);
    git(&root, &["tag", "-a", "v1.2.3", "-m", "release"]);
    fs::write(root.join("untracked.txt"), "not in git\n").unwrap();
    root
}

/// What wasm-build makes of `source` (sdist, then the wheel from it), in `out`.
fn ours(source: &Path, out: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let built = build_ok(wasm_build().arg(source).arg("-o").arg(out).args(extra));
    assert_eq!(built.len(), 2, "{built:?}");
    (built[0].clone(), built[1].clone())
}

/// The file names pypa/build makes natively of `source` (sdist, then the wheel from it).
fn native(source: &Path, out: &Path) -> Vec<String> {
    let output = Command::new(tools_python())
        .args(["-m", "build", "-o"])
        .arg(out)
        .arg(source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python -m build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names = listing(out);
    names.sort();
    names
}

#[test]
fn the_emulation_answers_as_git_does() {
    // The commands version plugins run, against repositories made with the real git
    // (unborn, at annotated and lightweight tags, after them, changed in the work tree and
    // the index, detached, merges with tags on both sides), from the top and a subfolder:
    // where the emulation answers, status and stdout are git's; it may only refuse.
    let dir = tempfile::tempdir().unwrap();
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest");
    let output = Command::new(tools_python())
        .arg(fixtures().join("git/differential.py"))
        .arg(&guest)
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the emulation differs from git");
    assert!(stdout.contains(", differences 0"), "{stdout}");
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The sdist's members below its top folder, without setuptools' egg-info.
fn sdist_files(sdist: &Path) -> Vec<String> {
    tar_names(sdist)
        .into_iter()
        .filter_map(|n| n.split_once('/').map(|(_, rest)| rest.to_string()))
        .filter(|n| !n.is_empty() && !n.ends_with('/') && !n.contains(".egg-info"))
        .collect()
}

#[test]
fn a_setuptools_scm_checkout_gets_gits_version_and_file_list() {
    let dir = tempfile::tempdir().unwrap();
    let root = checkout(dir.path(), "scm", SETUPTOOLS_SCM, "scm_demo");
    let (sdist, wheel) = ours(&root, &dir.path().join("out"), &[]);
    assert_eq!(name(&sdist), "scm_demo-1.2.3.tar.gz");
    assert_eq!(name(&wheel), "scm_demo-1.2.3-py3-none-any.whl");
    let files = sdist_files(&sdist);
    // The git file finder lists what `git ls-files` does: the tracked data file, not the
    // untracked one.
    assert!(files.contains(&"data/extra.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"untracked.txt".to_string()), "{files:?}");
    let mut native_names = native(&root, &dir.path().join("native"));
    let mut our_names = vec![name(&sdist), name(&wheel)];
    our_names.sort();
    native_names.sort();
    assert_eq!(our_names, native_names);
    assert_eq!(
        files,
        sdist_files(&dir.path().join("native").join(name(&sdist)))
    );

    // A pretended version still gets git's file list (it was the version alone before).
    let (pretended, _) = ours(
        &root,
        &dir.path().join("out-pretend"),
        &["--env", "SETUPTOOLS_SCM_PRETEND_VERSION=9.9.9"],
    );
    assert_eq!(name(&pretended), "scm_demo-9.9.9.tar.gz");
    assert_eq!(sdist_files(&pretended), files);

    // A commit after the tag and a changed tracked file: the `.devN+g<node>.d<date>`
    // version setuptools-scm makes natively.
    fs::write(root.join("data/extra.txt"), "changed\n").unwrap();
    git(&root, &["commit", "-q", "-am", "second"]);
    fs::write(root.join("scm_demo/__init__.py"), "VALUE = 2\n").unwrap();
    let (sdist, _) = ours(&root, &dir.path().join("out-dirty"), &[]);
    let native_names = native(&root, &dir.path().join("native-dirty"));
    assert!(
        name(&sdist).starts_with("scm_demo-1.2.4.dev1+g") && name(&sdist).contains(".d20"),
        "{}",
        name(&sdist)
    );
    assert!(native_names.contains(&name(&sdist)), "{native_names:?}");
}

#[test]
fn a_hatch_vcs_checkout_gets_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let root = checkout(dir.path(), "vcs", HATCH_VCS, "vcs_demo");
    let (sdist, wheel) = ours(&root, &dir.path().join("out"), &[]);
    assert_eq!(name(&sdist), "vcs_demo-1.2.3.tar.gz");
    assert_eq!(name(&wheel), "vcs_demo-1.2.3-py2.py3-none-any.whl");
    let native_names = native(&root, &dir.path().join("native"));
    assert!(native_names.contains(&name(&wheel)), "{native_names:?}");
}

#[test]
fn a_git_file_or_symlink_is_not_followed_and_the_fallback_is_not_silent() {
    // A `.git` file (a linked worktree) and a `.git` symlink point at a repository
    // outside the source: never read; the build goes on as without a repository, with
    // warnings saying so.
    let dir = tempfile::tempdir().unwrap();
    let real = checkout(dir.path(), "real", SETUPTOOLS_SCM, "scm_demo");
    let pointing = |how: &str, pyproject: &str| {
        let root = dir.path().join(format!("pointing-{how}"));
        let _ = fs::remove_dir_all(&root);
        copy_tree(&real, &root);
        fs::write(root.join("pyproject.toml"), pyproject).unwrap();
        fs::remove_dir_all(root.join(".git")).unwrap();
        let target = real.join(".git");
        if how == "file" {
            fs::write(root.join(".git"), format!("gitdir: {}\n", target.display())).unwrap();
        } else {
            std::os::unix::fs::symlink(&target, root.join(".git")).unwrap();
        }
        root
    };
    for how in ["file", "symlink"] {
        // setuptools-scm without a repository and without a fallback fails, as natively
        // in a folder without .git.
        let root = pointing(how, SETUPTOOLS_SCM);
        let stderr = build_fails(
            wasm_build()
                .arg(&root)
                .arg("--sdist")
                .arg("-o")
                .arg(dir.path().join(format!("out-{how}"))),
            5,
        );
        assert!(stderr.contains(&format!("{how}/.git is a")), "{stderr}");
        assert!(stderr.contains("not followed"), "{stderr}");
        assert!(stderr.contains("unable to detect version"), "{stderr}");
    }
    // With a fallback version the build succeeds with it, and a warning says where the
    // version came from and how to give it.
    let with_fallback = SETUPTOOLS_SCM.replace(
        "[tool.setuptools_scm]\n",
        "[tool.setuptools_scm]\nfallback_version = \"0.0.1\"\n",
    );
    let root = pointing("file", &with_fallback);
    let output = run(wasm_build()
        .arg(&root)
        .arg("--sdist")
        .arg("-o")
        .arg(dir.path().join("out-fallback")));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the build requires setuptools-scm, which reads git"),
        "{stderr}"
    );
    assert!(stderr.contains("has no git repository"), "{stderr}");
    assert!(
        stderr.contains("SETUPTOOLS_SCM_PRETEND_VERSION"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("scm_demo-0.0.1.tar.gz"));
    // The way out works.
    let built = build_ok(
        wasm_build()
            .arg(&root)
            .arg("--sdist")
            .args(["--env", "SETUPTOOLS_SCM_PRETEND_VERSION=7.0.0", "-o"])
            .arg(dir.path().join("out-pretend")),
    );
    assert_eq!(name(&built[0]), "scm_demo-7.0.0.tar.gz");
}

#[test]
fn a_hostile_git_folder_reads_nothing_outside_and_keeps_to_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = checkout(dir.path(), "hostile", SETUPTOOLS_SCM, "scm_demo");
    // A secret outside the source, linked from inside .git: never copied, never read.
    let secret = dir.path().join("secret");
    fs::write(&secret, "SECRET-CONTENT").unwrap();
    fs::remove_file(root.join(".git/description")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join(".git/description")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join(".git/etc")).unwrap();
    let output = run(wasm_build()
        .arg(&root)
        .arg("--sdist")
        .arg("-o")
        .arg(dir.path().join("out")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success());
    assert!(stderr.contains("in .git: skipped symlink"), "{stderr}");
    assert!(!stderr.contains("SECRET-CONTENT"));
    assert_eq!(
        name(&PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim()
        )),
        "scm_demo-1.2.3.tar.gz"
    );

    // A pack file larger than what the staging limits leave (2 GiB for the source and its
    // .git together; a sparse file here): refused before anything runs, naming the
    // repository and the limit.
    let huge = fs::File::create(root.join(".git/objects/pack/pack-huge.pack")).unwrap();
    huge.set_len(3 << 30).unwrap();
    let stderr = build_fails(
        wasm_build()
            .arg(&root)
            .arg("--sdist")
            .arg("-o")
            .arg(dir.path().join("out-huge")),
        3,
    );
    assert!(stderr.contains("the git repository"), "{stderr}");
    assert!(stderr.contains("max_bytes"), "{stderr}");
}

#[test]
fn a_git_command_the_emulation_cannot_answer_fails_the_build() {
    // An export-ignore attribute: the emulation does not evaluate attributes, so the file
    // finder's `git ls-files … :(exclude,attr:export-ignore)` is refused, and the build
    // ends naming it instead of making an sdist with a different file list.
    let dir = tempfile::tempdir().unwrap();
    let root = checkout(dir.path(), "attrs", SETUPTOOLS_SCM, "scm_demo");
    fs::write(root.join(".gitattributes"), "data/ export-ignore\n").unwrap();
    git(&root, &["add", ".gitattributes"]);
    git(&root, &["commit", "-q", "-m", "attributes"]);
    git(&root, &["tag", "-a", "v1.2.4", "-m", "release"]);
    let stderr = build_fails(
        wasm_build()
            .arg(&root)
            .arg("--sdist")
            .arg("-o")
            .arg(dir.path().join("out")),
        3,
    );
    assert!(stderr.contains("git emulation cannot answer"), "{stderr}");
    assert!(stderr.contains("export-ignore"), "{stderr}");
    assert!(
        stderr.contains("SETUPTOOLS_SCM_PRETEND_VERSION"),
        "{stderr}"
    );
}

#[test]
fn a_backend_failing_after_an_unanswered_git_command_is_told_why() {
    // An in-tree backend that looks git up (shutil.which finds it: the emulation answers
    // it) and needs `git archive` (not emulated), failing without it: the hint names the
    // command and the pretend-version way out.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archiver");
    fs::create_dir_all(root.join("_backend")).unwrap();
    fs::write(
        root.join("pyproject.toml"),
        "[build-system]\nrequires = []\nbuild-backend = \"archiver\"\nbackend-path = [\"_backend\"]\n",
    )
    .unwrap();
    fs::write(
        root.join("_backend/archiver.py"),
        "import shutil, subprocess\n\n\
         def build_sdist(sdist_directory, config_settings=None):\n    \
         git = shutil.which(\"git\")\n    \
         subprocess.run([git, \"archive\", \"HEAD\"], check=True, capture_output=True)\n",
    )
    .unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "."]);
    git(&root, &["commit", "-q", "-m", "first"]);
    let stderr = build_fails(
        wasm_build()
            .arg(&root)
            .arg("--sdist")
            .arg("-o")
            .arg(dir.path().join("out")),
        5,
    );
    assert!(stderr.contains("CalledProcessError"), "{stderr}");
    assert!(
        stderr.contains("the backend ran `/usr/bin/git archive HEAD`, which the sandbox's git"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SETUPTOOLS_SCM_PRETEND_VERSION"),
        "{stderr}"
    );
}
