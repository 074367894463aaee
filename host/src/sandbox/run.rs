//! What one guest run gets (arguments, environment, mounts, limits) and how it ends.

use super::log::LogSink;
use super::usage::RunStats;
use std::path::PathBuf;
use std::time::Duration;

/// Resource limits of one guest run. Each has a CLI flag (see `docs/cli.md`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time of the run.
    pub wall_time: Duration,
    /// Linear memory of the guest, in bytes.
    pub memory: u64,
    /// Bytes of stdout + stderr kept; writing more ends the run.
    pub log: usize,
    /// Bytes the writable mounts may hold together.
    pub disk: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(600),
            memory: 2 << 30,
            log: 16 << 20,
            disk: 4 << 30,
        }
    }
}

/// A resource limit the guest ran into; it ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    WallTime,
    Memory,
    Log,
    Disk,
}

impl LimitHit {
    /// What the user reads: the limit and its value. (The flag that raises it is the
    /// caller's to name.)
    pub fn describe(self, limits: &Limits) -> String {
        match self {
            LimitHit::WallTime => format!("time limit of {} s reached", limits.wall_time.as_secs()),
            LimitHit::Memory => format!("memory limit of {} MiB reached", limits.memory >> 20),
            LimitHit::Log => format!(
                "output limit of {} MiB reached: the backend printed too much",
                limits.log >> 20
            ),
            LimitHit::Disk => format!(
                "disk limit of {} MiB reached in the sandbox's writable folders",
                limits.disk >> 20
            ),
        }
    }
}

/// One folder of the host made visible to the guest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl Mount {
    pub fn read_only(host: impl Into<PathBuf>, guest: &str) -> Self {
        Self {
            host: host.into(),
            guest: guest.to_string(),
            writable: false,
        }
    }

    pub fn read_write(host: impl Into<PathBuf>, guest: &str) -> Self {
        Self {
            host: host.into(),
            guest: guest.to_string(),
            writable: true,
        }
    }
}

/// Everything one guest run gets.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// `argv`, without the program name.
    pub args: Vec<String>,
    /// The guest's whole environment.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// Where the guest's output goes besides the capture (e.g. the terminal with `-v`).
    pub log: LogSink,
    /// A deterministic clock, randomness and file times ([`Determinism`]); `None`: the
    /// host's.
    pub determinism: Option<super::Determinism>,
}

impl GuestRun {
    /// `python -S -c SCRIPT ARGS...`: a run of the host's own stdlib-only script, in the
    /// hooks' start-up environment (so that the pre-initialized interpreter serves it, and
    /// the interpreter's settings are the hooks'), its output captured.
    pub fn script(script: &str, args: &[&str], mounts: Vec<Mount>, limits: Limits) -> GuestRun {
        GuestRun {
            args: ["-S", "-c", script]
                .iter()
                .chain(args)
                .map(|arg| arg.to_string())
                .collect(),
            env: super::base_environment(),
            mounts,
            limits,
            log: LogSink::Capture,
            determinism: None,
        }
    }
}

/// How a guest run ended, when no limit stopped it.
#[derive(Debug)]
pub struct GuestExit {
    pub code: i32,
    /// stdout and stderr, interleaved as written, up to the log limit.
    pub log: Vec<u8>,
    pub elapsed: Duration,
    /// The guest asked for memory beyond the limit and was refused, yet exited normally:
    /// it saw a `MemoryError`, which code may catch. A caller that finds the run failed
    /// all the same reports the memory limit (see `hooks`).
    pub memory_refused: bool,
    /// What the run used.
    pub stats: RunStats,
}

/// A run that the sandbox itself ended.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{}", .hit.describe(.limits))]
    Limit {
        hit: LimitHit,
        limits: Box<Limits>,
        log: Vec<u8>,
    },
    #[error("the guest crashed: {message}")]
    Trap { message: String, log: Vec<u8> },
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

impl SandboxError {
    /// `run` reached the limit `hit`; `log` is what it printed until then.
    pub(super) fn limit(hit: LimitHit, run: &GuestRun, log: Vec<u8>) -> Self {
        SandboxError::Limit {
            hit,
            limits: Box::new(run.limits.clone()),
            log,
        }
    }

    /// What the guest printed before the run ended.
    pub fn log(&self) -> &[u8] {
        match self {
            SandboxError::Limit { log, .. } | SandboxError::Trap { log, .. } => log,
            SandboxError::Setup(_) => &[],
        }
    }
}

/// How guest runs are kept apart from the host process.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// On a thread of this process. Epoch interruption stops a guest at the time limit,
    /// which costs the guest's code 7–14 %; a guest asleep in a host call past the time
    /// limit keeps its thread until it wakes.
    #[default]
    Thread,
    /// In a child process, `program args...`, which must call [`serve_child`]. The parent
    /// keeps the time and output limits and kills the child at one; the child keeps the
    /// memory and disk limits, which it reports. The guest's code runs uninstrumented.
    Process { program: PathBuf, args: Vec<String> },
}
