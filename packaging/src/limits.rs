//! Resource limits for reading untrusted archives and copying trees, and the meter that
//! enforces them while bytes stream.
//!
//! Limits are checked against bytes actually produced by the decompressor or copied from
//! disk, never against sizes an archive header claims: a header can lie, a stream cannot.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

/// What the sandbox's disk limit counts for each entry (file, folder, symlink, hard link)
/// besides a file's bytes: about the block and inode it takes on the host. Without it a
/// guest could fill the host's inodes and folder blocks with millions of empty files at no
/// cost.
pub const ENTRY_BYTES: u64 = 4096;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Limits for unpacking an archive from a stranger: extracting an sdist, verifying an
/// sdist or a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most members an archive may hold (directories and links count). Default 100 000.
    pub max_members: u64,
    /// Most bytes an archive may unpack to, counted as they are decompressed. For a tar.gz
    /// this is the decompressed tar stream (member data plus tar headers), plus the bytes
    /// copied for hard links; for a zip, the members' decompressed data. Default 2 GiB.
    pub max_unpacked_bytes: u64,
    /// Largest ratio of unpacked to packed bytes (decompression bombs). Checked once more
    /// than [`Self::ratio_grace_bytes`] have been unpacked, so that small, very
    /// compressible archives pass. Default 100.
    pub max_compression_ratio: u64,
    /// Unpacked bytes below which the compression ratio is not checked. Default 32 MiB.
    pub ratio_grace_bytes: u64,
    /// When reading must have ended: the host's work on a stranger's archive stays within
    /// the time the user gave a build (`--timeout`). Checked as bytes are unpacked.
    /// Default: none.
    pub deadline: Option<std::time::Instant>,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_members: 100_000,
            max_unpacked_bytes: 2 * GIB,
            max_compression_ratio: 100,
            ratio_grace_bytes: 32 * MIB,
            deadline: None,
        }
    }
}

/// Limits for verifying a built artifact (wheel or sdist) before it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Largest artifact file, in bytes. Default 1 GiB.
    pub max_artifact_bytes: u64,
    /// Limits for reading the artifact's members.
    pub archive: ArchiveLimits,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        Self {
            max_artifact_bytes: GIB,
            archive: ArchiveLimits::default(),
        }
    }
}

/// Limits for the scratch copy of a source tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageLimits {
    /// Most entries (files, folders, links) the copy may hold. Default 100 000.
    pub max_entries: u64,
    /// Most bytes of file contents the copy may hold. Default 2 GiB.
    pub max_bytes: u64,
}

impl Default for StageLimits {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 2 * GIB,
        }
    }
}

/// A limit that was hit. The message names the limit's field so a caller can tell the
/// user which setting to raise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("more than {limit} members (limit `max_members`)")]
    Members { limit: u64 },
    #[error("unpacks to more than {limit} bytes (limit `max_unpacked_bytes`)")]
    UnpackedBytes { limit: u64 },
    #[error(
        "compression ratio above {limit}:1 after {unpacked} unpacked bytes \
         (limit `max_compression_ratio`)"
    )]
    CompressionRatio { limit: u64, unpacked: u64 },
    #[error("file of {size} bytes is larger than {limit} bytes (limit `max_artifact_bytes`)")]
    ArtifactBytes { limit: u64, size: u64 },
    #[error("more than {limit} entries (limit `max_entries`)")]
    Entries { limit: u64 },
    #[error("more than {limit} bytes of file contents (limit `max_bytes`)")]
    Bytes { limit: u64 },
    #[error("reading it took longer than the time limit (limit `deadline`)")]
    Time,
}

impl ArchiveLimits {
    /// [`LimitExceeded::Time`] once the deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<(), LimitExceeded> {
        match self.deadline {
            Some(deadline) if std::time::Instant::now() >= deadline => Err(LimitExceeded::Time),
            _ => Ok(()),
        }
    }
}

/// Counts packed and unpacked bytes of one archive and refuses to go past its limits.
///
/// Cloning shares the counters, so one clone can sit under the decompressor (packed side),
/// another above it (unpacked side) and a third with the code that copies hard links.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    inner: Rc<MeterState>,
}

#[derive(Debug)]
struct MeterState {
    limits: ArchiveLimits,
    packed: Cell<u64>,
    unpacked: Cell<u64>,
    /// The first limit hit; reported even when a library wraps the I/O error.
    tripped: RefCell<Option<LimitExceeded>>,
}

impl Meter {
    pub(crate) fn new(limits: ArchiveLimits) -> Self {
        Self {
            inner: Rc::new(MeterState {
                limits,
                packed: Cell::new(0),
                unpacked: Cell::new(0),
                tripped: RefCell::new(None),
            }),
        }
    }

    /// Records `n` packed (compressed) bytes read from the archive file.
    pub(crate) fn add_packed(&self, n: u64) {
        let state = &self.inner;
        state.packed.set(state.packed.get().saturating_add(n));
    }

    /// Records `n` unpacked bytes; fails once a limit is passed.
    pub(crate) fn add_unpacked(&self, n: u64) -> Result<(), LimitExceeded> {
        let state = &self.inner;
        if let Some(hit) = state.tripped.borrow().clone() {
            return Err(hit);
        }
        let unpacked = state.unpacked.get().saturating_add(n);
        state.unpacked.set(unpacked);
        let limits = &state.limits;
        let hit = if let Err(late) = limits.check_deadline() {
            Some(late)
        } else if unpacked > limits.max_unpacked_bytes {
            Some(LimitExceeded::UnpackedBytes {
                limit: limits.max_unpacked_bytes,
            })
        } else if unpacked > limits.ratio_grace_bytes
            && unpacked > (state.packed.get().max(1)).saturating_mul(limits.max_compression_ratio)
        {
            Some(LimitExceeded::CompressionRatio {
                limit: limits.max_compression_ratio,
                unpacked,
            })
        } else {
            None
        };
        match hit {
            Some(hit) => {
                *state.tripped.borrow_mut() = Some(hit.clone());
                Err(hit)
            }
            None => Ok(()),
        }
    }

    /// The limit hit so far, if any.
    pub(crate) fn tripped(&self) -> Option<LimitExceeded> {
        self.inner.tripped.borrow().clone()
    }

    /// Unpacked bytes counted so far.
    pub(crate) fn unpacked(&self) -> u64 {
        self.inner.unpacked.get()
    }

    /// Wraps the archive file: every byte read counts as packed.
    pub(crate) fn packed_reader<R: Read>(&self, inner: R) -> MeteredReader<R> {
        MeteredReader {
            inner,
            meter: self.clone(),
            side: Side::Packed,
        }
    }

    /// Wraps the decompressed stream: every byte read counts as unpacked, and reading fails
    /// once a limit is passed.
    pub(crate) fn unpacked_reader<R: Read>(&self, inner: R) -> MeteredReader<R> {
        MeteredReader {
            inner,
            meter: self.clone(),
            side: Side::Unpacked,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Packed,
    Unpacked,
}

/// A reader that reports what passes through it to a [`Meter`].
#[derive(Debug)]
pub(crate) struct MeteredReader<R> {
    inner: R,
    meter: Meter,
    side: Side,
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.side {
            Side::Packed => self.meter.add_packed(n as u64),
            Side::Unpacked => self
                .meter
                .add_unpacked(n as u64)
                .map_err(io::Error::other)?,
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ArchiveLimits {
        ArchiveLimits {
            max_members: 10,
            max_unpacked_bytes: 1000,
            max_compression_ratio: 10,
            ratio_grace_bytes: 100,
            deadline: None,
        }
    }

    #[test]
    fn reading_past_the_deadline_trips() {
        let late = ArchiveLimits {
            deadline: Some(std::time::Instant::now()),
            ..small()
        };
        let meter = Meter::new(late);
        assert_eq!(meter.add_unpacked(1), Err(LimitExceeded::Time));
        assert_eq!(meter.tripped(), Some(LimitExceeded::Time));
        let in_time = ArchiveLimits {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(60)),
            ..small()
        };
        assert_eq!(Meter::new(in_time).add_unpacked(1), Ok(()));
    }

    #[test]
    fn unpacked_limit_trips_and_stays_tripped() {
        let meter = Meter::new(small());
        meter.add_packed(1000);
        assert!(meter.add_unpacked(1000).is_ok());
        assert_eq!(
            meter.add_unpacked(1),
            Err(LimitExceeded::UnpackedBytes { limit: 1000 })
        );
        assert!(meter.tripped().is_some());
        assert!(meter.add_unpacked(0).is_err());
    }

    #[test]
    fn ratio_is_checked_only_past_the_grace() {
        let meter = Meter::new(small());
        meter.add_packed(1);
        assert!(meter.add_unpacked(100).is_ok());
        assert!(matches!(
            meter.add_unpacked(1),
            Err(LimitExceeded::CompressionRatio { limit: 10, .. })
        ));
    }

    #[test]
    fn metered_reader_fails_past_the_limit() {
        let meter = Meter::new(small());
        let data = vec![0u8; 2000];
        let mut packed = meter.packed_reader(&data[..1500]);
        let mut sink = Vec::new();
        packed.read_to_end(&mut sink).unwrap();
        let mut unpacked = meter.unpacked_reader(&data[..]);
        let err = std::io::copy(&mut unpacked, &mut std::io::sink()).unwrap_err();
        assert!(err.to_string().contains("max_unpacked_bytes"));
    }
}
