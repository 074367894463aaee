//! `wasm-build worker` and `wasm-build enqueue`: the command-line side of the Redis worker
//! (the worker itself is `wasm_build::worker`). Log lines are JSON, one per line, on stderr.

use super::args::SandboxArgs;
use super::terminal;
use super::values::{self, Checked};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasm_build::worker::job::{Destination, Options, Source, Target};
use wasm_build::worker::{self, Config, Engines, Job, Metrics, Names, WorkerEvent};
use wasm_build::{Event, Reporter, Warning};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The Redis server: redis://[:PASSWORD@]HOST[:PORT][/DB].
    #[arg(long, value_name = "URL", env = "WASM_BUILD_REDIS_URL")]
    redis: String,
    /// The stream the jobs are added to.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// The consumer group the workers share (created with the stream if missing).
    #[arg(long, value_name = "NAME")]
    group: String,
    /// This worker's name in the group [default: HOSTNAME-PID].
    #[arg(long, value_name = "ID")]
    consumer: Option<String>,
    /// Jobs built at once.
    #[arg(short, long, value_name = "N", default_value_t = 1, value_parser = Checked(values::positive))]
    jobs: u64,
    /// Take over a job another worker left unacknowledged for this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = Checked(values::positive))]
    claim_idle: u64,
    /// A job delivered more often than this goes to the dead-letter stream.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = Checked(values::positive))]
    max_deliveries: u64,
    /// Where results are written [default: STREAM.results].
    #[arg(long, value_name = "NAME")]
    results_stream: Option<String>,
    /// Where jobs that cannot be run go, with the reason [default: STREAM.dead].
    #[arg(long, value_name = "NAME")]
    dead_letter_stream: Option<String>,
    /// Serve Prometheus metrics at PORT or HOST:PORT (a bare port: on 127.0.0.1).
    #[arg(long, value_name = "ADDR", value_parser = Checked(worker::metrics::parse_addr))]
    metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The Redis server: redis://[:PASSWORD@]HOST[:PORT][/DB].
    #[arg(long, value_name = "URL", env = "WASM_BUILD_REDIS_URL")]
    redis: String,
    /// The stream the jobs are added to.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// Sdists: a path, or an http(s) URL ending in `#sha256=HEX`; one job each.
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    /// Build the wheel's metadata instead of the wheel.
    #[arg(long, conflicts_with = "verify_against")]
    metadata: bool,
    /// Build the wheel and compare it with this wheel: a path, or an http(s) URL ending in
    /// `#sha256=HEX` (repeatable: one job compares with each).
    #[arg(long, value_name = "WHEEL")]
    verify_against: Vec<String>,
    /// The folder the artifacts go to (a volume the workers share) [default: ./dist;
    /// with --verify-against: none, the wheel built is dropped].
    #[arg(short, long, value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Setting passed to the backend's hooks (repeatable; a repeated key gives a list).
    #[arg(short = 'C', long = "config-setting", value_name = "KEY[=VALUE]",
          value_parser = Checked(values::config_setting))]
    config_settings: Vec<(String, String)>,
    /// Resolve build requirements as of this moment (RFC 3339, or a date).
    #[arg(long, value_name = "DATE")]
    exclude_newer: Option<String>,
    /// Constrain build requirements with this pip-style file (its text goes into the job).
    #[arg(short = 'b', long, value_name = "FILE", value_parser = Checked(values::existing_file))]
    build_constraint: Option<PathBuf>,
    /// Install only wheels pinned with a hash in --build-constraint.
    #[arg(long, requires = "build_constraint")]
    require_hashes: bool,
    /// The job's ID [default: the source's file name]; with several sources, ID-1, ID-2...
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

/// Prints the worker's log lines and the frontend's warnings as JSON lines.
struct JsonLines;

impl Reporter for JsonLines {
    fn report(&self, event: &Event<'_>) {
        let line = match event {
            Event::Worker(WorkerEvent::Log(line)) => line.clone(),
            Event::Warning(warning) => json!({"event": "warning", "text": warning_text(warning)}),
            _ => return,
        };
        terminal::to_stderr(&format!("{}\n", terminal::inert(&line.to_string())));
    }
}

fn warning_text(warning: &Warning) -> String {
    format!("{warning:?}")
}

/// `wasm-build worker`.
pub fn worker(args: WorkerArgs) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    match run_worker(args, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            JsonLines.report(&Event::Worker(&WorkerEvent::Log(
                json!({"event": "error", "error": format!("{e:#}")}),
            )));
            ExitCode::FAILURE
        }
    }
}

fn run_worker(args: WorkerArgs, stop: &AtomicBool) -> Result<()> {
    let consumer = args.consumer.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let mut names = Names::new(&args.stream, &args.group, &consumer);
    if let Some(results) = args.results_stream {
        names.results = results;
    }
    if let Some(dead) = args.dead_letter_stream {
        names.dead = dead;
    }
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.metrics {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("listening for --metrics on {addr}"))?;
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || worker::metrics::serve(listener, metrics))?;
    }
    let config = Config {
        redis_url: args.redis,
        names,
        jobs: usize::try_from(args.jobs).unwrap_or(1),
        claim_idle: Duration::from_secs(args.claim_idle),
        max_deliveries: args.max_deliveries,
    };
    let reporter: Arc<dyn Reporter> = Arc::new(JsonLines);
    // Each of the `-j` job threads builds at once: the frontend plans for that many.
    let settings = wasm_build::frontend::Settings {
        jobs: config.jobs,
        ..args.sandbox.settings()?
    };
    let engines = Engines::new(settings, reporter.clone())?;
    worker::run(&config, &engines, &metrics, reporter.as_ref(), stop)
}

/// SIGTERM or SIGINT: stop taking jobs, finish those in hand. A second one: exit now.
fn watch_signals(stop: Arc<AtomicBool>) {
    // SAFETY: sigemptyset initializes the set before sigaddset reads it; both only write
    // the local set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    };
    // SAFETY: changes this thread's signal mask only (threads started later inherit it);
    // `set` is initialized.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut signal = 0;
                // SAFETY: waits for one of the blocked signals of `set` and writes its number.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    continue;
                }
                if stop.swap(true, Ordering::SeqCst) {
                    std::process::exit(128 + signal);
                }
                JsonLines.report(&Event::Worker(&WorkerEvent::Log(json!({
                    "event": "stopping", "signal": signal,
                    "note": "finishing the jobs in hand; a second signal exits at once"
                }))));
            }
        });
}

/// `wasm-build enqueue`: one job per source; prints each entry ID.
pub fn enqueue(args: EnqueueArgs) -> ExitCode {
    match run_enqueue(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            terminal::to_stderr(&terminal::message("error: ", &format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run_enqueue(args: EnqueueArgs) -> Result<()> {
    let verify = !args.verify_against.is_empty();
    let outdir = match args.outdir {
        Some(dir) => Some(dir),
        None if verify => None,
        None => Some(PathBuf::from("dist")),
    };
    let artifacts = match outdir {
        Some(outdir) => {
            std::fs::create_dir_all(&outdir)
                .with_context(|| format!("creating {}", outdir.display()))?;
            let outdir = std::fs::canonicalize(&outdir)?;
            Some(Destination {
                dir: Some(outdir.display().to_string()),
                put: None,
            })
        }
        None => None,
    };
    let verify_against = args
        .verify_against
        .iter()
        .map(|wheel| source(wheel))
        .collect::<Result<Vec<_>>>()?;
    let target = if verify {
        Target::Verify
    } else if args.metadata {
        Target::Metadata
    } else {
        Target::Wheel
    };
    let mut config_settings: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in args.config_settings {
        let merged = match config_settings.remove(&key) {
            None => Value::String(value),
            Some(Value::Array(mut items)) => {
                items.push(Value::String(value));
                Value::Array(items)
            }
            Some(first) => Value::Array(vec![first, Value::String(value)]),
        };
        config_settings.insert(key, merged);
    }
    let constraints = match &args.build_constraint {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let options = Options {
        config_settings,
        limits: Default::default(),
        constraints,
        require_hashes: args.require_hashes,
        exclude_newer: args.exclude_newer,
    };
    let client = redis::Client::open(args.redis.as_str()).context("the --redis URL")?;
    let mut con = client.get_connection().context("connecting to Redis")?;
    let many = args.sources.len() > 1;
    for (n, given) in args.sources.iter().enumerate() {
        let source = source(given)?;
        let name = given
            .split(['#', '?'])
            .next()
            .and_then(|s| s.rsplit('/').next())
            .unwrap_or(given)
            .to_string();
        let id = match (&args.id, many) {
            (Some(id), true) => format!("{id}-{}", n + 1),
            (Some(id), false) => id.clone(),
            (None, _) => name,
        };
        let job = Job {
            id,
            source,
            build: vec![target],
            verify_against: verify_against.clone(),
            options: options.clone(),
            artifacts: artifacts.clone(),
        };
        let text = serde_json::to_string(&job)?;
        Job::parse(&text).with_context(|| format!("the job for {given}"))?;
        let entry = worker::enqueue(&mut con, &args.stream, &job)?;
        let _ = std::io::Write::write_all(&mut std::io::stdout(), format!("{entry}\n").as_bytes());
    }
    Ok(())
}

/// A path (hashed here) or `URL#sha256=HEX`.
fn source(given: &str) -> Result<Source> {
    if given.starts_with("http://") || given.starts_with("https://") {
        let Some((url, sha)) = given.split_once("#sha256=") else {
            bail!("{given}: a URL needs `#sha256=HEX` at its end");
        };
        return Ok(Source {
            url: Some(url.to_string()),
            path: None,
            sha256: sha.to_ascii_lowercase(),
        });
    }
    let path = std::fs::canonicalize(given).with_context(|| format!("the source {given}"))?;
    let (sha256, _) = wasm_build_packaging::cache::sha256_file(&path)?;
    Ok(Source {
        url: None,
        path: Some(path.display().to_string()),
        sha256,
    })
}
