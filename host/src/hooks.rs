//! Typed PEP 517 / PEP 660 hook calls over the guest protocol ([`crate::protocol`]).
//!
//! One call of [`call_hooks`] is one fresh sandbox instance with its own scratch folders;
//! several hooks can share it so the backend is imported once. Everything read back from
//! the guest is untrusted and checked against the calls that were asked for.

use crate::backend_bytecode::{self, StepBytecode};
use crate::prepared::{PreparedBackends, Wanted};
use crate::protocol::{
    Action, BackendWarning, BytecodeReport, CallOutcome, CallsResponse, GIT_LIB, GitCommand,
    GitRequest, Hook, HookCall, ProcessAttempt, Request, RunDirs, git_dir, guest_join, guest_paths,
};
use crate::reporter::{Event, HookRun, PreparedUse, Reporter, Warning};
use crate::sandbox::{
    Determinism, GuestRun, LimitHit, Limits, LogSink, MemoryImage, RunStats, Sandbox, SandboxError,
};
use anyhow::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasm_build_packaging::backend_sources;
use wasm_build_packaging::target::GuestMarkers;

mod error;

pub use self::error::{HookError, HookErrorKind};

/// What the guest gets besides the hook calls.
#[derive(Clone)]
pub(crate) struct HookContext<'a> {
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
    /// A git checkout's repository (a copy of its `.git`) and the site-packages of the
    /// guest's git emulation (dulwich): mounted read-only, `git` is answered from them.
    pub git: Option<(&'a Path, &'a Path)>,
    /// Files of the source tree that had an executable bit on the host (relative paths).
    pub executables: &'a [String],
    /// The in-tree backend's bytecode for this step (see [`crate::backend_bytecode`]).
    pub bytecode: Option<&'a StepBytecode>,
    /// `-C` settings as a JSON object.
    pub config_settings: &'a Value,
    /// The guest's marker environment (what the build environment is resolved for).
    pub markers: &'a GuestMarkers,
    /// The guest's whole environment.
    pub env: &'a [(String, String)],
    pub limits: &'a Limits,
    pub log: LogSink,
    /// Where the per-run scratch folders are made.
    pub scratch: &'a Path,
    /// Where a prepare run's folders are made (`--scratch-dir`; `None`: the temporary
    /// folder): never the build's scratch folder, which may be in memory and whose bound
    /// counts one run's folders beside the tree (docs/security.md, Limits).
    pub prepare_dir: Option<&'a Path>,
    /// Where hook runs find the backend already imported (see [`crate::prepared`]), and
    /// the build environment's cache key; `None` imports it in every run.
    pub prepared: Option<(&'a PreparedBackends, &'a str)>,
    /// Seeds the guest's randomness (hex); `None`: fresh randomness.
    pub seed: Option<&'a str>,
    /// A deterministic build's clock and base seed: each run gets the epoch and a seed
    /// derived from the base and its hooks, for WASI's randomness and the runner's.
    pub determinism: Option<Determinism>,
    pub reporter: &'a dyn Reporter,
}

/// What a sequence of hook calls returned.
#[derive(Debug)]
pub(crate) struct HookResults {
    /// Return values of the calls that ran, in order.
    pub values: Vec<(Hook, Value)>,
    /// A `get_requires_*` call returned requirements outside its `stop_unless_within`.
    pub stopped_for_requirements: bool,
    /// The programs and threads the backend tried to start (it was told they do not exist).
    pub processes: Vec<ProcessAttempt>,
    /// The Python warnings the backend showed, each once.
    pub warnings: Vec<BackendWarning>,
    /// The `git` commands the emulation answered, in order.
    pub git: Vec<GitCommand>,
    /// What the in-tree backend's import did with its bytecode (guest-reported).
    pub bytecode: BytecodeReport,
    run: RunDirs,
}

impl HookResults {
    /// The host side of the guest's `/out` for this run.
    pub fn out_dir(&self) -> PathBuf {
        self.run.out()
    }

    /// The return value of `hook`, if it ran.
    pub fn value(&self, hook: Hook) -> Option<&Value> {
        self.values.iter().find(|(h, _)| *h == hook).map(|(_, v)| v)
    }
}

/// Runs `calls` in order in one fresh sandbox instance.
pub(crate) fn call_hooks(
    ctx: &HookContext<'_>,
    calls: &[HookCall],
) -> Result<HookResults, HookError> {
    let first = first_hook(calls);
    let hooks: Vec<Hook> = calls.iter().map(|call| call.hook).collect();
    ctx.reporter.report(&Event::HooksStarted { hooks: &hooks });
    let started = Instant::now();
    let mut notes = RunNotes::default();
    // A prepared backend whose import assumed a path absent that this project has: the
    // calls are made again with the backend imported afresh.
    let result = match run_calls(ctx, calls, first, true, &mut notes) {
        Ok(None) => run_calls(ctx, calls, first, false, &mut notes).and_then(|results| {
            results.ok_or_else(|| {
                bad(
                    first,
                    "a prepared-backend mismatch in a run without one".into(),
                    Vec::new(),
                )
            })
        }),
        other => other.map(|results| results.expect("only a prepared run mismatches")),
    };
    let elapsed = started.elapsed();
    let ok = result.is_ok();
    ctx.reporter.report(&Event::HooksFinished {
        hooks: &hooks,
        elapsed,
        ok,
    });
    ctx.reporter.report(&Event::HookRun(&HookRun {
        hooks,
        wall_time: elapsed,
        ok,
        stats: notes.stats,
        output_bytes: notes.output_bytes,
        prepared: notes.prepared,
    }));
    result
}

/// What the runs of one [`call_hooks`] found out, for its [`HookRun`] event.
#[derive(Default)]
struct RunNotes {
    /// The last sandbox run's, when it ended without the sandbox stopping it.
    stats: Option<RunStats>,
    output_bytes: u64,
    prepared: PreparedUse,
}

/// One sandbox run of `calls`, from the prepared backend when `prepared` and there is one.
/// `Ok(None)`: the prepared backend does not fit this project (run again without).
fn run_calls(
    ctx: &HookContext<'_>,
    calls: &[HookCall],
    first: Hook,
    prepared: bool,
    notes: &mut RunNotes,
) -> Result<Option<HookResults>, HookError> {
    let setup = |e: anyhow::Error| HookError {
        hook: first,
        kind: Box::new(HookErrorKind::Sandbox {
            hook: first,
            source: SandboxError::Setup(e),
        }),
        log: Vec::new(),
        processes: Vec::new(),
        git_refused: None,
    };
    let run = RunDirs::new(ctx.scratch, "hook-").map_err(setup)?;
    let determinism = ctx.determinism.map(|base| per_run(base, calls));
    let seed = determinism.map(|d| wasm_build_packaging::cache::hex(&d.seed));
    run.write_request(&Request {
        backend: ctx.backend,
        backend_path: ctx
            .backend_path
            .iter()
            .map(|p| guest_join(ctx.source_guest, p))
            .collect(),
        source_dir: ctx.source_guest,
        env_dir: guest_paths::ENV,
        executables: ctx.executables,
        seed: seed.or_else(|| ctx.seed.map(str::to_string)),
        git: ctx.git.map(|_| GitRequest {
            lib: GIT_LIB,
            repo: git_dir(ctx.source_guest),
        }),
        bytecode: ctx.bytecode.map(|_| backend_bytecode::GUEST_DIR),
        action: Action::calls(calls, ctx.config_settings, ctx.markers),
    })
    .map_err(setup)?;
    let mut mounts = run.mounts(ctx.source, ctx.source_guest, ctx.site_packages, ctx.git);
    mounts.extend(ctx.bytecode.map(StepBytecode::mount));
    let guest = GuestRun {
        args: RunDirs::args(),
        env: ctx.env.to_vec(),
        mounts,
        limits: ctx.limits.clone(),
        log: ctx.log.clone(),
        determinism,
    };
    // Without an image the run imports the backend itself, as it always could.
    let image = if prepared {
        prepared_image(ctx, &guest)
    } else {
        Ok(Err(match &notes.prepared {
            PreparedUse::NotUsed(why) => why.clone(),
            PreparedUse::Used => "the backend is imported afresh".into(),
        }))
    };
    let image = image.unwrap_or_else(|error| {
        let why = format!("{error:#}");
        ctx.reporter
            .report(&Event::Warning(&Warning::BackendNotPrepared(why.clone())));
        Err(why)
    });
    notes.prepared = match &image {
        Ok(_) => PreparedUse::Used,
        Err(why) => PreparedUse::NotUsed(why.clone()),
    };
    let image = image.ok();
    let exit = match &image {
        Some(image) => ctx.sandbox.run_from(&guest, image),
        None => ctx.sandbox.run(&guest),
    };
    let exit = exit.map_err(|source| {
        let log = source.log().to_vec();
        notes.stats = None;
        notes.output_bytes = log.len() as u64;
        let hook = run.running_hook(calls).unwrap_or(first);
        HookError {
            hook,
            kind: Box::new(HookErrorKind::Sandbox { hook, source }),
            log,
            processes: Vec::new(),
            git_refused: None,
        }
    })?;

    let memory_refused = exit.memory_refused;
    notes.stats = Some(exit.stats);
    notes.output_bytes = exit.log.len() as u64;
    let outcome = match run.read_response::<CallsResponse>() {
        Ok(Some(response)) if image.is_some() && is_mismatch(&response) => {
            notes.prepared = PreparedUse::NotUsed(format!(
                "the prepared backend does not fit this project: {}",
                mismatch_message(&response)
            ));
            return Ok(None);
        }
        Ok(Some(response)) => interpret(ctx.backend, calls, response, exit.log, run),
        Ok(None) => {
            let hook = run.running_hook(calls).unwrap_or(first);
            Err(HookError {
                hook,
                kind: Box::new(HookErrorKind::NoResult {
                    hook,
                    code: exit.code,
                }),
                log: exit.log,
                processes: Vec::new(),
                git_refused: None,
            })
        }
        Err(reason) => Err(bad(first, format!("{reason:#}"), exit.log)),
    };
    // A run that failed after the sandbox refused it memory failed for want of memory,
    // whatever the backend made of the `MemoryError` (the runner reports it as the hook
    // raising; a backend may catch it and fail otherwise).
    outcome.map(Some).map_err(|error| {
        if !memory_refused || error.kind.is_sandbox_failure() {
            return error;
        }
        HookError {
            kind: Box::new(HookErrorKind::Sandbox {
                hook: error.hook,
                source: SandboxError::Limit {
                    hit: LimitHit::Memory,
                    limits: Box::new(ctx.limits.clone()),
                    log: Vec::new(),
                },
            }),
            ..error
        }
    })
}

/// A run's determinism: the build's epoch, and a seed of the build's seed and the run's
/// hooks (so that each run's randomness is its own, whatever image it starts from).
fn per_run(base: Determinism, calls: &[HookCall]) -> Determinism {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(base.seed);
    for call in calls {
        hasher.update(b"\0");
        hasher.update(call.hook.name().as_bytes());
    }
    Determinism {
        epoch: base.epoch,
        seed: hasher.finalize().into(),
    }
}

/// Whether the runner said the prepared backend does not fit this project.
fn is_mismatch(response: &CallsResponse) -> bool {
    matches!(
        response.results.first().map(|r| &r.outcome),
        Some(CallOutcome::PreparedMismatch { .. })
    )
}

/// What the runner said about a prepared backend that does not fit.
fn mismatch_message(response: &CallsResponse) -> String {
    match response.results.first().map(|r| &r.outcome) {
        Some(CallOutcome::PreparedMismatch { message }) => message.clone(),
        _ => String::new(),
    }
}

/// The memory image the run starts from, when the backend can be prepared (an environment
/// backend, the source at `/src`, a sandbox that keeps prepared instances); else why not.
fn prepared_image(ctx: &HookContext<'_>, guest: &GuestRun) -> Result<Result<MemoryImage, String>> {
    let Some((backends, env_key)) = ctx.prepared else {
        return Ok(Err("prepared backends are turned off".into()));
    };
    if !ctx.backend_path.is_empty() {
        return Ok(Err(
            "an in-tree backend (backend-path) is never prepared".into()
        ));
    }
    if ctx.source_guest != guest_paths::SOURCE {
        return Ok(Err(
            "an editable build mounts the source at its own path".into()
        ));
    }
    if ctx.git.is_some() {
        // The prepare run mounts no repository: keep the mount tables alike.
        return Ok(Err("a git checkout's repository is mounted".into()));
    }
    backends.image(&Wanted {
        sandbox: ctx.sandbox,
        env_key,
        site_packages: ctx.site_packages,
        backend: ctx.backend,
        run: guest,
        scratch_dir: ctx.prepare_dir,
    })
}

fn interpret(
    backend: &str,
    calls: &[HookCall],
    response: CallsResponse,
    log: Vec<u8>,
    run: RunDirs,
) -> Result<HookResults, HookError> {
    let mut values = Vec::new();
    let processes = response.processes;
    let git = response.git;
    let mut bytecode = response.bytecode;
    bytecode.compiled.truncate(backend_sources::MAX_SOURCES);
    let git_refused = git
        .iter()
        .find(|c| c.refused.is_some())
        .map(|c| Box::new(c.clone()));
    let warnings: Vec<BackendWarning> = response
        .warnings
        .into_iter()
        .take(BackendWarning::MAX)
        .map(BackendWarning::bounded)
        .collect();
    let bad = |hook, reason, log| HookError {
        processes: processes.clone(),
        git_refused: git_refused.clone(),
        ..bad(hook, reason, log)
    };
    for (index, result) in response.results.into_iter().enumerate() {
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
        let backend = backend.to_string();
        let kind = match result.outcome {
            CallOutcome::Ok { return_value } => match check_return_value(hook, return_value) {
                Ok(value) => {
                    values.push((hook, value));
                    continue;
                }
                Err(reason) => return Err(bad(hook, reason, log)),
            },
            CallOutcome::BackendUnavailable { message, traceback } => {
                HookErrorKind::BackendUnavailable {
                    backend,
                    message,
                    traceback,
                }
            }
            CallOutcome::BackendInvalid { message } => {
                HookErrorKind::BackendInvalid { backend, message }
            }
            CallOutcome::HookMissing => HookErrorKind::HookMissing { backend, hook },
            CallOutcome::Unsupported { traceback, .. } => HookErrorKind::Unsupported {
                backend,
                hook,
                traceback,
            },
            CallOutcome::Exception { message, traceback } => HookErrorKind::Raised {
                backend,
                hook,
                message,
                traceback,
            },
            CallOutcome::PreparedMismatch { message } => HookErrorKind::BadResult {
                hook,
                reason: format!("a prepared-backend mismatch where none was used: {message}"),
            },
        };
        return Err(HookError {
            hook,
            kind: Box::new(kind),
            log,
            processes,
            git_refused,
        });
    }
    let stopped = response.stopped_for_requirements;
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
        processes,
        warnings,
        git,
        bytecode,
        run,
    })
}

fn first_hook(calls: &[HookCall]) -> Hook {
    calls.first().map_or(Hook::BuildWheel, |c| c.hook)
}

fn bad(hook: Hook, reason: String, log: Vec<u8>) -> HookError {
    HookError {
        hook,
        kind: Box::new(HookErrorKind::BadResult { hook, reason }),
        log,
        processes: Vec::new(),
        git_refused: None,
    }
}

/// Checks the type PEP 517 gives each hook's return value.
fn check_return_value(hook: Hook, value: Value) -> Result<Value, String> {
    if hook.is_get_requires() {
        let ok = value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
        return if ok {
            Ok(value)
        } else {
            Err(format!("expected a list of strings, got {}", short(&value)))
        };
    }
    match value.as_str() {
        Some(name) if !name.is_empty() => Ok(value),
        _ => Err(format!(
            "expected a file or folder name, got {}",
            short(&value)
        )),
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
    use serde_json::json;

    #[test]
    fn return_values_are_type_checked() {
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!(["a"])).is_ok());
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!("a")).is_err());
        assert!(check_return_value(Hook::GetRequiresForBuildWheel, json!([1])).is_err());
        assert!(check_return_value(Hook::BuildWheel, json!("x.whl")).is_ok());
        assert!(check_return_value(Hook::BuildWheel, json!("")).is_err());
        assert!(check_return_value(Hook::BuildSdist, json!(null)).is_err());
    }
}
