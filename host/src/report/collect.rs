//! One source's report entry, gathered from the events of its task.

use super::{
    Deterministic, Hashes, HookRunEntry, LimitsEntry, Outcome, PreparedEntry, Project, Requirement,
    RuntimeEntry, SourceArtifact, SourceEntry, SourceReport, rfc3339,
};
use crate::frontend::{Distribution, Frontend, Settings};
use crate::reporter::{Event, PreparedUse, Reporter};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// A reporter that keeps what one source's report needs and passes every event on.
pub struct Collector {
    inner: Arc<dyn Reporter>,
    started: (SystemTime, Instant),
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    source: Option<SourceEntry>,
    project: Option<Project>,
    deterministic: Option<Deterministic>,
    backend: Option<String>,
    requirements: Vec<Requirement>,
    hook_runs: Vec<HookRunEntry>,
    artifacts: Vec<SourceArtifact>,
    metadata: Option<(Map<String, Value>, &'static str, Option<String>)>,
    warnings: Vec<String>,
}

/// What a task was asked to do, for its entry.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The source as given (a path, or where a URL was downloaded to).
    pub path: String,
    pub url: Option<String>,
    /// `build`, `metadata` or `verify`.
    pub task: &'static str,
    pub requested: Vec<String>,
}

/// What an entry says of where its task ran: the runtime, the hooks' `config_settings`
/// and the limits.
#[derive(Debug, Clone)]
pub struct ReportContext {
    runtime: Option<RuntimeEntry>,
    config_settings: Value,
    limits: LimitsEntry,
}

impl ReportContext {
    /// A task run on `frontend`.
    pub fn of(frontend: &Frontend) -> Self {
        Self {
            runtime: Some(RuntimeEntry::of(frontend)),
            config_settings: frontend.config_settings().clone(),
            ..Self::without_runtime(frontend.settings())
        }
    }

    /// A task that needed no interpreter (a static or a wheel's metadata), with `settings`.
    pub fn without_runtime(settings: &Settings) -> Self {
        Self {
            runtime: None,
            config_settings: settings.hooks_config_settings(),
            limits: LimitsEntry::of(
                &settings.limits,
                settings.artifact_limits.max_artifact_bytes,
            ),
        }
    }
}

impl Collector {
    /// A collector passing events on to `inner`.
    pub fn new(inner: Arc<dyn Reporter>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            started: (SystemTime::now(), Instant::now()),
            state: Mutex::new(State::default()),
        })
    }

    /// The entry of the task `task` that ended with `outcome`, its artifacts published to
    /// `published` (the paths the build returned).
    pub fn finish(
        &self,
        context: &ReportContext,
        task: TaskInfo,
        outcome: Outcome,
        published: &[PathBuf],
    ) -> SourceReport {
        let mut state = std::mem::take(&mut *lock(&self.state));
        for artifact in &mut state.artifacts {
            artifact.path = published
                .iter()
                .find(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy() == artifact.name)
                })
                .map(|path| path.display().to_string());
        }
        let project = state.project.clone().or_else(|| {
            let from = |json: &Map<String, Value>| {
                Some(Project {
                    name: json.get("name")?.as_str()?.to_string(),
                    version: json.get("version")?.as_str()?.to_string(),
                })
            };
            state
                .artifacts
                .iter()
                .find_map(|a| a.metadata.as_ref().and_then(from))
                .or_else(|| state.metadata.as_ref().and_then(|(json, ..)| from(json)))
        });
        let mut source = state.source.unwrap_or(SourceEntry {
            path: task.path.clone(),
            url: None,
            kind: None,
            sha256: None,
        });
        source.url = task.url.clone();
        let (metadata, metadata_source, not_static) = match state.metadata {
            Some((json, from, why)) => (Some(json), Some(from.to_string()), why),
            None => (None, None, None),
        };
        SourceReport {
            source,
            task: task.task.to_string(),
            requested: task.requested,
            project,
            runtime: context.runtime.clone(),
            backend: state.backend,
            config_settings: context.config_settings.clone(),
            limits: context.limits.clone(),
            deterministic: state.deterministic,
            build_requirements: state.requirements,
            hook_runs: state.hook_runs,
            artifacts: state.artifacts,
            metadata,
            metadata_source,
            not_static,
            comparisons: Vec::new(),
            outcome,
            warnings: state.warnings,
            started_at: rfc3339(self.started.0),
            finished_at: rfc3339(SystemTime::now()),
            wall_time_seconds: self.started.1.elapsed().as_secs_f64(),
        }
    }

    fn record(&self, event: &Event<'_>) {
        let mut state = lock(&self.state);
        match event {
            Event::Source(facts) => {
                let entry = state.source.get_or_insert_with(|| SourceEntry {
                    path: facts.path.clone(),
                    url: None,
                    kind: None,
                    sha256: None,
                });
                // The first facts are the source's; later ones (the sdist a folder's wheel
                // is built from) only add what was not known.
                if entry.kind.is_none() {
                    entry.kind = Some(facts.kind.name().to_string());
                    entry.sha256.clone_from(&facts.sha256);
                }
                if entry.sha256.is_none() && entry.kind.as_deref() == Some(facts.kind.name()) {
                    entry.sha256.clone_from(&facts.sha256);
                }
                if let Some((name, version)) = &facts.project
                    && state.project.is_none()
                {
                    state.project = Some(Project {
                        name: name.clone(),
                        version: version.clone(),
                    });
                }
                if let Some((start, from)) = facts.clock
                    && state.deterministic.is_none()
                {
                    state.deterministic = Some(Deterministic {
                        clock_start: start,
                        clock_from: from.to_string(),
                    });
                }
            }
            Event::BuildStarted { backend, .. } => state.backend = Some(backend.to_string()),
            Event::Requirements(wheels) => {
                for wheel in *wheels {
                    if !state.requirements.iter().any(|r| r.sha256 == wheel.sha256) {
                        state.requirements.push(Requirement {
                            name: wheel.name.clone(),
                            version: wheel.version.clone(),
                            filename: wheel.filename.clone(),
                            sha256: wheel.sha256.clone(),
                        });
                    }
                }
            }
            Event::HookRun(run) => {
                let stats = run.stats;
                let (used, reason) = match &run.prepared {
                    PreparedUse::Used => (true, None),
                    PreparedUse::NotUsed(why) => (false, Some(why.clone())),
                };
                state.hook_runs.push(HookRunEntry {
                    hooks: run.hooks.iter().map(|h| h.name().to_string()).collect(),
                    ok: run.ok,
                    wall_time_seconds: run.wall_time.as_secs_f64(),
                    cpu_time_seconds: stats.and_then(|s| s.cpu).map(|d| d.as_secs_f64()),
                    peak_memory_bytes: stats.map(|s| s.peak_memory),
                    disk_high_water_bytes: stats.map(|s| s.disk_high_water),
                    output_bytes: run.output_bytes,
                    prepared_backend: PreparedEntry { used, reason },
                });
            }
            Event::Artifact(facts) => {
                let dynamic = facts
                    .metadata
                    .as_ref()
                    .and_then(|json| json.get("dynamic"))
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                state.artifacts.push(SourceArtifact {
                    name: facts.name.clone(),
                    path: None,
                    kind: kind_name(facts.dist).to_string(),
                    size: facts.size,
                    hashes: facts.sha256.clone().map(|sha256| Hashes { sha256 }),
                    metadata: facts.metadata.clone(),
                    dynamic,
                });
            }
            Event::Metadata(answer) => {
                state.metadata = Some((
                    answer.json.clone(),
                    answer.source.name(),
                    answer.not_static.clone(),
                ));
            }
            Event::Warning(warning) => state.warnings.push(warning.to_string()),
            _ => {}
        }
    }
}

impl Reporter for Collector {
    fn report(&self, event: &Event<'_>) {
        self.record(event);
        self.inner.report(event);
    }

    fn wants_backend_output(&self) -> bool {
        self.inner.wants_backend_output()
    }
}

/// What a report calls an artifact of `dist`.
pub(crate) fn kind_name(dist: Distribution) -> &'static str {
    match dist {
        Distribution::Sdist => "sdist",
        Distribution::Wheel => "wheel",
        Distribution::Editable => "editable",
        Distribution::Metadata => "metadata_dir",
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
