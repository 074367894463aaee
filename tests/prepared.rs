//! End-to-end tests of prepared backends (docs/runtime.md, "The prepared backend"): hook
//! runs start from an interpreter kept with the backend imported, and build what a fresh
//! import builds.
//!
//! The probe backend is `tests/fixtures/intree/_build/backend.py` installed from a wheel
//! (backends from the build environment are the ones prepared), plus a report: whether the
//! backend was imported in a prepare run (it reads the runner's input, not the project: an
//! import that looks at the project is not prepared), which hooks this interpreter ran, and
//! `AT_IMPORT`, which a test's own import-time code may set. Each test uses its own probe
//! version, hence its own build environment.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasm_build_packaging::cache::Bucket;

const PROBE: &str = r#"
import json

with open("/wasm-build/io/input.json") as f:
    IMPORTED_IN_PREPARE = json.load(f).get("prepare", False)
CALLS = []
AT_IMPORT = None
_base_build_wheel, _base_build_sdist = build_wheel, build_sdist


def build_sdist(sdist_directory, config_settings=None):
    CALLS.append("build_sdist")
    return _base_build_sdist(sdist_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    CALLS.append("build_wheel")
    _, package, _ = _project()
    with open(os.path.join(package, "probe_report.json"), "w") as f:
        json.dump({"imported_in_prepare": IMPORTED_IN_PREPARE, "calls": CALLS, "at_import": AT_IMPORT}, f)
    return _base_build_wheel(wheel_directory, config_settings, metadata_directory)
"#;

/// A find-links folder with the probe backend `prepared_probe` at `version`, whose import
/// also runs `at_import`.
fn probe_wheels(version: &str, at_import: &str) -> tempfile::TempDir {
    let base = fs::read_to_string(fixtures().join("intree/_build/backend.py")).unwrap();
    let module = format!("{base}{PROBE}{at_import}\n");
    wheel_dir(
        "prepared-probe",
        version,
        &[("prepared_probe.py", module.as_bytes())],
    )
}

/// A project built by the probe at `version`.
fn probe_project(version: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"prepared-probe=={version}\"]\n\
             build-backend = \"prepared_probe\"\n\n[project]\nname = \"probe-demo\"\nversion = \"1.0\"\n"
        ),
    )
    .unwrap();
    fs::create_dir(dir.path().join("probe_demo")).unwrap();
    fs::write(dir.path().join("probe_demo/__init__.py"), "").unwrap();
    dir
}

/// `wasm-build` building `project` into `out` with the probe from `wheels` only.
fn probe_cmd(project: &Path, wheels: &Path, out: &Path) -> Command {
    let mut cmd = wasm_build();
    cmd.arg(project)
        .arg("-o")
        .arg(out)
        .args(["--offline", "--find-links"])
        .arg(wheels);
    cmd
}

/// The interpreter is cached (an offline build cannot provision it on a cold cache).
fn ensure_runtime() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        let project = fixture("intree");
        let out = tempfile::tempdir().unwrap();
        build_ok(
            wasm_build()
                .arg(project.path())
                .arg("--wheel")
                .arg("-o")
                .arg(out.path()),
        );
    });
}

/// The probe's report from the wheel among `artifacts`.
fn report(artifacts: &[PathBuf]) -> serde_json::Value {
    let wheel = artifacts
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a wheel was built");
    serde_json::from_slice(&zip_member(wheel, "probe_demo/probe_report.json")).unwrap()
}

/// The cache key of the probe's build environment, once it exists: the one used last (an
/// earlier run of the suite may have left one made of other probe bytes).
fn probe_env_key(version: &str) -> Option<String> {
    let envs = shared_cache().join(Bucket::Envs.dir_name());
    let found = fs::read_dir(&envs)
        .ok()?
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.join(format!("site-packages/prepared_probe-{version}.dist-info"))
                .is_dir()
        })
        .max_by_key(|p| {
            fs::metadata(p.join("last-used"))
                .and_then(|m| m.modified())
                .ok()
        })?;
    Some(found.file_name()?.to_string_lossy().into_owned())
}

/// Starts a test afresh: removes what an earlier run of the suite (perhaps of another
/// wasm-build, whose images have other keys) prepared for the probe's environment.
fn forget_prepared(version: &str) {
    if probe_env_key(version).is_some() {
        for path in prepared_files(version, "") {
            fs::remove_file(path).unwrap();
        }
    }
}

/// The files of the prepared-backend bucket that belong to the probe's environment.
fn prepared_files(version: &str, suffix: &str) -> Vec<PathBuf> {
    let key = probe_env_key(version).expect("the probe's build environment is cached");
    let mut found: Vec<PathBuf> = fs::read_dir(shared_cache().join(Bucket::Prepared.dir_name()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{key}-")) && name.ends_with(suffix)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn hook_runs_start_from_the_backend_imported_once_and_share_nothing_else() {
    ensure_runtime();
    forget_prepared("1.0");
    let (wheels, project) = (probe_wheels("1.0", ""), probe_project("1.0"));
    let out = tempfile::tempdir().unwrap();
    // The sdist, then the wheel from it: two hook runs from one prepared interpreter.
    let artifacts = build_ok(&mut probe_cmd(project.path(), wheels.path(), out.path()));
    let first = report(&artifacts);
    assert_eq!(
        first["imported_in_prepare"], true,
        "the backend was imported before the project was mounted: in the prepare run"
    );
    assert_eq!(
        first["calls"],
        serde_json::json!(["build_wheel"]),
        "the wheel's run saw the sdist run's state"
    );
    let images = prepared_files("1.0", ".image");
    assert_eq!(images.len(), 1, "{images:?}");
    let before = fs::read(&images[0]).unwrap();

    let again = tempfile::tempdir().unwrap();
    let artifacts = build_ok(probe_cmd(project.path(), wheels.path(), again.path()).arg("--wheel"));
    assert_eq!(
        report(&artifacts)["calls"],
        serde_json::json!(["build_wheel"])
    );
    assert_eq!(
        prepared_files("1.0", ".image"),
        images,
        "one image per environment"
    );
    assert!(
        fs::read(&images[0]).unwrap() == before,
        "the image was made again"
    );
}

#[test]
fn without_a_prepared_backend_every_run_imports_it_with_the_project_mounted() {
    ensure_runtime();
    forget_prepared("2.0");
    let (wheels, project) = (probe_wheels("2.0", ""), probe_project("2.0"));
    let out = tempfile::tempdir().unwrap();
    let artifacts = build_ok(
        probe_cmd(project.path(), wheels.path(), out.path())
            .args(["--wheel", "--no-prepared-backend"]),
    );
    let report = report(&artifacts);
    assert_eq!(report["imported_in_prepare"], false);
    assert_eq!(report["calls"], serde_json::json!(["build_wheel"]));
    assert!(prepared_files("2.0", "").is_empty(), "nothing was prepared");
}

/// Builds the probe at `version`, whose import also runs `at_import`, with `args`; checks
/// that the backend was imported in the hook run (the project was mounted) and that it is
/// remembered as not prepared for a reason containing `why`. Returns the build's stderr.
fn build_not_prepared(version: &str, at_import: &str, args: &[&str], why: &str) -> String {
    ensure_runtime();
    forget_prepared(version);
    let (wheels, project) = (probe_wheels(version, at_import), probe_project(version));
    let out = tempfile::tempdir().unwrap();
    let output = run(probe_cmd(project.path(), wheels.path(), out.path()).args(args));
    assert!(output.status.success());
    let artifacts: Vec<PathBuf> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(report(&artifacts)["imported_in_prepare"], false);
    let refused = prepared_files(version, ".refused");
    assert_eq!(refused.len(), 1);
    assert!(fs::read_to_string(&refused[0]).unwrap().contains(why));
    assert!(prepared_files(version, ".image").is_empty());
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn a_backend_whose_import_prints_is_imported_in_each_run_and_its_output_shown() {
    let stderr = build_not_prepared(
        "3.0",
        "print('hello from the import')",
        &["--wheel", "-v"],
        "printed",
    );
    assert!(
        stderr.contains("hello from the import"),
        "the import's output reaches the user"
    );
}

#[test]
fn a_backend_whose_import_leaves_a_file_open_is_imported_in_each_run() {
    build_not_prepared(
        "4.0",
        "_KEPT_OPEN = open(__file__)",
        &["--wheel"],
        "left file descriptor",
    );
}

/// A deflate stream the host holds lives in the prepare run's store only: an image naming
/// it would hand later runs a handle to nothing, or to a stream of theirs. Such an import
/// is not kept (and is tried again by the next build, as a run stopped by a limit is).
#[test]
fn a_backend_whose_import_keeps_a_compressor_is_imported_in_each_run() {
    ensure_runtime();
    let version = "4.1";
    forget_prepared(version);
    let at_import = "import zlib\n_KEPT = zlib.compressobj()\nAT_IMPORT = len(_KEPT.compress(b'x' * 100) + _KEPT.flush(zlib.Z_SYNC_FLUSH))";
    let (wheels, project) = (probe_wheels(version, at_import), probe_project(version));
    for _ in 0..2 {
        let out = tempfile::tempdir().unwrap();
        let artifacts =
            build_ok(probe_cmd(project.path(), wheels.path(), out.path()).arg("--wheel"));
        let report = report(&artifacts);
        assert_eq!(report["imported_in_prepare"], false);
        assert_eq!(report["at_import"], 12);
        assert!(prepared_files(version, ".image").is_empty());
    }
}

/// The bytes of the wheel the probe at `version` builds for its project, with `args`.
fn probe_wheel_bytes(
    version: &str,
    at_import: &str,
    args: &[&str],
) -> (Vec<u8>, serde_json::Value) {
    let (wheels, project) = (probe_wheels(version, at_import), probe_project(version));
    let out = tempfile::tempdir().unwrap();
    let artifacts = build_ok(
        probe_cmd(project.path(), wheels.path(), out.path())
            .args(["--wheel"])
            .args(args),
    );
    (fs::read(&artifacts[0]).unwrap(), report(&artifacts))
}

/// flit_scm's import reads pyproject.toml from the working directory: a prepared import
/// would have found none. Such a backend is imported in each run and builds what it builds
/// without the prepared backend, byte for byte (issue 19).
#[test]
fn a_backend_whose_import_reads_the_project_builds_what_a_fresh_import_builds() {
    ensure_runtime();
    forget_prepared("7.0");
    let at_import = "try:\n    with open('pyproject.toml') as f:\n        AT_IMPORT = f.read()\n\
                     except FileNotFoundError:\n    AT_IMPORT = None";
    let (bytes, report) = probe_wheel_bytes("7.0", at_import, &[]);
    assert_eq!(report["imported_in_prepare"], false);
    assert!(
        report["at_import"]
            .as_str()
            .unwrap()
            .contains("prepared-probe==7.0")
    );
    let refused = prepared_files("7.0", ".refused");
    assert_eq!(refused.len(), 1);
    let reason = fs::read_to_string(&refused[0]).unwrap();
    assert!(
        reason.contains(
            "importing the backend looked at the project: builtins.open /src/pyproject.toml"
        ),
        "{reason}"
    );
    let (fresh, _) = probe_wheel_bytes("7.0", at_import, &["--no-prepared-backend"]);
    assert!(bytes == fresh, "the wheels differ");
}

/// An import that only looks for a file the project lacks (as sysconfig looks for
/// Modules/Setup in the working directory) is prepared; hook runs check that the file is
/// still missing (tests/runner.rs has the project that has it).
#[test]
fn a_backend_whose_import_looks_for_a_missing_file_is_prepared() {
    ensure_runtime();
    forget_prepared("8.0");
    let (_, report) =
        probe_wheel_bytes("8.0", "AT_IMPORT = os.path.exists('VERSION_OVERRIDE')", &[]);
    assert_eq!(report["imported_in_prepare"], true);
    assert_eq!(report["at_import"], false);
    assert_eq!(prepared_files("8.0", ".image").len(), 1);
}

#[test]
fn a_changed_image_is_not_used_but_made_again() {
    ensure_runtime();
    forget_prepared("5.0");
    let (wheels, project) = (probe_wheels("5.0", ""), probe_project("5.0"));
    let out = tempfile::tempdir().unwrap();
    build_ok(probe_cmd(project.path(), wheels.path(), out.path()).arg("--wheel"));
    let images = prepared_files("5.0", ".image");
    assert_eq!(images.len(), 1);
    let pristine = fs::read(&images[0]).unwrap();
    // One byte of memory changed: the next run would compute with it.
    let mut changed = pristine.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0x5a;
    fs::write(&images[0], &changed).unwrap();

    let again = tempfile::tempdir().unwrap();
    let artifacts = build_ok(probe_cmd(project.path(), wheels.path(), again.path()).arg("--wheel"));
    assert_eq!(
        report(&artifacts)["calls"],
        serde_json::json!(["build_wheel"])
    );
    let remade = fs::read(&images[0]).unwrap();
    assert!(remade != changed, "the changed image was kept");
    let checksum = images[0].with_extension("sha256");
    assert_eq!(
        fs::read_to_string(checksum)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        wasm_build_packaging::cache::sha256_bytes(&remade),
        "the image in place is the one the host made and recorded"
    );
}

#[test]
fn another_guest_environment_gets_its_own_image() {
    ensure_runtime();
    forget_prepared("6.0");
    let (wheels, project) = (probe_wheels("6.0", ""), probe_project("6.0"));
    for env in ["PROBE_SETTING=a", "PROBE_SETTING=b"] {
        let out = tempfile::tempdir().unwrap();
        build_ok(
            probe_cmd(project.path(), wheels.path(), out.path()).args(["--wheel", "--env", env]),
        );
    }
    assert_eq!(prepared_files("6.0", ".image").len(), 2);
}

/// Real backends build the same artifacts from a prepared import as from a fresh one: the
/// same wheel bytes, and sdists with the same members, modes and contents (setuptools
/// stamps sdist members with the files' own times, which differ between any two builds).
#[test]
fn real_backends_build_the_same_artifacts_from_a_prepared_import() {
    for name in ["setuptools", "flit", "hatchling", "poetry", "pdm"] {
        let project = fixture(name);
        let mut builds = Vec::new();
        for extra in [&[][..], &["--no-prepared-backend"][..]] {
            let out = tempfile::tempdir().unwrap();
            let artifacts = build_ok(
                wasm_build()
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .arg(project.path())
                    .arg("-o")
                    .arg(out.path())
                    .args(extra),
            );
            let described: Vec<_> = artifacts.iter().map(|p| describe(p)).collect();
            builds.push(described);
        }
        assert_eq!(builds[0].len(), 2, "{name}: an sdist and a wheel");
        for (a, b) in builds[0].iter().zip(&builds[1]) {
            assert_eq!(a.0, b.0, "{name}: the artifacts differ");
            for (x, y) in a.1.iter().zip(&b.1) {
                assert_eq!(
                    (&x.0, x.1, String::from_utf8_lossy(&x.2)),
                    (&y.0, y.1, String::from_utf8_lossy(&y.2)),
                    "{name}: {} differs",
                    a.0
                );
            }
            assert_eq!(a.1.len(), b.1.len(), "{name}: {} has other members", a.0);
        }
    }
}

/// An artifact as compared above: its file name, and the wheel's bytes or the sdist's
/// (member, mode, contents).
fn describe(path: &Path) -> (String, Vec<(String, u32, Vec<u8>)>) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    if name.ends_with(".whl") {
        return (name, vec![(String::new(), 0, fs::read(path).unwrap())]);
    }
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(path).unwrap()));
    let mut members: Vec<_> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let member = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            (member, mode, data)
        })
        .collect();
    members.sort();
    (name, members)
}
