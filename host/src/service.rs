//! Tasks as a registry runs them: each task (build, metadata, verify) of one source on a
//! shared, warm [`Frontend`], ending in its report entry, never in an error. The command
//! line's batches, `serve` and any job engine go through [`run_task`].

use crate::frontend::{
    BuildError, BuildRequest, Distribution, Frontend, Settings, StaticAnswer,
    metadata_without_backend,
};
use crate::report::collect::{TaskInfo, kind_name};
use crate::report::{Collector, ComparisonEntry, Outcome, ReportContext, SourceReport};
use crate::reporter::Reporter;
use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasm_build_packaging::cache;
use wasm_build_packaging::verify::{self, CompareError, Verdict};

/// Exit code of `verify` when every given wheel is at least equivalent, one is not
/// identical.
pub const EXIT_EQUIVALENT: i32 = 10;
/// Exit code of `verify` when a given wheel differs.
pub const EXIT_DIFFERS: i32 = 11;

/// What to do with one source.
#[derive(Debug, Clone)]
pub enum Task {
    /// Build and publish artifacts.
    Build(BuildRequest),
    /// The wheel's core metadata as JSON; `allow_static`: from an sdist's PKG-INFO where
    /// PEP 643 allows.
    Metadata { source: PathBuf, allow_static: bool },
    /// Build the wheel from `sdist` and compare it with each of `wheels`; the wheel built
    /// is published to `outdir` when given.
    Verify {
        sdist: PathBuf,
        wheels: Vec<PathBuf>,
        outdir: Option<PathBuf>,
    },
}

impl Task {
    /// `build`, `metadata` or `verify`.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Build(_) => "build",
            Task::Metadata { .. } => "metadata",
            Task::Verify { .. } => "verify",
        }
    }

    /// What the task makes, as a report names it.
    pub fn requested(&self) -> Vec<String> {
        match self {
            Task::Build(request) => request
                .distributions
                .iter()
                .map(|d| kind_name(*d).to_string())
                .collect(),
            Task::Metadata { .. } => vec!["metadata".into()],
            Task::Verify { .. } => vec![kind_name(Distribution::Wheel).to_string()],
        }
    }

    /// The source the task reads.
    pub fn source(&self) -> &Path {
        match self {
            Task::Build(request) => &request.source,
            Task::Metadata { source, .. } => source,
            Task::Verify { sdist, .. } => sdist,
        }
    }
}

/// How a task ended: its report entry and, when it failed, the error (with what the report
/// does not hold: the backend's output, the hint).
#[derive(Debug)]
pub struct TaskResult {
    pub report: SourceReport,
    pub error: Option<BuildError>,
}

/// Runs `task` on `frontend`, its events passed on to `reporter`, and returns its report
/// entry. `url` is where the source was downloaded from, if it was.
pub fn run_task(
    frontend: &Frontend,
    task: &Task,
    url: Option<&str>,
    reporter: Arc<dyn Reporter>,
) -> TaskResult {
    match run_task_with(frontend.settings(), || Some(frontend), task, url, reporter) {
        Some(result) => result,
        None => unreachable!("the frontend is always given"),
    }
}

/// Runs `task` as [`run_task`] does, asking `frontend` for the frontend only when the task
/// needs a backend: a metadata task answered from a wheel or a static PKG-INFO (or refused
/// while reading it) does not, and its entry has no runtime. `None` when the task needed
/// the frontend and `frontend()` gave none (it could not be made).
pub fn run_task_with<'a>(
    settings: &Settings,
    frontend: impl FnOnce() -> Option<&'a Frontend>,
    task: &Task,
    url: Option<&str>,
    reporter: Arc<dyn Reporter>,
) -> Option<TaskResult> {
    let collector = Collector::new(reporter);
    let info = task_info(task, url);
    let not_static = match task {
        Task::Metadata {
            source,
            allow_static,
        } => match metadata_without_backend(source, *allow_static, settings, &*collector) {
            Ok(StaticAnswer::Answered(_)) => {
                let context = ReportContext::without_runtime(settings);
                return Some(TaskResult {
                    report: collector.finish(&context, info, Outcome::ok(), &[]),
                    error: None,
                });
            }
            Err(error) => {
                let context = ReportContext::without_runtime(settings);
                return Some(TaskResult {
                    report: collector.finish(&context, info, Outcome::of_error(&error), &[]),
                    error: Some(error),
                });
            }
            Ok(StaticAnswer::NeedsHook { not_static }) => not_static,
        },
        _ => None,
    };
    let frontend = frontend()?;
    let view = frontend.with_reporter(collector.clone());
    let context = ReportContext::of(frontend);
    let finish = |outcome: Outcome, published: &[PathBuf]| {
        collector.finish(&context, info.clone(), outcome, published)
    };
    Some(match task {
        Task::Build(request) => match view.build(request) {
            Ok(published) => TaskResult {
                report: finish(Outcome::ok(), &published),
                error: None,
            },
            Err(error) => TaskResult {
                report: finish(Outcome::of_error(&error), &[]),
                error: Some(error),
            },
        },
        Task::Metadata { source, .. } => match view.metadata_from_hook(source, not_static) {
            Ok(_) => TaskResult {
                report: finish(Outcome::ok(), &[]),
                error: None,
            },
            Err(error) => TaskResult {
                report: finish(Outcome::of_error(&error), &[]),
                error: Some(error),
            },
        },
        Task::Verify {
            sdist,
            wheels,
            outdir,
        } => {
            let (outcome, comparisons, published) = verify_task(&view, sdist, wheels, outdir);
            let (outcome, error) = match outcome {
                Ok(outcome) => (outcome, None),
                Err(error) => (Outcome::of_error(&error), Some(error)),
            };
            let mut report = finish(outcome, &published);
            report.comparisons = comparisons;
            TaskResult { report, error }
        }
    })
}

/// The report entry of a task that was not started.
pub fn skipped(settings: &Settings, task: &Task, url: Option<&str>) -> SourceReport {
    let collector = Collector::new(Arc::new(crate::reporter::Silent));
    collector.finish(
        &ReportContext::without_runtime(settings),
        task_info(task, url),
        Outcome::skipped(),
        &[],
    )
}

fn task_info(task: &Task, url: Option<&str>) -> TaskInfo {
    TaskInfo {
        path: task.source().display().to_string(),
        url: url.map(str::to_string),
        task: task.name(),
        requested: task.requested(),
    }
}

/// Builds the wheel of `sdist` and compares each of `wheels` with it.
fn verify_task(
    frontend: &Frontend,
    sdist: &Path,
    wheels: &[PathBuf],
    outdir: &Option<PathBuf>,
) -> (
    Result<Outcome, BuildError>,
    Vec<ComparisonEntry>,
    Vec<PathBuf>,
) {
    let scratch = match tempfile::Builder::new()
        .prefix("wasm-build-verify-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return (Err(anyhow::Error::from(e).into()), Vec::new(), Vec::new()),
    };
    let request = BuildRequest {
        source: sdist.to_path_buf(),
        distributions: vec![Distribution::Wheel],
        outdir: Some(
            outdir
                .clone()
                .unwrap_or_else(|| scratch.path().to_path_buf()),
        ),
    };
    let built = match frontend.build(&request) {
        Ok(built) => built,
        Err(error) => return (Err(error), Vec::new(), Vec::new()),
    };
    let published = if outdir.is_some() {
        built.clone()
    } else {
        Vec::new()
    };
    let Some(built_wheel) = built.first() else {
        return (
            Err(anyhow::anyhow!("no wheel was built").into()),
            Vec::new(),
            published,
        );
    };
    let mut comparisons = Vec::new();
    for wheel in wheels {
        match compare(frontend, built_wheel, wheel) {
            Ok(entry) => comparisons.push(entry),
            Err(error) => return (Err(error), comparisons, published),
        }
    }
    let worst =
        comparisons
            .iter()
            .map(|c| c.comparison.verdict)
            .max_by_key(|verdict| match verdict {
                Verdict::Identical => 0,
                Verdict::Equivalent => 1,
                Verdict::Differs => 2,
            });
    let outcome = match worst {
        Some(Verdict::Differs) => Outcome::with_code(EXIT_DIFFERS, Some("differs")),
        Some(Verdict::Equivalent) => Outcome::with_code(EXIT_EQUIVALENT, Some("equivalent")),
        _ => Outcome::ok(),
    };
    (Ok(outcome), comparisons, published)
}

/// Compares the wheel built (`ours`, a file the host just wrote) with `given`.
fn compare(frontend: &Frontend, ours: &Path, given: &Path) -> Result<ComparisonEntry, BuildError> {
    let name_of = |path: &Path| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let refused = |source: anyhow::Error| BuildError::Input {
        what: format!("the wheel {}", given.display()),
        source,
    };
    let built = File::open(ours)
        .with_context(|| format!("opening {}", ours.display()))
        .map_err(BuildError::Other)?;
    let file = File::open(given).map_err(|e| refused(e.into()))?;
    let (sha256, _) = cache::sha256_reader(&file).map_err(|e| refused(e.into()))?;
    let comparison = verify::compare_wheels(
        (&built, &name_of(ours)),
        (&file, &name_of(given)),
        &frontend.settings().artifact_limits,
    )
    .map_err(|e| match e {
        CompareError::Given(refusal) => refused(refusal.into()),
        built => BuildError::Other(built.into()),
    })?;
    Ok(ComparisonEntry {
        wheel: given.display().to_string(),
        sha256: Some(sha256),
        comparison,
    })
}
