//! The machine-readable report of builds (`--report`, `serve`'s result lines, `verify`), a
//! superset of pypa/build's `--report`: its `version` and `artifacts` keep their meaning,
//! so tools that read build's report read this one; everything wasm-build adds is per
//! source in `sources`. The schema is `docs/report.schema.json`, described in
//! `docs/report.md`; [`REPORT_VERSION`] changes when a field changes meaning or goes away
//! (fields are only ever added within one version).
//!
//! A [`Collector`] gathers one source's entry from the [`Event`](crate::Event)s of its
//! build, forwarding each to another reporter (the terminal's).

pub(crate) mod collect;
mod outcome;
pub mod provenance;

pub use self::collect::{Collector, ReportContext, TaskInfo};
pub use self::outcome::{Outcome, Severity, batch_exit_code};

use crate::frontend::Frontend;
use crate::sandbox::Limits;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::SystemTime;
use wasm_build_packaging::index::ExcludeNewer;
use wasm_build_packaging::verify::WheelComparison;

/// pypa/build's report version, which `version` keeps.
pub const PYPA_REPORT_VERSION: &str = "1.0";
/// The version of what wasm-build adds (see the module's documentation).
pub const REPORT_VERSION: u32 = 1;

/// A report of one run of wasm-build over one or more sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// pypa/build's report version ([`PYPA_REPORT_VERSION`]).
    pub version: String,
    /// Every sdist and wheel written to an output folder, in pypa/build's shape.
    pub artifacts: Vec<ArtifactEntry>,
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    pub tool: Tool,
    /// One entry per source, in the order given.
    pub sources: Vec<SourceReport>,
    /// The process's exit code: 0 when every source succeeded, else the most severe
    /// class among them (see docs/cli.md).
    pub exit_code: i32,
}

impl Report {
    /// The report of `sources`.
    pub fn new(sources: Vec<SourceReport>) -> Self {
        let artifacts = sources
            .iter()
            .flat_map(|source| &source.artifacts)
            .filter_map(SourceArtifact::pypa_entry)
            .collect();
        let exit_code = batch_exit_code(sources.iter().map(|s| s.outcome.exit_code));
        Self {
            version: PYPA_REPORT_VERSION.to_string(),
            artifacts,
            report_version: REPORT_VERSION,
            tool: Tool::this(),
            sources,
            exit_code,
        }
    }
}

/// The program that wrote the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    /// wasm-build, at this version.
    pub fn this() -> Self {
        Self {
            name: "wasm-build".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// An artifact in pypa/build's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    pub name: String,
    pub path: String,
    /// `sdist` or `wheel`.
    pub kind: String,
    pub size: u64,
    pub hashes: Hashes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    pub sha256: String,
}

/// Everything about one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub source: SourceEntry,
    /// `build`, `metadata` or `verify`.
    pub task: String,
    /// What was asked for: `sdist`, `wheel`, `editable`, `metadata_dir`, `metadata`.
    pub requested: Vec<String>,
    /// Name and version, as the source or the first artifact tells them.
    pub project: Option<Project>,
    /// `None` when no interpreter was needed: a metadata task answered from a wheel or a
    /// static PKG-INFO, or refused before a backend would have run.
    pub runtime: Option<RuntimeEntry>,
    /// `module:object`, once known.
    pub backend: Option<String>,
    /// What every hook got as `config_settings`.
    pub config_settings: Value,
    pub limits: LimitsEntry,
    /// For a deterministic build: the guest's clock and randomness.
    pub deterministic: Option<Deterministic>,
    /// Every wheel installed in the build environments the hooks ran in.
    pub build_requirements: Vec<Requirement>,
    /// Each sandbox run of hooks, in order.
    pub hook_runs: Vec<HookRunEntry>,
    /// What was built and verified (with the paths it was published to, once it was).
    pub artifacts: Vec<SourceArtifact>,
    /// The wheel's core metadata, for a metadata task (pypa/build's `--metadata` JSON).
    pub metadata: Option<Map<String, Value>>,
    /// Where `metadata` came from: `static` (PKG-INFO, PEP 643: no backend code ran),
    /// `prepare_metadata_for_build_wheel` or `wheel`.
    pub metadata_source: Option<String>,
    /// Why PKG-INFO was not used, when the hook gave the metadata of an sdist.
    pub not_static: Option<String>,
    /// For `verify`: each given wheel against the one built.
    pub comparisons: Vec<ComparisonEntry>,
    pub outcome: Outcome,
    pub warnings: Vec<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub wall_time_seconds: f64,
}

/// Where the source came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// The path given (for a URL, where it was downloaded to).
    pub path: String,
    /// The URL it was downloaded from.
    pub url: Option<String>,
    /// `tree`, `sdist` or `wheel`; absent when it could not even be read.
    pub kind: Option<String>,
    /// Of the file (sdist, wheel); a folder has none.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub version: String,
}

/// The interpreter the backend ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEntry {
    /// The catalog's name (`cpython-3.13`), or `local` for `--python-wasm`.
    pub id: String,
    pub python_version: String,
    pub module_sha256: String,
    /// The sha256 of the stdlib's content manifest, for a runtime with a separate stdlib
    /// from the catalog.
    pub stdlib_manifest_sha256: Option<String>,
    pub wasmtime_version: String,
}

impl RuntimeEntry {
    /// The runtime `frontend` runs backends in.
    pub fn of(frontend: &Frontend) -> Self {
        let runtime = frontend.runtime();
        let stdlib_manifest_sha256 = crate::runtime::Catalog::builtin().ok().and_then(|catalog| {
            let spec = catalog.runtimes.get(&runtime.id)?;
            (spec.module.sha256 == runtime.module_sha256)
                .then(|| spec.stdlib.as_ref().map(|s| s.manifest_sha256.clone()))
                .flatten()
        });
        Self {
            id: runtime.id.clone(),
            python_version: runtime.python_version.clone(),
            module_sha256: runtime.module_sha256.clone(),
            stdlib_manifest_sha256,
            wasmtime_version: crate::sandbox::wasmtime_version().to_string(),
        }
    }
}

/// The limits every hook run had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsEntry {
    pub timeout_seconds: u64,
    pub memory_bytes: u64,
    pub log_bytes: u64,
    pub disk_bytes: u64,
    pub artifact_bytes: u64,
}

impl LimitsEntry {
    pub fn of(limits: &Limits, artifact_bytes: u64) -> Self {
        Self {
            timeout_seconds: limits.wall_time.as_secs(),
            memory_bytes: limits.memory,
            log_bytes: limits.log as u64,
            disk_bytes: limits.disk,
            artifact_bytes,
        }
    }
}

/// What a deterministic build gave the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deterministic {
    /// The guest's wall clock at the start of every run, seconds since the Unix epoch.
    pub clock_start: u64,
    /// `SOURCE_DATE_EPOCH`, `newest_member` (of the sdist) or `fixed` (1980-01-01, for a
    /// folder without `SOURCE_DATE_EPOCH`).
    pub clock_from: String,
}

/// One wheel of a build environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
}

/// One sandbox run of hooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRunEntry {
    pub hooks: Vec<String>,
    pub ok: bool,
    pub wall_time_seconds: f64,
    /// CPU time of the guest (user + system), when measured.
    pub cpu_time_seconds: Option<f64>,
    /// The guest's linear memory at its largest.
    pub peak_memory_bytes: Option<u64>,
    /// The most the writable folders held at once, as the disk limit counts.
    pub disk_high_water_bytes: Option<u64>,
    /// What the backend printed.
    pub output_bytes: u64,
    pub prepared_backend: PreparedEntry,
}

/// Whether a hook run started from the prepared backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedEntry {
    pub used: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// An artifact of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceArtifact {
    pub name: String,
    /// Where it was published; absent when it was not (the build failed later, or it was
    /// built to be compared).
    pub path: Option<String>,
    /// `sdist`, `wheel`, `editable` or `metadata_dir`.
    pub kind: String,
    pub size: Option<u64>,
    pub hashes: Option<Hashes>,
    /// Its core metadata (pypa/build's `--metadata` JSON).
    pub metadata: Option<Map<String, Value>>,
    /// The fields its metadata marks `Dynamic`.
    pub dynamic: Vec<String>,
}

impl SourceArtifact {
    /// The pypa/build entry of a published sdist or wheel.
    fn pypa_entry(&self) -> Option<ArtifactEntry> {
        let kind = match self.kind.as_str() {
            "sdist" => "sdist",
            "wheel" | "editable" => "wheel",
            _ => return None,
        };
        Some(ArtifactEntry {
            name: self.name.clone(),
            path: self.path.clone()?,
            kind: kind.to_string(),
            size: self.size?,
            hashes: self.hashes.clone()?,
        })
    }
}

/// A given wheel against the wheel built from the sdist (`verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparisonEntry {
    pub wheel: String,
    pub sha256: Option<String>,
    #[serde(flatten)]
    pub comparison: WheelComparison,
}

/// RFC 3339 in UTC, to the millisecond.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let millis = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    // The index client's cutoff type prints exactly this.
    ExcludeNewer::from_unix_millis(millis).to_string()
}

#[cfg(test)]
mod tests;
