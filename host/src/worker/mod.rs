//! `wasm-build worker`: jobs from a Redis stream, built on a warm engine, results written
//! back to Redis. At least once, with exactly one result per job: see docs/scale-out.md.
//!
//! ```text
//! job.rs      the job a producer writes, its idempotency key, the result
//! stream.rs   Redis: reconnection, the group, read, reclaim, heartbeat, complete, dead letter
//! exec.rs     fetch the source (and the wheels to verify against), run the job's task
//!             (`service::run_task` on a warm frontend), deliver the artifacts
//! metrics.rs  Prometheus counters
//! ```
//!
//! Each of the `-j N` job threads holds its own connection and takes one job at a time: a
//! job idle past `claim_idle` anywhere in the group first (`XAUTOCLAIM`), else a new one
//! (`XREADGROUP`). While it builds, a heartbeat keeps the job from looking idle. The
//! result and the acknowledgement are one script, run once the artifacts are durable.

mod exec;
pub mod job;
pub mod metrics;
pub mod stream;

pub use exec::Engines;
pub use job::{Job, JobResult, Status};
pub use metrics::Metrics;
pub use stream::Names;

use crate::reporter::{Event, Reporter};
use job::{RESULT_SCHEMA, WASM_BUILD_VERSION};
use redis::Connection;
use redis::streams::StreamId;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};
use stream::{CommandError, Completion, Redis};

/// How long a stopping worker keeps trying to reach Redis to acknowledge finished jobs.
const ACK_GRACE: Duration = Duration::from_secs(60);

/// What a worker is told.
pub struct Config {
    /// `redis://host:port/db`.
    pub redis_url: String,
    pub names: Names,
    /// Jobs built at once.
    pub jobs: usize,
    /// A job unacknowledged this long is taken over.
    pub claim_idle: Duration,
    /// A job delivered more often than this goes to the dead-letter stream.
    pub max_deliveries: u64,
}

/// What a worker reports, as [`Event::Worker`].
#[derive(Debug)]
pub enum WorkerEvent {
    /// One structured log line (a JSON object): a job finished, was answered from the
    /// store, dead-lettered or left for another try; Redis was lost; the worker stopped.
    Log(serde_json::Value),
}

struct Shared<'a> {
    config: &'a Config,
    engines: &'a Engines,
    metrics: &'a Metrics,
    reporter: &'a dyn Reporter,
    stop: &'a AtomicBool,
}

impl Shared<'_> {
    fn log(&self, mut line: serde_json::Value) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        line["ts"] = json!(now.as_secs_f64());
        self.reporter
            .report(&Event::Worker(&WorkerEvent::Log(line)));
    }

    fn connect(&self) -> anyhow::Result<Redis> {
        Ok(Redis::open(&self.config.redis_url)?)
    }

    /// Counts and logs the connections `redis` lost since `seen`.
    fn note_failures(&self, redis: &Redis, seen: &mut u64) {
        if redis.failures > *seen {
            self.metrics
                .reconnects
                .fetch_add(redis.failures - *seen, Ordering::Relaxed);
            *seen = redis.failures;
            self.log(
                json!({"event": "redis-lost", "worker": self.config.names.consumer,
                "failures": redis.failures, "last_error": redis.last_failure}),
            );
        }
    }
}

/// Runs the worker until `stop` is set, then finishes the jobs in hand and returns.
/// Fails when Redis stays unreachable for [`ACK_GRACE`] after `stop` with results to write.
pub fn run(
    config: &Config,
    engines: &Engines,
    metrics: &Metrics,
    reporter: &dyn Reporter,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let shared = Shared {
        config,
        engines,
        metrics,
        reporter,
        stop,
    };
    let mut redis = shared.connect()?;
    redis.run("XGROUP CREATE", &|| stop.load(Ordering::SeqCst), |c| {
        stream::ensure_group(c, &config.names)
    })?;
    shared.log(json!({
        "event": "started", "worker": config.names.consumer, "stream": config.names.stream,
        "group": config.names.group, "jobs": config.jobs,
        "wasm_build_version": WASM_BUILD_VERSION, "runtime_sha256": engines.runtime_sha256(),
    }));
    let outcomes: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.jobs.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let ended = job_thread(&shared);
                    if ended.is_err() {
                        // A worker that cannot go on stops whole, for its supervisor to see.
                        stop.store(true, Ordering::SeqCst);
                    }
                    ended
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a job thread panicked")))
            })
            .collect()
    });
    // A consumer with nothing pending leaves the group, so that stopped workers do not
    // pile up in XINFO CONSUMERS; one with pending jobs stays for them to be reclaimed.
    let give_up = stream::until(Instant::now() + Duration::from_secs(5));
    let _ = redis.run("XGROUP DELCONSUMER", &give_up, |c| {
        stream::leave_if_idle(c, &config.names)
    });
    shared.log(json!({"event": "stopped", "worker": config.names.consumer}));
    outcomes.into_iter().collect()
}

fn job_thread(shared: &Shared) -> anyhow::Result<()> {
    let config = shared.config;
    let names = &config.names;
    let metrics = shared.metrics;
    let mut redis = shared.connect()?;
    let stopping = || shared.stop.load(Ordering::SeqCst);
    let mut cursor = "0-0".to_string();
    let mut seen = 0;
    while !stopping() {
        let claimed = redis.run("XAUTOCLAIM", &stopping, |c| {
            stream::claim_idle(c, names, config.claim_idle, &mut cursor)
        });
        let entry = match claimed {
            Ok(Some(entry)) => Some(entry),
            Ok(None) => match redis.run("XREADGROUP", &stopping, |c| stream::read_new(c, names)) {
                Ok(entry) => entry,
                Err(CommandError::Unreachable(_)) => break,
                Err(e) => return Err(e.into()),
            },
            Err(CommandError::Unreachable(_)) => break,
            Err(e) => return Err(e.into()),
        };
        shared.note_failures(&redis, &mut seen);
        if let Some(entry) = entry {
            metrics.in_flight.fetch_add(1, Ordering::SeqCst);
            let handled = handle(shared, &mut redis, &entry);
            metrics.in_flight.fetch_sub(1, Ordering::SeqCst);
            shared.note_failures(&redis, &mut seen);
            handled?;
        }
    }
    Ok(())
}

/// Gives up on Redis only once stopping and [`ACK_GRACE`] after the stop was first seen.
fn completing(shared: &Shared) -> impl Fn() -> bool {
    let stopped_at = std::cell::Cell::new(None::<Instant>);
    move || {
        if !shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let since = stopped_at.get().unwrap_or_else(Instant::now);
        stopped_at.set(Some(since));
        since.elapsed() > ACK_GRACE
    }
}

fn handle(shared: &Shared, redis: &mut Redis, entry: &StreamId) -> anyhow::Result<()> {
    let config = shared.config;
    let names = &config.names;
    let metrics = shared.metrics;
    let started = Instant::now();
    let give_up = completing(shared);
    let Some((owner, deliveries)) = redis.run("XPENDING", &give_up, |c| {
        stream::pending(c, names, &entry.id)
    })?
    else {
        // Acknowledged by another worker meanwhile.
        return Ok(());
    };
    if owner != names.consumer {
        return Ok(());
    }
    if deliveries > 1 {
        metrics.redeliveries.fetch_add(1, Ordering::Relaxed);
    }
    let text = stream::job_text(entry);
    let base_log = json!({"event": "job", "worker": names.consumer, "entry": entry.id,
        "deliveries": deliveries});
    let dead = |redis: &mut Redis, reason: String| -> anyhow::Result<()> {
        let job = text.clone().unwrap_or_default();
        redis.run("EVAL dead-letter", &give_up, |c| {
            stream::dead_letter(c, names, &entry.id, &reason, &job, deliveries)
        })?;
        metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let mut line = base_log.clone();
        line["status"] = json!("dead-lettered");
        line["reason"] = json!(reason);
        shared.log(line);
        Ok(())
    };
    if deliveries > config.max_deliveries {
        return dead(
            redis,
            format!(
                "delivered {deliveries} times, more than the {} allowed",
                config.max_deliveries
            ),
        );
    }
    let job = match text.as_deref().map(Job::parse) {
        Some(Ok(job)) => job,
        Some(Err(e)) => return dead(redis, crate::frontend::one_line(&e)),
        None => return dead(redis, job::JobError::NoJobField.to_string()),
    };
    let key = job.key(shared.engines.runtime_sha256());
    let stored = redis.run("HGET", &give_up, |c| stream::stored_result(c, names, &key))?;
    let stored = stored.and_then(|s| serde_json::from_str::<JobResult>(&s).ok());
    if stored.is_none() {
        let mut line = base_log.clone();
        line["event"] = json!("job-started");
        line["job_id"] = json!(job.id);
        shared.log(line);
    }
    let (result, built) = match stored {
        Some(mut result) => {
            result.cached = true;
            (result, false)
        }
        None => match build(shared, &job, &entry.id) {
            Ok(ran) => (
                JobResult {
                    schema: RESULT_SCHEMA.into(),
                    job_id: String::new(),
                    entry: String::new(),
                    key: key.clone(),
                    status: ran.status,
                    class: ran.class,
                    exit_code: ran.exit_code,
                    verdict: ran.verdict,
                    error: ran.error,
                    artifacts: ran.artifacts,
                    cached: false,
                    worker: String::new(),
                    deliveries,
                    build_seconds: ran.seconds,
                    wasm_build_version: WASM_BUILD_VERSION.into(),
                    runtime_sha256: shared.engines.runtime_sha256().into(),
                    report: ran.report,
                },
                true,
            ),
            Err(retry) => {
                let error = retry.to_string();
                redis.run("HSET errors", &give_up, |c| {
                    stream::record_error(c, names, &entry.id, &error)
                })?;
                let mut line = base_log.clone();
                line["job_id"] = json!(job.id);
                line["status"] = json!("retry");
                line["error"] = json!(error);
                shared.log(line);
                return Ok(());
            }
        },
    };
    let result = JobResult {
        job_id: job.id.clone(),
        entry: entry.id.clone(),
        worker: names.consumer.clone(),
        deliveries,
        ..result
    };
    let text = serde_json::to_string(&result)?;
    let written = redis.run("EVAL complete", &give_up, |c| {
        stream::complete(
            c,
            names,
            &Completion {
                entry: &entry.id,
                job_id: &job.id,
                key: &key,
                result: &text,
                reusable: built && result.reusable(),
            },
        )
    })?;
    if built {
        metrics.observe_build(result.build_seconds);
    } else {
        metrics.cached.fetch_add(1, Ordering::Relaxed);
    }
    if written {
        let counter = match result.status {
            Status::Ok => &metrics.ok,
            Status::Refused => &metrics.refused,
            Status::Failed => &metrics.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let mut line = base_log;
    line["job_id"] = json!(job.id);
    line["key"] = json!(key);
    line["status"] = json!(result.status);
    line["class"] = json!(result.class);
    line["cached"] = json!(!built);
    line["written"] = json!(written);
    line["seconds"] = json!(started.elapsed().as_secs_f64());
    shared.log(line);
    Ok(())
}

/// Builds the job while a heartbeat keeps it this consumer's. The heartbeat connects only
/// when a build outlasts its first beat, and ends the moment the build does: most builds
/// are shorter than a beat, and a job slot must not wait on a sleeping thread.
fn build(shared: &Shared, job: &Job, entry: &str) -> Result<exec::Ran, exec::Retry> {
    let beat = (shared.config.claim_idle / 3).max(Duration::from_millis(200));
    let (done, beats) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut redis = None;
            // Disconnected (the build ended and dropped `done`): stop.
            while let Err(RecvTimeoutError::Timeout) = beats.recv_timeout(beat) {
                if redis.is_none() {
                    redis = shared.connect().ok();
                }
                let Some(redis) = redis.as_mut() else {
                    continue;
                };
                let stop_trying = || !matches!(beats.try_recv(), Err(TryRecvError::Empty));
                let _ = redis.run("XCLAIM heartbeat", &stop_trying, |c| {
                    stream::heartbeat(c, &shared.config.names, entry)
                });
            }
        });
        let ran = exec::run(shared.engines, job);
        drop(done);
        ran
    })
}

/// Adds `job` to `stream` (what `wasm-build enqueue` does); returns the entry ID.
pub fn enqueue(con: &mut Connection, stream: &str, job: &Job) -> anyhow::Result<String> {
    let text = serde_json::to_string(job)?;
    Ok(stream::enqueue(con, stream, &text)?)
}
