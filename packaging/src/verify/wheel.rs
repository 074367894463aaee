//! Verification of a built wheel.

use super::collect::open_artifact;
use super::record::{ExpectedHash, HashFieldError, Hasher, parse_hash, parse_record};
use super::{
    ArtifactError, ArtifactRule, artifact_size, check_name_version, read_bounded, stem_matches,
};
use crate::archive::MemberRule;
use crate::archive::path::{Dialect, RelPath, display_name, parse_member_name};
use crate::archive::tree::{Node, Tree};
use crate::filename::WheelFilename;
use crate::limits::{ArtifactLimits, LimitExceeded, Meter};
use crate::metadata::{CoreMetadata, parse_headers};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;
use zip::ZipArchive;

/// The `.data` schemes a wheel may install into.
const DATA_SCHEMES: &[&str] = &["purelib", "platlib", "headers", "scripts", "data"];

/// The zip "language encoding" flag: the name is UTF-8.
const UTF8_FLAG: u16 = 1 << 11;

/// File type bits of a unix mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

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
/// - a valid zip whose local headers agree with its central directory (no overlapping or
///   hidden entries), without duplicate names (also none differing only in case);
/// - member names are UTF-8 (flagged as such when not ASCII), relative, without `..`, `.`,
///   empty components, backslashes or control characters; no symlink, device or FIFO
///   entries, no encryption; no file inside a file;
/// - members unpack to exactly their declared sizes, within the limits, counted while
///   decompressing;
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
    let size = artifact_size(file, limits).map_err(refuse)?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| {
        refuse(ArtifactRule::InvalidZip {
            reason: e.to_string(),
        })
    })?;
    if zip.has_duplicate_names() {
        // The zip crate keeps one entry per name; find the repeated one in the raw
        // central directory for the message.
        let bound = usize::try_from(limits.archive.max_members)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let member = duplicate_in_central_directory(file, zip.central_directory_start(), bound)
            .unwrap_or_else(|| "(unknown)".into());
        return Err(refuse(ArtifactRule::DuplicateMember { member }));
    }
    WheelCheck {
        filename,
        limits,
        archive_bytes: size,
    }
    .run(&mut zip)
    .map_err(refuse)
}

/// One member as the name pass saw it.
struct Member {
    index: usize,
    path: RelPath,
    is_dir: bool,
    declared_size: u64,
}

struct WheelCheck<'a> {
    filename: WheelFilename,
    limits: &'a ArtifactLimits,
    archive_bytes: u64,
}

impl WheelCheck<'_> {
    fn run<R: Read + Seek>(self, zip: &mut ZipArchive<R>) -> Result<VerifiedWheel, ArtifactRule> {
        if zip.len() as u64 > self.limits.archive.max_members {
            return Err(LimitExceeded::Members {
                limit: self.limits.archive.max_members,
            }
            .into());
        }
        zip.validate_header_consistency()
            .map_err(|e| ArtifactRule::InconsistentZip {
                reason: e.to_string(),
            })?;

        let members = self.names(zip)?;
        let dist_info = self.dist_info(&members)?;
        self.data_dir(&members, &dist_info)?;

        let files: HashMap<&str, &Member> = members
            .iter()
            .filter(|m| !m.is_dir)
            .map(|m| (m.path.as_str(), m))
            .collect();
        let read_member = |zip: &mut ZipArchive<R>, path: &str| -> Result<Vec<u8>, ArtifactRule> {
            let member = files.get(path).ok_or_else(|| ArtifactRule::MissingFile {
                path: path.to_string(),
            })?;
            let entry = zip
                .by_index(member.index)
                .map_err(|e| ArtifactRule::UnreadableMember {
                    member: path.to_string(),
                    reason: e.to_string(),
                })?;
            read_bounded(entry, path)
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

        let unpacked_bytes = self.check_contents(zip, &members, &expected)?;
        Ok(VerifiedWheel {
            filename: self.filename,
            dist_info,
            metadata,
            root_is_purelib,
            members: members.len(),
            unpacked_bytes,
        })
    }

    /// The name pass: every member's name, type and place, before any data is read.
    fn names<R: Read + Seek>(&self, zip: &mut ZipArchive<R>) -> Result<Vec<Member>, ArtifactRule> {
        let mut members = Vec::with_capacity(zip.len());
        let mut tree = Tree::default();
        let mut folded: HashMap<String, String> = HashMap::new();
        for index in 0..zip.len() {
            let entry = zip
                .by_index_raw(index)
                .map_err(|e| ArtifactRule::InvalidZip {
                    reason: e.to_string(),
                })?;
            let raw = entry.name_raw();
            let shown = display_name(raw);
            let unicode_path_field = entry
                .extra_data_fields()
                .any(|field| matches!(field, zip::ExtraField::UnicodePath(_)));
            if unicode_path_field || (!raw.is_ascii() && entry.flags().as_u16() & UTF8_FLAG == 0) {
                return Err(ArtifactRule::AmbiguousName { member: shown });
            }
            if entry.encrypted() {
                return Err(ArtifactRule::Encrypted { member: shown });
            }
            let name =
                parse_member_name(raw, Dialect::Zip).map_err(|rule| ArtifactRule::Member {
                    member: shown.clone(),
                    rule: rule.into(),
                })?;
            let Some(path) = name.path else {
                return Err(ArtifactRule::Member {
                    member: shown,
                    rule: crate::archive::NameRule::Empty.into(),
                });
            };
            let is_dir = name.trailing_slash;
            if let Some(mode) = entry.unix_mode() {
                match mode & S_IFMT {
                    0 | S_IFREG | S_IFDIR => {}
                    S_IFLNK => return Err(ArtifactRule::SymlinkMember { member: shown }),
                    other => {
                        return Err(ArtifactRule::SpecialMember {
                            member: shown,
                            mode: other,
                        });
                    }
                }
            }
            if is_dir && entry.size() > 0 {
                return Err(ArtifactRule::FolderWithData { member: shown });
            }
            tree.place(&path, if is_dir { Node::Dir } else { Node::File })
                .map_err(|rule| ArtifactRule::Member {
                    member: shown.clone(),
                    rule: MemberRule::Placement(rule),
                })?;
            let key = path.as_str().to_lowercase();
            if let Some(other) = folded.insert(key, path.to_string())
                && other != path.as_str()
            {
                return Err(ArtifactRule::CaseDuplicate {
                    member: path.to_string(),
                    other,
                });
            }
            members.push(Member {
                index,
                path,
                is_dir,
                declared_size: entry.size(),
            });
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
        for member in members.iter().filter(|m| m.path.top() == *data) {
            let mut components = member.path.components().skip(1);
            let scheme = components.next();
            let in_scheme = match scheme {
                None => member.is_dir,
                Some(scheme) => {
                    DATA_SCHEMES.contains(&scheme) && (member.is_dir || components.next().is_some())
                }
            };
            if !in_scheme {
                return Err(ArtifactRule::DataScheme {
                    member: member.path.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Streams every file, checking sizes, limits and RECORD hashes. Returns the unpacked
    /// byte count.
    fn check_contents<R: Read + Seek>(
        &self,
        zip: &mut ZipArchive<R>,
        members: &[Member],
        expected: &HashMap<String, Expected>,
    ) -> Result<u64, ArtifactRule> {
        let meter = Meter::new(self.limits.archive);
        meter.add_packed(self.archive_bytes);
        let mut buf = vec![0u8; 64 * 1024];
        for member in members.iter().filter(|m| !m.is_dir) {
            let path = member.path.as_str();
            let unreadable = |e: &dyn std::fmt::Display| ArtifactRule::UnreadableMember {
                member: path.to_string(),
                reason: e.to_string(),
            };
            let mut entry = zip.by_index(member.index).map_err(|e| unreadable(&e))?;
            let want = expected.get(path);
            let mut hasher = want.map(|w| Hasher::new(w.hash.algorithm));
            let mut actual: u64 = 0;
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(unreadable(&e)),
                };
                if n == 0 {
                    break;
                }
                actual += n as u64;
                meter.add_unpacked(n as u64)?;
                if actual > member.declared_size {
                    return Err(ArtifactRule::SizeMismatch {
                        member: path.to_string(),
                        declared: member.declared_size,
                        actual,
                    });
                }
                if let Some(hasher) = &mut hasher {
                    hasher.update(&buf[..n]);
                }
            }
            if actual != member.declared_size {
                return Err(ArtifactRule::SizeMismatch {
                    member: path.to_string(),
                    declared: member.declared_size,
                    actual,
                });
            }
            if let (Some(want), Some(hasher)) = (want, hasher) {
                if hasher.finish() != want.hash.digest {
                    return Err(ArtifactRule::RecordHash {
                        path: path.to_string(),
                    });
                }
                if want.size != actual {
                    return Err(ArtifactRule::RecordSize {
                        path: path.to_string(),
                        recorded: want.size.to_string(),
                        actual,
                    });
                }
            }
        }
        Ok(meter.unpacked())
    }
}

/// First components of members that are folders (or lie inside one).
fn top_level_folders(members: &[Member]) -> impl Iterator<Item = &str> {
    members
        .iter()
        .filter(|m| m.is_dir || m.path.depth() > 1)
        .map(|m| m.path.top())
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

/// Names the first repeated name by reading the central directory's headers from the
/// file itself.
fn duplicate_in_central_directory(
    mut reader: impl Read + Seek,
    start: u64,
    max_entries: usize,
) -> Option<String> {
    const SIGNATURE: u32 = 0x0201_4b50;
    reader.seek(SeekFrom::Start(start)).ok()?;
    let mut seen = BTreeSet::new();
    for _ in 0..max_entries {
        let mut fixed = [0u8; 46];
        reader.read_exact(&mut fixed).ok()?;
        if u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]) != SIGNATURE {
            return None;
        }
        let name_len = u16::from_le_bytes([fixed[28], fixed[29]]) as usize;
        let extra_len = u16::from_le_bytes([fixed[30], fixed[31]]) as i64;
        let comment_len = u16::from_le_bytes([fixed[32], fixed[33]]) as i64;
        let mut name = vec![0u8; name_len];
        reader.read_exact(&mut name).ok()?;
        reader
            .seek(SeekFrom::Current(extra_len + comment_len))
            .ok()?;
        if !seen.insert(name.clone()) {
            return Some(display_name(&name));
        }
    }
    None
}

#[cfg(test)]
mod tests;
