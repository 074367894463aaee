//! A spinner on stderr for the steps that can take seconds (compiling the interpreter,
//! making a build environment, running a hook). Hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// Runs `work` while a spinner shows `message`; with `show` false, just runs it.
pub fn spin<T>(show: bool, message: impl Into<String>, work: impl FnOnce() -> T) -> T {
    if !show {
        return work();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = work();
    bar.finish_and_clear();
    result
}
