//! What a build tells whoever runs it. The library never prints: it reports [`Event`]s to a
//! [`Reporter`], and the caller decides what to show (the CLI's terminal reporter with its
//! spinner and `-v`/`-q`, a JSON report, a service's log).
//!
//! Events carry text from the build's strangers (file names of the source tree, the
//! backend's output, its messages). A reporter that shows them on a terminal must make them
//! inert first.

use crate::frontend::Distribution;
use crate::protocol::{BackendWarning, Hook};
use std::fmt;
use std::time::Duration;
use wasm_build_packaging::archive::{NamedBy, StageWarning};

/// Receives the events of builds. Called from the threads that run them.
pub trait Reporter: Send + Sync {
    /// Something happened.
    fn report(&self, event: &Event<'_>);

    /// Whether the backend's output should be streamed as [`Event::BackendOutput`] while it
    /// runs (otherwise it is only kept, and shown with a failure).
    fn wants_backend_output(&self) -> bool {
        false
    }
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: &Event<'_>) {}
}

/// One thing that happened during a build.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A step that can take seconds started; [`Event::StepFinished`] follows.
    StepStarted(Step),
    StepFinished(Step),
    /// A distribution of a project starts to be built.
    BuildStarted {
        dist: Distribution,
        /// The user's path or the sdist's file name.
        project: &'a str,
        /// `module:object`.
        backend: &'a str,
        /// The guest's Python version.
        python: &'a str,
    },
    /// A build environment is ready: `name==version` of each wheel.
    EnvironmentReady {
        contents: &'a [String],
    },
    /// A sandbox run calling these hooks started.
    HooksStarted {
        hooks: &'a [Hook],
    },
    /// That run ended, successfully or not.
    HooksFinished {
        hooks: &'a [Hook],
        elapsed: Duration,
        ok: bool,
    },
    /// An artifact was built and verified (not yet published).
    ArtifactBuilt {
        name: &'a str,
    },
    /// Something the user should know that did not stop the build.
    Warning(&'a Warning),
    /// Bytes the backend wrote to stdout or stderr, as they come (only when
    /// [`Reporter::wants_backend_output`]).
    BackendOutput(&'a [u8]),
    /// `wasm-build worker`: a job finished, Redis was lost, the worker started or stopped.
    Worker(&'a crate::worker::WorkerEvent),
}

/// The steps that can take seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Provisioning the runtime and compiling or loading the interpreter.
    PreparingInterpreter,
    /// Resolving build requirements.
    Resolving,
    /// Installing a build environment.
    PreparingEnvironment,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::PreparingInterpreter => "Preparing the interpreter",
            Step::Resolving => "Resolving build requirements",
            Step::PreparingEnvironment => "Preparing the build environment",
        })
    }
}

/// Something that did not stop the build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Part of the source tree was left out of the scratch copy.
    Staging(StageWarning),
    /// The backend is imported in every hook run, because no prepared one could be used.
    BackendNotPrepared(String),
    /// A cached build environment was changed on disk and is made again.
    EnvironmentChanged { path: String, why: String },
    /// A cached runtime was changed on disk and is unpacked again.
    RuntimeChanged { path: String, why: String },
    /// A scratch folder could not be removed.
    ScratchLeft { path: String, error: String },
    /// The backend tried to run a compiler (described) and built the artifact without it:
    /// optional compiled parts (speedups) are missing.
    BuiltWithoutCompiler { artifact: String, tried: String },
    /// An sdist whose file name does not say `{name}-{version}`: the project was found
    /// elsewhere.
    RenamedSdist {
        file: String,
        /// `name version`.
        project: String,
        named_by: NamedBy,
    },
    /// A choice of the resolver worth knowing (a pre-release, a yanked file, a hash the
    /// index did not give, files left out by `--exclude-newer`).
    Resolution(String),
    /// A Python warning the backend showed (a deprecation of setuptools), reported once
    /// per frontend however many hook runs, and places in the backend, show it.
    Backend(BackendWarning),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Staging(warning) => warning.fmt(f),
            Warning::BackendNotPrepared(why) => {
                write!(f, "importing the build backend afresh: {why}")
            }
            Warning::EnvironmentChanged { path, why } => write!(
                f,
                "cached build environment {path} was changed ({why}); making it again"
            ),
            Warning::RuntimeChanged { path, why } => {
                write!(
                    f,
                    "cached runtime {path} was changed ({why}); unpacking it again"
                )
            }
            Warning::ScratchLeft { path, error } => {
                write!(f, "could not remove the scratch folder {path}: {error}")
            }
            Warning::Resolution(note) => f.write_str(note),
            Warning::RenamedSdist {
                file,
                project,
                named_by,
            } => {
                let by = match named_by {
                    NamedBy::TopLevelFolder => "its top-level folder",
                    NamedBy::PkgInfo => "its PKG-INFO",
                    _ => "its file name",
                };
                write!(
                    f,
                    "{file} is not named `{{name}}-{{version}}.tar.gz`; {by} says it is {project}"
                )
            }
            Warning::Backend(warning) => write!(
                f,
                "the backend warned ({} at {}, in {}): {}",
                warning.category,
                warning.short_location(),
                warning.hook,
                warning.message.trim()
            ),
            Warning::BuiltWithoutCompiler { artifact, tried } => write!(
                f,
                "the backend tried to run a compiler ({tried}), which the sandbox does not \
                 have, and built {artifact} without it: the compiled parts it makes where a \
                 compiler exists (optional speedups) are missing; wasm-build builds pure-Python \
                 wheels only"
            ),
        }
    }
}
