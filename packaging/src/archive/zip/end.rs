//! The end of the archive: the end record, and the zip64 end record and locator when the
//! end record's fields are saturated.

use super::records::*;
use super::*;

/// What the end records say, once checked.
#[derive(Debug)]
pub(super) struct EndRecords {
    pub entries: u64,
    pub cd_offset: u64,
    pub cd_size: u64,
}

impl EndRecords {
    pub(super) fn find(source: &impl ZipSource, size: u64) -> Result<Self, ZipError> {
        if size < EOCD_LEN {
            return Err(structure(ZipRule::NoEndRecord));
        }
        // The last signature, as CPython picks it; it must be a whole record whose comment
        // ends the file, so no other reader can find another one after it.
        let window_start = size.saturating_sub(EOCD_SEARCH);
        let window = read_vec(source, window_start, (size - window_start) as usize)?;
        let at = window
            .windows(4)
            .rposition(|w| w == EOCD_SIG)
            .ok_or(structure(ZipRule::NoEndRecord))?;
        let eocd_at = window_start + at as u64;
        let record: &[u8; EOCD_LEN as usize] = window
            .get(at..at + EOCD_LEN as usize)
            .and_then(|r| r.try_into().ok())
            .ok_or(structure(ZipRule::EndRecordTruncated))?;
        let eocd = Eocd::parse(record);
        let after = size - eocd_at - EOCD_LEN;
        if u64::from(eocd.comment_len) != after {
            return Err(structure(ZipRule::CommentLength {
                declared: eocd.comment_len,
                actual: after,
            }));
        }
        if eocd.disk != 0 || eocd.cd_disk != 0 || eocd.entries_on_disk != eocd.entries {
            return Err(structure(ZipRule::MultiDisk));
        }
        let has_locator = eocd_at >= LOCATOR_LEN
            && read_array::<4>(source, eocd_at - LOCATOR_LEN)? == LOCATOR_SIG;
        let (end, cd_end) = if eocd.saturated() {
            if !has_locator {
                return Err(structure(ZipRule::Zip64Missing));
            }
            Self::zip64(source, &eocd, eocd_at - LOCATOR_LEN)?
        } else {
            if has_locator {
                return Err(structure(ZipRule::Zip64Unneeded));
            }
            let end = Self {
                entries: u64::from(eocd.entries),
                cd_offset: u64::from(eocd.cd_offset),
                cd_size: u64::from(eocd.cd_size),
            };
            (end, eocd_at)
        };
        if end.cd_offset.checked_add(end.cd_size) != Some(cd_end) {
            return Err(structure(ZipRule::CentralDirectoryPlacement {
                offset: end.cd_offset,
                size: end.cd_size,
                end: cd_end,
            }));
        }
        Ok(end)
    }

    /// The zip64 end record before the locator at `locator_at`; returns it and where it
    /// starts (where the central directory must end).
    fn zip64(
        source: &impl ZipSource,
        eocd: &Eocd,
        locator_at: u64,
    ) -> Result<(Self, u64), ZipError> {
        let locator = Locator::parse(&read_array(source, locator_at)?);
        if locator.eocd64_disk != 0 || locator.disks != 1 {
            return Err(structure(ZipRule::MultiDisk));
        }
        let expected = locator_at
            .checked_sub(EOCD64_LEN)
            .ok_or(structure(ZipRule::Zip64NoRecord))?;
        if locator.eocd64_offset != expected {
            return Err(structure(ZipRule::Zip64Misplaced {
                found: locator.eocd64_offset,
                expected,
            }));
        }
        let record = Eocd64::parse(&read_array(source, expected)?);
        if record.sig != EOCD64_SIG {
            return Err(structure(ZipRule::Zip64NoRecord));
        }
        if record.record_size != EOCD64_LEN - 12 {
            return Err(structure(ZipRule::Zip64RecordSize(record.record_size)));
        }
        if record.disk != 0 || record.cd_disk != 0 || record.entries_on_disk != record.entries {
            return Err(structure(ZipRule::MultiDisk));
        }
        let agree = |narrow: u64, saturated: u64, wide: u64, what| {
            if narrow != saturated && narrow != wide {
                Err(structure(ZipRule::Zip64Disagrees(what)))
            } else {
                Ok(())
            }
        };
        let entries = u64::from(eocd.entries);
        agree(entries, 0xFFFF, record.entries, "number of entries")?;
        agree(
            u64::from(eocd.cd_size),
            0xFFFF_FFFF,
            record.cd_size,
            "central directory size",
        )?;
        agree(
            u64::from(eocd.cd_offset),
            0xFFFF_FFFF,
            record.cd_offset,
            "central directory offset",
        )?;
        let end = Self {
            entries: record.entries,
            cd_offset: record.cd_offset,
            cd_size: record.cd_size,
        };
        Ok((end, expected))
    }
}
