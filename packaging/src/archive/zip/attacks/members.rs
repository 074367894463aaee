//! Attacks on single members: headers that disagree, names read differently, extra
//! fields, data descriptors and data.

use super::*;
use crate::archive::{MemberRule, NameRule};

/// Every member attack; each must be refused for its rule.
pub(super) fn attacks() -> Vec<Attack> {
    let entries = wheel_entries();
    vec![
        Attack {
            name: "local and central names differ",
            bytes: edited(|bytes, built| {
                let at = built.offsets[0] as usize + 30;
                bytes[at] = b'D';
            }),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::LocalMismatch("name"))),
        },
        Attack {
            name: "local and central flags differ",
            bytes: edited(|bytes, built| put_u16(bytes, built.offsets[0] + 6, 1 << 1)),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::LocalMismatch("flags"))),
        },
        Attack {
            name: "local and central sizes differ",
            bytes: edited(|bytes, built| put_u32(bytes, built.offsets[1] + 22, 1)),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::LocalMismatch("sizes"))),
        },
        Attack {
            name: "local and central compression methods differ",
            bytes: edited(|bytes, built| put_u16(bytes, built.offsets[1] + 8, 0)),
            refused_for: |e| {
                member(e, |r| {
                    matches!(r, ZipMemberRule::LocalMismatch("compression method"))
                })
            },
        },
        Attack {
            name: "central entries out of local order",
            bytes: {
                let (bytes, offsets) = locals(&entries, 0);
                let mut order: Vec<usize> = (0..entries.len()).collect();
                order.swap(0, 1);
                let reordered: Vec<Entry> = order.iter().map(|i| entries[*i].clone()).collect();
                let reordered_offsets: Vec<u64> = order.iter().map(|i| offsets[*i]).collect();
                let cd = central(&reordered, &reordered_offsets);
                let end = eocd(
                    entries.len() as u16,
                    cd.len() as u32,
                    bytes.len() as u32,
                    b"",
                );
                concat(&[&bytes, &cd, &end])
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Misplaced { .. })),
        },
        Attack {
            name: "two central entries for one local record",
            bytes: {
                let (bytes, offsets) = locals(&entries, 0);
                let mut listed = entries.clone();
                let mut listed_offsets = offsets.clone();
                listed.insert(1, entries[0].clone());
                listed_offsets.insert(1, offsets[0]);
                let cd = central(&listed, &listed_offsets);
                let end = eocd(
                    listed.len() as u16,
                    cd.len() as u32,
                    bytes.len() as u32,
                    b"",
                );
                concat(&[&bytes, &cd, &end])
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Duplicate)),
        },
        Attack {
            name: "duplicate names",
            bytes: {
                let mut entries = wheel_entries();
                let mut twin = entries[0].clone();
                twin.data = b"import os\n".to_vec();
                entries.insert(1, twin);
                build(&entries, b"", false).bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Duplicate)),
        },
        Attack {
            name: "a Unicode path field naming another file",
            bytes: wheel_with(0, |entry| {
                let mut data = vec![1];
                data.extend(crc32fast::hash(&entry.name).to_le_bytes());
                data.extend(b"demo/evil_.py");
                *entry = entry.clone().extra(0x7075, &data);
            }),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::AmbiguousName)),
        },
        Attack {
            name: "a non-ASCII name without the UTF-8 flag",
            bytes: {
                let mut entries = wheel_entries();
                let mut odd = Entry::file("demo/\u{e9}.py", "x = 1\n");
                odd.flags = 0;
                entries.insert(0, odd);
                build(&entries, b"", false).bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::AmbiguousName)),
        },
        Attack {
            name: "a NUL in a name",
            bytes: {
                let mut entries = wheel_entries();
                entries.insert(0, Entry::file("demo/evil.pth\0.txt", "import os\n"));
                build(&entries, b"", false).bytes
            },
            refused_for: |e| {
                member(e, |r| {
                    *r == ZipMemberRule::Name(MemberRule::Name(NameRule::Nul))
                })
            },
        },
        Attack {
            name: "a backslash path",
            bytes: {
                let mut entries = wheel_entries();
                entries.insert(0, Entry::file("demo\\..\\..\\evil.py", "x\n"));
                build(&entries, b"", false).bytes
            },
            refused_for: |e| {
                member(e, |r| {
                    *r == ZipMemberRule::Name(MemberRule::Name(NameRule::Backslash))
                })
            },
        },
        Attack {
            name: "a zip64 extra field though nothing is saturated",
            bytes: wheel_with(1, |entry| {
                entry.central_extra = extra_field(1, &7u64.to_le_bytes());
            }),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Zip64Extra(_))),
        },
        Attack {
            name: "a zip64 extra field with more values than saturated fields",
            bytes: {
                // Both sizes in the zip64 field, but only one saturated.
                let mut entries = wheel_entries();
                entries[1] = entries[1].clone().zip64_central([true, true, false]);
                let mut built = build(&entries, b"", false);
                let at = built.central[1] + 20;
                put_u32(&mut built.bytes, at, entries[1].packed().len() as u32);
                built.bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Zip64Extra(_))),
        },
        Attack {
            name: "two zip64 extra fields",
            bytes: wheel_with(1, |entry| {
                *entry = entry.clone().zip64_central([true, false, false]);
                entry.central_extra = extra_field(1, &3000u64.to_le_bytes());
            }),
            refused_for: |e| {
                member(e, |r| {
                    matches!(r, ZipMemberRule::RepeatedExtra { id: 1, .. })
                })
            },
        },
        Attack {
            name: "a malformed extra field block",
            bytes: wheel_with(1, |entry| entry.local_extra = vec![0x55, 0x54, 9]),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::MalformedExtra(_))),
        },
        Attack {
            name: "a data descriptor disagreeing on sizes",
            bytes: {
                let mut entries = wheel_entries();
                entries[1] = entries[1].clone().descriptor();
                let mut built = build(&entries, b"", false);
                let at = built.offsets[2] - 4;
                put_u32(&mut built.bytes, at, 1);
                built.bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Descriptor(_))),
        },
        Attack {
            name: "a data descriptor without its signature",
            bytes: {
                let mut entries = wheel_entries();
                entries[1] = entries[1].clone().descriptor();
                let mut built = build(&entries, b"", false);
                let at = built.offsets[2] - 16;
                put_u32(&mut built.bytes, at, 0);
                built.bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Descriptor(_))),
        },
        Attack {
            name: "stored data with a data descriptor",
            bytes: wheel_with(1, |entry| *entry = entry.clone().stored().descriptor()),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::StoredWithDescriptor)),
        },
        Attack {
            name: "garbage after the deflate stream",
            bytes: {
                let mut entries = wheel_entries();
                entries.truncate(1);
                let mut local = entries[0].local_record();
                let packed = entries[0].packed().len() as u32;
                put_u32(&mut local, 18, packed + 4);
                local.extend(b"evil");
                let mut cd = entries[0].central_record(0);
                put_u32(&mut cd, 20, packed + 4);
                let end = eocd(1, cd.len() as u32, local.len() as u32, b"");
                concat(&[&local, &cd, &end])
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Deflate { .. })),
        },
        Attack {
            name: "a declared size larger than the data",
            bytes: {
                let mut built = wheel();
                let (local, central) = (built.offsets[0], built.central[0]);
                put_u32(&mut built.bytes, local + 22, 1000);
                put_u32(&mut built.bytes, central + 24, 1000);
                built.bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::TooSmall { .. })),
        },
        Attack {
            name: "a wrong CRC-32",
            bytes: {
                let mut built = wheel();
                let (local, central) = (built.offsets[0], built.central[0]);
                put_u32(&mut built.bytes, local + 14, 1);
                put_u32(&mut built.bytes, central + 16, 1);
                built.bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Crc)),
        },
        Attack {
            name: "an encrypted member",
            bytes: wheel_with(0, |entry| entry.flags |= 1),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Encrypted)),
        },
        Attack {
            name: "a version needed above 6.3",
            bytes: wheel_with(0, |entry| entry.needed = 64),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Version(64))),
        },
        Attack {
            name: "a bzip2 member",
            bytes: wheel_with(0, |entry| entry.method = 12),
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Method(12))),
        },
        Attack {
            name: "a symlink",
            bytes: {
                let mut entries = wheel_entries();
                entries.insert(0, Entry::file("demo/passwd", "/etc/passwd").mode(0o120_777));
                build(&entries, b"", false).bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::Symlink)),
        },
        Attack {
            name: "a folder holding data",
            bytes: {
                let mut entries = wheel_entries();
                let mut dir = Entry::dir("demo/sub/");
                dir.data = b"hidden".to_vec();
                entries.insert(0, dir);
                build(&entries, b"", false).bytes
            },
            refused_for: |e| member(e, |r| matches!(r, ZipMemberRule::FolderWithData)),
        },
    ]
}
