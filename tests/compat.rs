//! Families of real-world sdists that used to fail or differ from pypa/build (issue 19), each
//! with a fixture made for it: real backends from the index, the real sandbox. Fixture
//! sdists are made here from the fixture folders.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A `.tar.gz` named `file_name` holding the fixture folder `name` as `top/`.
fn sdist(dir: &Path, name: &str, file_name: &str, top: &str) -> PathBuf {
    let path = dir.join(file_name);
    let gz = flate2::write::GzEncoder::new(fs::File::create(&path).unwrap(), Default::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    builder
        .append_dir_all(top, fixtures().join("compat").join(name))
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    path
}

/// Builds the wheel of `input` into a fresh folder; returns the wheel's path.
fn wheel_of(input: &Path, extra: &[&str], out: &Path) -> PathBuf {
    let built = build_ok(
        wasm_build()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg(input)
            .arg("--wheel")
            .arg("-o")
            .arg(out)
            .args(extra),
    );
    assert_eq!(built.len(), 1, "{built:?}");
    built.into_iter().next().unwrap()
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

fn text(wheel: &Path, member: &str) -> String {
    String::from_utf8(zip_member(wheel, member)).unwrap()
}

#[test]
fn a_pbr_project_builds_without_git() {
    // pbr probes for git and expects what a machine without it shows; the version comes
    // from PKG-INFO, as in a native build of the sdist.
    let dir = tempfile::tempdir().unwrap();
    let input = sdist(dir.path(), "pbr", "pbr_demo-1.0.0.tar.gz", "pbr_demo-1.0.0");
    let wheel = wheel_of(&input, &[], &dir.path().join("out"));
    assert_eq!(file_name(&wheel), "pbr_demo-1.0.0-py3-none-any.whl");
    assert!(zip_names(&wheel).contains(&"pbr_demo/__init__.py".to_string()));
    let metadata = text(&wheel, "pbr_demo-1.0.0.dist-info/METADATA");
    assert!(metadata.contains("\nVersion: 1.0.0\n"), "{metadata}");
}

#[test]
fn flit_scm_writes_its_version_file_with_and_without_the_prepared_backend() {
    // flit_scm runs setuptools-scm's get_version(write_to=…) when it is imported, reading the
    // project from the working folder: a backend imported ahead of the project (prepared)
    // must not change the wheel.
    let dir = tempfile::tempdir().unwrap();
    let input = sdist(
        dir.path(),
        "flit-scm",
        "scm_demo-2.3.4.tar.gz",
        "scm_demo-2.3.4",
    );
    let prepared = wheel_of(&input, &[], &dir.path().join("prepared"));
    let fresh = wheel_of(
        &input,
        &["--no-prepared-backend"],
        &dir.path().join("fresh"),
    );
    assert_eq!(file_name(&prepared), "scm_demo-2.3.4-py2.py3-none-any.whl");
    let version = text(&prepared, "scm_demo/_version.py");
    assert!(version.contains("2.3.4"), "{version}");
    assert_eq!(
        fs::read(&prepared).unwrap(),
        fs::read(&fresh).unwrap(),
        "the prepared backend changed the wheel"
    );
}

#[test]
fn a_setup_py_importing_mmap_through_its_package_builds() {
    let project = fixture("compat/setup-imports-mmap");
    let wheel = wheel_of(project.path(), &[], &project.path().join("dist"));
    assert_eq!(file_name(&wheel), "mmap_demo-0.5.1-py3-none-any.whl");
    assert!(zip_names(&wheel).contains(&"mmap_demo/__init__.py".to_string()));
}

#[test]
fn an_sdist_whose_folder_is_the_unnormalized_name_builds() {
    // PEP 625 normalizes the file name (ruamel_yaml), not the folder (ruamel.yaml).
    let dir = tempfile::tempdir().unwrap();
    let input = sdist(
        dir.path(),
        "ruamel.yaml-0.19.1",
        "ruamel_yaml-0.19.1.tar.gz",
        "ruamel.yaml-0.19.1",
    );
    let wheel = wheel_of(&input, &[], &dir.path().join("out"));
    assert_eq!(file_name(&wheel), "ruamel_yaml-0.19.1-py3-none-any.whl");
}

#[test]
fn a_c_extension_is_its_own_exit_class() {
    let project = fixture("compat/c-extension");
    let stderr = build_fails(wasm_build().arg(project.path()).arg("--wheel"), 8);
    assert!(
        stderr.contains(
            "this project compiles native code (the extension `cext._speed`); wasm-build \
             builds pure-Python wheels only"
        ),
        "{stderr}"
    );
    // What the backend printed is shown, as for any failed hook.
    assert!(stderr.contains("--- output of the backend"), "{stderr}");
    assert!(!project.path().join("dist").exists());
}

#[test]
fn a_documented_pure_switch_is_named_and_works() {
    // The project skips its extension when MULTIDICT_NO_EXTENSIONS is set, as multidict
    // documents: the failure says how to pass it, and passing it builds the pure wheel.
    let dir = tempfile::tempdir().unwrap();
    let input = sdist(
        dir.path(),
        "multidict",
        "multidict-0.0.1.tar.gz",
        "multidict-0.0.1",
    );
    let out = dir.path().join("out");
    let stderr = build_fails(
        wasm_build().arg(&input).arg("--wheel").arg("-o").arg(&out),
        8,
    );
    assert!(stderr.contains("compiles native code"), "{stderr}");
    assert!(
        stderr.contains("pass --env MULTIDICT_NO_EXTENSIONS=1"),
        "{stderr}"
    );
    let wheel = wheel_of(&input, &["--env", "MULTIDICT_NO_EXTENSIONS=1"], &out);
    assert_eq!(file_name(&wheel), "multidict-0.0.1-py3-none-any.whl");
}

#[test]
fn a_backend_falling_back_to_pure_python_succeeds_with_a_warning() {
    // Like markupsafe: the extension fails to compile and setup.py runs again without it.
    // Not exit 8: the wheel is what a native build without a compiler makes.
    let project = fixture("compat/optional-extension");
    let output = run(wasm_build().arg(project.path()).arg("--wheel"));
    assert!(output.status.success());
    let wheel = project
        .path()
        .join("dist/optional_speedups-1.0-py3-none-any.whl");
    assert!(zip_names(&wheel).contains(&"speedy/__init__.py".to_string()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the backend tried to run a compiler")
            && stderr.contains("built optional_speedups-1.0-py3-none-any.whl without it"),
        "{stderr}"
    );
}

#[test]
fn a_build_requirement_chain_ending_at_a_rust_backend_compiles_native_code() {
    // maturin has platform wheels only, and its sdist builds Rust with cargo: a project
    // whose build requires it compiles native code (exit 8), with the chain named, rather
    // than "building maturin from its sdist failed".
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("rusty");
    fs::create_dir_all(project.join("rusty")).unwrap();
    fs::write(project.join("rusty/__init__.py"), "").unwrap();
    fs::write(
        project.join("pyproject.toml"),
        "[build-system]\nrequires = [\"maturin>=1,<2\"]\nbuild-backend = \"maturin\"\n\n\
         [project]\nname = \"rusty\"\nversion = \"1.0\"\n",
    )
    .unwrap();
    let stderr = build_fails(
        wasm_build()
            .arg(&project)
            .arg("--wheel")
            .arg("-o")
            .arg(dir.path().join("out")),
        8,
    );
    assert!(
        stderr.contains("this project compiles native code"),
        "{stderr}"
    );
    assert!(stderr.contains("→ maturin 1."), "{stderr}");
    assert!(stderr.contains("cargo"), "{stderr}");
}
