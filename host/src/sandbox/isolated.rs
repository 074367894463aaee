//! Guest runs in a child process ([`super::Isolation::Process`]).
//!
//! The guest's code then carries no interruption checks (epoch instrumentation costs it
//! 7–14 %): the parent keeps the time and output limits from outside and ends a run by
//! killing the child, which also reaches a guest asleep in a host call. The memory and disk
//! limits are kept by the child, where the guest's allocations and file calls happen, and
//! reported in its outcome. The child is this same program started
//! with the arguments the caller gave; it reads one [`ChildJob`] on stdin, loads the compiled
//! module the parent chose (from the parent's checked cache), runs the guest with its
//! output forwarded to stdout as written, and reports a [`ChildOutcome`] on stderr.
//!
//! Starting a child costs more than the run it serves when that run is short (the engine,
//! the module's code pages, its memory image: ~8 ms), so the parent keeps one child started
//! ahead ([`Workers`]): it loads the module it is told to expect and faults in its code and
//! memory image, then waits for its job; each run takes the ready child and starts the next.
//!
//! The parent trusts nothing from the child but the outcome's shape: the guest cannot reach
//! the child's stdout or stderr except through WASI writes, which go to stdout only.

use super::{
    Determinism, EngineKind, Entry, Guest, GuestExit, GuestRun, InstanceAhead, LimitHit, Limits,
    MemoryImage, Mount, RunStats, SandboxError, WasmContext, log,
};
use crate::runtime::Stdlib;
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;
use wasmtime::Module;

mod child;

pub use self::child::serve;

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
    disk: u64,
    determinism: Option<Determinism>,
    entry: JobEntry,
}

/// [`Entry`] as the child gets it: memory images by path and the fingerprint the parent
/// read them with (the child checks that it reads the same, unchanged file).
#[derive(Serialize, Deserialize)]
enum JobEntry {
    Start { image: Option<ImageRef> },
    Prepare { image: PathBuf },
}

/// A memory image file and the fingerprint of the file the parent checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ImageRef {
    path: PathBuf,
    identity: String,
}

impl ImageRef {
    fn of(image: &MemoryImage) -> Self {
        Self {
            path: image.path.clone(),
            identity: image.identity.clone(),
        }
    }

    /// Reads the image, which must still be the file the parent checked, unchanged.
    fn load(&self) -> Result<MemoryImage> {
        MemoryImage::load_same(&self.path, &self.identity)
    }
}

/// How the guest ended, as the child reports it.
#[derive(Serialize, Deserialize)]
enum ChildOutcome {
    Exited {
        code: i32,
        memory_refused: bool,
        stats: RunStats,
    },
    MemoryLimit,
    DiskLimit,
    Trap(String),
    Setup(String),
}

/// The environment variable naming the compiled module a child loads before its job comes.
const PRELOAD: &str = "WASM_BUILD_GUEST_PRELOAD";
/// The memory image (path, then its fingerprint) a child writes into an instance ahead of
/// its job, when the job is expected to start from one.
const PRELOAD_IMAGE: &str = "WASM_BUILD_GUEST_PRELOAD_IMAGE";
const PRELOAD_IMAGE_IDENTITY: &str = "WASM_BUILD_GUEST_PRELOAD_IMAGE_IDENTITY";

/// The guest processes this process started and has not reaped yet, and whether
/// [`stop_all`] was called. A pid is forgotten before its child is waited for, so a pid
/// listed here cannot have been reused by another process.
struct Live {
    stopped: bool,
    pids: Vec<u32>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    stopped: false,
    pids: Vec::new(),
});

/// Kills every guest process this process runs and refuses to start more: for a process
/// told to stop (a signal), so that no guest outlives it or writes on while its scratch
/// folders are removed. Runs that were under way fail.
pub fn stop_all() {
    let mut live = super::lock(&LIVE);
    live.stopped = true;
    for &pid in &live.pids {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) only sends a signal; the pid is our unreaped child (see `Live`).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Forgets `child` before it is waited for (see [`Live`]).
fn forget(child: &Child) {
    let id = child.id();
    super::lock(&LIVE).pids.retain(|&pid| pid != id);
}

/// A child started ahead, waiting for its job.
struct Worker {
    child: Child,
    /// The module it loaded ahead.
    preloaded: PathBuf,
}

/// Children started ahead of the runs that will need them: one by default, as many as
/// runs may happen at once when the caller says so ([`Workers::keep`]).
pub(super) struct Workers {
    program: PathBuf,
    args: Vec<String>,
    ready: Mutex<Vec<Worker>>,
    /// How many children to keep ready.
    keep: AtomicUsize,
    /// The thread that starts every child (see [`Spawner`]).
    spawner: Spawner,
}

/// Starts children from one thread that lives as long as the [`Workers`]. A child asks to
/// be killed when its parent dies (`PR_SET_PDEATHSIG`), and Linux takes the *thread* that
/// started it for its parent: a child started by a thread that then ends (one of a batch's
/// worker threads) would be killed while it waits for its job.
struct Spawner {
    requests: Mutex<Option<mpsc::Sender<SpawnRequest>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

impl Spawner {
    fn new() -> Self {
        let (requests, received) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("wasm-guest-spawner".into())
            .spawn(move || {
                for (mut command, reply) in received {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok();
        Self {
            requests: Mutex::new(thread.is_some().then_some(requests)),
            thread,
        }
    }

    fn spawn(&self, mut command: Command) -> std::io::Result<Child> {
        let sender = super::lock(&self.requests).clone();
        let Some(sender) = sender else {
            // No thread could be started: this one will have to do.
            return command.spawn();
        };
        let (reply, answer) = mpsc::channel();
        sender
            .send((command, reply))
            .map_err(|_| std::io::Error::other("the guest process spawner is gone"))?;
        answer
            .recv()
            .map_err(|_| std::io::Error::other("the guest process spawner is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        super::lock(&self.requests).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Workers {
    pub(super) fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            program,
            args,
            ready: Mutex::new(Vec::new()),
            keep: AtomicUsize::new(1),
            spawner: Spawner::new(),
        }
    }

    /// Keep `count` children ready (at least one): as many as runs happen at once.
    pub(super) fn keep(&self, count: usize) {
        self.keep.store(count.max(1), Ordering::Relaxed);
    }

    /// Starts a child that loads `module`, and makes an instance of it with `image` written
    /// in, while it waits; unless enough are ready already.
    pub(super) fn prepare(&self, module: &Path, image: Option<&ImageRef>) {
        let mut ready = super::lock(&self.ready);
        if ready.len() < self.keep.load(Ordering::Relaxed)
            && let Ok(worker) = self.spawn(module, image)
        {
            ready.push(worker);
        }
    }

    /// A child for `module`: one started ahead that expects this module, else a new one.
    /// (A child that made an instance with another image ahead makes the one its job needs.)
    fn take(&self, module: &Path) -> Result<Child> {
        let mut ready = super::lock(&self.ready);
        if let Some(at) = ready.iter().position(|w| w.preloaded == module) {
            return Ok(ready.swap_remove(at).child);
        }
        // Children for another module make room for one that is of use.
        if let Some(mut other) = ready.pop() {
            end(&mut other.child);
        }
        drop(ready);
        Ok(self.spawn(module, None)?.child)
    }

    fn spawn(&self, module: &Path, image: Option<&ImageRef>) -> Result<Worker> {
        let mut command = Command::new(&self.program);
        command.args(&self.args).env_clear().env(PRELOAD, module);
        if let Some(image) = image {
            command
                .env(PRELOAD_IMAGE, &image.path)
                .env(PRELOAD_IMAGE_IDENTITY, &image.identity);
        }
        let mut live = super::lock(&LIVE);
        if live.stopped {
            return Err(anyhow!(
                "not starting a guest process: wasm-build is stopping"
            ));
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = self
            .spawner
            .spawn(command)
            .with_context(|| format!("starting the guest process {}", self.program.display()))?;
        live.pids.push(child.id());
        drop(live);
        Ok(Worker {
            child,
            preloaded: module.to_path_buf(),
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for mut worker in super::lock(&self.ready).drain(..) {
            end(&mut worker.child);
        }
    }
}

/// Runs `run` in a child process and keeps its limits from here; starts the next child.
pub(super) fn run(
    workers: &Workers,
    module: &Path,
    stdlib: Option<&Stdlib>,
    root: &Path,
    run: &GuestRun,
    entry: &Entry,
) -> Result<GuestExit, SandboxError> {
    let entry = match entry {
        Entry::Start(image) => JobEntry::Start {
            image: image.as_ref().map(ImageRef::of),
        },
        Entry::Prepare(image) => JobEntry::Prepare {
            image: image.clone(),
        },
    };
    // The next run most likely wants the same module and image: a run from a prepared
    // backend is followed by another (the sdist, then the wheel). After a prepare run the
    // image is not checked yet, so the run it prepared reads it itself.
    let next_image = match &entry {
        JobEntry::Start { image } => image.clone(),
        JobEntry::Prepare { .. } => None,
    };
    let job = ChildJob {
        module: module.to_path_buf(),
        args: run.args.clone(),
        env: run.env.clone(),
        mounts: run.mounts.clone(),
        stdlib: stdlib.cloned(),
        root: root.to_path_buf(),
        memory: run.limits.memory,
        disk: run.limits.disk,
        determinism: run.determinism,
        entry,
    };
    let started = Instant::now();
    let mut child = workers.take(module)?;
    // Its child warms up once this run is over, while the host does its own work, not
    // during the run, where it would compete with the guest for the CPU.
    let _prepare_next = PrepareOnDrop {
        workers,
        module,
        image: next_image,
    };
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

    let capture = log::Capture::new(run.limits.log, run.log.clone());
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
    let hit = match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => None,
        Ok(Event::LogFull) => Some(LimitHit::Log),
        Err(RecvTimeoutError::Timeout) => Some(LimitHit::WallTime),
    };
    if let Some(hit) = hit {
        end(&mut child);
        let _ = reader.join();
        return Err(SandboxError::limit(hit, run, capture.take().bytes));
    }
    forget(&child);
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
        // The child applied the memory rule already (see `Guest::run`): a failed run after
        // a refused grow comes as MemoryLimit.
        Some(ChildOutcome::Exited {
            code,
            memory_refused,
            stats,
        }) => Ok(GuestExit {
            code,
            log,
            elapsed,
            memory_refused,
            stats,
        }),
        Some(ChildOutcome::MemoryLimit) => Err(SandboxError::limit(LimitHit::Memory, run, log)),
        Some(ChildOutcome::DiskLimit) => Err(SandboxError::limit(LimitHit::Disk, run, log)),
        Some(ChildOutcome::Trap(message)) => Err(SandboxError::Trap { message, log }),
        Some(ChildOutcome::Setup(message)) => Err(SandboxError::Setup(anyhow!(message))),
        None => Err(SandboxError::Setup(anyhow!(
            "the guest process {} ended ({status}) without a report{}",
            workers.program.display(),
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

/// Starts the next child when the run is over, however it ends.
struct PrepareOnDrop<'a> {
    workers: &'a Workers,
    module: &'a Path,
    image: Option<ImageRef>,
}

impl Drop for PrepareOnDrop<'_> {
    fn drop(&mut self) {
        self.workers.prepare(self.module, self.image.as_ref());
    }
}

fn end(child: &mut Child) {
    forget(child);
    let _ = child.kill();
    let _ = child.wait();
}
