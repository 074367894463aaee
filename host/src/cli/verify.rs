//! `wasm-build verify SDIST WHEEL...`: builds the wheel from the sdist in the sandbox and
//! compares each given wheel with it.

use super::args::SandboxArgs;
use super::reporter::{TerminalReporter, Verbosity};
use super::terminal;
use super::values::{self, Checked};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wasm_build::report::Report;
use wasm_build::service::{self, Task};
use wasm_build::{Frontend, Settings, index_hint};
use wasm_build_packaging::verify::Verdict;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The sdist (.tar.gz) the wheels claim to be built from.
    sdist: PathBuf,
    /// Wheels to compare with the one built from SDIST.
    #[arg(required = true, value_name = "WHEEL")]
    wheels: Vec<PathBuf>,
    /// Also write the wheel built into DIR.
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
    /// Write a JSON report (docs/report.md) with the differences.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Stream the backend's output.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Print only the verdicts and errors.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    determinism: super::registry::DeterminismArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Runs `verify`. Exit codes: 0 every wheel identical, 10 equivalent (none differs), 11 a
/// wheel differs, else the build's class (docs/cli.md).
pub fn run(args: VerifyArgs) -> ExitCode {
    let settings = match args.sandbox.settings() {
        Ok(settings) => Settings {
            config_settings: args.config_settings,
            deterministic: args.determinism.deterministic,
            ..settings
        },
        Err(e) => {
            crate::print_error(&*e);
            return ExitCode::from(2);
        }
    };
    let verbosity = match (args.verbose, args.quiet) {
        (true, _) => Verbosity::Verbose,
        (false, true) => Verbosity::Quiet,
        (false, false) => Verbosity::Normal,
    };
    let terminal = Arc::new(TerminalReporter::for_builds(verbosity, true));
    let frontend = match Frontend::new(settings, terminal.clone()) {
        Ok(frontend) => frontend,
        Err(e) => {
            crate::print_error(&*e);
            crate::print_hint(index_hint(e.as_ref()));
            return ExitCode::FAILURE;
        }
    };
    let task = Task::Verify {
        sdist: args.sdist,
        wheels: args.wheels,
        outdir: args.outdir,
    };
    let result = service::run_task(&frontend, &task, None, terminal.clone());
    terminal.finish();
    if let Some(error) = &result.error {
        crate::print_build_error(error, verbosity == Verbosity::Verbose);
    }
    let mut stdout = std::io::stdout().lock();
    for comparison in &result.report.comparisons {
        let verdict = match comparison.comparison.verdict {
            Verdict::Identical => "identical",
            Verdict::Equivalent => "equivalent",
            Verdict::Differs => "differs",
        };
        let _ = writeln!(stdout, "{verdict} {}", comparison.wheel);
        let _ = stdout.flush();
        let mut text = String::new();
        for difference in &comparison.comparison.differences {
            text.push_str(&terminal::message(
                "  ",
                &format!("{}: {}", difference.member, difference.detail),
            ));
        }
        if comparison.comparison.more_differences > 0 {
            text.push_str(&terminal::message(
                "  ",
                &format!(
                    "… and {} more differences",
                    comparison.comparison.more_differences
                ),
            ));
        }
        terminal::to_stderr(&text);
    }
    drop(stdout);
    let report = Report::new(vec![result.report]);
    if let Some(path) = &args.report
        && let Err(e) = super::batch::write_json(path, &report)
    {
        crate::print_error(&*e);
        return ExitCode::FAILURE;
    }
    ExitCode::from(u8::try_from(report.exit_code).unwrap_or(1))
}
