//! Verification of a built sdist.

use super::collect::open_artifact;
use super::{ArtifactError, ArtifactRule, MAX_METADATA_BYTES, artifact_size, check_name_version};
use crate::archive::path::display_name;
use crate::archive::scan::{DrainSink, PkgInfo, TopLevel, scan_tar_gz};
use crate::filename::SdistFilename;
use crate::limits::ArtifactLimits;
use crate::metadata::CoreMetadata;
use pep508_rs::PackageName;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;

/// An sdist that passed [`verify_sdist`].
#[derive(Debug, Clone)]
pub struct VerifiedSdist {
    /// The parsed file name (split where PKG-INFO's name ends).
    pub filename: SdistFilename,
    /// The single top-level folder: the file name without `.tar.gz`, or the same project
    /// and version spelled otherwise (`ruamel.yaml-0.19.1` in `ruamel_yaml-0.19.1.tar.gz`).
    pub top_level: String,
    /// Its PKG-INFO.
    pub metadata: CoreMetadata,
    /// Members read.
    pub members: u64,
    /// Bytes of the decompressed tar stream.
    pub unpacked_bytes: u64,
}

/// Verifies the sdist at `path`, opened without following a symlink.
///
/// See [`verify_sdist_file`] for the rules.
pub fn verify_sdist(path: &Path, limits: &ArtifactLimits) -> Result<VerifiedSdist, ArtifactError> {
    let (file, file_name) = open_artifact(path)?;
    verify_sdist_file(&file, file_name, limits)
}

/// Verifies an open sdist named `file_name`:
///
/// - the name is `{name}-{version}.tar.gz` (PEP 625; legacy names whose name part
///   normalizes to PKG-INFO's Name are accepted), the file within
///   [`ArtifactLimits::max_artifact_bytes`];
/// - a valid tar.gz whose every member passes the rules of
///   [`extract_sdist`](crate::archive::extract_sdist) (the same code, streaming, nothing
///   written), all inside the single top-level folder naming the file name's project and
///   version (normalized names, PEP 440 versions);
/// - `{top}/PKG-INFO` is a regular file that parses, with Name (normalized) and Version
///   (PEP 440) equal to the file name's.
pub fn verify_sdist_file(
    file: &File,
    file_name: &str,
    limits: &ArtifactLimits,
) -> Result<VerifiedSdist, ArtifactError> {
    let refuse = |rule| ArtifactError::new(display_name(file_name.as_bytes()), rule);
    let file_name_rule = |e: anyhow::Error| ArtifactRule::FileName {
        reason: format!("{e:#}"),
    };
    let Some(top) = file_name.strip_suffix(".tar.gz") else {
        // Legacy `.zip` sdists are read, never made (PEP 625).
        return Err(refuse(ArtifactRule::FileName {
            reason: format!("a built sdist must be a `.tar.gz` (PEP 625), not `{file_name}`"),
        }));
    };
    SdistFilename::parse_guess(file_name).map_err(|e| refuse(file_name_rule(e)))?;
    let io_rule = |e: std::io::Error| {
        refuse(ArtifactRule::Io {
            reason: e.to_string(),
        })
    };
    artifact_size(file, limits).map_err(refuse)?;
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0)).map_err(io_rule)?;
    let summary = scan_tar_gz(
        reader,
        &limits.archive,
        TopLevel::Matching(top),
        &mut DrainSink,
    )
    .map_err(|e| refuse(e.into()))?;

    let path = format!("{}/PKG-INFO", summary.top);
    let bytes = match summary.pkg_info {
        Some(PkgInfo::Bytes(bytes)) => bytes,
        Some(PkgInfo::TooLarge) => {
            return Err(refuse(ArtifactRule::MetadataTooLarge {
                path,
                limit: MAX_METADATA_BYTES.min(crate::archive::scan::MAX_PKG_INFO_BYTES),
            }));
        }
        None => return Err(refuse(ArtifactRule::MissingFile { path })),
    };
    let metadata = CoreMetadata::parse(&bytes).map_err(|e| {
        refuse(ArtifactRule::Metadata {
            path: path.clone(),
            reason: format!("{e:#}"),
        })
    })?;
    let name = PackageName::from_str(&metadata.name).map_err(|e| {
        refuse(ArtifactRule::Metadata {
            path: path.clone(),
            reason: format!("invalid Name `{}`: {e}", metadata.name),
        })
    })?;
    let filename = SdistFilename::parse_for(file_name, &name).map_err(|_| {
        refuse(ArtifactRule::NameMismatch {
            path: path.clone(),
            found: metadata.name.clone(),
            expected: top.to_string(),
        })
    })?;
    check_name_version(&path, &metadata, &filename.name, &filename.version).map_err(refuse)?;
    Ok(VerifiedSdist {
        filename,
        top_level: summary.top,
        metadata,
        members: summary.members,
        unpacked_bytes: summary.unpacked_bytes,
    })
}

#[cfg(test)]
mod tests;
