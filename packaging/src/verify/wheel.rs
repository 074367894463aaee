//! Verification of a built wheel.

use super::collect::open_artifact;
use super::record::{ExpectedHash, HashFieldError, Hasher, parse_hash, parse_record};
use super::{
    ArtifactError, ArtifactRule, artifact_size, check_name_version, read_bounded, stem_matches,
};
use crate::archive::path::display_name;
use crate::archive::zip::{StrictZip, ZipError, ZipMember};
use crate::filename::WheelFilename;
use crate::limits::ArtifactLimits;
use crate::metadata::{CoreMetadata, parse_headers};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

/// The `.data` schemes a wheel may install into.
const DATA_SCHEMES: &[&str] = &["purelib", "platlib", "headers", "scripts", "data"];

/// The archive as the checks read it.
type Zip<'f> = StrictZip<&'f File>;

/// A wheel that passed [`verify_wheel`].
#[derive(Debug, Clone)]
pub struct VerifiedWheel {
    /// The parsed file name.
    pub filename: WheelFilename,
    /// The `.dist-info` folder's name.
    pub dist_info: String,
    /// Its METADATA.
    pub metadata: CoreMetadata,
    /// WHEEL's `Root-Is-Purelib`.
    pub root_is_purelib: bool,
    /// Members (files and folder entries).
    pub members: usize,
    /// Bytes of member data, decompressed.
    pub unpacked_bytes: u64,
}

/// Verifies the wheel at `path`, opened without following a symlink.
///
/// See [`verify_wheel_file`] for the rules.
pub fn verify_wheel(path: &Path, limits: &ArtifactLimits) -> Result<VerifiedWheel, ArtifactError> {
    let (file, file_name) = open_artifact(path)?;
    verify_wheel_file(&file, file_name, limits)
}

/// Verifies an open wheel named `file_name`. The rules:
///
/// - the file name is a valid PEP 427 name, and the file within
///   [`ArtifactLimits::max_artifact_bytes`];
/// - a zip archive that every zip reader reads the same way (see
///   [`StrictZip`](crate::archive::zip::StrictZip): one end record ending the file, zip64
///   records only where needed and where expected, members contiguous from offset 0 to
///   the central directory, local headers agreeing with central ones, no duplicate names),
///   without names differing only in case;
/// - member names are UTF-8 (flagged as such when not ASCII), relative, without `..`, `.`,
///   empty components, backslashes or control characters; no symlink, device or FIFO
///   entries, no encryption; no file inside a file;
/// - members unpack to exactly their declared sizes and CRC-32, within the limits (checked
///   on the declared sizes before anything is decompressed);
/// - exactly one top-level `{name}-{version}.dist-info` folder matching the file name
///   (normalized name, PEP 440 version); METADATA parses with the same Name and Version;
///   WHEEL has `Wheel-Version: 1.x` and `Root-Is-Purelib: true|false`;
/// - RECORD lists every file once (except RECORD, RECORD.jws, RECORD.p7s), lists nothing
///   else, and every listed hash (sha256, sha384 or sha512) and size matches;
/// - at most one `.data` folder, named like the `.dist-info` folder, with only the schemes
///   purelib, platlib, headers, scripts and data.
pub fn verify_wheel_file(
    file: &File,
    file_name: &str,
    limits: &ArtifactLimits,
) -> Result<VerifiedWheel, ArtifactError> {
    let refuse = |rule| ArtifactError::new(display_name(file_name.as_bytes()), rule);
    let filename = WheelFilename::from_str(file_name).map_err(|e| {
        refuse(ArtifactRule::FileName {
            reason: format!("{e:#}"),
        })
    })?;
    artifact_size(file, limits).map_err(refuse)?;
    let zip = StrictZip::open(file, &limits.archive).map_err(|e| refuse(e.into()))?;
    WheelCheck { filename }.run(&zip).map_err(refuse)
}

/// One member as the name pass saw it.
struct Member<'z> {
    index: usize,
    zip: &'z ZipMember,
}

impl Member<'_> {
    fn path(&self) -> &crate::archive::RelPath {
        &self.zip.path
    }
}

struct WheelCheck {
    filename: WheelFilename,
}

impl WheelCheck {
    fn run(self, zip: &Zip<'_>) -> Result<VerifiedWheel, ArtifactRule> {
        let members = self.names(zip)?;
        let dist_info = self.dist_info(&members)?;
        self.data_dir(&members, &dist_info)?;

        let files: HashMap<&str, &Member> = members
            .iter()
            .filter(|m| !m.zip.is_dir)
            .map(|m| (m.path().as_str(), m))
            .collect();
        let read_member = |zip: &Zip<'_>, path: &str| -> Result<Vec<u8>, ArtifactRule> {
            let member = files.get(path).ok_or_else(|| ArtifactRule::MissingFile {
                path: path.to_string(),
            })?;
            read_bounded(zip.reader(member.index).expect("a member's index"), path)
        };

        let metadata_path = format!("{dist_info}/METADATA");
        let bytes = read_member(zip, &metadata_path)?;
        let metadata = CoreMetadata::parse(&bytes).map_err(|e| ArtifactRule::Metadata {
            path: metadata_path.clone(),
            reason: format!("{e:#}"),
        })?;
        check_name_version(
            &metadata_path,
            &metadata,
            &self.filename.name,
            &self.filename.version,
        )?;

        let wheel_path = format!("{dist_info}/WHEEL");
        let bytes = read_member(zip, &wheel_path)?;
        let root_is_purelib = check_wheel_file(&wheel_path, &bytes)?;

        let record_path = format!("{dist_info}/RECORD");
        let bytes = read_member(zip, &record_path)?;
        let exempt: BTreeSet<String> = ["RECORD", "RECORD.jws", "RECORD.p7s"]
            .iter()
            .map(|name| format!("{dist_info}/{name}"))
            .collect();
        let expected = check_record(&bytes, &files, &exempt)?;

        self.check_contents(zip, &members, &expected)?;
        Ok(VerifiedWheel {
            filename: self.filename,
            dist_info,
            metadata,
            root_is_purelib,
            members: members.len(),
            unpacked_bytes: zip.unpacked_size(),
        })
    }

    /// The name pass: names, types and places were checked by the zip reader; a wheel
    /// also may not hold two names differing only in case.
    fn names<'z>(&self, zip: &'z Zip<'_>) -> Result<Vec<Member<'z>>, ArtifactRule> {
        let mut folded: HashMap<String, &str> = HashMap::new();
        let mut members = Vec::with_capacity(zip.members().len());
        for (index, member) in zip.members().iter().enumerate() {
            let path = member.path.as_str();
            if let Some(other) = folded.insert(path.to_lowercase(), path)
                && other != path
            {
                return Err(ArtifactRule::CaseDuplicate {
                    member: path.to_string(),
                    other: other.to_string(),
                });
            }
            members.push(Member { index, zip: member });
        }
        Ok(members)
    }

    /// The single top-level `.dist-info` folder, matching the file name.
    fn dist_info(&self, members: &[Member]) -> Result<String, ArtifactRule> {
        let found: BTreeSet<&str> = top_level_folders(members)
            .filter(|top| top.ends_with(".dist-info"))
            .collect();
        let [dist_info] = found.iter().copied().collect::<Vec<_>>()[..] else {
            return Err(ArtifactRule::DistInfoCount {
                found: found.iter().map(|s| s.to_string()).collect(),
            });
        };
        let stem = dist_info.strip_suffix(".dist-info").unwrap_or(dist_info);
        if !stem_matches(stem, &self.filename.name, &self.filename.version) {
            return Err(ArtifactRule::DistInfoName {
                found: dist_info.to_string(),
                expected: self.filename.dist_info_dir(),
            });
        }
        Ok(dist_info.to_string())
    }

    /// At most one `.data` folder, named after the `.dist-info` folder, holding schemes.
    fn data_dir(&self, members: &[Member], dist_info: &str) -> Result<(), ArtifactRule> {
        let found: BTreeSet<&str> = top_level_folders(members)
            .filter(|top| top.ends_with(".data"))
            .collect();
        if found.len() > 1 {
            return Err(ArtifactRule::DataDirCount {
                found: found.iter().map(|s| s.to_string()).collect(),
            });
        }
        let Some(data) = found.first() else {
            return Ok(());
        };
        let expected = format!(
            "{}.data",
            dist_info.strip_suffix(".dist-info").unwrap_or(dist_info)
        );
        if *data != expected {
            return Err(ArtifactRule::DataDirName {
                found: data.to_string(),
                expected,
            });
        }
        for member in members.iter().filter(|m| m.path().top() == *data) {
            let is_dir = member.zip.is_dir;
            let mut components = member.path().components().skip(1);
            let scheme = components.next();
            let in_scheme = match scheme {
                None => is_dir,
                Some(scheme) => {
                    DATA_SCHEMES.contains(&scheme) && (is_dir || components.next().is_some())
                }
            };
            if !in_scheme {
                return Err(ArtifactRule::DataScheme {
                    member: member.path().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Streams every file through the zip reader (which checks sizes and CRC-32),
    /// comparing RECORD's hashes and sizes.
    fn check_contents(
        &self,
        zip: &Zip<'_>,
        members: &[Member<'_>],
        expected: &HashMap<String, Expected>,
    ) -> Result<(), ArtifactRule> {
        let mut buf = vec![0u8; 64 * 1024];
        for member in members.iter().filter(|m| !m.zip.is_dir) {
            let path = member.path().as_str();
            let mut reader = zip.reader(member.index).expect("a member's index");
            let want = expected.get(path);
            let mut hasher = want.map(|w| Hasher::new(w.hash.algorithm));
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ZipError::from(e).into()),
                };
                if n == 0 {
                    break;
                }
                if let Some(hasher) = &mut hasher {
                    hasher.update(&buf[..n]);
                }
            }
            if let (Some(want), Some(hasher)) = (want, hasher) {
                if hasher.finish() != want.hash.digest {
                    return Err(ArtifactRule::RecordHash {
                        path: path.to_string(),
                    });
                }
                if want.size != member.zip.size {
                    return Err(ArtifactRule::RecordSize {
                        path: path.to_string(),
                        recorded: want.size.to_string(),
                        actual: member.zip.size,
                    });
                }
            }
        }
        Ok(())
    }
}

/// First components of members that are folders (or lie inside one).
fn top_level_folders<'m>(members: &'m [Member<'_>]) -> impl Iterator<Item = &'m str> {
    members
        .iter()
        .filter(|m| m.zip.is_dir || m.path().depth() > 1)
        .map(|m| m.path().top())
}

/// Checks WHEEL; returns `Root-Is-Purelib`.
fn check_wheel_file(path: &str, bytes: &[u8]) -> Result<bool, ArtifactRule> {
    let metadata_error = |reason: String| ArtifactRule::Metadata {
        path: path.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| metadata_error(format!("not UTF-8: {e}")))?;
    let headers = parse_headers(text).map_err(|e| metadata_error(format!("{e:#}")))?;
    let one = |key: &str| -> Result<&str, ArtifactRule> {
        let mut values = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Err(metadata_error(format!("lacks the `{key}` field"))),
            (Some(_), Some(_)) => Err(metadata_error(format!("has more than one `{key}` field"))),
        }
    };
    let version = one("Wheel-Version")?;
    let supported = version.split_once('.').is_some_and(|(major, minor)| {
        major == "1" && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if !supported {
        return Err(ArtifactRule::WheelVersion {
            found: version.to_string(),
        });
    }
    let purelib = one("Root-Is-Purelib")?;
    match purelib.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ArtifactRule::RootIsPurelib {
            found: purelib.to_string(),
        }),
    }
}

/// What RECORD says about one file.
struct Expected {
    hash: ExpectedHash,
    size: u64,
}

/// Checks RECORD against the wheel's files: each listed once, nothing else listed, every
/// entry with a usable hash and size. Returns what to compare while streaming.
fn check_record(
    bytes: &[u8],
    files: &HashMap<&str, &Member>,
    exempt: &BTreeSet<String>,
) -> Result<HashMap<String, Expected>, ArtifactRule> {
    let rows = parse_record(bytes)
        .map_err(|(line, reason)| ArtifactRule::RecordSyntax { line, reason })?;
    let mut expected = HashMap::new();
    let mut listed = BTreeSet::new();
    for row in rows {
        if !listed.insert(row.path.clone()) {
            return Err(ArtifactRule::RecordDuplicate {
                path: display_name(row.path.as_bytes()),
            });
        }
        if exempt.contains(&row.path) {
            continue;
        }
        if !files.contains_key(row.path.as_str()) {
            return Err(ArtifactRule::RecordListsMissing {
                path: display_name(row.path.as_bytes()),
            });
        }
        let hash = parse_hash(&row.hash).map_err(|e| match e {
            HashFieldError::Empty => ArtifactRule::RecordNoHash {
                path: row.path.clone(),
            },
            HashFieldError::Algorithm(algorithm) => ArtifactRule::RecordHashAlgorithm {
                path: row.path.clone(),
                algorithm: display_name(algorithm.as_bytes()),
            },
            HashFieldError::Encoding => ArtifactRule::RecordSyntax {
                line: row.line,
                reason: format!("the hash of `{}` is not a valid digest", row.path),
            },
        })?;
        let size = row
            .size
            .parse::<u64>()
            .ok()
            .filter(|_| row.size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ArtifactRule::RecordSyntax {
                line: row.line,
                reason: format!(
                    "the size of `{}` is `{}`, not a number",
                    row.path,
                    display_name(row.size.as_bytes())
                ),
            })?;
        expected.insert(row.path, Expected { hash, size });
    }
    let mut unlisted: Vec<&str> = files
        .keys()
        .copied()
        .filter(|path| !exempt.contains(*path) && !expected.contains_key(*path))
        .collect();
    unlisted.sort_unstable();
    if let Some(member) = unlisted.first() {
        return Err(ArtifactRule::NotInRecord {
            member: member.to_string(),
        });
    }
    Ok(expected)
}

#[cfg(test)]
mod tests;
