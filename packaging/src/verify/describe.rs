//! What a report says of an artifact that passed verification: its size, its sha256 and
//! its core metadata, read again from the handle that was verified.

use super::{ArtifactError, ArtifactRule, read_bounded};
use crate::archive::path::display_name;
use crate::archive::scan::{DrainSink, PkgInfo, TopLevel, scan_tar_gz};
use crate::archive::zip::StrictZip;
use crate::limits::ArtifactLimits;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Size, digest and core metadata of a verified artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFacts {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// The wheel's `.dist-info/METADATA` or the sdist's `PKG-INFO`, as its bytes.
    pub core_metadata: Vec<u8>,
}

/// Reads the facts of `file`, a wheel (`.whl`) or sdist (`.tar.gz`) named `file_name`,
/// which must have passed [`verify_wheel_file`](super::verify_wheel_file) or
/// [`verify_sdist_file`](super::verify_sdist_file) through this same handle (so that the
/// one `.dist-info` folder or top-level folder is known to exist and be unique).
pub fn describe_verified(
    file: &File,
    file_name: &str,
    limits: &ArtifactLimits,
) -> Result<ArtifactFacts, ArtifactError> {
    let refuse = |rule| ArtifactError::new(display_name(file_name.as_bytes()), rule);
    let io = |e: std::io::Error| {
        refuse(ArtifactRule::Io {
            reason: e.to_string(),
        })
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let (sha256, size) = crate::cache::sha256_reader(
        (&mut reader).take(limits.max_artifact_bytes.saturating_add(1)),
    )
    .map_err(io)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let core_metadata = if file_name.ends_with(".whl") {
        wheel_metadata(file, limits).map_err(refuse)?
    } else {
        sdist_pkg_info(reader, limits).map_err(refuse)?
    };
    Ok(ArtifactFacts {
        size,
        sha256,
        core_metadata,
    })
}

/// The one top-level `*.dist-info/METADATA` of a verified wheel, read through the strict
/// zip reader that verified it.
fn wheel_metadata(file: &File, limits: &ArtifactLimits) -> Result<Vec<u8>, ArtifactRule> {
    let zip = StrictZip::open(file, &limits.archive)?;
    let found: Vec<usize> = (0..zip.members().len())
        .filter(|&index| {
            let name = &zip.members()[index].name;
            name.split_once('/')
                .is_some_and(|(top, rest)| top.ends_with(".dist-info") && rest == "METADATA")
        })
        .collect();
    let [index] = found[..] else {
        return Err(ArtifactRule::DistInfoCount {
            found: found
                .iter()
                .map(|&i| zip.members()[i].name.clone())
                .collect(),
        });
    };
    let name = zip.members()[index].name.clone();
    let reader = zip.reader(index).ok_or_else(|| ArtifactRule::Io {
        reason: format!("`{name}` went missing from the zip"),
    })?;
    read_bounded(reader, &name)
}

/// The PKG-INFO of a verified sdist.
fn sdist_pkg_info(reader: impl Read, limits: &ArtifactLimits) -> Result<Vec<u8>, ArtifactRule> {
    let summary = scan_tar_gz(reader, &limits.archive, TopLevel::Any, &mut DrainSink)?;
    match summary.pkg_info {
        Some(PkgInfo::Bytes(bytes)) => Ok(bytes),
        Some(PkgInfo::TooLarge) => Err(ArtifactRule::MetadataTooLarge {
            path: format!("{}/PKG-INFO", summary.top),
            limit: crate::archive::scan::MAX_PKG_INFO_BYTES,
        }),
        None => Err(ArtifactRule::MissingFile {
            path: format!("{}/PKG-INFO", summary.top),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sdist_entries, tar_gz, wheel_files, wheel_zip, write_file};

    #[test]
    fn facts_of_a_wheel_and_an_sdist() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_zip(&wheel_files("demo", "1.0"), "demo-1.0.dist-info");
        let path = write_file(dir.path(), "demo-1.0-py3-none-any.whl", &wheel);
        let file = File::open(&path).unwrap();
        let limits = ArtifactLimits::default();
        super::super::verify_wheel_file(&file, "demo-1.0-py3-none-any.whl", &limits).unwrap();
        let facts = describe_verified(&file, "demo-1.0-py3-none-any.whl", &limits).unwrap();
        assert_eq!(facts.size, wheel.len() as u64);
        assert_eq!(facts.sha256, crate::cache::sha256_bytes(&wheel));
        assert_eq!(
            facts.core_metadata,
            b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        );

        let sdist = tar_gz(&sdist_entries("demo-1.0", "demo", "1.0"));
        let path = write_file(dir.path(), "demo-1.0.tar.gz", &sdist);
        let file = File::open(&path).unwrap();
        super::super::verify_sdist_file(&file, "demo-1.0.tar.gz", &limits).unwrap();
        let facts = describe_verified(&file, "demo-1.0.tar.gz", &limits).unwrap();
        assert_eq!(facts.sha256, crate::cache::sha256_bytes(&sdist));
        assert!(
            String::from_utf8(facts.core_metadata)
                .unwrap()
                .contains("Name: demo")
        );
    }
}
