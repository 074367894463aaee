//! A zip writer for tests that writes whatever it is told, record by record: correct
//! archives in every legitimate shape (descriptors, zip64, comments, extras) and the
//! pieces to assemble hostile ones.

use super::records::*;
use std::io::Write;

/// One member to write.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub external: u32,
    pub needed: u16,
    /// Write a data descriptor (and zeros for CRC and sizes in the local header).
    pub descriptor: bool,
    /// A zip64 local header (saturated sizes and a zip64 extra field).
    pub zip64_local: bool,
    /// Saturate these central fields (size, compressed size, offset) with a zip64 field.
    pub zip64_central: [bool; 3],
    pub local_extra: Vec<u8>,
    pub central_extra: Vec<u8>,
    pub comment: Vec<u8>,
    pub dos_date_time: (u16, u16),
}

impl Entry {
    /// A deflated file, mode 0644, UTF-8 flag when the name is not ASCII.
    pub fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        let name = name.as_ref().to_vec();
        Self {
            flags: if name.is_ascii() { 0 } else { 1 << 11 },
            name,
            data: data.as_ref().to_vec(),
            method: 8,
            external: 0o100_644 << 16,
            needed: 20,
            descriptor: false,
            zip64_local: false,
            zip64_central: [false; 3],
            local_extra: Vec::new(),
            central_extra: Vec::new(),
            comment: Vec::new(),
            dos_date_time: ((44 << 9) | (6 << 5) | 15, (12 << 11) | (30 << 5)),
        }
    }

    /// A folder (the name should end in `/`), stored, as CPython writes one.
    pub fn dir(name: impl AsRef<[u8]>) -> Self {
        Self {
            method: 0,
            external: (0o40_755 << 16) | 0x10,
            ..Self::file(name, b"")
        }
    }

    pub fn stored(mut self) -> Self {
        self.method = 0;
        self
    }

    pub fn descriptor(mut self) -> Self {
        self.descriptor = true;
        self.flags |= 1 << 3;
        self
    }

    pub fn zip64_local(mut self) -> Self {
        self.zip64_local = true;
        self
    }

    pub fn zip64_central(mut self, fields: [bool; 3]) -> Self {
        self.zip64_central = fields;
        self
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.external = mode << 16;
        self
    }

    pub fn extra(mut self, id: u16, data: &[u8]) -> Self {
        let field = extra_field(id, data);
        self.local_extra.extend(&field);
        self.central_extra.extend(&field);
        self
    }

    pub fn crc(&self) -> u32 {
        crc32fast::hash(&self.data)
    }

    /// The data as written: deflated for method 8.
    pub fn packed(&self) -> Vec<u8> {
        if self.method == 8 {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&self.data).unwrap();
            encoder.finish().unwrap()
        } else {
            self.data.clone()
        }
    }

    /// Local header, name, extra, data and descriptor.
    pub fn local_record(&self) -> Vec<u8> {
        let packed = self.packed();
        let (crc, csize, usize) = if self.descriptor {
            (0, 0, 0)
        } else {
            (self.crc(), packed.len() as u64, self.data.len() as u64)
        };
        let mut extra = Vec::new();
        let (csize32, usize32) = if self.zip64_local {
            extra.extend(extra_field(
                ZIP64_EXTRA,
                &[usize.to_le_bytes(), csize.to_le_bytes()].concat(),
            ));
            (u32::MAX, u32::MAX)
        } else {
            (csize as u32, usize as u32)
        };
        extra.extend(&self.local_extra);
        let mut out = Vec::new();
        out.extend(LOCAL_SIG);
        out.extend(self.needed.to_le_bytes());
        out.extend(self.flags.to_le_bytes());
        out.extend(self.method.to_le_bytes());
        out.extend(self.dos_date_time.1.to_le_bytes());
        out.extend(self.dos_date_time.0.to_le_bytes());
        out.extend(crc.to_le_bytes());
        out.extend(csize32.to_le_bytes());
        out.extend(usize32.to_le_bytes());
        out.extend((self.name.len() as u16).to_le_bytes());
        out.extend((extra.len() as u16).to_le_bytes());
        out.extend(&self.name);
        out.extend(&extra);
        out.extend(&packed);
        if self.descriptor {
            out.extend(DESCRIPTOR_SIG);
            out.extend(self.crc().to_le_bytes());
            if self.zip64_local {
                out.extend((packed.len() as u64).to_le_bytes());
                out.extend((self.data.len() as u64).to_le_bytes());
            } else {
                out.extend((packed.len() as u32).to_le_bytes());
                out.extend((self.data.len() as u32).to_le_bytes());
            }
        }
        out
    }

    /// The central directory entry for a local record at `offset`.
    pub fn central_record(&self, offset: u64) -> Vec<u8> {
        let packed_len = self.packed().len() as u64;
        let values = [self.data.len() as u64, packed_len, offset];
        let mut zip64 = Vec::new();
        let mut narrow = [0u32; 3];
        for (i, value) in values.iter().enumerate() {
            if self.zip64_central[i] {
                zip64.extend(value.to_le_bytes());
                narrow[i] = u32::MAX;
            } else {
                narrow[i] = *value as u32;
            }
        }
        let mut extra = Vec::new();
        if !zip64.is_empty() {
            extra.extend(extra_field(ZIP64_EXTRA, &zip64));
        }
        extra.extend(&self.central_extra);
        let mut out = Vec::new();
        out.extend(CENTRAL_SIG);
        out.extend(0x031e_u16.to_le_bytes());
        out.extend(self.needed.to_le_bytes());
        out.extend(self.flags.to_le_bytes());
        out.extend(self.method.to_le_bytes());
        out.extend(self.dos_date_time.1.to_le_bytes());
        out.extend(self.dos_date_time.0.to_le_bytes());
        out.extend(self.crc().to_le_bytes());
        out.extend(narrow[1].to_le_bytes());
        out.extend(narrow[0].to_le_bytes());
        out.extend((self.name.len() as u16).to_le_bytes());
        out.extend((extra.len() as u16).to_le_bytes());
        out.extend((self.comment.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(self.external.to_le_bytes());
        out.extend(narrow[2].to_le_bytes());
        out.extend(&self.name);
        out.extend(&extra);
        out.extend(&self.comment);
        out
    }
}

/// An extra field: ID, length, data.
pub(crate) fn extra_field(id: u16, data: &[u8]) -> Vec<u8> {
    [
        &id.to_le_bytes()[..],
        &(data.len() as u16).to_le_bytes(),
        data,
    ]
    .concat()
}

/// An end record.
pub(crate) fn eocd(entries: u16, cd_size: u32, cd_offset: u32, comment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(EOCD_SIG);
    out.extend([0u8; 4]);
    out.extend(entries.to_le_bytes());
    out.extend(entries.to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend((comment.len() as u16).to_le_bytes());
    out.extend(comment);
    out
}

/// A zip64 end record with `extensible` data after its fixed part.
pub(crate) fn eocd64(entries: u64, cd_size: u64, cd_offset: u64, extensible: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(EOCD64_SIG);
    out.extend((44 + extensible.len() as u64).to_le_bytes());
    out.extend(0x031e_u16.to_le_bytes());
    out.extend(45u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(entries.to_le_bytes());
    out.extend(entries.to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(extensible);
    out
}

/// A zip64 locator pointing at `eocd64_offset`.
pub(crate) fn locator(eocd64_offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(LOCATOR_SIG);
    out.extend(0u32.to_le_bytes());
    out.extend(eocd64_offset.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out
}

/// An archive as written, with the offsets of its parts.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub bytes: Vec<u8>,
    /// Where each member's local header starts.
    pub offsets: Vec<u64>,
    /// Where each member's central directory entry starts.
    pub central: Vec<u64>,
    pub cd_offset: u64,
    pub cd_size: u64,
    /// Where the end records (the zip64 record, if any, then the end record) start.
    pub end_offset: u64,
}

/// Writes `entries` as a correct archive: members, central directory, then (with
/// `zip64_end`) a zip64 end record and locator with every end record field saturated,
/// then the end record and `comment`.
pub(crate) fn build(entries: &[Entry], comment: &[u8], zip64_end: bool) -> Built {
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    for entry in entries {
        offsets.push(bytes.len() as u64);
        bytes.extend(entry.local_record());
    }
    let cd_offset = bytes.len() as u64;
    let mut central = Vec::new();
    for (entry, offset) in entries.iter().zip(&offsets) {
        central.push(bytes.len() as u64);
        bytes.extend(entry.central_record(*offset));
    }
    let cd_size = bytes.len() as u64 - cd_offset;
    let end_offset = bytes.len() as u64;
    let count = entries.len() as u64;
    if zip64_end {
        bytes.extend(eocd64(count, cd_size, cd_offset, b""));
        bytes.extend(locator(end_offset));
        bytes.extend(eocd(u16::MAX, u32::MAX, u32::MAX, comment));
    } else {
        bytes.extend(eocd(
            count as u16,
            cd_size as u32,
            cd_offset as u32,
            comment,
        ));
    }
    Built {
        bytes,
        offsets,
        central,
        cd_offset,
        cd_size,
        end_offset,
    }
}

/// A small correct wheel (`demo-1.0`) as [`Entry`]s, RECORD last.
pub(crate) fn wheel_entries() -> Vec<Entry> {
    let files = crate::test_support::wheel_files("demo", "1.0");
    let record = crate::test_support::record_for(&files, "demo-1.0.dist-info/RECORD");
    files
        .iter()
        .map(|(name, data)| Entry::file(name, data))
        .chain([Entry::file("demo-1.0.dist-info/RECORD", record)])
        .collect()
}

/// What the strict reader sees: every member's name and bytes, or the refusal.
pub(crate) fn strict_view(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, super::ZipError> {
    use std::io::Read;
    let zip = super::StrictZip::open(bytes, &crate::limits::ArchiveLimits::default())?;
    let mut out = Vec::new();
    for (index, member) in zip.members().iter().enumerate() {
        let mut data = Vec::new();
        zip.reader(index)
            .expect("a member's index")
            .read_to_end(&mut data)?;
        out.push((member.name.clone(), data));
    }
    Ok(out)
}

/// What the `zip` crate sees: every member's raw name and bytes, or its error.
pub(crate) fn zip_crate_view(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(|e| e.to_string())?;
        let name = String::from_utf8_lossy(member.name_raw()).into_owned();
        let mut data = Vec::new();
        member.read_to_end(&mut data).map_err(|e| e.to_string())?;
        out.push((name, data));
    }
    Ok(out)
}
