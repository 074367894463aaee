//! Safe extraction of an sdist from a stranger.

use super::fs::{Mtime, TreeWriter, set_file_mtime};
use super::path::RelPath;
use super::scan::{MemberSink, PkgInfo, ScanSummary, TopLevel, scan_tar_gz};
use super::sdist_zip::scan_zip;
use super::{ArchiveError, SourceFormat};
use crate::filename::{SdistFilename, name_version_splits};
use crate::limits::ArchiveLimits;
use crate::metadata::CoreMetadata;
use pep508_rs::PackageName;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What gave an extracted sdist's project name and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The file name, `{name}-{version}.tar.gz` (or `.zip`), matched by the top-level
    /// folder.
    FileName,
    /// The top-level folder `{name}-{version}/`: the file name gives no name and version.
    TopLevelFolder,
    /// PKG-INFO's `Name` and `Version`: neither the file name nor the folder gives them.
    PkgInfo,
}

impl fmt::Display for NamedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamedBy::FileName => "file name",
            NamedBy::TopLevelFolder => "top-level folder",
            NamedBy::PkgInfo => "PKG-INFO",
        })
    }
}

/// An sdist unpacked by [`extract_sdist`].
#[derive(Debug, Clone)]
pub struct ExtractedSdist {
    /// The project folder, `dest/{top_level}`.
    pub root: PathBuf,
    /// The single top-level folder's name, normally `{name}-{version}`.
    pub top_level: String,
    /// Name and version as the top-level folder gives them (disambiguated with PKG-INFO's
    /// `Name` when PKG-INFO is present and parses), or as PKG-INFO gives them when the
    /// folder does not; see [`Self::named_by`].
    pub filename: SdistFilename,
    /// What told the project's name and version. Anything but [`NamedBy::FileName`] means
    /// the file was renamed (`v2.5.0.tar.gz`, a forge's tag archive): say which project
    /// was found.
    pub named_by: NamedBy,
    /// Regular files that had an executable bit, relative to `root`, sorted. WASI has no
    /// permission bits: the host hands this list to the guest.
    pub executables: Vec<String>,
    /// Members read (folders, links and PAX global headers included).
    pub members: u64,
    /// Bytes counted against [`ArchiveLimits::max_unpacked_bytes`].
    pub unpacked_bytes: u64,
    /// The latest modification time of any member: when the sdist was made, as far as
    /// it says (a deterministic build's clock starts there without `SOURCE_DATE_EPOCH`).
    pub newest_mtime: Option<Mtime>,
}

/// An sdist read by [`read_sdist_file`]: checked by the rules of [`extract_sdist`], nothing
/// written.
#[derive(Debug, Clone)]
pub struct ReadSdist {
    /// See [`ExtractedSdist::top_level`].
    pub top_level: String,
    /// See [`ExtractedSdist::filename`].
    pub filename: SdistFilename,
    /// See [`ExtractedSdist::named_by`].
    pub named_by: NamedBy,
    /// `{top_level}/PKG-INFO`, when it is a regular file within the size kept in memory.
    pub pkg_info: Option<Vec<u8>>,
    /// See [`ExtractedSdist::newest_mtime`].
    pub newest_mtime: Option<Mtime>,
}

/// Reads the sdist `file` named `file_name` (from its start) with every rule of
/// [`extract_sdist`], writing nothing: what a build would find in it, for answers that need
/// no build (its PKG-INFO, its name and version).
pub fn read_sdist_file(
    file: &File,
    file_name: &str,
    limits: &ArchiveLimits,
) -> Result<ReadSdist, ArchiveError> {
    let read_error = |source| ArchiveError::Read {
        path: PathBuf::from(file_name),
        source,
    };
    match SourceFormat::detect(file, file_name).map_err(read_error)? {
        SourceFormat::TarGz => {}
        format => {
            return Err(ArchiveError::Format {
                file: file_name.to_string(),
                format,
            });
        }
    }
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let named = file_name
        .strip_suffix(".tar.gz")
        .filter(|stem| name_version_splits(stem).next().is_some());
    let top_rule = match named {
        Some(stem) => TopLevel::Matching(stem),
        None => TopLevel::Any,
    };
    let mut sink = NewestSink { newest: None };
    let summary = scan_tar_gz(reader, limits, top_rule, &mut sink)?;
    let pkg_info = match summary.pkg_info {
        Some(PkgInfo::Bytes(bytes)) => Some(bytes),
        _ => None,
    };
    let (filename, named_by) = identify(
        file_name,
        named.is_some(),
        &summary.top,
        pkg_info.as_deref(),
    )?;
    Ok(ReadSdist {
        top_level: summary.top,
        filename,
        named_by,
        pkg_info,
        newest_mtime: sink.newest,
    })
}

/// Extracts the sdist `archive` (a gzip-compressed tar, or a legacy zip) into `dest`, which
/// must not exist (its parent must) or be an empty folder.
///
/// Anything else (told by its first bytes: a wheel, a `.tar.xz`, …) is refused as
/// [`ArchiveError::Format`], naming what it is.
///
/// Every member passes these rules or the whole extraction fails: a UTF-8 name without NUL,
/// control characters or backslashes, relative, without `..` or empty components; inside
/// the single top-level folder, which must name the project and version of the file name
/// when the file name is `{name}-{version}.tar.gz` or `.zip` (names normalized, versions
/// compared as PEP 440 versions: `ruamel_yaml-0.19.1.tar.gz` may hold
/// `ruamel.yaml-0.19.1/`); a regular file, a folder, a symlink whose target resolves
/// lexically inside the top-level folder, or a hard link to an earlier regular file member
/// (materialized as a copy); never written through or over a symlink, never turning a
/// folder into a file or back; sane PAX headers. Sizes and ratios are counted while the
/// stream is decompressed (see [`ArchiveLimits`]). A zip sdist must pass the strict zip
/// reader ([`StrictZip`](super::zip::StrictZip), its limits checked on the declared sizes)
/// and holds no links; its files keep their executable bits and (read as UTC)
/// modification times.
///
/// Files get mode 0644 or 0755 and the archive's modification times (folders too, once
/// their contents are written); symlinks are written in a canonical relative form
/// (`../../a/b`: leading `..` steps, then plain names), so that what was checked lexically
/// is what the kernel resolves. On any error, everything written is removed again
/// (and `dest` itself if this call created it).
///
/// The project's name and version come from the top-level folder (`{name}-{version}`) or,
/// failing that, PKG-INFO; a file renamed to, say, `v2.5.0.tar.gz` is accepted when its
/// folder is `tomli-2.5.0/` ([`ExtractedSdist::named_by`] says so). When PKG-INFO parses,
/// its Name and Version must agree. Nothing telling them is [`ArchiveError::Unnamed`].
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
    let read_error = |source| ArchiveError::Read {
        path: PathBuf::from(file_name),
        source,
    };
    let format = SourceFormat::detect(file, file_name).map_err(read_error)?;
    if !matches!(format, SourceFormat::TarGz | SourceFormat::Zip) {
        return Err(ArchiveError::Format {
            file: file_name.to_string(),
            format,
        });
    }
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let named = file_name
        .strip_suffix(".tar.gz")
        .or_else(|| file_name.strip_suffix(".zip"))
        .filter(|stem| name_version_splits(stem).next().is_some());
    let writer = TreeWriter::create(dest).map_err(|source| ArchiveError::Destination {
        path: dest.to_path_buf(),
        source,
    })?;
    let scan = |top_rule: TopLevel<'_>, sink: &mut dyn MemberSink| match format {
        SourceFormat::Zip => scan_zip(file, limits, top_rule, sink),
        _ => scan_tar_gz(reader, limits, top_rule, sink),
    };
    match extract_into(scan, file_name, named, &writer) {
        Ok(extracted) => Ok(extracted),
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}

fn extract_into(
    scan: impl FnOnce(TopLevel<'_>, &mut dyn MemberSink) -> Result<ScanSummary, ArchiveError>,
    file_name: &str,
    named: Option<&str>,
    writer: &TreeWriter,
) -> Result<ExtractedSdist, ArchiveError> {
    let mut sink = ExtractSink {
        writer,
        dir_mtimes: Vec::new(),
        newest: None,
    };
    let top_rule = match named {
        Some(stem) => TopLevel::Matching(stem),
        None => TopLevel::Any,
    };
    let summary = scan(top_rule, &mut sink)?;
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
    let (filename, named_by) = identify(file_name, named.is_some(), &summary.top, pkg_info)?;
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
        named_by,
        executables,
        members: summary.members,
        unpacked_bytes: summary.unpacked_bytes,
        newest_mtime: sink.newest,
    })
}

/// Name and version from the top-level folder, using PKG-INFO's name (when it parses) to
/// tell where a dashed legacy name ends; from PKG-INFO when the folder gives none. A
/// PKG-INFO that parses must agree.
fn identify(
    file_name: &str,
    file_name_matched: bool,
    top: &str,
    pkg_info: Option<&[u8]>,
) -> Result<(SdistFilename, NamedBy), ArchiveError> {
    let from_pkg_info = pkg_info
        .and_then(|bytes| CoreMetadata::parse(bytes).ok())
        .and_then(|meta| {
            let name = PackageName::from_str(&meta.name).ok()?;
            let version = pep440_rs::Version::from_str(&meta.version).ok()?;
            Some((meta, name, version))
        });
    let as_filename = format!("{top}.tar.gz");
    let from_top = from_pkg_info
        .as_ref()
        .and_then(|(_, name, _)| SdistFilename::parse_for(&as_filename, name).ok())
        .or_else(|| SdistFilename::parse_guess(&as_filename).ok());
    let (filename, named_by) = match (from_top, from_pkg_info.as_ref()) {
        (Some(filename), _) if file_name_matched => (filename, NamedBy::FileName),
        (Some(filename), _) => (filename, NamedBy::TopLevelFolder),
        (None, Some((meta, name, version))) => (
            SdistFilename {
                name: name.clone(),
                raw_name: meta.name.clone(),
                version: version.clone(),
                raw_version: meta.version.clone(),
            },
            NamedBy::PkgInfo,
        ),
        (None, None) => {
            return Err(ArchiveError::Unnamed {
                file: file_name.to_string(),
                top: top.to_string(),
            });
        }
    };
    if let Some((meta, name, version)) = &from_pkg_info
        && (name != &filename.name || version != &filename.version)
    {
        return Err(ArchiveError::PkgInfoMismatch {
            found: format!("{} {}", meta.name, meta.version),
            expected: format!("{} {} (`{top}`)", filename.name, filename.version),
        });
    }
    Ok((filename, named_by))
}

/// Keeps the latest of `mtime` and `newest`.
pub(super) fn note_newest(newest: &mut Option<Mtime>, mtime: Mtime) {
    if newest.is_none_or(|seen| mtime > seen) {
        *newest = Some(mtime);
    }
}

/// Writes nothing; keeps the newest modification time.
struct NewestSink {
    newest: Option<Mtime>,
}

impl MemberSink for NewestSink {
    fn dir(&mut self, _: &RelPath, mtime: Mtime) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
        Ok(())
    }
    fn file(
        &mut self,
        _: &RelPath,
        _: bool,
        _: bool,
        mtime: Mtime,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
        io::copy(data, &mut io::sink()).map(drop)
    }
    fn symlink(&mut self, _: &RelPath, _: &str, mtime: Mtime) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
        Ok(())
    }
    fn hard_link(
        &mut self,
        _: &RelPath,
        _: &RelPath,
        _: bool,
        _: bool,
        mtime: Mtime,
    ) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
        Ok(())
    }
}

/// Writes members under the destination.
struct ExtractSink<'w> {
    writer: &'w TreeWriter,
    dir_mtimes: Vec<(RelPath, Mtime)>,
    newest: Option<Mtime>,
}

impl MemberSink for ExtractSink<'_> {
    fn dir(&mut self, path: &RelPath, mtime: Mtime) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
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
        note_newest(&mut self.newest, mtime);
        let components: Vec<&str> = path.components().collect();
        let mut file = self.writer.create_file(&components, executable, replace)?;
        io::copy(data, &mut file)?;
        let _ = set_file_mtime(&file, mtime);
        Ok(())
    }

    fn symlink(&mut self, path: &RelPath, target: &str, mtime: Mtime) -> io::Result<()> {
        note_newest(&mut self.newest, mtime);
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
        note_newest(&mut self.newest, mtime);
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
