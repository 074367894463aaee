//! Getting source code into the sandbox safely: extraction of sdists from strangers and
//! the scratch copy of a local source tree.
//!
//! - [`extract_sdist`] unpacks a `.tar.gz` (or legacy `.zip`) sdist, refusing every member that could write
//!   outside the destination, link out of the tree, or exhaust the disk.
//! - [`zip::StrictZip`] reads a zip archive (a wheel, a legacy `.zip` sdist) only if every
//!   zip reader would see the same members with the same bytes.
//! - [`stage_source_tree`] copies a project folder to a scratch folder, never following a
//!   symlink out of it and never writing to it.
//!
//! Both write through one writer (`fs::TreeWriter`), which opens every path component with
//! `O_NOFOLLOW` relative to a folder descriptor: nothing is ever written through a
//! symlink, whatever the archive or the tree holds.

pub(crate) mod fs;
pub(crate) mod path;
pub(crate) mod scan;
mod sdist;
mod sdist_zip;
mod stage;
pub(crate) mod tree;
pub mod zip;

pub use fs::Mtime;
pub use path::{LinkRule, NameRule, RelPath};
pub use sdist::{ExtractedSdist, extract_sdist, extract_sdist_file};
pub use stage::{LinkSkip, StageError, StageWarning, StagedTree, VCS_DIRS, stage_source_tree};
pub use tree::{NodeKind, PlacementRule};

use crate::limits::LimitExceeded;
use std::io;
use std::path::PathBuf;

/// Why one member of an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberRule {
    #[error("{0}")]
    Name(#[from] NameRule),
    #[error("{0}")]
    Link(#[from] LinkRule),
    #[error("{0}")]
    Placement(#[from] PlacementRule),
    #[error("it lies outside the single top-level folder `{top}`")]
    OutsideTopLevel { top: String },
    #[error("it is a {0}, which an sdist may not contain")]
    UnsupportedType(String),
    #[error("it is not a folder but its name ends in `/`")]
    NonFolderWithSlash,
    #[error("it is a link without a target")]
    MissingLinkTarget,
    #[error("it is a hard link to `{target}`, which is not an earlier regular file member")]
    HardLinkTarget { target: String },
    #[error("its PAX header is malformed")]
    MalformedPax,
    #[error("its PAX header sets `{key}` more than once")]
    DuplicatePaxKey { key: String },
    #[error("its GNU long name and its PAX name disagree")]
    ConflictingNames,
    #[error("a PAX global header sets `{key}`, which would change every later member")]
    GlobalPaxKey { key: String },
}

/// Why an sdist could not be read or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("member `{member}` refused: {rule}")]
    Member { member: String, rule: MemberRule },
    #[error("archive refused: {0}")]
    Limit(#[from] LimitExceeded),
    #[error("not a valid tar.gz archive: {0}")]
    Corrupt(String),
    #[error("the archive has no members")]
    Empty,
    #[error("the top-level folder `{top}` is not `{{name}}-{{version}}`: {reason}")]
    TopLevelName { top: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot use {path} as the destination: {source}")]
    Destination { path: PathBuf, source: io::Error },
    #[error("cannot write member `{member}`: {source}")]
    Write { member: String, source: io::Error },
    /// A `.zip` sdist the strict zip reader refused.
    #[error(transparent)]
    Zip(zip::ZipError),
}

impl From<zip::ZipError> for ArchiveError {
    /// Limits and member name rules as for tar; the zip rules as they are.
    fn from(e: zip::ZipError) -> Self {
        match e {
            zip::ZipError::Limit(limit) => ArchiveError::Limit(limit),
            zip::ZipError::Member {
                member,
                rule: zip::ZipMemberRule::Name(rule),
            } => ArchiveError::Member { member, rule },
            other => ArchiveError::Zip(other),
        }
    }
}

impl ArchiveError {
    /// The member rule that refused the archive, if a member was refused.
    pub fn member_rule(&self) -> Option<&MemberRule> {
        match self {
            ArchiveError::Member { rule, .. } => Some(rule),
            _ => None,
        }
    }
}
