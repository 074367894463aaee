//! What a report says of the source and of each artifact, told to the reporter as events.

use super::artifact::Artifact;
use super::{Distribution, Frontend};
use crate::reporter::{ArtifactFacts, Event};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
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
            Artifact::Dir { path, name } => ArtifactFacts {
                name: name.clone(),
                dist,
                size: None,
                sha256: None,
                metadata: read_metadata_file(&path.join("METADATA"))
                    .and_then(|bytes| metadata_json(&bytes).ok()),
            },
        };
        self.reporter.report(&Event::Artifact(&facts));
    }
}

/// A metadata folder's METADATA (in the host's verified copy), opened without following a
/// link, bounded.
pub(super) fn read_metadata_file(path: &Path) -> Option<Vec<u8>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_METADATA_BYTES).then_some(bytes)
}
