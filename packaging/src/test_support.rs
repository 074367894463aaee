//! Builders for hostile and well-formed archives, shared by the unit and property tests.
//!
//! The `tar` and `zip` writers refuse many of the names an attacker would use, so headers
//! are written field by field here and zip bytes are patched after writing.

use std::io::Write;
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
