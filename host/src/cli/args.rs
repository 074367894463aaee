//! The command line: flags into a [`BuildRequest`] and [`Settings`].

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wasm_build::runtime::RuntimeChoice;
use wasm_build::{BuildRequest, Distribution, Isolation, Limits, Settings};
use wasm_build_packaging::index::{ExcludeNewer, IndexOptions};

use super::reporter::Verbosity;
use super::terminal::{ColorChoice, quote};
use super::values::{self, Checked};
use serde_json::{Map, Value};

/// Build Python sdists and wheels with the build backend sandboxed in CPython for WASI.
///
/// The backend (setuptools, flit, hatchling, ...) runs inside wasmtime and sees only a
/// scratch copy of the source, its output folder and its build requirements: no network,
/// no host files, no host environment. Every artifact is verified before it is written.
/// Pure-Python projects only: nothing is compiled (the sandbox has no compiler).
#[derive(Debug, Parser)]
#[command(
    name = "wasm-build",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = concat!(
        "`wasm-build SOURCE` is `wasm-build build SOURCE`; to build a folder named like a \
         command (cache, runtime, build), write `wasm-build build cache` or `./cache`.\n\n\
         Exit codes: 0 success, 1 wasm-build failed, 2 bad command line, 3 invalid project \
         or sdist, 4 build requirements, 5 the backend failed, 6 a sandbox limit, 7 an \
         artifact refused, 8 the project compiles native code, 10/11 verify found an \
         equivalent/differing wheel, 130/143 interrupted (SIGINT/SIGTERM); several sources: \
         the most severe.\n\n\
         Documentation: ",
        env!("CARGO_PKG_REPOSITORY"),
        "/blob/main/docs/cli.md"
    )
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub build: BuildArgs,
    /// When to colour wasm-build's messages on stderr.
    #[arg(long, value_enum, global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a project folder or an sdist (what `wasm-build SOURCE` does).
    Build(Box<BuildArgs>),
    /// Inspect or clean the cache.
    Cache {
        /// The cache folder [default: $XDG_CACHE_HOME/wasm-build, else ~/.cache/wasm-build].
        #[arg(long, value_name = "DIR", env = "WASM_BUILD_CACHE_DIR", global = true)]
        cache_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Show the interpreters wasm-build can run backends in.
    Runtime {
        #[command(subcommand)]
        action: RuntimeAction,
    },
    /// Build jobs from a Redis stream, writing each result to a results stream
    /// (docs/scale-out.md).
    Worker(Box<super::worker::WorkerArgs>),
    /// Add build jobs for sdists to a Redis stream (docs/scale-out.md).
    Enqueue(Box<super::worker::EnqueueArgs>),
    /// Build the wheel from an sdist in the sandbox and compare given wheels with it:
    /// identical (exit 0), equivalent (10) or differs (11).
    Verify(Box<super::verify::VerifyArgs>),
    /// Run jobs read from stdin, one JSON object a line (`id`, `path` or `url` with
    /// `sha256`, `distributions`, `outdir`); write one JSON result line per job.
    Serve(Box<super::serve::ServeArgs>),
    /// Internal: run one guest for a parent wasm-build (sandbox::Isolation::Process).
    #[command(name = "__guest", hide = true)]
    Guest,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Print the cache folder.
    Dir,
    /// Remove everything in the cache.
    Clean,
    /// Remove what current builds no longer use: old build environments and in-tree
    /// backends' bytecode, stale compiled modules and runtimes, leftovers of interrupted
    /// writes, and the scratch folders in $TMPDIR and /dev/shm of wasm-build processes that
    /// were killed.
    Prune {
        /// Remove build environments and bytecode not used for this many days.
        #[arg(long, default_value_t = 30)]
        max_age_days: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuntimeAction {
    /// Print each runtime's version, pinned hashes and provenance, and the wasmtime version.
    Info {
        /// Only this runtime.
        #[arg(value_parser = Checked(values::runtime_name))]
        name: Option<String>,
    },
    /// Run the sandboxed interpreter, as a backend would be run: `-c CODE`, `-m MODULE` or
    /// a script path inside the sandbox, with requirements from the index on sys.path.
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A requirement to install into the sandbox's environment (repeatable).
    #[arg(long = "with", value_name = "REQUIREMENT")]
    pub with: Vec<String>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Arguments for the interpreter.
    #[arg(last = true, required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Project folders or sdists (.tar.gz or .zip) to build [default: .]; with --metadata, also
    /// wheels (.whl).
    #[arg(value_name = "SOURCE")]
    sources: Vec<PathBuf>,

    /// Build an sdist.
    #[arg(short, long)]
    sdist: bool,
    /// Build a wheel (from the source folder directly when given alone).
    #[arg(short, long)]
    wheel: bool,
    /// Build a PEP 660 editable wheel.
    #[arg(long)]
    editable: bool,
    /// Write the wheel's .dist-info folder (prepare_metadata_for_build_wheel).
    #[arg(long)]
    metadata_dir: bool,

    /// Output folder [default: SOURCE/dist, or the sdist's folder].
    #[arg(short, long, value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Setting passed to the backend's hooks (repeatable; a repeated key gives a list).
    #[arg(
        short = 'C',
        long = "config-setting",
        value_name = "KEY[=VALUE]",
        value_parser = Checked(values::config_setting)
    )]
    config_settings: Vec<(String, String)>,
    /// The hooks' settings as one JSON object, nested values allowed (instead of -C).
    #[arg(
        long,
        value_name = "JSON",
        conflicts_with = "config_settings",
        value_parser = Checked(values::config_json)
    )]
    config_json: Option<Map<String, Value>>,

    /// Stream the backend's output and, on failure, how the resolver got there; -vv also
    /// times each step and each sandbox run.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Print only errors, warnings and the paths of the artifacts.
    #[arg(short, long)]
    quiet: bool,
    /// No spinner: a line says when a long step starts (as when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,

    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    pub registry: super::registry::RegistryArgs,
}

/// What every command that runs the guest takes: the environment it sees, where its
/// requirements come from, which interpreter, and its limits.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Environment variable for the backend: KEY=VALUE, or KEY to copy the host's value.
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// The cache folder [default: $XDG_CACHE_HOME/wasm-build, else ~/.cache/wasm-build].
    #[arg(long, value_name = "DIR", env = "WASM_BUILD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Where builds' scratch folders go [default: $TMPDIR when set; else /dev/shm (memory)
    /// when the running builds' limits fit in half its room and of the free memory; else
    /// /tmp].
    #[arg(
        long,
        value_name = "DIR",
        env = "WASM_BUILD_SCRATCH_DIR",
        value_parser = Checked(values::existing_dir)
    )]
    scratch_dir: Option<PathBuf>,
    #[command(flatten)]
    index: IndexArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

impl SandboxArgs {
    /// The frontend settings these give; guests run in child processes of this binary.
    pub fn settings(self) -> Result<Settings> {
        let mib = |v: u64| v.saturating_mul(1 << 20);
        let no_prepared_backends = self.runtime.no_prepared_backend;
        let no_build_requirements_from_sdist = self.index.no_build_requirements_from_sdist;
        let mut settings = Settings {
            isolation: guest_processes()?,
            runtime: runtime_choice(self.runtime),
            index: index_options(&self.index),
            constraints: self
                .index
                .build_constraint
                .map(|path| (path, self.index.require_hashes)),
            guest_env: self
                .env
                .iter()
                .map(|s| guest_env_var(s))
                .collect::<Result<_>>()?,
            limits: self.limits.sandbox(),
            no_cache: self.index.no_cache,
            cache_dir: self.cache_dir,
            scratch_dir: self.scratch_dir,
            no_prepared_backends,
            no_build_requirements_from_sdist,
            ..Settings::default()
        };
        settings.artifact_limits.max_artifact_bytes = mib(self.limits.artifact_limit);
        settings.artifact_limits.archive.max_unpacked_bytes = mib(self.limits.artifact_limit);
        Ok(settings)
    }
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Build requirements")]
struct IndexArgs {
    /// Package index (PEP 691 JSON or PEP 503 HTML) [default: https://pypi.org/simple/].
    #[arg(
        long,
        value_name = "URL",
        env = "WASM_BUILD_INDEX_URL",
        value_parser = Checked(values::index_url)
    )]
    index_url: Option<String>,
    /// Another index to search as well (repeatable).
    #[arg(long, value_name = "URL", value_parser = Checked(values::index_url))]
    extra_index_url: Vec<String>,
    /// A folder of wheels or the URL of a page listing them (repeatable).
    #[arg(
        short,
        long,
        value_name = "DIR|URL",
        value_parser = Checked(values::find_links)
    )]
    find_links: Vec<String>,
    /// Ignore the package index: only --find-links.
    #[arg(long, conflicts_with_all = ["index_url", "extra_index_url"])]
    no_index: bool,
    /// Use only the cache and local --find-links folders.
    #[arg(long)]
    offline: bool,
    /// Resolve build requirements as of this moment: files uploaded then or later do not
    /// exist (RFC 3339, or a date meaning the end of that day in UTC).
    #[arg(long, value_name = "DATE")]
    exclude_newer: Option<ExcludeNewer>,
    /// Trust the system's certificate store instead of Mozilla's roots.
    #[arg(long)]
    native_tls: bool,
    /// Revalidate cached index pages.
    #[arg(long)]
    refresh: bool,
    /// Use a throw-away cache.
    #[arg(long)]
    no_cache: bool,
    /// Constrain build requirements with a pip-style file (`name==version --hash=sha256:...`).
    #[arg(
        short = 'b',
        long,
        value_name = "FILE",
        value_parser = Checked(values::existing_file)
    )]
    build_constraint: Option<PathBuf>,
    /// Install only wheels pinned with a hash in --build-constraint.
    #[arg(long, requires = "build_constraint")]
    require_hashes: bool,
    /// Refuse a build requirement that has no pure-Python wheel instead of building its
    /// wheel from its sdist in the sandbox (as pip's `--only-binary :all:`).
    #[arg(long)]
    no_build_requirements_from_sdist: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Interpreter")]
struct RuntimeArgs {
    /// Runtime to run the backend in (see `wasm-build runtime info`).
    #[arg(
        long,
        value_name = "NAME",
        env = "WASM_BUILD_RUNTIME",
        conflicts_with = "python_wasm",
        value_parser = Checked(values::runtime_name)
    )]
    runtime: Option<String>,
    /// Run this python.wasm instead (unpinned: at your own risk).
    #[arg(
        long,
        value_name = "PATH",
        env = "WASM_BUILD_PYTHON_WASM",
        value_parser = Checked(values::existing_file)
    )]
    python_wasm: Option<PathBuf>,
    /// Prefix folder holding lib/python3.X for --python-wasm, mounted at /usr/local.
    #[arg(
        long,
        value_name = "DIR",
        requires = "python_wasm",
        value_parser = Checked(values::existing_dir)
    )]
    python_home: Option<PathBuf>,
    /// Import the build backend afresh in every hook run. By default a backend is imported
    /// once, in a run with an empty project, and later runs start from a copy of that
    /// interpreter's memory; this flag is for a backend whose import goes wrong that way.
    #[arg(long)]
    no_prepared_backend: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Wall-clock time each backend run may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = Checked(values::positive))]
    timeout: u64,
    /// Memory the interpreter may use.
    #[arg(long, value_name = "MIB", default_value_t = 2048, value_parser = Checked(values::positive))]
    memory_limit: u64,
    /// Output the backend may print per run.
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = Checked(values::positive))]
    log_limit: u64,
    /// Bytes the sandbox's writable folders may hold together.
    #[arg(long, value_name = "MIB", default_value_t = 4096, value_parser = Checked(values::positive))]
    disk_limit: u64,
    /// Size of each artifact, and of what it unpacks to.
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = Checked(values::positive))]
    artifact_limit: u64,
}

/// How the terminal reporter of a build talks.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub verbosity: Verbosity,
    /// A spinner for long steps on a terminal (`--no-progress`: a line instead).
    pub progress: bool,
}

/// The build's settings, a request per source (`.` when none is given) and how much to say.
pub fn settings_and_requests(args: BuildArgs) -> Result<(Settings, Vec<BuildRequest>, Output)> {
    let mut distributions = Vec::new();
    for (wanted, dist) in [
        (args.sdist, Distribution::Sdist),
        (args.wheel, Distribution::Wheel),
        (args.editable, Distribution::Editable),
        (args.metadata_dir, Distribution::Metadata),
    ] {
        if wanted {
            distributions.push(dist);
        }
    }
    let verbosity = match (args.verbose, args.quiet) {
        (0, true) => Verbosity::Quiet,
        (0, false) => Verbosity::Normal,
        (1, _) => Verbosity::Verbose,
        _ => Verbosity::Debug,
    };
    let output = Output {
        verbosity,
        progress: !args.no_progress,
    };
    let settings = Settings {
        config_settings: args.config_settings,
        config_json: args.config_json,
        jobs: usize::from(args.registry.jobs),
        deterministic: args.registry.determinism.deterministic,
        ..args.sandbox.settings()?
    };
    let mut sources = args.sources;
    if let Some(file) = &args.registry.sources_from {
        sources.extend(super::registry::read_sources_file(file)?);
    }
    if sources.is_empty() {
        sources.push(PathBuf::from("."));
    }
    let requests = sources
        .into_iter()
        .map(|source| BuildRequest {
            source,
            distributions: distributions.clone(),
            outdir: args.outdir.clone(),
        })
        .collect();
    Ok((settings, requests, output))
}

fn runtime_choice(args: RuntimeArgs) -> Option<RuntimeChoice> {
    match (args.runtime, args.python_wasm) {
        (_, Some(module)) => Some(RuntimeChoice::Local {
            module,
            home: args.python_home,
        }),
        (Some(name), None) => Some(RuntimeChoice::Named(name)),
        (None, None) => None,
    }
}

fn index_options(args: &IndexArgs) -> IndexOptions {
    IndexOptions {
        index_url: args.index_url.clone(),
        extra_index_urls: args.extra_index_url.clone(),
        find_links: args.find_links.clone(),
        no_index: args.no_index,
        offline: args.offline,
        refresh: args.refresh,
        native_tls: args.native_tls,
        exclude_newer: args.exclude_newer,
    }
}

impl LimitArgs {
    fn sandbox(&self) -> Limits {
        let mib = |v: u64| v.saturating_mul(1 << 20);
        Limits {
            wall_time: Duration::from_secs(self.timeout),
            memory: mib(self.memory_limit),
            log: usize::try_from(mib(self.log_limit)).unwrap_or(usize::MAX),
            disk: mib(self.disk_limit),
        }
    }
}

/// `KEY=VALUE`, or `KEY` to copy the host's value.
fn guest_env_var(spec: &str) -> Result<(String, String)> {
    let (key, value) = match spec.split_once('=') {
        Some((key, value)) => (key.to_string(), value.to_string()),
        None => {
            let value = std::env::var(spec)
                .with_context(|| format!("--env {}: the host has no such variable", quote(spec)))?;
            (spec.to_string(), value)
        }
    };
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        bail!("--env {}: not a valid KEY=VALUE", quote(spec));
    }
    Ok((key, value))
}

/// Guests run in child processes of this binary (`wasm-build __guest`): their code carries
/// no interruption checks, and a run past a limit is killed.
fn guest_processes() -> Result<Isolation> {
    Ok(Isolation::Process {
        program: std::env::current_exe().context("finding the wasm-build executable")?,
        args: vec!["__guest".to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn env_vars_are_explicit() {
        assert_eq!(guest_env_var("A=1").unwrap(), ("A".into(), "1".into()));
        assert!(guest_env_var("=1").is_err());
        assert!(guest_env_var("WASM_BUILD_SURELY_UNSET_VARIABLE").is_err());
    }
}
