//! Getting source code into the sandbox safely: extraction of sdists from strangers and
//! the scratch copy of a local source tree.
//!
//! - [`SourceFormat::detect`] tells a `.tar.gz` from a wheel, a `.zip` or a `.tar.xz`.
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

mod format;
pub(crate) mod fs;
pub(crate) mod path;
pub(crate) mod scan;
mod sdist;
mod sdist_zip;
mod stage;
pub(crate) mod tree;
pub mod zip;

pub use format::SourceFormat;
pub use fs::Mtime;
pub use path::{LinkRule, NameRule, RelPath};
pub use sdist::{
    ExtractedSdist, NamedBy, ReadSdist, extract_sdist, extract_sdist_file, read_sdist_file,
};
pub use stage::{
    GitDir, LinkSkip, MAX_STAGE_DEPTH, StageError, StageWarning, StagedTree, VCS_DIRS,
    stage_git_dir, stage_source_tree,
};
pub use tree::{NodeKind, PlacementRule};

use crate::limits::LimitExceeded;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why one member of an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberRule {
    #[error(transparent)]
    Name(#[from] NameRule),
    #[error(transparent)]
    Link(#[from] LinkRule),
    #[error(transparent)]
    Placement(#[from] PlacementRule),
    #[error("it lies outside the single top-level folder `{top}`")]
    OutsideTopLevel { top: String },
    #[error(
        "its top-level folder does not name the project and version of the file name \
         (`{expected}`)"
    )]
    WrongTopLevel { expected: String },
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

/// Why an sdist could not be read or extracted. Each message states the fact; an I/O
/// error behind it is the [`source`](std::error::Error::source), never repeated in the
/// message.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("member `{member}` refused: {rule}")]
    Member { member: String, rule: MemberRule },
    #[error("archive refused: {0}")]
    Limit(LimitExceeded),
    /// Not a `.tar.gz`: a wheel, a `.tar.xz`, a `.zip`, … (see [`SourceFormat::refusal`]).
    #[error("{}", format.refusal(file).unwrap_or_default())]
    Format { file: String, format: SourceFormat },
    #[error("the archive is truncated or corrupt{at}")]
    Corrupt { at: CorruptAt, source: io::Error },
    #[error("the archive has no members")]
    Empty,
    #[error(
        "cannot tell which project it holds: neither its file name `{file}` nor its \
         top-level folder `{top}` is `{{name}}-{{version}}`, and it has no PKG-INFO that \
         gives them; rename it to `{{name}}-{{version}}.tar.gz` or build from the project \
         folder"
    )]
    Unnamed { file: String, top: String },
    #[error(
        "its PKG-INFO gives {found}, but its top-level folder gives {expected}: they must \
         name the same project and version"
    )]
    PkgInfoMismatch { found: String, expected: String },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot use {path} as the destination")]
    Destination { path: PathBuf, source: io::Error },
    #[error("cannot write member `{member}`")]
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

/// A limit is the reason itself, not a cause behind it: shown in the message, not chained
/// as a source (which would print it twice).
impl From<LimitExceeded> for ArchiveError {
    fn from(limit: LimitExceeded) -> Self {
        Self::Limit(limit)
    }
}

/// Where in an archive reading failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptAt {
    /// Before the first member.
    Start,
    /// Inside this member's header or data.
    Member(String),
    /// In the header following this member.
    After(String),
}

impl fmt::Display for CorruptAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptAt::Start => Ok(()),
            CorruptAt::Member(member) => write!(f, " (member `{member}`)"),
            CorruptAt::After(member) => write!(f, " (after member `{member}`)"),
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
