//! Reading an sdist (tar + gzip) member by member and applying every member rule
//! (`.zip` sdists: `sdist_zip`, into the same sink).
//!
//! The same scan serves extraction (whose sink writes the tree) and verification (whose
//! sink only drains the data), so both refuse exactly the same archives.

use super::fs::Mtime;
use super::path::{Dialect, RelPath, display_name, parse_member_name, resolve_link};
use super::tree::{Node, Placement, Tree};
use super::{ArchiveError, CorruptAt, MemberRule};
use crate::filename::same_name_version;
use crate::limits::{ArchiveLimits, LimitExceeded, Meter};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use tar::EntryType;

mod pax;
use pax::{check_global_pax, local_pax, parse_pax_time};

/// The largest `PKG-INFO` kept in memory (it holds the long description).
pub(crate) const MAX_PKG_INFO_BYTES: u64 = 16 * 1024 * 1024;

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

/// Which single top-level folder a scan accepts; the first member's folder is the one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TopLevel<'a> {
    /// Any folder (the file name gives no project and version).
    Any,
    /// A folder naming the same project and version as this `{name}-{version}` (the file
    /// name without `.tar.gz`), compared as [`same_name_version`] does.
    Matching(&'a str),
}

/// Scans a gzip-compressed tar stream whose members all lie in one top-level folder that
/// `top_rule` accepts.
pub(crate) fn scan_tar_gz(
    packed: impl Read,
    limits: &ArchiveLimits,
    top_rule: TopLevel<'_>,
    sink: &mut dyn MemberSink,
) -> Result<ScanSummary, ArchiveError> {
    let meter = Meter::new(*limits);
    let decoder = flate2::read::MultiGzDecoder::new(meter.packed_reader(packed));
    let mut archive = tar::Archive::new(meter.unpacked_reader(decoder));
    let mut scan = Scan {
        limits,
        meter: &meter,
        top_rule,
        top: None,
        last_member: None,
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
    top_rule: TopLevel<'a>,
    top: Option<String>,
    /// The last member read, to say where a corrupt stream broke.
    last_member: Option<String>,
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

fn corrupt_in(member: &str) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Corrupt {
        at: CorruptAt::Member(member.to_string()),
        source,
    }
}

impl Scan<'_> {
    fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        sink: &mut dyn MemberSink,
    ) -> Result<(), ArchiveError> {
        let corrupt = |last: &Option<String>| {
            let at = match last {
                Some(member) => CorruptAt::After(member.clone()),
                None => CorruptAt::Start,
            };
            move |source| ArchiveError::Corrupt { at, source }
        };
        for entry in archive.entries().map_err(corrupt(&self.last_member))? {
            let mut entry = entry.map_err(corrupt(&self.last_member))?;
            self.last_member = Some(display_name(&entry.path_bytes()));
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
        let top = match (&self.top, self.top_rule) {
            (Some(top), _) => top.clone(),
            (None, TopLevel::Matching(expected)) if !same_name_version(path.top(), expected) => {
                return Err(refuse(MemberRule::WrongTopLevel {
                    expected: expected.to_string(),
                }));
            }
            (None, _) => self.top.insert(path.top().to_string()).clone(),
        };
        if path.top() != top || (path.depth() == 1 && !matches!(kind, Kind::Dir)) {
            return Err(refuse(MemberRule::OutsideTopLevel { top }));
        }

        let shown = display_name(&raw_name);
        let corrupt = corrupt_in(&shown);
        let header = entry.header();
        let mode = header.mode().map_err(&corrupt)?;
        let executable = mode & 0o111 != 0;
        let mtime = match pax.get("mtime").and_then(|v| parse_pax_time(v)) {
            Some(mtime) => mtime,
            None => Mtime {
                seconds: i64::try_from(header.mtime().map_err(&corrupt)?).unwrap_or(i64::MAX),
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
                self.check_tree_size()?;
                sink.dir(&path, mtime).map_err(write_error)?;
            }
            Kind::File => {
                let placement = self
                    .tree
                    .place(&path, Node::File)
                    .map_err(|r| refuse(r.into()))?;
                self.check_tree_size()?;
                let capture = path.as_str().strip_prefix(top.as_str()) == Some("/PKG-INFO");
                let declared = entry.size();
                let mut reader = CountingTee {
                    inner: &mut *entry,
                    count: 0,
                    capture: capture.then(Vec::new),
                    failed: false,
                };
                let written = sink.file(
                    &path,
                    executable,
                    placement == Placement::ReplaceFile,
                    mtime,
                    &mut reader,
                );
                // A failed read is the archive's fault (truncated, corrupt), not the disk's.
                match written {
                    Err(e) if reader.failed => return Err(corrupt(e)),
                    other => other.map_err(write_error)?,
                }
                // Whatever the sink left unread still counts and still has to be valid.
                io::copy(&mut reader, &mut io::sink()).map_err(&corrupt)?;
                // The tar reader ends a member's data quietly where the stream ends.
                if reader.count < declared {
                    return Err(corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "its data ends after {} of the {} bytes its header gives",
                            reader.count, declared
                        ),
                    )));
                }
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
                self.check_tree_size()?;
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
                self.check_tree_size()?;
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

    /// Folders a member's name implies are made too: they count like members, so that
    /// one name cannot make the writer create folders without bound.
    fn check_tree_size(&self) -> Result<(), ArchiveError> {
        if self.tree.len() as u64 > self.limits.max_members {
            return Err(LimitExceeded::Members {
                limit: self.limits.max_members,
            }
            .into());
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
    /// Whether reading the archive failed (as opposed to the sink writing).
    pub failed: bool,
}

impl<R: Read> Read for CountingTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
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
