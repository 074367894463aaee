//! The terminal reporter: progress lines and a spinner on stderr, the backend's output with
//! `-v`, nothing but warnings with `-q`. Everything goes through [`super::terminal`].

use super::terminal::{self, InertStream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use std::time::Duration;
use wasm_build::{Event, Reporter};

/// How much the terminal reporter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors, warnings and the artifacts' paths (on stdout) only.
    Quiet,
    /// Progress lines and a spinner for long steps.
    Normal,
    /// Progress lines and the backend's output as it comes.
    Verbose,
}

/// Reports to stderr.
pub struct TerminalReporter {
    verbosity: Verbosity,
    /// Put before each line of the backend's output.
    output_prefix: &'static str,
    spinner: Mutex<Option<ProgressBar>>,
    output: Mutex<InertStream>,
}

impl TerminalReporter {
    /// A reporter for builds: the backend's lines (with `-v`) are marked as its own.
    pub fn for_builds(verbosity: Verbosity) -> Self {
        Self::new(verbosity, "│ ")
    }

    /// A reporter for `runtime run`: the guest's output is the point, shown as it is
    /// (escaped).
    pub fn for_runs() -> Self {
        Self::new(Verbosity::Quiet, "")
    }

    fn new(verbosity: Verbosity, output_prefix: &'static str) -> Self {
        Self {
            verbosity,
            output_prefix,
            spinner: Mutex::new(None),
            output: Mutex::new(InertStream::default()),
        }
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

    fn spin(&self, text: String) {
        if self.verbosity != Verbosity::Normal {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(terminal::inert(&text).replace('\n', " "));
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = lock(&self.spinner).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn clear_spinner(&self) {
        if let Some(bar) = lock(&self.spinner).take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for TerminalReporter {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::StepStarted(step) => self.spin(step.to_string()),
            Event::StepFinished(_) | Event::HooksFinished { .. } => self.clear_spinner(),
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
                self.spin(format!("Running {}", names.join(", ")));
            }
            Event::ArtifactBuilt { name } => self.say(&format!("Built {name}")),
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
        self.verbosity == Verbosity::Verbose
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
