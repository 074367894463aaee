//! Which versions of a project the guest can use, which file to install for each, and why
//! every other version or file is out.

use crate::constraints::Applicable;
use crate::index::{DistFile, DistKind, ExcludeNewer};
use crate::target::GuestTarget;
use pep440_rs::Version;
use pep508_rs::PackageName;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Why a file (or a whole version) cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exclusion {
    /// A source distribution: wasm-build installs wheels only.
    Sdist(String),
    /// A wheel for another platform or interpreter (native code).
    PlatformWheel(String),
    /// A wheel whose `Requires-Python` excludes the guest.
    RequiresPython { filename: String, requires: String },
    /// A yanked wheel that no requirement or constraint pins.
    Yanked { filename: String, reason: String },
    /// The build constraints do not allow this version.
    Constraint(String),
    /// `exclude-newer` is set and the index gives no upload time for this wheel.
    NoUploadTime { filename: String, source: String },
    /// Offline, and the wheel is neither on this machine nor in the wheel cache.
    NotCached(String),
}

/// Why one version cannot be installed: `only sdist foo-1.0.tar.gz; platform wheels …`
/// (detailed, naming up to three files of each kind) or `only an sdist and 12 platform
/// wheels` (compact).
pub(crate) struct VersionExclusions<'a> {
    pub exclusions: &'a [Exclusion],
    pub detailed: bool,
}

impl VersionExclusions<'_> {
    /// The verb that goes before the exclusions in a sentence: `foo 1.0 has only sdists`,
    /// `foo 2.0 is excluded by the build constraint …`.
    pub fn verb(&self) -> &'static str {
        if self
            .exclusions
            .iter()
            .any(|e| matches!(e, Exclusion::Constraint(_)))
        {
            "is"
        } else {
            "has"
        }
    }
}

impl fmt::Display for VersionExclusions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        if let Some(Exclusion::Constraint(by)) = self
            .exclusions
            .iter()
            .find(|e| matches!(e, Exclusion::Constraint(_)))
        {
            return write!(f, "excluded by the build constraint {by}");
        }
        let pick = |select: fn(&Exclusion) -> Option<String>| -> Vec<String> {
            self.exclusions.iter().filter_map(select).collect()
        };
        let kinds: [(&str, &str, Vec<String>); 6] = [
            (
                "sdist",
                "sdists",
                pick(|e| match e {
                    Exclusion::Sdist(name) => Some(name.clone()),
                    _ => None,
                }),
            ),
            (
                "platform wheel",
                "platform wheels",
                pick(|e| match e {
                    Exclusion::PlatformWheel(name) => Some(name.clone()),
                    _ => None,
                }),
            ),
            (
                "wheel for other Pythons",
                "wheels for other Pythons",
                pick(|e| match e {
                    Exclusion::RequiresPython { filename, requires } => {
                        Some(format!("{filename} requires Python {requires}"))
                    }
                    _ => None,
                }),
            ),
            (
                "yanked wheel",
                "yanked wheels",
                pick(|e| match e {
                    Exclusion::Yanked { filename, reason } if reason.is_empty() => {
                        Some(filename.clone())
                    }
                    Exclusion::Yanked { filename, reason } => {
                        Some(format!("{filename} ({reason})"))
                    }
                    _ => None,
                }),
            ),
            (
                "undated wheel",
                "undated wheels",
                pick(|e| match e {
                    Exclusion::NoUploadTime { filename, source } => {
                        Some(format!("{filename} (from {source})"))
                    }
                    _ => None,
                }),
            ),
            (
                "uncached wheel",
                "uncached wheels",
                pick(|e| match e {
                    Exclusion::NotCached(filename) => Some(filename.clone()),
                    _ => None,
                }),
            ),
        ];
        let mut parts = Vec::new();
        for (one, many, names) in kinds {
            match (names.len(), self.detailed) {
                (0, _) => {}
                (1, false) => parts.push(format!("one {one}")),
                (n, false) => parts.push(format!("{n} {many}")),
                (n, true) => {
                    let mut shown = names[..n.min(SHOWN)].join(", ");
                    if n > SHOWN {
                        shown.push_str(&format!(" and {} more", n - SHOWN));
                    }
                    let label = if n == 1 { one } else { many };
                    parts.push(format!("{label} {shown}"));
                }
            }
        }
        let separator = if self.detailed { "; " } else { " and " };
        write!(f, "only {}", parts.join(separator))
    }
}

/// The installable versions of one project for one target, newest last.
#[derive(Debug)]
pub(crate) struct Candidates {
    /// Installable versions, each with its usable wheels, best first.
    usable: BTreeMap<Version, Vec<DistFile>>,
    /// Versions without a usable wheel, and why.
    excluded: BTreeMap<Version, Vec<Exclusion>>,
    /// The `.tar.gz` sdists the policy would allow were they wheels (not yanked unless
    /// pinned, fitting `Requires-Python`, dated under exclude-newer, available offline).
    sdists: BTreeMap<Version, DistFile>,
    /// Whether any source listed any file for the project.
    pub any_files: bool,
    /// Set when `exclude-newer` left out files uploaded at or after it.
    pub uploaded_later: Option<ExcludeNewer>,
}

/// What decides which files are usable.
pub(crate) struct Policy<'a> {
    pub target: &'a GuestTarget,
    pub constraint: &'a Applicable<'a>,
    /// Versions whose yanked files may be used: pinned with `==`/`===` by a top-level
    /// requirement or a constraint.
    pub allowed_yanks: &'a HashSet<Version>,
    /// Hashes the build constraints allow, preferred when several wheels are usable.
    pub preferred_hashes: &'a HashSet<String>,
    /// Files uploaded at or after this are ignored; remote files need an upload time.
    pub exclude_newer: Option<ExcludeNewer>,
    /// Whether a file can be had now (offline: on this machine or in the wheel cache).
    pub available: &'a dyn Fn(&DistFile) -> bool,
}

impl Candidates {
    /// Sorts `files` of `name` into usable versions and exclusions.
    pub fn new(name: &PackageName, files: &[DistFile], policy: &Policy<'_>) -> Self {
        let tags = policy.target.supported_tags();
        let python = policy.target.python_version();
        let mut usable: BTreeMap<Version, Vec<(Rank, DistFile)>> = BTreeMap::new();
        let mut excluded: BTreeMap<Version, Vec<Exclusion>> = BTreeMap::new();
        let mut sdists: BTreeMap<Version, DistFile> = BTreeMap::new();
        let mut any_files = false;
        let mut uploaded_later = None;
        for file in files {
            let Some(kind) = file.kind(name) else {
                continue;
            };
            // Files on this machine are the user's own: exclude-newer never applies to them.
            let remote = file.local_path().is_none();
            if let (Some(cutoff), Some(uploaded), true) =
                (policy.exclude_newer, file.upload_time, remote)
                && cutoff.excludes(uploaded)
            {
                // As if the file did not exist yet (as uv does), but noted for messages.
                uploaded_later = Some(cutoff);
                continue;
            }
            any_files = true;
            let version = kind.version().clone();
            let mut exclude = |why| excluded.entry(version.clone()).or_default().push(why);
            if !policy.constraint.allows(&version) {
                exclude(Exclusion::Constraint(policy.constraint.to_string()));
                continue;
            }
            let wheel = match kind {
                DistKind::Sdist(_) => {
                    exclude(Exclusion::Sdist(file.filename.clone()));
                    if sdist_allowed(file, policy, &version, remote) {
                        sdists.entry(version).or_insert_with(|| file.clone());
                    }
                    continue;
                }
                DistKind::Wheel(wheel) => wheel,
            };
            let Some(rank) = tag_rank(&wheel, tags) else {
                exclude(Exclusion::PlatformWheel(file.filename.clone()));
                continue;
            };
            if let Some(requires) = &file.requires_python {
                let fits = crate::pep508::specifiers(requires)
                    .is_ok_and(|specifiers| specifiers.contains(python));
                if !fits {
                    exclude(Exclusion::RequiresPython {
                        filename: file.filename.clone(),
                        requires: requires.clone(),
                    });
                    continue;
                }
            }
            if policy.exclude_newer.is_some() && remote && file.upload_time.is_none() {
                exclude(Exclusion::NoUploadTime {
                    filename: file.filename.clone(),
                    source: file.source.clone(),
                });
                continue;
            }
            if let Some(reason) = &file.yanked
                && !policy.allowed_yanks.contains(&version)
            {
                exclude(Exclusion::Yanked {
                    filename: file.filename.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            if !(policy.available)(file) {
                exclude(Exclusion::NotCached(file.filename.clone()));
                continue;
            }
            usable
                .entry(version)
                .or_default()
                .push(((rank, Reverse(wheel.build_tag.clone())), file.clone()));
        }
        let preferred = |file: &DistFile| {
            file.sha256
                .as_ref()
                .is_some_and(|h| policy.preferred_hashes.contains(h))
        };
        let usable = usable
            .into_iter()
            .map(|(version, mut files)| {
                // Best first: a hash the constraints list, then the most specific tag and
                // the highest build tag (as pip), then not yanked; otherwise the order of
                // the sources (stable sort).
                files
                    .sort_by_key(|(rank, file)| (!preferred(file), rank.clone(), file.is_yanked()));
                (version, files.into_iter().map(|(_, file)| file).collect())
            })
            .collect();
        Self {
            usable,
            excluded,
            sdists,
            any_files,
            uploaded_later,
        }
    }

    /// Installable versions, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = &Version> + Clone {
        self.usable.keys()
    }

    /// The usable wheels of `version`, best first.
    pub fn files(&self, version: &Version) -> &[DistFile] {
        self.usable.get(version).map_or(&[], Vec::as_slice)
    }

    /// Every file left out, usable version or not.
    pub fn every_exclusion(&self) -> impl Iterator<Item = &Exclusion> {
        self.excluded.values().flatten()
    }

    /// Versions that cannot be installed, with their reasons, newest first.
    pub fn exclusions(&self) -> impl Iterator<Item = (&Version, &[Exclusion])> {
        self.excluded
            .iter()
            .rev()
            .filter(|(version, _)| !self.usable.contains_key(*version))
            .map(|(version, why)| (version, why.as_slice()))
    }
}

impl Candidates {
    /// The newest version in `range` without a usable wheel but with an sdist the policy
    /// allows, and that sdist: what a build from source would use.
    pub fn sdist_in(&self, range: &pubgrub::Ranges<Version>) -> Option<(&Version, &DistFile)> {
        self.sdists
            .iter()
            .rev()
            .find(|(version, _)| range.contains(*version) && !self.usable.contains_key(*version))
    }
}

/// Whether an sdist passes the checks a wheel of its version would (yanked, Requires-Python,
/// upload time, availability) and is a `.tar.gz`, the only sdist format builds start from.
fn sdist_allowed(file: &DistFile, policy: &Policy<'_>, version: &Version, remote: bool) -> bool {
    let fits = file.requires_python.as_ref().is_none_or(|requires| {
        crate::pep508::specifiers(requires)
            .is_ok_and(|specifiers| specifiers.contains(policy.target.python_version()))
    });
    file.filename.ends_with(".tar.gz")
        && fits
        && !(policy.exclude_newer.is_some() && remote && file.upload_time.is_none())
        && (file.yanked.is_none() || policy.allowed_yanks.contains(version))
        && (policy.available)(file)
}

/// A wheel's place among the wheels of its version: its tag's rank, then its build tag,
/// highest first (none sorts lowest, as PEP 427's empty tuple).
type Rank = (usize, Reverse<Option<crate::filename::BuildTag>>);

/// The position of the wheel's best tag in the target's list (lower is better), or `None`
/// when the guest cannot load the wheel.
fn tag_rank(
    wheel: &crate::filename::WheelFilename,
    supported: &[(String, String, String)],
) -> Option<usize> {
    supported.iter().position(|(py, abi, platform)| {
        wheel.python_tags.contains(py)
            && wheel.abi_tags.contains(abi)
            && wheel.platform_tags.contains(platform)
    })
}

#[cfg(test)]
mod tests;
