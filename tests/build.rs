//! End to end: real projects built by the `wasm-build` binary with real backends from the
//! package index, running in the real interpreter under wasmtime.

mod common;

use common::*;
use std::fs;

/// Builds the fixture's sdist and the wheel from it (the default), checks both names and the
/// wheel's files and metadata.
fn default_build(fixture_name: &str, dist: &str, version: &str, wheel_files: &[&str]) {
    let project = fixture(fixture_name);
    let outdir = project.path().join("dist");
    let artifacts = build_ok(wasm_build().arg(project.path()));
    let sdist = outdir.join(format!("{dist}-{version}.tar.gz"));
    let wheel = outdir.join(format!("{dist}-{version}-py3-none-any.whl"));
    assert_eq!(artifacts, [sdist.clone(), wheel.clone()]);
    assert_eq!(
        listing(&outdir).len(),
        2,
        "only the artifacts are in the outdir"
    );
    assert!(tar_names(&sdist).contains(&format!("{dist}-{version}/PKG-INFO")));
    let dist_info = format!("{dist}-{version}.dist-info");
    let mut expected: Vec<String> = wheel_files.iter().map(|s| s.to_string()).collect();
    for file in ["METADATA", "WHEEL", "RECORD"] {
        expected.push(format!("{dist_info}/{file}"));
    }
    let names = zip_names(&wheel);
    for file in &expected {
        assert!(names.contains(file), "{file} missing from {names:?}");
    }
    let (name, meta_version) = wheel_name_version(&wheel, &dist_info);
    assert_eq!(
        name.to_lowercase().replace(['_', '.'], "-"),
        dist.replace('_', "-")
    );
    assert_eq!(meta_version, version);
}

#[test]
fn flit_core_project() {
    default_build(
        "flit",
        "flit_demo",
        "0.1.0",
        &["flit_demo/__init__.py", "flit_demo/greet.py"],
    );
}

#[test]
fn setuptools_project_with_pyproject_metadata() {
    default_build(
        "setuptools",
        "setuptools_demo",
        "1.2.3",
        &[
            "st_demo/__init__.py",
            "st_demo/cli.py",
            "st_demo/data/words.txt",
            "setuptools_demo-1.2.3.dist-info/entry_points.txt",
        ],
    );
}

#[test]
fn setuptools_legacy_project_without_pyproject() {
    default_build(
        "setuptools-legacy",
        "legacy_demo",
        "2.0.0",
        &["legacy_demo/__init__.py"],
    );
}

#[test]
fn hatchling_project() {
    default_build(
        "hatchling",
        "hatch_demo",
        "0.3.0",
        &["hatch_demo/__init__.py"],
    );
}

#[test]
fn poetry_core_project() {
    default_build(
        "poetry",
        "poetry_demo",
        "0.4.0",
        &["poetry_demo/__init__.py"],
    );
}

#[test]
fn pdm_backend_project() {
    default_build("pdm", "pdm_demo", "0.5.0", &["pdm_demo/__init__.py"]);
}

#[test]
fn in_tree_backend_from_backend_path() {
    default_build(
        "intree",
        "intree_demo",
        "0.7.0",
        &["intree_demo/__init__.py"],
    );
}

/// An in-tree backend's modules are compiled from source in the first two steps that
/// import them (the second compiles them for later builds); the next build of the same
/// sources imports them from bytecode and makes the same wheel, byte for byte.
#[test]
fn an_in_tree_backend_is_imported_from_the_bytecode_of_the_build_before() {
    let project = fixture("intree");
    // Sources no other test builds, so that the shared cache has nothing for them yet.
    let backend = project.path().join("_build/backend.py");
    let mut text = fs::read_to_string(&backend).unwrap();
    text.push_str(&format!("\n# {:?}\n", std::time::SystemTime::now()));
    fs::write(&backend, text).unwrap();
    let build = || {
        let outdir = tempfile::tempdir().unwrap();
        let output = run(wasm_build()
            .arg(project.path())
            .args(["--sdist", "--wheel", "-vv", "-o"])
            .arg(outdir.path())
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let steps: Vec<[u64; 5]> = stderr
            .split("Building ")
            .filter_map(bytecode_counts)
            .collect();
        let wheel = fs::read(outdir.path().join("intree_demo-0.7.0-py3-none-any.whl")).unwrap();
        (steps, wheel)
    };
    let (first, wheel) = build();
    // [cached, sources, imported, compiled, seen for the first time]. The sdist step sees
    // the backend for the first time; the wheel step, from the sdist's tree at the same
    // guest path, sees it again and compiles it.
    assert_eq!(first, [[0, 1, 0, 0, 1], [0, 1, 0, 1, 0]]);
    let (again, same_wheel) = build();
    assert_eq!(again, [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]);
    assert_eq!(same_wheel, wheel);
}

/// A module whose compile the import decides is never served from bytecode: one that warns
/// when compiled (each build shows its `SyntaxWarning`, as a build without bytecode does),
/// and one whose compile fails under the integer-digit limit the backend set.
#[test]
fn an_in_tree_module_whose_compile_the_import_decides_is_compiled_in_every_build() {
    let project = fixture("intree");
    let backend = project.path().join("_build/backend.py");
    // Sources no other test (nor an earlier run of this one) builds: the shared cache has
    // nothing for them yet.
    let unique = format!("# {:?}\n", std::time::SystemTime::now());
    let mut text = fs::read_to_string(&backend).unwrap();
    text.push_str(&format!(
        "\nimport sys\nimport warns\nsys.set_int_max_str_digits(640)\n\
         try:\n    import digits\nexcept SyntaxError:\n    pass\n{unique}"
    ));
    fs::write(&backend, text).unwrap();
    fs::write(
        project.path().join("_build/warns.py"),
        format!("PATTERN = \"\\d+\"\n{unique}"),
    )
    .unwrap();
    fs::write(
        project.path().join("_build/digits.py"),
        format!("BIG = {}\n{unique}", "7".repeat(1000)),
    )
    .unwrap();
    let build = || {
        let outdir = tempfile::tempdir().unwrap();
        let output = run(wasm_build()
            .arg(project.path())
            .args(["--wheel", "-vv", "-o"])
            .arg(outdir.path()));
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(stderr.contains("invalid escape sequence"), "{stderr}");
        bytecode_counts(&stderr).unwrap()
    };
    assert_eq!(build(), [0, 3, 0, 0, 3]);
    assert_eq!(build(), [0, 3, 0, 1, 0]);
    // The backend comes from bytecode, the other two from their sources.
    assert_eq!(build(), [1, 3, 1, 0, 0]);
}

#[test]
fn setuptools_build_leaves_the_source_tree_unchanged() {
    // setuptools writes build/ and *.egg-info into the folder it builds in.
    let project = fixture("setuptools");
    let outdir = tempfile::tempdir().unwrap();
    let before = snapshot(project.path());
    build_ok(
        wasm_build()
            .arg(project.path())
            .args(["--sdist", "--wheel", "-o"])
            .arg(outdir.path()),
    );
    assert_eq!(snapshot(project.path()), before);
    assert_eq!(
        listing(outdir.path()),
        [
            "setuptools_demo-1.2.3-py3-none-any.whl",
            "setuptools_demo-1.2.3.tar.gz"
        ]
    );
}

#[test]
fn wheel_from_an_sdist_file() {
    let project = fixture("flit");
    let outdir = tempfile::tempdir().unwrap();
    let sdist = build_ok(
        wasm_build()
            .arg(project.path())
            .arg("--sdist")
            .arg("-o")
            .arg(outdir.path()),
    );
    let wheels = tempfile::tempdir().unwrap();
    let built = build_ok(wasm_build().arg(&sdist[0]).arg("-o").arg(wheels.path()));
    assert_eq!(
        built,
        [wheels.path().join("flit_demo-0.1.0-py3-none-any.whl")]
    );
}

#[test]
fn config_settings_reach_the_backend() {
    let project = fixture("intree");
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "-C", "mode=fast", "-C", "flag", "-o"])
            .arg(outdir.path()),
    );
    let metadata = zip_member(&built[0], "intree_demo-0.7.0.dist-info/METADATA");
    let text = String::from_utf8(metadata).unwrap();
    assert!(text.contains("config-setting:mode=fast"), "{text}");
    assert!(text.contains("config-setting:flag="), "{text}");
}

#[test]
fn metadata_only() {
    let project = fixture("flit");
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .arg("--metadata-dir")
            .arg("-o")
            .arg(outdir.path()),
    );
    assert_eq!(built, [outdir.path().join("flit_demo-0.1.0.dist-info")]);
    let metadata = fs::read_to_string(built[0].join("METADATA")).unwrap();
    assert!(metadata.contains("Name: flit-demo"), "{metadata}");
}

#[test]
fn metadata_falls_back_to_building_the_wheel() {
    // The in-tree backend has no prepare_metadata_for_build_wheel: the runner builds the
    // wheel and takes its .dist-info, as PEP 517 says.
    let project = fixture("intree");
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .arg("--metadata-dir")
            .arg("-o")
            .arg(outdir.path()),
    );
    assert_eq!(built, [outdir.path().join("intree_demo-0.7.0.dist-info")]);
    assert!(built[0].join("RECORD").is_file());
}

#[test]
fn editable_wheel_points_at_the_real_tree() {
    let project = fixture("hatchling");
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .arg("--editable")
            .arg("-o")
            .arg(outdir.path()),
    );
    installers_accept(&built[0], "hatch_demo", "0.3.0");
    let pth = zip_names(&built[0])
        .into_iter()
        .find(|n| n.ends_with(".pth"))
        .expect("an editable wheel has a .pth file");
    let text = String::from_utf8(zip_member(&built[0], &pth)).unwrap();
    let real = fs::canonicalize(project.path()).unwrap();
    assert!(text.contains(real.to_str().unwrap()), "{text}");
}

/// Asserts what installers check of a wheel's file name (packaging's
/// `parse_wheel_filename`, used by pip and uv alike): five or six dash-separated parts, the
/// distribution and version given, an optional build tag that starts with a digit (as
/// setuptools' `0.editable` does), and pure-Python tags.
fn installers_accept(wheel: &std::path::Path, dist: &str, version: &str) {
    let file = wheel.file_name().unwrap().to_str().unwrap();
    let stem = file.strip_suffix(".whl").expect("a .whl file");
    let parts: Vec<&str> = stem.split('-').collect();
    assert!(matches!(parts.len(), 5 | 6), "{file}");
    assert_eq!(parts[0], dist, "{file}");
    assert!(!parts[0].contains("__"), "{file}");
    assert_eq!(parts[1], version, "{file}");
    if parts.len() == 6 {
        assert!(parts[2].starts_with(|c: char| c.is_ascii_digit()), "{file}");
    }
    assert_eq!(parts[parts.len() - 2..], ["none", "any"], "{file}");
    assert!(parts[parts.len() - 3].starts_with("py3"), "{file}");
}

/// `--editable` of a fixture: one wheel whose name installers accept, that passed
/// verification (the build succeeded), and that points at the project's real tree (some
/// member names its path: a `.pth` file or the finder module setuptools writes).
fn editable_build(fixture_name: &str, dist: &str, version: &str) {
    let project = fixture(fixture_name);
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .arg("--editable")
            .arg("-o")
            .arg(outdir.path()),
    );
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(listing(outdir.path()).len(), 1);
    installers_accept(&built[0], dist, version);
    let real = fs::canonicalize(project.path()).unwrap();
    let real = real.to_str().unwrap();
    let names = zip_names(&built[0]);
    assert!(
        names.iter().any(|name| {
            !name.ends_with("/RECORD")
                && String::from_utf8_lossy(&zip_member(&built[0], name)).contains(real)
        }),
        "no member of {names:?} names {real}"
    );
}

#[test]
fn editable_setuptools_project() {
    editable_build("setuptools", "setuptools_demo", "1.2.3");
}

#[test]
fn editable_flit_project() {
    editable_build("flit", "flit_demo", "0.1.0");
}

#[test]
fn editable_pdm_project() {
    editable_build("pdm", "pdm_demo", "0.5.0");
}

#[test]
fn editable_poetry_project() {
    editable_build("poetry", "poetry_demo", "0.4.0");
}

#[test]
fn vmware_runtime_builds_too() {
    let project = fixture("flit");
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "--runtime", "cpython-3.12-vmware", "-o"])
            .arg(outdir.path()),
    );
    assert_eq!(
        built,
        [outdir.path().join("flit_demo-0.1.0-py3-none-any.whl")]
    );
}

/// A failed build names the failure, exits with its class's code, and writes nothing.
fn fails(fixture_name: &str, args: &[&str], code: i32, expected: &[&str]) {
    let project = fixture(&format!("errors/{fixture_name}"));
    let outdir = project.path().join("dist");
    let before = snapshot(project.path());
    let stderr = build_fails(wasm_build().arg(project.path()).args(args), code);
    for text in expected {
        assert!(stderr.contains(text), "expected {text:?} in:\n{stderr}");
    }
    assert!(!outdir.exists(), "a failed build created the outdir");
    assert_eq!(
        snapshot(project.path()),
        before,
        "a failed build changed the source"
    );
}

#[test]
fn backend_unavailable() {
    fails(
        "backend-unavailable",
        &[],
        5,
        &[
            "build backend `no_such_backend.api` is not available",
            "ModuleNotFoundError",
        ],
    );
}

#[test]
fn backend_invalid() {
    fails(
        "backend-invalid",
        &[],
        5,
        &["build backend `json` is invalid", "not from backend-path"],
    );
}

#[test]
fn hook_missing() {
    fails(
        "hook-missing",
        &["--wheel"],
        5,
        &["build backend `backend` has no `build_wheel` hook"],
    );
}

#[test]
fn unsupported_operation() {
    fails(
        "unsupported",
        &["--sdist"],
        5,
        &["does not support `build_sdist`"],
    );
}

#[test]
fn hook_raises() {
    fails(
        "hook-raises",
        &["--wheel"],
        5,
        &[
            "hook `build_wheel` of build backend `backend` failed",
            "ValueError: boom",
            "compiling things...",
            "Traceback",
        ],
    );
}

#[test]
fn invalid_pyproject_toml() {
    fails("bad-toml", &[], 3, &["pyproject.toml is not valid TOML"]);
}

#[test]
fn requires_not_a_list() {
    fails(
        "requires-not-list",
        &[],
        3,
        &["pyproject.toml: `build-system.requires` must be a list of strings"],
    );
}

#[test]
fn malformed_requirement() {
    fails(
        "bad-requirement",
        &[],
        3,
        &[
            "`build-system.requires` has an invalid entry",
            "caused by: invalid requirement `setuptools >= `",
        ],
    );
}

#[test]
fn backend_path_outside_the_project() {
    fails(
        "backend-path-outside",
        &[],
        3,
        &["`build-system.backend-path` entry `../elsewhere` points outside the project"],
    );
}

#[test]
fn not_a_project() {
    fails(
        "not-a-project",
        &[],
        3,
        &["neither pyproject.toml nor setup.py"],
    );
}

#[test]
fn error_messages_name_the_users_file() {
    let project = fixture("errors/bad-toml");
    let stderr = build_fails(wasm_build().arg(project.path()), 3);
    let expected = project.path().join("pyproject.toml");
    assert!(stderr.contains(expected.to_str().unwrap()), "{stderr}");
}

#[test]
fn cache_dir_and_runtime_info() {
    let output = run(wasm_build().args(["cache", "dir"]));
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        shared_cache().to_str().unwrap()
    );
    let output = run(wasm_build().args(["runtime", "info"]));
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("wasmtime 48.0.8"), "{text}");
    assert!(text.contains("cpython-3.12-vmware"), "{text}");
}

#[test]
fn existing_outdir_content_survives_a_failed_build() {
    let project = fixture("errors/hook-raises");
    let outdir = project.path().join("dist");
    fs::create_dir(&outdir).unwrap();
    fs::write(outdir.join("keep.txt"), "mine").unwrap();
    build_fails(wasm_build().arg(project.path()).arg("--wheel"), 5);
    assert_eq!(listing(&outdir), ["keep.txt"]);
    assert_eq!(fs::read_to_string(outdir.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn platform_wheels_are_refused() {
    // The extension cannot be compiled in the sandbox; setuptools falls back to pure Python
    // but tags the wheel for WASI. Such a wheel installs nowhere: refused, not published,
    // in the class of projects that compile native code (exit 8).
    fails(
        "native-extension",
        &["--wheel"],
        8,
        &[
            "this project compiles native code",
            "wasm-build builds pure-Python wheels only",
            "tagged for the platform wasi",
        ],
    );
}

#[test]
fn modes_set_by_the_backend_reach_the_wheel() {
    // setuptools copies package data with copy_file(preserve_mode=1), i.e. os.chmod, which
    // WASI ignores; the hook runner remembers the mode so the wheel matches a native build.
    let project = fixture("setuptools");
    let script = project.path().join("src/st_demo/data/run.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pyproject = project.path().join("pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap().replace(
        r#"st_demo = ["data/*.txt"]"#,
        r#"st_demo = ["data/*.txt", "data/*.sh"]"#,
    );
    fs::write(&pyproject, text).unwrap();
    // The default flow: the mode travels source → sdist → extracted sdist → wheel.
    let built = build_ok(wasm_build().arg(project.path()));
    let sdist_mode = tar_mode(&built[0], "setuptools_demo-1.2.3/src/st_demo/data/run.sh");
    assert_eq!(sdist_mode & 0o777, 0o755);
    assert_eq!(zip_mode(&built[1], "st_demo/data/run.sh"), 0o100755);
    // Everything else has the mode a native build gives it, metadata setuptools copies with
    // shutil (from os.DirEntry stats, which report no permission bits) included.
    for name in zip_names(&built[1]) {
        if name != "st_demo/data/run.sh" && !name.ends_with("/RECORD") {
            assert_eq!(zip_mode(&built[1], &name), 0o100644, "{name}");
        }
    }
    // Folders too: setuptools makes the sdist's top folder after removing files it had
    // chmod'ed, and the new folder may get one of their inodes, which must not bring the
    // file's mode along (it did: the folder was 0644 in some builds).
    let folders = tar_folder_modes(&built[0]);
    assert!(folders.len() >= 4, "{folders:?}");
    for (name, mode) in folders {
        assert_eq!(mode & 0o777, 0o755, "{name}");
    }
}
