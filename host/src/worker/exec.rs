//! Running one job on a warm engine: the source fetched and checked against its sha256,
//! built by a [`Frontend`] with the job's options, the artifacts made durable.

use super::job::{Delivered, Job, Options, Status, canonical_json, hex};
use crate::frontend::{Frontend, Settings};
use crate::report::SourceReport;
use crate::reporter::Reporter;
use crate::serve;
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frontends kept warm, one per distinct set of job options.
const WARM_FRONTENDS: usize = 4;
/// Largest source a job may name.
const MAX_SOURCE_BYTES: u64 = 1 << 30;

/// The worker's frontends: the worker's settings, and one per set of job options seen
/// lately (a frontend's settings are fixed when it is made).
pub struct Engines {
    base: Settings,
    reporter: Arc<dyn Reporter>,
    warm: Mutex<Vec<(String, Arc<Frontend>)>>,
    /// Holds the constraints files of jobs.
    files: tempfile::TempDir,
    runtime_sha256: String,
}

impl Engines {
    /// Makes the frontend of the worker's own settings (provisioning the runtime).
    pub fn new(base: Settings, reporter: Arc<dyn Reporter>) -> Result<Engines> {
        let frontend = Frontend::new(base.clone(), reporter.clone())?;
        let runtime_sha256 = frontend.runtime().module_sha256.clone();
        let files = tempfile::Builder::new()
            .prefix("wasm-build-worker-")
            .tempdir()
            .context("creating the worker's scratch folder")?;
        Ok(Engines {
            base,
            reporter,
            warm: Mutex::new(vec![(
                canonical_json(&options_json(&Options::default())),
                Arc::new(frontend),
            )]),
            files,
            runtime_sha256,
        })
    }

    /// The sha256 of the runtime module every build runs in (part of each job's key).
    pub fn runtime_sha256(&self) -> &str {
        &self.runtime_sha256
    }

    fn frontend(&self, options: &Options) -> Result<Arc<Frontend>> {
        let key = canonical_json(&options_json(options));
        let lock = || {
            self.warm
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some((_, frontend)) = lock().iter().find(|(k, _)| *k == key) {
            return Ok(frontend.clone());
        }
        let settings = self.settings_for(options)?;
        let frontend = Arc::new(Frontend::new(settings, self.reporter.clone())?);
        let mut warm = lock();
        if warm.len() >= WARM_FRONTENDS {
            // The worker's own settings stay; the oldest other goes.
            warm.remove(1);
        }
        warm.push((key, frontend.clone()));
        Ok(frontend)
    }

    /// The worker's settings with the job's options: limits only lowered.
    fn settings_for(&self, options: &Options) -> Result<Settings> {
        let mut settings = self.base.clone();
        if !options.config_settings.is_empty() {
            settings.config_json = Some(options.config_settings.clone().into_iter().collect());
            settings.config_settings.clear();
        }
        let mib = |v: u64| v.saturating_mul(1 << 20);
        let l = &options.limits;
        let limits = &mut settings.limits;
        if let Some(s) = l.timeout_seconds {
            limits.wall_time = limits.wall_time.min(Duration::from_secs(s));
        }
        if let Some(m) = l.memory_mib {
            limits.memory = limits.memory.min(mib(m));
        }
        if let Some(m) = l.log_mib {
            limits.log = limits
                .log
                .min(usize::try_from(mib(m)).unwrap_or(usize::MAX));
        }
        if let Some(m) = l.disk_mib {
            limits.disk = limits.disk.min(mib(m));
        }
        if let Some(m) = l.artifact_mib {
            let a = &mut settings.artifact_limits;
            a.max_artifact_bytes = a.max_artifact_bytes.min(mib(m));
            a.archive.max_unpacked_bytes = a.archive.max_unpacked_bytes.min(mib(m));
        }
        if let Some(text) = &options.constraints {
            let path = self
                .files
                .path()
                .join(format!("{}.txt", hex(&Sha256::digest(text.as_bytes()))));
            fs::write(&path, text).context("writing the job's constraints")?;
            settings.constraints = Some((path, options.require_hashes));
        }
        if let Some(date) = &options.exclude_newer {
            settings.index.exclude_newer = Some(date.parse().map_err(|e: String| anyhow!(e))?);
        }
        Ok(settings)
    }
}

fn options_json(options: &Options) -> serde_json::Value {
    serde_json::to_value(options).unwrap_or_default()
}

/// How a job that ran ended: a result to write.
#[derive(Debug)]
pub struct Ran {
    pub status: Status,
    pub class: String,
    pub exit_code: i32,
    pub error: String,
    pub artifacts: Vec<Delivered>,
    pub seconds: f64,
    /// The job's report entry (`report::SourceReport`), as JSON.
    pub report: Option<serde_json::Value>,
}

/// A failure that is not the source's fault (the source could not be fetched, the artifact
/// store refused): the job is left unacknowledged, for another try.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Retry(#[from] pub anyhow::Error);

/// Fetches the job's source, builds it and delivers the artifacts.
pub fn run(engines: &Engines, job: &Job) -> Result<Ran, Retry> {
    let scratch = tempfile::Builder::new()
        .prefix("wasm-build-job-")
        .tempdir()
        .context("creating the job's scratch folder")?;
    let sdist = fetch(job, scratch.path())?;
    let frontend = engines.frontend(&job.options)?;
    let into_scratch = job.artifacts.dir.is_none();
    let outdir = match &job.artifacts.dir {
        Some(dir) => PathBuf::from(dir),
        None => scratch.path().join("out"),
    };
    // The build itself is `serve`'s job runner on this warm frontend: the result carries
    // its report entry (docs/report.md).
    let serve_job = serve::Job {
        id: Some(job.id.clone()),
        task: serve::JobTask::Build,
        path: Some(sdist),
        distributions: job.targets().iter().map(|t| t.name().to_string()).collect(),
        outdir: Some(outdir.clone()),
        ..serve::Job::default()
    };
    let started = Instant::now();
    let report = serve::run_job(&frontend, &serve_job, engines.reporter.clone()).report;
    let outcome = &report.outcome;
    if outcome.status != "ok" {
        return Ok(failed(&report, started));
    }
    let mut artifacts = Vec::new();
    for artifact in &report.artifacts {
        if let Some(path) = &artifact.path {
            artifacts.push(describe(Path::new(path))?);
        }
    }
    if into_scratch {
        let urls = job
            .artifacts
            .put
            .as_ref()
            .context("the job names no destination")?;
        for artifact in &mut artifacts {
            let url = urls
                .get(&artifact.kind)
                .with_context(|| format!("`artifacts.put` has no URL for `{}`", artifact.kind))?;
            put(Path::new(&artifact.location), url)?;
            artifact.location = url.clone();
        }
    } else {
        // Each file was synced before its rename; the folder's entries now are too.
        File::open(&outdir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", outdir.display()))?;
    }
    Ok(Ran {
        status: Status::Ok,
        class: "ok".into(),
        exit_code: 0,
        error: String::new(),
        artifacts,
        seconds: started.elapsed().as_secs_f64(),
        report: serde_json::to_value(&report).ok(),
    })
}

fn failed(report: &SourceReport, started: Instant) -> Ran {
    let outcome = &report.outcome;
    let class = outcome.class.clone().unwrap_or_else(|| "internal".into());
    let status = match class.as_str() {
        "input_refused" | "artifact_refused" => Status::Refused,
        _ => Status::Failed,
    };
    let mut text = outcome.message.clone().unwrap_or_default();
    for cause in &outcome.causes {
        text.push('\n');
        text.push_str(cause);
    }
    Ran {
        status,
        class,
        exit_code: outcome.exit_code,
        error: text,
        artifacts: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        report: serde_json::to_value(report).ok(),
    }
}

/// Copies or downloads the source into `scratch`, refusing it unless its sha256 is the
/// job's. Built from the copy, so the bytes checked are the bytes built.
fn fetch(job: &Job, scratch: &Path) -> Result<PathBuf, Retry> {
    let (name, mut reader): (String, Box<dyn Read>) = match (&job.source.path, &job.source.url) {
        (Some(path), _) => {
            let file = File::open(path).with_context(|| format!("opening the source {path}"))?;
            (file_name(path), Box::new(file))
        }
        (None, Some(url)) => {
            let response = ureq::get(url)
                .call()
                .with_context(|| format!("downloading the source {url}"))?;
            let body = response
                .into_body()
                .into_with_config()
                .limit(MAX_SOURCE_BYTES)
                .reader();
            (
                file_name(url.split(['?', '#']).next().unwrap_or(url)),
                Box::new(body),
            )
        }
        (None, None) => return Err(anyhow!("the job names no source").into()),
    };
    let folder = scratch.join("source");
    fs::create_dir(&folder).context("creating the source folder")?;
    let path = folder.join(name);
    let mut file = File::create_new(&path).context("writing the source")?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).context("reading the source")?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_SOURCE_BYTES {
            return Err(anyhow!("the source is larger than {MAX_SOURCE_BYTES} bytes").into());
        }
        hash.update(&buf[..n]);
        file.write_all(&buf[..n]).context("writing the source")?;
    }
    let found = hex(&hash.finalize());
    if found != job.source.sha256 {
        return Err(anyhow!(
            "the source has sha256 {found}, not the job's {}",
            job.source.sha256
        )
        .into());
    }
    Ok(path)
}

/// The last path segment when it is a plain sdist file name, else `source.tar.gz`: the
/// name is only a label (the frontend reads the project's name from inside).
fn file_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or("");
    let plain = !last.starts_with('.')
        && last
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if plain && last.ends_with(".tar.gz") && last.len() <= 200 {
        last.to_string()
    } else {
        "source.tar.gz".to_string()
    }
}

/// An artifact's kind, name, sha256 and size; a metadata folder is described by its
/// `METADATA` file.
fn describe(path: &Path) -> Result<Delivered> {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string();
    let (kind, content) = if file.ends_with(".whl") {
        ("wheel", path.to_path_buf())
    } else if file.ends_with(".tar.gz") {
        ("sdist", path.to_path_buf())
    } else if file.ends_with(".dist-info") {
        ("metadata", path.join("METADATA"))
    } else {
        bail!("{} is not an artifact the worker knows", path.display());
    };
    let (sha256, size) = wasm_build_packaging::cache::sha256_file(&content)?;
    Ok(Delivered {
        kind: kind.into(),
        file,
        sha256,
        size,
        location: content.display().to_string(),
    })
}

/// Sends the file to `url` with PUT; any status but 2xx is a failure.
fn put(path: &Path, url: &str) -> Result<()> {
    // In memory, so that the request has a Content-Length: object stores' pre-signed
    // URLs refuse chunked uploads. Artifacts are bounded by the artifact limit.
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ureq::put(url)
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .with_context(|| format!("uploading {} to {url}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn only_plain_sdist_names_are_kept() {
        assert_eq!(file_name("/a/b/pkg-1.0.tar.gz"), "pkg-1.0.tar.gz");
        assert_eq!(file_name("https://h/p/pkg-1.0.tar.gz"), "pkg-1.0.tar.gz");
        assert_eq!(file_name("/a/../.hidden.tar.gz"), "source.tar.gz");
        assert_eq!(file_name("/a/pkg 1.tar.gz"), "source.tar.gz");
        assert_eq!(file_name("/a/pkg.zip"), "source.tar.gz");
    }
}
