//! Safe extraction of an sdist from a stranger.

use super::ArchiveError;
use super::fs::{Mtime, TreeWriter, set_file_mtime};
use super::path::RelPath;
use super::scan::{MemberSink, PkgInfo, ScanSummary, scan_tar_gz};
use super::sdist_zip::scan_zip;
use crate::filename::SdistFilename;
use crate::limits::ArchiveLimits;
use crate::metadata::CoreMetadata;
use pep508_rs::PackageName;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An sdist unpacked by [`extract_sdist`].
#[derive(Debug, Clone)]
pub struct ExtractedSdist {
    /// The project folder, `dest/{top_level}`.
    pub root: PathBuf,
    /// The single top-level folder's name, `{name}-{version}`.
    pub top_level: String,
    /// Name and version as the top-level folder gives them (disambiguated with PKG-INFO's
    /// `Name` when PKG-INFO is present and parses).
    pub filename: SdistFilename,
    /// Regular files that had an executable bit, relative to `root`, sorted. WASI has no
    /// permission bits: the host hands this list to the guest.
    pub executables: Vec<String>,
    /// Members read (folders, links and PAX global headers included).
    pub members: u64,
    /// Bytes counted against [`ArchiveLimits::max_unpacked_bytes`].
    pub unpacked_bytes: u64,
}

/// Extracts the sdist `archive` (a gzip-compressed tar, or a legacy zip when its name ends
/// in `.zip`) into `dest`, which must not exist (its parent must) or be an empty folder.
///
/// Every member passes these rules or the whole extraction fails: a UTF-8 name without NUL,
/// control characters or backslashes, relative, without `..` or empty components; inside
/// the single top-level folder (which must equal the archive's file name minus `.tar.gz`
/// or `.zip` when the file name ends so); a regular file, a folder, a symlink whose target resolves
/// lexically inside the top-level folder, or a hard link to an earlier regular file member
/// (materialized as a copy); never written through or over a symlink, never turning a
/// folder into a file or back; sane PAX headers. Sizes and ratios are counted while the
/// stream is decompressed (see [`ArchiveLimits`]). A zip sdist must pass the strict zip
/// reader ([`StrictZip`](super::zip::StrictZip)) and holds no links; its files keep their
/// executable bits and (read as UTC) modification times.
///
/// Files get mode 0644 or 0755 and the archive's modification times (folders too, once
/// their contents are written); symlinks are written in a canonical relative form
/// (`../../a/b`: leading `..` steps, then plain names), so that what was checked lexically
/// is what the kernel resolves. On any error, everything written is removed again
/// (and `dest` itself if this call created it).
pub fn extract_sdist(
    archive: &Path,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractedSdist, ArchiveError> {
    let file = File::open(archive).map_err(|source| ArchiveError::Read {
        path: archive.to_path_buf(),
        source,
    })?;
    let file_name = archive
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    extract_sdist_file(&file, file_name, dest, limits)
}

/// [`extract_sdist`] from an open file named `file_name` (read from its start): for an
/// sdist the backend built, extract from the very handle that
/// [`collect_artifact`](crate::verify::collect_artifact) opened and
/// [`verify_sdist_file`](crate::verify::verify_sdist_file) checked.
pub fn extract_sdist_file(
    file: &File,
    file_name: &str,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractedSdist, ArchiveError> {
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|source| ArchiveError::Read {
            path: PathBuf::from(file_name),
            source,
        })?;
    let zip = file_name.ends_with(".zip");
    let expected_top = file_name
        .strip_suffix(".tar.gz")
        .or_else(|| file_name.strip_suffix(".zip"));
    let writer = TreeWriter::create(dest).map_err(|source| ArchiveError::Destination {
        path: dest.to_path_buf(),
        source,
    })?;
    let scan = |sink: &mut ExtractSink<'_>| {
        if zip {
            scan_zip(file, limits, expected_top, sink)
        } else {
            scan_tar_gz(reader, limits, expected_top, sink)
        }
    };
    match extract_into(scan, &writer) {
        Ok(extracted) => Ok(extracted),
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}

fn extract_into(
    scan: impl FnOnce(&mut ExtractSink<'_>) -> Result<ScanSummary, ArchiveError>,
    writer: &TreeWriter,
) -> Result<ExtractedSdist, ArchiveError> {
    let mut sink = ExtractSink {
        writer,
        dir_mtimes: Vec::new(),
    };
    let summary = scan(&mut sink)?;
    // Folder times last (writing a child changes its folder's time), deepest first; a
    // folder listed twice gets its last time. Failures are ignored, as tar does.
    let mut dir_mtimes = sink.dir_mtimes;
    dir_mtimes.reverse();
    dir_mtimes.sort_by_key(|(path, _)| std::cmp::Reverse(path.depth()));
    for (path, mtime) in dir_mtimes {
        let components: Vec<&str> = path.components().collect();
        let _ = writer.set_mtime(&components, mtime);
    }

    let pkg_info = match &summary.pkg_info {
        Some(PkgInfo::Bytes(bytes)) => Some(bytes.as_slice()),
        _ => None,
    };
    let filename = sdist_filename(&summary.top, pkg_info)?;
    let executables = summary
        .executables
        .iter()
        .filter_map(|path| {
            path.strip_prefix(summary.top.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .map(str::to_string)
        })
        .collect();
    Ok(ExtractedSdist {
        root: writer.root_path().join(&summary.top),
        top_level: summary.top,
        filename,
        executables,
        members: summary.members,
        unpacked_bytes: summary.unpacked_bytes,
    })
}

/// Name and version from the top-level folder, using PKG-INFO's name (when it parses) to
/// tell where a dashed legacy name ends.
fn sdist_filename(top: &str, pkg_info: Option<&[u8]>) -> Result<SdistFilename, ArchiveError> {
    let as_filename = format!("{top}.tar.gz");
    let from_pkg_info = pkg_info
        .and_then(|bytes| CoreMetadata::parse(bytes).ok())
        .and_then(|meta| PackageName::from_str(&meta.name).ok())
        .and_then(|name| SdistFilename::parse_for(&as_filename, &name).ok());
    match from_pkg_info {
        Some(filename) => Ok(filename),
        None => SdistFilename::parse_guess(&as_filename).map_err(|e| ArchiveError::TopLevelName {
            top: top.to_string(),
            reason: format!("{e:#}"),
        }),
    }
}

/// Writes members under the destination.
struct ExtractSink<'w> {
    writer: &'w TreeWriter,
    dir_mtimes: Vec<(RelPath, Mtime)>,
}

impl MemberSink for ExtractSink<'_> {
    fn dir(&mut self, path: &RelPath, mtime: Mtime) -> io::Result<()> {
        let components: Vec<&str> = path.components().collect();
        self.writer.create_dir(&components)?;
        self.dir_mtimes.push((path.clone(), mtime));
        Ok(())
    }

    fn file(
        &mut self,
        path: &RelPath,
        executable: bool,
        replace: bool,
        mtime: Mtime,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let components: Vec<&str> = path.components().collect();
        let mut file = self.writer.create_file(&components, executable, replace)?;
        io::copy(data, &mut file)?;
        let _ = set_file_mtime(&file, mtime);
        Ok(())
    }

    fn symlink(&mut self, path: &RelPath, target: &str, mtime: Mtime) -> io::Result<()> {
        let components: Vec<&str> = path.components().collect();
        self.writer.symlink(&components, target)?;
        let _ = self.writer.set_mtime(&components, mtime);
        Ok(())
    }

    fn hard_link(
        &mut self,
        path: &RelPath,
        target: &RelPath,
        executable: bool,
        replace: bool,
        mtime: Mtime,
    ) -> io::Result<()> {
        let source: Vec<&str> = target.components().collect();
        let mut source = self.writer.open_file(&source)?;
        let components: Vec<&str> = path.components().collect();
        let mut file = self.writer.create_file(&components, executable, replace)?;
        io::copy(&mut source, &mut file)?;
        let _ = set_file_mtime(&file, mtime);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
