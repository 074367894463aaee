//! The host side of the host–guest protocol: the hook runner, the guest paths of the mount
//! table, the folders of one runner instance, and the typed messages exchanged through
//! `/wasm-build/io` (see `guest/hook_runner.py` and docs/architecture.md).
//!
//! Everything read back from the guest is untrusted: files are opened without following
//! links, size-capped, and parsed into closed types; a status the runner does not define is a
//! malformed result, not a string to match later.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use wasm_build_packaging::target::GuestMarkers;

/// The runner, embedded so that the host never reads it from anywhere a guest could write.
pub(crate) const HOOK_RUNNER: &str = include_str!("../../guest/hook_runner.py");

/// Guest paths of the mount table (see `docs/architecture.md`).
pub(crate) mod guest_paths {
    /// The source tree (the working directory).
    pub(crate) const SOURCE: &str = "/src";
    /// The hook's output folder.
    pub(crate) const OUT: &str = "/out";
    /// The temp folder (`TMPDIR`, `HOME` below it).
    pub(crate) const TMP: &str = "/tmp";
    /// The protocol's files.
    pub(crate) const IO: &str = "/wasm-build/io";
    /// The hook runner.
    pub(crate) const RUNNER: &str = "/wasm-build/runner";
    /// The build environment's site-packages.
    pub(crate) const ENV: &str = "/wasm-build/env";
    /// The interpreter's prefix (its stdlib), when mounted.
    pub(crate) const PREFIX: &str = "/usr/local";

    /// Guest folders a project mounted at its own path (editable builds) must not overlap.
    pub(crate) const RESERVED: [&str; 4] = [OUT, SOURCE, "/wasm-build", PREFIX];
}

/// The hooks of PEP 517 and PEP 660.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    GetRequiresForBuildSdist,
    GetRequiresForBuildWheel,
    GetRequiresForBuildEditable,
    PrepareMetadataForBuildWheel,
    PrepareMetadataForBuildEditable,
    BuildSdist,
    BuildWheel,
    BuildEditable,
}

impl Hook {
    /// The hook's Python name.
    pub fn name(self) -> &'static str {
        match self {
            Hook::GetRequiresForBuildSdist => "get_requires_for_build_sdist",
            Hook::GetRequiresForBuildWheel => "get_requires_for_build_wheel",
            Hook::GetRequiresForBuildEditable => "get_requires_for_build_editable",
            Hook::PrepareMetadataForBuildWheel => "prepare_metadata_for_build_wheel",
            Hook::PrepareMetadataForBuildEditable => "prepare_metadata_for_build_editable",
            Hook::BuildSdist => "build_sdist",
            Hook::BuildWheel => "build_wheel",
            Hook::BuildEditable => "build_editable",
        }
    }

    /// Whether this is a `get_requires_for_build_*` hook (its value is a list of
    /// requirements, not a file name).
    pub(crate) fn is_get_requires(self) -> bool {
        matches!(
            self,
            Hook::GetRequiresForBuildSdist
                | Hook::GetRequiresForBuildWheel
                | Hook::GetRequiresForBuildEditable
        )
    }

    /// The hook's arguments by PEP 517 name: output folders are the guest's `/out`.
    fn kwargs(self, config_settings: &Value) -> Value {
        let mut args = serde_json::Map::new();
        let out = Value::String(guest_paths::OUT.to_string());
        match self {
            Hook::GetRequiresForBuildSdist
            | Hook::GetRequiresForBuildWheel
            | Hook::GetRequiresForBuildEditable => {}
            Hook::PrepareMetadataForBuildWheel | Hook::PrepareMetadataForBuildEditable => {
                args.insert("metadata_directory".into(), out);
            }
            Hook::BuildSdist => {
                args.insert("sdist_directory".into(), out);
            }
            Hook::BuildWheel | Hook::BuildEditable => {
                args.insert("wheel_directory".into(), out);
                args.insert("metadata_directory".into(), Value::Null);
            }
        }
        args.insert("config_settings".into(), config_settings.clone());
        Value::Object(args)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One hook to call.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub hook: Hook,
    /// For `get_requires_*`: continue with the next call only if every requirement the
    /// backend returns is one of these strings (already installed). `None`: always continue.
    pub stop_unless_within: Option<Vec<String>>,
}

impl HookCall {
    /// A hook whose result never stops the run.
    pub fn run(hook: Hook) -> Self {
        Self {
            hook,
            stop_unless_within: None,
        }
    }

    /// The calls of one build step in one instance: `get_requires`, then `build` unless the
    /// backend asked for requirements outside `installed`.
    pub fn build_step(get_requires: Hook, build: Hook, installed: &[String]) -> [HookCall; 2] {
        [
            HookCall {
                hook: get_requires,
                stop_unless_within: Some(installed.to_vec()),
            },
            HookCall::run(build),
        ]
    }
}

/// What the runner is asked to do (`input.json`).
#[derive(Debug, Serialize)]
pub(crate) struct Request<'a> {
    /// `module:object`.
    pub backend: &'a str,
    /// Guest paths of `backend-path`.
    pub backend_path: Vec<String>,
    /// Where the guest sees the source tree; the runner's working directory.
    pub source_dir: &'a str,
    pub env_dir: &'static str,
    /// Files of the source tree that had an executable bit on the host (relative paths).
    pub executables: &'a [String],
    /// Seeds the guest's randomness in hook runs (hex); `None`: fresh randomness each run.
    pub seed: Option<String>,
    /// A git repository mounted for the emulation; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitRequest>,
    /// Where the in-tree backend's bytecode is mounted; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytecode: Option<&'a str>,
    #[serde(flatten)]
    pub action: Action<'a>,
}

/// Call hooks, or only import the backend to keep the instance (a prepare run).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Action<'a> {
    Calls {
        calls: Vec<CallRequest>,
        /// The guest's marker environment, as the host resolves with: a `get_requires_*`
        /// answer whose markers are false in it needs nothing installed, so no new run.
        markers: &'a GuestMarkers,
    },
    Prepare(Prepare),
}

/// The hooks of a run, in order.
#[derive(Debug, Serialize)]
pub(crate) struct CallRequest {
    hook: &'static str,
    kwargs: Value,
    stop_unless_within: Option<Vec<String>>,
}

/// A prepare run: `{"prepare": true, "open_fds": N}`.
#[derive(Debug, Serialize)]
pub(crate) struct Prepare {
    prepare: bool,
    /// How many descriptors the instance starts with; any more after the import is a file
    /// the backend left open.
    open_fds: usize,
}

impl<'a> Action<'a> {
    /// `calls` with the hooks' arguments and `config_settings`, for a guest whose marker
    /// environment is `markers`.
    pub(crate) fn calls(
        calls: &[HookCall],
        config_settings: &Value,
        markers: &'a GuestMarkers,
    ) -> Self {
        Action::Calls {
            markers,
            calls: calls
                .iter()
                .map(|call| CallRequest {
                    hook: call.hook.name(),
                    kwargs: call.hook.kwargs(config_settings),
                    stop_unless_within: call.stop_unless_within.clone(),
                })
                .collect(),
        }
    }

    /// A prepare run of an instance that starts with `open_fds` descriptors.
    pub(crate) fn prepare(open_fds: usize) -> Self {
        Action::Prepare(Prepare {
            prepare: true,
            open_fds,
        })
    }
}

/// What the runner answers to [`Action::Calls`] (`output.json`).
#[derive(Debug, Deserialize)]
pub(crate) struct CallsResponse {
    pub results: Vec<CallResult>,
    pub stopped_for_requirements: bool,
    /// Every attempt to start a program or a thread, in order (the runner keeps 64).
    #[serde(default)]
    pub processes: Vec<ProcessAttempt>,
    /// The Python warnings the backend showed, each once (the runner keeps 32).
    #[serde(default)]
    pub warnings: Vec<BackendWarning>,
    /// The `git` commands the emulation answered (the runner keeps 64).
    #[serde(default)]
    pub git: Vec<GitCommand>,
    /// What the in-tree backend's import did with the bytecode offered.
    #[serde(default)]
    pub bytecode: BytecodeReport,
}

/// The runner's account of an in-tree backend's bytecode (guest-written: it only chooses
/// among the files the host listed which to compile next, and what `-vv` shows).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BytecodeReport {
    /// Modules imported from the bytecode offered.
    #[serde(default)]
    pub used: u64,
    /// Paths of modules below backend-path compiled from source (the runner keeps 2,000).
    #[serde(default)]
    pub compiled: Vec<String>,
}

/// A Python warning the backend showed (`warnings.warn` let through its filters), as the
/// runner recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct BackendWarning {
    /// The hook running, or `import`.
    pub hook: String,
    /// The warning's class, e.g. `SetuptoolsDeprecationWarning`.
    pub category: String,
    pub message: String,
    /// `file:line` in the guest.
    pub location: String,
}

impl BackendWarning {
    /// At most this many are kept of one run, whatever the guest wrote.
    pub(crate) const MAX: usize = 32;

    /// The warning with its fields cut to what the runner promises (the guest may have
    /// rewritten the runner): 300 characters, the message 2000.
    pub(crate) fn bounded(self) -> Self {
        let cut = |text: String, max: usize| match text.char_indices().nth(max) {
            Some((end, _)) => text[..end].to_string(),
            None => text,
        };
        Self {
            hook: cut(self.hook, 300),
            category: cut(self.category, 300),
            message: cut(self.message, 2000),
            location: cut(self.location, 300),
        }
    }

    /// Where the warning was raised, the build environment's folder left out.
    pub fn short_location(&self) -> &str {
        self.location
            .strip_prefix(guest_paths::ENV)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(&self.location)
    }
}

/// An attempt of the backend to start a program or a thread, which the sandbox has not:
/// the backend saw what a machine without the program shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProcessAttempt {
    /// The hook running, or `import` for the backend's import.
    pub hook: String,
    pub how: ProcessKind,
    /// The command line (cut by the runner: 16 items of 200 characters); empty for `fork`
    /// and `thread`.
    pub argv: Vec<String>,
}

/// How the backend tried to start something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    Subprocess,
    System,
    Popen,
    PosixSpawn,
    Exec,
    Spawn,
    /// `os.fork`, or a `multiprocessing` process or pool.
    Fork,
    Thread,
}

impl ProcessAttempt {
    /// The program's command line as a user would type it, or what was started.
    pub fn describe(&self) -> String {
        match self.how {
            ProcessKind::Thread => "a thread".to_string(),
            ProcessKind::Fork if self.argv.is_empty() => "a process (fork)".to_string(),
            _ => format!("`{}`", self.argv.join(" ")),
        }
    }

    /// Whether this started (or tried to start) a C, C++ or Rust compiler or build tool.
    pub fn is_compiler(&self) -> bool {
        let Some(program) = self.argv.first() else {
            return false;
        };
        let name = program.rsplit('/').next().unwrap_or(program);
        // `x86_64-linux-gnu-gcc-12`, `clang++`, `cc`: the last `-`-part without a version.
        let tool = name
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
            .rsplit('-')
            .next()
            .unwrap_or(name);
        matches!(
            tool,
            "cc" | "c++"
                | "gcc"
                | "g++"
                | "clang"
                | "clang++"
                | "cl"
                | "icc"
                | "ld"
                | "rustc"
                | "cargo"
                | "cmake"
                | "ninja"
                | "meson"
                | "make"
                | "gfortran"
                | "nvcc"
                | "zig"
        )
    }
}

/// The result of one hook call.
#[derive(Debug, Deserialize)]
pub(crate) struct CallResult {
    /// The hook's name as the runner wrote it (checked against the call by the caller).
    pub hook: String,
    #[serde(flatten)]
    pub outcome: CallOutcome,
}

/// How one hook call ended, by the runner's `status`.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum CallOutcome {
    Ok {
        #[serde(default)]
        return_value: Value,
    },
    BackendUnavailable {
        #[serde(default)]
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    },
    BackendInvalid {
        #[serde(default)]
        message: String,
    },
    HookMissing,
    Unsupported {
        #[serde(default)]
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    },
    Exception {
        #[serde(default)]
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    },
    /// A run from a prepared backend found the project has a path the import assumed
    /// absent: the calls must be made again with the backend imported afresh.
    PreparedMismatch {
        #[serde(default)]
        message: String,
    },
}

/// What the runner answers to [`Action::Prepare`]: `{"prepared": true}`, or anything else,
/// which says why the backend was not kept.
#[derive(Debug, Deserialize)]
pub(crate) struct PrepareResponse {
    #[serde(default)]
    pub prepared: bool,
    /// Why not, when the runner says.
    #[serde(default)]
    pub reason: Option<String>,
    /// A failure reported the way hook runs report them (the import failed).
    #[serde(default)]
    pub results: Vec<CallResult>,
}

impl PrepareResponse {
    /// Why the backend was not prepared, as the runner put it.
    pub(crate) fn refusal(&self) -> String {
        if let Some(reason) = &self.reason {
            return reason.clone();
        }
        match self.results.first().map(|r| &r.outcome) {
            Some(
                CallOutcome::BackendUnavailable { message, .. }
                | CallOutcome::BackendInvalid { message }
                | CallOutcome::Unsupported { message, .. }
                | CallOutcome::Exception { message, .. }
                | CallOutcome::PreparedMismatch { message },
            ) => message.clone(),
            _ => "the runner gave no reason".into(),
        }
    }
}

/// `rel` (a `/`-separated path relative to the project) where the guest sees it.
pub(crate) fn guest_join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else {
        format!("{}/{rel}", base.trim_end_matches('/'))
    }
}

mod git;
mod run_dirs;

pub use self::git::GitCommand;
pub(crate) use self::git::{GIT_EMULATION, GIT_LIB, GitRequest};
#[cfg(test)]
use self::run_dirs::{MAX_IO_FILE, read_json};
pub(crate) use self::run_dirs::{RunDirs, git_dir, read_guest_file};

#[cfg(test)]
mod tests;
