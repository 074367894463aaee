//! Raw tar bytes (gzip-compressed here, so the fuzzer explores tar structure rather than
//! deflate) extracted as an sdist. Properties: no panic; on failure nothing is left; on
//! success one top-level folder whose symlinks are relative and resolve inside it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::{Component, Path};
use wasm_build_packaging::archive::extract_sdist;
use wasm_build_packaging::limits::ArchiveLimits;

fuzz_target!(|tar: &[u8]| {
    let tmp = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    let archive = tmp.path().join("pkg-1.0.tar.gz");
    std::fs::write(&archive, gz.finish().unwrap()).unwrap();
    let dest = tmp.path().join("dest");
    let limits = ArchiveLimits {
        max_members: 256,
        max_unpacked_bytes: 8 << 20,
        ..ArchiveLimits::default()
    };
    match extract_sdist(&archive, &dest, &limits) {
        Ok(extracted) => check_contained(&extracted.root),
        Err(_) => assert!(!dest.exists(), "a failed extraction leaves nothing"),
    }
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.len() <= 2, "nothing written beside dest: {names:?}");
});

fn check_contained(root: &Path) {
    let canonical_root = std::fs::canonicalize(root).unwrap();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                let mut depth = path
                    .parent()
                    .unwrap()
                    .strip_prefix(root)
                    .unwrap()
                    .components()
                    .count() as i64;
                for component in target.components() {
                    match component {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        Component::CurDir => {}
                        _ => panic!("{} -> {} is absolute", path.display(), target.display()),
                    }
                    assert!(
                        depth >= 0,
                        "{} -> {} leaves the tree",
                        path.display(),
                        target.display()
                    );
                }
                if let Ok(resolved) = std::fs::canonicalize(&path) {
                    assert!(
                        resolved.starts_with(&canonical_root),
                        "{} escapes",
                        path.display()
                    );
                }
            } else {
                assert!(kind.is_file(), "{} is special", path.display());
            }
        }
    }
}
