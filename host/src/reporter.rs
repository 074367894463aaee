//! What a build tells whoever runs it. The library never prints: it reports [`Event`]s to a
//! [`Reporter`], and the caller decides what to show (the CLI's terminal reporter with its
//! spinner and `-v`/`-q`, a JSON report, a service's log).
//!
//! Events carry text from the build's strangers (file names of the source tree, the
//! backend's output, its messages). A reporter that shows them on a terminal must make them
//! inert first.

use crate::frontend::Distribution;
use crate::protocol::{BackendWarning, Hook};
use crate::sandbox::RunStats;
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
    /// The interpreter is ready: what each step of getting it ready took, in order (a first
    /// run unpacks and compiles, later runs load from the cache).
    InterpreterReady {
        steps: &'a [(&'static str, Duration)],
    },
    /// A build's scratch folder was made (the guest's trees and outputs live in it), there
    /// for this reason.
    ScratchReady {
        folder: &'a std::path::Path,
        reason: &'a wasm_build_packaging::tempdirs::place::PlaceReason,
    },
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
    /// A build requirement without a usable wheel is built from its sdist (`cached`: its
    /// wheel was built by an earlier run and is taken from the cache).
    RequirementFromSdist {
        /// `name version`.
        requirement: &'a str,
        cached: bool,
    },
    /// Bytes the backend wrote to stdout or stderr, as they come (only when
    /// [`Reporter::wants_backend_output`]).
    BackendOutput(&'a [u8]),
    /// `wasm-build worker`: a job finished, Redis was lost, the worker started or stopped.
    Worker(&'a crate::worker::WorkerEvent),
    /// The source of a build, read before anything runs.
    Source(&'a SourceFacts),
    /// The build requirements a hook run gets, resolved and installed (also when the
    /// environment was made by an earlier build of this process).
    Requirements(&'a [ResolvedRequirement]),
    /// A sandbox run of hooks ended ([`Event::HooksFinished`]): what it used.
    HookRun(&'a HookRun),
    /// An artifact passed verification: its facts, before it is published.
    Artifact(&'a ArtifactFacts),
    /// The wheel's core metadata, for a metadata request.
    Metadata(&'a MetadataAnswer),
    /// What a step of an in-tree backend (`backend-path`) did with bytecode: `Err(why)`
    /// when it had none to offer.
    BackendBytecode(Result<&'a BackendBytecode, &'a str>),
}

/// An in-tree backend's bytecode in one step: what the cache had, what the hook runs took
/// from it, and what was compiled after the step for later builds (a file is compiled the
/// second time a build imports it from source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendBytecode {
    /// `.py` files below `backend-path`.
    pub sources: usize,
    /// Of these, with bytecode in the cache when the step started.
    pub cached: usize,
    /// Modules the step's runs imported from it (as the runner counted them).
    pub imported: u64,
    /// Files compiled after the step, for later builds (an earlier build named them too).
    pub compiled: usize,
    /// What compiling them took.
    pub compile_time: Duration,
    /// Files named for the first time: compiled if a later build names them again.
    pub first_seen: usize,
    /// Why compiling failed, when it did (what it finished is kept).
    pub compile_failure: Option<String>,
}

/// What a build knows of its source before it runs anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFacts {
    /// The user's path (or the sdist's file name).
    pub path: String,
    pub kind: SourceKind,
    /// Of the file, for an sdist or a wheel; a folder has none.
    pub sha256: Option<String>,
    /// The project's name and version, when the source says them (an sdist's file name,
    /// top-level folder or PKG-INFO).
    pub project: Option<(String, String)>,
    /// For a deterministic build: the guest's wall clock at the start of each run (seconds
    /// since the Unix epoch) and what it came from.
    pub clock: Option<(u64, &'static str)>,
}

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Tree,
    Sdist,
    Wheel,
}

impl SourceKind {
    /// The name a report gives it.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Tree => "tree",
            SourceKind::Sdist => "sdist",
            SourceKind::Wheel => "wheel",
        }
    }
}

/// One wheel of a build environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRequirement {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
}

/// One sandbox run of hook calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    pub hooks: Vec<Hook>,
    /// From the first run's start to the last run's end (a run that found the prepared
    /// backend not to fit is run again).
    pub wall_time: Duration,
    pub ok: bool,
    /// What the (last) run used, when it ended without the sandbox stopping it.
    pub stats: Option<RunStats>,
    /// What the backend printed (up to the output limit).
    pub output_bytes: u64,
    pub prepared: PreparedUse,
}

/// Whether a hook run started from the prepared backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedUse {
    Used,
    /// Why not.
    NotUsed(String),
}

impl Default for PreparedUse {
    fn default() -> Self {
        PreparedUse::NotUsed("no run was made".into())
    }
}

/// A verified artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFacts {
    /// Its file (or folder) name.
    pub name: String,
    pub dist: Distribution,
    /// Size and sha256, for a file.
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Its core metadata as JSON (see [`MetadataAnswer::json`]), when it parses.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A project's core metadata as `python -m build --metadata` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataAnswer {
    pub source: MetadataSource,
    /// Why an sdist's PKG-INFO could not be the answer (PEP 643), when a hook gave it.
    pub not_static: Option<String>,
    /// `packaging.metadata.parse_email`'s fields (see
    /// [`wasm_build_packaging::metadata::metadata_json`]).
    pub json: serde_json::Map<String, serde_json::Value>,
}

/// Where a metadata answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// The sdist's PKG-INFO, static by PEP 643: no backend code ran.
    Static,
    /// `prepare_metadata_for_build_wheel` (or, where the backend lacks it, the runner's
    /// PEP 517 fallback of building the wheel).
    Hook,
    /// The wheel given as the source.
    Wheel,
}

impl MetadataSource {
    /// The name a report gives it.
    pub fn name(self) -> &'static str {
        match self {
            MetadataSource::Static => "static",
            MetadataSource::Hook => "prepare_metadata_for_build_wheel",
            MetadataSource::Wheel => "wheel",
        }
    }
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
    /// A cached wheel built from an sdist was changed on disk and is built again.
    SdistWheelChanged { path: String, why: String },
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
    /// A project folder's git repository that is not used, or a backend that asked git
    /// about a folder without one.
    GitCheckout(String),
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
            Warning::SdistWheelChanged { path, why } => write!(
                f,
                "cached wheel {path} built from an sdist was changed ({why}); building it again"
            ),
            Warning::ScratchLeft { path, error } => {
                write!(f, "could not remove the scratch folder {path}: {error}")
            }
            Warning::Resolution(note) | Warning::GitCheckout(note) => f.write_str(note),
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
