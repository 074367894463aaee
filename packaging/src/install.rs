//! Installing downloaded wheels into a build environment's `site-packages`.
//!
//! The wheels come from an index, so their bytes are a stranger's: they are read by the
//! strict zip reader ([`StrictZip`]: only archives every installer reads the same way;
//! member names pass the archive name rules of [`crate::archive::path`], no duplicates, no
//! file inside a file), everything is written through the no-follow writer
//! ([`crate::archive::fs::TreeWriter`]: one component at a time, new files only, never
//! through a link), and the unpacked size is bounded.
//!
//! What is installed is what an import-only environment needs, as an installer lays it out:
//! the root-is-purelib tree plus `.data/purelib` and `.data/platlib`. Scripts, headers and
//! data files are left out: a build backend imports its requirements, it does not run their
//! scripts.

use crate::archive::MemberRule;
use crate::archive::fs::TreeWriter;
use crate::archive::path::{NameRule, RelPath};
use crate::archive::zip::{StrictZip, ZipError, ZipMemberRule};
use crate::limits::{ArchiveLimits, LimitExceeded};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a wheel could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{wheel} is refused")]
    Refused {
        wheel: String,
        #[source]
        source: ZipError,
    },
    #[error("{wheel} holds two members of the same name")]
    DuplicateMember { wheel: String },
    #[error("member `{member}` of {wheel} is refused: {rule}")]
    Name {
        wheel: String,
        member: String,
        rule: NameRule,
    },
    #[error("cannot install member `{member}` of {wheel}")]
    Write {
        wheel: String,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("the build environment would exceed {limit_mib} MiB")]
    TooLarge { limit_mib: u64 },
    #[error("cannot create the environment folder {path}")]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A `site-packages` folder being filled with wheels, within a size budget.
#[derive(Debug)]
pub struct SitePackages {
    writer: TreeWriter,
    budget: u64,
    limit: u64,
}

impl SitePackages {
    /// Creates the folder `dir` (its parent must exist) for at most `max_bytes` of
    /// unpacked files.
    pub fn create(dir: &Path, max_bytes: u64) -> Result<Self, InstallError> {
        let writer = TreeWriter::create(dir).map_err(|source| InstallError::Destination {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            writer,
            budget: max_bytes,
            limit: max_bytes,
        })
    }

    /// Installs the wheel `file` (named `label` in messages).
    pub fn install(&mut self, file: &File, label: &str) -> Result<(), InstallError> {
        let limits = ArchiveLimits {
            max_unpacked_bytes: self.limit,
            ..ArchiveLimits::default()
        };
        let archive =
            StrictZip::open(file, &limits).map_err(|source| self.refused(label, source))?;
        for (index, member) in archive.members().iter().enumerate() {
            let Some(path) = install_path(&member.path) else {
                continue;
            };
            let components: Vec<&str> = path.components().collect();
            let write_error = |source| InstallError::Write {
                wheel: label.to_string(),
                member: path.as_str().to_string(),
                source,
            };
            if member.is_dir {
                self.writer.create_dir(&components).map_err(write_error)?;
                continue;
            }
            let mut out = self
                .writer
                .create_file(&components, false, false)
                .map_err(write_error)?;
            let mut data = archive.reader(index).expect("a member's index");
            // The reader's refusals (data that does not match its headers) are the wheel's
            // fault; other errors are the writer's.
            let written =
                io::copy(&mut (&mut data).take(self.budget + 1), &mut out).map_err(|e| {
                    match ZipError::from(e) {
                        ZipError::Io(source) => write_error(source),
                        refused => self.refused(label, refused),
                    }
                })?;
            if written > self.budget {
                return Err(InstallError::TooLarge {
                    limit_mib: self.limit >> 20,
                });
            }
            self.budget -= written;
        }
        Ok(())
    }
}

impl SitePackages {
    /// The error for a wheel the strict zip reader refused: a duplicate or a bad name as
    /// such, a limit as the environment's size.
    fn refused(&self, label: &str, error: ZipError) -> InstallError {
        let wheel = label.to_string();
        match error {
            ZipError::Limit(LimitExceeded::UnpackedBytes { .. }) => InstallError::TooLarge {
                limit_mib: self.limit >> 20,
            },
            ZipError::Member {
                rule: ZipMemberRule::Duplicate,
                ..
            } => InstallError::DuplicateMember { wheel },
            ZipError::Member {
                member,
                rule: ZipMemberRule::Name(MemberRule::Name(rule)),
            } => InstallError::Name {
                wheel,
                member,
                rule,
            },
            source => InstallError::Refused { wheel, source },
        }
    }
}

/// Where a member goes, relative to site-packages; `None` for members left out.
fn install_path(path: &RelPath) -> Option<RelPath> {
    let mut components = path.components();
    let first = components.next()?;
    if !first.ends_with(".data") {
        return Some(path.clone());
    }
    match components.next() {
        Some("purelib" | "platlib") => RelPath::from_components(components),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
