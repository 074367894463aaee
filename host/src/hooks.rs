//! Typed PEP 517 / PEP 660 hook calls over the guest protocol (see `guest/hook_runner.py`).
//!
//! One call of [`call_hooks`] is one fresh sandbox instance with its own scratch folders;
//! several hooks can share it so the backend is imported once. Everything read back from
//! the guest is untrusted: `output.json` is size-capped, opened without following links,
//! and checked against the calls that were asked for.

use crate::prepared::{self, PreparedBackends};
use crate::sandbox::{GuestRun, LimitHit, Limits, LogSink, Mount, Sandbox, SandboxError};
use anyhow::{Context, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The runner, embedded so that the host never reads it from anywhere a guest could write.
pub const HOOK_RUNNER: &str = include_str!("../../guest/hook_runner.py");

/// Guest paths of the mount table (see `docs/architecture.md`).
pub mod guest_paths {
    pub const SOURCE: &str = "/src";
    pub const OUT: &str = "/out";
    pub const TMP: &str = "/tmp";
    pub const IO: &str = "/wasm-build/io";
    pub const RUNNER: &str = "/wasm-build/runner";
    pub const ENV: &str = "/wasm-build/env";
}

/// Largest `output.json` the host reads.
const MAX_OUTPUT_JSON: u64 = 4 << 20;

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

    /// The hook's keyword arguments: output folders are the guest's `/out`.
    fn kwargs(self, config_settings: &Value) -> Value {
        let settings = config_settings.clone();
        match self {
            Hook::GetRequiresForBuildSdist
            | Hook::GetRequiresForBuildWheel
            | Hook::GetRequiresForBuildEditable => json!({ "config_settings": settings }),
            Hook::PrepareMetadataForBuildWheel | Hook::PrepareMetadataForBuildEditable => {
                json!({ "metadata_directory": guest_paths::OUT, "config_settings": settings })
            }
            Hook::BuildSdist => {
                json!({ "sdist_directory": guest_paths::OUT, "config_settings": settings })
            }
            Hook::BuildWheel | Hook::BuildEditable => json!({
                "wheel_directory": guest_paths::OUT,
                "config_settings": settings,
                "metadata_directory": null,
            }),
        }
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

/// What the guest gets besides the hook calls.
#[derive(Clone)]
pub struct HookContext<'a> {
    pub sandbox: &'a Sandbox,
    /// `module:object`.
    pub backend: &'a str,
    /// Relative to the source root, checked by the project reader.
    pub backend_path: &'a [String],
    /// The scratch copy of the source tree.
    pub source: &'a Path,
    /// Where the guest sees the source tree (normally `/src`).
    pub source_guest: &'a str,
    /// The build environment's site-packages.
    pub site_packages: &'a Path,
    /// Files of the source tree that had an executable bit on the host (relative paths).
    pub executables: &'a [String],
    /// `-C` settings as a JSON object.
    pub config_settings: &'a Value,
    /// The guest's whole environment.
    pub env: &'a [(String, String)],
    pub limits: &'a Limits,
    pub log: LogSink,
    /// Where the per-run scratch folders are made.
    pub scratch: &'a Path,
    /// Where hook runs find the backend already imported (see [`crate::prepared`]), and
    /// the build environment's cache key; `None` imports it in every run.
    pub prepared: Option<(&'a PreparedBackends, &'a str)>,
}

/// What a sequence of hook calls returned.
#[derive(Debug)]
pub struct HookResults {
    /// Return values of the calls that ran, in order.
    pub values: Vec<(Hook, Value)>,
    /// A `get_requires_*` call returned requirements outside its `stop_unless_within`.
    pub stopped_for_requirements: bool,
    /// What the backend printed.
    pub log: Vec<u8>,
    run: tempfile::TempDir,
}

impl HookResults {
    /// The host side of the guest's `/out` for this run.
    pub fn out_dir(&self) -> PathBuf {
        self.run.path().join("out")
    }

    /// The return value of `hook`, if it ran.
    pub fn value(&self, hook: Hook) -> Option<&Value> {
        self.values.iter().find(|(h, _)| *h == hook).map(|(_, v)| v)
    }
}

/// A hook call that failed, with what the backend printed.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct HookError {
    pub hook: Hook,
    pub kind: HookErrorKind,
    pub log: Vec<u8>,
}

/// Why a hook call failed. Backend failures and sandbox failures are kept apart.
#[derive(Debug, thiserror::Error)]
pub enum HookErrorKind {
    #[error("build backend `{backend}` is not available: {message}")]
    BackendUnavailable {
        backend: String,
        message: String,
        traceback: Option<String>,
    },
    #[error("build backend `{backend}` is invalid: {message}")]
    BackendInvalid { backend: String, message: String },
    #[error("build backend `{backend}` has no `{hook}` hook")]
    HookMissing { backend: String, hook: Hook },
    #[error("build backend `{backend}` does not support `{hook}` for this project")]
    Unsupported {
        backend: String,
        hook: Hook,
        traceback: Option<String>,
    },
    #[error("hook `{hook}` of build backend `{backend}` failed: {message}")]
    Raised {
        backend: String,
        hook: Hook,
        message: String,
        traceback: Option<String>,
    },
    #[error("hook `{hook}` was stopped by the sandbox: {source}")]
    Sandbox { hook: Hook, source: SandboxError },
    #[error("hook `{hook}` ended without a result (the interpreter exited with code {code})")]
    NoResult { hook: Hook, code: i32 },
    #[error("hook `{hook}` returned a malformed result: {reason}")]
    BadResult { hook: Hook, reason: String },
}

impl HookErrorKind {
    /// The guest's traceback, when the backend raised.
    pub fn traceback(&self) -> Option<&str> {
        match self {
            HookErrorKind::BackendUnavailable { traceback, .. }
            | HookErrorKind::Unsupported { traceback, .. }
            | HookErrorKind::Raised { traceback, .. } => traceback.as_deref(),
            _ => None,
        }
    }

    /// Whether the sandbox (not the backend) ended the call.
    pub fn is_sandbox_failure(&self) -> bool {
        matches!(self, HookErrorKind::Sandbox { .. })
    }
}

/// Runs `calls` in order in one fresh sandbox instance.
pub fn call_hooks(ctx: &HookContext<'_>, calls: &[HookCall]) -> Result<HookResults, HookError> {
    let first = first_hook(calls);
    let fail = |kind: HookErrorKind, log: Vec<u8>| HookError {
        hook: first,
        kind,
        log,
    };
    let setup = |e: anyhow::Error| {
        fail(
            HookErrorKind::Sandbox {
                hook: first,
                source: SandboxError::Setup(e),
            },
            Vec::new(),
        )
    };

    let run = prepare_run(ctx, calls).map_err(setup)?;
    let guest = GuestRun {
        args: vec![
            "-S".into(),
            format!("{}/hook_runner.py", guest_paths::RUNNER),
        ],
        env: ctx.env.to_vec(),
        mounts: runner_mounts(ctx.source, ctx.source_guest, run.path(), ctx.site_packages),
        limits: ctx.limits.clone(),
        log: ctx.log,
    };
    // Without an image the run imports the backend itself, as it always could.
    let image = prepared_image(ctx, &guest).unwrap_or_else(|error| {
        eprintln!("warning: importing the build backend afresh: {error:#}");
        None
    });
    let exit = match &image {
        Some(image) => ctx.sandbox.run_from(&guest, image),
        None => ctx.sandbox.run(&guest),
    };
    let exit = exit.map_err(|source| {
        let log = source.log().to_vec();
        let hook = running_hook(&run.path().join("io/running"), calls);
        HookError {
            hook,
            kind: HookErrorKind::Sandbox { hook, source },
            log,
        }
    })?;

    let memory_refused = exit.memory_refused;
    let outcome = match read_output(&run.path().join("io/output.json")) {
        Ok(Some(output)) => interpret(ctx.backend, calls, output, exit.log, run),
        Ok(None) => {
            let hook = running_hook(&run.path().join("io/running"), calls);
            Err(HookError {
                hook,
                kind: HookErrorKind::NoResult {
                    hook,
                    code: exit.code,
                },
                log: exit.log,
            })
        }
        Err(reason) => Err(fail(
            HookErrorKind::BadResult {
                hook: first,
                reason: format!("{reason:#}"),
            },
            exit.log,
        )),
    };
    // A run that failed after the sandbox refused it memory failed for want of memory,
    // whatever the backend made of the `MemoryError` (the runner reports it as the hook
    // raising; a backend may catch it and fail otherwise).
    outcome.map_err(|error| {
        if !memory_refused || error.kind.is_sandbox_failure() {
            return error;
        }
        HookError {
            kind: HookErrorKind::Sandbox {
                hook: error.hook,
                source: SandboxError::Limit {
                    hit: LimitHit::Memory,
                    limits: Box::new(ctx.limits.clone()),
                    log: Vec::new(),
                },
            },
            ..error
        }
    })
}

/// The hook the runner said it was running when the run ended without a result; the first
/// hook when it said nothing usable (the guest wrote the file: only names of `calls` count).
fn running_hook(path: &Path, calls: &[HookCall]) -> Hook {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = String::new();
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|file| file.take(64).read_to_string(&mut name));
    calls
        .iter()
        .map(|call| call.hook)
        .find(|hook| read.is_ok() && hook.name() == name.trim())
        .unwrap_or_else(|| first_hook(calls))
}

/// The memory image the run starts from, when the backend can be prepared (an environment
/// backend, the source at `/src`, a sandbox that keeps prepared instances).
fn prepared_image(
    ctx: &HookContext<'_>,
    guest: &GuestRun,
) -> Result<Option<crate::sandbox::MemoryImage>> {
    let Some((backends, env_key)) = ctx.prepared else {
        return Ok(None);
    };
    if !ctx.backend_path.is_empty() || ctx.source_guest != guest_paths::SOURCE {
        return Ok(None);
    }
    backends.image(&prepared::Wanted {
        sandbox: ctx.sandbox,
        env_key,
        site_packages: ctx.site_packages,
        backend: ctx.backend,
        run: guest,
        scratch: ctx.scratch,
    })
}

fn prepare_run(ctx: &HookContext<'_>, calls: &[HookCall]) -> Result<tempfile::TempDir> {
    let run = tempfile::Builder::new()
        .prefix("hook-")
        .tempdir_in(ctx.scratch)
        .context("creating the hook's scratch folder")?;
    make_runner_dirs(run.path())?;
    let backend_path: Vec<String> = ctx
        .backend_path
        .iter()
        .map(|p| guest_join(ctx.source_guest, p))
        .collect();
    let input = json!({
        "backend": ctx.backend,
        "backend_path": backend_path,
        "source_dir": ctx.source_guest,
        "env_dir": guest_paths::ENV,
        "executables": ctx.executables,
        "calls": calls.iter().map(|call| json!({
            "hook": call.hook.name(),
            "kwargs": call.hook.kwargs(ctx.config_settings),
            "stop_unless_within": call.stop_unless_within,
        })).collect::<Vec<_>>(),
    });
    write_input(run.path(), &input)?;
    Ok(run)
}

/// The folders of one runner instance under `run` (`out`, `tmp`, `io`, `runner`), with the
/// runner written afresh, so that no guest can leave a changed runner behind.
pub(crate) fn make_runner_dirs(run: &Path) -> Result<()> {
    for dir in ["out", "tmp", "io", "runner"] {
        std::fs::create_dir(run.join(dir))
            .with_context(|| format!("creating {}", run.join(dir).display()))?;
    }
    std::fs::write(run.join("runner/hook_runner.py"), HOOK_RUNNER)
        .context("writing the hook runner")
}

/// The mount table of a runner instance whose folders are under `run`.
pub(crate) fn runner_mounts(
    source: &Path,
    source_guest: &str,
    run: &Path,
    site_packages: &Path,
) -> Vec<Mount> {
    vec![
        Mount::read_write(source, source_guest),
        Mount::read_write(run.join("out"), guest_paths::OUT),
        Mount::read_write(run.join("tmp"), guest_paths::TMP),
        Mount::read_write(run.join("io"), guest_paths::IO),
        Mount::read_only(run.join("runner"), guest_paths::RUNNER),
        Mount::read_only(site_packages, guest_paths::ENV),
    ]
}

/// Writes the runner's `input.json` into `run`'s `io` folder.
pub(crate) fn write_input(run: &Path, input: &Value) -> Result<()> {
    std::fs::write(
        run.join("io/input.json"),
        serde_json::to_vec(input).context("encoding the hook input")?,
    )
    .context("writing the hook input")
}

fn guest_join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else {
        format!("{}/{rel}", base.trim_end_matches('/'))
    }
}

#[derive(Debug, Deserialize)]
struct Output {
    results: Vec<CallResult>,
    stopped_for_requirements: bool,
}

#[derive(Debug, Deserialize)]
struct CallResult {
    hook: String,
    status: String,
    #[serde(default)]
    return_value: Value,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    traceback: Option<String>,
}

/// `None` when the guest wrote no output at all.
fn read_output(path: &Path) -> Result<Option<Output>> {
    read_json(path)
}

/// A JSON file the guest wrote (opened without following links, size-capped); `None` when
/// it wrote none.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("opening output.json (is it a symlink?)"),
    };
    let meta = file.metadata().context("reading output.json")?;
    anyhow::ensure!(meta.is_file(), "output.json is not a regular file");
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUT_JSON + 1)
        .read_to_end(&mut bytes)
        .context("reading output.json")?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_OUTPUT_JSON,
        "output.json is larger than {MAX_OUTPUT_JSON} bytes"
    );
    Ok(Some(
        serde_json::from_slice(&bytes).context("output.json is not the runner's format")?,
    ))
}

fn interpret(
    backend: &str,
    calls: &[HookCall],
    output: Output,
    log: Vec<u8>,
    run: tempfile::TempDir,
) -> Result<HookResults, HookError> {
    let mut values = Vec::new();
    for (index, result) in output.results.into_iter().enumerate() {
        let Some(call) = calls.get(index) else {
            return Err(bad(
                first_hook(calls),
                "more results than calls".into(),
                log,
            ));
        };
        let hook = call.hook;
        if result.hook != hook.name() {
            return Err(bad(
                hook,
                format!("result for `{}` where `{hook}` was called", result.hook),
                log,
            ));
        }
        let message = result.message.unwrap_or_default();
        let backend = backend.to_string();
        let kind = match result.status.as_str() {
            "ok" => {
                let value = check_return_value(hook, result.return_value)
                    .map_err(|reason| bad(hook, reason, Vec::new()));
                match value {
                    Ok(value) => {
                        values.push((hook, value));
                        continue;
                    }
                    Err(mut e) => {
                        e.log = log;
                        return Err(e);
                    }
                }
            }
            "backend_unavailable" => HookErrorKind::BackendUnavailable {
                backend,
                message,
                traceback: result.traceback,
            },
            "backend_invalid" => HookErrorKind::BackendInvalid { backend, message },
            "hook_missing" => HookErrorKind::HookMissing { backend, hook },
            "unsupported" => HookErrorKind::Unsupported {
                backend,
                hook,
                traceback: result.traceback,
            },
            "exception" => HookErrorKind::Raised {
                backend,
                hook,
                message,
                traceback: result.traceback,
            },
            other => {
                return Err(bad(hook, format!("unknown status `{other}`"), log));
            }
        };
        return Err(HookError { hook, kind, log });
    }
    let stopped = output.stopped_for_requirements;
    let consistent = if stopped {
        // Stopping early is only legitimate right after a get_requires_* call that asked
        // for it.
        values
            .len()
            .checked_sub(1)
            .is_some_and(|last| calls[last].stop_unless_within.is_some())
    } else {
        values.len() == calls.len()
    };
    if !consistent {
        let hook = calls
            .get(values.len())
            .map_or(first_hook(calls), |c| c.hook);
        return Err(bad(
            hook,
            "the runner stopped before this hook without a reason".into(),
            log,
        ));
    }
    Ok(HookResults {
        values,
        stopped_for_requirements: stopped,
        log,
        run,
    })
}

fn first_hook(calls: &[HookCall]) -> Hook {
    calls.first().map_or(Hook::BuildWheel, |c| c.hook)
}

fn bad(hook: Hook, reason: String, log: Vec<u8>) -> HookError {
    HookError {
        hook,
        kind: HookErrorKind::BadResult { hook, reason },
        log,
    }
}

/// Checks the type PEP 517 gives each hook's return value.
fn check_return_value(hook: Hook, value: Value) -> Result<Value, String> {
    match hook {
        Hook::GetRequiresForBuildSdist
        | Hook::GetRequiresForBuildWheel
        | Hook::GetRequiresForBuildEditable => {
            let ok = value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string));
            if ok {
                Ok(value)
            } else {
                Err(format!("expected a list of strings, got {}", short(&value)))
            }
        }
        _ => match value.as_str() {
            Some(name) if !name.is_empty() => Ok(value),
            _ => Err(format!(
                "expected a file or folder name, got {}",
                short(&value)
            )),
        },
    }
}

fn short(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_type_checked() {
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!(["a"])).is_ok());
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!("a")).is_err());
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!([1])).is_err());
        assert!(check_return_value(Hook::BuildWheel, json!("x.whl")).is_ok());
        assert!(check_return_value(Hook::BuildWheel, json!("")).is_err());
        assert!(check_return_value(Hook::BuildSdist, json!(null)).is_err());
    }

    #[test]
    fn output_json_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.json"), "{}").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.json"), dir.path().join("output.json"))
            .unwrap();
        assert!(read_output(&dir.path().join("output.json")).is_err());
        assert!(
            read_output(&dir.path().join("missing.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn runner_is_embedded() {
        assert!(HOOK_RUNNER.contains("def main()"));
    }
}
