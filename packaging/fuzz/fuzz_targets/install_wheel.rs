//! Raw zip bytes installed as a downloaded wheel into a build environment. Properties: no
//! panic; nothing is written outside the environment's folder, and nothing in it is a link.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use wasm_build_packaging::install::SitePackages;

fuzz_target!(|zip: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(zip).unwrap();
    let site = dir.path().join("site");
    let mut packages = SitePackages::create(&site, 8 << 20).unwrap();
    let _ = packages.install(&file, "fuzz-1.0-py3-none-any.whl");
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "something was written beside the environment");
    let mut stack = vec![site];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            assert!(kind.is_file() || kind.is_dir(), "{:?}", entry.path());
            if kind.is_dir() {
                stack.push(entry.path());
            }
        }
    }
});
