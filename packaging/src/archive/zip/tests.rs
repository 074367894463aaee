use super::attacks::{accepted, attacks, two_zip64_end_records};
use super::craft::{Entry, build, strict_view, wheel_entries, zip_crate_view};
use super::*;
use std::io::{Read, Write};

#[test]
fn every_attack_is_refused_for_its_rule() {
    for attack in attacks() {
        let error = strict_view(&attack.bytes).expect_err(attack.name);
        assert!(
            (attack.refused_for)(&error),
            "{}: refused for another reason: {error}",
            attack.name
        );
    }
}

#[test]
fn legitimate_shapes_are_read_as_the_zip_crate_reads_them() {
    for (name, bytes) in accepted() {
        let ours = strict_view(&bytes).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        let theirs = zip_crate_view(&bytes).unwrap_or_else(|e| panic!("{name}: zip crate: {e}"));
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn members_are_read_with_their_names_types_and_bytes() {
    let entries = wheel_entries();
    let bytes = build(&entries, b"", false).bytes;
    let view = strict_view(&bytes).unwrap();
    let expected: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|e| (String::from_utf8(e.name.clone()).unwrap(), e.data.clone()))
        .collect();
    assert_eq!(view, expected);

    let entries = vec![
        Entry::dir("pkg/"),
        Entry::file("pkg/run.sh", "#!/bin/sh\n").mode(0o100_755),
        Entry::file("pkg/plain", "x").mode(0o644),
    ];
    let bytes = build(&entries, b"", false).bytes;
    let zip = StrictZip::open(&bytes[..], &ArchiveLimits::default()).unwrap();
    let members = zip.members();
    assert!(members[0].is_dir && members[0].path.as_str() == "pkg" && members[0].name == "pkg/");
    assert!(!members[0].is_executable());
    assert!(members[1].is_executable());
    assert!(!members[2].is_executable());
    assert_eq!(members[1].size, 10);
    assert_eq!(zip.unpacked_size(), 11);
    // 2024-06-15 12:30:00, read as UTC.
    assert_eq!(members[1].mtime().seconds, 1_718_454_600);
}

#[test]
fn invalid_dos_times_read_as_1980() {
    let mut entry = Entry::file("a", "x");
    entry.dos_date_time = (0, 0);
    let bytes = build(&[entry], b"", false).bytes;
    let zip = StrictZip::open(&bytes[..], &ArchiveLimits::default()).unwrap();
    assert_eq!(zip.members()[0].mtime().seconds, 315_532_800);
}

#[test]
fn reading_one_byte_at_a_time_gives_the_same_bytes() {
    let mut entries = wheel_entries();
    entries.push(Entry::file(
        "big.bin",
        (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    ));
    let bytes = build(&entries, b"", false).bytes;
    let zip = StrictZip::open(&bytes[..], &ArchiveLimits::default()).unwrap();
    for (index, entry) in entries.iter().enumerate() {
        let mut reader = zip.reader(index).unwrap();
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while reader.read(&mut byte).unwrap() == 1 {
            data.push(byte[0]);
        }
        assert_eq!(data, entry.data);
        assert_eq!(reader.read(&mut byte).unwrap(), 0);
    }
    assert!(zip.reader(entries.len()).is_none());
}

#[test]
fn a_refused_read_fails_again_when_repeated() {
    let mut built = build(&wheel_entries(), b"", false);
    let (local, central) = (built.offsets[0] as usize, built.cd_offset as usize);
    built.bytes[local + 14] ^= 1;
    built.bytes[central + 16] ^= 1;
    let zip = StrictZip::open(&built.bytes[..], &ArchiveLimits::default()).unwrap();
    let mut reader = zip.reader(0).unwrap();
    let mut sink = Vec::new();
    let error = reader.read_to_end(&mut sink).unwrap_err();
    let error = ZipError::from(error);
    assert!(
        matches!(&error, ZipError::Member { rule: ZipMemberRule::Crc, member } if member == "demo/__init__.py"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "member `demo/__init__.py` does not match its CRC-32"
    );
    assert!(reader.read(&mut [0u8; 16]).is_err());
}

#[test]
fn the_issue_14_repro_is_refused_naming_the_rule() {
    let error =
        StrictZip::open(&two_zip64_end_records()[..], &ArchiveLimits::default()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("not a valid zip archive: its zip64 locator points to offset "),
        "{message}"
    );
    assert!(
        message.contains("but the zip64 end record must lie immediately before the locator"),
        "{message}"
    );
}

#[test]
fn limits_are_checked_on_the_declared_sizes_before_reading() {
    let mut entries = wheel_entries();
    entries.push(Entry::file("bomb.bin", vec![0u8; 4 << 20]));
    let bytes = build(&entries, b"", false).bytes;
    assert!(bytes.len() < 64 << 10);
    let limits = |max_members, max_unpacked_bytes, ratio_grace_bytes| ArchiveLimits {
        max_members,
        max_unpacked_bytes,
        max_compression_ratio: 100,
        ratio_grace_bytes,
        deadline: None,
    };
    let open = |limits: ArchiveLimits| StrictZip::open(&bytes[..], &limits).map(drop);
    // Six members: the folders their names imply (demo/, demo-1.0.dist-info/) count too.
    assert!(matches!(
        open(limits(5, u64::MAX, u64::MAX)),
        Err(ZipError::Limit(LimitExceeded::Members { limit: 5 }))
    ));
    assert!(matches!(
        open(limits(7, u64::MAX, u64::MAX)),
        Err(ZipError::Limit(LimitExceeded::Members { limit: 7 }))
    ));
    assert!(matches!(
        open(limits(8, 1 << 20, u64::MAX)),
        Err(ZipError::Limit(LimitExceeded::UnpackedBytes {
            limit: 1_048_576
        }))
    ));
    assert!(matches!(
        open(limits(8, u64::MAX, 1 << 20)),
        Err(ZipError::Limit(LimitExceeded::CompressionRatio {
            limit: 100,
            ..
        }))
    ));
    assert!(open(limits(8, 8 << 20, 8 << 20)).is_ok());
}

#[test]
fn a_huge_entry_count_is_refused_before_allocating() {
    let bytes = super::craft::eocd(u16::MAX - 1, 0, 0, b"");
    let limits = ArchiveLimits::default();
    let error = StrictZip::open(&bytes[..], &limits).unwrap_err();
    assert!(
        matches!(
            error,
            ZipError::Structure(ZipRule::CentralDirectoryEntries { .. })
        ),
        "{error}"
    );
}

#[test]
fn reads_from_a_file() {
    let bytes = build(&wheel_entries(), b"", false).bytes;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes).unwrap();
    let zip = StrictZip::open(&file, &ArchiveLimits::default()).unwrap();
    let mut data = String::new();
    zip.reader(0).unwrap().read_to_string(&mut data).unwrap();
    assert_eq!(data, "print('hello')\n");
}

#[test]
fn what_is_not_a_zip_is_refused() {
    for bytes in [
        &b""[..],
        b"not a zip at all, just some text that is long enough",
    ] {
        let error = strict_view(bytes).unwrap_err();
        assert!(
            matches!(error, ZipError::Structure(ZipRule::NoEndRecord)),
            "{error}"
        );
    }
}

#[test]
fn a_member_larger_than_declared_fails_and_fails_again() {
    let mut built = build(&wheel_entries(), b"", false);
    // demo/data.bin holds 3000 bytes; both headers say 100.
    let (local, central) = (built.offsets[1] as usize, built.central[1] as usize);
    built.bytes[local + 22..local + 26].copy_from_slice(&100u32.to_le_bytes());
    built.bytes[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    let zip = StrictZip::open(&built.bytes[..], &ArchiveLimits::default()).unwrap();
    let mut reader = zip.reader(1).unwrap();
    let mut data = Vec::new();
    let error = ZipError::from(reader.read_to_end(&mut data).unwrap_err());
    assert!(
        matches!(
            error,
            ZipError::Member {
                rule: ZipMemberRule::TooLarge { declared: 100 },
                ..
            }
        ),
        "{error}"
    );
    assert!(data.len() <= 100);
    assert!(reader.read(&mut [0u8; 64]).is_err());
}

#[test]
fn reading_past_the_deadline_is_refused() {
    let bytes = build(&wheel_entries(), b"", false).bytes;
    let late = ArchiveLimits {
        deadline: Some(std::time::Instant::now()),
        ..ArchiveLimits::default()
    };
    let Err(error) = StrictZip::open(&bytes[..], &late) else {
        panic!("read past the deadline");
    };
    assert!(
        matches!(error, ZipError::Limit(LimitExceeded::Time)),
        "{error}"
    );
}
