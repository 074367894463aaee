//! The pre-initialized interpreter (docs/runtime.md): every run starts from the snapshot
//! taken after CPython's start-up, yet sees only its own arguments, environment and mounts,
//! and nothing a previous run did.

mod common;

use common::*;
use std::process::Output;
use wasm_build::runtime::{self, RuntimeChoice};
use wasm_build::sandbox::{GuestRun, Limits, LogSink, Mount, Sandbox, base_environment};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::{IndexClient, IndexOptions};

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

/// Two runs of one sandbox: whatever the first does to the interpreter (module globals,
/// `sys.modules`, builtins, the environment, an open file) is gone for the second,
/// which starts from the snapshot again.
#[test]
fn a_run_cannot_leave_anything_for_the_next() {
    let cache = Cache::at(shared_cache()).unwrap();
    let index = IndexClient::new(IndexOptions::default(), &cache).unwrap();
    let runtime = runtime::provision(&RuntimeChoice::Default, &cache, &index).unwrap();
    let sandbox = Sandbox::new(&runtime, &cache).unwrap();
    assert!(
        sandbox.is_pre_initialized(),
        "the default runtime has the entry points"
    );
    let scratch = tempfile::tempdir().unwrap();
    let run = |code: &str| {
        sandbox
            .run(&GuestRun {
                args: vec!["-S".into(), "-c".into(), code.into()],
                env: base_environment(),
                mounts: vec![Mount::read_write(scratch.path(), "/tmp")],
                limits: Limits::default(),
                log: LogSink::Capture,
            })
            .unwrap()
    };
    let first = run("import builtins, os, sys\n\
         builtins.LEFT_BEHIND = 1\n\
         sys.modules['left_behind'] = sys\n\
         os.environ['LEFT_BEHIND'] = '1'\n\
         sys.path.insert(0, '/tmp/left-behind')\n\
         kept = open('/tmp/kept-open', 'w')\n\
         sys.setrecursionlimit(50)\n");
    assert_eq!(first.code, 0, "{}", String::from_utf8_lossy(&first.log));
    let second = run("import builtins, os, sys\n\
         left = [hasattr(builtins, 'LEFT_BEHIND'), 'left_behind' in sys.modules,\n\
                 'LEFT_BEHIND' in os.environ, '/tmp/left-behind' in sys.path,\n\
                 sys.getrecursionlimit() == 50]\n\
         print(left)\n\
         sys.exit(1 if any(left) else 0)\n");
    assert_eq!(
        second.code,
        0,
        "state survived between runs: {}",
        String::from_utf8_lossy(&second.log)
    );
}
