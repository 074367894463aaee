//! Raw zip bytes verified as a wheel. Property: no panic, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use wasm_build_packaging::limits::{ArchiveLimits, ArtifactLimits};
use wasm_build_packaging::verify::verify_wheel_file;

fuzz_target!(|zip: &[u8]| {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(zip).unwrap();
    let limits = ArtifactLimits {
        archive: ArchiveLimits {
            max_members: 256,
            max_unpacked_bytes: 8 << 20,
            ..ArchiveLimits::default()
        },
        ..ArtifactLimits::default()
    };
    let _ = verify_wheel_file(&file, "demo-1.0-py3-none-any.whl", &limits);
});
