//! Reading one member's data: exactly its compressed bytes in, exactly its declared size
//! out, its CRC-32 checked at the end.

use super::{ZipError, ZipMember, ZipMemberRule, ZipMethod, ZipSource};
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{self, Read};

/// How much compressed data is read at a time.
const CHUNK: usize = 64 * 1024;

/// The data of one member of a [`StrictZip`](super::StrictZip).
///
/// Yields exactly [`ZipMember::size`] bytes. Fails (with an `io::Error` of kind
/// `InvalidData` wrapping a [`ZipError`]; `ZipError::from` unwraps it) as soon as the data
/// would unpack to more, and at the end if it unpacked to fewer, if its CRC-32 differs, or
/// if its deflate stream does not end exactly at its compressed size.
pub struct MemberReader<'z, S> {
    source: &'z S,
    member: &'z ZipMember,
    /// When reading must have ended (`ArchiveLimits::deadline`).
    deadline: Option<std::time::Instant>,
    /// Offset of the next compressed byte in the archive.
    next: u64,
    /// Compressed bytes not read from the archive yet.
    packed_left: u64,
    inflate: Option<Box<Decompress>>,
    input: Vec<u8>,
    start: usize,
    produced: u64,
    crc: crc32fast::Hasher,
    done: bool,
}

impl<'z, S: ZipSource> MemberReader<'z, S> {
    pub(super) fn new(
        source: &'z S,
        member: &'z ZipMember,
        data_offset: u64,
        deadline: Option<std::time::Instant>,
    ) -> Self {
        Self {
            source,
            member,
            deadline,
            next: data_offset,
            packed_left: member.compressed_size,
            inflate: (member.method == ZipMethod::Deflated)
                .then(|| Box::new(Decompress::new(false))),
            input: Vec::new(),
            start: 0,
            produced: 0,
            crc: crc32fast::Hasher::new(),
            done: false,
        }
    }

    /// The member being read.
    pub fn member(&self) -> &'z ZipMember {
        self.member
    }

    fn refuse(&self, rule: ZipMemberRule) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ZipError::Member {
                member: self.member.name.clone(),
                rule,
            },
        )
    }

    fn deflate_error(&self, reason: impl Into<String>) -> io::Error {
        self.refuse(ZipMemberRule::Deflate {
            declared: self.member.compressed_size,
            reason: reason.into(),
        })
    }

    /// Reads up to `CHUNK` more compressed bytes into `input` (after what is left of it).
    fn refill(&mut self) -> io::Result<()> {
        self.input.drain(..self.start);
        self.start = 0;
        let n = CHUNK.min(usize::try_from(self.packed_left).unwrap_or(CHUNK));
        let old = self.input.len();
        self.input.resize(old + n, 0);
        self.source
            .read_exact_at(&mut self.input[old..], self.next)?;
        self.next += n as u64;
        self.packed_left -= n as u64;
        Ok(())
    }

    /// Counts `n` new bytes of `buf`; fails past the declared size.
    fn account(&mut self, buf: &[u8]) -> io::Result<()> {
        self.produced += buf.len() as u64;
        if self.produced > self.member.size {
            return Err(self.refuse(ZipMemberRule::TooLarge {
                declared: self.member.size,
            }));
        }
        self.crc.update(buf);
        Ok(())
    }

    /// The checks once all data is in.
    fn finish(&mut self) -> io::Result<()> {
        if self.produced != self.member.size {
            return Err(self.refuse(ZipMemberRule::TooSmall {
                declared: self.member.size,
                actual: self.produced,
            }));
        }
        if self.crc.clone().finalize() != self.member.crc32 {
            return Err(self.refuse(ZipMemberRule::Crc));
        }
        // Errors are not final: reading again fails again.
        self.done = true;
        Ok(())
    }

    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.packed_left).unwrap_or(usize::MAX));
        self.source.read_exact_at(&mut buf[..n], self.next)?;
        self.next += n as u64;
        self.packed_left -= n as u64;
        self.account(&buf[..n])?;
        if self.packed_left == 0 {
            self.finish()?;
        }
        Ok(n)
    }

    fn read_deflated(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never ask for more than one byte past the declared size: enough to notice it.
        let room = self.member.size.saturating_sub(self.produced);
        let want = buf
            .len()
            .min(usize::try_from(room.saturating_add(1)).unwrap_or(usize::MAX));
        loop {
            if self.start == self.input.len() && self.packed_left > 0 {
                self.refill()?;
            }
            let inflate = self.inflate.as_mut().expect("a deflated member");
            let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress(
                    &self.input[self.start..],
                    &mut buf[..want],
                    FlushDecompress::None,
                )
                .map_err(|e| self.deflate_error(e.to_string()))?;
            let inflate = self.inflate.as_ref().expect("a deflated member");
            let consumed = (inflate.total_in() - before_in) as usize;
            let out = (inflate.total_out() - before_out) as usize;
            self.start += consumed;
            self.account(&buf[..out])?;
            if status == Status::StreamEnd {
                if self.start != self.input.len() || self.packed_left > 0 {
                    return Err(self.deflate_error("data follows the end of the stream"));
                }
                self.finish()?;
                return Ok(out);
            }
            if out > 0 {
                return Ok(out);
            }
            let input_left = self.start < self.input.len() || self.packed_left > 0;
            if !input_left {
                return Err(self.deflate_error("the stream is cut short"));
            }
            if consumed == 0 && self.packed_left > 0 {
                // Not enough input to make progress: add more to what is left.
                self.refill()?;
            } else if consumed == 0 {
                return Err(self.deflate_error("the stream is cut short"));
            }
        }
    }
}

impl<S: ZipSource> Read for MemberReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self
            .deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                ZipError::Limit(crate::limits::LimitExceeded::Time),
            ));
        }
        match self.member.method {
            ZipMethod::Stored => self.read_stored(buf),
            ZipMethod::Deflated => self.read_deflated(buf),
        }
    }
}
