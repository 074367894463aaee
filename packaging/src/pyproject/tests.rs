use super::*;

fn parse(text: &str) -> Result<BuildSystem, ProjectError> {
    BuildSystem::parse(text, Path::new("proj/pyproject.toml"))
}

#[test]
fn reads_a_full_table() {
    let bs = parse(
        r#"[build-system]
requires = ["flit_core >=3.2,<4"]
build-backend = "flit_core.buildapi"
backend-path = ["./_build", "tools/../backend"]
"#,
    )
    .unwrap();
    assert_eq!(bs.requires, ["flit_core >=3.2,<4"]);
    assert_eq!(bs.backend, "flit_core.buildapi");
    assert_eq!(bs.backend_path, ["_build", "backend"]);
    assert_eq!(bs.origin, Origin::Pyproject);
}

#[test]
fn falls_back_to_legacy_setuptools() {
    let bs = parse("[project]\nname = 'x'\n").unwrap();
    assert_eq!(bs.backend, LEGACY_BACKEND);
    assert_eq!(bs.requires, [LEGACY_REQUIRES]);
    let bs = parse("[build-system]\nrequires = ['setuptools', 'wheel']\n").unwrap();
    assert_eq!(bs.backend, LEGACY_BACKEND);
    assert_eq!(bs.origin, Origin::PyprojectWithoutBackend);
    assert_eq!(bs.requires, ["setuptools", "wheel"]);
}

#[test]
fn reads_a_setup_py_project_without_pyproject() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        BuildSystem::read(dir.path()),
        Err(ProjectError::NotAProject(_))
    ));
    std::fs::write(dir.path().join("setup.py"), "").unwrap();
    assert_eq!(
        BuildSystem::read(dir.path()).unwrap().origin,
        Origin::Legacy
    );
}

#[test]
fn errors_name_the_file_and_field() {
    let cases = [
        ("[build-system\n", "not valid TOML"),
        (
            "[build-system]\nbuild-backend = 'x'\n",
            "`build-system.requires` is missing",
        ),
        (
            "[build-system]\nrequires = 'setuptools'\n",
            "must be a list of strings",
        ),
        ("[build-system]\nrequires = [1]\n", "must hold only strings"),
        (
            "[build-system]\nrequires = ['setuptools >= ']\n",
            "invalid requirement",
        ),
        (
            "[build-system]\nrequires = ['x @ https://e.com/x.whl']\n",
            "direct URL",
        ),
        (
            "[build-system]\nrequires = []\nbuild-backend = 'a b'\n",
            "is not `module`",
        ),
        (
            "[build-system]\nrequires = []\nbuild-backend = 1\n",
            "must be a string",
        ),
        (
            "[build-system]\nrequires = []\nbackend-path = ['../x']\n",
            "outside the project",
        ),
        (
            "[build-system]\nrequires = []\nbackend-path = ['/abs']\n",
            "must be relative",
        ),
        (
            "[build-system]\nrequires = []\nbackend-path = 'x'\n",
            "must be a list",
        ),
        ("build-system = 3\n", "must be a table"),
    ];
    for (text, expected) in cases {
        let err = chain(&parse(text).unwrap_err());
        assert!(err.contains("proj/pyproject.toml"), "{err}");
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

/// The error and its causes, as the CLI prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[test]
fn reads_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("pyproject.toml"),
        "[build-system]\nrequires = []\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("pyproject.toml"),
        dir.path().join("pyproject.toml"),
    )
    .unwrap();
    let err = chain(&BuildSystem::read(dir.path()).unwrap_err());
    assert!(err.contains("cannot read"), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn requirement_errors_carry_their_cause_once() {
    let err = parse("[build-system]\nrequires = ['x y']\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "proj/pyproject.toml: `build-system.requires` has an invalid entry"
    );
    let text = chain(&err);
    assert_eq!(
        text.matches("invalid requirement `x y`").count(),
        1,
        "{text}"
    );
}
