//! Installing downloaded wheels into a build environment's `site-packages`.
//!
//! The wheels come from an index, so their bytes are a stranger's: member names pass the
//! archive name rules ([`crate::archive::path`]), everything is written through the
//! no-follow writer ([`crate::archive::fs::TreeWriter`]: one component at a time, new files
//! only, never through a link), and the unpacked size is bounded.
//!
//! What is installed is what an import-only environment needs, as an installer lays it out:
//! the root-is-purelib tree plus `.data/purelib` and `.data/platlib`. Scripts, headers and
//! data files are left out: a build backend imports its requirements, it does not run their
//! scripts.

use crate::archive::fs::TreeWriter;
use crate::archive::path::{Dialect, NameRule, RelPath, display_name, parse_member_name};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a wheel could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{wheel} is not a valid zip archive")]
    NotAZip {
        wheel: String,
        #[source]
        source: zip::result::ZipError,
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
        let mut archive = zip::ZipArchive::new(file).map_err(|source| InstallError::NotAZip {
            wheel: label.to_string(),
            source,
        })?;
        // The zip crate keeps one entry per name: which one an installer would take is
        // not for us to guess.
        if archive.has_duplicate_names() {
            return Err(InstallError::DuplicateMember {
                wheel: label.to_string(),
            });
        }
        for index in 0..archive.len() {
            let mut member = archive
                .by_index(index)
                .map_err(|source| InstallError::NotAZip {
                    wheel: label.to_string(),
                    source,
                })?;
            let raw = member.name_raw().to_vec();
            let refused = |rule| InstallError::Name {
                wheel: label.to_string(),
                member: display_name(&raw),
                rule,
            };
            let name = parse_member_name(&raw, Dialect::Zip).map_err(refused)?;
            let Some(path) = name.path.as_ref().and_then(install_path) else {
                continue;
            };
            let components: Vec<&str> = path.components().collect();
            let write_error = |source| InstallError::Write {
                wheel: label.to_string(),
                member: path.as_str().to_string(),
                source,
            };
            if name.trailing_slash || member.is_dir() {
                self.writer.create_dir(&components).map_err(write_error)?;
                continue;
            }
            let mut out = self
                .writer
                .create_file(&components, false, false)
                .map_err(write_error)?;
            let written = io::copy(&mut (&mut member).take(self.budget + 1), &mut out)
                .map_err(write_error)?;
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
