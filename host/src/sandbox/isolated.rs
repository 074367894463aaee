//! Guest runs in a child process ([`super::Isolation::Process`]).
//!
//! The guest's code then carries no interruption checks (epoch instrumentation costs it
//! 7–14 %): the parent keeps every limit from outside and ends a run by killing the child,
//! which also reaches a guest asleep in a host call. The child is this same program started
//! with the arguments the caller gave; it reads one [`ChildJob`] on stdin, loads the compiled
//! module the parent chose (from the parent's checked cache), runs the guest with its
//! output forwarded to stdout as written, and reports a [`ChildOutcome`] on stderr.
//!
//! The parent trusts nothing from the child but the outcome's shape: the guest cannot reach
//! the child's stdout or stderr except through WASI writes, which go to stdout only.

use super::{
    EngineKind, Guest, GuestExit, GuestRun, LimitHit, Limits, Mount, SandboxError, WasmContext,
    log, watch,
};
use crate::runtime::Stdlib;
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use wasmtime::Module;

/// How often the parent looks at the disk limit while the child runs.
const POLL: Duration = Duration::from_millis(50);
/// What the parent keeps of the child's stderr (the outcome, or a panic message).
const STDERR_LIMIT: u64 = 64 << 10;

/// One guest run, as the parent hands it to the child.
#[derive(Serialize, Deserialize)]
struct ChildJob {
    /// The compiled module, in the parent's cache (checked by the parent before handing it).
    module: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    stdlib: Option<Stdlib>,
    root: PathBuf,
    memory: u64,
}

/// How the guest ended, as the child reports it.
#[derive(Serialize, Deserialize)]
enum ChildOutcome {
    Exited { code: i32, memory_refused: bool },
    MemoryLimit,
    Trap(String),
    Setup(String),
}

/// Runs `run` in a child process `program args...` and keeps its limits from here.
pub(super) fn run(
    program: &Path,
    program_args: &[String],
    module: &Path,
    stdlib: Option<&Stdlib>,
    root: &Path,
    run: &GuestRun,
) -> Result<GuestExit, SandboxError> {
    let job = ChildJob {
        module: module.to_path_buf(),
        args: run.args.clone(),
        env: run.env.clone(),
        mounts: run.mounts.clone(),
        stdlib: stdlib.cloned(),
        root: root.to_path_buf(),
        memory: run.limits.memory,
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(program_args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the guest process {}", program.display()))?;
    let stdin = child
        .stdin
        .take()
        .context("the guest process has no stdin")?;
    let stdout = child
        .stdout
        .take()
        .context("the guest process has no stdout")?;
    let stderr = child
        .stderr
        .take()
        .context("the guest process has no stderr")?;
    // Written from a thread: a child that dies early must not leave this one blocked.
    std::thread::spawn(move || {
        let mut stdin = stdin;
        let _ = serde_json::to_writer(&mut stdin, &job);
    });

    let capture = log::Capture::new(run.limits.log, run.log);
    let (events, received) = mpsc::channel();
    let reader_capture = capture.clone();
    let reader = std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !reader_capture.append(&buffer[..n]) {
                        let _ = events.send(Event::LogFull);
                        break;
                    }
                }
            }
        }
        let _ = events.send(Event::Closed);
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(STDERR_LIMIT).read_to_string(&mut text);
        text
    });

    let deadline = started + run.limits.wall_time;
    let mut disk = watch::DiskWatch::new(
        run.mounts
            .iter()
            .filter(|m| m.writable)
            .map(|m| m.host.clone())
            .collect(),
        run.limits.disk,
    );
    let hit = loop {
        let now = Instant::now();
        if now >= deadline {
            break Some(LimitHit::WallTime);
        }
        match received.recv_timeout(POLL.min(deadline - now)) {
            Ok(Event::Closed) => break None,
            Ok(Event::LogFull) => break Some(LimitHit::Log),
            Err(RecvTimeoutError::Timeout) => {
                if disk.over_limit() {
                    break Some(LimitHit::Disk);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break None,
        }
    };
    if let Some(hit) = hit {
        end(&mut child);
        let _ = reader.join();
        return Err(SandboxError::Limit {
            hit,
            limits: Box::new(run.limits.clone()),
            log: capture.take().bytes,
        });
    }
    let status = child.wait().context("waiting for the guest process")?;
    let _ = reader.join();
    let elapsed = started.elapsed();
    let report = errors.join().unwrap_or_default();
    let log = capture.take().bytes;
    let outcome = report
        .lines()
        .last()
        .and_then(|line| serde_json::from_str::<ChildOutcome>(line).ok());
    match outcome {
        Some(ChildOutcome::Exited {
            code,
            memory_refused,
        }) => {
            if memory_refused && code != 0 {
                return Err(SandboxError::Limit {
                    hit: LimitHit::Memory,
                    limits: Box::new(run.limits.clone()),
                    log,
                });
            }
            Ok(GuestExit {
                code,
                log,
                elapsed,
                memory_refused,
            })
        }
        Some(ChildOutcome::MemoryLimit) => Err(SandboxError::Limit {
            hit: LimitHit::Memory,
            limits: Box::new(run.limits.clone()),
            log,
        }),
        Some(ChildOutcome::Trap(message)) => Err(SandboxError::Trap { message, log }),
        Some(ChildOutcome::Setup(message)) => Err(SandboxError::Setup(anyhow!(message))),
        None => Err(SandboxError::Setup(anyhow!(
            "the guest process {} ended ({status}) without a report{}",
            program.display(),
            if report.trim().is_empty() {
                String::new()
            } else {
                format!(":\n{}", report.trim())
            }
        ))),
    }
}

enum Event {
    Closed,
    LogFull,
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The child's side: reads one job on stdin, runs it, reports on stderr. Call it from the
/// program given to [`super::Isolation::Process`] when started with its arguments.
pub fn serve() -> Result<()> {
    // The child must not outlive a parent that was killed (and can no longer kill it).
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the guest job")?;
    let job: ChildJob = serde_json::from_str(&input).context("reading the guest job")?;
    let outcome = match run_job(&job) {
        Ok(exit) => ChildOutcome::Exited {
            code: exit.code,
            memory_refused: exit.memory_refused,
        },
        Err(SandboxError::Limit {
            hit: LimitHit::Memory,
            ..
        }) => ChildOutcome::MemoryLimit,
        Err(SandboxError::Limit { hit, .. }) => {
            ChildOutcome::Setup(format!("unexpected limit in the guest process: {hit:?}"))
        }
        Err(SandboxError::Trap { message, .. }) => ChildOutcome::Trap(message),
        Err(SandboxError::Setup(error)) => ChildOutcome::Setup(format!("{error:#}")),
    };
    let mut stderr = std::io::stderr().lock();
    writeln!(
        stderr,
        "{}",
        serde_json::to_string(&outcome).context("writing the outcome")?
    )
    .context("writing the outcome")?;
    Ok(())
}

fn run_job(job: &ChildJob) -> Result<GuestExit, SandboxError> {
    let guest = Guest::new(
        EngineKind::Uninterrupted,
        job.stdlib.clone(),
        job.root.clone(),
    )?;
    if !job.module.is_file() {
        return Err(SandboxError::Setup(anyhow!(
            "the compiled module {} is missing",
            job.module.display()
        )));
    }
    // SAFETY: the parent (this same program) wrote this file into its private cache and
    // checked it by sha256 or seal before handing it over; the engine checks the version
    // and settings it was compiled with.
    let module = unsafe { Module::deserialize_file(&guest.engine, &job.module) }
        .wasm_context(format!("loading {}", job.module.display()))?;
    let run = GuestRun {
        args: job.args.clone(),
        env: job.env.clone(),
        mounts: job.mounts.clone(),
        limits: Limits {
            memory: job.memory,
            ..Limits::default()
        },
        log: log::LogSink::Capture,
    };
    guest.run(&run, &module, &log::Capture::forwarding())
}
