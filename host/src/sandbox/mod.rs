//! The sandbox: one wasmtime engine per process, a compiled-module cache, and one fresh
//! WASI instance per guest run with exactly the mounts, environment and limits asked for.
//!
//! Nothing of the host is visible to the guest but the preopened folders of [`GuestRun`]:
//! no host environment variables, no sockets, stdin closed, stdout/stderr captured.

mod determinism;
mod disk;
mod guest;
mod guest_memory;
mod isolated;
mod listing;
mod log;
mod memory_image;
mod module_cache;
mod native;
mod preinit;
mod run;
mod snapshot;
mod target;
mod timings;
mod usage;

pub use self::determinism::{Determinism, FIXED_EPOCH};
pub(crate) use self::disk::shared_disk_limit;
use self::guest::{EPOCH_TICK, EpochTicker, Guest, GuestState};
pub use self::isolated::serve as serve_child;
pub use self::isolated::stop_all as stop_guests;
pub use self::log::LogSink;
pub use self::memory_image::{ImageFile, MemoryImage};
pub use self::module_cache::wasmtime_version;
pub use self::preinit::base_environment;
use self::preinit::{EngineKind, engine_config};
pub use self::run::{GuestExit, GuestRun, Isolation, LimitHit, Limits, Mount, SandboxError};
pub(crate) use self::target::probe_target;
pub use self::timings::Timings;
pub use self::usage::RunStats;

use crate::runtime::{Runtime, Stdlib};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasm_build_packaging::cache::{Bucket, Cache, SealKey};
use wasm_build_packaging::tempdirs::{HeldDir, TempKind};
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Native stack of the thread that runs the guest; must exceed `MAX_WASM_STACK` comfortably.
const GUEST_THREAD_STACK: usize = 32 << 20;
/// How long past the time limit the watchdog waits for a guest that epoch interruption
/// cannot stop (one blocked in a host call) before giving up on it.
const WATCHDOG_GRACE: Duration = Duration::from_secs(1);

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

/// The engine and the compiled interpreter, shared by every guest run of a process.
pub struct Sandbox {
    guest: Guest,
    /// The runtime's module as built, for runs the pre-initialized one cannot serve.
    plain: PlainModule,
    pre_initialized: Option<snapshot::PreInitialized>,
    /// Child processes started ahead, with [`Isolation::Process`].
    workers: Option<isolated::Workers>,
    /// What getting the interpreter ready took, step by step.
    timings: Timings,
    _empty_root: HeldDir,
    _ticker: Option<EpochTicker>,
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
        let empty_root = HeldDir::new(TempKind::Root)
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
        let timings = Timings::default();
        let pre_initialized =
            snapshot::load(&guest, runtime, cache, &base_environment(), &timings)?;
        let plain = PlainModule {
            runtime: runtime.clone(),
            dir: cache.bucket(Bucket::Compiled)?,
            seal_key: cache.seal_key()?.clone(),
            module: OnceLock::new(),
        };
        if pre_initialized.is_none() {
            plain.get(&guest.engine, &timings)?;
        }
        let workers = match isolation {
            Isolation::Thread => None,
            Isolation::Process { program, args } => {
                let workers = isolated::Workers::new(program, args);
                // The first run's child loads and warms up while the caller prepares it.
                match &pre_initialized {
                    Some(pre) => workers.prepare(&pre.path, None),
                    None => workers.prepare(&plain.get(&guest.engine, &timings)?.1, None),
                }
                Some(workers)
            }
        };
        Ok(Self {
            guest,
            plain,
            pre_initialized,
            workers,
            timings,
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

    /// What getting the interpreter ready took so far, step by step (a first run compiles,
    /// later ones load from the cache).
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Whether runs that start as `python -S` begin from the pre-initialized interpreter.
    pub fn is_pre_initialized(&self) -> bool {
        self.pre_initialized.is_some()
    }

    /// Runs the interpreter once in a fresh instance, as [`Isolation`] says.
    pub fn run(&self, run: &GuestRun) -> Result<GuestExit, SandboxError> {
        let (module, path) = match &self.pre_initialized {
            Some(pre) if pre.serves(&run.args, &run.env) => (pre.module.clone(), pre.path.clone()),
            _ => self.plain.get(&self.guest.engine, &self.timings)?,
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
        // A first run's stdlib may still be being unpacked (`runtime::provision_in_background`).
        if let Some(stdlib) = &self.guest.stdlib {
            stdlib.ready.wait().map_err(SandboxError::Setup)?;
        }
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
    fn get(&self, engine: &Engine, timings: &Timings) -> Result<(Module, PathBuf)> {
        if let Some(loaded) = self.module.get() {
            return Ok(loaded.clone());
        }
        let loaded = module_cache::load(engine, &self.runtime, &self.dir, &self.seal_key, timings)?;
        Ok(self.module.get_or_init(|| loaded).clone())
    }
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

/// `anyhow::Context` for wasmtime's own error type, which is not a `std::error::Error`.
pub(crate) trait WasmContext<T> {
    fn wasm_context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T>;
}

impl<T> WasmContext<T> for wasmtime::Result<T> {
    fn wasm_context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.map_err(anyhow::Error::from).context(context)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
