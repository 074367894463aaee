//! Times the sandboxed interpreter with the engine and module already loaded, as the
//! frontend runs it: `instantiate + _start` of one fresh instance per run.
//!
//! ```text
//! cargo run --release --example guest_bench -- [--runtime NAME | --python-wasm PATH
//!     --python-home DIR] [--with REQ]... [--runs N]
//!     [--env KEY=VALUE]... [--guest-process PATH/TO/wasm-build] [--gap-ms N]
//!     [--project DIR --hook build_wheel [--no-prepared-backend]]
//!     | [--mount HOST:GUEST]... [-- PYTHON_ARGS...]
//! ```
//!
//! With `--guest-process`, each run is a child process of that `wasm-build` binary
//! (`Isolation::Process`, as the CLI runs guests); otherwise a thread of this process.
//! `--gap-ms N` waits N ms (untimed) before each run, as the host's own work separates the
//! runs of a build: time for the next child process to get ready.
//!
//! Prints one JSON object: the runtime, each run's milliseconds and their median. With
//! `--project`, each run is a hook call (get_requires_for_build_X + build_X in one
//! instance, as `wasm-build` makes it) on a fresh copy of the project, started from the
//! prepared backend as `wasm-build` does (made before the warm-up run if the cache has
//! none), or importing the backend with `--no-prepared-backend`. Used by `bench/runtime.py`.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;
use wasm_build::env::{self, EnvWheel};
use wasm_build::frontend;
use wasm_build::hooks::{self, Hook, HookCall, HookContext, guest_paths};
use wasm_build::prepared::PreparedBackends;
use wasm_build::project::BuildSystem;
use wasm_build::runtime::{self, RuntimeChoice};
use wasm_build::sandbox::{GuestRun, Isolation, Limits, LogSink, Mount, Sandbox};
use wasm_build_packaging::archive;
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::limits::StageLimits;
use wasm_build_packaging::resolve;

struct Options {
    runtime: Option<String>,
    python_wasm: Option<PathBuf>,
    python_home: Option<PathBuf>,
    with: Vec<String>,
    runs: usize,
    project: Option<PathBuf>,
    hook: String,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    guest_process: Option<PathBuf>,
    gap: std::time::Duration,
    no_prepared_backend: bool,
    args: Vec<String>,
}

fn parse_args() -> Result<Options> {
    let mut options = Options {
        runtime: None,
        python_wasm: None,
        python_home: None,
        with: Vec::new(),
        runs: 10,
        project: None,
        hook: "build_wheel".into(),
        env: Vec::new(),
        mounts: Vec::new(),
        guest_process: None,
        gap: std::time::Duration::ZERO,
        no_prepared_backend: false,
        args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runtime" => options.runtime = Some(value()?),
            "--python-wasm" => options.python_wasm = Some(PathBuf::from(value()?)),
            "--python-home" => options.python_home = Some(PathBuf::from(value()?)),
            "--with" => options.with.push(value()?),
            "--runs" => options.runs = value()?.parse()?,
            "--project" => options.project = Some(PathBuf::from(value()?)),
            "--hook" => options.hook = value()?,
            "--guest-process" => options.guest_process = Some(PathBuf::from(value()?)),
            "--gap-ms" => options.gap = std::time::Duration::from_millis(value()?.parse()?),
            "--no-prepared-backend" => options.no_prepared_backend = true,
            "--mount" => {
                let spec = value()?;
                let (host, guest) = spec.split_once(':').context("--mount HOST:GUEST")?;
                options.mounts.push(Mount::read_only(host, guest));
            }
            "--env" => {
                let pair = value()?;
                let (k, v) = pair.split_once('=').context("--env KEY=VALUE")?;
                options.env.push((k.to_string(), v.to_string()));
            }
            "--" => {
                options.args = args.collect();
                break;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse_args()?;
    let cache = Cache::from_env()?;
    let choice = match (&options.python_wasm, &options.runtime) {
        (Some(module), _) => RuntimeChoice::Local {
            module: module.clone(),
            home: options.python_home.clone(),
        },
        (None, Some(name)) => RuntimeChoice::Named(name.clone()),
        (None, None) => RuntimeChoice::Default,
    };
    let index = IndexClient::new(IndexOptions::default(), &cache)?;
    let runtime = runtime::provision(&choice, &cache, &index)?;
    let isolation = match &options.guest_process {
        Some(program) => Isolation::Process {
            program: program.clone(),
            args: vec!["__guest".into()],
        },
        None => Isolation::Thread,
    };
    let sandbox = Sandbox::with_isolation(&runtime, &cache, isolation)?;

    let target = frontend::probe_target(&sandbox, &runtime, &cache)?;
    let mut requirements = options.with.clone();
    let build_system = match &options.project {
        Some(project) => {
            let bs = BuildSystem::read(project)?;
            requirements.extend(bs.requires.iter().cloned());
            Some(bs)
        }
        None => None,
    };
    let parsed = requirements
        .iter()
        .map(|r| pep508_rs::Requirement::from_str(r).with_context(|| r.clone()))
        .collect::<Result<Vec<_>>>()?;
    let resolution = resolve::resolve(&index, &target, &parsed, &BuildConstraints::none())?;
    let wheels: Vec<EnvWheel> = resolution.packages.iter().map(EnvWheel::from).collect();
    let env = env::prepare(&sandbox, &runtime, &cache, &wheels)?;
    let mut extra = vec![("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string())];
    extra.extend(options.env.iter().cloned());
    let guest_env = frontend::guest_environment(&extra);
    let prepared = PreparedBackends::new(&cache)?;

    let mut times = Vec::new();
    // One warm-up run, not counted: the first instance pays for page faults of the module.
    for run in 0..=options.runs {
        // The host's own work between two runs of a build (staging, verifying), untimed.
        std::thread::sleep(options.gap);
        let scratch = tempfile::tempdir()?;
        let elapsed = match (&options.project, &build_system) {
            (Some(project), Some(bs)) => {
                let src = scratch.path().join("src");
                let staged = archive::stage_source_tree(project, &src, &StageLimits::default())?;
                let (get_requires, build) = match options.hook.as_str() {
                    "build_wheel" => (Hook::GetRequiresForBuildWheel, Hook::BuildWheel),
                    "build_sdist" => (Hook::GetRequiresForBuildSdist, Hook::BuildSdist),
                    other => bail!("unsupported hook {other}"),
                };
                let settings = serde_json::json!({});
                let limits = Limits::default();
                let ctx = HookContext {
                    sandbox: &sandbox,
                    backend: &bs.backend,
                    backend_path: &bs.backend_path,
                    source: &src,
                    source_guest: guest_paths::SOURCE,
                    site_packages: &env.site_packages,
                    executables: &staged.executables,
                    config_settings: &settings,
                    env: &guest_env,
                    limits: &limits,
                    log: LogSink::Capture,
                    scratch: scratch.path(),
                    prepared: (!options.no_prepared_backend)
                        .then_some((&prepared, env.key.as_str())),
                };
                let calls = HookCall::build_step(get_requires, build, &bs.requires);
                let started = Instant::now();
                let results = hooks::call_hooks(&ctx, &calls)
                    .map_err(|e| anyhow::anyhow!("{e}\n{}", String::from_utf8_lossy(&e.log)))?;
                let elapsed = started.elapsed();
                if results.stopped_for_requirements {
                    bail!("the backend asked for more requirements; pass them with --with");
                }
                elapsed
            }
            _ => {
                let tmp = scratch.path().join("tmp");
                std::fs::create_dir(&tmp)?;
                let guest = GuestRun {
                    args: options.args.clone(),
                    env: guest_env.clone(),
                    mounts: [
                        Mount::read_write(&tmp, guest_paths::TMP),
                        Mount::read_only(&env.site_packages, guest_paths::ENV),
                    ]
                    .into_iter()
                    .chain(options.mounts.iter().cloned())
                    .collect(),
                    limits: Limits::default(),
                    log: LogSink::Capture,
                };
                let started = Instant::now();
                let exit = sandbox.run(&guest).map_err(|e| anyhow::anyhow!("{e}"))?;
                let elapsed = started.elapsed();
                if exit.code != 0 {
                    bail!("exit {}: {}", exit.code, String::from_utf8_lossy(&exit.log));
                }
                elapsed
            }
        };
        if run > 0 {
            times.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "runtime": runtime.id,
            "python": target.markers.python_full_version,
            "runs_ms": times,
            "median_ms": median,
            "env": env.contents,
            "site_packages": env.site_packages,
        })
    );
    Ok(())
}
