//! What staging produced, left out, or failed on.

use super::MAX_STAGE_DEPTH;
use crate::archive::Mtime;
use crate::limits::LimitExceeded;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// The result of [`stage_source_tree`].
#[derive(Debug, Clone, Default)]
pub struct StagedTree {
    /// The copy's root (the destination folder).
    pub root: PathBuf,
    /// Regular files with an executable bit, relative to `root`, sorted.
    pub executables: Vec<String>,
    /// What was left out and why, in the order found.
    pub warnings: Vec<StageWarning>,
    /// Version-control folders (or `.git` files) left out, relative to `root`.
    pub skipped_vcs: Vec<String>,
    /// Entries created (files, folders, links).
    pub entries: u64,
    /// Bytes of file contents copied.
    pub bytes: u64,
    /// The newest modification time of a file copied: a deterministic build's clock
    /// starts there, so that clamping the times the backend sees to it keeps which of two
    /// project files is newer (a stale `build/` copy stays older than its source).
    pub newest_mtime: Option<Mtime>,
}

/// Why a symlink of the source tree was left out of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSkip {
    /// Its target is an absolute path.
    Absolute,
    /// Its target resolves outside the tree.
    Outside,
    /// Its target does not exist in the copy (or links loop).
    Dangling,
    /// Its target is not UTF-8 or holds control characters or backslashes.
    BadTarget,
}

/// Something of the source tree that was left out of the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageWarning {
    /// A symlink that is not safe or not useful in the copy.
    SkippedSymlink {
        path: String,
        target: String,
        reason: LinkSkip,
    },
    /// A socket, FIFO or device.
    SkippedSpecial { path: String, kind: &'static str },
    /// A name that is not UTF-8 (WASI paths are UTF-8).
    SkippedNonUtf8 { path: String },
    /// The destination folder itself, found inside the source tree.
    SkippedDestination { path: String },
    /// An entry that changed type or vanished while it was copied.
    SkippedChanged { path: String },
    /// A folder nested deeper than [`MAX_STAGE_DEPTH`] (the path abbreviated).
    SkippedTooDeep { path: String },
}

impl fmt::Display for StageWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageWarning::SkippedSymlink {
                path,
                target,
                reason,
            } => {
                let why = match reason {
                    LinkSkip::Absolute => "its target is absolute",
                    LinkSkip::Outside => "it points outside the source tree",
                    LinkSkip::Dangling => "its target does not exist in the tree",
                    LinkSkip::BadTarget => "its target is not a plain UTF-8 path",
                };
                write!(f, "skipped symlink `{path}` -> `{target}`: {why}")
            }
            StageWarning::SkippedSpecial { path, kind } => {
                write!(f, "skipped `{path}`: it is a {kind}")
            }
            StageWarning::SkippedNonUtf8 { path } => {
                write!(f, "skipped `{path}`: its name is not UTF-8")
            }
            StageWarning::SkippedDestination { path } => {
                write!(f, "skipped `{path}`: it is the staging folder itself")
            }
            StageWarning::SkippedChanged { path } => {
                write!(f, "skipped `{path}`: it changed while being copied")
            }
            StageWarning::SkippedTooDeep { path } => write!(
                f,
                "skipped `{path}`: it nests folders more than {MAX_STAGE_DEPTH} levels deep"
            ),
        }
    }
}

/// Why staging failed. An I/O error behind it is the
/// [`source`](std::error::Error::source), not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("source tree too large: {0}")]
    Limit(LimitExceeded),
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot use {path} as the staging folder")]
    Destination { path: PathBuf, source: io::Error },
}

/// A limit is the reason itself, not a cause: shown in the message, not chained.
impl From<LimitExceeded> for StageError {
    fn from(limit: LimitExceeded) -> Self {
        Self::Limit(limit)
    }
}
