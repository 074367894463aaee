//! Raw bytes read by the strict zip reader and, independently, by the `zip` crate.
//! Properties: no panic; whatever the strict reader accepts (every member read to its
//! end), the `zip` crate reads too, with the same members in the same order, the same
//! name bytes and the same data.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};
use wasm_build_packaging::archive::zip::StrictZip;
use wasm_build_packaging::limits::ArchiveLimits;

fuzz_target!(|bytes: &[u8]| {
    let limits = ArchiveLimits {
        max_members: 256,
        max_unpacked_bytes: 8 << 20,
        ..ArchiveLimits::default()
    };
    let Ok(zip) = StrictZip::open(bytes, &limits) else {
        return;
    };
    let mut ours = Vec::new();
    for (index, member) in zip.members().iter().enumerate() {
        let mut data = Vec::new();
        if zip.reader(index).unwrap().read_to_end(&mut data).is_err() {
            return;
        }
        ours.push((member.name.clone(), data));
    }

    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .expect("the zip crate opens what the strict reader accepts");
    assert_eq!(archive.len(), ours.len(), "member count");
    for (index, (name, data)) in ours.iter().enumerate() {
        let mut entry = archive
            .by_index(index)
            .expect("the zip crate opens each member the strict reader accepts");
        assert_eq!(entry.name_raw(), name.as_bytes(), "member {index}'s name");
        let mut theirs = Vec::new();
        entry
            .read_to_end(&mut theirs)
            .expect("the zip crate reads each member the strict reader accepts");
        assert!(theirs == *data, "member `{name}`: different bytes");
    }
});
