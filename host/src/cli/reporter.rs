//! The terminal reporter: progress lines and a spinner on stderr (a line when a long step
//! starts, where no spinner can be drawn), the backend's output with `-v`, each sandbox
//! run's time with `-vv`, nothing but warnings with `-q`. Everything goes through
//! [`super::terminal`].

use super::terminal::{self, InertStream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasm_build::{Event, Reporter, Step};

/// How much the terminal reporter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors, warnings and the artifacts' paths (on stdout) only (`-q`).
    Quiet,
    /// Progress lines and a spinner for long steps.
    Normal,
    /// Progress lines and the backend's output as it comes (`-v`).
    Verbose,
    /// And how long each sandbox run took (`-vv`).
    Debug,
}

/// Reports to stderr.
pub struct TerminalReporter {
    verbosity: Verbosity,
    /// Whether long steps get a spinner (else a line when they start).
    spinner: bool,
    /// Put before each line of the backend's output.
    output_prefix: &'static str,
    bar: Mutex<Option<ProgressBar>>,
    output: Mutex<InertStream>,
    /// When each step under way started (for `-vv`).
    steps: Mutex<Vec<(Step, Instant)>>,
}

impl TerminalReporter {
    /// A reporter for builds: the backend's lines (with `-v`) are marked as its own. A
    /// spinner is drawn when `progress` and stderr is a terminal.
    pub fn for_builds(verbosity: Verbosity, progress: bool) -> Self {
        Self::new(verbosity, "│ ", progress && terminal::stderr_is_terminal())
    }

    /// A reporter for `runtime run`: the guest's output is the point, shown as it is
    /// (escaped).
    pub fn for_runs() -> Self {
        Self::new(Verbosity::Quiet, "", false)
    }

    fn new(verbosity: Verbosity, output_prefix: &'static str, spinner: bool) -> Self {
        Self {
            verbosity,
            spinner,
            output_prefix,
            bar: Mutex::new(None),
            output: Mutex::new(InertStream::default()),
            steps: Mutex::new(Vec::new()),
        }
    }

    /// Says what was built, as `python -m build` does: `Successfully built a.tar.gz and
    /// a.whl` (not with `-q`).
    pub fn succeeded(&self, paths: &[PathBuf]) {
        if self.verbosity == Verbosity::Quiet || paths.is_empty() {
            return;
        }
        let names: Vec<String> = paths
            .iter()
            .map(|p| {
                p.file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect();
        let listed = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        terminal::to_stderr(&terminal::success(&format!("Successfully built {listed}")));
    }

    /// Writes what is left of the backend's last line.
    pub fn finish(&self) {
        let rest = lock(&self.output).flush(self.output_prefix);
        terminal::to_stderr(&rest);
    }

    fn say(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.clear_spinner();
            terminal::to_stderr(&terminal::message("* ", text));
        }
    }

    /// A long step or run started: a spinner on a terminal; elsewhere (or `--no-progress`)
    /// a line for a step, so that a log shows what the wait is for.
    fn spin(&self, text: String, is_step: bool) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        if !self.spinner || self.verbosity >= Verbosity::Verbose {
            if is_step {
                self.say(&format!("{text}…"));
            }
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(terminal::inert(&text).replace('\n', " "));
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = lock(&self.bar).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn clear_spinner(&self) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for TerminalReporter {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::StepStarted(step) => {
                lock(&self.steps).push((*step, Instant::now()));
                self.spin(step.to_string(), true);
            }
            Event::StepFinished(step) => {
                self.clear_spinner();
                let mut steps = lock(&self.steps);
                let started = steps.iter().rposition(|(s, _)| s == step);
                if let Some((_, started)) = started.map(|i| steps.remove(i))
                    && self.verbosity >= Verbosity::Debug
                {
                    drop(steps);
                    self.say(&format!("{step}: {:.2} s", started.elapsed().as_secs_f64()));
                }
            }
            Event::InterpreterReady { steps } if self.verbosity >= Verbosity::Debug => {
                let listed: Vec<String> = steps
                    .iter()
                    .map(|(what, took)| format!("{what} {:.2} s", took.as_secs_f64()))
                    .collect();
                self.say(&format!("Interpreter ready: {}", listed.join(", ")));
            }
            Event::ScratchReady { folder, reason } if self.verbosity >= Verbosity::Debug => {
                self.say(&format!("Scratch folder: {} ({reason})", folder.display()));
            }
            Event::HooksFinished { hooks, elapsed, ok } => {
                self.clear_spinner();
                if self.verbosity >= Verbosity::Debug {
                    let names: Vec<&str> = hooks.iter().map(|hook| hook.name()).collect();
                    self.say(&format!(
                        "Ran {} in {:.2} s{}",
                        names.join(", "),
                        elapsed.as_secs_f64(),
                        if *ok { "" } else { " (failed)" }
                    ));
                }
            }
            Event::BackendBytecode(bytecode) if self.verbosity >= Verbosity::Debug => {
                self.say(&match bytecode {
                    Ok(b) => {
                        format!(
                            "In-tree backend bytecode: {} of {} files cached, {} modules imported \
                         from it, {} compiled for later builds in {:.2} s, {} seen for the \
                         first time",
                            b.cached,
                            b.sources,
                            b.imported,
                            b.compiled,
                            b.compile_time.as_secs_f64(),
                            b.first_seen
                        ) + &b
                            .compile_failure
                            .as_ref()
                            .map(|why| format!(" (compiling failed: {why})"))
                            .unwrap_or_default()
                    }
                    Err(why) => format!("In-tree backend bytecode: none ({why})"),
                });
            }
            Event::BuildStarted {
                dist,
                project,
                backend,
                python,
            } => self.say(&format!(
                "Building {} of {project} with {backend} (CPython {python} for WASI)",
                dist.label()
            )),
            Event::EnvironmentReady { contents } if !contents.is_empty() => {
                self.say(&format!("Build environment: {}", contents.join(", ")));
            }
            Event::HooksStarted { hooks } => {
                let names: Vec<&str> = hooks.iter().map(|hook| hook.name()).collect();
                self.spin(format!("Running {}", names.join(", ")), false);
            }
            Event::ArtifactBuilt { name } => self.say(&format!("Built {name}")),
            Event::RequirementFromSdist {
                requirement,
                cached: false,
            } => self.say(&format!(
                "Building build requirement {requirement} from its sdist"
            )),
            Event::RequirementFromSdist {
                requirement,
                cached: true,
            } => self.say(&format!(
                "Using build requirement {requirement}, built from its sdist earlier (cache)"
            )),
            Event::Warning(warning) => {
                self.clear_spinner();
                terminal::to_stderr(&terminal::message("warning: ", &warning.to_string()));
            }
            Event::BackendOutput(bytes) => {
                let lines = lock(&self.output).push(bytes, self.output_prefix);
                terminal::to_stderr(&lines);
            }
            _ => {}
        }
    }

    fn wants_backend_output(&self) -> bool {
        self.verbosity >= Verbosity::Verbose
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
