//! Why a build failed, in classes that each have their own exit code, and the hint that
//! goes with each (the CLI names the flags).

use crate::hooks::HookError;
use crate::protocol::ProcessAttempt;
use crate::sandbox::{LimitHit, SandboxError};
use std::error::Error;
use wasm_build_packaging::archive::ArchiveError;
use wasm_build_packaging::index::{Hint as IndexHint, IndexError};
use wasm_build_packaging::limits::LimitExceeded;
use wasm_build_packaging::pyproject::ProjectError;
use wasm_build_packaging::resolve::ResolveError;
use wasm_build_packaging::verify::{ArtifactError, ArtifactRule};

use super::plan::PlanError;

/// A build that failed. Backend failures, sandbox failures and refusals are kept apart,
/// each with its own exit code. Messages state their own fact; the cause is the error's
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{what} was refused")]
    Input {
        what: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot install the build requirements of {what}")]
    Requirements {
        what: String,
        #[source]
        source: anyhow::Error,
    },
    #[error(transparent)]
    Hook(Box<HookError>),
    /// A sandbox run that is not a hook call (bytecode compilation of an environment,
    /// `runtime run`) was stopped.
    #[error("{what} was stopped by the sandbox")]
    Stopped {
        what: String,
        #[source]
        source: SandboxError,
    },
    #[error("the backend's {what} was refused")]
    ArtifactRefused {
        what: String,
        #[source]
        source: Box<Refusal>,
    },
    /// The project compiles native code: the backend tried to start a compiler, or a thread
    /// while building an extension, or it made a wheel tagged for the sandbox's platform.
    #[error(
        "this project compiles native code{}; wasm-build builds pure-Python wheels only",
        extension.as_ref().map(|e| format!(" (the extension {e})")).unwrap_or_default()
    )]
    NativeCode {
        /// The extension module, or the first source file given to the compiler.
        extension: Option<String>,
        /// The `KEY=VALUE` the project documents for a pure-Python build.
        switch: Option<String>,
        #[source]
        source: Box<BuildError>,
    },
    /// A git checkout whose `git` commands the sandbox could not answer exactly: the
    /// version or file list would not be git's.
    #[error("cannot build {what} faithfully from its git checkout")]
    GitCheckout {
        what: String,
        #[source]
        source: super::git::GitUnanswered,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<HookError> for BuildError {
    fn from(error: HookError) -> Self {
        BuildError::Hook(Box::new(error))
    }
}

/// Why an artifact the backend made was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Verification(#[from] ArtifactError),
    #[error("it is a {what} of {found}, but the sdist `{sdist}` is {expected}")]
    OtherProject {
        what: &'static str,
        /// `name version` of what was built.
        found: String,
        sdist: String,
        /// `name version` of the sdist.
        expected: String,
    },
    #[error(
        "it is tagged for the platform {platforms} (the sandbox's own): the project builds \
         native extensions, and wasm-build only builds pure-Python wheels"
    )]
    Platform { platforms: String },
}

/// What the user can do about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// A limit ended the build: raising it may let the build finish.
    RaiseLimit(Limit),
    /// The backend tried to start these programs or threads (described as
    /// [`ProcessAttempt::describe`] does), which the sandbox does not have.
    NoProcesses(Vec<String>),
    /// Reaching the package index failed in a way the user can work around.
    Index(IndexHint),
    /// The project documents this `KEY=VALUE` environment variable for a build without its
    /// extensions.
    PureFallback(String),
    /// A git checkout's version cannot be found in the sandbox: it can be given.
    PretendVersion,
    /// The backend failed after the sandbox's git emulation refused this command.
    GitUnanswered { command: String, why: String },
}

/// The limits a user can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Time,
    Memory,
    Log,
    Disk,
    Artifact,
}

impl From<LimitHit> for Limit {
    fn from(hit: LimitHit) -> Self {
        match hit {
            LimitHit::WallTime => Limit::Time,
            LimitHit::Memory => Limit::Memory,
            LimitHit::Log => Limit::Log,
            LimitHit::Disk => Limit::Disk,
        }
    }
}

impl BuildError {
    /// The sdist `name` was refused while reading it: what is not an sdist at all is not
    /// called one.
    pub(crate) fn sdist_refused(name: &str, source: ArchiveError) -> Self {
        BuildError::Input {
            what: if matches!(source, ArchiveError::Format { .. }) {
                name.to_string()
            } else {
                format!("the sdist {name}")
            },
            source: source.into(),
        }
    }

    /// The process exit code for this failure (see `docs/cli.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Other(_) => 1,
            BuildError::Plan(_) => 2,
            BuildError::Project(_) | BuildError::Input { .. } | BuildError::GitCheckout { .. } => 3,
            BuildError::Requirements { .. } => 4,
            BuildError::Hook(e) if e.kind.is_sandbox_failure() => 6,
            BuildError::Stopped {
                source: SandboxError::Setup(_),
                ..
            } => 1,
            BuildError::Stopped { .. } => 6,
            BuildError::Hook(_) => 5,
            BuildError::ArtifactRefused { .. } => 7,
            BuildError::NativeCode { .. } => 8,
        }
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            BuildError::NativeCode { switch, source, .. } => match switch {
                Some(switch) => Some(Hint::PureFallback(switch.clone())),
                None => source.hint(),
            },
            BuildError::Hook(error) => {
                if let Some(hit) = error.kind.limit() {
                    Some(Hint::RaiseLimit(hit.into()))
                } else if let Some(command) = &error.git_refused {
                    Some(Hint::GitUnanswered {
                        command: command.describe(),
                        why: command.refused.clone().unwrap_or_default(),
                    })
                } else if !error.processes.is_empty() {
                    Some(Hint::NoProcesses(
                        error
                            .processes
                            .iter()
                            .map(ProcessAttempt::describe)
                            .collect(),
                    ))
                } else {
                    None
                }
            }
            BuildError::Requirements { source, .. } | BuildError::Other(source) => {
                index_hint(source.as_ref())
            }
            BuildError::Stopped {
                source: SandboxError::Limit { hit, .. },
                ..
            } => Some(Hint::RaiseLimit((*hit).into())),
            BuildError::GitCheckout { .. } => Some(Hint::PretendVersion),
            BuildError::ArtifactRefused { source, .. } => {
                let Refusal::Verification(error) = source.as_ref() else {
                    return None;
                };
                let limit = match &error.rule {
                    ArtifactRule::Limit(limit)
                    | ArtifactRule::Archive(ArchiveError::Limit(limit)) => limit,
                    _ => return None,
                };
                match limit {
                    LimitExceeded::ArtifactBytes { .. } | LimitExceeded::UnpackedBytes { .. } => {
                        Some(Hint::RaiseLimit(Limit::Artifact))
                    }
                    LimitExceeded::Time => Some(Hint::RaiseLimit(Limit::Time)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl BuildError {
    /// The failed hook call behind this error, if one is: its output and traceback are
    /// worth showing (a project that compiles native code failed in a hook too).
    pub fn hook_error(&self) -> Option<&HookError> {
        match self {
            BuildError::Hook(error) => Some(error),
            BuildError::NativeCode { source, .. } => source.hook_error(),
            _ => None,
        }
    }

    /// How the resolver came to fail, when it did: longer than a message, for those who ask.
    pub fn resolver_derivation(&self) -> Option<&str> {
        match self {
            BuildError::Requirements { source, .. } => {
                find_in_chain::<ResolveError>(source.as_ref())?.derivation()
            }
            _ => None,
        }
    }
}

/// The hint of an index or resolver failure anywhere in `error`'s chain (provisioning a
/// runtime reaches the index too).
pub fn index_hint(error: &(dyn Error + 'static)) -> Option<Hint> {
    let hint = find_in_chain::<ResolveError>(error)
        .and_then(ResolveError::hint)
        .or_else(|| find_in_chain::<IndexError>(error).and_then(IndexError::hint))?;
    Some(Hint::Index(hint))
}

/// The first error of type `T` in `error`'s chain, `error` included.
fn find_in_chain<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// An error and its causes on one line, `headline: cause: cause`, for logs that keep one
/// line per event.
pub(crate) fn one_line(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
