//! Taking what a hook names out of its output folder without following a symlink.

use super::{ArtifactError, ArtifactRule, ReturnedNameRule, check_name_version, read_bounded};
use crate::archive::fs::{NotRegular, lstat_at, open_dir_at, open_dir_path, open_regular_file};
use crate::archive::path::display_name;
use crate::limits::{ArtifactLimits, LimitExceeded};
use crate::metadata::CoreMetadata;
use crate::publish::{OutputDir, PublishError};
use rustix::fs::FileType;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// An artifact taken from the output folder: checked to be a plain regular file and held
/// open, so that what is verified and copied is that file even if a name changes later.
#[derive(Debug)]
pub struct CollectedArtifact {
    /// Where it is in the output folder.
    pub path: PathBuf,
    /// Its file name (the hook's return value, checked).
    pub file_name: String,
    /// The file, opened with `O_NOFOLLOW`. Verify and copy from this handle.
    pub file: File,
    /// Its size in bytes when it was opened.
    pub size: u64,
}

impl CollectedArtifact {
    /// Copies the artifact, from the handle that was verified, into `dest` under its file
    /// name (see [`OutputDir::publish_file`]: a temporary name, synced, then renamed over
    /// any older file of that name). Fails if the file's size changed since it was
    /// collected.
    pub fn publish(&self, dest: &OutputDir) -> Result<PathBuf, PublishError> {
        use std::io::{Seek, SeekFrom};
        let mut source = &self.file;
        source
            .seek(SeekFrom::Start(0))
            .map_err(|source| PublishError::Write {
                name: self.file_name.clone(),
                dir: dest.path().to_path_buf(),
                source,
            })?;
        dest.publish_file(&self.file_name, source, self.size)
    }
}

/// A `.dist-info` folder returned by `prepare_metadata_for_build_wheel` (or `_editable`).
#[derive(Debug)]
pub struct CollectedMetadata {
    /// The folder, opened without following links: copy from this handle.
    pub dir: OwnedFd,
    /// Where it is in the output folder.
    pub path: PathBuf,
    /// Its name, `{name}-{version}.dist-info`.
    pub name: String,
    /// Its METADATA, parsed.
    pub metadata: CoreMetadata,
    /// Every file inside it, relative to it, sorted.
    pub files: Vec<String>,
}

/// Checks the hook's return value `returned` and opens the artifact it names in `out_dir`:
/// a bare file name (not empty, no `/`, `\`, NUL or control characters, not `.`/`..`,
/// not hidden) of a regular file with a single link, directly in `out_dir`. The file is
/// opened with `O_NOFOLLOW` and its type checked on the opened descriptor, so a symlink or
/// a swapped-in FIFO is refused, never followed.
pub fn collect_artifact(
    out_dir: &Path,
    returned: &str,
) -> Result<CollectedArtifact, ArtifactError> {
    let refuse = |rule| ArtifactError::new(display_name(returned.as_bytes()), rule);
    check_returned_name(returned).map_err(|r| refuse(ArtifactRule::ReturnedName(r)))?;
    let dir = open_dir_path(out_dir).map_err(|e| refuse(io_rule(e)))?;
    check_entry_type(&dir, returned, false).map_err(refuse)?;
    let (file, stat) = open_regular_file(&dir, returned).map_err(|e| refuse(open_rule(e)))?;
    #[allow(clippy::unnecessary_cast)]
    let links = stat.st_nlink as u64;
    if links != 1 {
        return Err(refuse(ArtifactRule::HardLinked { links }));
    }
    #[allow(clippy::unnecessary_cast)]
    let size = stat.st_size as u64;
    Ok(CollectedArtifact {
        path: out_dir.join(returned),
        file_name: returned.to_string(),
        file,
        size,
    })
}

/// How deep a `.dist-info` folder may nest: nothing inside lies more than this many levels
/// below it (`licenses/LICENSE` is 2). A guest can nest folders thousands deep; walking
/// them costs the host time outside `--timeout` and serves no metadata.
pub const MAX_DIST_INFO_DEPTH: usize = 32;

/// Checks the `.dist-info` folder a `prepare_metadata_*` hook returned: a bare name ending
/// in `.dist-info`, a real folder directly in `out_dir`, with no symlink, FIFO, socket or
/// device anywhere inside, nothing deeper than [`MAX_DIST_INFO_DEPTH`], within the entry
/// and size limits, whose METADATA is a regular file that parses and whose Name and
/// Version match the folder's name.
///
/// The walk opens each folder once, relative to its parent's descriptor and without
/// following links, and holds at most one descriptor per level.
pub fn collect_metadata_dir(
    out_dir: &Path,
    returned: &str,
    limits: &ArtifactLimits,
) -> Result<CollectedMetadata, ArtifactError> {
    let refuse = |rule| ArtifactError::new(display_name(returned.as_bytes()), rule);
    check_returned_name(returned).map_err(|r| refuse(ArtifactRule::ReturnedName(r)))?;
    let stem = returned
        .strip_suffix(".dist-info")
        .filter(|stem| !stem.is_empty())
        .ok_or_else(|| refuse(ArtifactRule::NotDistInfo))?;
    let out = open_dir_path(out_dir).map_err(|e| refuse(io_rule(e)))?;
    check_entry_type(&out, returned, true).map_err(refuse)?;
    let dir = open_dir_at(&out, returned).map_err(|e| refuse(open_rule(e)))?;
    let files = walk_plain_tree(&dir, limits).map_err(refuse)?;

    let path = format!("{returned}/METADATA");
    let (file, _) = open_regular_file(&dir, "METADATA").map_err(|e| {
        refuse(match e.kind() {
            io::ErrorKind::NotFound => ArtifactRule::MissingFile { path: path.clone() },
            _ => open_rule(e),
        })
    })?;
    let bytes = read_bounded(file, &path).map_err(refuse)?;
    let metadata = CoreMetadata::parse(&bytes).map_err(|e| {
        refuse(ArtifactRule::Metadata {
            path: path.clone(),
            reason: format!("{e:#}"),
        })
    })?;
    let name = parse_name(&metadata).map_err(|reason| {
        refuse(ArtifactRule::Metadata {
            path: path.clone(),
            reason,
        })
    })?;
    let version = parse_version(&metadata).map_err(|reason| {
        refuse(ArtifactRule::Metadata {
            path: path.clone(),
            reason,
        })
    })?;
    check_name_version(&path, &metadata, &name, &version).map_err(refuse)?;
    if !super::stem_matches(stem, &name, &version) {
        return Err(refuse(ArtifactRule::DistInfoName {
            found: returned.to_string(),
            expected: format!(
                "{}-{}.dist-info",
                crate::filename::escaped_name(&name),
                version
            ),
        }));
    }
    Ok(CollectedMetadata {
        dir,
        path: out_dir.join(returned),
        name: returned.to_string(),
        metadata,
        files,
    })
}

fn parse_name(meta: &CoreMetadata) -> Result<pep508_rs::PackageName, String> {
    use std::str::FromStr;
    pep508_rs::PackageName::from_str(&meta.name).map_err(|e| format!("invalid Name: {e}"))
}

fn parse_version(meta: &CoreMetadata) -> Result<pep440_rs::Version, String> {
    use std::str::FromStr;
    pep440_rs::Version::from_str(&meta.version).map_err(|e| format!("invalid Version: {e}"))
}

/// Opens an artifact file with `O_NOFOLLOW`, refusing anything but a regular file;
/// returns it with its (UTF-8) file name.
pub(crate) fn open_artifact(path: &Path) -> Result<(File, &str), ArtifactError> {
    let shown = display_name(
        path.file_name()
            .unwrap_or(path.as_os_str())
            .as_encoded_bytes(),
    );
    let refuse = |rule| ArtifactError::new(shown.clone(), rule);
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        refuse(ArtifactRule::FileName {
            reason: "the path has no UTF-8 file name".into(),
        })
    })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = open_dir_path(parent).map_err(|e| {
        refuse(ArtifactRule::Io {
            reason: e.to_string(),
        })
    })?;
    open_regular_file(&dir, name)
        .map(|(file, _)| (file, name))
        .map_err(|e| refuse(open_rule(e)))
}

/// The rules for a hook's return value naming an entry of the output folder.
pub(crate) fn check_returned_name(returned: &str) -> Result<(), ReturnedNameRule> {
    if returned.is_empty() {
        return Err(ReturnedNameRule::Empty);
    }
    if returned.contains('/') {
        return Err(ReturnedNameRule::HasSlash);
    }
    if returned.contains('\\') {
        return Err(ReturnedNameRule::HasBackslash);
    }
    if returned.chars().any(char::is_control) {
        return Err(ReturnedNameRule::HasControlChar);
    }
    if returned == "." || returned == ".." {
        return Err(ReturnedNameRule::DotName);
    }
    if returned.starts_with('.') {
        return Err(ReturnedNameRule::Hidden);
    }
    Ok(())
}

/// Checks the type of `name` in `dir` without following it.
fn check_entry_type(dir: &OwnedFd, name: &str, want_dir: bool) -> Result<(), ArtifactRule> {
    let stat = lstat_at(dir, name).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ArtifactRule::Missing,
        _ => io_rule(e),
    })?;
    match (FileType::from_raw_mode(stat.st_mode), want_dir) {
        (FileType::Symlink, _) => Err(ArtifactRule::Symlink),
        (FileType::RegularFile, false) | (FileType::Directory, true) => Ok(()),
        (_, true) => Err(ArtifactRule::NotFolder),
        (other, false) => Err(ArtifactRule::NotRegularFile {
            kind: kind_name(other),
        }),
    }
}

/// Lists every file below `root`, refusing symlinks and special files anywhere, nesting
/// past [`MAX_DIST_INFO_DEPTH`], and going past the member and byte limits.
fn walk_plain_tree(root: &OwnedFd, limits: &ArtifactLimits) -> Result<Vec<String>, ArtifactRule> {
    /// A folder being walked: its descriptor, its path, the subfolders still to visit.
    struct Level {
        dir: OwnedFd,
        path: Vec<String>,
        subfolders: Vec<String>,
    }
    let mut walk = Walk {
        limits,
        files: Vec::new(),
        entries: 0,
        bytes: 0,
    };
    let root = root.try_clone().map_err(io_rule)?;
    let subfolders = walk.list(&root, &[])?;
    let mut levels = vec![Level {
        dir: root,
        path: Vec::new(),
        subfolders,
    }];
    while let Some(level) = levels.last_mut() {
        let Some(name) = level.subfolders.pop() else {
            levels.pop();
            continue;
        };
        let dir = open_dir_at(&level.dir, &name).map_err(open_rule)?;
        let mut path = level.path.clone();
        path.push(name);
        let subfolders = walk.list(&dir, &path)?;
        levels.push(Level {
            dir,
            path,
            subfolders,
        });
    }
    let mut files = walk.files;
    files.sort();
    Ok(files)
}

/// What [`walk_plain_tree`] has counted so far.
struct Walk<'a> {
    limits: &'a ArtifactLimits,
    files: Vec<String>,
    entries: u64,
    bytes: u64,
}

impl Walk<'_> {
    /// Checks and counts the entries of `dir` (at `folder` below the root); returns its
    /// subfolders.
    fn list(&mut self, dir: &OwnedFd, folder: &[String]) -> Result<Vec<String>, ArtifactRule> {
        let limits = &self.limits.archive;
        let mut subfolders = Vec::new();
        let listing = rustix::fs::Dir::read_from(dir).map_err(|e| io_rule(e.into()))?;
        for entry in listing {
            let entry = entry.map_err(|e| io_rule(e.into()))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let shown = || shown_path(folder, &display_name(raw));
            if folder.len() >= MAX_DIST_INFO_DEPTH {
                return Err(ArtifactRule::TooDeep {
                    path: format!("{}/…", folder[..3.min(folder.len())].join("/")),
                    limit: MAX_DIST_INFO_DEPTH,
                });
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                return Err(ArtifactRule::SpecialInside {
                    path: shown(),
                    kind: "file with a name that is not UTF-8",
                });
            };
            self.entries += 1;
            if self.entries > limits.max_members {
                return Err(LimitExceeded::Members {
                    limit: limits.max_members,
                }
                .into());
            }
            let stat = lstat_at(dir, name).map_err(io_rule)?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => subfolders.push(name.to_string()),
                FileType::RegularFile => {
                    #[allow(clippy::unnecessary_cast)]
                    {
                        self.bytes = self.bytes.saturating_add(stat.st_size as u64);
                    }
                    if self.bytes > limits.max_unpacked_bytes {
                        return Err(LimitExceeded::UnpackedBytes {
                            limit: limits.max_unpacked_bytes,
                        }
                        .into());
                    }
                    self.files.push(shown());
                }
                FileType::Symlink => return Err(ArtifactRule::SymlinkInside { path: shown() }),
                other => {
                    return Err(ArtifactRule::SpecialInside {
                        path: shown(),
                        kind: kind_name(other),
                    });
                }
            }
        }
        Ok(subfolders)
    }
}

/// `folder/name`, relative to the `.dist-info` folder.
fn shown_path(folder: &[String], name: &str) -> String {
    let mut parts: Vec<&str> = folder.iter().map(String::as_str).collect();
    parts.push(name);
    parts.join("/")
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "folder",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// An error from opening with `O_NOFOLLOW`: `ELOOP` means a symlink was there.
fn open_rule(e: io::Error) -> ArtifactRule {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => ArtifactRule::Symlink,
        Some(code) if code == rustix::io::Errno::NOTDIR.raw_os_error() => ArtifactRule::NotFolder,
        _ if e.kind() == io::ErrorKind::NotFound => ArtifactRule::Missing,
        _ => match NotRegular::found_in(&e) {
            Some(kind) => ArtifactRule::NotRegularFile {
                kind: kind_name(kind),
            },
            None => io_rule(e),
        },
    }
}

fn io_rule(e: io::Error) -> ArtifactRule {
    ArtifactRule::Io {
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
