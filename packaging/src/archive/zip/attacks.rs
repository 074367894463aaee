//! Crafted archives: attacks that make zip readers disagree (each must be refused, for
//! the rule named), and legitimate shapes (each must be accepted). Shared by the unit
//! tests and the differential test against CPython.

use super::craft::{Built, Entry, build, eocd, eocd64, extra_field, locator, wheel_entries};
use super::{ZipError, ZipMemberRule, ZipRule};

mod members;

/// A hostile archive and the refusal it must get.
pub(crate) struct Attack {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub refused_for: fn(&ZipError) -> bool,
}

fn structure(e: &ZipError, want: impl Fn(&ZipRule) -> bool) -> bool {
    matches!(e, ZipError::Structure(rule) if want(rule))
}

fn member(e: &ZipError, want: impl Fn(&ZipMemberRule) -> bool) -> bool {
    matches!(e, ZipError::Member { rule, .. } if want(rule))
}

/// Members a Python installer must never see unless the verifier saw them too.
fn evil_entries() -> Vec<Entry> {
    vec![
        Entry::file(
            "demo-1.0.data/purelib/evil.pth",
            "import os; os.system('id')\n",
        ),
        Entry::file("../../evil.py", "print('escaped')\n"),
        Entry::file("demo/backdoor.py", "import os\n"),
    ]
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The local records of `entries` from offset `start`, and their offsets.
fn locals(entries: &[Entry], start: u64) -> (Vec<u8>, Vec<u64>) {
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    for entry in entries {
        offsets.push(start + bytes.len() as u64);
        bytes.extend(entry.local_record());
    }
    (bytes, offsets)
}

fn central(entries: &[Entry], offsets: &[u64]) -> Vec<u8> {
    entries
        .iter()
        .zip(offsets)
        .flat_map(|(entry, offset)| entry.central_record(*offset))
        .collect()
}

/// The issue-14 repro: the locator points at a zip64 end record (the verifier's) whose
/// extensible data hides the evil members' local records, a second central directory and
/// a second zip64 end record exactly 56 bytes before the locator (CPython's).
pub(crate) fn two_zip64_end_records() -> Vec<u8> {
    let good = wheel_entries();
    let (good_locals, good_offsets) = locals(&good, 0);
    let cd_good = central(&good, &good_offsets);
    let x = good_locals.len() as u64;
    let y = x + cd_good.len() as u64;
    let evil = evil_entries();
    let (evil_locals, evil_offsets) = locals(&evil, y + 56);
    let all: Vec<Entry> = good.iter().chain(&evil).cloned().collect();
    let all_offsets: Vec<u64> = good_offsets.iter().chain(&evil_offsets).copied().collect();
    let cd_evil = central(&all, &all_offsets);
    let c = y + 56 + evil_locals.len() as u64;
    let second = eocd64(all.len() as u64, cd_evil.len() as u64, c, b"");
    let extensible = concat(&[&evil_locals, &cd_evil, &second]);
    let first = eocd64(good.len() as u64, cd_good.len() as u64, x, &extensible);
    concat(&[
        &good_locals,
        &cd_good,
        &first,
        &locator(y),
        &eocd(u16::MAX, u32::MAX, u32::MAX, b""),
    ])
}

/// A correct archive of the wheel with the evil members' local records and a central
/// directory listing everything placed right before the end records; `end` writes them
/// given (evil directory offset, evil directory size, good directory offset, size).
fn with_hidden_directory(end: impl Fn(u64, u64, u64, u64) -> Vec<u8>) -> Vec<u8> {
    let good = wheel_entries();
    let (good_locals, good_offsets) = locals(&good, 0);
    let cd_good = central(&good, &good_offsets);
    let x = good_locals.len() as u64;
    let evil = evil_entries();
    let (evil_locals, evil_offsets) = locals(&evil, x + cd_good.len() as u64);
    let all: Vec<Entry> = good.iter().chain(&evil).cloned().collect();
    let all_offsets: Vec<u64> = good_offsets.iter().chain(&evil_offsets).copied().collect();
    let cd_evil = central(&all, &all_offsets);
    let c = x + (cd_good.len() + evil_locals.len()) as u64;
    concat(&[
        &good_locals,
        &cd_good,
        &evil_locals,
        &cd_evil,
        &end(c, cd_evil.len() as u64, x, cd_good.len() as u64),
    ])
}

/// Members of the wheel and the evil ones together.
fn all_count() -> u64 {
    (wheel_entries().len() + evil_entries().len()) as u64
}

fn wheel() -> Built {
    build(&wheel_entries(), b"", false)
}

/// The wheel with `patch` applied to member `index` before building.
fn wheel_with(index: usize, patch: impl FnOnce(&mut Entry)) -> Vec<u8> {
    let mut entries = wheel_entries();
    patch(&mut entries[index]);
    build(&entries, b"", false).bytes
}

/// The wheel, then `edit` on its bytes.
fn edited(edit: impl FnOnce(&mut Vec<u8>, &Built)) -> Vec<u8> {
    let built = wheel();
    let mut bytes = built.bytes.clone();
    edit(&mut bytes, &built);
    bytes
}

fn put_u16(bytes: &mut [u8], at: u64, value: u16) {
    let at = at as usize;
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: u64, value: u32) {
    let at = at as usize;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Rewrites every offset of a built archive after `insert` bytes went in at `at`.
fn shift_after(
    entries: &[Entry],
    built: &Built,
    at: u64,
    insert: &[u8],
    comment: &[u8],
) -> Vec<u8> {
    let shift = |offset: u64| {
        if offset >= at {
            offset + insert.len() as u64
        } else {
            offset
        }
    };
    let mut bytes = built.bytes[..built.cd_offset as usize].to_vec();
    bytes.splice(at as usize..at as usize, insert.iter().copied());
    let offsets: Vec<u64> = built.offsets.iter().map(|o| shift(*o)).collect();
    let cd = central(entries, &offsets);
    let cd_offset = bytes.len() as u64;
    bytes.extend(&cd);
    bytes.extend(eocd(
        entries.len() as u16,
        cd.len() as u32,
        cd_offset as u32,
        comment,
    ));
    bytes
}

/// Every attack; each must be refused for its rule.
pub(crate) fn attacks() -> Vec<Attack> {
    let entries = wheel_entries();
    let built = wheel();
    let eocd_at = built.end_offset;
    let mut all = vec![
        Attack {
            name: "two zip64 end records (issue 14)",
            bytes: two_zip64_end_records(),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64Misplaced { .. })),
        },
        Attack {
            name: "zip64 end record with extensible data",
            bytes: with_hidden_directory(|c, size, _, _| {
                // No extensible data after all, but a size saying there is: CPython
                // ignores the size, the zip crate refuses it.
                let mut record = eocd64(all_count(), size, c, b"");
                record[4..12].copy_from_slice(&45u64.to_le_bytes());
                concat(&[
                    &record,
                    &locator(c + size),
                    &eocd(u16::MAX, u32::MAX, u32::MAX, b""),
                ])
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64RecordSize(45))),
        },
        Attack {
            name: "zip64 records though nothing is saturated",
            bytes: with_hidden_directory(|c, size, x, good_size| {
                // CPython reads the zip64 record; the zip crate the 32-bit fields.
                concat(&[
                    &eocd64(all_count(), size, c, b""),
                    &locator(c + size),
                    &eocd(
                        wheel_entries().len() as u16,
                        good_size as u32,
                        x as u32,
                        b"",
                    ),
                ])
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64Unneeded)),
        },
        Attack {
            name: "zip64 record disagreeing with an unsaturated field",
            bytes: with_hidden_directory(|c, size, x, _| {
                concat(&[
                    &eocd64(all_count(), size, c, b""),
                    &locator(c + size),
                    &eocd(u16::MAX, size as u32, x as u32, b""),
                ])
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64Disagrees(_))),
        },
        Attack {
            name: "saturated end record without zip64 records",
            bytes: edited(|bytes, built| {
                put_u16(bytes, built.end_offset + 10, u16::MAX);
                put_u16(bytes, built.end_offset + 8, u16::MAX);
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64Missing)),
        },
        Attack {
            name: "prepended stub, offsets unchanged",
            bytes: concat(&[b"#!/bin/sh\nexec python3 -m evil\n", &built.bytes]),
            refused_for: |e| {
                structure(e, |r| {
                    matches!(r, ZipRule::CentralDirectoryPlacement { .. })
                })
            },
        },
        Attack {
            name: "prepended stub, offsets adjusted",
            bytes: shift_after(&entries, &built, 0, b"#!/bin/sh\nexit 0\n", b""),
            refused_for: |e| {
                member(e, |r| {
                    matches!(r, ZipMemberRule::Misplaced { expected: 0, .. })
                })
            },
        },
        Attack {
            name: "junk between members",
            bytes: shift_after(&entries, &built, built.offsets[1], b"JUNKJUNK", b""),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Misplaced { .. })),
        },
        Attack {
            name: "a local record no central entry lists, between members",
            bytes: shift_after(
                &entries,
                &built,
                built.offsets[2],
                &Entry::file("demo/hidden.py", "import os\n").local_record(),
                b"",
            ),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Misplaced { .. })),
        },
        Attack {
            name: "a local record no central entry lists, after the members",
            bytes: shift_after(
                &entries,
                &built,
                built.cd_offset,
                &Entry::file("demo/hidden.py", "import os\n").local_record(),
                b"",
            ),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::DataAfterMembers { .. })),
        },
        Attack {
            name: "trailing data after the end record",
            bytes: concat(&[&built.bytes, b"trailing"]),
            refused_for: |e| {
                structure(e, |r| {
                    matches!(
                        r,
                        ZipRule::CommentLength {
                            declared: 0,
                            actual: 8
                        }
                    )
                })
            },
        },
        Attack {
            name: "comment length longer than the comment",
            bytes: edited(|bytes, built| {
                put_u16(bytes, built.end_offset + 20, 10);
                bytes.extend(b"12345");
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::CommentLength { .. })),
        },
        Attack {
            name: "comment length shorter than the comment",
            bytes: edited(|bytes, built| {
                put_u16(bytes, built.end_offset + 20, 2);
                bytes.extend(b"12345");
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::CommentLength { .. })),
        },
        Attack {
            name: "a fake end record in the comment",
            bytes: {
                let fake = eocd(0, 0, 0, b"");
                let mut bytes = built.bytes[..eocd_at as usize].to_vec();
                bytes.extend(eocd(
                    entries.len() as u16,
                    built.cd_size as u32,
                    built.cd_offset as u32,
                    &fake,
                ));
                bytes
            },
            refused_for: |e| matches!(e, ZipError::Structure(_)),
        },
        Attack {
            name: "an end record signature in the last 22 bytes",
            bytes: {
                let mut bytes = built.bytes[..eocd_at as usize].to_vec();
                bytes.extend(eocd(
                    entries.len() as u16,
                    built.cd_size as u32,
                    built.cd_offset as u32,
                    b"PK\x05\x06",
                ));
                bytes
            },
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::EndRecordTruncated)),
        },
        Attack {
            name: "central directory offset pointing into the members",
            bytes: edited(|bytes, built| {
                put_u32(bytes, built.end_offset + 16, built.cd_offset as u32 - 16);
            }),
            refused_for: |e| {
                structure(e, |r| {
                    matches!(r, ZipRule::CentralDirectoryPlacement { .. })
                })
            },
        },
        Attack {
            name: "central directory size hiding an entry",
            bytes: edited(|bytes, built| {
                // The end record counts one entry fewer and declares a shorter directory:
                // CPython reads by size, the zip crate by count.
                let first_len = entries[0].central_record(0).len() as u32;
                put_u16(bytes, built.end_offset + 8, entries.len() as u16 - 1);
                put_u16(bytes, built.end_offset + 10, entries.len() as u16 - 1);
                put_u32(
                    bytes,
                    built.end_offset + 12,
                    built.cd_size as u32 - first_len,
                );
                put_u32(
                    bytes,
                    built.end_offset + 16,
                    built.cd_offset as u32 + first_len,
                );
            }),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Misplaced { .. })),
        },
        Attack {
            name: "entry count lower than the directory holds",
            bytes: edited(|bytes, built| {
                put_u16(bytes, built.end_offset + 8, entries.len() as u16 - 1);
                put_u16(bytes, built.end_offset + 10, entries.len() as u16 - 1);
            }),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::CentralDirectoryEntries { .. })),
        },
        Attack {
            name: "several disks",
            bytes: edited(|bytes, built| put_u16(bytes, built.end_offset + 4, 1)),
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::MultiDisk)),
        },
        Attack {
            name: "a zip64 locator signature before an unsaturated end record",
            bytes: {
                let mut entries = wheel_entries();
                let last = entries.len() - 1;
                entries[last].comment = concat(&[b"PK\x06\x07", &[0; 16]]);
                build(&entries, b"", false).bytes
            },
            refused_for: |e| structure(e, |r| matches!(r, ZipRule::Zip64Unneeded)),
        },
    ];
    all.extend(members::attacks());
    all
}

/// Legitimate shapes of the wheel (and of archives in general), each to be accepted.
pub(crate) fn accepted() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        ("plain", wheel().bytes),
        ("empty", build(&[], b"", false).bytes),
        (
            "comment",
            build(&wheel_entries(), b"built by a test", false).bytes,
        ),
        (
            "zip64 end records",
            build(&wheel_entries(), b"", true).bytes,
        ),
        (
            "zip64 end records and a comment",
            build(&wheel_entries(), b"a comment", true).bytes,
        ),
        (
            "crate-written",
            crate::test_support::wheel_zip(
                &crate::test_support::wheel_files("demo", "1.0"),
                "demo-1.0.dist-info",
            ),
        ),
    ];
    type Variant = (&'static str, fn(Entry) -> Entry);
    let variants: [Variant; 9] = [
        ("stored", Entry::stored),
        ("descriptors", Entry::descriptor),
        ("zip64 local headers", Entry::zip64_local),
        ("zip64 local headers and descriptors", |e| {
            e.zip64_local().descriptor()
        }),
        ("zip64 central sizes", |e| {
            e.zip64_central([true, true, false])
        }),
        ("zip64 central offsets", |e| {
            e.zip64_central([false, false, true])
        }),
        ("zip64 everything", |e| {
            e.zip64_local().zip64_central([true, true, true])
        }),
        ("timestamp extras", |e| e.extra(0x5455, &[1, 0, 0, 0, 0])),
        ("member comments", |mut e| {
            e.comment = b"a comment".to_vec();
            e
        }),
    ];
    for (name, variant) in variants {
        let entries: Vec<Entry> = wheel_entries().into_iter().map(variant).collect();
        out.push((name, build(&entries, b"", false).bytes));
    }
    let mut entries = wheel_entries();
    entries.insert(0, Entry::dir("demo/"));
    entries.insert(1, Entry::file("demo/caf\u{e9}.py", "x = 1\n"));
    let name = entries[1].name.clone();
    let mut unicode_path = vec![1];
    unicode_path.extend(crc32fast::hash(&name).to_le_bytes());
    unicode_path.extend(&name);
    entries[1] = entries[1].clone().extra(0x7075, &unicode_path);
    entries.insert(2, Entry::file("demo/empty.py", ""));
    entries.insert(3, Entry::file("demo/empty-stored.py", "").stored());
    entries.insert(4, Entry::file("demo/run.sh", "#!/bin/sh\n").mode(0o100_755));
    out.push((
        "folders, UTF-8 names, empty and executable files",
        build(&entries, b"", false).bytes,
    ));
    out
}
