//! Builders for hostile and well-formed archives, shared by the unit and property tests.
//!
//! The `tar` and `zip` writers refuse many of the names an attacker would use, so headers
//! are written field by field here and zip bytes are patched after writing.

use crate::verify::record::record_hash;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// One tar member, described with raw bytes so any name or link can be written.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub mtime: u64,
    pub pax: Vec<(String, Vec<u8>)>,
    /// Header size field, when it should lie about the data.
    pub size_override: Option<u64>,
}

impl TarEntry {
    fn new(name: impl AsRef<[u8]>, kind: EntryType) -> Self {
        Self {
            name: name.as_ref().to_vec(),
            kind,
            data: Vec::new(),
            link: None,
            mode: 0o644,
            mtime: 1_600_000_000,
            pax: Vec::new(),
            size_override: None,
        }
    }

    pub fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        Self {
            data: data.as_ref().to_vec(),
            ..Self::new(name, EntryType::Regular)
        }
    }

    pub fn dir(name: impl AsRef<[u8]>) -> Self {
        Self {
            mode: 0o755,
            ..Self::new(name, EntryType::Directory)
        }
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        Self {
            link: Some(target.as_ref().to_vec()),
            mode: 0o777,
            ..Self::new(name, EntryType::Symlink)
        }
    }

    pub fn hard_link(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        Self {
            link: Some(target.as_ref().to_vec()),
            ..Self::new(name, EntryType::Link)
        }
    }

    pub fn special(name: impl AsRef<[u8]>, kind: EntryType) -> Self {
        Self::new(name, kind)
    }

    /// A PAX global header holding `records`.
    pub fn global_pax(records: &[(&str, &[u8])]) -> Self {
        Self {
            data: pax_records(records),
            ..Self::new("pax_global_header", EntryType::XGlobalHeader)
        }
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }

    pub fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax.push((key.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// PAX records (`<len> key=value\n`).
pub(crate) fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = 3 + key.len() + value.len();
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

fn raw_header(kind: EntryType, name: &[u8], size: u64, mode: u32, mtime: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    let gnu = header.as_gnu_mut().expect("a GNU header");
    if kind == EntryType::GNUSparse {
        gnu.set_real_size(size);
    }
    let n = name.len().min(gnu.name.len());
    gnu.name[..n].copy_from_slice(&name[..n]);
    header
}

/// The uncompressed tar stream of `entries`.
pub(crate) fn tar_bytes(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        if !entry.pax.is_empty() {
            let records: Vec<(&str, &[u8])> = entry
                .pax
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let data = pax_records(&records);
            let mut header = raw_header(
                EntryType::XHeader,
                b"PaxHeaders/x",
                data.len() as u64,
                0o644,
                0,
            );
            header.set_cksum();
            builder.append(&header, &data[..]).unwrap();
        }
        if entry.name.len() > 100 {
            let mut data = entry.name.clone();
            data.push(0);
            let mut header = raw_header(
                EntryType::GNULongName,
                b"././@LongLink",
                data.len() as u64,
                0o644,
                0,
            );
            header.set_cksum();
            builder.append(&header, &data[..]).unwrap();
        }
        if let Some(link) = entry.link.as_ref().filter(|l| l.len() > 100) {
            let mut data = link.clone();
            data.push(0);
            let mut header = raw_header(
                EntryType::GNULongLink,
                b"././@LongLink",
                data.len() as u64,
                0o644,
                0,
            );
            header.set_cksum();
            builder.append(&header, &data[..]).unwrap();
        }
        let size = entry.size_override.unwrap_or(entry.data.len() as u64);
        let mut header = raw_header(entry.kind, &entry.name, size, entry.mode, entry.mtime);
        if let Some(link) = &entry.link {
            let gnu = header.as_gnu_mut().unwrap();
            let n = link.len().min(gnu.linkname.len());
            gnu.linkname[..n].copy_from_slice(&link[..n]);
        }
        header.set_cksum();
        builder.append(&header, &entry.data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Gzip of `bytes`.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A `.tar.gz` of `entries`.
pub(crate) fn tar_gz(entries: &[TarEntry]) -> Vec<u8> {
    gzip(&tar_bytes(entries))
}

/// A realistic sdist tree under `top`: PKG-INFO, pyproject, a package, an executable
/// script, an in-tree symlink, distinct mtimes.
pub(crate) fn sdist_entries(top: &str, name: &str, version: &str) -> Vec<TarEntry> {
    vec![
        TarEntry::dir(format!("{top}/")).mtime(1_500_000_000),
        TarEntry::file(
            format!("{top}/PKG-INFO"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong text\n"),
        )
        .mtime(1_500_000_001),
        TarEntry::file(
            format!("{top}/pyproject.toml"),
            "[build-system]\nrequires = [\"flit_core\"]\n",
        ),
        TarEntry::dir(format!("{top}/src/")).mtime(1_500_000_002),
        TarEntry::dir(format!("{top}/src/demo/")).mtime(1_500_000_003),
        TarEntry::file(format!("{top}/src/demo/__init__.py"), "x = 1\n").mtime(1_500_000_004),
        TarEntry::file(format!("{top}/bin/run.sh"), "#!/bin/sh\necho hi\n").mode(0o755),
        TarEntry::symlink(format!("{top}/docs/README.md"), "../pyproject.toml"),
        TarEntry::hard_link(
            format!("{top}/src/demo/copy.py"),
            format!("{top}/src/demo/__init__.py"),
        ),
    ]
}

/// Writes `bytes` to `dir/name` and returns the path.
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// One zip member.
#[derive(Debug, Clone)]
pub(crate) enum ZipEntry {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
}

impl ZipEntry {
    pub fn file(name: impl Into<String>, data: impl AsRef<[u8]>) -> Self {
        ZipEntry::File(name.into(), data.as_ref().to_vec())
    }
}

/// A zip of `entries` (deflated files, folders, symlinks), written by the zip crate.
pub(crate) fn zip_bytes(entries: &[ZipEntry]) -> Vec<u8> {
    try_zip_bytes(entries).unwrap()
}

/// Like [`zip_bytes`], for entries the zip writer may refuse (duplicates, odd names).
pub(crate) fn try_zip_bytes(entries: &[ZipEntry]) -> zip::result::ZipResult<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for entry in entries {
        match entry {
            ZipEntry::File(name, data) => {
                writer.start_file(name.as_str(), options)?;
                writer.write_all(data)?;
            }
            ZipEntry::Dir(name) => writer.add_directory(name.as_str(), options)?,
            ZipEntry::Symlink(name, target) => {
                writer.add_symlink(name.as_str(), target.as_str(), options)?
            }
        }
    }
    Ok(writer.finish()?.into_inner())
}

/// Replaces every occurrence of `from` by `to` (same length) in `bytes`: renames members in
/// both the local headers and the central directory, which the zip writer would refuse.
pub(crate) fn patch_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    let mut count = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(count > 0, "nothing to patch");
}

/// Replaces the first occurrence of `from` by `to` (same length): the first occurrence of
/// a member's name is its local header, so this makes the two headers disagree.
pub(crate) fn patch_first(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("nothing to patch");
    bytes[at..at + from.len()].copy_from_slice(to);
}

/// Applies `patch` to the local header (at its start) and the central directory header
/// (at its start) of the member `name`.
pub(crate) fn patch_headers(bytes: &mut [u8], name: &str, patch: impl Fn(&mut [u8], bool)) {
    let mut i = 0;
    let mut patched = 0;
    while i + 46 <= bytes.len() {
        let local = bytes[i..i + 4] == [0x50, 0x4b, 0x03, 0x04];
        let central = bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02];
        let (len_at, name_at) = if local { (26, 30) } else { (28, 46) };
        if local || central {
            let name_len = u16::from_le_bytes([bytes[i + len_at], bytes[i + len_at + 1]]) as usize;
            if bytes.get(i + name_at..i + name_at + name_len) == Some(name.as_bytes()) {
                patch(&mut bytes[i..], local);
                patched += 1;
            }
        }
        i += 1;
    }
    assert_eq!(patched, 2, "a local and a central header for {name}");
}

/// Sets the external attributes (unix mode in the high half) of the central directory
/// entry named `name`.
pub(crate) fn patch_unix_mode(bytes: &mut [u8], name: &str, mode: u32) {
    let mut i = 0;
    while i + 46 <= bytes.len() {
        if bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let name_len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            if &bytes[i + 46..i + 46 + name_len] == name.as_bytes() {
                bytes[i + 4..i + 6].copy_from_slice(&[20, 3]); // made by: unix
                bytes[i + 38..i + 42].copy_from_slice(&(mode << 16).to_le_bytes());
                return;
            }
        }
        i += 1;
    }
    panic!("no central directory entry named {name}");
}

/// The files of a correct wheel `{name}-{version}`: a package, METADATA, WHEEL (RECORD is
/// added by [`wheel_zip`]).
pub(crate) fn wheel_files(name: &str, version: &str) -> Vec<(String, Vec<u8>)> {
    let dist_info = format!("{name}-{version}.dist-info");
    vec![
        (format!("{name}/__init__.py"), b"print('hello')\n".to_vec()),
        (format!("{name}/data.bin"), vec![7u8; 3000]),
        (
            format!("{dist_info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
        ),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
    ]
}

/// A correct RECORD for `files`, listing itself at `record_path`.
pub(crate) fn record_for(files: &[(String, Vec<u8>)], record_path: &str) -> Vec<u8> {
    let mut out = String::new();
    for (path, data) in files {
        out.push_str(&format!("{path},{},{}\n", record_hash(data), data.len()));
    }
    out.push_str(&format!("{record_path},,\n"));
    out.into_bytes()
}

/// A wheel zip of `files` plus a correct RECORD in `dist_info`.
pub(crate) fn wheel_zip(files: &[(String, Vec<u8>)], dist_info: &str) -> Vec<u8> {
    let record_path = format!("{dist_info}/RECORD");
    let record = record_for(files, &record_path);
    let mut entries: Vec<ZipEntry> = files
        .iter()
        .map(|(path, data)| ZipEntry::file(path.clone(), data))
        .collect();
    entries.push(ZipEntry::file(record_path, record));
    zip_bytes(&entries)
}

/// Lists every path below `root` (relative, sorted) with its kind, without following links.
pub(crate) fn snapshot(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let desc = if meta.file_type().is_symlink() {
                format!("link:{}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir:{:o}:{}", meta.mode(), meta.mtime())
            } else {
                format!(
                    "file:{:o}:{}:{}",
                    meta.mode(),
                    meta.mtime(),
                    crate::cache::sha256_file(&path).unwrap().0
                )
            };
            out.push((rel, desc));
        }
    }
    out.sort();
    out
}

/// A temporary folder for trees of thousands of folders: in `/dev/shm` (memory) where it
/// can be written, since creating and removing folders on some disks costs milliseconds
/// each; elsewhere the usual temporary folder. What the tests check is the same on both.
pub(crate) fn tempdir_for_many_folders() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wasm-build-test-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Nests `depth` folders named `name` below `dir`, one level at a time from a descriptor
/// (so far past PATH_MAX), with a file `bottom` in the deepest. Remove such a tree with
/// [`crate::scratch::remove`]: `std::fs::remove_dir_all` holds a descriptor per level.
pub(crate) fn nest_folders(dir: &Path, depth: usize, name: &str) {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, name, flags, Mode::empty()).unwrap();
    }
    let file = rustix::fs::openat(
        &fd,
        "bottom",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&file, b"x").unwrap();
}
