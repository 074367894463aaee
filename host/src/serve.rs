//! Jobs as a long-lived worker takes them (`wasm-build serve`, a queue worker): a [`Job`]
//! is one JSON object; [`run_job`] runs it on a shared, warm [`Frontend`] and always ends
//! in a [`JobResult`], the job's report entry (docs/serve.md). A source given by URL is
//! downloaded by the host and its sha256 checked before anything reads it.

use crate::frontend::{BuildError, BuildRequest, Distribution, Frontend};
use crate::report::collect::{Collector, TaskInfo};
use crate::report::{ReportContext, SourceReport};
use crate::reporter::Reporter;
use crate::service::{self, Task};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

/// One job: what to do with which source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Echoed in the result: results come in the order jobs end.
    #[serde(default)]
    pub id: Option<String>,
    /// `build` (the default) or `metadata`.
    #[serde(default)]
    pub task: JobTask,
    /// A project folder or sdist on this machine; or else `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An sdist to download (`http`/`https`), with its `sha256`.
    #[serde(default)]
    pub url: Option<String>,
    /// The sdist's sha256 (hex), required with `url`; checked before anything reads it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// What to build: `sdist`, `wheel`, `editable`, `metadata` (none: an sdist, then the
    /// wheel from it, as `python -m build`).
    #[serde(default)]
    pub distributions: Vec<String>,
    /// Where built artifacts go (default as on the command line).
    #[serde(default)]
    pub outdir: Option<PathBuf>,
    /// With `metadata`: run the backend's hook even where PKG-INFO is static.
    #[serde(default)]
    pub no_static_metadata: bool,
}

/// A job's task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobTask {
    #[default]
    Build,
    Metadata,
}

/// What a job ended in: its id and its report entry (docs/report.md).
#[derive(Debug, Serialize)]
pub struct JobResult {
    pub id: Option<String>,
    #[serde(flatten)]
    pub report: SourceReport,
}

/// The largest sdist a job may download, in bytes, unless the artifact limit is lower.
const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// Reads one job line. A line that is no job still gets a result: see [`refused_line`].
pub fn parse_job(line: &str) -> Result<Job, serde_json::Error> {
    serde_json::from_str(line)
}

/// The result of input line `number` that is not a job (`error` says why).
pub fn refused_line(frontend: &Frontend, number: usize, error: serde_json::Error) -> JobResult {
    let job = Job {
        path: Some(PathBuf::from(format!("<job line {number}>"))),
        ..Job::default()
    };
    let error = BuildError::Input {
        what: format!("job line {number}"),
        source: anyhow::Error::from(error).context("it is not a job (docs/serve.md)"),
    };
    refused(frontend, &job, &error)
}

/// Runs `job` on `frontend`, its events passed on to `reporter`. Never fails: a job that
/// cannot run ends in a result whose outcome says why.
pub fn run_job(frontend: &Frontend, job: &Job, reporter: Arc<dyn Reporter>) -> JobResult {
    match prepare(frontend, job) {
        Ok((task, _download)) => JobResult {
            id: job.id.clone(),
            // `_download` (the downloaded sdist's folder) lives until the task ends.
            report: service::run_task(frontend, &task, job.url.as_deref(), reporter).report,
        },
        Err(error) => refused(frontend, job, &error),
    }
}

/// The task of `job`, and the folder holding its download if it has one.
fn prepare(
    frontend: &Frontend,
    job: &Job,
) -> Result<(Task, Option<tempfile::TempDir>), BuildError> {
    let input = |what: &str, source: anyhow::Error| BuildError::Input {
        what: what.to_string(),
        source,
    };
    let (source, download) = match (&job.path, &job.url) {
        (Some(path), None) => (path.clone(), None),
        (None, Some(url)) => {
            let (dir, path) = download(frontend, url, job.sha256.as_deref())?;
            (path, Some(dir))
        }
        _ => {
            return Err(input(
                "the job",
                anyhow!("it needs exactly one of `path` and `url`"),
            ));
        }
    };
    let task = match job.task {
        JobTask::Metadata => Task::Metadata {
            source,
            allow_static: !job.no_static_metadata,
        },
        JobTask::Build => Task::Build(BuildRequest {
            source,
            distributions: job
                .distributions
                .iter()
                .map(|name| distribution(name))
                .collect::<Result<_, _>>()
                .map_err(|e| input("the job's `distributions`", e))?,
            outdir: job.outdir.clone(),
        }),
    };
    Ok((task, download))
}

fn distribution(name: &str) -> anyhow::Result<Distribution> {
    Ok(match name {
        "sdist" => Distribution::Sdist,
        "wheel" => Distribution::Wheel,
        "editable" => Distribution::Editable,
        "metadata" => Distribution::Metadata,
        other => {
            return Err(anyhow!(
                "`{other}` is none of sdist, wheel, editable, metadata"
            ));
        }
    })
}

/// Downloads the sdist at `url` into a new folder and checks it against `sha256`; on a
/// mismatch nothing is left on disk.
fn download(
    frontend: &Frontend,
    url: &str,
    sha256: Option<&str>,
) -> Result<(tempfile::TempDir, PathBuf), BuildError> {
    let refused = |source: anyhow::Error| BuildError::Input {
        what: format!("the job's source {url}"),
        source,
    };
    let expected = match sha256 {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            hex.to_ascii_lowercase()
        }
        Some(_) => return Err(refused(anyhow!("`sha256` is not 64 hex digits"))),
        None => return Err(refused(anyhow!("a `url` needs its `sha256`"))),
    };
    let parsed = Url::parse(url).map_err(|e| refused(e.into()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused(anyhow!("only http and https URLs are downloaded")));
    }
    let name = parsed
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    // The file keeps the URL's name (the sdist's name says its project), if it is a plain one.
    let plain = !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if !plain || !(name.ends_with(".tar.gz") || name.ends_with(".zip")) {
        return Err(refused(anyhow!(
            "the URL's last segment `{}` is not an sdist's file name (NAME-VERSION.tar.gz)",
            name.escape_debug()
        )));
    }
    let dir = tempfile::Builder::new()
        .prefix("wasm-build-job-")
        .tempdir()
        .map_err(|e| refused(e.into()))?;
    let path = dir.path().join(name);
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| refused(e.into()))?;
    let limit = MAX_DOWNLOAD_BYTES.min(frontend.settings().artifact_limits.max_artifact_bytes);
    let (actual, _size) = frontend
        .index()
        .download_url(&parsed, &mut file, limit)
        .map_err(|e| refused(e.into()))?;
    if actual != expected {
        return Err(refused(anyhow!(
            "its sha256 is {actual}, the job says {expected}: nothing was built"
        )));
    }
    Ok((dir, path))
}

/// The result of a job refused before it started.
fn refused(frontend: &Frontend, job: &Job, error: &BuildError) -> JobResult {
    let collector = Collector::new(Arc::new(crate::reporter::Silent));
    let info = TaskInfo {
        // A URL refused before (or at) its download has no local path: the source as
        // given is the URL.
        path: match (&job.path, &job.url) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        },
        url: job.url.clone(),
        task: match job.task {
            JobTask::Build => "build",
            JobTask::Metadata => "metadata",
        },
        requested: job.distributions.clone(),
    };
    JobResult {
        id: job.id.clone(),
        report: collector.finish(
            &ReportContext::without_runtime(frontend.settings()),
            info,
            crate::report::Outcome::of_error(error),
            &[],
        ),
    }
}
