//! How long each step of getting the interpreter ready took: a first run unpacks the
//! runtime and compiles it, later runs load what the cache holds. `-vv` prints the steps,
//! and `bench/first_run.py` reads them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The steps that ran, in the order they ended (only those that ran: a warm cache loads).
#[derive(Debug, Default)]
pub struct Timings(Mutex<Vec<(&'static str, Duration)>>);

impl Timings {
    /// Runs `work` as `step`, recording how long it took.
    pub(crate) fn time<T>(&self, step: &'static str, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        self.record(step, started.elapsed());
        result
    }

    /// Records a step timed elsewhere.
    pub(crate) fn record(&self, step: &'static str, took: Duration) {
        super::lock(&self.0).push((step, took));
    }

    /// The steps recorded so far.
    pub fn steps(&self) -> Vec<(&'static str, Duration)> {
        super::lock(&self.0).clone()
    }
}
