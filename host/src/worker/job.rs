//! A job as a producer writes it (docs/scale-out.md, docs/scale-out.schema.json), its
//! idempotency key, and the result a worker writes for it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The version written into every result and into every key.
pub const WASM_BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `schema` of a result.
pub const RESULT_SCHEMA: &str = "wasm-build.worker-result/1";

/// One job: build something from one source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The producer's name for the job, echoed in the result.
    pub id: String,
    pub source: Source,
    /// What to build: `wheel`, `metadata`, or `verify` (alone: build the wheel and compare
    /// it with each of `verify_against`). Empty: the wheel.
    #[serde(default)]
    pub build: Vec<Target>,
    /// With `verify`: the wheels (each fetched and checked like the source) to compare with
    /// the wheel built, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_against: Vec<Source>,
    #[serde(default)]
    pub options: Options,
    /// Where the artifacts go; optional for `verify` only (absent: the wheel built is
    /// compared, then dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Destination>,
}

/// Where a file (the sdist, a wheel to verify against) is, and the sha256 it must have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An `http(s)://` URL of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An absolute path of the file on a volume the workers share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lowercase hex sha256 of the file's bytes.
    pub sha256: String,
}

impl Source {
    /// The URL or the path, as messages name the file.
    pub fn location(&self) -> &str {
        self.url.as_deref().or(self.path.as_deref()).unwrap_or("")
    }

    /// The last segment of the URL's path or of the path.
    pub fn file_name(&self) -> &str {
        let location = match &self.url {
            Some(url) => url.split(['?', '#']).next().unwrap_or(url),
            None => self.path.as_deref().unwrap_or(""),
        };
        location.rsplit('/').next().unwrap_or("")
    }

    fn check(&self, what: &str) -> Result<(), JobError> {
        let sha = &self.sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(JobError::Invalid(format!(
                "`{what}.sha256` must be 64 lowercase hex digits"
            )));
        }
        match (&self.url, &self.path) {
            (Some(url), None) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(())
            }
            (None, Some(path)) if path.starts_with('/') => Ok(()),
            _ => Err(JobError::Invalid(format!(
                "`{what}` needs exactly one of `url` (http or https) or `path` (absolute)"
            ))),
        }
    }
}

/// Most wheels one `verify` job compares.
pub const MAX_VERIFY_WHEELS: usize = 16;

/// Whether `name` is a wheel's file name the worker keeps as it is (the comparison reads
/// the name): plain characters, no leading dot, `.whl` at the end.
pub fn plain_wheel_name(name: &str) -> bool {
    !name.starts_with('.')
        && name.len() <= 255
        && name.ends_with(".whl")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// What a job builds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Wheel,
    Sdist,
    Metadata,
    /// Build the wheel and compare it with the job's `verify_against` wheels.
    Verify,
}

impl Target {
    /// The target's name in jobs.
    pub fn name(self) -> &'static str {
        match self {
            Target::Wheel => "wheel",
            Target::Sdist => "sdist",
            Target::Metadata => "metadata",
            Target::Verify => "verify",
        }
    }

    /// The kind of artifact it delivers, as results and PUT maps name it.
    pub fn artifact(self) -> &'static str {
        match self {
            Target::Verify => Target::Wheel.name(),
            other => other.name(),
        }
    }
}

/// How to build: each changes the key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The hooks' `config_settings` object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_settings: BTreeMap<String, Value>,
    /// Limits, each at most the worker's own (a larger one is lowered to it).
    #[serde(default, skip_serializing_if = "JobLimits::is_empty")]
    pub limits: JobLimits,
    /// Build constraints, as the text of a pip-style file (`name==version --hash=...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<String>,
    /// With `constraints`: install only wheels pinned with a hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_hashes: bool,
    /// Resolve build requirements as of this moment (RFC 3339, or a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_newer: Option<String>,
}

/// Per-job limits; absent: the worker's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_mib: Option<u64>,
}

impl JobLimits {
    fn is_empty(&self) -> bool {
        self == &JobLimits::default()
    }
}

/// Where the artifacts go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// An absolute folder (a volume the workers share); files are synced there before the
    /// job is acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// One HTTP(S) URL per kind built (`wheel`, `sdist`): the artifact is sent with PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put: Option<BTreeMap<String, String>>,
}

/// Why a job cannot be run at all: it goes to the dead-letter stream at once.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the job is not valid JSON of the job schema")]
    Json(#[source] serde_json::Error),
    #[error("the stream entry has no `job` field")]
    NoJobField,
    #[error("the job is invalid: {0}")]
    Invalid(String),
}

impl Job {
    /// Parses and checks a job.
    pub fn parse(text: &str) -> Result<Job, JobError> {
        let job: Job = serde_json::from_str(text).map_err(JobError::Json)?;
        job.check()?;
        Ok(job)
    }

    fn check(&self) -> Result<(), JobError> {
        let bad = |what: &str| Err(JobError::Invalid(what.to_string()));
        if self.id.is_empty() || self.id.len() > 256 {
            return bad("`id` must have 1 to 256 characters");
        }
        self.source.check("source")?;
        if self.build.contains(&Target::Sdist) {
            return bad("an sdist source builds `wheel` or `metadata`, not `sdist`");
        }
        let verify = self.build.contains(&Target::Verify);
        if verify {
            if self.targets() != [Target::Verify] {
                return bad("`verify` is a job of its own: it builds the wheel it compares");
            }
            if self.verify_against.is_empty() || self.verify_against.len() > MAX_VERIFY_WHEELS {
                return Err(JobError::Invalid(format!(
                    "`verify` needs 1 to {MAX_VERIFY_WHEELS} wheels in `verify_against`"
                )));
            }
            for (n, wheel) in self.verify_against.iter().enumerate() {
                let what = format!("verify_against[{n}]");
                wheel.check(&what)?;
                if !plain_wheel_name(wheel.file_name()) {
                    return Err(JobError::Invalid(format!(
                        "`{what}` must end in a wheel's file name (NAME-VERSION-TAGS.whl)"
                    )));
                }
            }
        } else if !self.verify_against.is_empty() {
            return bad("`verify_against` needs `\"build\": [\"verify\"]`");
        }
        match &self.artifacts {
            None if verify => {}
            None => return bad("`artifacts` is required (optional for `verify` only)"),
            Some(Destination {
                dir: Some(dir),
                put: None,
            }) if dir.starts_with('/') => {}
            Some(Destination {
                dir: None,
                put: Some(urls),
            }) => {
                for target in self.targets() {
                    let kind = target.artifact();
                    match urls.get(kind) {
                        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {}
                        _ => {
                            return Err(JobError::Invalid(format!(
                                "`artifacts.put` needs an http(s) URL for `{kind}`"
                            )));
                        }
                    }
                }
            }
            Some(_) => return bad("`artifacts` needs exactly one of `dir` (absolute) or `put`"),
        }
        if let Some(date) = &self.options.exclude_newer {
            date.parse::<wasm_build_packaging::index::ExcludeNewer>()
                .map_err(|e| JobError::Invalid(format!("`options.exclude_newer`: {e}")))?;
        }
        Ok(())
    }

    /// What is built, in order: the wheel when nothing is named.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = self.build.clone();
        if targets.is_empty() {
            targets.push(Target::Wheel);
        }
        targets.sort();
        targets.dedup();
        targets
    }

    /// The idempotency key: sha256 over the source's sha256, what is built with which
    /// options and against which wheels' sha256 (canonical JSON: sorted keys, no spaces),
    /// the wasm-build version and the runtime module's sha256. Where the files are and where
    /// the artifacts go are not part of it.
    pub fn key(&self, runtime_sha256: &str) -> String {
        let mut what = serde_json::json!({ "build": self.targets(), "options": self.options });
        if !self.verify_against.is_empty() {
            let wheels: Vec<&str> = self
                .verify_against
                .iter()
                .map(|w| w.sha256.as_str())
                .collect();
            what["verify_against"] = serde_json::json!(wheels);
        }
        let canonical = canonical_json(&what);
        let mut hash = Sha256::new();
        for part in [
            self.source.sha256.as_str(),
            canonical.as_str(),
            WASM_BUILD_VERSION,
            runtime_sha256,
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hex(&hash.finalize())
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map keeps insertion order only with `preserve_order`, which is off:
    // its BTreeMap is sorted already; `sorted` keeps this true whatever the features.
    sorted(value).to_string()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a job ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Built, verified and delivered.
    Ok,
    /// The source or an artifact was refused (hostile or invalid input).
    Refused,
    /// The build failed (the backend, a limit, the requirements, wasm-build itself).
    Failed,
}

/// One artifact delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivered {
    pub kind: String,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The path written, or the URL it was PUT to.
    pub location: String,
}

/// What a worker writes to the results stream for a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    pub schema: String,
    pub job_id: String,
    /// The job's entry ID in the jobs stream.
    pub entry: String,
    pub key: String,
    pub status: Status,
    /// `ok`, or the failure's exit class (`input_refused`, `artifact_refused`, `usage`,
    /// `requirements`, `backend_failed`, `sandbox_stopped`, `native_code`, `internal`); for
    /// `verify` with status `ok`: `ok` (identical), `equivalent` or `differs`.
    pub class: String,
    /// `wasm-build`'s exit code for the same build on the command line.
    pub exit_code: i32,
    /// For `verify`: `identical`, `equivalent` or `differs`, the worst over the wheels
    /// (each wheel's verdict and differences are in the report's `comparisons`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The error and its causes, one per line; empty when ok.
    #[serde(default)]
    pub error: String,
    pub artifacts: Vec<Delivered>,
    /// Answered from the result stored under `key`, without building.
    pub cached: bool,
    /// The consumer that wrote it.
    pub worker: String,
    /// How often the job was delivered (1: first time).
    pub deliveries: u64,
    pub build_seconds: f64,
    pub wasm_build_version: String,
    pub runtime_sha256: String,
    /// The job's report entry, as `wasm-build serve` writes it (docs/serve.md); absent
    /// only in results stored by an older worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Value>,
}

impl JobResult {
    /// Whether the same key would end the same way again, so that the result may answer
    /// later jobs: not for a failure of wasm-build itself or of reaching the requirements.
    pub fn reusable(&self) -> bool {
        !matches!(self.class.as_str(), "internal" | "requirements")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job::parse(
            r#"{"id":"a","source":{"path":"/s/p-1.tar.gz","sha256":"00000000000000000000000000000000000000000000000000000000000000ff"},
               "options":{"config_settings":{"b":"1","a":["x"]}},"artifacts":{"dir":"/out"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_key_depends_on_source_options_and_runtime_not_destination() {
        let base = job();
        let key = base.key("r1");
        let mut elsewhere = base.clone();
        elsewhere.artifacts = Some(Destination {
            dir: Some("/other".into()),
            put: None,
        });
        elsewhere.id = "b".into();
        assert_eq!(elsewhere.key("r1"), key);
        assert_ne!(base.key("r2"), key);
        let mut other = base.clone();
        other.options.config_settings.insert("c".into(), "2".into());
        assert_ne!(other.key("r1"), key);
        let mut metadata = base.clone();
        metadata.build = vec![Target::Metadata];
        assert_ne!(metadata.key("r1"), key);
        let mut wheel = base.clone();
        wheel.build = vec![Target::Wheel, Target::Wheel];
        assert_eq!(wheel.key("r1"), key, "the default is the wheel");
    }

    #[test]
    fn a_verify_job_stands_alone_and_its_wheels_are_in_the_key() {
        const SHA: &str = "00000000000000000000000000000000000000000000000000000000000000ff";
        let verify = |rest: &str| {
            Job::parse(&format!(
                r#"{{"id":"v","source":{{"path":"/s/p-1.tar.gz","sha256":"{SHA}"}},{rest}}}"#
            ))
        };
        let wheel = |name: &str| format!(r#"{{"path":"/w/{name}","sha256":"{SHA}"}}"#);
        let one = verify(&format!(
            r#""build":["verify"],"verify_against":[{}]"#,
            wheel("p-1-py3-none-any.whl")
        ))
        .unwrap();
        assert_eq!(one.targets(), [Target::Verify]);
        assert!(one.artifacts.is_none(), "optional for verify");
        let two = verify(&format!(
            r#""build":["verify"],"verify_against":[{},{}]"#,
            wheel("p-1-py3-none-any.whl"),
            wheel("p-1-py3-none-any.whl")
        ))
        .unwrap();
        assert_ne!(one.key("r"), two.key("r"));
        assert_ne!(one.key("r"), job().key("r"));
        for (rest, says) in [
            (r#""build":["verify"]"#.to_string(), "1 to 16 wheels"),
            (
                format!(
                    r#""build":["verify","wheel"],"verify_against":[{}]"#,
                    wheel("p-1-py3-none-any.whl")
                ),
                "a job of its own",
            ),
            (
                format!(
                    r#""build":["verify"],"verify_against":[{}]"#,
                    wheel("p.zip")
                ),
                "`verify_against[0]` must end in a wheel's file name",
            ),
            (
                format!(
                    r#""build":["verify"],"verify_against":[{}]"#,
                    wheel(".hidden.whl")
                ),
                "must end in a wheel's file name",
            ),
            (
                format!(
                    r#""verify_against":[{}],"artifacts":{{"dir":"/o"}}"#,
                    wheel("p-1-py3-none-any.whl")
                ),
                "needs `\"build\": [\"verify\"]`",
            ),
            (
                r#""build":["wheel"]"#.to_string(),
                "`artifacts` is required",
            ),
            (
                format!(
                    r#""build":["verify"],"verify_against":[{}],"artifacts":{{"put":{{"verify":"http://x/"}}}}"#,
                    wheel("p-1-py3-none-any.whl")
                ),
                "URL for `wheel`",
            ),
        ] {
            let error = verify(&rest).unwrap_err().to_string();
            assert!(error.contains(says), "{rest}: {error}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let value: Value =
            serde_json::from_str(r#"{"b":{"d":1,"c":2},"a":[{"z":0,"y":1}]}"#).unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"a":[{"y":1,"z":0}],"b":{"c":2,"d":1}}"#
        );
    }

    #[test]
    fn invalid_jobs_are_named() {
        for (text, says) in [
            (r#"{"id":"a"}"#, "not valid JSON"),
            (
                r#"{"id":"a","source":{"path":"rel","sha256":"00000000000000000000000000000000000000000000000000000000000000ff"},"artifacts":{"dir":"/o"}}"#,
                "`source` needs",
            ),
            (
                r#"{"id":"a","source":{"path":"/p","sha256":"AB"},"artifacts":{"dir":"/o"}}"#,
                "64 lowercase hex",
            ),
            (
                r#"{"id":"a","source":{"path":"/p","sha256":"00000000000000000000000000000000000000000000000000000000000000ff"},"artifacts":{"put":{"sdist":"http://x/"}}}"#,
                "URL for `wheel`",
            ),
            (
                r#"{"id":"a","source":{"path":"/p","sha256":"00000000000000000000000000000000000000000000000000000000000000ff"},"artifacts":{"dir":"/o"},"extra":1}"#,
                "not valid JSON",
            ),
        ] {
            let error = Job::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
