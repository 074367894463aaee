//! Verification of what a build backend produced, before anything reaches the user.
//!
//! The backend runs in the sandbox but is hostile: its return values and everything it
//! left in its writable folders are untrusted input. The host takes an artifact only
//! through these checks:
//!
//! - [`collect_artifact`] / [`collect_metadata_dir`]: the hook's return value names a plain
//!   file (or a `.dist-info` folder) directly in the output folder, never a symlink.
//! - [`verify_wheel`]: PEP 427 name, strict zip structure
//!   ([`StrictZip`](crate::archive::zip::StrictZip)), member names, `.dist-info`, METADATA,
//!   WHEEL, RECORD hashes and sizes, `.data` layout, size limits.
//! - [`verify_sdist`]: PEP 625 name, the same member rules as sdist extraction, a single
//!   top-level folder, PKG-INFO consistent with the name.
//!
//! Every failure is an [`ArtifactError`] naming the artifact and the rule.
//!
//! The host's flow for one artifact, all on the one handle opened by `collect_artifact`
//! (so a name swapped afterwards changes nothing):
//!
//! ```text
//! let artifact = collect_artifact(out, &returned)?;               // bare name, plain file
//! verify_wheel_file(&artifact.file, &artifact.file_name, &limits)?; // or verify_sdist_file
//! artifact.publish(&OutputDir::open(outdir, project)?)?;          // temp file + rename
//! // sdist then wheel: extract_sdist_file(&artifact.file, &artifact.file_name, ...)
//! ```

mod collect;
mod compare;
mod describe;
pub(crate) mod record;
mod sdist;
mod wheel;

pub use collect::{
    CollectedArtifact, CollectedMetadata, MAX_DIST_INFO_DEPTH, collect_artifact,
    collect_metadata_dir,
};
pub use compare::{
    CompareError, Difference, DifferenceKind, MAX_DIFFERENCES, Verdict, WheelComparison,
    compare_wheels,
};
pub use describe::{ArtifactFacts, describe_verified};
pub use sdist::{VerifiedSdist, verify_sdist, verify_sdist_file};
pub use wheel::{VerifiedWheel, verify_wheel, verify_wheel_file};

use crate::archive::zip::{ZipError, ZipMemberRule};
use crate::archive::{ArchiveError, MemberRule};
use crate::limits::LimitExceeded;
use std::fmt;

/// An artifact that failed verification, and the rule it broke. The message names both;
/// an I/O error behind the rule is the [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct ArtifactError {
    /// The artifact's file name (or the hook's return value), made safe to print.
    pub artifact: String,
    /// The rule it broke.
    pub rule: ArtifactRule,
}

impl ArtifactError {
    pub(crate) fn new(artifact: impl Into<String>, rule: ArtifactRule) -> Self {
        Self {
            artifact: artifact.into(),
            rule,
        }
    }
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "artifact `{}` refused: {}", self.artifact, self.rule)
    }
}

/// The rule is part of the message; what is chained is the cause behind it, if any.
impl std::error::Error for ArtifactError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.rule.source()
    }
}

/// Why the hook's return value does not name a usable entry of the output folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnedNameRule {
    Empty,
    HasSlash,
    HasBackslash,
    HasControlChar,
    DotName,
    Hidden,
}

impl fmt::Display for ReturnedNameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReturnedNameRule::Empty => "it is empty",
            ReturnedNameRule::HasSlash => "it holds a `/`",
            ReturnedNameRule::HasBackslash => "it holds a backslash",
            ReturnedNameRule::HasControlChar => "it holds a control character or NUL",
            ReturnedNameRule::DotName => "it is `.` or `..`",
            ReturnedNameRule::Hidden => "it starts with `.`",
        })
    }
}

/// The rules an artifact can break.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactRule {
    // The hook's return value and the output folder.
    #[error("the hook's return value is not a bare file name in the output folder: {0}")]
    ReturnedName(ReturnedNameRule),
    #[error("it does not exist in the output folder")]
    Missing,
    #[error("it is a symlink")]
    Symlink,
    #[error("it is a {kind}, not a regular file")]
    NotRegularFile { kind: &'static str },
    #[error("it is not a folder")]
    NotFolder,
    #[error("it has {links} hard links; an artifact must have exactly one")]
    HardLinked { links: u64 },
    #[error("a metadata folder's name must end in `.dist-info`")]
    NotDistInfo,
    #[error("`{path}` inside it is a symlink")]
    SymlinkInside { path: String },
    #[error("`{path}` inside it is a {kind}")]
    SpecialInside { path: String, kind: &'static str },
    #[error(
        "it nests folders more than {limit} levels deep (`{path}`); metadata needs no such \
         depth"
    )]
    TooDeep { path: String, limit: usize },

    // File names.
    #[error("invalid file name: {reason}")]
    FileName { reason: String },

    // Size limits.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),

    // Zip structure and zip members.
    #[error(transparent)]
    Zip(ZipError),
    #[error("member `{member}` refused: {rule}")]
    Member { member: String, rule: MemberRule },
    #[error("members `{member}` and `{other}` differ only in case")]
    CaseDuplicate { member: String, other: String },

    // .dist-info and .data.
    #[error("it has {} top-level `.dist-info` folders{}; a wheel has exactly one", found.len(), listing(found))]
    DistInfoCount { found: Vec<String> },
    #[error("its `.dist-info` folder is `{found}`, but the file name requires `{expected}`")]
    DistInfoName { found: String, expected: String },
    #[error("it has several top-level `.data` folders{}", listing(found))]
    DataDirCount { found: Vec<String> },
    #[error("its `.data` folder is `{found}`, but it must be `{expected}`")]
    DataDirName { found: String, expected: String },
    #[error(
        "member `{member}` is not inside one of the `.data` schemes \
         purelib, platlib, headers, scripts, data"
    )]
    DataScheme { member: String },

    // Metadata files.
    #[error("`{path}` is missing (or not a regular file)")]
    MissingFile { path: String },
    #[error("`{path}` is larger than {limit} bytes")]
    MetadataTooLarge { path: String, limit: u64 },
    #[error("`{path}` does not parse: {reason}")]
    Metadata { path: String, reason: String },
    #[error("`{path}` names the project `{found}`, but the file name says `{expected}`")]
    NameMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error("`{path}` gives version `{found}`, but the file name says `{expected}`")]
    VersionMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error("WHEEL has `Wheel-Version: {found}`; only 1.x is supported")]
    WheelVersion { found: String },
    #[error("WHEEL has `Root-Is-Purelib: {found}`; it must be `true` or `false`")]
    RootIsPurelib { found: String },

    // RECORD.
    #[error("RECORD line {line}: {reason}")]
    RecordSyntax { line: usize, reason: String },
    #[error("RECORD lists `{path}` more than once")]
    RecordDuplicate { path: String },
    #[error("member `{member}` is not listed in RECORD")]
    NotInRecord { member: String },
    #[error("RECORD lists `{path}`, which is not a file of the wheel")]
    RecordListsMissing { path: String },
    #[error("RECORD entry for `{path}` has no hash")]
    RecordNoHash { path: String },
    #[error("RECORD entry for `{path}` uses hash `{algorithm}`; sha256, sha384 or sha512 required")]
    RecordHashAlgorithm { path: String, algorithm: String },
    #[error("RECORD hash of `{path}` does not match its contents")]
    RecordHash { path: String },
    #[error("RECORD size of `{path}` is `{recorded}`, but it holds {actual} bytes")]
    RecordSize {
        path: String,
        recorded: String,
        actual: u64,
    },

    // Sdists.
    #[error(transparent)]
    Archive(#[from] ArchiveError),

    #[error("cannot read it: {reason}")]
    Io { reason: String },
}

impl From<ZipError> for ArtifactRule {
    /// Limits and member name rules as for every artifact; the zip rules as they are.
    fn from(e: ZipError) -> Self {
        match e {
            ZipError::Limit(limit) => ArtifactRule::Limit(limit),
            ZipError::Member {
                member,
                rule: ZipMemberRule::Name(rule),
            } => ArtifactRule::Member { member, rule },
            other => ArtifactRule::Zip(other),
        }
    }
}

/// ` (a, b)` for a non-empty list, nothing for an empty one.
fn listing(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// The largest METADATA, WHEEL, RECORD or PKG-INFO read into memory.
pub(crate) const MAX_METADATA_BYTES: u64 = 32 * 1024 * 1024;

/// Checks that core metadata's `Name` and `Version` are `name` and `version` (names
/// normalized, versions compared as PEP 440 versions).
pub(crate) fn check_name_version(
    path: &str,
    meta: &crate::metadata::CoreMetadata,
    name: &pep508_rs::PackageName,
    version: &pep440_rs::Version,
) -> Result<(), ArtifactRule> {
    use std::str::FromStr;
    let found_name =
        pep508_rs::PackageName::from_str(&meta.name).map_err(|e| ArtifactRule::Metadata {
            path: path.to_string(),
            reason: format!("invalid Name `{}`: {e}", meta.name),
        })?;
    if &found_name != name {
        return Err(ArtifactRule::NameMismatch {
            path: path.to_string(),
            found: meta.name.clone(),
            expected: name.to_string(),
        });
    }
    let found_version =
        pep440_rs::Version::from_str(&meta.version).map_err(|e| ArtifactRule::Metadata {
            path: path.to_string(),
            reason: format!("invalid Version `{}`: {e}", meta.version),
        })?;
    if &found_version != version {
        return Err(ArtifactRule::VersionMismatch {
            path: path.to_string(),
            found: meta.version.clone(),
            expected: version.to_string(),
        });
    }
    Ok(())
}

/// Whether `stem` (a `.dist-info` or `.data` folder name without its suffix) is
/// `{name}-{version}` for this project.
pub(crate) fn stem_matches(
    stem: &str,
    name: &pep508_rs::PackageName,
    version: &pep440_rs::Version,
) -> bool {
    use std::str::FromStr;
    crate::filename::split_name_version(stem, name)
        .is_some_and(|(_, v)| pep440_rs::Version::from_str(v).is_ok_and(|v| &v == version))
}

/// The size of an open artifact, refused beyond [`ArtifactLimits::max_artifact_bytes`].
pub(crate) fn artifact_size(
    file: &std::fs::File,
    limits: &crate::limits::ArtifactLimits,
) -> Result<u64, ArtifactRule> {
    let size = file
        .metadata()
        .map_err(|e| ArtifactRule::Io {
            reason: e.to_string(),
        })?
        .len();
    if size > limits.max_artifact_bytes {
        return Err(LimitExceeded::ArtifactBytes {
            limit: limits.max_artifact_bytes,
            size,
        }
        .into());
    }
    Ok(size)
}

/// Reads at most [`MAX_METADATA_BYTES`] from `reader`, failing beyond.
pub(crate) fn read_bounded(
    reader: impl std::io::Read,
    path: &str,
) -> Result<Vec<u8>, ArtifactRule> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| match ZipError::from(e) {
            ZipError::Io(e) => ArtifactRule::Io {
                reason: format!("reading `{path}`: {e}"),
            },
            refused => refused.into(),
        })?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(ArtifactRule::MetadataTooLarge {
            path: path.to_string(),
            limit: MAX_METADATA_BYTES,
        });
    }
    Ok(bytes)
}
