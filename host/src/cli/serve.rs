//! `wasm-build serve`: one JSON job per line on stdin, one JSON result line per job on
//! stdout (in the order jobs end), up to `-j` jobs at once on one warm frontend. Ends
//! cleanly on end of input or on SIGTERM/SIGINT, once the running jobs are done; a second
//! signal stops the guests and ends at once. Format: docs/serve.md.

use super::args::SandboxArgs;
use super::reporter::{TerminalReporter, Verbosity};
use clap::Args;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasm_build::serve::{self, JobResult};
use wasm_build::{Frontend, index_hint};

/// Most bytes of one job line.
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run up to N jobs at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Stream the backends' output to stderr.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    determinism: super::registry::DeterminismArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Set by the first SIGINT/SIGTERM: no job is started after it.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Runs `serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    let settings = match args.sandbox.settings() {
        Ok(settings) => wasm_build::Settings {
            jobs: usize::from(args.jobs),
            deterministic: args.determinism.deterministic,
            ..settings
        },
        Err(e) => {
            crate::print_error(&*e);
            return ExitCode::from(2);
        }
    };
    watch_signals();
    let verbosity = if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Quiet
    };
    let terminal = Arc::new(TerminalReporter::for_builds(verbosity, false));
    let frontend = match Frontend::new(settings, terminal.clone()) {
        Ok(frontend) => frontend,
        Err(e) => {
            crate::print_error(&*e);
            crate::print_hint(index_hint(e.as_ref()));
            return ExitCode::FAILURE;
        }
    };
    let (lines, received) = mpsc::sync_channel::<(usize, Result<String, String>)>(0);
    // The reader may stay blocked in stdin after a signal: it is not joined.
    let _ = std::thread::Builder::new()
        .name("serve-stdin".into())
        .spawn(move || read_lines(lines));
    let received = Mutex::new(received);
    let stdout = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| {
                while let Some((number, line)) = next_line(&received) {
                    let result = match line.map(|l| serve::parse_job(&l)) {
                        Ok(Ok(job)) => serve::run_job(&frontend, &job, terminal.clone()),
                        Ok(Err(error)) => serve::refused_line(&frontend, number, error),
                        Err(too_long) => serve::refused_line(
                            &frontend,
                            number,
                            serde::de::Error::custom(too_long),
                        ),
                    };
                    write_result(&stdout, &result);
                }
            });
        }
    });
    terminal.finish();
    ExitCode::SUCCESS
}

/// The next line, or `None` at end of input or once a signal came.
fn next_line(
    received: &Mutex<mpsc::Receiver<(usize, Result<String, String>)>>,
) -> Option<(usize, Result<String, String>)> {
    let received = received.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if STOPPING.load(Ordering::SeqCst) {
            return None;
        }
        match received.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => return Some(line),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Sends each non-blank line of stdin (numbered from 1) until its end; a line longer than
/// [`MAX_LINE_BYTES`] or not UTF-8 is sent as the reason it is refused.
fn read_lines(lines: mpsc::SyncSender<(usize, Result<String, String>)>) {
    let mut stdin = std::io::stdin().lock();
    let mut number = 0;
    loop {
        let mut bytes = Vec::new();
        let read = (&mut stdin)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut bytes);
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        number += 1;
        let line = if bytes.len() > MAX_LINE_BYTES && !bytes.ends_with(b"\n") {
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            while matches!(stdin.read_until(b'\n', &mut rest), Ok(n) if n > 0) {
                if rest.ends_with(b"\n") {
                    break;
                }
                rest.clear();
            }
            Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"))
        } else {
            String::from_utf8(bytes).map_err(|_| "the line is not UTF-8".to_string())
        };
        if matches!(&line, Ok(text) if text.trim().is_empty()) {
            continue;
        }
        if lines.send((number, line)).is_err() {
            return;
        }
    }
}

use std::io::Read as _;

/// Writes one result line, whole, and flushes it.
fn write_result(stdout: &Mutex<std::io::Stdout>, result: &JobResult) {
    let mut line = serde_json::to_vec(result).unwrap_or_else(|e| {
        format!("{{\"id\":null,\"error\":\"the result could not be written: {e}\"}}").into_bytes()
    });
    line.push(b'\n');
    let mut stdout = stdout.lock().unwrap_or_else(|p| p.into_inner());
    // A closed stdout: the results have no reader; the jobs still end cleanly.
    let _ = stdout.write_all(&line).and_then(|()| stdout.flush());
}

/// SIGINT and SIGTERM taken by a thread: the first stops new jobs, the second stops the
/// guests and ends the process.
fn watch_signals() {
    // SAFETY: builds a local signal set and blocks it in this thread (inherited by the
    // threads started after); sigwait then takes the signals in one thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    let _ = std::thread::Builder::new()
        .name("serve-signals".into())
        .spawn(move || {
            loop {
                let mut signal = 0;
                // SAFETY: waits for a blocked signal of `set` and writes its number.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    continue;
                }
                if STOPPING.swap(true, Ordering::SeqCst) {
                    wasm_build::sandbox::stop_guests();
                    let _ = wasm_build_packaging::tempdirs::remove_held();
                    std::process::exit(128 + signal);
                }
            }
        });
}
