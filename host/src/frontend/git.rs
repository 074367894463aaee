//! Building from a git checkout: the source's `.git` is copied (by the same no-follow walk
//! and within the same limits as the source) and mounted read-only at `{source}/.git`, and
//! the guest answers the `git` commands of setuptools-scm, hatch-vcs and the like from it
//! with a pure-Python emulation on dulwich (`guest/git_emulation.py`). dulwich is a build
//! requirement of the emulation's own: resolved, hash-checked and installed like any other,
//! mounted apart from the backend's environment, only when there is a repository.
//!
//! Never a silently wrong version: a command the emulation could not answer exactly ends
//! the build ([`BuildError::GitCheckout`]); a folder without a usable repository whose
//! backend asked git gets a warning.

use super::source::Project;
use super::{BuildError, Frontend};
use crate::env::BuildEnv;
use crate::hooks::HookResults;
use crate::protocol::GitCommand;
use crate::reporter::{Event, Warning};
use std::path::{Path, PathBuf};
use wasm_build_packaging::archive::{self, GitDir, StagedTree};
use wasm_build_packaging::limits::StageLimits;
use wasm_build_packaging::pyproject::parse_requirement;

/// The git emulation's library: a pure-Python implementation of git's formats, pinned so
/// that the emulation's answers do not change under a build.
pub(crate) const DULWICH: &str = "dulwich==1.2.21";

/// Build requirements (normalized names) that take a project's version or file list from
/// git.
const SCM_VERSIONING: &[&str] = &[
    "setuptools-scm",
    "hatch-vcs",
    "versioneer",
    "dunamai",
    "pbr",
    "flit-scm",
    "setuptools-git-versioning",
    "uv-dynamic-versioning",
    "poetry-dynamic-versioning",
    "vcs-versioning",
];

/// Whether a source is a git checkout the guest can read.
#[derive(Debug, Clone)]
pub(crate) enum Checkout {
    /// An sdist: what git would say is in its `PKG-INFO`.
    NotATree,
    /// A project folder without a repository the sandbox can use (why).
    NoRepository(String),
    /// A project folder with its `.git` copied here.
    Repository(PathBuf),
}

/// A `git` command of the build that the emulation could not answer exactly.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox's git emulation cannot answer {command} ({why})")]
pub struct GitUnanswered {
    pub command: String,
    pub why: String,
}

impl Frontend {
    /// Copies the `.git` folder of the project folder `source` into `scratch`, within what
    /// the source's copy (`staged`) left of the staging limits.
    pub(super) fn stage_git(
        &self,
        source: &Path,
        scratch: &Path,
        staged: &StagedTree,
    ) -> Result<Checkout, BuildError> {
        let limits = &self.settings.stage_limits;
        let left = StageLimits {
            max_entries: limits.max_entries.saturating_sub(staged.entries),
            max_bytes: limits.max_bytes.saturating_sub(staged.bytes),
        };
        let dest = scratch.join(format!("git-{}", super::source::unique_suffix()));
        let git =
            archive::stage_git_dir(source, &dest, &left).map_err(|error| BuildError::Input {
                what: format!(
                    "the git repository {} (copied with the source, within the same limits)",
                    source.join(".git").display()
                ),
                source: error.into(),
            })?;
        Ok(match git {
            GitDir::Absent => Checkout::NoRepository("it has no .git folder".into()),
            GitDir::NotFollowed { kind } => {
                let why = format!("its .git is {kind}, which is not followed");
                self.reporter
                    .report(&Event::Warning(&Warning::GitCheckout(format!(
                        "{}/.git is {kind}: not followed (a repository outside the source \
                         is never read); the source counts as having no repository",
                        source.display()
                    ))));
                Checkout::NoRepository(why)
            }
            GitDir::Staged(staged) => {
                for warning in staged.warnings {
                    self.reporter
                        .report(&Event::Warning(&Warning::GitCheckout(format!(
                            "in .git: {warning}"
                        ))));
                }
                Checkout::Repository(dest)
            }
        })
    }

    /// The environment holding dulwich, when `project` has a repository.
    pub(super) fn git_emulation(&self, project: &Project) -> Result<Option<BuildEnv>, BuildError> {
        if !matches!(project.checkout, Checkout::Repository(_)) {
            return Ok(None);
        }
        let requirement = parse_requirement(DULWICH).map_err(|e| BuildError::Other(e.into()))?;
        let label = format!("the git emulation of {}", project.label);
        self.environment(&[requirement], &label).map(Some)
    }

    /// After a build of `project`: a git command the emulation could not answer fails it;
    /// a folder without a repository whose backend asked git gets a warning.
    pub(super) fn check_git(
        &self,
        project: &Project,
        results: &HookResults,
    ) -> Result<(), BuildError> {
        match &project.checkout {
            Checkout::NotATree => Ok(()),
            Checkout::Repository(_) => match results.git.iter().find(|c| c.refused.is_some()) {
                Some(command) => Err(unanswered(project, command)),
                None => Ok(()),
            },
            Checkout::NoRepository(why) => {
                let ran = results.processes.iter().find(|p| {
                    p.argv
                        .first()
                        .is_some_and(|program| program.rsplit('/').next() == Some("git"))
                });
                let asked = match ran {
                    Some(attempt) => Some(format!("the backend ran {}", attempt.describe())),
                    None => project
                        .build_system
                        .requirements
                        .iter()
                        .map(|r| r.name.to_string())
                        .find(|name| SCM_VERSIONING.contains(&name.as_str()))
                        .map(|name| format!("the build requires {name}, which reads git")),
                };
                if let Some(asked) = asked {
                    self.reporter
                        .report(&Event::Warning(&Warning::GitCheckout(format!(
                            "{asked}, but {} has no git repository the sandbox can use \
                             ({why}): a version or file list it takes from git is its fallback \
                             (--env SETUPTOOLS_SCM_PRETEND_VERSION=X.Y.Z gives the version)",
                            project.label
                        ))));
                }
                Ok(())
            }
        }
    }
}

/// The repository copy and dulwich's site-packages of a checkout, for the hooks' mounts.
pub(super) fn mount<'a>(
    project: &'a Project,
    env: Option<&'a BuildEnv>,
) -> Option<(&'a Path, &'a Path)> {
    match (&project.checkout, env) {
        (Checkout::Repository(repository), Some(env)) => {
            Some((repository.as_path(), env.site_packages.as_path()))
        }
        _ => None,
    }
}

fn unanswered(project: &Project, command: &GitCommand) -> BuildError {
    BuildError::GitCheckout {
        what: project.label.clone(),
        source: GitUnanswered {
            command: command.describe(),
            why: command.refused.clone().unwrap_or_default(),
        },
    }
}
