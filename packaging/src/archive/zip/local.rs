//! The members' part of the archive: local headers, data and data descriptors, which must
//! tile the bytes from offset 0 to the central directory in central directory order and
//! agree with the central entries.

use super::central::{CentralEntry, check_unicode_path, extra_rule};
use super::records::*;
use super::*;

/// Checks each entry's local header and data against its central entry, and that the
/// members leave no byte unaccounted for before `cd_offset`.
pub(super) fn check_layout(
    source: &impl ZipSource,
    entries: Vec<CentralEntry>,
    cd_offset: u64,
) -> Result<Vec<ZipMember>, ZipError> {
    let mut members = Vec::with_capacity(entries.len());
    let mut expected = 0u64;
    for entry in entries {
        let (data_offset, end) = check_member(source, &entry, expected, cd_offset)?;
        expected = end;
        members.push(ZipMember {
            name: entry.name,
            path: entry.path,
            is_dir: entry.is_dir,
            size: entry.usize,
            compressed_size: entry.csize,
            crc32: entry.crc,
            method: entry.method,
            unix_mode: entry.unix_mode,
            dos_date_time: entry.dos_date_time,
            data_offset,
        });
    }
    if expected != cd_offset {
        return Err(structure(ZipRule::DataAfterMembers {
            end: expected,
            cd_offset,
        }));
    }
    Ok(members)
}

/// Where the bytes between `from` and `from + len` end, if they end before `limit`.
fn span(from: u64, len: u64, limit: u64) -> Result<u64, ZipMemberRule> {
    from.checked_add(len)
        .filter(|end| *end <= limit)
        .ok_or(ZipMemberRule::PastCentralDirectory)
}

/// One member, whose local header must start at `expected`. Returns where its data starts
/// and where the member ends.
fn check_member(
    source: &impl ZipSource,
    entry: &CentralEntry,
    expected: u64,
    cd_offset: u64,
) -> Result<(u64, u64), ZipError> {
    let refuse = |rule| member_error(&entry.raw_name, rule);
    if entry.offset != expected {
        return Err(refuse(ZipMemberRule::Misplaced {
            found: entry.offset,
            expected,
        }));
    }
    let fixed_end = span(entry.offset, LOCAL_LEN as u64, cd_offset).map_err(refuse)?;
    let local = LocalHeader::parse(&read_array(source, entry.offset)?);
    if local.sig != LOCAL_SIG {
        return Err(refuse(ZipMemberRule::NoLocalHeader));
    }
    let name_len = usize::from(local.name_len);
    let extra_len = usize::from(local.extra_len);
    let data_offset = span(fixed_end, (name_len + extra_len) as u64, cd_offset).map_err(refuse)?;
    if name_len != entry.raw_name.len() {
        return Err(refuse(ZipMemberRule::LocalMismatch("name")));
    }
    let bytes = read_vec(source, fixed_end, name_len + extra_len)?;
    let (name, extra) = bytes.split_at(name_len);
    let (wide, data_end) =
        check_local_fields(entry, &local, name, extra, data_offset, cd_offset).map_err(refuse)?;
    if entry.flags & DESCRIPTOR_FLAG == 0 {
        return Ok((data_offset, data_end));
    }
    // Signature, CRC-32, then both sizes, 8 bytes each when the local header is zip64.
    let len = if wide { 24 } else { 16 };
    let end = span(data_end, len, cd_offset).map_err(refuse)?;
    let bytes = read_vec(source, data_end, len as usize)?;
    check_descriptor(entry, &bytes, wide).map_err(refuse)?;
    Ok((data_offset, end))
}

/// The local header's name, flags, method, extra fields, CRC and sizes against the central
/// entry. Returns whether the local header is zip64, and where the data ends.
fn check_local_fields(
    entry: &CentralEntry,
    local: &LocalHeader,
    name: &[u8],
    extra: &[u8],
    data_offset: u64,
    cd_offset: u64,
) -> Result<(bool, u64), ZipMemberRule> {
    if name != entry.raw_name {
        return Err(ZipMemberRule::LocalMismatch("name"));
    }
    if local.flags != entry.flags {
        return Err(ZipMemberRule::LocalMismatch("flags"));
    }
    if local.method != entry.method_id {
        return Err(ZipMemberRule::LocalMismatch("compression method"));
    }
    let fields = extra_fields(extra).map_err(|e| extra_rule(e, "local header"))?;
    check_unicode_path(&fields, name)?;

    // A local zip64 field holds both sizes, and only when both are saturated.
    let zip64_error = ZipMemberRule::Zip64Extra("local header");
    let saturated = (local.usize == u32::MAX, local.csize == u32::MAX);
    let zip64 = find(&fields, ZIP64_EXTRA);
    let (usize, csize, wide) = match (saturated, zip64) {
        ((false, false), None) => (u64::from(local.usize), u64::from(local.csize), false),
        ((true, true), Some(data)) => match u64s(data, 2).as_deref() {
            Some(&[usize, csize]) => (usize, csize, true),
            _ => return Err(zip64_error),
        },
        _ => return Err(zip64_error),
    };

    // Sizes and CRC as the central entry has them; zero only where a data descriptor
    // carries them.
    let descriptor = entry.flags & DESCRIPTOR_FLAG != 0;
    let agrees = |local: u64, central: u64| local == central || (descriptor && local == 0);
    if !agrees(u64::from(local.crc), u64::from(entry.crc)) {
        return Err(ZipMemberRule::LocalMismatch("CRC-32"));
    }
    if !agrees(usize, entry.usize) || !agrees(csize, entry.csize) {
        return Err(ZipMemberRule::LocalMismatch("sizes"));
    }
    Ok((wide, span(data_offset, entry.csize, cd_offset)?))
}

/// A data descriptor must carry its signature and the central entry's CRC and sizes.
fn check_descriptor(entry: &CentralEntry, bytes: &[u8], wide: bool) -> Result<(), ZipMemberRule> {
    let mut fields = Fields::new(bytes);
    if fields.sig() != DESCRIPTOR_SIG {
        return Err(ZipMemberRule::Descriptor("lacks its signature"));
    }
    if fields.u32() != entry.crc {
        return Err(ZipMemberRule::Descriptor(
            "disagrees with the central directory on the CRC-32",
        ));
    }
    let (csize, usize) = if wide {
        (fields.u64(), fields.u64())
    } else {
        (u64::from(fields.u32()), u64::from(fields.u32()))
    };
    if csize != entry.csize || usize != entry.usize {
        return Err(ZipMemberRule::Descriptor(
            "disagrees with the central directory on the sizes",
        ));
    }
    Ok(())
}
