//! The `wasm-build` command line. Everything but argument handling and printing lives in
//! the library; everything printed goes through `cli::terminal`.

mod cli;

use cli::args::{CacheAction, Command, RunArgs, RuntimeAction};
use cli::reporter::TerminalReporter;
use cli::terminal;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wasm_build::{BuildError, Frontend, Hint, Limit, housekeeping, runtime, sandbox};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::Hint as IndexHint;

/// Lines of the backend's output shown after a failure.
const LOG_TAIL_LINES: usize = 60;
/// Lines of the backend's output, its messages and tracebacks longer than this are cut.
const MAX_LINE_CHARS: usize = 2000;

fn main() -> ExitCode {
    let cli = match cli::parse::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    terminal::set_color(cli.color);
    match cli.command {
        Some(Command::Cache { cache_dir, action }) => done(cache_command(cache_dir, action)),
        Some(Command::Runtime { action }) => runtime_command(action),
        Some(Command::Verify(args)) => cli::verify::run(*args),
        Some(Command::Serve(args)) => cli::serve::run(*args),
        Some(Command::Guest) => done(sandbox::serve_child()),
        Some(Command::Build(args)) => cli::batch::run(*args),
        Some(Command::Worker(args)) => cli::worker::worker(*args),
        Some(Command::Enqueue(args)) => cli::worker::enqueue(*args),
        None => cli::batch::run(cli.build),
    }
}

/// Prints a failed build: the error and its causes, what the backend printed, its
/// traceback, then the hint.
fn print_build_error(error: &BuildError, verbose: bool) {
    print_error(error);
    if let Some(hook_error) = error.hook_error() {
        if !verbose && !hook_error.log.is_empty() {
            terminal::to_stderr(&format!(
                "\n--- output of the backend (last {LOG_TAIL_LINES} lines) ---\n{}",
                terminal::block(
                    "│ ",
                    &terminal::clip(
                        &tail(&hook_error.log, LOG_TAIL_LINES),
                        MAX_LINE_CHARS,
                        LOG_TAIL_LINES
                    )
                )
            ));
        }
        if let Some(traceback) = hook_error.kind.traceback() {
            terminal::to_stderr(&format!(
                "\n--- traceback in the sandbox ---\n{}",
                terminal::block("│ ", &terminal::clip(traceback, MAX_LINE_CHARS, 200))
            ));
        }
    }
    if let Some(derivation) = error.resolver_derivation() {
        if verbose {
            terminal::to_stderr(&format!(
                "\nHow the resolver got there:\n{}",
                terminal::block("  ", derivation)
            ));
        } else {
            terminal::to_stderr("(-v shows how the resolver got there)\n");
        }
    }
    print_hint(error.hint());
}

fn print_hint(hint: Option<Hint>) {
    if let Some(hint) = hint {
        terminal::to_stderr(&terminal::message("hint: ", &hint_text(hint)));
    }
}

/// The error's own message, then each cause on a line of its own; what they quote (the
/// backend's exception message, a value the user gave) is cut to a readable size.
fn print_error(error: &(dyn std::error::Error + 'static)) {
    let clip = |text: String| terminal::clip(&text, MAX_LINE_CHARS, 60);
    let mut text = terminal::message("error: ", &clip(error.to_string()));
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&terminal::message(
            "  caused by: ",
            &clip(cause.to_string()),
        ));
        source = cause.source();
    }
    terminal::to_stderr(&text);
}

/// What the user reads for a hint: the flags are the command line's.
fn hint_text(hint: Hint) -> String {
    match hint {
        Hint::RaiseLimit(limit) => {
            let flag = match limit {
                Limit::Time => "--timeout SECONDS",
                Limit::Memory => "--memory-limit MIB",
                Limit::Log => "--log-limit MIB",
                Limit::Disk => "--disk-limit MIB",
                Limit::Artifact => "--artifact-limit MIB",
            };
            format!("raise the limit with {flag}")
        }
        Hint::NoProcesses(tried) => {
            let mut unique: Vec<&str> = Vec::new();
            for what in &tried {
                if !unique.contains(&what.as_str()) {
                    unique.push(what);
                }
            }
            let shown: Vec<&str> = unique.iter().take(3).copied().collect();
            let more = unique.len().saturating_sub(shown.len());
            format!(
                "the backend tried to start {}{}, which the sandbox does not have: it saw \
                 what a machine without them shows (see \"What backends cannot do in the \
                 sandbox\" in {}/blob/main/docs/security.md)",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                env!("CARGO_PKG_REPOSITORY")
            )
        }
        Hint::GitUnanswered { command, why } => format!(
            "the backend ran {command}, which the sandbox's git emulation cannot answer \
             ({why}); give \
             the version yourself: --env SETUPTOOLS_SCM_PRETEND_VERSION=X.Y.Z (read by \
             setuptools-scm and hatch-vcs), or build from an sdist"
        ),
        Hint::PretendVersion => "give the version yourself: --env \
             SETUPTOOLS_SCM_PRETEND_VERSION=X.Y.Z (read by setuptools-scm and hatch-vcs), or \
             build from an sdist"
            .to_string(),
        Hint::PureFallback(switch) => format!(
            "the project documents a build of its pure-Python code alone: pass --env {switch}"
        ),
        Hint::Index(hint) => match hint {
            IndexHint::Offline => "the index cannot be reached; with the build requirements \
                 already in the cache from an earlier build, --offline builds without the \
                 network (and --find-links DIR adds local wheels)"
                .to_string(),
            IndexHint::NativeTls => "the index's certificate is not signed by an authority \
                 in Mozilla's roots, which wasm-build trusts by default; behind a \
                 TLS-intercepting proxy, --native-tls trusts the system's certificate store \
                 instead, or set SSL_CERT_FILE to a PEM file holding the proxy's authority"
                .to_string(),
            other => other.to_string(),
        },
        _ => String::new(),
    }
}

fn tail(log: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(log);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Exit 0, or print the error and exit 1.
fn done(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&*e);
            ExitCode::FAILURE
        }
    }
}

fn cache_command(cache_dir: Option<std::path::PathBuf>, action: CacheAction) -> anyhow::Result<()> {
    let cache = match cache_dir {
        Some(dir) => Cache::at(dir)?,
        None => Cache::from_env()?,
    };
    let (verb, freed) = match action {
        CacheAction::Dir => {
            let _ = writeln!(std::io::stdout(), "{}", cache.root().display());
            return Ok(());
        }
        CacheAction::Clean => ("Removed", housekeeping::clean(&cache)?),
        CacheAction::Prune { max_age_days } => {
            let (swept, swept_from) = housekeeping::prune_scratch()?;
            if swept.folders > 0 {
                terminal::to_stderr(&terminal::message(
                    "",
                    &format!(
                        "Removed {} scratch folder{} of killed wasm-build processes ({:.1} MiB) from {}",
                        swept.folders,
                        if swept.folders == 1 { "" } else { "s" },
                        swept.bytes as f64 / (1u64 << 20) as f64,
                        swept_from.join(" and ")
                    ),
                ));
            }
            (
                "Pruned",
                housekeeping::prune(&cache, Duration::from_secs(max_age_days * 24 * 3600))?,
            )
        }
    };
    terminal::to_stderr(&terminal::message(
        "",
        &format!(
            "{verb} {:.1} MiB from {}",
            freed as f64 / (1u64 << 20) as f64,
            cache.root().display()
        ),
    ));
    Ok(())
}

fn runtime_command(action: RuntimeAction) -> ExitCode {
    match action {
        RuntimeAction::Info { name } => done(runtime::runtime_info(name.as_deref()).map(|info| {
            let _ = std::io::stdout().write_all(info.as_bytes());
        })),
        RuntimeAction::Run(run) => {
            let RunArgs {
                with,
                sandbox,
                args,
            } = *run;
            let settings = match sandbox.settings() {
                Ok(settings) => settings,
                Err(e) => {
                    print_error(&*e);
                    return ExitCode::from(2);
                }
            };
            cli::signals::install();
            let reporter = Arc::new(TerminalReporter::for_runs());
            let frontend = match Frontend::new(settings, reporter.clone()) {
                Ok(frontend) => frontend,
                Err(e) => {
                    if let Some(signal) = cli::signals::received() {
                        return cli::signals::interrupted(signal);
                    }
                    print_error(&*e);
                    return ExitCode::FAILURE;
                }
            };
            let result = frontend.run_python(&with, &args);
            reporter.finish();
            if let Some(signal) = cli::signals::received() {
                drop(frontend);
                return cli::signals::interrupted(signal);
            }
            match result {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    print_build_error(&e, true);
                    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
                }
            }
        }
    }
}
