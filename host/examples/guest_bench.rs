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
use std::sync::Arc;
use wasm_build::runtime::RuntimeChoice;
use wasm_build::sandbox::Mount;
use wasm_build::{GuestBench, Hook, Isolation, Settings, Silent};

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
    let runtime = match (&options.python_wasm, &options.runtime) {
        (Some(module), _) => RuntimeChoice::Local {
            module: module.clone(),
            home: options.python_home.clone(),
        },
        (None, Some(name)) => RuntimeChoice::Named(name.clone()),
        (None, None) => RuntimeChoice::Default,
    };
    let isolation = match &options.guest_process {
        Some(program) => Isolation::Process {
            program: program.clone(),
            args: vec!["__guest".into()],
        },
        None => Isolation::Thread,
    };
    let mut guest_env = vec![("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string())];
    guest_env.extend(options.env.iter().cloned());
    let settings = Settings {
        runtime: Some(runtime),
        isolation,
        guest_env,
        no_prepared_backends: options.no_prepared_backend,
        ..Settings::default()
    };
    let hook = match options.hook.as_str() {
        "build_wheel" => Hook::BuildWheel,
        "build_sdist" => Hook::BuildSdist,
        other => bail!("unsupported hook {other}"),
    };
    let bench = GuestBench::new(
        settings,
        Arc::new(Silent),
        options.project.as_deref(),
        &options.with,
    )?;

    let mut times = Vec::new();
    // One warm-up run, not counted: the first instance pays for page faults of the module
    // (and makes the prepared backend when the cache has none).
    for run in 0..=options.runs {
        // The host's own work between two runs of a build (staging, verifying), untimed.
        std::thread::sleep(options.gap);
        let elapsed = if options.project.is_some() {
            bench.time_hooks(hook)?
        } else {
            bench.time_python(&options.args, &options.mounts)?
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
            "runtime": bench.runtime_id(),
            "python": bench.python_full_version(),
            "runs_ms": times,
            "median_ms": median,
            "env": bench.environment(),
            "site_packages": bench.site_packages(),
        })
    );
    Ok(())
}
