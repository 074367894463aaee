//! The sandbox: one wasmtime engine per process, a compiled-module cache, and one fresh
//! WASI instance per guest run with exactly the mounts, environment and limits asked for.
//!
//! Nothing of the host is visible to the guest but the preopened folders of [`GuestRun`]:
//! no host environment variables, no sockets, stdin closed, stdout/stderr captured.

mod disk;
mod isolated;
mod log;
mod memory_image;
mod module_cache;
mod snapshot;
mod target;

pub use self::isolated::serve as serve_child;
pub use self::log::LogSink;
pub use self::memory_image::MemoryImage;
pub use self::module_cache::wasmtime_version;
pub(crate) use self::target::probe_target;

use crate::runtime::{Runtime, Stdlib};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasm_build_packaging::cache::{Bucket, Cache, SealKey};
use wasmtime::{Config, Engine, Linker, Module, OptLevel, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// How often the epoch advances: the granularity of the time limit.
const EPOCH_TICK: Duration = Duration::from_millis(20);
/// Epoch ticks a store without a run (see `Guest::bare_store`) may be used for: an hour.
const BARE_STORE_TICKS: u64 = 3_600_000 / EPOCH_TICK.as_millis() as u64;
/// Wasm stack for the guest. CPython recurses deeply while importing setuptools.
const MAX_WASM_STACK: usize = 8 << 20;
/// Native stack of the thread that runs the guest; must exceed `MAX_WASM_STACK` comfortably.
const GUEST_THREAD_STACK: usize = 32 << 20;
/// How long past the time limit the watchdog waits for a guest that epoch interruption
/// cannot stop (one blocked in a host call) before giving up on it.
const WATCHDOG_GRACE: Duration = Duration::from_secs(1);

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
}

/// Where a guest run enters the module.
#[derive(Clone)]
enum Entry {
    /// `_start` of a fresh instance, or of one given this memory image first.
    Start(Option<MemoryImage>),
    /// `wasm_build_prepare`; when it returns, the instance's memory is written to this file
    /// as an image (see [`memory_image`]).
    Prepare(PathBuf),
}

/// An instance made before its run: see [`Guest::instance_ahead`].
struct InstanceAhead {
    store: Store<GuestState>,
    instance: wasmtime::Instance,
}

/// The pre-initialized module's export that runs a command and keeps the interpreter.
const PREPARE_EXPORT: &str = "wasm_build_prepare";

/// What a guest run used, measured where it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunStats {
    /// CPU time of the thread that ran the guest (user and system), when the platform
    /// tells it.
    pub cpu: Option<Duration>,
    /// The guest's linear memory at its largest, in bytes.
    pub peak_memory: u64,
    /// The most the writable mounts held at once, as the disk limit counts them.
    pub disk_high_water: u64,
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
    fn limit(hit: LimitHit, run: &GuestRun, log: Vec<u8>) -> Self {
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

/// The two engine settings: with epoch interruption (guests on a thread) or without
/// (guests in a child process, stopped by killing it). Compiled modules differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineKind {
    Interruptible,
    Uninterrupted,
}

/// The engine and the compiled interpreter, shared by every guest run of a process.
pub struct Sandbox {
    guest: Guest,
    /// The runtime's module as built, for runs the pre-initialized one cannot serve.
    plain: PlainModule,
    pre_initialized: Option<snapshot::PreInitialized>,
    /// Child processes started ahead, with [`Isolation::Process`].
    workers: Option<isolated::Workers>,
    _empty_root: tempfile::TempDir,
    _ticker: Option<EpochTicker>,
}

/// What runs the interpreter: cheap clones of the shared parts, so that a guest thread owns
/// them (see [`Sandbox::run`]).
#[derive(Clone)]
struct Guest {
    engine: Engine,
    linker: Linker<GuestState>,
    kind: EngineKind,
    stdlib: Option<Stdlib>,
    /// The empty folder mounted at `/`.
    root: PathBuf,
}

impl Sandbox {
    /// Sets up the engine and loads the runtime's module, compiling it only when the
    /// compiled-module cache has no valid entry for it. Guests run on threads of this
    /// process ([`Isolation::Thread`]); see [`Sandbox::with_isolation`].
    ///
    /// Runtimes built by the recipe start hooks from a pre-initialized interpreter (see
    /// [`snapshot`]), made on first use with [`base_environment`]; the module as built is
    /// then only loaded for a run that needs another start-up.
    pub fn new(runtime: &Runtime, cache: &Cache) -> Result<Self> {
        Self::with_isolation(runtime, cache, Isolation::Thread)
    }

    /// [`Sandbox::new`] with guests run as `isolation` says.
    pub fn with_isolation(runtime: &Runtime, cache: &Cache, isolation: Isolation) -> Result<Self> {
        let kind = match isolation {
            Isolation::Thread => EngineKind::Interruptible,
            Isolation::Process { .. } => EngineKind::Uninterrupted,
        };
        let empty_root = tempfile::Builder::new()
            .prefix("wasm-build-root-")
            .tempdir()
            .context("creating the empty root folder for the sandbox")?;
        let guest = Guest::new(
            kind,
            runtime.stdlib.clone(),
            empty_root.path().to_path_buf(),
        )?;
        let ticker = match kind {
            EngineKind::Interruptible => Some(EpochTicker::start(guest.engine.clone())?),
            EngineKind::Uninterrupted => None,
        };
        let pre_initialized = snapshot::load(&guest, runtime, cache, &base_environment())?;
        let plain = PlainModule {
            runtime: runtime.clone(),
            dir: cache.bucket(Bucket::Compiled)?,
            seal_key: cache.seal_key()?.clone(),
            module: OnceLock::new(),
        };
        if pre_initialized.is_none() {
            plain.get(&guest.engine)?;
        }
        let workers = match isolation {
            Isolation::Thread => None,
            Isolation::Process { program, args } => {
                let workers = isolated::Workers::new(program, args);
                // The first run's child loads and warms up while the caller prepares it.
                match &pre_initialized {
                    Some(pre) => workers.prepare(&pre.path, None),
                    None => workers.prepare(&plain.get(&guest.engine)?.1, None),
                }
                Some(workers)
            }
        };
        Ok(Self {
            guest,
            plain,
            pre_initialized,
            workers,
            _empty_root: empty_root,
            _ticker: ticker,
        })
    }

    /// Keeps `count` guest processes started ahead (with [`Isolation::Process`]): as many
    /// as the caller runs guests at once.
    pub fn keep_warm(&self, count: usize) {
        if let Some(workers) = &self.workers {
            workers.keep(count);
        }
    }

    /// Whether runs that start as `python -S` begin from the pre-initialized interpreter.
    pub fn is_pre_initialized(&self) -> bool {
        self.pre_initialized.is_some()
    }

    /// Runs the interpreter once in a fresh instance, as [`Isolation`] says.
    pub fn run(&self, run: &GuestRun) -> Result<GuestExit, SandboxError> {
        let (module, path) = match &self.pre_initialized {
            Some(pre) if pre.serves(&run.args, &run.env) => (pre.module.clone(), pre.path.clone()),
            _ => self.plain.get(&self.guest.engine)?,
        };
        self.run_entry(run, module, &path, Entry::Start(None))
    }

    /// What memory images of this sandbox start from: the pre-initialized interpreter's
    /// compiled artifact (its name), when it can keep an interpreter with
    /// [`Sandbox::prepare`] and `run` is a run it serves. Images made from one base are
    /// only ever written into instances of the same base.
    pub fn image_base(&self, run: &GuestRun) -> Option<String> {
        let pre = self.pre_initialized.as_ref()?;
        let prepares = pre.module.get_export(PREPARE_EXPORT).is_some();
        (prepares && pre.serves(&run.args, &run.env))
            .then(|| pre.path.file_stem()?.to_str().map(String::from))
            .flatten()
    }

    /// Runs `run`'s command in the pre-initialized interpreter without finalizing it
    /// (`wasm_build_prepare`) and, if the command succeeds, writes the instance's memory to
    /// `image`, for [`Sandbox::run_from`]. Only for runs with an [`Sandbox::image_base`].
    pub fn prepare(
        &self,
        run: &GuestRun,
        image: &std::path::Path,
    ) -> Result<GuestExit, SandboxError> {
        let pre = self.serving(run)?;
        self.run_entry(
            run,
            pre.module.clone(),
            &pre.path,
            Entry::Prepare(image.to_path_buf()),
        )
    }

    /// Runs the interpreter in a fresh instance of the pre-initialized interpreter that is
    /// given `image`'s memory first (see [`Sandbox::prepare`]).
    pub fn run_from(&self, run: &GuestRun, image: &MemoryImage) -> Result<GuestExit, SandboxError> {
        let pre = self.serving(run)?;
        self.run_entry(
            run,
            pre.module.clone(),
            &pre.path,
            Entry::Start(Some(image.clone())),
        )
    }

    /// How many file descriptors a guest of `run` starts with: stdin, stdout, stderr, then
    /// the empty root, the stdlib (when mounted) and `run`'s mounts, in that order.
    pub fn descriptors(&self, run: &GuestRun) -> usize {
        3 + 1 + usize::from(self.guest.stdlib.is_some()) + run.mounts.len()
    }

    fn serving(&self, run: &GuestRun) -> Result<&snapshot::PreInitialized, SandboxError> {
        match &self.pre_initialized {
            Some(pre) if self.image_base(run).is_some() => Ok(pre),
            _ => Err(SandboxError::Setup(anyhow::anyhow!(
                "the interpreter cannot keep a prepared instance for this run"
            ))),
        }
    }

    fn run_entry(
        &self,
        run: &GuestRun,
        module: Module,
        path: &std::path::Path,
        entry: Entry,
    ) -> Result<GuestExit, SandboxError> {
        match &self.workers {
            None => self.run_on_thread(run, module, entry),
            Some(workers) => isolated::run(
                workers,
                path,
                self.guest.stdlib.as_ref(),
                &self.guest.root,
                run,
                &entry,
            ),
        }
    }

    /// Runs the guest on a thread with a large stack.
    ///
    /// The time limit is kept twice. Epoch interruption stops the guest while it runs wasm
    /// code; it cannot reach a guest blocked inside a host call, and a WASI sleep
    /// (`poll_oneoff`) blocks there for as long as the guest asks. So this thread also
    /// waits for the guest no longer than the limit (plus [`WATCHDOG_GRACE`]) and then
    /// reports the time limit. The guest thread is left behind: it can reach nothing but its
    /// own scratch folders, and it traps at its first epoch check once the host call
    /// returns, the epoch having passed its deadline by then.
    fn run_on_thread(
        &self,
        run: &GuestRun,
        module: Module,
        entry: Entry,
    ) -> Result<GuestExit, SandboxError> {
        let log = log::Capture::new(run.limits.log, run.log.clone());
        let (done, finished) = mpsc::sync_channel(1);
        let (guest, job, capture) = (self.guest.clone(), run.clone(), log.clone());
        std::thread::Builder::new()
            .name("wasm-guest".into())
            .stack_size(GUEST_THREAD_STACK)
            .spawn(move || {
                // The receiver is gone only if the watchdog gave up on this run.
                let _ = done.send(guest.run(&job, &module, &capture, &entry));
            })
            .context("starting the guest thread")?;
        match finished.recv_timeout(run.limits.wall_time.saturating_add(WATCHDOG_GRACE)) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(SandboxError::limit(
                LimitHit::WallTime,
                run,
                log.take().bytes,
            )),
            Err(RecvTimeoutError::Disconnected) => Err(SandboxError::Setup(anyhow::anyhow!(
                "the guest thread panicked"
            ))),
        }
    }
}

impl Guest {
    fn new(kind: EngineKind, stdlib: Option<Stdlib>, root: PathBuf) -> Result<Self> {
        let engine =
            Engine::new(&engine_config(kind)).wasm_context("creating the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |state: &mut GuestState| &mut state.wasi)
            .wasm_context("linking WASI preview 1")?;
        disk::add_to_linker(&mut linker, GuestState::wasi_and_disk)
            .wasm_context("linking the disk accounting")?;
        Ok(Self {
            engine,
            linker,
            kind,
            stdlib,
            root,
        })
    }

    /// Runs `module` in a fresh instance on this thread. With an interruptible engine, the
    /// time limit stops the guest at its next epoch check.
    fn run(
        &self,
        run: &GuestRun,
        module: &Module,
        log: &log::Capture,
        entry: &Entry,
    ) -> Result<GuestExit, SandboxError> {
        let store = self.store(run, log)?;
        self.run_in(store, None, run, module, log, entry)
    }

    /// Runs `run` in `ahead`, an instance made before the run's WASI world was known
    /// ([`Guest::instance_ahead`]): it gets that world and the run's memory limit now, and
    /// starts at `_start` (its memory image, if any, is written already).
    fn run_ahead(
        &self,
        ahead: InstanceAhead,
        run: &GuestRun,
        module: &Module,
        log: &log::Capture,
    ) -> Result<GuestExit, SandboxError> {
        let InstanceAhead {
            mut store,
            instance,
        } = ahead;
        let state = store.data_mut();
        state.wasi = self.wasi_context(run, log)?;
        state.limiter = MemoryLimiter {
            max_bytes: run.limits.memory,
            hit: false,
            peak: 0,
        };
        state.disk = disk::DiskAccount::for_run(run);
        let memory = instance
            .get_memory(&mut store, "memory")
            .map_or(0, |memory| memory.data_size(&store) as u64);
        if memory > run.limits.memory {
            return Err(SandboxError::limit(LimitHit::Memory, run, Vec::new()));
        }
        // The memory made ahead counts as granted to this run.
        store.data_mut().limiter.peak = memory;
        self.run_in(store, Some(instance), run, module, log, &Entry::Start(None))
    }

    /// An instance of `module` for a run not known yet, with `image` written into its
    /// memory: what a guest process makes while it waits for its job. No guest code has
    /// run in it, so the WASI world and the limits it gets later are all it ever sees.
    fn instance_ahead(
        &self,
        module: &Module,
        image: Option<&MemoryImage>,
    ) -> Result<InstanceAhead> {
        let mut store = self.bare_store()?;
        let instance = self
            .linker
            .instantiate(&mut store, module)
            .wasm_context("instantiating the module ahead of its run")?;
        if let Some(image) = image {
            image.restore(&mut store, &instance)?;
        }
        Ok(InstanceAhead { store, instance })
    }

    /// `run` in `store`, in `instance` or a new instance of `module`.
    fn run_in(
        &self,
        mut store: Store<GuestState>,
        instance: Option<wasmtime::Instance>,
        run: &GuestRun,
        module: &Module,
        log: &log::Capture,
        entry: &Entry,
    ) -> Result<GuestExit, SandboxError> {
        // The writable mounts, as measured for the account, already hold more than the limit.
        if store.data().disk.over_limit() {
            return Err(SandboxError::limit(LimitHit::Disk, run, Vec::new()));
        }
        let hits = Arc::new(Mutex::new(None::<LimitHit>));

        let started = Instant::now();
        let cpu_before = thread_cpu_time();
        let deadline = started + run.limits.wall_time;
        if self.kind == EngineKind::Interruptible {
            let callback_hits = hits.clone();
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= deadline {
                    *lock(&callback_hits) = Some(LimitHit::WallTime);
                    return Err(wasmtime::format_err!("time limit reached"));
                }
                Ok(UpdateDeadline::Continue(1))
            });
        }

        let instance = match instance {
            Some(instance) => Ok(instance),
            None => self.linker.instantiate(&mut store, module),
        };
        let result = instance.and_then(|instance| self.enter(&mut store, module, &instance, entry));
        let elapsed = started.elapsed();
        let memory_hit = store.data().limiter.hit;
        let disk_hit = store.data().disk.over_limit();
        let stats = RunStats {
            cpu: thread_cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
            peak_memory: store.data().limiter.peak,
            disk_high_water: store.data().disk.high_water(),
        };
        drop(store);

        let captured = log.take();
        let limit_hit = lock(&hits)
            .or(disk_hit.then_some(LimitHit::Disk))
            .or(captured.overflowed.then_some(LimitHit::Log));
        let code = match result {
            Ok(()) => 0,
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => {
                    let hit = limit_hit.or(memory_hit.then_some(LimitHit::Memory));
                    return Err(match hit {
                        Some(hit) => SandboxError::limit(hit, run, captured.bytes),
                        None => SandboxError::Trap {
                            message: format!("{error:?}"),
                            log: captured.bytes,
                        },
                    });
                }
            },
        };
        // A limit that the guest survived (a refused memory grow surfaces as MemoryError,
        // a full log as a failed write) still ends the run as that limit. (A refused disk
        // call traps: the guest cannot survive it.)
        if let Some(hit) = limit_hit.or((memory_hit && code != 0).then_some(LimitHit::Memory)) {
            return Err(SandboxError::limit(hit, run, captured.bytes));
        }
        Ok(GuestExit {
            code,
            log: captured.bytes,
            elapsed,
            memory_refused: memory_hit,
            stats,
        })
    }

    /// Runs the instance from `entry`: `_start` (after writing a memory image into it), or
    /// `wasm_build_prepare` followed by the capture of its memory.
    fn enter(
        &self,
        store: &mut Store<GuestState>,
        module: &Module,
        instance: &wasmtime::Instance,
        entry: &Entry,
    ) -> wasmtime::Result<()> {
        match entry {
            Entry::Start(image) => {
                if let Some(image) = image {
                    image
                        .restore(&mut *store, instance)
                        .map_err(|e| wasmtime::format_err!("{e:#}"))?;
                }
                let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                start.call(&mut *store, ())
            }
            Entry::Prepare(path) => {
                let prepare = instance.get_typed_func::<(), ()>(&mut *store, PREPARE_EXPORT)?;
                prepare.call(&mut *store, ())?;
                self.capture(store, module, instance, path)
                    .map_err(|e| wasmtime::format_err!("{e:#}"))
            }
        }
    }

    /// Writes the memory of `instance` to `path` as an image: the pages that differ from
    /// a fresh instance of `module`.
    fn capture(
        &self,
        store: &mut Store<GuestState>,
        module: &Module,
        instance: &wasmtime::Instance,
        path: &std::path::Path,
    ) -> Result<()> {
        let mut fresh_store = self.bare_store()?;
        let fresh = self
            .linker
            .instantiate(&mut fresh_store, module)
            .wasm_context("instantiating a fresh instance to compare with")?;
        let memory_of = |instance: &wasmtime::Instance, store: &mut Store<GuestState>| {
            instance
                .get_memory(&mut *store, "memory")
                .context("the module exports no memory")
        };
        let fresh_memory = memory_of(&fresh, &mut fresh_store)?;
        let memory = memory_of(instance, store)?;
        let image = memory_image::encode(memory.data(&*store), fresh_memory.data(&fresh_store))?;
        std::fs::write(path, image).with_context(|| format!("writing {}", path.display()))
    }

    /// A store with an empty WASI world (no arguments, environment, files or output) and
    /// the default memory limit.
    fn bare_store(&self) -> Result<Store<GuestState>> {
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi: WasiCtxBuilder::new().build_p1(),
                limiter: MemoryLimiter {
                    max_bytes: Limits::default().memory,
                    hit: false,
                    peak: 0,
                },
                // No guest code runs in this store before it gets a run's account.
                disk: disk::DiskAccount::new(0, 0),
            },
        );
        store.limiter(|state| &mut state.limiter);
        if self.kind == EngineKind::Interruptible {
            // No guest code runs in these instances, but instantiation checks the epoch too.
            store.set_epoch_deadline(BARE_STORE_TICKS);
        }
        Ok(store)
    }

    /// A store for one run: its WASI world and its memory limit.
    fn store(&self, run: &GuestRun, log: &log::Capture) -> Result<Store<GuestState>> {
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi: self.wasi_context(run, log)?,
                limiter: MemoryLimiter {
                    max_bytes: run.limits.memory,
                    hit: false,
                    peak: 0,
                },
                disk: disk::DiskAccount::for_run(run),
            },
        );
        store.limiter(|state| &mut state.limiter);
        Ok(store)
    }

    fn wasi_context(&self, run: &GuestRun, log: &log::Capture) -> Result<WasiP1Ctx> {
        let mut builder = WasiCtxBuilder::new();
        // Must come before the preopens: each preopen copies the flag when it is added.
        // Without it every file system call is a round trip through a tokio thread (~20×).
        builder.allow_blocking_current_thread(true);
        builder.arg("python");
        builder.args(&run.args);
        builder.envs(&run.env);
        builder.stdout(log.clone());
        builder.stderr(log.clone());
        // Some backends stat or walk absolute paths and crash on a missing preopen: an
        // empty read-only root makes `/` exist and hold nothing.
        builder
            .preopened_dir(&self.root, "/", FsPerms::ReadOnly)
            .wasm_context("mounting the empty root")?;
        if let Some(stdlib) = &self.stdlib {
            builder
                .preopened_dir(&stdlib.host, &stdlib.guest, FsPerms::ReadOnly)
                .wasm_context(format!("mounting the stdlib {}", stdlib.host.display()))?;
        }
        for mount in &run.mounts {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&mount.host, &mount.guest, perms)
                .wasm_context(format!(
                    "mounting {} at {}",
                    mount.host.display(),
                    mount.guest
                ))?;
        }
        Ok(builder.build_p1())
    }
}

/// The runtime's module as built, loaded (or compiled) when first needed.
struct PlainModule {
    runtime: Runtime,
    /// The cache's compiled-module folder.
    dir: PathBuf,
    /// What the compiled module's records are checked with.
    seal_key: SealKey,
    /// The compiled module and its cached artifact.
    module: OnceLock<(Module, PathBuf)>,
}

impl PlainModule {
    fn get(&self, engine: &Engine) -> Result<(Module, PathBuf)> {
        if let Some(loaded) = self.module.get() {
            return Ok(loaded.clone());
        }
        let loaded = module_cache::load(engine, &self.runtime, &self.dir, &self.seal_key)?;
        Ok(self.module.get_or_init(|| loaded).clone())
    }
}

/// The environment every guest starts from; the frontend adds `SOURCE_DATE_EPOCH` and the
/// user's `--env`. The pre-initialized interpreter is made with it, so its start-up
/// settings (`PYTHON*`, the locale) are those of every run that does not change them.
pub fn base_environment() -> Vec<(String, String)> {
    [
        ("TMPDIR", "/tmp"),
        ("HOME", "/tmp/home"),
        ("LANG", "C.UTF-8"),
        ("PYTHONHASHSEED", "0"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Removes compiled modules that no runtime of this binary's catalog would load with this
/// wasmtime and these engine settings; the bytes freed.
pub(crate) fn prune_compiled(cache: &Cache) -> Result<u64> {
    let catalog = crate::runtime::Catalog::builtin()?;
    let engines = [EngineKind::Interruptible, EngineKind::Uninterrupted]
        .map(|kind| Engine::new(&engine_config(kind)).wasm_context("creating the wasmtime engine"));
    let [interruptible, uninterrupted] = engines;
    let engines = [interruptible?, uninterrupted?];
    let startup_env = base_environment();
    let mut keys = Vec::new();
    for spec in catalog.runtimes.values() {
        for engine in &engines {
            keys.push(module_cache::cache_key(engine, &spec.module.sha256));
            keys.push(snapshot::cache_key(
                engine,
                &spec.module.sha256,
                &startup_env,
            ));
        }
    }
    let mut freed = 0;
    for (name, path) in crate::cache_files::entries(&cache.bucket(Bucket::Compiled)?)? {
        let key = name.split('.').next().unwrap_or_default();
        if !name.starts_with('.') && !keys.iter().any(|k| k == key) {
            freed += crate::cache_files::remove(&path)?;
        }
    }
    Ok(freed)
}

fn engine_config(kind: EngineKind) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(kind == EngineKind::Interruptible);
    // wasmtime-wasi turns on wasmtime's async feature, which bounds max_wasm_stack by the
    // async stack size even when no async call is ever made.
    config.async_stack_size(MAX_WASM_STACK + (1 << 20));
    config.max_wasm_stack(MAX_WASM_STACK);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    // CPython calls through function pointers everywhere (type slots, vectorcall): with the
    // table filled at instantiation (~4,500 entries, microseconds) no `call_indirect` has to
    // check for a lazily initialized entry. Measured: hooks 2–3 % faster.
    config.table_lazy_init(false);
    config
}

struct GuestState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    /// What the writable mounts hold, against the disk limit (see [`disk`]).
    disk: disk::DiskAccount,
}

impl GuestState {
    fn wasi_and_disk(&mut self) -> (&mut WasiP1Ctx, &mut disk::DiskAccount) {
        (&mut self.wasi, &mut self.disk)
    }
}

/// Caps linear memory and remembers a refused grow, so that the `MemoryError` the guest
/// then raises is reported as the memory limit.
struct MemoryLimiter {
    max_bytes: u64,
    hit: bool,
    /// The largest size granted.
    peak: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // CPython's function table is fixed; growth beyond this is not an interpreter's.
        Ok(desired <= 1 << 20)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("starting the epoch ticker thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `anyhow::Context` for wasmtime's own error type, which is not a `std::error::Error`.
pub(crate) trait WasmContext<T> {
    fn wasm_context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T>;
}

impl<T> WasmContext<T> for wasmtime::Result<T> {
    fn wasm_context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.map_err(anyhow::Error::from).context(context)
    }
}

/// CPU time (user and system) of the calling thread, where the platform tells it.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a rusage into the pointer it is given, which points at
        // enough initialized memory for one.
        let done = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        if done != 0 {
            return None;
        }
        // SAFETY: getrusage succeeded, so it filled the struct (it was zeroed before anyway).
        let usage = unsafe { usage.assume_init() };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
