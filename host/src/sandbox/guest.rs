//! The engine and linker that run the interpreter, one fresh store and instance per run:
//! WASI world, memory limit, the epoch deadline (guests on a thread), and the entry points
//! (`_start`, or `wasm_build_prepare` followed by the capture of a memory image).

use super::*;
use std::sync::atomic::AtomicU64;

/// How often the epoch advances: the granularity of the time limit.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(20);
/// Epoch ticks a store without a run (see `Guest::bare_store`) may be used for: an hour.
pub(super) const BARE_STORE_TICKS: u64 = 3_600_000 / EPOCH_TICK.as_millis() as u64;

/// What runs the interpreter: cheap clones of the shared parts, so that a guest thread owns
/// them (see [`Sandbox::run`]).
#[derive(Clone)]
pub(super) struct Guest {
    pub(super) engine: Engine,
    pub(super) linker: Linker<GuestState>,
    pub(super) kind: EngineKind,
    pub(super) stdlib: Option<Stdlib>,
    /// The empty folder mounted at `/`.
    pub(super) root: PathBuf,
}

impl Guest {
    pub(super) fn new(kind: EngineKind, stdlib: Option<Stdlib>, root: PathBuf) -> Result<Self> {
        Self::with_config(&engine_config(kind), kind, stdlib, root)
    }

    /// The same guest on wasmtime's baseline compiler (Winch), which compiles the
    /// interpreter several times faster than Cranelift into code that runs slower: for a
    /// run too short to pay for Cranelift (the start-up run that the pre-initialized
    /// interpreter is taken from, see [`super::snapshot`]).
    pub(super) fn baseline(&self) -> Result<Self> {
        Self::with_config(
            &preinit::baseline_config(self.kind),
            self.kind,
            self.stdlib.clone(),
            self.root.clone(),
        )
    }

    fn with_config(
        config: &Config,
        kind: EngineKind,
        stdlib: Option<Stdlib>,
        root: PathBuf,
    ) -> Result<Self> {
        let engine = Engine::new(config).wasm_context("creating the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |state: &mut GuestState| &mut state.wasi)
            .wasm_context("linking WASI preview 1")?;
        disk::add_to_linker(&mut linker, GuestState::wasi_and_disk)
            .wasm_context("linking the disk accounting")?;
        determinism::add_to_linker(&mut linker, GuestState::wasi_and_clamp)
            .wasm_context("linking the file-time clamp")?;
        listing::add_to_linker(&mut linker, GuestState::wasi_and_listings)
            .wasm_context("linking the directory listings")?;
        native::add_to_linker(&mut linker)
            .wasm_context("linking the native deflate and SHA-256")?;
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
    pub(super) fn run(
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
    pub(super) fn run_ahead(
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
        state.limiter = MemoryLimiter::new(run.limits.memory);
        state.native = native::NativeState::new(state.limiter.host_held.clone());
        state.disk = disk::DiskAccount::for_run(run);
        state.clamp = run.determinism.map(|d| d.clamp_nanos());
        state.listings = listing::Listings::default();
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
    pub(super) fn instance_ahead(
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
    pub(super) fn run_in(
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
        let cpu_before = usage::thread_cpu_time();
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
            cpu: usage::thread_cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
            peak_memory: store.data().limiter.peak,
            disk_high_water: store.data().disk.high_water(),
            native_deflated: store.data().native.deflated,
            native_hashed: store.data().native.hashed,
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
    pub(super) fn enter(
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
                // A stream lives in this store only: an image that names one would hand
                // later runs a handle to nothing.
                if store.data().native.live_streams() > 0 {
                    wasmtime::bail!("the prepared backend left a deflate stream open");
                }
                self.capture(store, module, instance, path)
                    .map_err(|e| wasmtime::format_err!("{e:#}"))
            }
        }
    }

    /// Writes the memory of `instance` to `path` as an image: the pages that differ from
    /// a fresh instance of `module`.
    pub(super) fn capture(
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
    pub(super) fn bare_store(&self) -> Result<Store<GuestState>> {
        let limiter = MemoryLimiter::new(Limits::default().memory);
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi: WasiCtxBuilder::new().build_p1(),
                native: native::NativeState::new(limiter.host_held.clone()),
                limiter,
                // No guest code runs in this store before it gets a run's account.
                disk: disk::DiskAccount::new(0, 0),
                clamp: None,
                listings: listing::Listings::default(),
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
    pub(super) fn store(&self, run: &GuestRun, log: &log::Capture) -> Result<Store<GuestState>> {
        let limiter = MemoryLimiter::new(run.limits.memory);
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi: self.wasi_context(run, log)?,
                native: native::NativeState::new(limiter.host_held.clone()),
                limiter,
                disk: disk::DiskAccount::for_run(run),
                clamp: run.determinism.map(|d| d.clamp_nanos()),
                listings: listing::Listings::default(),
            },
        );
        store.limiter(|state| &mut state.limiter);
        Ok(store)
    }

    pub(super) fn wasi_context(&self, run: &GuestRun, log: &log::Capture) -> Result<WasiP1Ctx> {
        let mut builder = WasiCtxBuilder::new();
        // Must come before the preopens: each preopen copies the flag when it is added.
        // Without it every file system call is a round trip through a tokio thread (~20×).
        builder.allow_blocking_current_thread(true);
        builder.arg("python");
        builder.args(&run.args);
        builder.envs(&run.env);
        builder.stdout(log.clone());
        builder.stderr(log.clone());
        if let Some(determinism) = &run.determinism {
            determinism.configure(&mut builder);
        }
        // Some backends stat or walk absolute paths and crash on a missing preopen: an
        // empty read-only root makes `/` exist and hold nothing.
        builder
            .preopened_dir(&self.root, "/", FsPerms::ReadOnly)
            .wasm_context("mounting the empty root")?;
        if let Some(stdlib) = &self.stdlib {
            stdlib.ready.wait()?;
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

pub(super) struct GuestState {
    pub(super) wasi: WasiP1Ctx,
    pub(super) limiter: MemoryLimiter,
    /// The deflate streams and hashing the host does for the guest (see [`native`]).
    pub(super) native: native::NativeState,
    /// What the writable mounts hold, against the disk limit (see [`disk`]).
    pub(super) disk: disk::DiskAccount,
    /// The latest file time the guest sees, in nanoseconds (see [`determinism`]).
    pub(super) clamp: Option<u64>,
    /// The directory stream being read (see [`listing`]).
    pub(super) listings: listing::Listings,
}

impl GuestState {
    pub(super) fn wasi_and_disk(&mut self) -> (&mut WasiP1Ctx, &mut disk::DiskAccount) {
        (&mut self.wasi, &mut self.disk)
    }

    pub(super) fn wasi_and_clamp(&mut self) -> (&mut WasiP1Ctx, Option<u64>) {
        (&mut self.wasi, self.clamp)
    }

    pub(super) fn wasi_and_listings(&mut self) -> (&mut WasiP1Ctx, &mut listing::Listings) {
        (&mut self.wasi, &mut self.listings)
    }
}

/// Caps linear memory and remembers a refused grow, so that the `MemoryError` the guest
/// then raises is reported as the memory limit.
pub(super) struct MemoryLimiter {
    pub(super) max_bytes: u64,
    pub(super) hit: bool,
    /// The largest size granted, host memory held for the guest included.
    pub(super) peak: u64,
    /// Host memory held for the guest (its deflate streams, see [`native`]): it counts
    /// against the limit as the guest's own memory does.
    pub(super) host_held: Arc<AtomicU64>,
}

impl MemoryLimiter {
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            hit: false,
            peak: 0,
            host_held: Arc::default(),
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = desired as u64 + self.host_held.load(Ordering::Relaxed);
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
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
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Result<Self> {
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
