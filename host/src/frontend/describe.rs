//! What a report says of the source and of each artifact, told to the reporter as events.

use super::artifact::Artifact;
use super::{Distribution, Frontend};
use crate::reporter::{ArtifactFacts, Event};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use wasm_build_packaging::metadata::metadata_json;
use wasm_build_packaging::verify;

/// The largest METADATA read from a metadata folder (as the verifier bounds it).
const MAX_METADATA_BYTES: u64 = 32 << 20;

impl Frontend {
    /// Reports the facts of a verified artifact: size, sha256 and core metadata, read again
    /// from what was verified. A fact that cannot be read is left out of the report (the
    /// artifact passed verification; the report is no reason to fail the build).
    pub(super) fn report_artifact(&self, artifact: &Artifact, dist: Distribution) {
        let facts = match artifact {
            Artifact::File(file) => {
                match verify::describe_verified(
                    &file.file,
                    &file.file_name,
                    &self.settings.artifact_limits,
                ) {
                    Ok(described) => ArtifactFacts {
                        name: file.file_name.clone(),
                        dist,
                        size: Some(described.size),
                        sha256: Some(described.sha256),
                        metadata: metadata_json(&described.core_metadata).ok(),
                    },
                    Err(_) => ArtifactFacts {
                        name: file.file_name.clone(),
                        dist,
                        size: Some(file.size),
                        sha256: None,
                        metadata: None,
                    },
                }
            }
            Artifact::Dir { dir, name } => ArtifactFacts {
                name: name.clone(),
                dist,
                size: None,
                sha256: None,
                metadata: read_metadata_file(dir).and_then(|bytes| metadata_json(&bytes).ok()),
            },
        };
        self.reporter.report(&Event::Artifact(&facts));
    }
}

/// A metadata folder's METADATA (in the host's verified copy, held open as `dir`), opened
/// relative to the folder without following a link, bounded.
pub(super) fn read_metadata_file(dir: &OwnedFd) -> Option<Vec<u8>> {
    // SAFETY: openat with a valid directory descriptor and a NUL-terminated name; the
    // descriptor it returns (if any) is owned by nobody else.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"METADATA".as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened here and is owned by this File alone.
    let file = unsafe { File::from_raw_fd(fd) };
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_METADATA_BYTES).then_some(bytes)
}
