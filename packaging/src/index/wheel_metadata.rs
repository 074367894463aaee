//! Core metadata read from a wheel itself, for indexes without PEP 658 metadata files and for
//! find-links wheels.

use super::IndexError;
use super::http::MAX_METADATA_BYTES;
use crate::archive::zip::{StrictZip, ZipError};
use crate::filename::WheelFilename;
use crate::limits::ArchiveLimits;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// Reads `<name>-<version>.dist-info/METADATA` from a wheel. The wheel must hold exactly one
/// top-level `.dist-info/METADATA`, or one whose folder matches the wheel's name.
pub(crate) fn read_wheel_metadata(path: &Path, filename: &str) -> Result<Vec<u8>, IndexError> {
    let invalid = |reason: String| IndexError::InvalidMetadata {
        filename: filename.to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| IndexError::Io {
        action: format!("opening {}", path.display()),
        error: e,
    })?;
    // The strict reader: the metadata resolution relies on is what every installer reads.
    let archive = StrictZip::open(&file, &ArchiveLimits::default())
        .map_err(|e| invalid(format!("{:#}", anyhow::Error::from(e))))?;
    let candidates: Vec<String> = archive
        .members()
        .iter()
        .map(|member| member.name.as_str())
        .filter(|name| {
            name.strip_suffix(".dist-info/METADATA")
                .is_some_and(|dir| !dir.is_empty() && !dir.contains('/'))
        })
        .map(str::to_string)
        .collect();
    let chosen = match candidates.as_slice() {
        [] => return Err(invalid("the wheel has no .dist-info/METADATA".to_string())),
        [only] => only.clone(),
        several => {
            let wheel = WheelFilename::from_str(filename).map_err(|e| invalid(format!("{e:#}")))?;
            let expected = wheel.dist_info_dir();
            several
                .iter()
                .find(|name| {
                    name.strip_suffix("/METADATA")
                        .is_some_and(|dir| dir.eq_ignore_ascii_case(&expected))
                })
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "the wheel has several .dist-info folders ({}) and none is {expected}",
                        several.join(", ")
                    ))
                })?
        }
    };
    let index = archive
        .members()
        .iter()
        .position(|member| member.name == chosen)
        .expect("a listed member");
    let entry = archive.reader(index).expect("a member's index");
    let mut bytes = Vec::new();
    entry
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            invalid(format!(
                "cannot read {chosen}: {:#}",
                anyhow::Error::from(ZipError::from(e))
            ))
        })?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(invalid(format!("{chosen} is larger than 16 MiB")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        {
            let mut zip = zip::ZipWriter::new(tmp.as_file_mut());
            for (name, data) in entries {
                zip.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            zip.finish().unwrap();
        }
        tmp
    }

    #[test]
    fn reads_metadata_from_a_wheel() {
        let meta: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";
        let wheel = wheel_with(&[
            ("demo/__init__.py", b""),
            ("demo-1.0.dist-info/METADATA", meta),
        ]);
        let bytes = read_wheel_metadata(wheel.path(), "demo-1.0-py3-none-any.whl").unwrap();
        assert_eq!(bytes, meta);

        let two = wheel_with(&[
            ("other-1.0.dist-info/METADATA", b"x"),
            ("demo-1.0.dist-info/METADATA", meta),
        ]);
        let bytes = read_wheel_metadata(two.path(), "demo-1.0-py3-none-any.whl").unwrap();
        assert_eq!(bytes, meta);

        let nested = wheel_with(&[("pkg/demo-1.0.dist-info/METADATA", meta)]);
        let err = read_wheel_metadata(nested.path(), "demo-1.0-py3-none-any.whl").unwrap_err();
        assert!(err.to_string().contains("no .dist-info/METADATA"), "{err}");

        let not_zip = tempfile::NamedTempFile::new().unwrap();
        let err = read_wheel_metadata(not_zip.path(), "demo-1.0-py3-none-any.whl").unwrap_err();
        assert!(
            err.to_string().contains("demo-1.0-py3-none-any.whl"),
            "{err}"
        );
    }
}
