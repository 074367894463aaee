//! `wasm-build SRC...`: one or many sources on one warm frontend, up to `-j` at once; the
//! artifact paths (or `--metadata` JSON) on stdout, a report with `--report`.

use super::args::{BuildArgs, settings_and_requests};
use super::reporter::{TerminalReporter, Verbosity};
use super::{preflight, signals, terminal};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasm_build::report::Report;
use wasm_build::service::{self, Task, TaskResult};
use wasm_build::{Event, Frontend, Reporter, Settings, index_hint};

/// Runs the build command.
pub fn run(args: BuildArgs) -> ExitCode {
    let registry = args.registry.clone();
    let (settings, requests, output) = match settings_and_requests(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            crate::print_error(&*e);
            return ExitCode::from(2);
        }
    };
    let verbosity = output.verbosity;
    signals::install();
    for request in &requests {
        // A wheel given to --metadata is not a build source.
        if registry.metadata
            && request
                .source
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("whl"))
        {
            continue;
        }
        if let Err(e) = preflight::check(request) {
            crate::print_error(&e);
            return ExitCode::from(e.exit_code());
        }
    }
    let tasks: Vec<Task> = requests
        .into_iter()
        .map(|request| {
            if registry.metadata {
                Task::Metadata {
                    source: request.source,
                    allow_static: !registry.no_static_metadata,
                }
            } else {
                Task::Build(request)
            }
        })
        .collect();
    let single = tasks.len() == 1;
    // One source talks as a single build always has; a batch says one line per source.
    let terminal_verbosity = match verbosity {
        Verbosity::Verbose | Verbosity::Debug => verbosity,
        _ if single => verbosity,
        _ => Verbosity::Quiet,
    };
    let terminal = Arc::new(TerminalReporter::for_builds(
        terminal_verbosity,
        output.progress,
    ));
    // Made once, by the first task that needs a backend: metadata answered from wheels and
    // static PKG-INFO starts no engine, runtime or guest.
    let frontend: OnceLock<anyhow::Result<Frontend>> = OnceLock::new();
    let make_frontend = || {
        frontend
            .get_or_init(|| Frontend::new(settings.clone(), terminal.clone()))
            .as_ref()
            .ok()
    };
    let progress = Progress::new(tasks.len(), !single && verbosity != Verbosity::Quiet);
    let results = run_all(
        &settings,
        &tasks,
        usize::from(registry.jobs),
        registry.fail_fast,
        &|index| {
            let reporter: Arc<dyn Reporter> = if single {
                terminal.clone()
            } else {
                Arc::new(Labelled {
                    label: tasks[index].source().display().to_string(),
                    inner: terminal.clone(),
                    progress: progress.clone(),
                })
            };
            service::run_task_with(&settings, make_frontend, &tasks[index], None, reporter)
        },
        &progress,
    );
    terminal.finish();
    progress.finish();
    if let Some(signal) = signals::received() {
        drop(frontend);
        return signals::interrupted(signal);
    }
    if let Some(Err(e)) = frontend.get() {
        crate::print_error(&**e);
        crate::print_hint(index_hint(e.as_ref()));
        return ExitCode::FAILURE;
    }

    let verbose = verbosity >= Verbosity::Verbose;
    let mut stdout = std::io::stdout().lock();
    for (task, result) in tasks.iter().zip(&results) {
        if let Some(error) = &result.error {
            if !single {
                terminal::to_stderr(&terminal::message(
                    "* ",
                    &format!("{} failed:", task.source().display()),
                ));
            }
            crate::print_build_error(error, verbose);
            continue;
        }
        let report = &result.report;
        if report.metadata.is_none() {
            let paths: Vec<std::path::PathBuf> = report
                .artifacts
                .iter()
                .filter_map(|a| a.path.as_ref().map(Into::into))
                .collect();
            // Quiet in a batch: only a single build says it.
            terminal.succeeded(&paths);
        }
        // A closed stdout (`| head`) is not a failed build.
        let _ = match &report.metadata {
            Some(json) if single => writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(json).unwrap_or_default()
            ),
            Some(json) => writeln!(
                stdout,
                "{}",
                serde_json::to_string(json).unwrap_or_default()
            ),
            None => report
                .artifacts
                .iter()
                .filter_map(|a| a.path.as_ref())
                .try_for_each(|path| writeln!(stdout, "{path}")),
        };
    }
    drop(stdout);
    let report = Report::new(results.into_iter().map(|r| r.report).collect());
    if let Some(path) = &registry.provenance
        && let Err(e) = write_provenance(path, &report)
    {
        crate::print_error(&*e);
        return ExitCode::FAILURE;
    }
    if let Some(path) = &registry.report
        && let Err(e) = write_json(path, &report)
    {
        crate::print_error(&*e);
        return ExitCode::FAILURE;
    }
    ExitCode::from(u8::try_from(report.exit_code).unwrap_or(1))
}

/// Runs each of `tasks` with `run(its index)`, up to `jobs` at once; after a failure with
/// `fail_fast`, or once `run` gives `None` (it cannot run tasks), the tasks not started
/// are reported skipped. The results are in the order of `tasks`.
pub(crate) fn run_all(
    settings: &Settings,
    tasks: &[Task],
    jobs: usize,
    fail_fast: bool,
    run: &(dyn Fn(usize) -> Option<TaskResult> + Sync),
    progress: &Progress,
) -> Vec<TaskResult> {
    let slots: Vec<Mutex<Option<TaskResult>>> = tasks.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, tasks.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= tasks.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(result) = run(index) else {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    };
                    let failed = result.report.outcome.exit_code != 0;
                    if failed && fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                    progress.done(&tasks[index], failed);
                    *lock(&slots[index]) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .zip(tasks)
        .map(|(slot, task)| {
            slot.into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .unwrap_or_else(|| TaskResult {
                    report: service::skipped(settings, task, None),
                    error: None,
                })
        })
        .collect()
}

/// Writes `value` as pretty JSON to `path`: a temporary file beside it, renamed over it.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".wasm-build-")
        .tempfile_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    serde_json::to_writer_pretty(&mut file, value)
        .map_err(std::io::Error::from)
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the provenance statement of each source of `report` that published artifacts to
/// `path`, one a line (a temporary file beside it, renamed over it).
fn write_provenance(path: &Path, report: &Report) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut text = Vec::new();
    for source in &report.sources {
        if let Some(statement) = wasm_build::report::provenance::statement(source) {
            serde_json::to_writer(&mut text, &statement)?;
            text.push(b'\n');
        }
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".wasm-build-")
        .tempfile_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(&text)
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `k/n` done, on a terminal.
#[derive(Clone)]
pub(crate) struct Progress {
    /// Whether each source's end is told (a batch, not `-q`).
    show: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress line for `total` tasks, shown when `show` and stderr is a terminal.
    pub(crate) fn new(total: usize, show: bool) -> Self {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{pos}/{len} done {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self { show, bar }
    }

    fn done(&self, task: &Task, failed: bool) {
        if !self.show {
            return;
        }
        let line = format!(
            "{} {}",
            if failed { "failed:" } else { "done:" },
            task.source().display()
        );
        self.say(&terminal::message("* ", &line));
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Writes `text` to stderr without tearing the progress line.
    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| terminal::to_stderr(text)),
            None => terminal::to_stderr(text),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One source's reporter in a batch: its warnings name it; the rest goes to the terminal.
struct Labelled {
    label: String,
    inner: Arc<TerminalReporter>,
    progress: Progress,
}

impl Reporter for Labelled {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::Warning(warning) => self.progress.say(&terminal::message(
                "warning: ",
                &format!("{}: {warning}", self.label),
            )),
            other => self.inner.report(other),
        }
    }

    fn wants_backend_output(&self) -> bool {
        self.inner.wants_backend_output()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
