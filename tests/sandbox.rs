//! The sandbox as a library. The pre-initialized interpreter (docs/runtime.md): every run
//! starts from the snapshot taken after CPython's start-up, yet sees only its own arguments,
//! environment and mounts, and nothing a previous run did; runs from a memory image start
//! where the prepared command ended, and a guest process uses only the image bytes the parent
//! checked. Guest processes (docs/architecture.md): a guest cannot forge how its process
//! ended, and is killed at the time limit even while asleep in the host.

mod common;

use common::*;
use std::process::Output;
use wasm_build::runtime::{self, RuntimeChoice};
use wasm_build::sandbox::{
    GuestExit, GuestRun, Isolation, LimitHit, Limits, LogSink, Mount, Sandbox, SandboxError,
    base_environment,
};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::target::GuestMarkers;

fn runtime_run(extra: &[&str], code: &str) -> Output {
    let mut cmd = wasm_build();
    cmd.args(["runtime", "run"])
        .args(extra)
        .args(["--", "-c", code, "one", "two"]);
    run(&mut cmd)
}

/// What the guest printed (`runtime run` passes the guest's output to stderr).
fn printed(output: &Output) -> String {
    assert!(output.status.success(), "the guest failed");
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn a_run_sees_its_own_arguments_environment_and_mounts() {
    let output = runtime_run(
        &["--env", "WASM_BUILD_TEST=run-1"],
        "import json, os, sys; print(json.dumps([sys.argv, os.environ.get('WASM_BUILD_TEST'), \
         os.environb.get(b'WASM_BUILD_TEST').decode(), os.getcwd(), os.path.isdir('/wasm-build/env'), \
         sys.flags.no_site, sys.flags.dont_write_bytecode, sys.path[0], sys.orig_argv[1:3]]))",
    );
    assert_eq!(
        printed(&output),
        r#"[["-c", "one", "two"], "run-1", "run-1", "/src", true, 1, 1, "", ["-S", "-c"]]"#
    );
    // The same snapshot, another environment: nothing of the first run is left.
    let output = runtime_run(
        &["--env", "WASM_BUILD_TEST=run-2"],
        "import os; print(os.environ.get('WASM_BUILD_TEST'))",
    );
    assert_eq!(printed(&output), "run-2");
}

#[test]
fn a_run_with_other_start_up_settings_gets_a_fresh_start_up() {
    let code = "import sys; print(sys.flags.hash_randomization, hash('wasm-build'))";
    let fixed = printed(&runtime_run(&[], code));
    let seeded = printed(&runtime_run(&["--env", "PYTHONHASHSEED=1"], code));
    let fixed_again = printed(&runtime_run(&["--env", "PYTHONHASHSEED=0"], code));
    assert!(fixed.starts_with("0 "), "{fixed}");
    assert!(seeded.starts_with("1 "), "{seeded}");
    assert_ne!(
        fixed, seeded,
        "PYTHONHASHSEED=1 must reach CPython's start-up"
    );
    assert_eq!(fixed, fixed_again);
}

/// What `-vv` says getting the interpreter ready took, building `project`'s wheel with
/// `cache` and `state`.
fn interpreter_ready(
    cache: &std::path::Path,
    state: &std::path::Path,
    project: &std::path::Path,
) -> String {
    let outdir = tempfile::tempdir().unwrap();
    let output = run(wasm_build()
        .env("WASM_BUILD_CACHE_DIR", cache)
        .env("XDG_STATE_HOME", state)
        .arg(project)
        .args(["--wheel", "-vv", "--no-progress", "-o"])
        .arg(outdir.path()));
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .find(|line| line.contains("Interpreter ready: "))
        .expect("-vv says what getting the interpreter ready took")
        .to_string()
}

/// A first run of the command line compiles nothing: the pre-initialized interpreter that
/// the build compiled ahead of time is unpacked into the cache and serves the marker probe,
/// the build environment's bytecode compilation and the hooks; the module as built is not
/// compiled for any of them.
#[test]
fn a_first_build_loads_the_precompiled_interpreter_and_compiles_nothing() {
    let (cache, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let project = fixture("flit");
    let ready = interpreter_ready(cache.path(), state.path(), project.path());
    // Made and compiled by host/build.rs with this engine's settings: were they not the
    // same, wasmtime would refuse it and the run would compile (Winch, then Cranelift).
    assert!(
        ready.contains("unpacking the precompiled interpreter"),
        "{ready}"
    );
    assert!(!ready.contains("compiling"), "{ready}");
    let compiled: Vec<String> = listing(&cache.path().join("compiled-v1"))
        .into_iter()
        .filter(|name| name.ends_with(".cwasm"))
        .collect();
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    // Nor does it ask the interpreter for its markers, which the catalog pins: the build
    // resolves and installs while the stdlib is still being unpacked.
    let asked: Vec<String> = listing(&cache.path().join("runtimes-v1"))
        .into_iter()
        .filter(|name| name.starts_with("target-"))
        .collect();
    assert!(asked.is_empty(), "{asked:?}");

    // What the first run put in the cache is what the next one loads, as it is.
    let ready = interpreter_ready(cache.path(), state.path(), project.path());
    assert!(
        ready.contains("loading the compiled interpreter"),
        "{ready}"
    );
    assert!(!ready.contains("unpacking the precompiled"), "{ready}");
    assert!(!ready.contains("compiling"), "{ready}");
}

/// A pre-initialized interpreter keeps what start-up imported from the stdlib, so the one
/// made for a `--python-home` never serves another folder (nor the same one once changed).
#[test]
fn each_python_home_gets_an_interpreter_started_from_its_own_stdlib() {
    let (mut provision, cache, _state) = wasm_build_on_an_empty_cache();
    assert!(
        run(provision.args(["runtime", "run", "--", "-c", "pass"]))
            .status
            .success()
    );
    let runtime = std::fs::read_dir(cache.path().join("runtimes-v1"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.join("python.wasm").is_file())
        .expect("the runtime in the cache");
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for home in &homes {
        copy_tree(&runtime.join("prefix"), home.path());
    }
    // The second home's `encodings`, which start-up imports, says where it comes from.
    let encodings = homes[1].path().join("lib/python3.13/encodings");
    std::fs::remove_file(encodings.join("__pycache__/__init__.cpython-313.pyc")).unwrap();
    let source = std::fs::read_to_string(encodings.join("__init__.py")).unwrap();
    std::fs::write(
        encodings.join("__init__.py"),
        source + "\nWASM_BUILD_HOME = 'second'\n",
    )
    .unwrap();
    let code = "import encodings; print(getattr(encodings, 'WASM_BUILD_HOME', 'first'))";
    let (_, local_cache, _state) = wasm_build_on_an_empty_cache();
    for (home, expected) in homes.iter().zip(["first", "second"]) {
        let mut cmd = wasm_build();
        cmd.env("WASM_BUILD_CACHE_DIR", local_cache.path())
            .args(["runtime", "run", "--python-wasm"])
            .arg(runtime.join("python.wasm"))
            .arg("--python-home")
            .arg(home.path())
            .args(["--", "-c", code]);
        assert_eq!(printed(&run(&mut cmd)), expected);
    }
}

/// The catalog pins its own runtime's marker environment (so that a first run need not
/// wait for the stdlib to ask): the pin is what the interpreter reports.
#[test]
fn the_pinned_markers_are_what_the_interpreter_reports() {
    let output = runtime_run(&[], wasm_build_packaging::target::PROBE_SCRIPT);
    let reported: GuestMarkers = serde_json::from_str(&printed(&output)).unwrap();
    let catalog = runtime::Catalog::builtin().unwrap();
    let pinned = catalog.get(&catalog.default).unwrap().markers.clone();
    assert_eq!(pinned, Some(reported));
}

/// `wasm-build` on a cache and state folder of its own, both empty (returned to be kept).
fn wasm_build_on_an_empty_cache() -> (std::process::Command, tempfile::TempDir, tempfile::TempDir) {
    let (cache, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cmd = wasm_build();
    cmd.env("WASM_BUILD_CACHE_DIR", cache.path())
        .env("XDG_STATE_HOME", state.path());
    (cmd, cache, state)
}

/// The site-packages of the one build environment in `cache`.
fn environment(cache: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(cache.join("envs-v1"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("site-packages"))
        .find(|path| path.is_dir())
        .expect("an environment")
}

/// A build environment's bytecode is compiled by several guests at once, each taking a
/// part of its modules: together they compile every module once, as `compileall` would,
/// and the same wheels get the same `.pyc` files in another cache.
#[test]
fn every_module_of_a_new_environment_gets_its_bytecode_the_same_in_every_cache() {
    // Each `.pyc` of the environment with its bytes.
    let pycs = |cache: &std::path::Path| {
        let env = environment(cache);
        let files = snapshot(&env);
        let sources: Vec<&std::path::PathBuf> = files
            .keys()
            .filter(|path| path.extension().is_some_and(|e| e == "py"))
            .collect();
        assert!(sources.len() > 10, "{sources:?}");
        let mut pycs = std::collections::BTreeMap::new();
        for source in sources {
            let stem = source.file_stem().unwrap().to_str().unwrap();
            let pyc = source
                .parent()
                .unwrap()
                .join("__pycache__")
                .join(format!("{stem}.cpython-313.pyc"));
            let bytes = std::fs::read(env.join(&pyc))
                .unwrap_or_else(|_| panic!("no bytecode for {}", source.display()));
            assert_eq!(
                bytes[4..8],
                [1, 0, 0, 0],
                "{} is not unchecked-hash",
                pyc.display()
            );
            pycs.insert(pyc, bytes);
        }
        let compiled = files
            .keys()
            .filter(|path| path.extension().is_some_and(|e| e == "pyc"))
            .count();
        assert_eq!(compiled, pycs.len(), "bytecode without its module");
        pycs
    };
    let mut made = Vec::new();
    for _ in 0..2 {
        let (mut cmd, cache, _state) = wasm_build_on_an_empty_cache();
        let outdir = tempfile::tempdir().unwrap();
        build_ok(
            cmd.arg(fixture("flit").path())
                .args(["--wheel", "--no-progress", "-o"])
                .arg(outdir.path()),
        );
        made.push(pycs(cache.path()));
    }
    assert_eq!(made[0], made[1]);
}

/// `py.py` and `.py` in one folder compile to the same `__pycache__/py.cpython-313.pyc`:
/// the runs that compile an environment in parts keep them in one part, in compileall's
/// order, so the bytecode is `py.py`'s as with compileall, not whichever run wrote last.
/// (`.py` is the larger, so that split by size alone they would land in different runs,
/// and `py.py`'s would be written first.)
#[test]
fn sources_sharing_a_pyc_get_the_bytecode_compileall_would_give() {
    let big = format!("DATA = {:?}\n", "x".repeat(400_000));
    let wheels = wheel_dir(
        "twin-helper",
        "1.0",
        &[
            ("twin_helper/__init__.py", b""),
            ("twin_helper/.py", big.as_bytes()),
            ("twin_helper/py.py", b"SMALL = 1\n"),
        ],
    );
    let project = fixture("intree");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("requires = []", "requires = [\"twin-helper==1.0\"]"),
    )
    .unwrap();
    let (mut cmd, cache, _state) = wasm_build_on_an_empty_cache();
    let outdir = tempfile::tempdir().unwrap();
    build_ok(
        cmd.arg(project.path())
            .args(["--wheel", "--no-progress", "--offline", "--find-links"])
            .arg(wheels.path())
            .arg("-o")
            .arg(outdir.path()),
    );
    let env = environment(cache.path());
    let pyc = std::fs::read(env.join("twin_helper/__pycache__/py.cpython-313.pyc")).unwrap();
    let names = |needle: &[u8]| pyc.windows(needle.len()).any(|w| w == needle);
    assert!(names(b"twin_helper/py.py"), "not py.py's bytecode");
    assert!(!names(b"twin_helper/.py"), "`.py`'s bytecode");
}

/// The library's default, guests on threads (an engine with epoch checks): on an empty
/// cache its pre-initialized interpreter is made with the start-up run on Winch too.
#[test]
fn guests_on_threads_get_a_pre_initialized_interpreter_on_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::with_key_file(dir.path().join("cache"), dir.path().join("key")).unwrap();
    let index = IndexClient::new(IndexOptions::default(), &cache).unwrap();
    let runtime =
        runtime::provision(&RuntimeChoice::Default, &cache, &index, &wasm_build::Silent).unwrap();
    let sandbox = Sandbox::with_isolation(&runtime, &cache, Isolation::Thread).unwrap();
    assert!(sandbox.is_pre_initialized());
    let steps: Vec<&str> = sandbox.timings().steps().iter().map(|s| s.0).collect();
    assert!(steps.contains(&"compiling start-up (Winch)"), "{steps:?}");
    let scratch = tempfile::tempdir().unwrap();
    let exit = run_code(&sandbox, scratch.path(), "print(6 * 7)", Limits::default()).unwrap();
    assert_eq!(
        (exit.code, String::from_utf8_lossy(&exit.log).trim()),
        (0, "42")
    );
}

#[test]
fn exit_codes_and_uncaught_exceptions_behave_as_in_python() {
    let output = runtime_run(&[], "import sys; sys.exit(7)");
    assert_eq!(output.status.code(), Some(7));
    let output = runtime_run(&[], "import sys; sys.exit('a message')");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("a message"));

    let output = runtime_run(&[], "raise ValueError('from the guest')");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ValueError: from the guest"), "{stderr}");
}

fn sandbox(isolation: Isolation) -> Sandbox {
    let cache = Cache::with_key_file(shared_cache(), shared_seal_key()).unwrap();
    let index = IndexClient::new(IndexOptions::default(), &cache).unwrap();
    let runtime =
        runtime::provision(&RuntimeChoice::Default, &cache, &index, &wasm_build::Silent).unwrap();
    let sandbox = Sandbox::with_isolation(&runtime, &cache, isolation).unwrap();
    assert!(
        sandbox.is_pre_initialized(),
        "the default runtime has the entry points"
    );
    sandbox
}

fn guest_processes() -> Isolation {
    Isolation::Process {
        program: env!("CARGO_BIN_EXE_wasm-build").into(),
        args: vec!["__guest".into()],
    }
}

fn run_code(
    sandbox: &Sandbox,
    scratch: &std::path::Path,
    code: &str,
    limits: Limits,
) -> Result<GuestExit, SandboxError> {
    sandbox.run(&GuestRun {
        limits,
        ..code_run(scratch, code, base_environment())
    })
}

/// `-S -c code` with `env` and `scratch` at `/tmp`.
fn code_run(scratch: &std::path::Path, code: &str, env: Vec<(String, String)>) -> GuestRun {
    GuestRun {
        args: vec!["-S".into(), "-c".into(), code.into()],
        env,
        mounts: vec![Mount::read_write(scratch, "/tmp")],
        limits: Limits::default(),
        log: LogSink::Capture,
        determinism: None,
    }
}

/// Two runs of one sandbox: whatever the first does to the interpreter (module globals,
/// `sys.modules`, builtins, the environment, an open file) is gone for the second,
/// which starts from the snapshot again. On a thread and in a child process.
#[test]
fn a_run_cannot_leave_anything_for_the_next() {
    for isolation in [Isolation::Thread, guest_processes()] {
        let sandbox = sandbox(isolation);
        let scratch = tempfile::tempdir().unwrap();
        let first = run_code(
            &sandbox,
            scratch.path(),
            "import builtins, os, sys\n\
             builtins.LEFT_BEHIND = 1\n\
             sys.modules['left_behind'] = sys\n\
             os.environ['LEFT_BEHIND'] = '1'\n\
             sys.path.insert(0, '/tmp/left-behind')\n\
             kept = open('/tmp/kept-open', 'w')\n\
             sys.setrecursionlimit(50)\n",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(first.code, 0, "{}", String::from_utf8_lossy(&first.log));
        let second = run_code(
            &sandbox,
            scratch.path(),
            "import builtins, os, sys\n\
             left = [hasattr(builtins, 'LEFT_BEHIND'), 'left_behind' in sys.modules,\n\
                     'LEFT_BEHIND' in os.environ, '/tmp/left-behind' in sys.path,\n\
                     sys.getrecursionlimit() == 50]\n\
             print(left)\n\
             sys.exit(1 if any(left) else 0)\n",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            second.code,
            0,
            "state survived between runs: {}",
            String::from_utf8_lossy(&second.log)
        );
    }
}

/// The guest writes what looks like its process's outcome report, on stdout and stderr, and
/// exits with another code: the parent reads reports only from the child's own stderr,
/// which the guest cannot reach, and keeps the guest's output as output.
#[test]
fn a_guest_cannot_forge_the_outcome_of_its_process() {
    let sandbox = sandbox(guest_processes());
    let scratch = tempfile::tempdir().unwrap();
    let forged = r#"{"Exited":{"code":0,"memory_refused":false}}"#;
    let exit = run_code(
        &sandbox,
        scratch.path(),
        &format!(
            "import os, sys\n\
             line = {forged:?} + '\\n'\n\
             sys.stdout.write(line); sys.stderr.write(line); sys.stdout.flush(); sys.stderr.flush()\n\
             os.write(2, line.encode()); os.write(1, line.encode())\n\
             sys.exit(3)\n"
        ),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(exit.code, 3);
    assert!(String::from_utf8_lossy(&exit.log).contains(forged));
    assert!(!exit.memory_refused);
}

/// A guest asleep in a host call (a WASI sleep) is out of reach of epoch interruption; in a
/// child process it is killed at the limit like any other.
#[test]
fn a_sleeping_guest_process_is_killed_at_the_time_limit() {
    let sandbox = sandbox(guest_processes());
    let scratch = tempfile::tempdir().unwrap();
    let limits = Limits {
        wall_time: std::time::Duration::from_secs(2),
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let error = run_code(
        &sandbox,
        scratch.path(),
        "import time\nprint('going to sleep', flush=True)\ntime.sleep(3600)\n",
        limits,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            SandboxError::Limit {
                hit: LimitHit::WallTime,
                ..
            }
        ),
        "{error}"
    );
    assert!(String::from_utf8_lossy(error.log()).contains("going to sleep"));
    // Behaviour, not speed: the run ended with the limit, not with the hour-long sleep.
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
}

/// The disk limit, on a thread and in a child process: what the writable mounts hold when
/// the run starts counts; a file unlinked while open counts as it grows, and the write that
/// would pass the limit ends the run as the disk limit; what is freed is given back.
#[test]
fn the_disk_limit_counts_every_write_on_a_thread_and_in_a_guest_process() {
    const MIB: u64 = 1 << 20;
    let limits = Limits {
        disk: 20 * MIB,
        ..Limits::default()
    };
    let is_disk_limit = |result: &Result<GuestExit, SandboxError>| {
        matches!(
            result,
            Err(SandboxError::Limit {
                hit: LimitHit::Disk,
                ..
            })
        )
    };
    for isolation in [Isolation::Thread, guest_processes()] {
        let sandbox = sandbox(isolation);
        let scratch = tempfile::tempdir().unwrap();
        let hidden = run_code(
            &sandbox,
            scratch.path(),
            r#"
import os
f = open("/tmp/hidden", "wb")
os.unlink("/tmp/hidden")
for i in range(100):
    f.write(b"x" * (1 << 20)); f.flush()
    print("wrote", i + 1, flush=True)
"#,
            limits.clone(),
        );
        assert!(is_disk_limit(&hidden), "{hidden:?}");
        let log = String::from_utf8_lossy(hidden.as_ref().unwrap_err().log()).into_owned();
        assert!(log.contains("wrote 19\n"), "{log}");
        assert!(!log.contains("wrote 20\n"), "{log}");

        let recycled = run_code(
            &sandbox,
            scratch.path(),
            r#"
import os
for i in range(10):
    with open("/tmp/t", "wb") as f: f.write(b"x" * (15 << 20))
    os.unlink("/tmp/t")
"#,
            limits.clone(),
        )
        .unwrap();
        assert_eq!(
            recycled.code,
            0,
            "{}",
            String::from_utf8_lossy(&recycled.log)
        );

        std::fs::write(scratch.path().join("there-before"), vec![0u8; 21 << 20]).unwrap();
        let full = run_code(&sandbox, scratch.path(), "pass", limits.clone());
        assert!(is_disk_limit(&full), "{full:?}");
    }
}

/// A run `prepare`d without finalizing leaves its interpreter to the runs started from its
/// memory image, and only to them: each sees what the prepared command did, with its own
/// arguments and environment, and nothing another run from the image did. On a thread and
/// in a child process (where the image is also written into an instance ahead of the job).
#[test]
fn runs_from_a_memory_image_start_where_the_prepared_command_ended() {
    for isolation in [Isolation::Thread, guest_processes()] {
        let sandbox = sandbox(isolation);
        let scratch = tempfile::tempdir().unwrap();
        let image_dir = tempfile::tempdir().unwrap();
        let image_path = image_dir.path().join("prepared.image");
        let run = |code: &str, env| code_run(scratch.path(), code, env);
        let prepare = run(
            "import builtins, json\nbuiltins.PREPARED = json.dumps({'ready': 1})\n",
            base_environment(),
        );
        assert!(sandbox.image_base(&prepare).is_some());
        let made = sandbox.prepare(&prepare, &image_path).unwrap();
        assert_eq!(made.code, 0, "{}", String::from_utf8_lossy(&made.log));
        let image = wasm_build::sandbox::MemoryImage::load(&image_path).unwrap();

        let mut env = base_environment();
        env.push(("WHO".into(), "second".into()));
        for round in 0..3 {
            let check = run(
                "import builtins, os, sys\n\
                 assert builtins.PREPARED == '{\"ready\": 1}', 'the prepared state is missing'\n\
                 assert not hasattr(builtins, 'LEFT_BEHIND'), 'a run from the image left state'\n\
                 assert os.environ.get('WHO') == 'second', os.environ\n\
                 assert sys.argv == ['-c'], sys.argv\n\
                 builtins.LEFT_BEHIND = 1\n",
                env.clone(),
            );
            let exit = sandbox.run_from(&check, &image).unwrap();
            assert_eq!(
                exit.code,
                0,
                "round {round}: {}",
                String::from_utf8_lossy(&exit.log)
            );
        }
    }
}

/// A child process writes into its instance only the image bytes the parent checked: an
/// image changed on disk after the parent read it is refused.
#[test]
fn a_guest_process_refuses_an_image_changed_after_the_parent_checked_it() {
    let sandbox = sandbox(guest_processes());
    let scratch = tempfile::tempdir().unwrap();
    let image_dir = tempfile::tempdir().unwrap();
    let image_path = image_dir.path().join("prepared.image");
    let run = |code: &str| code_run(scratch.path(), code, base_environment());
    let made = sandbox
        .prepare(
            &run("import builtins\nbuiltins.PREPARED = 1\n"),
            &image_path,
        )
        .unwrap();
    assert_eq!(made.code, 0);
    let image = wasm_build::sandbox::MemoryImage::load(&image_path).unwrap();
    let mut bytes = std::fs::read(&image_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&image_path, bytes).unwrap();
    match sandbox.run_from(
        &run("import builtins\nassert builtins.PREPARED == 1\n"),
        &image,
    ) {
        Err(SandboxError::Setup(error)) => assert!(
            format!("{error:#}").contains("changed after the host checked it"),
            "{error:#}"
        ),
        other => panic!("the changed image was used: {other:?}"),
    }
}

/// Directory listings (served from one listing per stream, see host/src/sandbox/listing.rs)
/// hold every entry once with the inode `stat` gives, follow changes made between streams,
/// let a loop that removes each entry it reads see every entry, and survive streams read
/// in turn on two directories. On a thread and in a child process.
#[test]
fn directory_listings_are_whole_and_follow_changes_between_streams() {
    let code = r#"
import json, os
big = "/tmp/big"
expected = sorted(json.load(open("/tmp/expected.json")))
problems = []
def check(what, found, wanted):
    if sorted(found) != sorted(wanted):
        problems.append("%s: %d names, %d wanted, first extra %r, first missing %r" % (
            what, len(found), len(wanted), sorted(set(found) - set(wanted))[:1],
            sorted(set(wanted) - set(found))[:1]))
check("listdir", os.listdir(big), expected)
with os.scandir(big) as entries:
    seen = list(entries)
check("scandir", [e.name for e in seen], expected)
for entry in seen[::97]:
    if entry.inode() != os.stat(entry.path, follow_symlinks=False).st_ino:
        problems.append("inode of " + entry.name)
    if entry.is_dir() != os.path.isdir(entry.path):
        problems.append("type of " + entry.name)
# Changes between streams are seen by the next.
open(os.path.join(big, "new-file"), "w").close()
os.unlink(os.path.join(big, expected[1]))
now = expected[:1] + expected[2:] + ["new-file"]
check("after a change", os.listdir(big), now)
# Two streams read in turn.
other = "/tmp/other"
os.mkdir(other)
for i in range(300):
    open(os.path.join(other, "o%03d" % i), "w").close()
first, second = [], []
with os.scandir(big) as a, os.scandir(other) as b:
    for entry in a:
        first.append(entry.name)
        if len(first) == 150:
            second = [e.name for e in b]
check("a stream read around another", first, now)
check("the other", second, ["o%03d" % i for i in range(300)])
# Each entry removed as soon as it is read.
removed = []
with os.scandir(big) as entries:
    for entry in entries:
        removed.append(entry.name)
        if entry.is_dir(follow_symlinks=False):
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)
check("removing while reading", removed, now)
check("left", os.listdir(big), [])
print(json.dumps(problems))
raise SystemExit(1 if problems else 0)
"#;
    for isolation in [Isolation::Thread, guest_processes()] {
        let sandbox = sandbox(isolation);
        let scratch = tempfile::tempdir().unwrap();
        let big = scratch.path().join("big");
        std::fs::create_dir(&big).unwrap();
        // Names of every length up to 200 bytes, so that chunks end anywhere in an entry.
        let mut names = Vec::new();
        for i in 0..2500 {
            let name = format!("{i:04}-{}", "n".repeat(i % 196));
            if i % 50 == 0 {
                std::fs::create_dir(big.join(&name)).unwrap();
            } else {
                std::fs::write(big.join(&name), b"").unwrap();
            }
            names.push(name);
        }
        std::fs::write(
            scratch.path().join("expected.json"),
            serde_json::to_string(&names).unwrap(),
        )
        .unwrap();
        let exit = run_code(&sandbox, scratch.path(), code, Limits::default()).unwrap();
        assert_eq!(exit.code, 0, "{}", String::from_utf8_lossy(&exit.log));
    }
}

/// The guest's deflate and SHA-256 run on the host (docs/runtime.md, "Native deflate and
/// SHA-256"): 300 deflate streams of random levels, window sizes, memory levels,
/// strategies, dictionaries, flushes, copies and cuttings give the same bytes on the host
/// as in the guest's own zlib (the script holds the host's 64 streams with idle compressors
/// for its second pass), the host did exactly the first pass's deflating, and hashlib's
/// SHA-256 and SHA-224 digests are what native CPython computes. On a thread and in a child
/// process (the counts cross the process boundary).
#[test]
fn native_deflate_and_sha256_give_the_guest_s_own_bytes() {
    let script = fixtures().join("native/deflate_and_sha256.py");
    let code = std::fs::read_to_string(&script).unwrap();
    let native = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .unwrap();
    assert!(native.status.success());
    let expected = String::from_utf8(native.stdout).unwrap();
    let handed: u64 = expected.lines().next().unwrap().parse().unwrap();
    for isolation in [Isolation::Thread, guest_processes()] {
        let sandbox = sandbox(isolation);
        let scratch = tempfile::tempdir().unwrap();
        let exit = run_code(&sandbox, scratch.path(), &code, Limits::default()).unwrap();
        let printed = String::from_utf8_lossy(&exit.log);
        assert_eq!(exit.code, 0, "{printed}");
        assert_eq!(printed, expected);
        assert_eq!(exit.stats.native_deflated, handed);
        // 40 inputs of up to 200,000 bytes, each hashed twice; not less than a block each.
        assert!(exit.stats.native_hashed > 40 * 64, "{:?}", exit.stats);
    }
}
