//! Reading an sdist (tar + gzip) member by member and applying every member rule
//! (`.zip` sdists: `sdist_zip`, into the same sink).
//!
//! The same scan serves extraction (whose sink writes the tree) and verification (whose
//! sink only drains the data), so both refuse exactly the same archives.

use super::fs::Mtime;
use super::path::{Dialect, RelPath, display_name, parse_member_name, resolve_link};
use super::tree::{Node, Placement, Tree};
use super::{ArchiveError, MemberRule};
use crate::limits::{ArchiveLimits, LimitExceeded, Meter};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use tar::EntryType;

/// The largest `PKG-INFO` kept in memory (it holds the long description).
pub(crate) const MAX_PKG_INFO_BYTES: u64 = 16 * 1024 * 1024;

/// PAX keys that a global header may not set: they would rename, resize or re-target every
/// later member for readers that honour global headers (Python's tarfile does; the `tar`
/// crate does not), so the archive would mean different things to different tools.
const FORBIDDEN_GLOBAL_PAX_KEYS: &[&str] = &["path", "linkpath", "size"];

/// What the scan hands to its sink, member by member, once a member passed every rule.
pub(crate) trait MemberSink {
    /// A folder.
    fn dir(&mut self, path: &RelPath, mtime: Mtime) -> io::Result<()>;
    /// A regular file; `replace` when an earlier file of the same name exists.
    fn file(
        &mut self,
        path: &RelPath,
        executable: bool,
        replace: bool,
        mtime: Mtime,
        data: &mut dyn Read,
    ) -> io::Result<()>;
    /// A symlink whose canonical, in-tree target is `target`.
    fn symlink(&mut self, path: &RelPath, target: &str, mtime: Mtime) -> io::Result<()>;
    /// A hard link to the earlier regular file `target`, materialized as a copy.
    fn hard_link(
        &mut self,
        path: &RelPath,
        target: &RelPath,
        executable: bool,
        replace: bool,
        mtime: Mtime,
    ) -> io::Result<()>;
}

/// A sink that writes nothing (verification).
pub(crate) struct DrainSink;

impl MemberSink for DrainSink {
    fn dir(&mut self, _: &RelPath, _: Mtime) -> io::Result<()> {
        Ok(())
    }
    fn file(
        &mut self,
        _: &RelPath,
        _: bool,
        _: bool,
        _: Mtime,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        io::copy(data, &mut io::sink()).map(drop)
    }
    fn symlink(&mut self, _: &RelPath, _: &str, _: Mtime) -> io::Result<()> {
        Ok(())
    }
    fn hard_link(
        &mut self,
        _: &RelPath,
        _: &RelPath,
        _: bool,
        _: bool,
        _: Mtime,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// What a successful scan found.
#[derive(Debug)]
pub(crate) struct ScanSummary {
    /// The single top-level folder.
    pub top: String,
    /// Members read (PAX global headers included).
    pub members: u64,
    /// Unpacked bytes counted against the limits.
    pub unpacked_bytes: u64,
    /// Regular files with an executable bit, as full member paths.
    pub executables: BTreeSet<String>,
    /// `{top}/PKG-INFO`, when it is a regular file member.
    pub pkg_info: Option<PkgInfo>,
}

/// The top-level PKG-INFO as the scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PkgInfo {
    Bytes(Vec<u8>),
    /// Larger than [`MAX_PKG_INFO_BYTES`]: not kept.
    TooLarge,
}

/// Scans a gzip-compressed tar stream. `expected_top`, when known (from the archive's file
/// name), is the only top-level folder allowed; otherwise the first member decides it.
pub(crate) fn scan_tar_gz(
    packed: impl Read,
    limits: &ArchiveLimits,
    expected_top: Option<&str>,
    sink: &mut dyn MemberSink,
) -> Result<ScanSummary, ArchiveError> {
    let meter = Meter::new(*limits);
    let decoder = flate2::read::MultiGzDecoder::new(meter.packed_reader(packed));
    let mut archive = tar::Archive::new(meter.unpacked_reader(decoder));
    let mut scan = Scan {
        limits,
        meter: &meter,
        top: expected_top.map(str::to_string),
        tree: Tree::default(),
        file_sizes: HashMap::new(),
        summary_executables: BTreeSet::new(),
        pkg_info: None,
        members: 0,
    };
    let result = scan.run(&mut archive, sink);
    // A limit hit inside a library comes back as a generic I/O error; report the limit.
    if let Some(hit) = meter.tripped() {
        return Err(ArchiveError::Limit(hit));
    }
    result?;
    let top = scan.top.ok_or(ArchiveError::Empty)?;
    if scan.members == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(ScanSummary {
        top,
        members: scan.members,
        unpacked_bytes: meter.unpacked(),
        executables: scan.summary_executables,
        pkg_info: scan.pkg_info,
    })
}

struct Scan<'a> {
    limits: &'a ArchiveLimits,
    meter: &'a Meter,
    top: Option<String>,
    tree: Tree,
    file_sizes: HashMap<String, u64>,
    summary_executables: BTreeSet<String>,
    pkg_info: Option<PkgInfo>,
    members: u64,
}

/// The kind of member, decided from the header before anything is placed.
enum Kind {
    Dir,
    File,
    Symlink,
    HardLink,
    GlobalPax,
}

fn corrupt(e: io::Error) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

impl Scan<'_> {
    fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        sink: &mut dyn MemberSink,
    ) -> Result<(), ArchiveError> {
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            self.members += 1;
            if self.members > self.limits.max_members {
                return Err(LimitExceeded::Members {
                    limit: self.limits.max_members,
                }
                .into());
            }
            self.member(&mut entry, sink)?;
        }
        Ok(())
    }

    fn member<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        sink: &mut dyn MemberSink,
    ) -> Result<(), ArchiveError> {
        let raw_name = entry.path_bytes().into_owned();
        let refuse = |rule: MemberRule| ArchiveError::Member {
            member: display_name(&raw_name),
            rule,
        };
        let kind = match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::HardLink,
            EntryType::XGlobalHeader => Kind::GlobalPax,
            other => return Err(refuse(MemberRule::UnsupportedType(type_name(other)))),
        };
        if let Kind::GlobalPax = kind {
            return check_global_pax(entry).map_err(refuse);
        }
        let pax = local_pax(entry).map_err(refuse)?;
        if let Some(path) = pax.get("path")
            && path.as_slice() != raw_name.as_slice()
        {
            return Err(refuse(MemberRule::ConflictingNames));
        }

        let name = parse_member_name(&raw_name, Dialect::Tar).map_err(|r| refuse(r.into()))?;
        let Some(path) = name.path else {
            // `./`: the archive root itself, harmless as a folder.
            return match kind {
                Kind::Dir => Ok(()),
                _ => Err(refuse(super::path::NameRule::Empty.into())),
            };
        };
        if name.trailing_slash && !matches!(kind, Kind::Dir) {
            return Err(refuse(MemberRule::NonFolderWithSlash));
        }
        let top = self
            .top
            .get_or_insert_with(|| path.top().to_string())
            .clone();
        if path.top() != top || (path.depth() == 1 && !matches!(kind, Kind::Dir)) {
            return Err(refuse(MemberRule::OutsideTopLevel { top }));
        }

        let header = entry.header();
        let mode = header.mode().map_err(corrupt)?;
        let executable = mode & 0o111 != 0;
        let mtime = match pax.get("mtime").and_then(|v| parse_pax_time(v)) {
            Some(mtime) => mtime,
            None => Mtime {
                seconds: i64::try_from(header.mtime().map_err(corrupt)?).unwrap_or(i64::MAX),
                nanoseconds: 0,
            },
        };
        let write_error = |source: io::Error| ArchiveError::Write {
            member: path.to_string(),
            source,
        };

        match kind {
            Kind::Dir => {
                self.tree
                    .place(&path, Node::Dir)
                    .map_err(|r| refuse(r.into()))?;
                sink.dir(&path, mtime).map_err(write_error)?;
            }
            Kind::File => {
                let placement = self
                    .tree
                    .place(&path, Node::File)
                    .map_err(|r| refuse(r.into()))?;
                let capture = path.as_str().strip_prefix(top.as_str()) == Some("/PKG-INFO");
                let mut reader = CountingTee {
                    inner: &mut *entry,
                    count: 0,
                    capture: capture.then(Vec::new),
                };
                sink.file(
                    &path,
                    executable,
                    placement == Placement::ReplaceFile,
                    mtime,
                    &mut reader,
                )
                .map_err(write_error)?;
                // Whatever the sink left unread still counts and still has to be valid.
                io::copy(&mut reader, &mut io::sink()).map_err(corrupt)?;
                self.file_sizes.insert(path.to_string(), reader.count);
                if capture {
                    self.pkg_info = Some(match reader.capture {
                        Some(bytes) => PkgInfo::Bytes(bytes),
                        None => PkgInfo::TooLarge,
                    });
                }
                self.record_executable(&path, executable);
            }
            Kind::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| refuse(MemberRule::MissingLinkTarget))?;
                if let Some(pax_target) = pax.get("linkpath")
                    && pax_target != &target
                {
                    return Err(refuse(MemberRule::ConflictingNames));
                }
                let link = resolve_link(&path, &target, 1).map_err(|r| refuse(r.into()))?;
                self.tree
                    .place(&path, Node::Symlink(link.resolved.clone()))
                    .map_err(|r| refuse(r.into()))?;
                sink.symlink(&path, &link.text, mtime)
                    .map_err(write_error)?;
            }
            Kind::HardLink => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| refuse(MemberRule::MissingLinkTarget))?;
                let hard_link_refusal = || MemberRule::HardLinkTarget {
                    target: display_name(&raw_target),
                };
                let target = parse_member_name(&raw_target, Dialect::Tar)
                    .ok()
                    .and_then(|n| n.path)
                    .filter(|t| t != &path && self.tree.get(t.as_str()) == Some(&Node::File))
                    .ok_or_else(|| refuse(hard_link_refusal()))?;
                let size = self.file_sizes.get(target.as_str()).copied().unwrap_or(0);
                let placement = self
                    .tree
                    .place(&path, Node::File)
                    .map_err(|r| refuse(r.into()))?;
                // The copy is written to disk: it counts like unpacked data.
                self.meter.add_unpacked(size)?;
                sink.hard_link(
                    &path,
                    &target,
                    executable,
                    placement == Placement::ReplaceFile,
                    mtime,
                )
                .map_err(write_error)?;
                self.file_sizes.insert(path.to_string(), size);
                self.record_executable(&path, executable);
            }
            Kind::GlobalPax => {}
        }
        Ok(())
    }

    fn record_executable(&mut self, path: &RelPath, executable: bool) {
        if executable {
            self.summary_executables.insert(path.to_string());
        } else {
            self.summary_executables.remove(path.as_str());
        }
    }
}

/// Reads a member's data, counting it and keeping a bounded copy when asked.
pub(crate) struct CountingTee<'r, R: Read> {
    pub inner: &'r mut R,
    pub count: u64,
    /// The data read so far; `None` once past [`MAX_PKG_INFO_BYTES`].
    pub capture: Option<Vec<u8>>,
}

impl<R: Read> Read for CountingTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if let Some(captured) = &mut self.capture {
            if self.count > MAX_PKG_INFO_BYTES {
                self.capture = None;
            } else {
                captured.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

/// The member's own PAX records, refusing malformed records and repeated keys (readers
/// disagree on which of two `path` records wins).
fn local_pax<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<HashMap<String, Vec<u8>>, MemberRule> {
    let mut records = HashMap::new();
    let Some(extensions) = entry
        .pax_extensions()
        .map_err(|_| MemberRule::MalformedPax)?
    else {
        return Ok(records);
    };
    for extension in extensions {
        let extension = extension.map_err(|_| MemberRule::MalformedPax)?;
        let key = extension.key().map_err(|_| MemberRule::MalformedPax)?;
        if records
            .insert(key.to_string(), extension.value_bytes().to_vec())
            .is_some()
        {
            return Err(MemberRule::DuplicatePaxKey {
                key: display_name(key.as_bytes()),
            });
        }
    }
    Ok(records)
}

fn check_global_pax<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<(), MemberRule> {
    let Some(extensions) = entry
        .pax_extensions()
        .map_err(|_| MemberRule::MalformedPax)?
    else {
        return Ok(());
    };
    for extension in extensions {
        let extension = extension.map_err(|_| MemberRule::MalformedPax)?;
        let key = extension.key().map_err(|_| MemberRule::MalformedPax)?;
        if FORBIDDEN_GLOBAL_PAX_KEYS.contains(&key) || key.starts_with("GNU.sparse") {
            return Err(MemberRule::GlobalPaxKey {
                key: display_name(key.as_bytes()),
            });
        }
    }
    Ok(())
}

/// Parses a PAX time (`1700000000` or `1700000000.123456789`, possibly negative).
fn parse_pax_time(raw: &[u8]) -> Option<Mtime> {
    let text = std::str::from_utf8(raw).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let mut nanoseconds: u32 = 0;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanoseconds += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if negative && nanoseconds > 0 {
        Mtime {
            seconds: -seconds - 1,
            nanoseconds: 1_000_000_000 - nanoseconds,
        }
    } else if negative {
        Mtime {
            seconds: -seconds,
            nanoseconds: 0,
        }
    } else {
        Mtime {
            seconds,
            nanoseconds,
        }
    })
}

fn type_name(kind: EntryType) -> String {
    match kind {
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "FIFO".into(),
        EntryType::GNUSparse => "GNU sparse file".into(),
        EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader => {
            "stray extension header".into()
        }
        other => format!("member of type {:?}", other.as_byte() as char),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(Mtime {
                seconds: 1_700_000_000,
                nanoseconds: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Mtime {
                seconds: -2,
                nanoseconds: 750_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Mtime {
                seconds: 12,
                nanoseconds: 0
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b"1.2.3"), None);
        assert_eq!(parse_pax_time(b"99999999999999999999"), None);
    }
}
