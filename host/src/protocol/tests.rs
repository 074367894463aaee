use super::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A source tree with an in-tree backend (`backend-path = ["_b"]`) whose hooks show every
/// outcome the runner reports.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("_b")).unwrap();
    std::fs::write(
        dir.path().join("_b/backend.py"),
        r#"
class UnsupportedOperation(Exception):
    pass

def get_requires_for_build_wheel(config_settings=None):
    return ["extra>=1"] if config_settings.get("more") else []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    open(wheel_directory + "/x-1.0-py3-none-any.whl", "wb").close()
    return "x-1.0-py3-none-any.whl"

def build_sdist(sdist_directory, config_settings=None):
    raise ValueError("no sdist today")

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    raise UnsupportedOperation
"#,
    )
    .unwrap();
    dir
}

/// Runs the real runner under the host's `python3` (it is stdlib only) with its io folder
/// moved into `run`, and returns what it wrote.
fn run_runner(run: &RunDirs, request: &Request<'_>) -> Option<Value> {
    run.write_request(request).unwrap();
    let script = format!(
        "import sys, types\nsys.path[:] = [p for p in sys.path if p]\nm = types.ModuleType('hook_runner')\nm.__file__ = {runner:?}\n\
         exec(compile(open({runner:?}).read(), 'hook_runner.py', 'exec'), m.__dict__)\n\
         m.IO_DIR = {io:?}\nm.main()\n",
        runner = run.path().join("runner/hook_runner.py"),
        io = run.path().join("io"),
    );
    let status = Command::new("python3")
        .args(["-S", "-c", &script])
        .status()
        .expect("python3 runs");
    assert!(status.success());
    run.read_response().unwrap()
}

fn request<'a>(source: &'a str, executables: &'a [String], action: Action<'a>) -> Request<'a> {
    Request {
        backend: "backend",
        backend_path: vec![guest_join(source, "_b")],
        source_dir: source,
        env_dir: "/nonexistent-env",
        executables,
        seed: None,
        git: None,
        bytecode: None,
        action,
    }
}

/// A CPython 3.13 guest's marker environment.
fn markers() -> GuestMarkers {
    GuestMarkers {
        implementation_name: "cpython".into(),
        implementation_version: "3.13.5".into(),
        os_name: "posix".into(),
        platform_machine: "wasm32".into(),
        platform_python_implementation: "CPython".into(),
        platform_release: "0.0.0".into(),
        platform_system: "wasi".into(),
        platform_version: "0.0.0".into(),
        python_full_version: "3.13.5".into(),
        python_version: "3.13".into(),
        sys_platform: "wasi".into(),
    }
}

#[test]
fn requests_have_the_runners_shape() {
    let markers = markers();
    let calls = HookCall::build_step(Hook::GetRequiresForBuildWheel, Hook::BuildWheel, &[]);
    let value = serde_json::to_value(request(
        "/src",
        &[],
        Action::calls(&calls, &json!({"k": "v"}), &markers),
    ))
    .unwrap();
    assert_eq!(
        value,
        json!({
            "backend": "backend", "backend_path": ["/src/_b"], "source_dir": "/src",
            "env_dir": "/nonexistent-env", "executables": [], "seed": null,
            "markers": serde_json::to_value(&markers).unwrap(),
            "calls": [
                {"hook": "get_requires_for_build_wheel", "kwargs": {"config_settings": {"k": "v"}},
                 "stop_unless_within": []},
                {"hook": "build_wheel", "kwargs": {"wheel_directory": "/out",
                 "metadata_directory": null, "config_settings": {"k": "v"}},
                 "stop_unless_within": null},
            ],
        })
    );
    let value = serde_json::to_value(request("/src", &[], Action::prepare(9))).unwrap();
    assert_eq!(value["prepare"], json!(true));
    assert_eq!(value["open_fds"], json!(9));
    assert!(value.get("calls").is_none());
}

#[test]
fn the_real_runner_answers_in_these_types() {
    let scratch = tempfile::tempdir().unwrap();
    let project = project();
    let source = project.path().to_str().unwrap();
    let markers = markers();
    let run_hooks = |calls: &[HookCall], settings: Value| {
        let run = RunDirs::new(scratch.path(), "hook-").unwrap();
        // The runner writes into `/out`; on the host that is the run's own `out`.
        let mut action = Action::calls(calls, &settings, &markers);
        let Action::Calls { calls, .. } = &mut action else {
            unreachable!()
        };
        for call in calls.iter_mut() {
            for key in ["wheel_directory", "sdist_directory"] {
                if call.kwargs.get(key).is_some() {
                    call.kwargs[key] = json!(run.out());
                }
            }
        }
        let value = run_runner(&run, &request(source, &[], action)).expect("output.json");
        serde_json::from_value::<CallsResponse>(value).unwrap()
    };

    let step = HookCall::build_step(Hook::GetRequiresForBuildWheel, Hook::BuildWheel, &[]);
    let built = run_hooks(&step, json!({}));
    assert!(!built.stopped_for_requirements);
    assert_eq!(built.results.len(), 2);
    assert!(matches!(&built.results[1].outcome,
        CallOutcome::Ok { return_value } if return_value == "x-1.0-py3-none-any.whl"));

    let stopped = run_hooks(&step, json!({"more": "1"}));
    assert!(stopped.stopped_for_requirements);
    assert!(matches!(&stopped.results[0].outcome,
        CallOutcome::Ok { return_value } if *return_value == json!(["extra>=1"])));

    let raised = run_hooks(&[HookCall::run(Hook::BuildSdist)], json!({}));
    assert!(matches!(&raised.results[0].outcome,
        CallOutcome::Exception { message, traceback: Some(_) } if message.contains("no sdist today")));

    let unsupported = run_hooks(
        &[HookCall::run(Hook::PrepareMetadataForBuildWheel)],
        json!({}),
    );
    assert!(matches!(
        unsupported.results[0].outcome,
        CallOutcome::Unsupported { .. }
    ));

    let missing = run_hooks(&[HookCall::run(Hook::BuildEditable)], json!({}));
    assert_eq!(missing.results[0].hook, "build_editable");
    assert!(matches!(
        missing.results[0].outcome,
        CallOutcome::HookMissing
    ));
}

#[test]
fn a_prepare_run_and_an_unimportable_backend_answer_in_these_types() {
    let scratch = tempfile::tempdir().unwrap();
    // As in real prepare runs: the backend comes from the environment, the source folder
    // is empty.
    let project = project();
    let env = project.path().join("_b");
    let empty = tempfile::tempdir().unwrap();
    let prepare = |backend: &str| {
        let run = RunDirs::new(scratch.path(), "prepare-").unwrap();
        let request = Request {
            backend,
            backend_path: Vec::new(),
            source_dir: empty.path().to_str().unwrap(),
            env_dir: "/nonexistent-env",
            executables: &[],
            seed: None,
            git: None,
            bytecode: None,
            action: Action::prepare(1024),
        };
        let mut value = serde_json::to_value(&request).unwrap();
        value["env_dir"] = json!(env);
        std::fs::write(run.path().join("io/input.json"), value.to_string()).unwrap();
        let script = format!(
            "import sys, types\nsys.path[:] = [p for p in sys.path if p]\nm = types.ModuleType('hook_runner')\nm.__file__ = {runner:?}\n\
             exec(compile(open({runner:?}).read(), 'hook_runner.py', 'exec'), m.__dict__)\n\
             m.IO_DIR = {io:?}\nm.main()\n",
            runner = run.path().join("runner/hook_runner.py"),
            io = run.path().join("io"),
        );
        let status = Command::new("python3")
            .args(["-S", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        run.read_response::<PrepareResponse>().unwrap().unwrap()
    };
    let prepared = prepare("backend");
    assert!(prepared.prepared, "{prepared:?}");
    let refused = prepare("no_such_backend_module");
    assert!(!refused.prepared);
    assert!(
        refused.refusal().contains("no_such_backend_module"),
        "{}",
        refused.refusal()
    );
}

/// The runner imports an in-tree module from the bytecode folder only under the key of the
/// bytes it is about to import (`sha256(path + NUL + bytes)`), and names what it compiled
/// from source. Here the bytecode says something its source does not, so the answer shows
/// which one was imported (the host's `python3` makes its own bytecode format).
#[test]
fn the_runner_takes_in_tree_bytecode_only_for_the_bytes_it_imports() {
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let source = project.path().to_str().unwrap();
    std::fs::create_dir(project.path().join("_b")).unwrap();
    std::fs::write(
        project.path().join("_b/backend.py"),
        "import helper\n\ndef get_requires_for_build_wheel(config_settings=None):\n    return [helper.VALUE]\n",
    )
    .unwrap();
    let helper = project.path().join("_b/helper.py");
    let helper_path = helper.to_str().unwrap();
    std::fs::write(&helper, "VALUE = 'from-source'\n").unwrap();
    let bytecode = tempfile::tempdir().unwrap();
    // `compile()` of other bytes, filed under the key of `bytes_for_key`.
    let file_bytecode = |bytes_for_key: &[u8], payload_of: Option<&str>| {
        let key =
            wasm_build_packaging::backend_sources::source_key(helper_path, bytes_for_key).unwrap();
        let script = match payload_of {
            Some(code) => format!(
                "import importlib.util, marshal\n\
                 code = compile({code:?}, {helper_path:?}, 'exec', dont_inherit=True)\n\
                 open({out:?}, 'wb').write(importlib.util.MAGIC_NUMBER + marshal.dumps(code))\n",
                out = bytecode.path().join(&key),
            ),
            None => format!(
                "open({:?}, 'wb').write(b'not bytecode')\n",
                bytecode.path().join(&key)
            ),
        };
        python3(&script);
        key
    };
    let answer = || requires_with_bytecode(scratch.path(), source, bytecode.path());

    let key = file_bytecode(b"VALUE = 'from-source'\n", Some("VALUE = 'from-bytecode'"));
    let (value, report) = answer();
    assert_eq!(value, json!(["from-bytecode"]));
    assert_eq!(report.used, 1);
    assert_eq!(report.compiled, [format!("{source}/_b/backend.py")]);

    // The helper changed since: its bytes have another key, and it is compiled from source.
    std::fs::write(&helper, "VALUE = 'changed-source'\n").unwrap();
    let (value, report) = answer();
    assert_eq!(value, json!(["changed-source"]));
    assert_eq!(report.used, 0);
    assert_eq!(report.compiled.len(), 2);

    // A `.pyc` the import system would take (here shipped beside the source, unchecked)
    // is its to judge: the runner neither takes the bytecode offered nor names the file.
    let shipped = format!(
        "import importlib.util, py_compile, tempfile\n\
         with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:\n    \
             f.write(\"VALUE = 'from-shipped-pyc'\\n\")\n\
         py_compile.compile(f.name, cfile=importlib.util.cache_from_source({helper_path:?}), \
             dfile={helper_path:?}, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
    );
    python3(&shipped);
    file_bytecode(
        b"VALUE = 'changed-source'\n",
        Some("VALUE = 'from-bytecode'"),
    );
    let (value, report) = answer();
    assert_eq!(value, json!(["from-shipped-pyc"]));
    assert_eq!(report.used, 0);
    assert_eq!(report.compiled, [format!("{source}/_b/backend.py")]);
    std::fs::remove_dir_all(project.path().join("_b/__pycache__")).unwrap();

    // Under the right key, something that is not bytecode is not imported either.
    std::fs::remove_file(bytecode.path().join(key)).unwrap();
    file_bytecode(b"VALUE = 'changed-source'\n", None);
    assert_eq!(answer().0, json!(["changed-source"]));
}

/// With bytecode offered, the runner's finder takes only folders below backend-path: a zip
/// file there on `sys.path` is still zipimport's, as without bytecode.
#[test]
fn a_zip_below_backend_path_is_imported_as_without_bytecode() {
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let source = project.path().to_str().unwrap();
    let backend = project.path().join("_b");
    std::fs::create_dir(&backend).unwrap();
    let zip = backend.join("vendor.zip");
    let script = format!(
        "import zipfile\nwith zipfile.ZipFile({zip:?}, 'w') as z:\n    z.writestr('vend.py', 'VALUE = \"zipped\"')\n"
    );
    python3(&script);
    std::fs::write(
        backend.join("backend.py"),
        format!(
            "import sys\nsys.path.insert(0, {zip:?})\nimport vend\n\n\
             def get_requires_for_build_wheel(config_settings=None):\n    return [vend.VALUE]\n"
        ),
    )
    .unwrap();
    let bytecode = tempfile::tempdir().unwrap();
    let (value, _) = requires_with_bytecode(scratch.path(), source, bytecode.path());
    assert_eq!(value, json!(["zipped"]));
}

/// Runs `script` with the host's `python3`, which must succeed.
fn python3(script: &str) {
    let status = Command::new("python3").args(["-c", script]).status();
    assert!(status.unwrap().success(), "{script}");
}

/// What `get_requires_for_build_wheel` of the in-tree backend `_b` of the project at
/// `source` answers, run by the real runner with `bytecode` offered, and the runner's
/// account of the bytecode.
fn requires_with_bytecode(
    scratch: &Path,
    source: &str,
    bytecode: &Path,
) -> (Value, BytecodeReport) {
    let markers = markers();
    let run = RunDirs::new(scratch, "hook-").unwrap();
    let action = Action::calls(
        &[HookCall::run(Hook::GetRequiresForBuildWheel)],
        &json!({}),
        &markers,
    );
    let request = Request {
        bytecode: Some(bytecode.to_str().unwrap()),
        ..request(source, &[], action)
    };
    let value = run_runner(&run, &request).expect("output.json");
    let response: CallsResponse = serde_json::from_value(value).unwrap();
    let CallOutcome::Ok { return_value } = &response.results[0].outcome else {
        panic!("the hook failed: {:?}", response.results[0]);
    };
    (return_value.clone(), response.bytecode)
}

#[test]
fn an_unknown_status_is_not_a_result() {
    let output = json!({"results": [{"hook": "build_wheel", "status": "okay"}],
                        "stopped_for_requirements": false});
    assert!(serde_json::from_value::<CallsResponse>(output).is_err());
}

#[test]
fn guest_files_are_read_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.json"), "{}").unwrap();
    std::os::unix::fs::symlink(dir.path().join("real.json"), dir.path().join("output.json"))
        .unwrap();
    let error = read_json::<Value>(dir.path(), "output.json").unwrap_err();
    assert!(format!("{error:#}").contains("output.json"), "{error:#}");
    assert!(
        read_json::<Value>(dir.path(), "missing.json")
            .unwrap()
            .is_none()
    );

    // A FIFO does not block the host.
    let fifo = dir.path().join("fifo.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let error = read_json::<Value>(dir.path(), "fifo.json").unwrap_err();
    assert!(
        format!("{error:#}").contains("not a regular file"),
        "{error:#}"
    );

    // Errors name the file that was read.
    std::fs::write(
        dir.path().join("big.json"),
        vec![b' '; (MAX_IO_FILE + 1) as usize],
    )
    .unwrap();
    let error = read_json::<Value>(dir.path(), "big.json").unwrap_err();
    assert!(
        format!("{error:#}").contains("big.json is larger"),
        "{error:#}"
    );
}

#[test]
fn the_running_hook_is_one_that_was_called() {
    let scratch = tempfile::tempdir().unwrap();
    let run = RunDirs::new(scratch.path(), "hook-").unwrap();
    let calls = HookCall::build_step(Hook::GetRequiresForBuildWheel, Hook::BuildWheel, &[]);
    assert_eq!(run.running_hook(&calls), None);
    std::fs::write(run.path().join("io/running"), "build_wheel").unwrap();
    assert_eq!(run.running_hook(&calls), Some(Hook::BuildWheel));
    std::fs::write(run.path().join("io/running"), "build_sdist").unwrap();
    assert_eq!(run.running_hook(&calls), None);
}

#[test]
fn process_attempts_are_typed_and_compilers_recognized() {
    let output = json!({"results": [], "stopped_for_requirements": false, "processes": [
        {"hook": "build_wheel", "how": "subprocess", "argv": ["x86_64-linux-gnu-gcc-12", "-c"]},
        {"hook": "build_wheel", "how": "posix_spawn", "argv": ["/usr/bin/cc"]},
        {"hook": "import", "how": "thread", "argv": []},
        {"hook": "build_wheel", "how": "system", "argv": ["/bin/sh", "-c", "git describe"]},
    ]});
    let response: CallsResponse = serde_json::from_value(output).unwrap();
    let compilers: Vec<bool> = response
        .processes
        .iter()
        .map(ProcessAttempt::is_compiler)
        .collect();
    assert_eq!(compilers, [true, true, false, false]);
    assert_eq!(response.processes[2].describe(), "a thread");
    assert_eq!(
        response.processes[3].describe(),
        "`/bin/sh -c git describe`"
    );
    let unknown = json!({"results": [], "stopped_for_requirements": false,
        "processes": [{"hook": "x", "how": "teleport", "argv": []}]});
    assert!(serde_json::from_value::<CallsResponse>(unknown).is_err());
}

#[test]
fn the_runner_records_each_warning_once() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("_b")).unwrap();
    std::fs::write(
        project.path().join("_b/backend.py"),
        r#"
import warnings

class OldStyle(UserWarning):
    pass

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for _ in range(3):
        warnings.warn("`license` as a table is deprecated", OldStyle, stacklevel=1)
    warnings.warn("x" * 5000)
    warnings.warn("ignored by the default filters", DeprecationWarning)
    for i in range(50):
        warnings.warn("number %d" % i, UserWarning)
    with warnings.catch_warnings(record=True):
        warnings.warn("handled by the backend itself")
    return "x-1.0-py3-none-any.whl"
"#,
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = RunDirs::new(scratch.path(), "hook-").unwrap();
    let source = project.path().to_str().unwrap();
    let calls = [HookCall::run(Hook::BuildWheel)];
    let output = run_runner(
        &run,
        &request(source, &[], Action::calls(&calls, &json!({}), &markers())),
    );
    let response: CallsResponse = serde_json::from_value(output.unwrap()).unwrap();
    let warnings = &response.warnings;
    assert_eq!(warnings.len(), BackendWarning::MAX, "{warnings:#?}");
    assert_eq!(warnings[0].category, "OldStyle");
    assert_eq!(warnings[0].hook, "build_wheel");
    assert!(
        warnings[0].location.ends_with("backend.py:9"),
        "{warnings:#?}"
    );
    assert_eq!(warnings[1].message.chars().count(), 2000);
    assert_eq!(warnings[2].message, "number 0");
    assert!(
        warnings
            .iter()
            .all(|w| !w.message.contains("handled") && !w.message.contains("ignored"))
    );
    let long = BackendWarning {
        message: "y".repeat(9000),
        ..warnings[0].clone()
    };
    assert_eq!(long.bounded().message.len(), 2000);
}
