//! What kind of file a user handed over as an sdist, told by its first bytes.
//!
//! Deciding up front lets a wheel, a `.tar.xz` or a `.zip` get a message that names what
//! it is and what is accepted, instead of a decompressor's complaint about a gzip header.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The format of a file given as a source distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// A gzip-compressed file: a `.tar.gz` sdist (PEP 625).
    TarGz,
    /// A zip archive not named `.whl`: a legacy `.zip` sdist, also unpacked.
    Zip,
    /// A zip archive named `.whl`: a built wheel.
    Wheel,
    /// An xz-compressed file (`.tar.xz`).
    TarXz,
    /// A bzip2-compressed file (`.tar.bz2`).
    TarBz2,
    /// A zstandard-compressed file (`.tar.zst`).
    TarZst,
    /// An uncompressed POSIX tar archive (`.tar`).
    Tar,
    /// An empty file.
    Empty,
    /// None of the above.
    Unknown,
}

/// Bytes read to tell the format: enough for the `ustar` magic at offset 257.
const HEAD_BYTES: usize = 512;

impl SourceFormat {
    /// Tells the format of `file` (read from its start, without moving its position) from
    /// its first bytes; `file_name` only tells a wheel from another zip archive.
    pub fn detect(file: &File, file_name: &str) -> io::Result<Self> {
        let mut head = [0u8; HEAD_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match file.read_at(&mut head[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self::from_head(&head[..filled], file_name))
    }

    /// The format of a file that starts with `head` and is named `file_name`.
    pub fn from_head(head: &[u8], file_name: &str) -> Self {
        let is_zip = head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06");
        if head.is_empty() {
            Self::Empty
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Self::TarGz
        } else if is_zip && file_name.to_ascii_lowercase().ends_with(".whl") {
            Self::Wheel
        } else if is_zip {
            Self::Zip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::TarXz
        } else if head.starts_with(b"BZh") {
            Self::TarBz2
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::TarZst
        } else if head.get(257..262) == Some(b"ustar") {
            Self::Tar
        } else {
            Self::Unknown
        }
    }

    /// Why a file of this format is not an sdist wasm-build can unpack, as a sentence
    /// about `file`; `None` for [`Self::TarGz`] and [`Self::Zip`].
    pub fn refusal(self, file: &str) -> Option<String> {
        const ACCEPTED: &str = "sdists are .tar.gz (PEP 625) or legacy .zip";
        let compressed = |ext: &str| format!("`{file}` is a {ext} archive; {ACCEPTED}");
        Some(match self {
            Self::TarGz | Self::Zip => return None,
            Self::Wheel => format!(
                "`{file}` is a wheel, not an sdist: wasm-build builds wheels from project \
                 folders and sdists, and a wheel needs no build"
            ),
            Self::TarXz => compressed(".tar.xz"),
            Self::TarBz2 => compressed(".tar.bz2"),
            Self::TarZst => compressed(".tar.zst"),
            Self::Tar => compressed("plain .tar"),
            Self::Empty => format!("`{file}` is empty; {ACCEPTED}"),
            Self::Unknown => format!(
                "`{file}` is not an sdist: it is neither a gzip-compressed tar nor a zip \
                 archive; {ACCEPTED}"
            ),
        })
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TarGz => ".tar.gz archive",
            Self::Zip => ".zip archive",
            Self::Wheel => "wheel",
            Self::TarXz => ".tar.xz archive",
            Self::TarBz2 => ".tar.bz2 archive",
            Self::TarZst => ".tar.zst archive",
            Self::Tar => ".tar archive",
            Self::Empty => "empty file",
            Self::Unknown => "file of unknown format",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tells_formats_by_their_first_bytes() {
        let mut ustar = vec![0u8; 512];
        ustar[257..263].copy_from_slice(b"ustar\0");
        for (head, name, format) in [
            (
                &b"\x1f\x8b\x08\x00"[..],
                "demo-1.0.tar.gz",
                SourceFormat::TarGz,
            ),
            (b"\x1f\x8b\x08\x00", "demo-1.0.whl", SourceFormat::TarGz),
            (b"PK\x03\x04rest", "demo-1.0.zip", SourceFormat::Zip),
            (b"PK\x05\x06", "demo-1.0.tar.gz", SourceFormat::Zip),
            (
                b"PK\x03\x04",
                "demo-1.0-py3-none-any.whl",
                SourceFormat::Wheel,
            ),
            (
                b"PK\x03\x04",
                "DEMO-1.0-PY3-NONE-ANY.WHL",
                SourceFormat::Wheel,
            ),
            (b"\xfd7zXZ\x00\x00", "demo-1.0.tar.xz", SourceFormat::TarXz),
            (b"BZh91AY", "demo-1.0.tar.bz2", SourceFormat::TarBz2),
            (
                b"\x28\xb5\x2f\xfd",
                "demo-1.0.tar.zst",
                SourceFormat::TarZst,
            ),
            (&ustar, "demo-1.0.tar", SourceFormat::Tar),
            (b"", "demo-1.0.tar.gz", SourceFormat::Empty),
            (b"<html>", "demo-1.0.tar.gz", SourceFormat::Unknown),
        ] {
            assert_eq!(SourceFormat::from_head(head, name), format, "{name}");
        }
    }

    #[test]
    fn reads_the_head_without_moving_the_file() {
        use std::io::{Read, Seek};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"PK\x03\x04 and more").unwrap();
        file.rewind().unwrap();
        let mut first = [0u8; 2];
        file.read_exact(&mut first).unwrap();
        assert_eq!(
            SourceFormat::detect(&file, "x.whl").unwrap(),
            SourceFormat::Wheel
        );
        assert_eq!(file.stream_position().unwrap(), 2);
    }

    #[test]
    fn refusals_name_the_format_and_what_is_accepted() {
        assert_eq!(SourceFormat::TarGz.refusal("a.tar.gz"), None);
        assert_eq!(SourceFormat::Zip.refusal("a-1.0.zip"), None);
        assert_eq!(
            SourceFormat::Wheel
                .refusal("demo-1.0-py3-none-any.whl")
                .unwrap(),
            "`demo-1.0-py3-none-any.whl` is a wheel, not an sdist: wasm-build builds wheels \
             from project folders and sdists, and a wheel needs no build"
        );
        assert_eq!(
            SourceFormat::TarXz.refusal("demo-1.0.tar.xz").unwrap(),
            "`demo-1.0.tar.xz` is a .tar.xz archive; sdists are .tar.gz (PEP 625) or legacy .zip"
        );
        assert_eq!(
            SourceFormat::TarBz2.refusal("demo-1.0.tar.bz2").unwrap(),
            "`demo-1.0.tar.bz2` is a .tar.bz2 archive; sdists are .tar.gz (PEP 625) or legacy \
             .zip"
        );
        assert_eq!(
            SourceFormat::Tar.refusal("demo-1.0.tar").unwrap(),
            "`demo-1.0.tar` is a plain .tar archive; sdists are .tar.gz (PEP 625) or legacy .zip"
        );
        assert!(
            SourceFormat::Unknown
                .refusal("x.tar.gz")
                .unwrap()
                .contains("neither a gzip-compressed tar nor a zip archive")
        );
    }
}
