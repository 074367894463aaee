//! Raw tar bytes (gzip-compressed here) verified as a built sdist. Property: no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use wasm_build_packaging::limits::{ArchiveLimits, ArtifactLimits};
use wasm_build_packaging::verify::verify_sdist_file;

fuzz_target!(|tar: &[u8]| {
    let mut gz =
        flate2::write::GzEncoder::new(tempfile::tempfile().unwrap(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    let file = gz.finish().unwrap();
    let limits = ArtifactLimits {
        archive: ArchiveLimits {
            max_members: 256,
            max_unpacked_bytes: 8 << 20,
            ..ArchiveLimits::default()
        },
        ..ArtifactLimits::default()
    };
    let _ = verify_sdist_file(&file, "pkg-1.0.tar.gz", &limits);
});
