//! The central directory: every entry read and checked on its own, before any local
//! header is looked at.

use super::records::*;
use super::*;

/// A central directory entry that passed its own rules.
pub(super) struct CentralEntry {
    pub raw_name: Vec<u8>,
    pub name: String,
    pub path: RelPath,
    pub is_dir: bool,
    pub flags: u16,
    pub method: ZipMethod,
    pub method_id: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    pub offset: u64,
    pub unix_mode: Option<u32>,
    pub dos_date_time: (u16, u16),
}

/// Reads exactly `end.entries` entries, which must fill exactly `end.cd_size` bytes.
/// The folders names imply count against `limits.max_members` with the members, so that
/// one long name cannot make an extractor create folders without bound.
pub(super) fn read_directory(
    source: &impl ZipSource,
    end: &EndRecords,
    limits: &ArchiveLimits,
) -> Result<Vec<CentralEntry>, ZipError> {
    let cd_end = end.cd_offset + end.cd_size;
    let wrong_count = || {
        structure(ZipRule::CentralDirectoryEntries {
            declared: end.entries,
            size: end.cd_size,
        })
    };
    // Every entry takes at least its fixed part: a count that cannot fit is refused
    // before anything is allocated for it.
    if end.entries.saturating_mul(CENTRAL_LEN as u64) > end.cd_size {
        return Err(wrong_count());
    }
    let mut entries = Vec::with_capacity(end.entries as usize);
    let mut names = HashSet::new();
    let mut tree = Tree::default();
    let mut at = end.cd_offset;
    for _ in 0..end.entries {
        if at + CENTRAL_LEN as u64 > cd_end {
            return Err(wrong_count());
        }
        let header = CentralHeader::parse(&read_array(source, at)?);
        if header.sig != CENTRAL_SIG {
            return Err(wrong_count());
        }
        let name_len = usize::from(header.name_len);
        let extra_len = usize::from(header.extra_len);
        let variable = name_len + extra_len + usize::from(header.comment_len);
        let start = at + CENTRAL_LEN as u64;
        if start + variable as u64 > cd_end {
            return Err(wrong_count());
        }
        let bytes = read_vec(source, start, variable)?;
        let (raw_name, rest) = bytes.split_at(name_len);
        let entry = check_entry(&header, raw_name, &rest[..extra_len])?;
        let refuse = |rule| member_error(raw_name, rule);
        if !names.insert(raw_name.to_vec()) {
            return Err(refuse(ZipMemberRule::Duplicate));
        }
        let node = if entry.is_dir { Node::Dir } else { Node::File };
        tree.place(&entry.path, node)
            .map_err(|rule| refuse(ZipMemberRule::Name(MemberRule::Placement(rule))))?;
        if tree.len() as u64 > limits.max_members {
            return Err(LimitExceeded::Members {
                limit: limits.max_members,
            }
            .into());
        }
        entries.push(entry);
        at = start + variable as u64;
    }
    if at != cd_end {
        return Err(wrong_count());
    }
    Ok(entries)
}

/// The rules one central directory entry must pass on its own.
fn check_entry(
    header: &CentralHeader,
    raw_name: &[u8],
    extra: &[u8],
) -> Result<CentralEntry, ZipError> {
    let refuse = |rule| member_error(raw_name, rule);
    let flags = header.flags;
    if flags & ENCRYPTION_FLAGS != 0 {
        return Err(refuse(ZipMemberRule::Encrypted));
    }
    if flags & !HARMLESS_FLAGS != 0 {
        return Err(refuse(ZipMemberRule::Flags(flags & !HARMLESS_FLAGS)));
    }
    if !raw_name.is_ascii() && flags & UTF8_FLAG == 0 {
        return Err(refuse(ZipMemberRule::AmbiguousName));
    }
    let parsed = parse_member_name(raw_name, Dialect::Zip)
        .map_err(|rule| refuse(ZipMemberRule::Name(rule.into())))?;
    let path = parsed
        .path
        .ok_or_else(|| refuse(ZipMemberRule::Name(super::super::NameRule::Empty.into())))?;
    let is_dir = parsed.trailing_slash;
    let name = String::from_utf8(raw_name.to_vec()).expect("parse_member_name checked UTF-8");

    let method = match header.method {
        0 => ZipMethod::Stored,
        8 => ZipMethod::Deflated,
        other => return Err(refuse(ZipMemberRule::Method(other))),
    };
    if header.needed & 0xFF > MAX_VERSION_NEEDED {
        return Err(refuse(ZipMemberRule::Version(header.needed & 0xFF)));
    }
    if header.disk_start != 0 {
        return Err(refuse(ZipMemberRule::Disk(header.disk_start)));
    }

    let fields =
        extra_fields(extra).map_err(|e| refuse(extra_rule(e, "central directory entry")))?;
    check_unicode_path(&fields, raw_name).map_err(refuse)?;
    // The zip64 field holds the saturated fields' values, in this order, and nothing else.
    let saturated = [
        header.usize == u32::MAX,
        header.csize == u32::MAX,
        header.offset == u32::MAX,
    ];
    let wanted = saturated.iter().filter(|s| **s).count();
    let zip64 = find(&fields, ZIP64_EXTRA);
    let mut values = match (wanted, zip64) {
        (0, None) => Vec::new(),
        (0, Some(_)) | (_, None) => {
            return Err(refuse(ZipMemberRule::Zip64Extra("central directory entry")));
        }
        (n, Some(data)) => u64s(data, n)
            .ok_or_else(|| refuse(ZipMemberRule::Zip64Extra("central directory entry")))?,
    }
    .into_iter();
    let mut widen = |narrow: u32, saturated: bool| {
        if saturated {
            values.next().expect("one value per saturated field")
        } else {
            u64::from(narrow)
        }
    };
    let usize = widen(header.usize, saturated[0]);
    let csize = widen(header.csize, saturated[1]);
    let offset = widen(header.offset, saturated[2]);

    let mode = header.external >> 16;
    let unix_mode = (mode != 0).then_some(mode);
    match mode & S_IFMT {
        S_IFREG if is_dir => return Err(refuse(ZipMemberRule::NotFolderMode)),
        0 | S_IFREG => {}
        S_IFDIR if !is_dir => return Err(refuse(ZipMemberRule::FolderAttributes)),
        S_IFDIR => {}
        S_IFLNK => return Err(refuse(ZipMemberRule::Symlink)),
        other => return Err(refuse(ZipMemberRule::Special(other))),
    }
    if header.external & DOS_DIRECTORY != 0 && !is_dir {
        return Err(refuse(ZipMemberRule::FolderAttributes));
    }
    if is_dir && usize > 0 {
        return Err(refuse(ZipMemberRule::FolderWithData));
    }
    if method == ZipMethod::Stored {
        if csize != usize {
            return Err(refuse(ZipMemberRule::StoredSizes));
        }
        if flags & DESCRIPTOR_FLAG != 0 {
            return Err(refuse(ZipMemberRule::StoredWithDescriptor));
        }
    }
    Ok(CentralEntry {
        raw_name: raw_name.to_vec(),
        name,
        path,
        is_dir,
        flags,
        method,
        method_id: header.method,
        crc: header.crc,
        csize,
        usize,
        offset,
        unix_mode,
        dos_date_time: (header.date, header.time),
    })
}

pub(super) fn extra_rule(e: ExtraError, header: &'static str) -> ZipMemberRule {
    match e {
        ExtraError::Truncated => ZipMemberRule::MalformedExtra(header),
        ExtraError::Repeated(id) => ZipMemberRule::RepeatedExtra { id, header },
    }
}

/// A Unicode path field is accepted only when every reader would get the name from it:
/// version 1, the CRC-32 of the name, and the name itself.
pub(super) fn check_unicode_path(
    fields: &[(u16, &[u8])],
    raw_name: &[u8],
) -> Result<(), ZipMemberRule> {
    let Some(data) = find(fields, UNICODE_PATH_EXTRA) else {
        return Ok(());
    };
    let same = data.len() >= 5
        && data[0] == 1
        && data[1..5] == crc32fast::hash(raw_name).to_le_bytes()
        && &data[5..] == raw_name;
    if same {
        Ok(())
    } else {
        Err(ZipMemberRule::AmbiguousName)
    }
}
