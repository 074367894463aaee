//! A project's build system: `[build-system]` of `pyproject.toml` (PEP 517 / PEP 518), with
//! the legacy setuptools fallback for projects that have none.
//!
//! The text is a stranger's: [`BuildSystem::parse`] takes any bytes and is fuzzed
//! (`packaging/fuzz`, target `pyproject`); [`BuildSystem::read`] opens the file without
//! following a link.

use crate::archive::fs::{NotRegular, lstat_at, open_dir_path, open_regular_file};
use pep508_rs::{Requirement, VerbatimUrl};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The backend PEP 517 says to use when a project names none.
pub const LEGACY_BACKEND: &str = "setuptools.build_meta:__legacy__";
/// The requirement PEP 518 says to assume when a project declares no `[build-system]`.
pub const LEGACY_REQUIRES: &str = "setuptools>=40.8.0";
/// Largest `pyproject.toml` read: real ones are a few KiB.
const MAX_PYPROJECT_BYTES: u64 = 4 << 20;

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
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
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
    #[error("{path}: `{field}` has an invalid entry")]
    InvalidRequirement {
        path: PathBuf,
        field: &'static str,
        #[source]
        source: RequirementError,
    },
}

impl ProjectError {
    /// The same error naming `path` as `to` instead (errors about a scratch copy name the
    /// user's file).
    pub fn relabel(self, from: &Path, to: &Path) -> Self {
        let fix = |p: PathBuf| match p.strip_prefix(from) {
            Ok(rel) => to.join(rel),
            Err(_) => p,
        };
        match self {
            ProjectError::NotAProject(p) => ProjectError::NotAProject(fix(p)),
            ProjectError::Read { path, source } => ProjectError::Read {
                path: fix(path),
                source,
            },
            ProjectError::InvalidToml { path, message } => ProjectError::InvalidToml {
                path: fix(path),
                message,
            },
            ProjectError::InvalidField {
                path,
                field,
                problem,
            } => ProjectError::InvalidField {
                path: fix(path),
                field,
                problem,
            },
            ProjectError::InvalidRequirement {
                path,
                field,
                source,
            } => ProjectError::InvalidRequirement {
                path: fix(path),
                field,
                source,
            },
        }
    }
}

/// A build requirement that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RequirementError {
    #[error("invalid requirement `{raw}`")]
    Invalid {
        raw: String,
        #[source]
        source: crate::pep508::Pep508Error,
    },
    #[error(
        "`{raw}` is a direct URL requirement; build requirements must come from a package index"
    )]
    DirectUrl { raw: String },
}

impl BuildSystem {
    /// Reads the build system of the project in `root` (a folder the caller trusts by path;
    /// `pyproject.toml` is opened relative to it, never through a link).
    pub fn read(root: &Path) -> Result<Self, ProjectError> {
        let path = root.join("pyproject.toml");
        let read_error = |source: std::io::Error| ProjectError::Read {
            path: path.clone(),
            source,
        };
        let dir = open_dir_path(root).map_err(|source| ProjectError::Read {
            path: root.to_path_buf(),
            source,
        })?;
        let file = match open_regular_file(&dir, "pyproject.toml") {
            Ok((file, _)) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let setup_py = lstat_at(&dir, "setup.py").is_ok_and(|stat| {
                    rustix::fs::FileType::from_raw_mode(stat.st_mode)
                        == rustix::fs::FileType::RegularFile
                });
                if setup_py {
                    return Ok(Self::legacy());
                }
                return Err(ProjectError::NotAProject(root.to_path_buf()));
            }
            Err(e) if NotRegular::found_in(&e).is_some() || is_link_refusal(&e) => {
                return Err(read_error(std::io::Error::new(
                    e.kind(),
                    "not a regular file (a symlink, folder or special file)",
                )));
            }
            Err(e) => return Err(read_error(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_PYPROJECT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_PYPROJECT_BYTES {
            return Err(ProjectError::InvalidToml {
                path,
                message: format!("larger than {} MiB", MAX_PYPROJECT_BYTES >> 20),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ProjectError::InvalidToml {
            path: path.clone(),
            message: "not UTF-8".into(),
        })?;
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

        let requires = match table.get("requires") {
            None => {
                return Err(invalid(
                    "build-system.requires",
                    "is missing (PEP 518 makes it required when [build-system] is present)".into(),
                ));
            }
            Some(value) => strings(value, "build-system.requires", &invalid)?,
        };
        let requirements = requires
            .iter()
            .map(|raw| {
                parse_requirement(raw).map_err(|source| ProjectError::InvalidRequirement {
                    path: path.to_path_buf(),
                    field: "build-system.requires",
                    source,
                })
            })
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
            Some(value) => strings(value, "build-system.backend-path", &invalid)?
                .iter()
                .map(|s| check_backend_path(s).map_err(|e| invalid("build-system.backend-path", e)))
                .collect::<Result<_, _>>()?,
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

/// A list of strings, or the error saying what `field` holds instead.
fn strings(
    value: &toml::Value,
    field: &'static str,
    invalid: &impl Fn(&'static str, String) -> ProjectError,
) -> Result<Vec<String>, ProjectError> {
    let toml::Value::Array(items) = value else {
        return Err(invalid(
            field,
            format!("must be a list of strings, not {}", value.type_str()),
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(invalid(
                field,
                format!("must hold only strings, found {} {other}", other.type_str()),
            )),
        })
        .collect()
}

fn is_link_refusal(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Parses one PEP 508 build requirement; direct URL requirements are refused, since every
/// build requirement comes from the package index with a checked hash.
pub fn parse_requirement(raw: &str) -> Result<Requirement<VerbatimUrl>, RequirementError> {
    let requirement =
        crate::pep508::requirement(raw).map_err(|source| RequirementError::Invalid {
            raw: raw.to_string(),
            source,
        })?;
    if matches!(
        requirement.version_or_url,
        Some(pep508_rs::VersionOrUrl::Url(_))
    ) {
        return Err(RequirementError::DirectUrl {
            raw: raw.to_string(),
        });
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
mod tests;
