//! End-to-end tests of the hook runner (`guest/hook_runner.py`): how it calls hooks, what a
//! backend sees when it starts a program or imports a module WASI's CPython lacks, what a
//! prepare run refuses or assumes, and the fresh random state of every run.
//!
//! Builds go through the real `wasm-build` binary. Where the host does not read or send a
//! field of the protocol yet (`processes`, `seed`, `assumed_absent`, `prepared_mismatch`),
//! the real runner is run in the real interpreter through the library's sandbox, with an
//! `input.json` of the test's making and the mount table the host gives hook runs.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use std::str::FromStr;
use wasm_build::runtime::{self, RuntimeChoice};
use wasm_build::sandbox::{
    GuestRun, Isolation, Limits, LogSink, MemoryImage, Mount, Sandbox, base_environment,
};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::target::GuestTarget;

/// A fixture of `tests/fixtures/runner/`; `processes` and `extra-requires` get the in-tree
/// fixture's backend beside their own.
fn runner_fixture(name: &str) -> tempfile::TempDir {
    let project = fixture(&format!("runner/{name}"));
    if name == "processes" || name == "extra-requires" {
        fs::copy(
            fixtures().join("intree/_build/backend.py"),
            project.path().join("_build/backend.py"),
        )
        .unwrap();
    }
    project
}

fn metadata_field(metadata: &str, key: &str) -> String {
    metadata
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{metadata}"))
        .to_string()
}

#[test]
fn hooks_are_called_positionally() {
    // Every hook of this backend takes its arguments by position only.
    let project = runner_fixture("positional");
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args(["-C", "summary=in its place", "-o"])
            .arg(out.path()),
    );
    assert_eq!(built.len(), 2, "an sdist and a wheel: {built:?}");
    let metadata = zip_member(&built[1], "positional_demo-1.0.0.dist-info/METADATA");
    let metadata = String::from_utf8(metadata).unwrap();
    assert_eq!(metadata_field(&metadata, "Summary"), "in its place");

    // prepare_metadata_for_build_wheel(metadata_directory, config_settings), and without
    // it the fallback's build_wheel(wheel_directory, config_settings).
    for backend in ["positional", "positional:fallback"] {
        let toml = project.path().join("pyproject.toml");
        let text = fs::read_to_string(&toml).unwrap();
        let text = text.replace(
            "build-backend = \"positional\"",
            &format!("build-backend = \"{backend}\""),
        );
        fs::write(&toml, text).unwrap();
        let out = tempfile::tempdir().unwrap();
        let built = build_ok(
            wasm_build()
                .arg(project.path())
                .args(["--metadata-dir", "-C", "summary=metadata", "-o"])
                .arg(out.path()),
        );
        let metadata = fs::read_to_string(built[0].join("METADATA")).unwrap();
        assert_eq!(
            metadata_field(&metadata, "Summary"),
            "metadata",
            "{backend}"
        );
        assert_eq!(
            built[0].join("RECORD").is_file(),
            backend.ends_with("fallback"),
            "{backend}: the fallback takes the .dist-info of a built wheel"
        );
    }
}

/// What the probes of `tests/fixtures/runner/processes` see, as on a host without git or hg
/// (and with the usual umask).
fn expected_probes() -> Value {
    json!({
        "setuptools_scm": ["missing", true, "git"],
        "pbr": "",
        "versioneer": null,
        "shell": [127, "", "/bin/sh: 1: hg: not found\n"],
        "system": [32512, 127],
        "popen": ["", 32512],
        "thread": "can't start new thread",
        "umask": 0o022,
    })
}

#[test]
fn programs_look_missing_to_the_backend() {
    let project = runner_fixture("processes");
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(wasm_build().arg(project.path()).arg("-o").arg(out.path()));
    let report: Value =
        serde_json::from_slice(&zip_member(&built[1], "processes_demo/probes.json")).unwrap();
    assert_eq!(report, expected_probes());
}

/// A `get_requires_*` answer stops the run, for the host to install more and start again,
/// only for what a build would install: requirements whose marker is false in the guest's
/// environment with no extra (flit_core's answer of the project's `Requires-Dist`,
/// pdm-backend's `importlib-metadata; python_version < "3.10"`) do not, as pypa/build and
/// uv install nothing for them. Whatever the runner lets pass, the host's own marker
/// evaluation (pep508_rs, which resolves the environment) must find false too.
#[test]
fn only_what_a_build_installs_stops_the_run() {
    let project = runner_fixture("extra-requires");
    let sandbox = sandbox();
    let catalog = runtime::Catalog::builtin().unwrap();
    let markers = catalog
        .get(&catalog.default)
        .unwrap()
        .markers
        .clone()
        .unwrap();
    let target = GuestTarget::new(markers.clone()).unwrap();
    let stops = |requires: &str| -> bool {
        let env = tempfile::tempdir().unwrap();
        let mut get_requires = call("get_requires_for_build_wheel");
        get_requires["kwargs"]["config_settings"] = json!({"requires": requires});
        get_requires["stop_unless_within"] = json!(["installed>=1"]);
        let mut input = hook_input("extra_requires", &["/src/_build"], "build_wheel");
        input["markers"] = json!(markers);
        input["calls"]
            .as_array_mut()
            .unwrap()
            .insert(0, get_requires);
        let output = run_runner(&sandbox, project.path(), env.path(), &input, None);
        let statuses: Vec<&Value> = output["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| &result["status"])
            .collect();
        let stopped = output["stopped_for_requirements"].as_bool().unwrap();
        let expected = if stopped {
            vec!["ok"]
        } else {
            vec!["ok", "ok"]
        };
        assert_eq!(statuses, expected, "{requires}: {output:#}");
        stopped
    };
    let host_installs = |requirement: &str| {
        requirement != "installed>=1"
            && pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement)
                .map_or(true, |parsed| {
                    parsed.evaluate_markers(target.marker_environment(), &[])
                })
    };
    for needs_nothing_more in [
        "",
        "installed>=1",
        "pytest ; extra == 'test'|installed>=1",
        "ruff>=0.6; python_version >= \"3.8\" and extra == \"all\"",
        "mypy ; extra == 'a' or 'b' == extra",
        "pytest ; (extra == 'test')",
        "importlib-metadata>=3.6; python_version < \"3.10\"",
        "tomli>=1.1.0 ; python_full_version < '3.11.0a7'|installed>=1",
        "colorama ; sys_platform == 'win32' or platform_system == 'Windows'",
        "pywin32 (>=300) ; os_name == 'nt' and python_version >= '3.8'",
        "exceptiongroup[test] ; '3.11' > python_version",
        "uvloop ; 'linux' in sys_platform and implementation_name != 'cpython'",
        "x ; (python_version < '3.9' or platform_machine == 'x86_64') and extra != 'docs'",
    ] {
        assert!(!stops(needs_nothing_more), "{needs_nothing_more}");
        for requirement in needs_nothing_more.split('|').filter(|r| !r.is_empty()) {
            assert!(!host_installs(requirement), "{requirement}");
        }
    }
    // Markers of every shape a generator could make, all false here: one answer of them
    // all goes through, and the host agrees on each.
    let generated = fs::read_to_string(project.path().join("not-needed.txt")).unwrap();
    let generated: Vec<&str> = generated
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    assert!(!stops(&generated.join("|")));
    for requirement in generated {
        assert!(!host_installs(requirement), "{requirement}");
    }
    for needs_more in [
        "pytest",
        "installed>=1|pytest",
        "pytest ; extra == 'test' or python_version >= '3'",
        "pytest ; extra == ''",
        "pytest ; extra != 'test'",
        "typing-extensions ; python_version < '3.14'",
        "a ; sys_platform == 'wasi'",
        "a ; sys_platform != 'win32'",
        "a ; python_version ~= '3.0'",
        "a ; python_version == '3.*'",
        "a ; platform_release == '1'",
        "a ; os.name == 'nt'",
        "a ; python_version < '3.10' and",
        "a @ https://example.org/a.whl ; python_version < '3.10'",
        "a >= nonsense ; python_version < '3.10'",
        // False by its other half, but a tool may reject the whole marker for this one.
        "a ; foo == 'x' and python_version < '3.10'",
        "a ; sys_platform >= 'linux' and python_version < '3.10'",
        // What one of the tools reads otherwise, or refuses (an adversarial review's finds):
        // escapes, which packaging decodes and pep508_rs does not;
        "a ; os_name == \"posi\\x78\"",
        // whitespace other than spaces and tabs, a keyword run into what follows;
        "a ;\npython_version < '3'",
        "a ; python_version < '3' and(os_name == 'posix')",
        // non-ASCII letters and digits a case-blind or Unicode pattern would take;
        "\u{212a}a ; python_version < '3'",
        "a ; python_version < '\u{663}'",
        // versions PEP 440 does not allow with that operator, and `===`.
        "a >= 1.* ; python_version < '3'",
        "a ~= 1 ; python_version < '3'",
        "a < 1+local ; python_version < '3'",
        "a === 1.* ; python_version < '3'",
    ] {
        assert!(stops(needs_more), "{needs_more}");
    }
}

#[test]
fn the_runner_records_each_attempt_to_start_a_program() {
    let project = runner_fixture("processes");
    let env = tempfile::tempdir().unwrap();
    let sandbox = sandbox();
    let mut input = hook_input("probes", &["/src/_build"], "build_wheel");
    input["calls"]
        .as_array_mut()
        .unwrap()
        .insert(0, call("get_requires_for_build_wheel"));
    let output = run_runner(&sandbox, project.path(), env.path(), &input, None);
    assert_eq!(output["results"][1]["status"], "ok", "{output:#}");
    let git = |how: &str, argv: &[&str]| json!({"hook": "build_wheel", "how": how, "argv": argv});
    assert_eq!(
        output["processes"],
        json!([
            git(
                "subprocess",
                &["git", "describe", "--dirty", "--tags", "--long"]
            ),
            git("subprocess", &["git", "rev-parse", "--git-dir"]),
            git("subprocess", &["git", "rev-parse", "--git-dir"]),
            git("subprocess", &["git.cmd", "rev-parse", "--git-dir"]),
            git("subprocess", &["/bin/sh", "-c", "hg id -i"]),
            git("system", &["/bin/sh", "-c", "git rev-parse HEAD"]),
            git("popen", &["/bin/sh", "-c", "git describe"]),
            git("thread", &[]),
        ])
    );
}

#[test]
fn setup_py_importing_mmap_builds() {
    let project = runner_fixture("setup-imports-mmap");
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(wasm_build().arg(project.path()).arg("-o").arg(out.path()));
    assert_eq!(
        built[1].file_name().unwrap(),
        "mmap_demo-3.0.1-py3-none-any.whl"
    );
    assert!(zip_names(&built[1]).contains(&"mmap_demo/__init__.py".to_string()));
}

#[test]
fn setup_py_importing_ssl_builds() {
    let project = runner_fixture("setup-imports-ssl");
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(wasm_build().arg(project.path()).arg("-o").arg(out.path()));
    assert_eq!(
        built[1].file_name().unwrap(),
        "ssl_demo-1.9.1-py3-none-any.whl"
    );
}

#[test]
fn a_backend_importing_ctypes_builds() {
    let project = runner_fixture("pdm-pep517");
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(wasm_build().arg(project.path()).arg("-o").arg(out.path()));
    assert_eq!(
        built[1].file_name().unwrap(),
        "pdm_pep517_demo-0.2.0-py3-none-any.whl"
    );
}

#[test]
fn stand_ins_import_and_refuse_to_work() {
    // The stand-ins are what a module-level import needs; using them raises OSError.
    let code = r#"
import mmap, ssl, ctypes, ctypes.util, socket, multiprocessing, os
class Header(ctypes.BigEndianStructure):
    _fields_ = [("magic", ctypes.c_uint32), ("name", ctypes.c_char * 16)]
failures = []
for use in (lambda: mmap.mmap(-1, 4096), ssl.create_default_context, lambda: ctypes.CDLL(None),
            lambda: ctypes.sizeof(Header), Header, socket.gethostname,
            lambda: multiprocessing.Process(target=print).start(), multiprocessing.Pool):
    try:
        use()
    except OSError as e:
        failures.append(e.strerror)
print(failures)
print(ctypes.util.find_library("c"), issubclass(ssl.SSLError, OSError), mmap.ACCESS_READ)
"#;
    // The code runs as the import of an in-tree backend, after the runner's set-up.
    let src = tempfile::tempdir().unwrap();
    fs::write(
        src.path().join("check_backend.py"),
        format!("{code}\ndef build_wheel(*args):\n    return 'x'\n"),
    )
    .unwrap();
    let input = hook_input("check_backend", &["/src"], "build_wheel");
    let env = tempfile::tempdir().unwrap();
    let (output, log) = run_runner_with_log(&sandbox(), src.path(), env.path(), &input, None);
    assert_eq!(output["results"][0]["status"], "ok", "{output:#}");
    let unavailable = |name: &str| format!("{name} is not available in the wasm-build sandbox");
    let printed: Vec<String> = [
        "mmap.mmap",
        "ssl.create_default_context",
        "ctypes.CDLL",
        "ctypes.sizeof",
        "ctypes.BigEndianStructure",
        "socket.gethostname",
        "multiprocessing.Process.start",
        "multiprocessing.Pool",
    ]
    .iter()
    .map(|name| unavailable(name))
    .collect();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            format!("{printed:?}").replace('"', "'"),
            "None True 1".into()
        ]
    );
}

/// Two runs from one prepared interpreter get fresh random state: from os.urandom, or from
/// the host's seed, which gives the same state with or without the prepared image.
#[test]
fn each_run_reseeds_random_and_temporary_names() {
    let sandbox = sandbox();
    let env = tempfile::tempdir().unwrap();
    fs::write(
        env.path().join("seed_probe.py"),
        "import json, random, tempfile\n\
         def build_wheel(wd, cs=None, md=None):\n    \
             return json.dumps([random.random(), next(tempfile._get_candidate_names())])\n",
    )
    .unwrap();
    let src = tempfile::tempdir().unwrap();
    let (image, prepared) = prepare_runner(&sandbox, env.path(), "seed_probe");
    assert_eq!(prepared, json!({"prepared": true, "assumed_absent": []}));
    let drawn = |seed: Option<&str>, image: Option<&MemoryImage>| {
        let mut input = hook_input("seed_probe", &[], "build_wheel");
        input["seed"] = json!(seed);
        let output = run_runner(&sandbox, src.path(), env.path(), &input, image);
        assert_eq!(output["results"][0]["status"], "ok", "{output:#}");
        output["results"][0]["return_value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (first, second) = (drawn(None, Some(&image)), drawn(None, Some(&image)));
    assert_ne!(first, second, "two runs from one image drew the same");
    let seeded = drawn(Some("5eed"), Some(&image));
    assert_eq!(seeded, drawn(Some("5eed"), Some(&image)));
    assert_eq!(seeded, drawn(Some("5eed"), None), "a fresh import differs");
    assert_ne!(seeded, drawn(Some("5eed01"), Some(&image)));
}

/// A hook run ends without finalizing the interpreter (no module teardown, no collection of
/// the heap: the object below is never deleted), yet what a backend sees of the end stays:
/// its exit handlers run and what it left in the standard streams' buffers is written. The
/// same, from a prepared image and from a fresh import.
#[test]
fn a_hook_run_ends_without_finalizing_yet_runs_exit_handlers_and_flushes() {
    let sandbox = sandbox();
    let env = tempfile::tempdir().unwrap();
    fs::write(
        env.path().join("exit_probe.py"),
        "import atexit, sys\n\
         class Kept:\n    \
             def __del__(self):\n        \
                 sys.stderr.write('finalized\\n')\n\
         kept = Kept()\n\
         def build_wheel(wd, cs=None, md=None):\n    \
             atexit.register(lambda: print('exit handler ran'))\n    \
             sys.stdout.write('left in the buffer')\n    \
             return 'x.whl'\n",
    )
    .unwrap();
    let src = tempfile::tempdir().unwrap();
    let (image, prepared) = prepare_runner(&sandbox, env.path(), "exit_probe");
    assert_eq!(prepared, json!({"prepared": true, "assumed_absent": []}));
    for image in [Some(&image), None] {
        let input = hook_input("exit_probe", &[], "build_wheel");
        let (output, log) = run_runner_with_log(&sandbox, src.path(), env.path(), &input, image);
        assert_eq!(output["results"][0]["status"], "ok", "{output:#}");
        assert!(log.contains("left in the buffer"), "{log}");
        assert!(log.contains("exit handler ran"), "{log}");
        assert!(
            !log.contains("finalized"),
            "the interpreter was finalized: {log}"
        );
    }
}

#[test]
fn builds_sharing_a_prepared_backend_draw_different_random_numbers() {
    let base = fs::read_to_string(fixtures().join("intree/_build/backend.py")).unwrap();
    let module = format!(
        "{base}\nimport random\n_base_build_wheel = build_wheel\n\n\
         def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    \
             _, package, _ = _project()\n    \
             with open(os.path.join(package, 'drawn.txt'), 'w') as f:\n        \
                 f.write(repr(random.random()))\n    \
             return _base_build_wheel(wheel_directory, config_settings, metadata_directory)\n"
    );
    let wheels = wheel_dir(
        "random-probe",
        "1.0",
        &[("random_probe.py", module.as_bytes())],
    );
    let project = tempfile::tempdir().unwrap();
    fs::write(
        project.path().join("pyproject.toml"),
        "[build-system]\nrequires = [\"random-probe==1.0\"]\nbuild-backend = \"random_probe\"\n\n\
         [project]\nname = \"random-demo\"\nversion = \"1.0\"\n",
    )
    .unwrap();
    fs::create_dir(project.path().join("random_demo")).unwrap();
    fs::write(project.path().join("random_demo/__init__.py"), "").unwrap();
    let drawn: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let out = tempfile::tempdir().unwrap();
            let built = build_ok(
                wasm_build()
                    .arg(project.path())
                    .args(["--wheel", "--find-links"])
                    .arg(wheels.path())
                    .arg("-o")
                    .arg(out.path()),
            );
            zip_member(&built[0], "random_demo/drawn.txt")
        })
        .collect();
    assert_ne!(drawn[0], drawn[1]);
}

/// What a prepare run says about imports that look at the project, start programs or fail;
/// an import that only looked for a file the project lacks is prepared, and a run on a
/// project that has the file calls no hook but says so.
#[test]
fn prepare_refuses_imports_that_see_the_project_and_checks_what_it_assumed() {
    let sandbox = sandbox();
    let env = tempfile::tempdir().unwrap();
    let refused = [
        (
            "try:\n    open('pyproject.toml').close()\nexcept FileNotFoundError:\n    pass\n",
            "importing the backend looked at the project: builtins.open /src/pyproject.toml",
        ),
        (
            "FILES = os.listdir()\n",
            "importing the backend looked at the project: os.listdir /src",
        ),
        (
            "import pathlib\nVERSION = pathlib.Path('PKG-INFO').exists()\n",
            "importing the backend looked at the project: os.stat /src/PKG-INFO",
        ),
        (
            "open('_version.py', 'w').close()\n",
            "importing the backend looked at the project: builtins.open /src/_version.py",
        ),
        (
            "import subprocess\ntry:\n    subprocess.run(['git', 'describe'])\nexcept OSError:\n    pass\n",
            "importing the backend started a program: git describe",
        ),
        (
            "import no_such_module\n",
            "importing the backend failed: cannot import build backend module `probe_",
        ),
    ];
    for (i, (code, reason)) in refused.iter().enumerate() {
        let name = format!("probe_{i}");
        fs::write(
            env.path().join(format!("{name}.py")),
            format!("import os\n{code}"),
        )
        .unwrap();
        let (_, output) = prepare_runner(&sandbox, env.path(), &name);
        assert_eq!(output["prepared"], false, "{code}");
        let said = output["reason"].as_str().unwrap();
        assert!(said.starts_with(reason), "{code}: {said}");
    }

    fs::write(
        env.path().join("looks_probe.py"),
        "import os\nOVERRIDE = os.path.exists('VERSION_OVERRIDE')\n\
         def build_wheel(wd, cs=None, md=None):\n    return str(OVERRIDE)\n",
    )
    .unwrap();
    let (image, output) = prepare_runner(&sandbox, env.path(), "looks_probe");
    assert_eq!(
        output,
        json!({"prepared": true, "assumed_absent": ["/src/VERSION_OVERRIDE"]})
    );
    let src = tempfile::tempdir().unwrap();
    let input = hook_input("looks_probe", &[], "build_wheel");
    let result =
        |image| run_runner(&sandbox, src.path(), env.path(), &input, image)["results"][0].clone();
    assert_eq!(result(Some(&image))["return_value"], "False");
    fs::write(src.path().join("VERSION_OVERRIDE"), "2.0").unwrap();
    let mismatch = result(Some(&image));
    assert_eq!(mismatch["status"], "prepared_mismatch", "{mismatch:#}");
    assert!(
        mismatch["message"]
            .as_str()
            .unwrap()
            .contains("/src/VERSION_OVERRIDE")
    );
    assert_eq!(result(None)["return_value"], "True");
}

// --- The runner through the library's sandbox ----------------------------------------

fn sandbox() -> Sandbox {
    let cache = Cache::with_key_file(shared_cache(), shared_seal_key()).unwrap();
    let index = IndexClient::new(IndexOptions::default(), &cache).unwrap();
    let runtime =
        runtime::provision(&RuntimeChoice::Default, &cache, &index, &wasm_build::Silent).unwrap();
    let sandbox = Sandbox::with_isolation(&runtime, &cache, Isolation::Thread).unwrap();
    assert!(sandbox.is_pre_initialized());
    sandbox
}

fn call(hook: &str) -> Value {
    let kwargs = match hook {
        "build_wheel" => {
            json!({"wheel_directory": "/out", "config_settings": {}, "metadata_directory": null})
        }
        _ => json!({"config_settings": {}}),
    };
    json!({"hook": hook, "kwargs": kwargs, "stop_unless_within": null})
}

/// The input of a hook run calling `hook` of `backend`.
fn hook_input(backend: &str, backend_path: &[&str], hook: &str) -> Value {
    json!({
        "backend": backend, "backend_path": backend_path, "source_dir": "/src",
        "env_dir": "/wasm-build/env", "executables": [], "calls": [call(hook)],
    })
}

/// The folders of one runner instance, and its run as the host makes it.
fn runner_run(dirs: &Path, src: &Path, env: &Path) -> GuestRun {
    for dir in ["out", "tmp", "io", "runner"] {
        fs::create_dir(dirs.join(dir)).unwrap();
    }
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/hook_runner.py"),
        dirs.join("runner/hook_runner.py"),
    )
    .unwrap();
    GuestRun {
        args: vec!["-S".into(), "/wasm-build/runner/hook_runner.py".into()],
        env: base_environment(),
        mounts: vec![
            Mount::read_write(src, "/src"),
            Mount::read_write(dirs.join("out"), "/out"),
            Mount::read_write(dirs.join("tmp"), "/tmp"),
            Mount::read_write(dirs.join("io"), "/wasm-build/io"),
            Mount::read_only(dirs.join("runner"), "/wasm-build/runner"),
            Mount::read_only(env, "/wasm-build/env"),
        ],
        limits: Limits::default(),
        log: LogSink::Capture,
        determinism: None,
    }
}

fn output_of(dirs: &Path) -> Value {
    let path = dirs.join("io/output.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Runs the runner on `input` (from `image` when given); its output.json and log.
fn run_runner_with_log(
    sandbox: &Sandbox,
    src: &Path,
    env: &Path,
    input: &Value,
    image: Option<&MemoryImage>,
) -> (Value, String) {
    let dirs = tempfile::tempdir().unwrap();
    let run = runner_run(dirs.path(), src, env);
    fs::write(dirs.path().join("io/input.json"), input.to_string()).unwrap();
    let exit = match image {
        Some(image) => sandbox.run_from(&run, image),
        None => sandbox.run(&run),
    }
    .unwrap();
    let log = String::from_utf8_lossy(&exit.log).into_owned();
    assert_eq!(exit.code, 0, "{log}");
    (output_of(dirs.path()), log)
}

fn run_runner(
    sandbox: &Sandbox,
    src: &Path,
    env: &Path,
    input: &Value,
    image: Option<&MemoryImage>,
) -> Value {
    run_runner_with_log(sandbox, src, env, input, image).0
}

/// A prepare run of `backend` from `env` with an empty source folder: the image and what
/// the runner wrote.
fn prepare_runner(sandbox: &Sandbox, env: &Path, backend: &str) -> (MemoryImage, Value) {
    let dirs = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let run = runner_run(dirs.path(), src.path(), env);
    let input = json!({
        "prepare": true, "open_fds": sandbox.descriptors(&run), "backend": backend,
        "backend_path": [], "source_dir": "/src", "env_dir": "/wasm-build/env",
        "executables": [],
    });
    fs::write(dirs.path().join("io/input.json"), input.to_string()).unwrap();
    let image_path = dirs.path().join("prepared.image");
    let exit = sandbox.prepare(&run, &image_path).unwrap();
    assert_eq!(exit.code, 0, "{}", String::from_utf8_lossy(&exit.log));
    (
        MemoryImage::load(&image_path).unwrap(),
        output_of(dirs.path()),
    )
}
