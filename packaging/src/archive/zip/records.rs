//! The fixed-size records of the zip format (APPNOTE 4.3), decoded field by field, and
//! extra fields. Nothing here decides what is acceptable; `zip.rs` does.

pub(super) const EOCD_SIG: [u8; 4] = *b"PK\x05\x06";
pub(super) const EOCD64_SIG: [u8; 4] = *b"PK\x06\x06";
pub(super) const LOCATOR_SIG: [u8; 4] = *b"PK\x06\x07";
pub(super) const CENTRAL_SIG: [u8; 4] = *b"PK\x01\x02";
pub(super) const LOCAL_SIG: [u8; 4] = *b"PK\x03\x04";
pub(super) const DESCRIPTOR_SIG: [u8; 4] = *b"PK\x07\x08";

pub(super) const EOCD_LEN: u64 = 22;
pub(super) const EOCD64_LEN: u64 = 56;
pub(super) const LOCATOR_LEN: u64 = 20;
pub(super) const CENTRAL_LEN: usize = 46;
pub(super) const LOCAL_LEN: usize = 30;

/// The zip64 extended information extra field.
pub(super) const ZIP64_EXTRA: u16 = 0x0001;
/// Info-ZIP's Unicode path extra field.
pub(super) const UNICODE_PATH_EXTRA: u16 = 0x7075;

/// Little-endian fields read in order.
pub(super) struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        head.try_into().expect("split_at gave N bytes")
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    pub(super) fn sig(&mut self) -> [u8; 4] {
        self.take()
    }
}

/// The end-of-central-directory record (without its comment).
#[derive(Debug, Clone, Copy)]
pub(super) struct Eocd {
    pub disk: u16,
    pub cd_disk: u16,
    pub entries_on_disk: u16,
    pub entries: u16,
    pub cd_size: u32,
    pub cd_offset: u32,
    pub comment_len: u16,
}

impl Eocd {
    pub(super) fn parse(bytes: &[u8; EOCD_LEN as usize]) -> Self {
        let mut f = Fields::new(&bytes[4..]);
        Self {
            disk: f.u16(),
            cd_disk: f.u16(),
            entries_on_disk: f.u16(),
            entries: f.u16(),
            cd_size: f.u32(),
            cd_offset: f.u32(),
            comment_len: f.u16(),
        }
    }

    /// Whether a field holds its "see the zip64 record" value.
    pub(super) fn saturated(&self) -> bool {
        self.entries == u16::MAX
            || self.entries_on_disk == u16::MAX
            || self.cd_size == u32::MAX
            || self.cd_offset == u32::MAX
    }
}

/// The zip64 end-of-central-directory locator.
#[derive(Debug, Clone, Copy)]
pub(super) struct Locator {
    pub eocd64_disk: u32,
    pub eocd64_offset: u64,
    pub disks: u32,
}

impl Locator {
    pub(super) fn parse(bytes: &[u8; LOCATOR_LEN as usize]) -> Self {
        // The caller found the signature.
        let mut f = Fields::new(&bytes[4..]);
        Self {
            eocd64_disk: f.u32(),
            eocd64_offset: f.u64(),
            disks: f.u32(),
        }
    }
}

/// The zip64 end-of-central-directory record (its fixed part).
#[derive(Debug, Clone, Copy)]
pub(super) struct Eocd64 {
    pub sig: [u8; 4],
    pub record_size: u64,
    pub disk: u32,
    pub cd_disk: u32,
    pub entries_on_disk: u64,
    pub entries: u64,
    pub cd_size: u64,
    pub cd_offset: u64,
}

impl Eocd64 {
    pub(super) fn parse(bytes: &[u8; EOCD64_LEN as usize]) -> Self {
        let mut f = Fields::new(bytes);
        let sig = f.sig();
        let record_size = f.u64();
        let _made_by = f.u16();
        let _needed = f.u16();
        Self {
            sig,
            record_size,
            disk: f.u32(),
            cd_disk: f.u32(),
            entries_on_disk: f.u64(),
            entries: f.u64(),
            cd_size: f.u64(),
            cd_offset: f.u64(),
        }
    }
}

/// A central directory file header (its fixed part).
#[derive(Debug, Clone, Copy)]
pub(super) struct CentralHeader {
    pub sig: [u8; 4],
    pub needed: u16,
    pub flags: u16,
    pub method: u16,
    pub time: u16,
    pub date: u16,
    pub crc: u32,
    pub csize: u32,
    pub usize: u32,
    pub name_len: u16,
    pub extra_len: u16,
    pub comment_len: u16,
    pub disk_start: u16,
    pub external: u32,
    pub offset: u32,
}

impl CentralHeader {
    pub(super) fn parse(bytes: &[u8; CENTRAL_LEN]) -> Self {
        let mut f = Fields::new(bytes);
        let sig = f.sig();
        let _made_by = f.u16();
        let needed = f.u16();
        let flags = f.u16();
        let method = f.u16();
        let time = f.u16();
        let date = f.u16();
        let crc = f.u32();
        let csize = f.u32();
        let usize = f.u32();
        let name_len = f.u16();
        let extra_len = f.u16();
        let comment_len = f.u16();
        let disk_start = f.u16();
        let _internal = f.u16();
        Self {
            sig,
            needed,
            flags,
            method,
            time,
            date,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            disk_start,
            external: f.u32(),
            offset: f.u32(),
        }
    }
}

/// A local file header (its fixed part).
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalHeader {
    pub sig: [u8; 4],
    pub flags: u16,
    pub method: u16,
    pub crc: u32,
    pub csize: u32,
    pub usize: u32,
    pub name_len: u16,
    pub extra_len: u16,
}

impl LocalHeader {
    pub(super) fn parse(bytes: &[u8; LOCAL_LEN]) -> Self {
        let mut f = Fields::new(bytes);
        let sig = f.sig();
        let _needed = f.u16();
        let flags = f.u16();
        let method = f.u16();
        let _time = f.u16();
        let _date = f.u16();
        Self {
            sig,
            flags,
            method,
            crc: f.u32(),
            csize: f.u32(),
            usize: f.u32(),
            name_len: f.u16(),
            extra_len: f.u16(),
        }
    }
}

/// Why an extra field block is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExtraError {
    /// A field runs past the block's end, or 1 to 3 bytes are left over.
    Truncated,
    /// Two fields have the same ID: readers differ on which one counts.
    Repeated(u16),
}

/// Splits an extra field block into `(id, data)`, which must fill it exactly, each ID once.
pub(super) fn extra_fields(mut block: &[u8]) -> Result<Vec<(u16, &[u8])>, ExtraError> {
    let mut fields: Vec<(u16, &[u8])> = Vec::new();
    while !block.is_empty() {
        if block.len() < 4 {
            return Err(ExtraError::Truncated);
        }
        let id = u16::from_le_bytes([block[0], block[1]]);
        let len = usize::from(u16::from_le_bytes([block[2], block[3]]));
        let data = block.get(4..4 + len).ok_or(ExtraError::Truncated)?;
        if fields.iter().any(|(seen, _)| *seen == id) {
            return Err(ExtraError::Repeated(id));
        }
        fields.push((id, data));
        block = &block[4 + len..];
    }
    Ok(fields)
}

/// The data of the field `id`, if present.
pub(super) fn find<'a>(fields: &[(u16, &'a [u8])], id: u16) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(field, _)| *field == id)
        .map(|(_, data)| *data)
}

/// Reads `count` little-endian u64 values that must fill `data` exactly.
pub(super) fn u64s(data: &[u8], count: usize) -> Option<Vec<u64>> {
    if data.len() != count * 8 {
        return None;
    }
    Some(
        data.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_must_fill_the_block_once_each() {
        let block = [1, 0, 2, 0, 9, 9, 0x75, 0x70, 0, 0];
        let fields = extra_fields(&block).unwrap();
        assert_eq!(fields, vec![(1, &[9u8, 9][..]), (0x7075, &[][..])]);
        assert_eq!(extra_fields(&block[..9]), Err(ExtraError::Truncated));
        assert_eq!(extra_fields(&[1, 0, 0, 0, 7]), Err(ExtraError::Truncated));
        assert_eq!(
            extra_fields(&[1, 0, 0, 0, 1, 0, 0, 0]),
            Err(ExtraError::Repeated(1))
        );
        assert_eq!(u64s(&[1, 0, 0, 0, 0, 0, 0, 0], 1), Some(vec![1]));
        assert_eq!(u64s(&[1, 0, 0, 0, 0, 0, 0, 0], 2), None);
    }
}
