//! Comparing two wheels: the one built from an sdist and one a stranger says was built from
//! it (`wasm-build verify`). Both are untrusted zips, so each passes [`verify_wheel_file`]
//! first; only then are their members read, from the same handles.
//!
//! - `identical`: the same bytes.
//! - `equivalent`: the same files with the same contents and executable bits, except that
//!   RECORD is compared as a set of rows, WHEEL without its `Generator` field and regardless
//!   of field order, and METADATA field by field (each field's values in order, and the
//!   body); zip order, timestamps, compression and folder entries aside.
//! - `differs`: anything else, with each difference naming the member.

use super::wheel::verify_wheel_file;
use super::{ArtifactError, MAX_METADATA_BYTES};
use crate::archive::zip::StrictZip;
use crate::limits::ArtifactLimits;
use crate::metadata::{fields_and_body, parse_headers};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// At most this many differences are listed; the rest are counted.
pub const MAX_DIFFERENCES: usize = 100;

/// How two wheels compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Identical,
    Equivalent,
    Differs,
}

/// What differs in one member (or the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// The wheels' file names.
    FileName,
    /// A file only the first wheel (the one built) has.
    OnlyInBuilt,
    /// A file only the second wheel (the one given) has.
    OnlyInGiven,
    /// A file's bytes.
    Content,
    /// Whether a file is executable.
    Executable,
    /// RECORD's rows, compared as a set.
    Record,
    /// A field of WHEEL (other than `Generator`).
    Wheel,
    /// A field of METADATA, or its body (the description).
    Metadata,
}

/// One difference between the wheels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The member (or the file name, for [`DifferenceKind::FileName`]).
    pub member: String,
    pub kind: DifferenceKind,
    /// What differs, for people.
    pub detail: String,
}

/// The outcome of [`compare_wheels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelComparison {
    pub verdict: Verdict,
    /// At most [`MAX_DIFFERENCES`], sorted by member.
    pub differences: Vec<Difference>,
    /// Differences found beyond those listed.
    pub more_differences: usize,
}

/// One file of a wheel as the comparison sees it.
struct FileMember {
    sha256: [u8; 32],
    size: u64,
    executable: bool,
    /// The contents, kept for RECORD, WHEEL and METADATA only.
    bytes: Option<Vec<u8>>,
}

/// A verified wheel's files.
struct WheelFiles {
    dist_info: String,
    sha256: [u8; 32],
    files: BTreeMap<String, FileMember>,
}

/// A wheel that could not be compared: verification refused it.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the wheel built was refused")]
    Built(#[source] ArtifactError),
    #[error("the given wheel was refused")]
    Given(#[source] ArtifactError),
}

/// Compares `built` with `given` (each an open wheel and its file name), after verifying
/// both with [`verify_wheel_file`].
pub fn compare_wheels(
    built: (&File, &str),
    given: (&File, &str),
    limits: &ArtifactLimits,
) -> Result<WheelComparison, CompareError> {
    let ours = read_wheel(built.0, built.1, limits).map_err(CompareError::Built)?;
    let theirs = read_wheel(given.0, given.1, limits).map_err(CompareError::Given)?;
    if ours.sha256 == theirs.sha256 && built.1 == given.1 {
        return Ok(WheelComparison {
            verdict: Verdict::Identical,
            differences: Vec::new(),
            more_differences: 0,
        });
    }
    let mut differences = Vec::new();
    if built.1 != given.1 {
        differences.push(Difference {
            member: given.1.to_string(),
            kind: DifferenceKind::FileName,
            detail: format!("the wheel built is named `{}`", built.1),
        });
    }
    let paths: BTreeSet<&String> = ours.files.keys().chain(theirs.files.keys()).collect();
    for path in paths {
        match (ours.files.get(path), theirs.files.get(path)) {
            (Some(_), None) => differences.push(difference(
                path,
                DifferenceKind::OnlyInBuilt,
                "only the wheel built has it".into(),
            )),
            (None, Some(_)) => differences.push(difference(
                path,
                DifferenceKind::OnlyInGiven,
                "only the given wheel has it".into(),
            )),
            (Some(a), Some(b)) => {
                compare_member(path, a, b, &ours.dist_info, &mut differences);
            }
            (None, None) => {}
        }
    }
    let verdict = if differences.is_empty() {
        Verdict::Equivalent
    } else {
        Verdict::Differs
    };
    let more_differences = differences.len().saturating_sub(MAX_DIFFERENCES);
    differences.truncate(MAX_DIFFERENCES);
    Ok(WheelComparison {
        verdict,
        differences,
        more_differences,
    })
}

fn difference(member: &str, kind: DifferenceKind, detail: String) -> Difference {
    Difference {
        member: member.to_string(),
        kind,
        detail,
    }
}

/// The differences between two files of the same path.
fn compare_member(
    path: &str,
    a: &FileMember,
    b: &FileMember,
    dist_info: &str,
    out: &mut Vec<Difference>,
) {
    if a.executable != b.executable {
        out.push(difference(
            path,
            DifferenceKind::Executable,
            format!(
                "executable in the {} wheel only",
                if a.executable { "built" } else { "given" }
            ),
        ));
    }
    if a.sha256 == b.sha256 {
        return;
    }
    let special = path
        .strip_prefix(dist_info)
        .and_then(|rest| rest.strip_prefix('/'));
    let (Some(ab), Some(bb)) = (&a.bytes, &b.bytes) else {
        out.push(content_difference(path, a, b));
        return;
    };
    match special {
        Some("RECORD") => compare_record(path, dist_info, ab, bb, out),
        Some("WHEEL") => compare_wheel_file(path, ab, bb, out),
        Some("METADATA") => compare_metadata(path, ab, bb, out),
        _ => out.push(content_difference(path, a, b)),
    }
}

fn content_difference(path: &str, a: &FileMember, b: &FileMember) -> Difference {
    let detail = if a.size == b.size {
        format!("different bytes (both {} bytes)", a.size)
    } else {
        format!("different bytes ({} bytes built, {} given)", a.size, b.size)
    };
    difference(path, DifferenceKind::Content, detail)
}

/// RECORD as a set of rows (path, hash, size). The rows of RECORD, WHEEL and METADATA are
/// left out: those files are compared by their own rules (their bytes may differ in what
/// does not count), and their rows follow their bytes.
fn compare_record(path: &str, dist_info: &str, a: &[u8], b: &[u8], out: &mut Vec<Difference>) {
    let own: Vec<String> = ["RECORD", "WHEEL", "METADATA"]
        .iter()
        .map(|name| format!("{dist_info}/{name}"))
        .collect();
    let rows = |bytes: &[u8]| -> BTreeSet<(String, String, String)> {
        // Both passed verification, so both parse.
        super::record::parse_record(bytes)
            .unwrap_or_default()
            .into_iter()
            .filter(|row| !own.contains(&row.path))
            .map(|row| (row.path, row.hash, row.size))
            .collect()
    };
    let (ours, theirs) = (rows(a), rows(b));
    for (row, side) in ours
        .difference(&theirs)
        .map(|r| (r, "built"))
        .chain(theirs.difference(&ours).map(|r| (r, "given")))
    {
        out.push(difference(
            path,
            DifferenceKind::Record,
            format!(
                "only the {side} wheel's RECORD has the row `{},{},{}`",
                row.0, row.1, row.2
            ),
        ));
    }
}

/// WHEEL's fields, `Generator` aside, in any order.
fn compare_wheel_file(path: &str, a: &[u8], b: &[u8], out: &mut Vec<Difference>) {
    let fields = |bytes: &[u8]| -> BTreeMap<String, Vec<String>> {
        let text = String::from_utf8_lossy(bytes);
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in parse_headers(&text).unwrap_or_default() {
            let key = key.to_ascii_lowercase();
            if key != "generator" {
                map.entry(key).or_default().push(value);
            }
        }
        for values in map.values_mut() {
            values.sort();
        }
        map
    };
    let (ours, theirs) = (fields(a), fields(b));
    field_differences(path, DifferenceKind::Wheel, &ours, &theirs, out);
    if ours.is_empty() && theirs.is_empty() && a != b {
        out.push(difference(
            path,
            DifferenceKind::Wheel,
            "different bytes".into(),
        ));
    }
}

/// One difference per field whose values differ between the built (`ours`) and the given
/// (`theirs`) file.
fn field_differences(
    path: &str,
    kind: DifferenceKind,
    ours: &BTreeMap<String, Vec<String>>,
    theirs: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let (x, y) = (ours.get(key), theirs.get(key));
        if x != y {
            out.push(difference(
                path,
                kind,
                format!(
                    "field `{key}`: {} built, {} given",
                    shown(x.map(Vec::as_slice)),
                    shown(y.map(Vec::as_slice))
                ),
            ));
        }
    }
}

/// METADATA field by field: each field's values in order, then the body.
fn compare_metadata(path: &str, a: &[u8], b: &[u8], out: &mut Vec<Difference>) {
    let split = |bytes: &[u8]| {
        let (headers, body) = fields_and_body(bytes);
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            map.entry(name.to_ascii_lowercase())
                .or_default()
                .push(String::from_utf8_lossy(&value).into_owned());
        }
        (map, body)
    };
    let ((ours, our_body), (theirs, their_body)) = (split(a), split(b));
    field_differences(path, DifferenceKind::Metadata, &ours, &theirs, out);
    if our_body != their_body {
        out.push(difference(
            path,
            DifferenceKind::Metadata,
            format!(
                "the description (body) differs: {} bytes built, {} given",
                our_body.len(),
                their_body.len()
            ),
        ));
    }
}

/// Values for a message: `absent`, or each in backquotes, shortened.
fn shown(values: Option<&[String]>) -> String {
    let Some(values) = values else {
        return "absent".into();
    };
    let mut text = values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if text.chars().count() > 200 {
        text = text.chars().take(200).collect::<String>() + "…";
    }
    text
}

/// Verifies the wheel, then reads each file's digest (and the contents of RECORD, WHEEL
/// and METADATA) from the same handle.
fn read_wheel(
    file: &File,
    file_name: &str,
    limits: &ArtifactLimits,
) -> Result<WheelFiles, ArtifactError> {
    let verified = verify_wheel_file(file, file_name, limits)?;
    let refuse = |reason: String| {
        ArtifactError::new(
            crate::archive::path::display_name(file_name.as_bytes()),
            super::ArtifactRule::Io { reason },
        )
    };
    let io = |e: io::Error| refuse(e.to_string());
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let sha256 = {
        let mut hasher = Sha256::new();
        io::copy(&mut reader, &mut HashWriter(&mut hasher)).map_err(io)?;
        hasher.finalize().into()
    };
    let zip = StrictZip::open(file, &limits.archive).map_err(|e| refuse(e.to_string()))?;
    let kept: BTreeSet<String> = ["RECORD", "WHEEL", "METADATA"]
        .iter()
        .map(|name| format!("{}/{name}", verified.dist_info))
        .collect();
    let mut files = BTreeMap::new();
    for (index, member) in zip.members().iter().enumerate() {
        if member.is_dir {
            continue;
        }
        let name = member.name.clone();
        let executable = member.is_executable();
        let mut entry = zip
            .reader(index)
            .ok_or_else(|| refuse(format!("`{name}` went missing from the zip")))?;
        let keep = kept.contains(&name);
        let mut hasher = Sha256::new();
        let mut bytes = keep.then(Vec::new);
        let mut size = 0u64;
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let n = entry.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buffer[..n]);
            if let Some(bytes) = &mut bytes {
                if size > MAX_METADATA_BYTES {
                    return Err(refuse(format!("{name} grew after verification")));
                }
                bytes.extend_from_slice(&buffer[..n]);
            }
        }
        files.insert(
            name,
            FileMember {
                sha256: hasher.finalize().into(),
                size,
                executable,
                bytes,
            },
        );
    }
    Ok(WheelFiles {
        dist_info: verified.dist_info,
        sha256,
        files,
    })
}

/// Feeds what is written to a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
