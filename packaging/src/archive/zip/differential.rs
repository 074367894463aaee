//! The differential check: every archive the strict reader accepts, CPython's `zipfile`
//! (each of python3.13, 3.12, 3.11 and python3 found on PATH; one process per interpreter
//! for a whole batch) reads with the same member names and the same bytes. Crafted
//! attacks, legitimate shapes, archives CPython itself wrote, and random archives with
//! random damage.

use super::attacks::{accepted, attacks, two_zip64_end_records};
use super::craft::{Entry, build, strict_view, zip_crate_view};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Reads every archive of a folder, one JSON line per archive: its members' names and
/// sha256, or the error.
const READER: &str = r#"
import hashlib, json, os, sys, warnings, zipfile
warnings.simplefilter("ignore")
folder = sys.argv[1]
for case in sorted(os.listdir(folder)):
    try:
        with zipfile.ZipFile(os.path.join(folder, case)) as z:
            members = []
            for info in z.infolist():
                with z.open(info) as f:
                    members.append([info.filename, hashlib.sha256(f.read()).hexdigest()])
        print(json.dumps({"case": case, "members": members}))
    except Exception as e:
        print(json.dumps({"case": case, "error": "%s: %s" % (type(e).__name__, e)}))
"#;

/// Writes archives the ways CPython writes them (wheel builders use `zipfile`).
const WRITER: &str = r#"
import io, os, sys, zipfile
folder = sys.argv[1]

class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def write(self, b): return self.f.write(b)

def members(z, stream, zip64=False):
    z.writestr("pkg/", b"")
    z.writestr("pkg/__init__.py", b"print('hi')\n" * 50)
    if not stream:
        # Streamed, a stored member gets a data descriptor: refused (see StoredWithDescriptor).
        z.writestr(zipfile.ZipInfo("pkg/stored.bin", (2020, 1, 1, 0, 0, 0)), bytes(range(256)))
    z.writestr("pkg/caf\u00e9.py", "x = '\u00e9'\n")
    z.writestr("pkg/empty.txt", b"")
    with z.open("pkg/streamed.txt", "w", force_zip64=zip64) as f:
        f.write(b"streamed " * 1000)

def write(name, compression, stream=False, zip64=False, comment=b""):
    with open(os.path.join(folder, name), "wb") as raw:
        target = Unseekable(raw) if stream else raw
        with zipfile.ZipFile(target, "w", compression) as z:
            members(z, stream, zip64)
            z.comment = comment

write("deflated.zip", zipfile.ZIP_DEFLATED)
write("stored.zip", zipfile.ZIP_STORED)
write("commented.zip", zipfile.ZIP_DEFLATED, comment=b"a comment")
write("streamed.zip", zipfile.ZIP_DEFLATED, stream=True)
write("forced-zip64.zip", zipfile.ZIP_DEFLATED, zip64=True)
write("streamed-zip64.zip", zipfile.ZIP_DEFLATED, stream=True, zip64=True)
with zipfile.ZipFile(os.path.join(folder, "deflated.zip"), "a") as z:
    z.writestr("pkg/appended.py", b"appended = True\n")
"#;

/// A CPython interpreter to compare with.
struct Python {
    program: String,
    version: String,
}

/// The interpreters to try: `WASM_BUILD_TEST_PYTHONS` (`:`-separated) if set; otherwise
/// python3.13, 3.12, 3.11 and python3 on PATH, and those pyenv installed (whose shims
/// only run the selected version).
fn candidates() -> Vec<String> {
    if let Ok(list) = std::env::var("WASM_BUILD_TEST_PYTHONS") {
        return list.split(':').map(str::to_string).collect();
    }
    let mut out: Vec<String> = ["python3.13", "python3.12", "python3.11", "python3"]
        .map(String::from)
        .to_vec();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    if let Some(Ok(versions)) = pyenv.map(|root| std::fs::read_dir(root.join("versions"))) {
        let mut found: Vec<String> = versions
            .flatten()
            .map(|entry| entry.path().join("bin/python3"))
            .filter(|python| python.exists())
            .map(|python| python.to_string_lossy().into_owned())
            .collect();
        found.sort();
        found.reverse();
        out.extend(found);
    }
    out
}

/// Every distinct CPython version from 3.11 on among [`candidates`]. At least one is
/// needed.
fn interpreters() -> Vec<Python> {
    let mut found: Vec<Python> = Vec::new();
    for program in candidates() {
        let Ok(output) = Command::new(&program)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output()
        else {
            continue;
        };
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let supported = version
            .strip_prefix("3.")
            .and_then(|minor| minor.parse::<u32>().ok())
            .is_some_and(|minor| minor >= 11);
        if output.status.success() && supported && !found.iter().any(|p| p.version == version) {
            found.push(Python { program, version });
        }
    }
    found.sort_by_key(|python| std::cmp::Reverse(python.version.clone()));
    assert!(
        !found.is_empty(),
        "the zip differential test needs CPython 3.11 or later (python3.13 or python3) on PATH"
    );
    found
}

/// A member as compared: name and sha256 of its bytes.
type View = Vec<(String, String)>;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// CPython's view of each archive (by index), or its error.
fn python_views(python: &Python, archives: &[Vec<u8>]) -> Vec<Result<View, String>> {
    let folder = tempfile::tempdir().unwrap();
    for (i, bytes) in archives.iter().enumerate() {
        std::fs::write(folder.path().join(format!("{i:06}.zip")), bytes).unwrap();
    }
    let output = Command::new(&python.program)
        .args(["-I", "-c", READER])
        .arg(folder.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} failed: {}",
        python.program,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut views: BTreeMap<String, Result<View, String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let case = value["case"].as_str().unwrap().to_string();
        let view = match value.get("members") {
            Some(members) => Ok(members
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let name = m[0].as_str().unwrap().to_string();
                    (name, m[1].as_str().unwrap().to_string())
                })
                .collect()),
            None => Err(value["error"].as_str().unwrap_or("?").to_string()),
        };
        views.insert(case, view);
    }
    assert_eq!(views.len(), archives.len(), "one answer per archive");
    views.into_values().collect()
}

/// The strict reader's view, or `None` when it refuses the archive.
fn strict(bytes: &[u8]) -> Option<View> {
    strict_view(bytes).ok().map(|members| {
        members
            .into_iter()
            .map(|(name, data)| (name, sha256_hex(&data)))
            .collect()
    })
}

/// Checks every accepted archive against every interpreter; returns the disagreements
/// (labelled) and how many archives were accepted.
fn disagreements(labels: &[String], archives: &[Vec<u8>]) -> (Vec<String>, usize) {
    let ours: Vec<Option<View>> = archives.iter().map(|bytes| strict(bytes)).collect();
    let mut problems = Vec::new();
    for python in interpreters() {
        let theirs = python_views(&python, archives);
        for ((label, ours), theirs) in labels.iter().zip(&ours).zip(&theirs) {
            if let Some(ours) = ours
                && Ok(ours) != theirs.as_ref()
            {
                problems.push(format!(
                    "{label}: accepted as {ours:?}, but CPython {} reads {theirs:?}",
                    python.version
                ));
            }
        }
    }
    for ((label, ours), bytes) in labels.iter().zip(&ours).zip(archives) {
        if let Some(ours) = ours {
            let crate_view = zip_crate_view(bytes).map(|members| {
                members
                    .into_iter()
                    .map(|(name, data)| (name, sha256_hex(&data)))
                    .collect::<View>()
            });
            if Ok(ours) != crate_view.as_ref() {
                problems.push(format!(
                    "{label}: accepted as {ours:?}, but the zip crate reads {crate_view:?}"
                ));
            }
        }
    }
    let accepted = ours.iter().filter(|view| view.is_some()).count();
    (problems, accepted)
}

/// Archives written by CPython's `zipfile` in each way a wheel builder may use it.
fn written_by_cpython() -> Vec<(String, Vec<u8>)> {
    let python = &interpreters()[0];
    let folder = tempfile::tempdir().unwrap();
    let status = Command::new(&python.program)
        .args(["-I", "-c", WRITER])
        .arg(folder.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (format!("CPython {} {name}", python.version), read(&path))
        })
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn crafted_and_cpython_written_archives_read_the_same_in_cpython() {
    let mut labels = Vec::new();
    let mut archives = Vec::new();
    for attack in attacks() {
        labels.push(format!("attack: {}", attack.name));
        archives.push(attack.bytes);
    }
    let legitimate: Vec<(String, Vec<u8>)> = accepted()
        .into_iter()
        .map(|(name, bytes)| (format!("shape: {name}"), bytes))
        .chain(written_by_cpython())
        .collect();
    for (label, bytes) in &legitimate {
        assert!(
            strict(bytes).is_some(),
            "{label}: refused: {:?}",
            strict_view(bytes).err()
        );
        labels.push(label.clone());
        archives.push(bytes.clone());
    }
    for (label, bytes) in labels.iter().zip(&archives) {
        if label.starts_with("attack: ") {
            assert!(strict(bytes).is_none(), "{label}: accepted");
        }
    }
    let (problems, _) = disagreements(&labels, &archives);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The repro is an attack indeed: CPython sees the hidden members, the zip crate (the
/// verifier's reader before the strict one) does not.
#[test]
fn the_issue_14_repro_shows_cpython_other_members() {
    let bytes = two_zip64_end_records();
    let crate_names: Vec<String> = zip_crate_view(&bytes)
        .expect("the zip crate reads the repro")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(!crate_names.iter().any(|n| n.contains("evil")));
    for python in interpreters() {
        let view = python_views(&python, std::slice::from_ref(&bytes))
            .remove(0)
            .unwrap_or_else(|e| panic!("CPython {} refused the repro: {e}", python.version));
        let names: Vec<&str> = view.iter().map(|(name, _)| name.as_str()).collect();
        assert!(
            names.contains(&"demo-1.0.data/purelib/evil.pth") && names.contains(&"../../evil.py"),
            "CPython {}: {names:?}",
            python.version
        );
    }
}

/// A random archive: members in random legitimate shapes, then a little random damage.
#[derive(Debug, Clone)]
struct RandomArchive {
    entries: Vec<Entry>,
    comment: Vec<u8>,
    zip64_end: bool,
    damage: Vec<Damage>,
}

#[derive(Debug, Clone)]
enum Damage {
    /// XOR a byte (position as a fraction of the length).
    Flip(prop::sample::Index, u8),
    /// Set a 16- or 32-bit field near a signature to a boundary value.
    Field(prop::sample::Index, u8, u32),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    Append(Vec<u8>),
}

fn entry() -> impl Strategy<Value = Entry> {
    let name = prop_oneof![
        Just("pkg/a.py".to_string()),
        Just("pkg/b.py".to_string()),
        Just("pkg/sub/c.txt".to_string()),
        Just("pkg/caf\u{e9}.py".to_string()),
        Just("pkg/".to_string()),
        Just("top.txt".to_string()),
    ];
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0usize..5000).prop_map(|n| b"abc".repeat(n)),
    ];
    (name, data, any::<[bool; 8]>(), 0u8..4).prop_map(|(name, data, flags, extra)| {
        let mut entry = if name.ends_with('/') {
            Entry::dir(&name)
        } else {
            Entry::file(&name, data)
        };
        if flags[0] {
            entry = entry.stored();
        } else if flags[1] && entry.method == 8 {
            entry = entry.descriptor();
        }
        if flags[2] {
            entry = entry.zip64_local();
        }
        entry = entry.zip64_central([flags[3], flags[4], flags[5]]);
        if flags[6] {
            entry.comment = b"member comment".to_vec();
        }
        if flags[7] {
            entry = entry.mode(0o100_755);
        }
        match extra {
            1 => entry.extra(0x5455, &[1, 0, 0, 0, 0]),
            2 => {
                let mut data = vec![1];
                data.extend(crc32fast::hash(&entry.name).to_le_bytes());
                data.extend(entry.name.clone());
                entry.extra(0x7075, &data)
            }
            _ => entry,
        }
    })
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = proptest::collection::vec(any::<u8>(), 1..24);
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        3 => (any::<prop::sample::Index>(), 0u8..4, prop_oneof![Just(0), Just(1), Just(0xFFFF), Just(u32::MAX)])
            .prop_map(|(i, w, v)| Damage::Field(i, w, v)),
        1 => (any::<prop::sample::Index>(), bytes.clone()).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..64).prop_map(|(i, n)| Damage::Remove(i, n)),
        1 => bytes.prop_map(Damage::Append),
    ]
}

fn random_archive() -> impl Strategy<Value = RandomArchive> {
    (
        proptest::collection::vec(entry(), 0..6),
        prop_oneof![3 => Just(Vec::new()), 1 => Just(b"comment".to_vec())],
        any::<bool>(),
        prop_oneof![
            3 => Just(Vec::new()),
            2 => proptest::collection::vec(damage(), 1..3),
        ],
    )
        .prop_map(|(entries, comment, zip64_end, damage)| RandomArchive {
            entries,
            comment,
            zip64_end,
            damage,
        })
}

impl RandomArchive {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = build(&self.entries, &self.comment, self.zip64_end).bytes;
        for damage in &self.damage {
            let len = bytes.len().max(1);
            match damage {
                Damage::Flip(at, x) => {
                    let at = at.index(len);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= x;
                    }
                }
                Damage::Field(at, width, value) => {
                    // Fields sit at even offsets after a signature more often than not.
                    let at = at.index(len) & !1;
                    let field = if *width < 2 {
                        (*value as u16).to_le_bytes().to_vec()
                    } else {
                        value.to_le_bytes().to_vec()
                    };
                    if at + field.len() <= bytes.len() {
                        bytes[at..at + field.len()].copy_from_slice(&field);
                    }
                }
                Damage::Insert(at, insert) => {
                    let at = at.index(len + 1).min(bytes.len());
                    bytes.splice(at..at, insert.iter().copied());
                }
                Damage::Remove(at, n) => {
                    let at = at.index(len).min(bytes.len());
                    let end = (at + n).min(bytes.len());
                    bytes.drain(at..end);
                }
                Damage::Append(extra) => bytes.extend(extra),
            }
        }
        bytes
    }
}

/// Random archives, batched through one CPython process per interpreter: whatever the
/// strict reader accepts, CPython and the zip crate read the same way.
#[test]
fn random_archives_the_strict_reader_accepts_read_the_same_in_cpython() {
    const CASES: usize = 600;
    let mut runner = TestRunner::default();
    let strategy = random_archive();
    let cases: Vec<RandomArchive> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let archives: Vec<Vec<u8>> = cases.iter().map(RandomArchive::bytes).collect();
    let labels: Vec<String> = cases.iter().map(|case| format!("{case:?}")).collect();
    let (problems, accepted) = disagreements(&labels, &archives);
    assert!(
        problems.is_empty(),
        "{} disagreements, the first:\n{}",
        problems.len(),
        problems
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator must keep producing archives the reader accepts, or this proves little.
    assert!(accepted >= CASES / 4, "only {accepted} of {CASES} accepted");
}
