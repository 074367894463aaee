//! Legacy `.zip` sdists: read through [`StrictZip`] and handed member by member to the same
//! sink as tar.gz sdists, under the same rules (single top-level folder, safe names, no
//! file where a folder is needed, limits). Zip sdists get no links at all.

use super::scan::{CountingTee, MemberSink, PkgInfo, ScanSummary, TopLevel};
use super::zip::{StrictZip, ZipError, ZipSource};
use super::{ArchiveError, CorruptAt, MemberRule};
use crate::filename::same_name_version;
use crate::limits::ArchiveLimits;
use std::collections::BTreeSet;
use std::io::{self, Read};

/// Scans a zip sdist whose members all lie in one top-level folder that `top_rule`
/// accepts (the first member's folder is the one).
pub(crate) fn scan_zip(
    source: impl ZipSource,
    limits: &ArchiveLimits,
    top_rule: TopLevel<'_>,
    sink: &mut dyn MemberSink,
) -> Result<ScanSummary, ArchiveError> {
    let zip = StrictZip::open(source, limits)?;
    let first = zip.members().first().ok_or(ArchiveError::Empty)?;
    let top = first.path.top().to_string();
    if let TopLevel::Matching(expected) = top_rule
        && !same_name_version(&top, expected)
    {
        return Err(ArchiveError::Member {
            member: first.name.clone(),
            rule: MemberRule::WrongTopLevel {
                expected: expected.to_string(),
            },
        });
    }
    let mut executables = BTreeSet::new();
    let mut pkg_info = None;
    for (index, member) in zip.members().iter().enumerate() {
        let path = &member.path;
        if path.top() != top || (path.depth() == 1 && !member.is_dir) {
            return Err(ArchiveError::Member {
                member: member.name.clone(),
                rule: MemberRule::OutsideTopLevel { top },
            });
        }
        let write_error = |source: io::Error| ArchiveError::Write {
            member: path.to_string(),
            source,
        };
        if member.is_dir {
            sink.dir(path, member.mtime()).map_err(write_error)?;
            continue;
        }
        let capture = path.strip_prefix(&top) == Some("PKG-INFO");
        let mut reader = Noting {
            inner: zip.reader(index).expect("a member's index"),
            refused: None,
        };
        let mut tee = CountingTee {
            inner: &mut reader,
            count: 0,
            capture: capture.then(Vec::new),
            failed: false,
        };
        let executable = member.is_executable();
        let written = sink.file(path, executable, false, member.mtime(), &mut tee);
        // Whatever the sink left unread still has to be valid.
        let drained = written.and_then(|()| io::copy(&mut tee, &mut io::sink()).map(drop));
        let (failed, captured) = (tee.failed, tee.capture.take());
        if let Some(refused) = reader.refused.take() {
            return Err(refused.into());
        }
        // A failed read is the archive's fault, not the disk's.
        match drained {
            Err(source) if failed => {
                return Err(ArchiveError::Corrupt {
                    at: CorruptAt::Member(member.name.clone()),
                    source,
                });
            }
            other => other.map_err(write_error)?,
        }
        if capture {
            pkg_info = Some(match captured {
                Some(bytes) => PkgInfo::Bytes(bytes),
                None => PkgInfo::TooLarge,
            });
        }
        if executable {
            executables.insert(path.to_string());
        }
    }
    Ok(ScanSummary {
        top,
        members: zip.members().len() as u64,
        unpacked_bytes: zip.unpacked_size(),
        executables,
        pkg_info,
    })
}

/// A member reader that keeps the rule it refused the data for, so that the refusal is
/// reported as such rather than as the sink's write error.
struct Noting<R> {
    inner: R,
    refused: Option<ZipError>,
}

impl<R: Read> Read for Noting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| match ZipError::from(e) {
            ZipError::Io(e) => e,
            refused => {
                let e = io::Error::new(io::ErrorKind::InvalidData, refused.to_string());
                self.refused.get_or_insert(refused);
                e
            }
        })
    }
}

#[cfg(test)]
mod tests;
