//! A project's build system: `[build-system]` of `pyproject.toml` (PEP 517 / PEP 518), with
//! the legacy setuptools fallback for projects that have none.

use pep508_rs::{Requirement, VerbatimUrl};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// The backend PEP 517 says to use when a project names none.
pub const LEGACY_BACKEND: &str = "setuptools.build_meta:__legacy__";
/// The requirement PEP 518 says to assume when a project declares no `[build-system]`.
pub const LEGACY_REQUIRES: &str = "setuptools>=40.8.0";

/// How a project is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSystem {
    /// `requires`, exactly as written (the runner compares the backend's extra requirements
    /// against these strings).
    pub requires: Vec<String>,
    /// `requires`, parsed.
    pub requirements: Vec<Requirement<VerbatimUrl>>,
    /// `build-backend`: `module` or `module:object`.
    pub backend: String,
    /// `backend-path`, as `/`-separated paths relative to the project root, checked to stay
    /// inside it.
    pub backend_path: Vec<String>,
    /// Where this came from, for messages.
    pub origin: Origin,
}

/// Where a [`BuildSystem`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `[build-system]` of `pyproject.toml`, with `build-backend`.
    Pyproject,
    /// `pyproject.toml` with `requires` but no `build-backend`.
    PyprojectWithoutBackend,
    /// No `pyproject.toml`, or one without `[build-system]`: the legacy setuptools fallback.
    Legacy,
}

/// A project whose build system cannot be used. The message names the file and field.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0} is not a Python project: it has neither pyproject.toml nor setup.py")]
    NotAProject(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    InvalidToml { path: PathBuf, message: String },
    #[error("{path}: `{field}` {problem}")]
    InvalidField {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

impl BuildSystem {
    /// Reads the build system of the project in `root`.
    pub fn read(root: &Path) -> Result<Self, ProjectError> {
        let path = root.join("pyproject.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if root.join("setup.py").is_file() {
                    return Ok(Self::legacy());
                }
                return Err(ProjectError::NotAProject(root.to_path_buf()));
            }
            Err(source) => return Err(ProjectError::Read { path, source }),
        };
        Self::parse(&text, &path)
    }

    /// Parses the text of a `pyproject.toml`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProjectError> {
        let document: toml::Table =
            toml::from_str(text).map_err(|e| ProjectError::InvalidToml {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let invalid = |field: &'static str, problem: String| ProjectError::InvalidField {
            path: path.to_path_buf(),
            field,
            problem,
        };
        let Some(table) = document.get("build-system") else {
            return Ok(Self::legacy());
        };
        let table = table.as_table().ok_or_else(|| {
            invalid(
                "build-system",
                format!("must be a table, not {}", table.type_str()),
            )
        })?;

        let requires: Vec<String> = match table.get("requires") {
            None => {
                return Err(invalid(
                    "build-system.requires",
                    "is missing (PEP 518 makes it required when [build-system] is present)".into(),
                ));
            }
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(invalid(
                        "build-system.requires",
                        format!("must hold only strings, found {} {other}", other.type_str()),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "build-system.requires",
                    format!("must be a list of strings, not {}", other.type_str()),
                ));
            }
        };
        let requirements = requires
            .iter()
            .map(|raw| parse_requirement(raw).map_err(|e| invalid("build-system.requires", e)))
            .collect::<Result<Vec<_>, _>>()?;

        let (backend, origin) = match table.get("build-backend") {
            None => (LEGACY_BACKEND.to_string(), Origin::PyprojectWithoutBackend),
            Some(toml::Value::String(s)) => {
                check_backend_name(s).map_err(|e| invalid("build-system.build-backend", e))?;
                (s.clone(), Origin::Pyproject)
            }
            Some(other) => {
                return Err(invalid(
                    "build-system.build-backend",
                    format!("must be a string, not {}", other.type_str()),
                ));
            }
        };

        let backend_path = match table.get("backend-path") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => {
                        check_backend_path(s).map_err(|e| invalid("build-system.backend-path", e))
                    }
                    other => Err(invalid(
                        "build-system.backend-path",
                        format!("must hold only strings, found {}", other.type_str()),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "build-system.backend-path",
                    format!("must be a list of strings, not {}", other.type_str()),
                ));
            }
        };

        Ok(Self {
            requires,
            requirements,
            backend,
            backend_path,
            origin,
        })
    }

    /// The legacy fallback: setuptools' `__legacy__` backend, which runs `setup.py`.
    pub fn legacy() -> Self {
        Self {
            requires: vec![LEGACY_REQUIRES.to_string()],
            requirements: vec![
                parse_requirement(LEGACY_REQUIRES).expect("the legacy requirement parses"),
            ],
            backend: LEGACY_BACKEND.to_string(),
            backend_path: Vec::new(),
            origin: Origin::Legacy,
        }
    }
}

/// Parses one PEP 508 requirement of `requires`; direct URL requirements are refused, since
/// every build requirement comes from the package index with a checked hash.
pub fn parse_requirement(raw: &str) -> Result<Requirement<VerbatimUrl>, String> {
    let requirement = Requirement::<VerbatimUrl>::from_str(raw)
        .map_err(|e| format!("has an invalid requirement `{raw}`: {e}"))?;
    if requirement
        .version_or_url
        .as_ref()
        .is_some_and(|v| matches!(v, pep508_rs::VersionOrUrl::Url(_)))
    {
        return Err(format!(
            "has the direct URL requirement `{raw}`; build requirements must come from a package index"
        ));
    }
    Ok(requirement)
}

/// `module(.sub)*` optionally followed by `:object(.attr)*`, all Python identifiers.
fn check_backend_name(backend: &str) -> Result<(), String> {
    let (module, object) = match backend.split_once(':') {
        Some((module, object)) => (module, Some(object)),
        None => (backend, None),
    };
    let dotted = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                let mut chars = part.chars();
                chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                    && chars.all(|c| c == '_' || c.is_alphanumeric())
            })
    };
    if dotted(module.trim()) && object.is_none_or(|o| dotted(o.trim())) {
        Ok(())
    } else {
        Err(format!(
            "`{backend}` is not `module` or `module:object` (dotted Python names)"
        ))
    }
}

/// A relative path that stays inside the project, normalized to `/`-separated components.
fn check_backend_path(entry: &str) -> Result<String, String> {
    let path = Path::new(entry);
    if path.is_absolute() {
        return Err(format!(
            "entry `{entry}` must be relative to the project root"
        ));
    }
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("entry `{entry}` points outside the project"));
                }
            }
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part.to_string()),
                None => return Err(format!("entry `{entry}` is not valid UTF-8")),
            },
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "entry `{entry}` must be relative to the project root"
                ));
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
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
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("proj/pyproject.toml"), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
