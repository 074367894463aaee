//! Running one job on a warm engine: the source fetched and checked against its sha256,
//! built by a [`Frontend`] with the job's options, the artifacts made durable.

use super::job::{
    Delivered, Destination, Job, Options, Source, Status, Target, canonical_json, hex,
};
use crate::frontend::{BuildRequest, Distribution, Frontend, Settings};
use crate::report::SourceReport;
use crate::reporter::Reporter;
use crate::service::{self, Task};
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
    /// For `verify`: the worst verdict over the wheels compared.
    pub verdict: Option<String>,
    pub seconds: f64,
    /// The job's report entry (`report::SourceReport`), as JSON.
    pub report: Option<serde_json::Value>,
}

/// A failure that is not the source's fault (the source could not be fetched, the artifact
/// store refused): the job is left unacknowledged, for another try.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Retry(#[from] pub anyhow::Error);

/// Fetches the job's source (and wheels to verify against), builds it and delivers the
/// artifacts.
pub fn run(engines: &Engines, job: &Job) -> Result<Ran, Retry> {
    let scratch = tempfile::Builder::new()
        .prefix("wasm-build-job-")
        .tempdir()
        .context("creating the job's scratch folder")?;
    let sdist = scratch.path().join("source").join(sdist_name(&job.source));
    fetch(&job.source, &sdist)?;
    let mut wheels = Vec::new();
    for (n, wheel) in job.verify_against.iter().enumerate() {
        // One folder each: two wheels to compare may have the same name.
        let path = scratch
            .path()
            .join("wheels")
            .join(n.to_string())
            .join(wheel.file_name());
        fetch(wheel, &path)?;
        wheels.push(path);
    }
    let frontend = engines.frontend(&job.options)?;
    let (outdir, into_scratch) = match &job.artifacts {
        Some(Destination { dir: Some(dir), .. }) => (Some(PathBuf::from(dir)), false),
        Some(_) => (Some(scratch.path().join("out")), true),
        None => (None, false),
    };
    let verify = job.targets() == [Target::Verify];
    let task = if verify {
        Task::Verify {
            sdist,
            wheels,
            outdir: outdir.clone(),
        }
    } else {
        let distributions = job
            .targets()
            .iter()
            .map(|target| match target {
                Target::Metadata => Distribution::Metadata,
                _ => Distribution::Wheel,
            })
            .collect();
        Task::Build(BuildRequest {
            source: sdist,
            distributions,
            outdir: outdir.clone(),
        })
    };
    let started = Instant::now();
    let url = job.source.url.as_deref();
    let mut report = service::run_task(&frontend, &task, url, engines.reporter.clone()).report;
    // Each wheel compared is named as the job names it, not by its scratch copy.
    for (entry, given) in report.comparisons.iter_mut().zip(&job.verify_against) {
        entry.wheel = given.location().to_string();
    }
    let verdict = verify.then(|| verdict_of(&report)).flatten();
    if report.outcome.status != "ok" && verdict.is_none() {
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
            .as_ref()
            .and_then(|a| a.put.as_ref())
            .context("the job names no destination")?;
        for artifact in &mut artifacts {
            let url = urls
                .get(&artifact.kind)
                .with_context(|| format!("`artifacts.put` has no URL for `{}`", artifact.kind))?;
            put(Path::new(&artifact.location), url)?;
            artifact.location = url.clone();
        }
    } else if let Some(outdir) = &outdir {
        // Each file was synced before its rename; the folder's entries now are too.
        File::open(outdir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", outdir.display()))?;
    }
    let outcome = &report.outcome;
    Ok(Ran {
        status: Status::Ok,
        class: outcome.class.clone().unwrap_or_else(|| "ok".into()),
        exit_code: outcome.exit_code,
        error: String::new(),
        artifacts,
        verdict,
        seconds: started.elapsed().as_secs_f64(),
        report: serde_json::to_value(&report).ok(),
    })
}

/// A verify task's verdict over all its wheels: the worst, which `service` already made
/// the outcome's class. `None` when the task did not compare every wheel.
fn verdict_of(report: &SourceReport) -> Option<String> {
    if report.comparisons.is_empty() {
        return None;
    }
    let verdict = match report.outcome.class.as_deref() {
        None | Some("ok") => "identical",
        Some("equivalent") => "equivalent",
        Some("differs") => "differs",
        _ => return None,
    };
    Some(verdict.to_string())
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
        verdict: None,
        seconds: started.elapsed().as_secs_f64(),
        report: serde_json::to_value(report).ok(),
    }
}

/// Copies or downloads `source` to `path` (its folder made here), refusing it unless its
/// sha256 is the job's. Built from the copy, so the bytes checked are the bytes built.
fn fetch(source: &Source, path: &Path) -> Result<(), Retry> {
    let location = source.location();
    let mut reader: Box<dyn Read> = match (&source.path, &source.url) {
        (Some(path), _) => {
            Box::new(File::open(path).with_context(|| format!("opening {location}"))?)
        }
        (None, Some(url)) => {
            let response = ureq::get(url)
                .call()
                .with_context(|| format!("downloading {url}"))?;
            Box::new(
                response
                    .into_body()
                    .into_with_config()
                    .limit(MAX_SOURCE_BYTES)
                    .reader(),
            )
        }
        (None, None) => return Err(anyhow!("the job names no file").into()),
    };
    if let Some(folder) = path.parent() {
        fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    let mut file = File::create_new(path).with_context(|| format!("writing {location}"))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("reading {location}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_SOURCE_BYTES {
            return Err(anyhow!("{location} is larger than {MAX_SOURCE_BYTES} bytes").into());
        }
        hash.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {location}"))?;
    }
    let found = hex(&hash.finalize());
    if found != source.sha256 {
        return Err(anyhow!(
            "{location} has sha256 {found}, not the job's {}",
            source.sha256
        )
        .into());
    }
    Ok(())
}

/// The sdist's file name when it is a plain one, else `source.tar.gz`: the name is only a
/// label (the frontend reads the project's name from inside).
fn sdist_name(source: &Source) -> String {
    let last = source.file_name();
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
    use super::{Source, sdist_name};

    #[test]
    fn only_plain_sdist_names_are_kept() {
        let name = |location: &str| {
            let (url, path) = if location.starts_with('/') {
                (None, Some(location.to_string()))
            } else {
                (Some(location.to_string()), None)
            };
            sdist_name(&Source {
                url,
                path,
                sha256: String::new(),
            })
        };
        assert_eq!(name("/a/b/pkg-1.0.tar.gz"), "pkg-1.0.tar.gz");
        assert_eq!(name("https://h/p/pkg-1.0.tar.gz?sig=1"), "pkg-1.0.tar.gz");
        assert_eq!(name("/a/../.hidden.tar.gz"), "source.tar.gz");
        assert_eq!(name("/a/pkg 1.tar.gz"), "source.tar.gz");
        assert_eq!(name("/a/pkg.zip"), "source.tar.gz");
    }
}
