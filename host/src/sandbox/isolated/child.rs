//! The child's side of a guest process: one job read on stdin, the guest run, the outcome
//! reported on stderr.

use super::*;

/// The child's side: reads one job on stdin, runs it, reports on stderr. Call it from the
/// program given to [`super::Isolation::Process`] when started with its arguments.
pub fn serve() -> Result<()> {
    // The child must not outlive a parent that was killed (and can no longer kill it). A
    // parent gone before this line closes the job pipe, and the child stops at reading it.
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let guest = Guest::new(EngineKind::Uninterrupted, None, PathBuf::new())?;
    let preloaded = preloaded(&guest);
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the guest job")?;
    let job: ChildJob = serde_json::from_str(&input).context("reading the guest job")?;
    let guest = Guest {
        stdlib: job.stdlib.clone(),
        root: job.root.clone(),
        ..guest
    };
    let outcome = match run_job(&guest, preloaded, &job) {
        Ok(exit) => ChildOutcome::Exited {
            code: exit.code,
            memory_refused: exit.memory_refused,
            stats: exit.stats,
        },
        Err(SandboxError::Limit {
            hit: LimitHit::Memory,
            ..
        }) => ChildOutcome::MemoryLimit,
        Err(SandboxError::Limit {
            hit: LimitHit::Disk,
            ..
        }) => ChildOutcome::DiskLimit,
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

/// Loads a compiled module the parent (this same program) handed over.
fn load(engine: &wasmtime::Engine, path: &Path) -> Result<Module, SandboxError> {
    if !path.is_file() {
        return Err(SandboxError::Setup(anyhow!(
            "the compiled module {} is missing",
            path.display()
        )));
    }
    // SAFETY: the parent wrote this file into its private cache and checked it by sha256
    // or seal before naming it; the engine checks the version and settings it was compiled
    // with.
    Ok(unsafe { Module::deserialize_file(engine, path) }
        .wasm_context(format!("loading {}", path.display()))?)
}

/// Does before the job arrives what the first instance would otherwise do on the clock:
/// the copy-on-write memory image, and a read of every page of the code.
fn warm_up(module: &Module) {
    let _ = module.initialize_copy_on_write_image();
    let text = module.text();
    let mut sum = 0u8;
    for page in text.chunks(4096) {
        // SAFETY: a read of an initialized byte of a live slice.
        sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(page.as_ptr()) });
    }
    std::hint::black_box(sum);
}

/// What a child loads and makes before its job comes ([`PRELOAD`], [`PRELOAD_IMAGE`]).
struct Preloaded {
    module_path: PathBuf,
    module: Module,
    /// A fresh instance, with this image written in (if any).
    ahead: Option<(Option<ImageRef>, InstanceAhead)>,
}

/// Loads the module named by the environment, if any, and makes an instance of it, with
/// the memory image named there written in, before reading the job.
fn preloaded(guest: &Guest) -> Option<Preloaded> {
    let module_path = PathBuf::from(std::env::var_os(PRELOAD)?);
    let module = load(&guest.engine, &module_path).ok()?;
    warm_up(&module);
    let image = match (
        std::env::var_os(PRELOAD_IMAGE),
        std::env::var(PRELOAD_IMAGE_IDENTITY),
    ) {
        (Some(path), Ok(identity)) => {
            let wanted = ImageRef {
                path: PathBuf::from(path),
                identity,
            };
            wanted.load().ok().map(|image| (wanted, image))
        }
        _ => None,
    };
    let ahead = guest
        .instance_ahead(&module, image.as_ref().map(|(_, image)| image))
        .ok()
        .map(|instance| (image.map(|(wanted, _)| wanted), instance));
    Some(Preloaded {
        module_path,
        module,
        ahead,
    })
}

fn run_job(
    guest: &Guest,
    preloaded: Option<Preloaded>,
    job: &ChildJob,
) -> Result<GuestExit, SandboxError> {
    let run = GuestRun {
        args: job.args.clone(),
        env: job.env.clone(),
        mounts: job.mounts.clone(),
        limits: Limits {
            memory: job.memory,
            disk: job.disk,
            ..Limits::default()
        },
        log: log::LogSink::Capture,
        determinism: job.determinism,
    };
    let log = log::Capture::forwarding();
    let (module, ahead) = match preloaded {
        Some(pre) if pre.module_path == job.module => (pre.module, pre.ahead),
        _ => (load(&guest.engine, &job.module)?, None),
    };
    match (&job.entry, ahead) {
        // The instance made ahead is what this job starts from.
        (JobEntry::Start { image }, Some((made_with, ahead))) if *image == made_with => {
            guest.run_ahead(ahead, &run, &module, &log)
        }
        (JobEntry::Start { image }, _) => {
            let image = image.as_ref().map(ImageRef::load).transpose()?;
            guest.run(&run, &module, &log, &Entry::Start(image))
        }
        (JobEntry::Prepare { image }, _) => {
            guest.run(&run, &module, &log, &Entry::Prepare(image.clone()))
        }
    }
}
