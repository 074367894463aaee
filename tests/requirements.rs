//! End to end: build requirements through the CLI — offline builds, hash-pinned
//! constraints, concurrent builds on a cold cache, cache maintenance.

mod common;

use common::*;
use std::fs;
use std::process::Command;

/// flit_core 3.12.0's wheel on PyPI (files there never change).
const FLIT_CORE_WHEEL_SHA256: &str =
    "e7a0304069ea895172e3c7bb703292e992c5d1555dd1233ab7b5621b5b69e62c";

/// `wasm-build` with a cache of its own (not the shared one).
fn with_cache(cache: &std::path::Path) -> Command {
    let mut cmd = wasm_build();
    cmd.env("WASM_BUILD_CACHE_DIR", cache);
    cmd
}

#[test]
fn offline_builds_need_a_warm_cache() {
    let cache = tempfile::tempdir().unwrap();
    let project = fixture("flit");
    let out = tempfile::tempdir().unwrap();
    // Cold and offline: the requirement cannot be found, and the error says which.
    let stderr = build_fails(
        with_cache(cache.path())
            .arg(project.path())
            .args(["--wheel", "--offline", "-o"])
            .arg(out.path()),
        4,
    );
    assert!(stderr.contains("flit-core"), "{stderr}");
    assert!(stderr.to_lowercase().contains("offline"), "{stderr}");
    assert!(listing(out.path()).is_empty());
    // Online once, then offline works from the cache.
    build_ok(
        with_cache(cache.path())
            .arg(project.path())
            .args(["--wheel", "-o"])
            .arg(out.path()),
    );
    fs::remove_dir_all(out.path()).unwrap();
    build_ok(
        with_cache(cache.path())
            .arg(project.path())
            .args(["--wheel", "--offline", "-o"])
            .arg(out.path()),
    );
    assert_eq!(listing(out.path()), ["flit_demo-0.1.0-py3-none-any.whl"]);
}

#[test]
fn require_hashes_installs_only_pinned_hashes() {
    let project = fixture("flit");
    let constraints = project.path().join("constraints.txt");
    let out = project.path().join("dist");
    let build = |text: &str| {
        fs::write(&constraints, text).unwrap();
        let mut cmd = wasm_build();
        cmd.arg(project.path())
            .args(["--wheel", "--require-hashes", "--build-constraint"])
            .arg(&constraints);
        cmd
    };

    let stderr = build_fails(&mut build("flit_core==3.12.0\n"), 4);
    assert!(
        stderr.contains("flit-core") || stderr.contains("flit_core"),
        "{stderr}"
    );
    assert!(stderr.contains("hash"), "{stderr}");

    let wrong = format!("flit_core==3.12.0 --hash=sha256:{}\n", "0".repeat(64));
    let stderr = build_fails(&mut build(&wrong), 4);
    assert!(
        stderr.contains(FLIT_CORE_WHEEL_SHA256) || stderr.contains("hash"),
        "{stderr}"
    );
    assert!(!out.exists());

    let pinned = format!("flit_core==3.12.0 --hash=sha256:{FLIT_CORE_WHEEL_SHA256}\n");
    let built = build_ok(&mut build(&pinned));
    assert_eq!(built, [out.join("flit_demo-0.1.0-py3-none-any.whl")]);
}

#[test]
fn two_builds_race_on_a_cold_cache() {
    let cache = tempfile::tempdir().unwrap();
    let projects = [fixture("hatchling"), fixture("hatchling")];
    let mut children: Vec<_> = projects
        .iter()
        .map(|project| {
            with_cache(cache.path())
                .arg(project.path())
                .arg("--wheel")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children.drain(..) {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for project in &projects {
        assert_eq!(
            listing(&project.path().join("dist")),
            ["hatch_demo-0.3.0-py3-none-any.whl"]
        );
    }
    // One environment was made, and it is intact: a third build reuses it.
    let envs = cache.path().join("envs-v1");
    let made: Vec<String> = listing(&envs)
        .into_iter()
        .filter(|n| !n.contains('.'))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let third = fixture("hatchling");
    build_ok(
        with_cache(cache.path())
            .arg(third.path())
            .args(["--wheel", "--offline"]),
    );
}

#[test]
fn cache_clean_empties_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let project = fixture("intree");
    build_ok(with_cache(cache.path()).arg(project.path()).arg("--wheel"));
    assert!(!listing(cache.path()).is_empty());
    let output = run(with_cache(cache.path()).args(["cache", "prune"]));
    assert!(output.status.success());
    // A fresh environment is kept by prune.
    assert!(!listing(&cache.path().join("envs-v1")).is_empty());
    let output = run(with_cache(cache.path()).args(["cache", "clean"]));
    assert!(output.status.success());
    assert!(
        listing(cache.path()).is_empty(),
        "{:?}",
        listing(cache.path())
    );
}

#[test]
fn a_damaged_build_environment_is_made_again() {
    let cache = tempfile::tempdir().unwrap();
    let project = fixture("flit");
    build_ok(with_cache(cache.path()).arg(project.path()).arg("--wheel"));
    let envs = cache.path().join("envs-v1");
    let env = listing(&envs)
        .into_iter()
        .find(|n| !n.contains('.'))
        .expect("an environment");
    let init = envs.join(&env).join("site-packages/flit_core/__init__.py");
    fs::write(&init, "raise SystemExit('tampered')\n").unwrap();
    let output = run(with_cache(cache.path()).arg(project.path()).arg("--wheel"));
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("was changed"), "{stderr}");
    assert!(!fs::read_to_string(&init).unwrap().contains("tampered"));
}
