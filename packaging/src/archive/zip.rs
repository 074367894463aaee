//! Strict reading of zip archives (wheels, legacy `.zip` sdists): an archive is accepted
//! only if every reader sees the same members with the same bytes — ours, CPython's
//! `zipfile` (3.11 to 3.13), the `zip` crate, and streaming readers that walk the local
//! headers from the start.
//!
//! Readers disagree wherever the format leaves room: CPython takes the *last* end record
//! signature in the final 64 KiB and trusts neither its comment length nor the zip64
//! locator's offset (it reads the zip64 record 56 bytes before the locator), shifts every
//! offset by the bytes it finds prepended, walks the central directory by its size rather
//! than its entry count, ignores data descriptors, gaps between members and local extra
//! fields, truncates names at NUL, decodes unflagged names as cp437, and (3.13 only) takes
//! names from a Unicode path field. The `zip` crate follows the locator, counts entries
//! and detects prepended data its own way. So [`StrictZip::open`] accepts only an archive
//! with exactly one layout:
//!
//! - one end record, ending the file (its comment length exact), with no other end record
//!   signature after it; one disk;
//! - a zip64 end record and locator only when an end record field is saturated
//!   (`0xFFFF`/`0xFFFFFFFF`); then the record sits immediately before the locator, where
//!   the locator says, without extensible data, agreeing with every unsaturated field;
//!   without zip64, no locator signature before the end record;
//! - the central directory ends exactly where the end records begin, and holds exactly
//!   the declared number of entries, filling its declared size;
//! - members are contiguous from offset 0 to the central directory, in central directory
//!   order: local header, name, extra, data, data descriptor (with its signature), nothing
//!   else;
//! - each local header agrees with its central entry: name bytes, flags, method, CRC and
//!   sizes (zero allowed only where a data descriptor carries them, which must agree too);
//! - zip64 extra fields only for saturated fields, holding exactly those; well-formed
//!   extra blocks without repeated IDs; a Unicode path field (0x7075) only if it repeats
//!   the name exactly;
//! - names valid UTF-8 (flagged as such when not ASCII) and safe relative paths (see
//!   [`crate::archive::path`]), no duplicates, no file where a folder is needed; no
//!   symlinks, devices or FIFOs; no encryption or other flags but UTF-8, data descriptor
//!   and deflate options; stored or deflate, stored data never with a data descriptor
//!   (a streaming reader could not tell where it ends); no folder with data;
//! - each member's data is exactly one deflate stream (or stored bytes) of the declared
//!   compressed size, unpacking to exactly the declared size and CRC-32, checked by
//!   [`MemberReader`] as it reads.
//!
//! Limits ([`ArchiveLimits`]) are checked when the archive is opened, on the declared
//! sizes: the readers never yield more (or fewer) bytes than declared.
//!
//! Use: open, then walk [`StrictZip::members`] (names already validated as relative
//! paths, types known) and read each through [`StrictZip::reader`]:
//!
//! ```no_run
//! # use wasm_build_packaging::archive::zip::{StrictZip, ZipError};
//! # use wasm_build_packaging::limits::ArchiveLimits;
//! # fn main() -> Result<(), ZipError> {
//! let file = std::fs::File::open("demo-1.0-py3-none-any.whl").map_err(ZipError::Io)?;
//! let zip = StrictZip::open(&file, &ArchiveLimits::default())?;
//! for (index, member) in zip.members().iter().enumerate() {
//!     if !member.is_dir {
//!         let mut data = zip.reader(index).expect("a member's index");
//!         std::io::copy(&mut data, &mut std::io::sink()).map_err(ZipError::from)?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(test)]
pub(crate) mod attacks;
mod central;
#[cfg(test)]
pub(crate) mod craft;
#[cfg(test)]
mod differential;
mod end;
mod local;
mod reader;
mod records;
#[cfg(test)]
mod tests;

pub use reader::MemberReader;

use end::EndRecords;

use super::MemberRule;
use super::fs::Mtime;
use super::path::{Dialect, RelPath, display_name, parse_member_name};
use super::tree::{Node, Tree};
use crate::civil::days_from_civil;
use crate::limits::{ArchiveLimits, LimitExceeded};
use records::*;
use std::collections::HashSet;
use std::fs::File;
use std::io;

/// Where an archive's bytes come from. Reads are positional, so readers of several
/// members never share a cursor.
pub trait ZipSource {
    /// The archive's size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`, failing if the archive ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ZipSource for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ZipSource for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

impl<T: ZipSource + ?Sized> ZipSource for &T {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// How a member's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipMethod {
    Stored,
    Deflated,
}

/// One member of a [`StrictZip`], after every rule passed.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The name exactly as both headers hold it (a folder's ends in `/`).
    pub name: String,
    /// The name as a validated relative path (without the trailing `/`).
    pub path: RelPath,
    /// Whether the member is a folder (its name ends in `/`).
    pub is_dir: bool,
    /// Bytes it unpacks to; [`MemberReader`] yields exactly this many.
    pub size: u64,
    /// Bytes of its compressed data.
    pub compressed_size: u64,
    /// Its CRC-32.
    pub crc32: u32,
    /// How its data is stored.
    pub method: ZipMethod,
    /// Unix mode bits (the high half of the external attributes), when set.
    pub unix_mode: Option<u32>,
    /// MS-DOS modification date and time, as stored.
    pub dos_date_time: (u16, u16),
    data_offset: u64,
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

impl ZipMember {
    /// Whether it is a regular file with an executable bit (as pip decides it).
    pub fn is_executable(&self) -> bool {
        !self.is_dir
            && self
                .unix_mode
                .is_some_and(|mode| matches!(mode & S_IFMT, 0 | S_IFREG) && mode & 0o111 != 0)
    }

    /// The modification time, reading the MS-DOS date and time as UTC (zip stores no
    /// zone); 1980-01-01 when they are not a valid date.
    pub fn mtime(&self) -> Mtime {
        let (date, time) = self.dos_date_time;
        let (year, month, day) = (
            i64::from(date >> 9) + 1980,
            i64::from((date >> 5) & 0xF),
            i64::from(date & 0x1F),
        );
        let (hour, minute, second) = (
            i64::from(time >> 11),
            i64::from((time >> 5) & 0x3F),
            i64::from(time & 0x1F) * 2,
        );
        let valid = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60;
        let seconds = if valid {
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        } else {
            days_from_civil(1980, 1, 1) * 86_400
        };
        Mtime {
            seconds,
            nanoseconds: 0,
        }
    }
}

/// A zip archive that passed every structural rule (see the module documentation).
#[derive(Debug)]
pub struct StrictZip<S> {
    source: S,
    members: Vec<ZipMember>,
    unpacked_size: u64,
    /// When reading must have ended (`ArchiveLimits::deadline`).
    deadline: Option<std::time::Instant>,
}

/// Why a zip archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The archive's structure breaks a rule.
    #[error("not a valid zip archive: {0}")]
    Structure(ZipRule),
    /// One member breaks a rule.
    #[error("member `{member}` {rule}")]
    Member {
        /// The member's name, made safe to print.
        member: String,
        rule: ZipMemberRule,
    },
    /// The archive is larger than the limits allow.
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    /// The archive could not be read.
    #[error("cannot read the archive")]
    Io(#[source] io::Error),
}

impl From<io::Error> for ZipError {
    /// Unwraps the rule a [`MemberReader`] reported through `io::Error`.
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ZipError>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<ZipError>().expect("checked above");
        }
        ZipError::Io(e)
    }
}

/// The structural rules of an archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipRule {
    #[error("there is no end-of-central-directory record in its last 64 KiB")]
    NoEndRecord,
    #[error("an end record signature lies in its last 22 bytes, where no whole record fits")]
    EndRecordTruncated,
    #[error(
        "its end record declares a {declared}-byte comment, but {actual} bytes follow the \
         record: the record and its comment must end the file"
    )]
    CommentLength { declared: u16, actual: u64 },
    #[error("it spans several disks")]
    MultiDisk,
    #[error("its end record has saturated fields, but no zip64 locator precedes it")]
    Zip64Missing,
    #[error("it has a zip64 locator, but no field of its end record is saturated")]
    Zip64Unneeded,
    #[error(
        "its zip64 locator points to offset {found}, but the zip64 end record must lie \
         immediately before the locator, at offset {expected}"
    )]
    Zip64Misplaced { found: u64, expected: u64 },
    #[error("no zip64 end record lies immediately before its zip64 locator")]
    Zip64NoRecord,
    #[error(
        "its zip64 end record declares a size of {0} bytes, not 44: zip64 extensible data \
         is not allowed"
    )]
    Zip64RecordSize(u64),
    #[error("its end record and zip64 end record disagree on the {0}")]
    Zip64Disagrees(&'static str),
    #[error(
        "its central directory ({size} bytes at offset {offset}) does not end where the end \
         records begin (offset {end})"
    )]
    CentralDirectoryPlacement { offset: u64, size: u64, end: u64 },
    #[error("its central directory is not exactly {declared} entries filling {size} bytes")]
    CentralDirectoryEntries { declared: u64, size: u64 },
    #[error(
        "its last member ends at offset {end}, but the central directory starts at \
         {cd_offset}: the bytes between belong to no member"
    )]
    DataAfterMembers { end: u64, cd_offset: u64 },
}

/// The rules of one member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipMemberRule {
    #[error("refused: {0}")]
    Name(MemberRule),
    #[error("appears more than once")]
    Duplicate,
    #[error(
        "has a non-ASCII name without the UTF-8 flag, or a Unicode path field that is not \
         its name: tools would read different names"
    )]
    AmbiguousName,
    #[error("is encrypted")]
    Encrypted,
    #[error("sets general-purpose flag bits {0:#06x}, which readers interpret differently")]
    Flags(u16),
    #[error("uses compression method {0}; only stored (0) and deflate (8) are accepted")]
    Method(u16),
    #[error("needs zip version {}.{} to extract; Python reads up to 6.3", .0 / 10, .0 % 10)]
    Version(u16),
    #[error("is a symlink")]
    Symlink,
    #[error("has file type bits {0:#o}, neither regular file nor folder")]
    Special(u32),
    #[error("has the file type or attributes of a folder, but its name does not end in `/`")]
    FolderAttributes,
    #[error("ends in `/` but its file type bits are not a folder's")]
    NotFolderMode,
    #[error("is a folder that holds data")]
    FolderWithData,
    #[error("is stored uncompressed, but its compressed and uncompressed sizes differ")]
    StoredSizes,
    #[error("is stored with a data descriptor: streaming readers cannot tell where it ends")]
    StoredWithDescriptor,
    #[error("has a malformed extra field block in its {0}")]
    MalformedExtra(&'static str),
    #[error("has two extra fields with ID {id:#06x} in its {header}")]
    RepeatedExtra { id: u16, header: &'static str },
    #[error(
        "has a zip64 extra field in its {0} that does not hold exactly the values of its \
         saturated fields"
    )]
    Zip64Extra(&'static str),
    #[error("starts on disk {0}; only single-disk archives are accepted")]
    Disk(u16),
    #[error(
        "has its local header at offset {found}, but the previous member ends at {expected}: \
         every byte up to the central directory must belong to exactly one member, in order"
    )]
    Misplaced { found: u64, expected: u64 },
    #[error("has no local header where its central directory entry points")]
    NoLocalHeader,
    #[error("runs past the start of the central directory")]
    PastCentralDirectory,
    #[error("has a local header that disagrees with its central directory entry on the {0}")]
    LocalMismatch(&'static str),
    #[error("has a data descriptor that {0}")]
    Descriptor(&'static str),
    #[error("unpacks to more than the {declared} bytes its headers declare")]
    TooLarge { declared: u64 },
    #[error("unpacks to {actual} bytes, but its headers declare {declared}")]
    TooSmall { declared: u64, actual: u64 },
    #[error("does not match its CRC-32")]
    Crc,
    #[error("is not exactly one deflate stream of {declared} bytes: {reason}")]
    Deflate { declared: u64, reason: String },
}

/// The flag bits that change nothing a reader sees: deflate options (1, 2), data
/// descriptor (3), UTF-8 name (11).
const HARMLESS_FLAGS: u16 = 0b0000_1000_0000_1110;
const ENCRYPTION_FLAGS: u16 = 1 | 1 << 6 | 1 << 13;
const DESCRIPTOR_FLAG: u16 = 1 << 3;
const UTF8_FLAG: u16 = 1 << 11;
/// The highest "version needed to extract" CPython reads.
const MAX_VERSION_NEEDED: u16 = 63;
/// The MS-DOS folder attribute.
const DOS_DIRECTORY: u32 = 0x10;
/// How far from the end an end record can start: its comment is at most 65535 bytes.
const EOCD_SEARCH: u64 = EOCD_LEN + u16::MAX as u64;

impl<S: ZipSource> StrictZip<S> {
    /// Reads and checks the archive's structure (every header, nothing decompressed yet)
    /// and its declared sizes against `limits`.
    pub fn open(source: S, limits: &ArchiveLimits) -> Result<Self, ZipError> {
        let size = source.size().map_err(ZipError::Io)?;
        let end = EndRecords::find(&source, size)?;
        if end.entries > limits.max_members {
            return Err(LimitExceeded::Members {
                limit: limits.max_members,
            }
            .into());
        }
        let central = central::read_directory(&source, &end, limits)?;
        let members = local::check_layout(&source, central, end.cd_offset)?;
        let unpacked_size = members
            .iter()
            .map(|m| m.size)
            .fold(0u64, u64::saturating_add);
        check_size_limits(limits, size, unpacked_size)?;
        limits.check_deadline()?;
        Ok(Self {
            source,
            members,
            unpacked_size,
            deadline: limits.deadline,
        })
    }

    /// The members, in archive order.
    pub fn members(&self) -> &[ZipMember] {
        &self.members
    }

    /// The sum of the members' sizes.
    pub fn unpacked_size(&self) -> u64 {
        self.unpacked_size
    }

    /// A reader of member `index`'s data; `None` past the last member.
    pub fn reader(&self, index: usize) -> Option<MemberReader<'_, S>> {
        self.members.get(index).map(|member| {
            MemberReader::new(&self.source, member, member.data_offset, self.deadline)
        })
    }
}

/// Unpacked bytes against `max_unpacked_bytes`, and against the archive's size for the
/// compression ratio (beyond the grace): decompression bombs are refused before any
/// decompression.
fn check_size_limits(limits: &ArchiveLimits, packed: u64, unpacked: u64) -> Result<(), ZipError> {
    if unpacked > limits.max_unpacked_bytes {
        return Err(LimitExceeded::UnpackedBytes {
            limit: limits.max_unpacked_bytes,
        }
        .into());
    }
    if unpacked > limits.ratio_grace_bytes
        && unpacked > packed.max(1).saturating_mul(limits.max_compression_ratio)
    {
        return Err(LimitExceeded::CompressionRatio {
            limit: limits.max_compression_ratio,
            unpacked,
        }
        .into());
    }
    Ok(())
}

fn structure(rule: ZipRule) -> ZipError {
    ZipError::Structure(rule)
}

fn member_error(raw_name: &[u8], rule: ZipMemberRule) -> ZipError {
    ZipError::Member {
        member: display_name(raw_name),
        rule,
    }
}

fn read_array<const N: usize>(source: &impl ZipSource, offset: u64) -> Result<[u8; N], ZipError> {
    let mut buf = [0u8; N];
    source
        .read_exact_at(&mut buf, offset)
        .map_err(ZipError::Io)?;
    Ok(buf)
}

fn read_vec(source: &impl ZipSource, offset: u64, len: usize) -> Result<Vec<u8>, ZipError> {
    let mut buf = vec![0u8; len];
    source
        .read_exact_at(&mut buf, offset)
        .map_err(ZipError::Io)?;
    Ok(buf)
}
