//! Host work on what the guest leaves and guest runs on the host's behalf stay bounded
//! (issue 14, items 6 and 7).

use super::*;

/// `prepare_metadata_for_build_wheel` returns a `.dist-info` folder nested 2,500 folders
/// deep (made one level at a time through folder descriptors, as an attacker would): the
/// host walks it one folder at a time and refuses it past 32 levels at once, instead of
/// reopening every folder from the root (seconds to minutes of host CPU outside
/// `--timeout`, then "File name too long").
#[test]
fn a_dist_info_nested_thousands_of_folders_deep_is_refused_at_once() {
    let hostile = r#"
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = "hostile_demo-1.0.dist-info"
    top = os.path.join(metadata_directory, name)
    os.mkdir(top)
    with open(os.path.join(top, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: hostile-demo\nVersion: 1.0\n")
    fd = os.open(top, os.O_RDONLY)
    for _ in range(2500):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    return name
"#;
    backend_fails(
        hostile,
        &["--metadata"],
        7,
        &[
            "artifact `hostile_demo-1.0.dist-info` refused",
            "nests folders more than 32 levels deep",
        ],
    );
}

/// A build requirement whose module takes seconds to compile: the bytecode compilation of
/// the build environment is a guest run like any other and keeps `--timeout` (it used to
/// run with the default limits, minutes past a `--timeout 2`).
#[test]
fn compiling_a_build_environment_keeps_the_time_limit() {
    ensure_runtime();
    let mut module = String::new();
    for i in 0..60_000 {
        module.push_str(&format!(
            "def f{i}(a, b):\n    return [a + b * {i} for _ in range(3)]\n"
        ));
    }
    let wheels = wheel_dir(
        "slow-helper",
        "1.0",
        &[("slow_helper/__init__.py", module.as_bytes())],
    );
    let scene = Scene::build(|scene| {
        write_project(&scene.project(), "", &["slow-helper==1.0"]);
    });
    let mut cmd = scene.offline_cmd(&wheels);
    cmd.args(["--timeout", "2"]);
    scene.fails(
        &mut cmd,
        6,
        &[
            "compiling the build environment's bytecode was stopped by the sandbox",
            "time limit of 2 s reached",
            "hint: raise the limit with --timeout SECONDS",
        ],
    );
}

/// A build requirement whose two modules compile to 3 MB of bytecode each, with room for
/// 4 MB left under `--disk-limit`: the two guests that compile an environment's bytecode
/// at once share that room (each may add half), so together they cannot pass the limit
/// that one run would keep.
#[test]
fn compiling_a_build_environment_in_parts_keeps_the_disk_limit() {
    ensure_runtime();
    // Wheel bytes of their own, so that no environment of an earlier run is in the cache.
    let nonce = now_nanos();
    let module = |letter: &str| format!("DATA = {:?}\nRUN = {nonce}\n", letter.repeat(3 << 20));
    let (a, b) = (module("a"), module("b"));
    let (scene, mut cmd, _wheels) = requiring_fat_helper(&[
        ("fat_helper/a.py", a.as_bytes()),
        ("fat_helper/b.py", b.as_bytes()),
    ]);
    cmd.args(["--disk-limit", "10"]);
    scene.fails(
        &mut cmd,
        6,
        &[
            "compiling the build environment's bytecode was stopped by the sandbox",
            "disk limit of 10 MiB reached in the sandbox's writable folders",
            "hint: raise the limit with --disk-limit MIB",
        ],
    );
}

/// A build requirement with one module of 3 MB of bytecode, and about 5 MB of room left
/// under `--disk-limit`: too much for one bytecode run's half of the room, not for one run
/// with all of it. Compiled in parts the step would be refused where a single run fitted,
/// so it is done again as one run, and the build succeeds as it did before the split.
#[test]
fn bytecode_that_fits_the_disk_limit_but_not_a_part_s_share_is_compiled_in_one_run() {
    ensure_runtime();
    // Wheel bytes of their own, so that no environment of an earlier run is in the cache.
    let nonce = now_nanos();
    let big = format!("DATA = {:?}\nRUN = {nonce}\n", "a".repeat(3 << 20));
    let (scene, mut cmd, _wheels) = requiring_fat_helper(&[
        ("fat_helper/__init__.py", b""),
        ("fat_helper/big.py", big.as_bytes()),
    ]);
    cmd.args(["--disk-limit", "8"]);
    build_ok(&mut cmd);
    assert_eq!(listing(&scene.out()), [WHEEL]);
    scene.check_host_unchanged();
}

/// A scene whose project requires `fat-helper==1.0`, a wheel of `files`, and the offline
/// command that builds it (with the folder holding the wheel, to be kept).
fn requiring_fat_helper(files: &[(&str, &[u8])]) -> (Scene, Command, tempfile::TempDir) {
    let wheels = wheel_dir("fat-helper", "1.0", files);
    let scene = Scene::build(|scene| {
        write_project(&scene.project(), "", &["fat-helper==1.0"]);
    });
    let cmd = scene.offline_cmd(&wheels);
    (scene, cmd, wheels)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `get_requires_for_build_wheel` asks for a thousand requirements: each name would cost
/// the host index requests (outside `--timeout`), so past 128 the build is refused before
/// any is looked up.
#[test]
fn a_backend_asking_for_a_thousand_requirements_is_refused() {
    let hostile = r#"
def get_requires_for_build_wheel(config_settings=None):
    return ["no-such-package-%d" % i for i in range(1000)]
"#;
    backend_fails(
        hostile,
        &["--wheel", "--offline"],
        4,
        &["the backend asked for 1000 build requirements; more than 128 are refused"],
    );
}

/// A requirement string that made the PEP 508 parser panic (a name ending in `-` before a
/// character that ends it, found by the `pyproject` fuzz target) is an invalid requirement,
/// not a crash of the host: from `get_requires_for_build_wheel` and from `pyproject.toml`.
#[test]
fn a_requirement_that_crashed_the_parser_is_refused() {
    let hostile = r#"
def get_requires_for_build_wheel(config_settings=None):
    return ["crash-'"]
"#;
    backend_fails(
        hostile,
        &["--wheel", "--offline"],
        4,
        &[
            "invalid requirement `crash-'`",
            "does not end with a letter or digit",
        ],
    );
    let scene = Scene::build(|scene| write_project(&scene.project(), "", &["crash-'"]));
    scene.fails(
        &mut scene.wheel_cmd(&[]),
        3,
        &["invalid requirement `crash-'`"],
    );
}

/// Every entry below `dir`, at any depth.
fn entries_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(entries_below(&path));
        }
        found.push(path);
    }
    found
}

fn named(entries: &[PathBuf], wanted: impl Fn(&str) -> bool) -> Vec<&PathBuf> {
    entries
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&wanted))
        .collect()
}

/// Runs `cmd` (a build whose backend writes a file named `mark` and then sleeps) until
/// `mark` appears below the scene's TMPDIR; stops the build with SIGTERM (exit 143) and
/// returns what was there at that moment, the mark's path first.
fn entries_when_marked(scene: &Scene, cmd: &mut Command, mark: &str) -> (PathBuf, Vec<PathBuf>) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(900);
    let found = loop {
        let entries = entries_below(&scene.tmp());
        if let Some(found) = named(&entries, |n| n == mark).first() {
            break ((*found).clone(), entries.clone());
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the build ended before it wrote {mark}: {status}\n{stderr}");
        }
        assert!(Instant::now() < give_up, "{mark} never appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: signals the child we started (still running: not yet waited for).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(143));
    found
}

/// What a build holds in its scratch folder at once, which bounds a scratch folder in
/// memory (docs/security.md, Limits): a hook run's folders go before the step's next run
/// writes, and a step's tree before the next step's. From a project folder (an sdist, then
/// the wheel from it), `get_requires_for_build_wheel` marks its run and asks for a
/// requirement, so `build_wheel` runs in a second instance, marks it and sleeps: then the
/// scratch folder holds one run's folders, neither the first run's mark nor the first
/// step's copy of the project.
#[test]
fn a_build_holds_one_runs_folders_and_one_steps_tree_at_a_time() {
    let wheels = helper_wheel_dir("15.0");
    let hostile = r#"
import time

def get_requires_for_build_wheel(config_settings=None):
    with open("/tmp/first-run-mark", "wb") as f:
        f.write(b"x" * 65536)
    return ["hostile-helper==15.0"]

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    open("/tmp/second-run-mark", "w").close()
    time.sleep(600)
"#;
    let scene = Scene::with_backend(hostile);
    ensure_runtime();
    let mut cmd = scene.cmd();
    cmd.arg(scene.project())
        .args(["--offline", "--find-links"])
        .arg(wheels.path());
    let (_, entries) = entries_when_marked(&scene, &mut cmd, "second-run-mark");

    assert!(
        named(&entries, |n| n == "first-run-mark").is_empty(),
        "{entries:#?}"
    );
    assert_eq!(
        named(&entries, |n| n.starts_with("hook-")).len(),
        1,
        "{entries:#?}"
    );
    let scratch: Vec<&PathBuf> = named(&entries, |n| {
        n.starts_with("wasm-build-") && !n.starts_with("wasm-build-root-")
    });
    let [scratch] = scratch.as_slice() else {
        panic!("one scratch folder: {scratch:?}");
    };
    let trees: Vec<&PathBuf> = named(&entries, |n| {
        n.starts_with("src-") || n.starts_with("sdist-")
    })
    .into_iter()
    .filter(|p| p.parent() == Some(scratch.as_path()))
    .collect();
    assert!(
        trees.len() == 1 && trees[0].to_string_lossy().contains("/sdist-"),
        "the sdist step's tree outlived its step: {trees:?}"
    );
    assert!(listing(&scene.tmp()).is_empty(), "scratch left behind");
}

/// The run that prepares a backend (an installed one, imported once with an empty project)
/// works outside the build's scratch folder: its own folders are not counted by the hook
/// runs' disk limit beside the tree, so they must not share a scratch folder that may be
/// in memory (docs/security.md, Limits). The backend marks its empty project when imported
/// there and sleeps; the mark is then in a scratch folder of its own.
#[test]
fn a_prepare_run_works_outside_the_builds_scratch_folder() {
    let backend = br#"
import os
import time

if os.path.isdir("/src") and not os.listdir("/src"):
    open("/src/prepare-mark", "w").close()
    time.sleep(600)
"#;
    let wheels = wheel_dir(
        "prepared-mark-backend",
        "16.0",
        &[("prepared_mark_backend.py", backend)],
    );
    let scene = Scene::build(|scene| {
        let project = scene.project();
        fs::write(
            project.join("pyproject.toml"),
            format!(
                "[build-system]\nrequires = [\"prepared-mark-backend==16.0\"]\n\
                 build-backend = \"prepared_mark_backend\"\n\n\
                 [project]\nname = \"{PROJECT}\"\nversion = \"{VERSION}\"\n"
            ),
        )
        .unwrap();
    });
    ensure_runtime();
    let mut cmd = scene.cmd();
    cmd.arg(scene.project())
        .args(["--wheel", "--offline", "--find-links"])
        .arg(wheels.path());
    let (mark, entries) = entries_when_marked(&scene, &mut cmd, "prepare-mark");

    // The build's scratch folder holds the project's copy; the mark is in another one.
    let tree = named(&entries, |n| n.starts_with("src-"));
    let [tree] = tree.as_slice() else {
        panic!("one copy of the project: {entries:#?}");
    };
    let build_scratch = tree.parent().unwrap();
    assert!(
        !mark.starts_with(build_scratch),
        "{mark:?} is in the build's {build_scratch:?}"
    );
    let top = mark
        .strip_prefix(scene.tmp())
        .unwrap()
        .components()
        .next()
        .unwrap();
    assert!(
        top.as_os_str().to_string_lossy().starts_with("wasm-build-"),
        "{mark:?} is not in a scratch folder of its own"
    );
    assert!(listing(&scene.tmp()).is_empty(), "scratch left behind");
}
