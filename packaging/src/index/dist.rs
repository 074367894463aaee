//! The files an index lists, what they are, and how a downloaded one is held.

use crate::filename::{SdistFilename, WheelFilename};
use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use url::Url;

/// One file of a project as an index or find-links location lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistFile {
    /// The file name, a single path component.
    pub filename: String,
    /// Absolute `http(s)://` URL without fragment, or a `file://` URL for local files.
    pub url: String,
    /// Lower-case hex sha256 the index gave for the file.
    pub sha256: Option<String>,
    /// The file's `Requires-Python`, as the index gave it.
    pub requires_python: Option<String>,
    /// `Some(reason)` when the file is yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    /// Whether a PEP 658/714 `.metadata` file is available next to the file.
    pub core_metadata: bool,
    /// The sha256 of that `.metadata` file, when the index gave it.
    pub metadata_sha256: Option<String>,
    /// The size in bytes, when the index gave it.
    pub size: Option<u64>,
    /// When the file was uploaded (PEP 700), in milliseconds since the Unix epoch, when the
    /// index gave it.
    #[serde(default)]
    pub upload_time: Option<i64>,
    /// The index page or find-links location that listed the file, for messages.
    pub source: String,
}

impl DistFile {
    /// Whether the file is yanked.
    pub fn is_yanked(&self) -> bool {
        self.yanked.is_some()
    }

    /// The local path of a file from a find-links folder or local page.
    pub fn local_path(&self) -> Option<PathBuf> {
        let url = Url::parse(&self.url).ok()?;
        if url.scheme() == "file" {
            url.to_file_path().ok()
        } else {
            None
        }
    }

    /// What the file is, if it is a wheel or an sdist of `project`.
    pub fn kind(&self, project: &PackageName) -> Option<DistKind> {
        classify(&self.filename, project)
    }
}

/// A distribution file's kind and version, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistKind {
    /// A wheel, with its parsed file name.
    Wheel(WheelFilename),
    /// A source distribution (`.tar.gz`, or a legacy `.zip`).
    Sdist(Version),
}

impl DistKind {
    /// The version in the file name.
    pub fn version(&self) -> &Version {
        match self {
            Self::Wheel(wheel) => &wheel.version,
            Self::Sdist(version) => version,
        }
    }
}

/// Reads a file name as a wheel or sdist of `project`; `None` for anything else (other
/// projects' files, eggs, installers, unparseable names).
pub(super) fn classify(filename: &str, project: &PackageName) -> Option<DistKind> {
    if filename.ends_with(".whl") {
        let wheel = WheelFilename::from_str(filename).ok()?;
        return (&wheel.name == project).then_some(DistKind::Wheel(wheel));
    }
    SdistFilename::parse_for(filename, project)
        .ok()
        .map(|sdist| DistKind::Sdist(sdist.version))
}

/// Where the sha256 of a downloaded file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSource {
    /// The index listed it and the download matched it.
    Index,
    /// The index gave none (or the file is local): it was computed from the bytes.
    Computed,
}

/// A file in the wheel cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The cached file, under `wheels-v1/sha256/…`.
    pub path: PathBuf,
    /// Its sha256 (lower-case hex).
    pub sha256: String,
    /// Whether the index vouched for that sha256.
    pub hash_source: HashSource,
}
