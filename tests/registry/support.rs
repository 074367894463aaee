//! Sources for the registry tests: the fixtures' sdists, a hostile sdist, a project whose
//! backend makes a wheel the verifier refuses.

use super::common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// `docs/report.schema.json`.
pub fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json")
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

pub fn sha256(bytes: &[u8]) -> String {
    wasm_build_packaging::cache::sha256_bytes(bytes)
}

/// The sdists of the fixtures `names`, built by wasm-build in one batch into `work/sdists`,
/// in the order of `names`.
pub fn fixture_sdists(work: &Path, names: &[&str]) -> Vec<PathBuf> {
    let sources = work.join("src");
    let mut trees = Vec::new();
    for name in names {
        let tree = sources.join(name);
        copy_tree(&fixtures().join(name), &tree);
        trees.push(tree);
    }
    let built = build_ok(
        wasm_build()
            .args(&trees)
            .args(["--sdist", "-j", "2", "-o"])
            .arg(work.join("sdists")),
    );
    assert_eq!(built.len(), names.len());
    built
}

/// `evil_demo-1.0.tar.gz` in `work`: an sdist with a symlink out of its tree.
pub fn hostile_sdist(work: &Path) -> PathBuf {
    let top = "evil_demo-1.0";
    let pyproject = b"[build-system]\nrequires = []\nbuild-backend = \"backend\"\n";
    let pkg_info = b"Metadata-Version: 2.1\nName: evil-demo\nVersion: 1.0\n";
    let members: Vec<(String, tar::EntryType, &[u8], Option<&str>)> = vec![
        (
            format!("{top}/pyproject.toml"),
            tar::EntryType::Regular,
            pyproject,
            None,
        ),
        (
            format!("{top}/PKG-INFO"),
            tar::EntryType::Regular,
            pkg_info,
            None,
        ),
        (
            format!("{top}/leak"),
            tar::EntryType::Symlink,
            b"",
            Some("../../../../etc/passwd"),
        ),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, kind, data, target) in &members {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(target) = target {
            old.linkname[..target.len()].copy_from_slice(target.as_bytes());
        }
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let path = work.join(format!("{top}.tar.gz"));
    fs::write(&path, builder.into_inner().unwrap().finish().unwrap()).unwrap();
    path
}

/// A copy of the in-tree fixture whose `build_wheel` writes a wheel with a wrong RECORD
/// hash: refused by verification (exit 7).
pub fn bad_record_project(work: &Path) -> PathBuf {
    let project = work.join("bad-record");
    copy_tree(&fixtures().join("intree"), &project);
    let backend = project.join("_build/backend.py");
    let mut text = fs::read_to_string(&backend).unwrap();
    text.push_str(
        r#"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, package, version = _project()
    members = wheel_members(name, package, version, config_settings)
    # One byte of a file changed after RECORD was written: same size, another hash.
    path = [path for path in members if path.endswith("__init__.py")][0]
    data = bytearray(members[path])
    data[0] ^= 0x20
    members[path] = bytes(data)
    return write_wheel(wheel_directory, "%s-%s-py3-none-any.whl" % (package, version), members)
"#,
    );
    fs::write(&backend, text).unwrap();
    project
}
