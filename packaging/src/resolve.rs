//! Build-requirement resolution for the guest: pubgrub over the versions that have a
//! pure-Python wheel the guest can load, with dependencies from core metadata, markers
//! evaluated in the guest's environment, extras, build constraints and require-hashes.
//!
//! Policy, in short:
//! - the newest version wins; pre-releases only when a requirement or constraint names one,
//!   or when no final release satisfies a requirement (the result's notes say so);
//! - yanked files only for versions pinned with `==`/`===` by a top-level requirement or a
//!   constraint;
//! - constraints restrict the versions of packages that appear, they never add packages;
//!   with require-hashes every package must be pinned and its wheel's sha256 listed;
//! - with exclude-newer, files uploaded at or after the cutoff do not exist, and files of
//!   indexes that give no upload time are not used (files on this machine always are);
//! - offline, a file is a candidate only when it is on this machine or in the wheel cache.
//!
//! A failure says what it comes down to in a sentence (the requirements at odds, or the one
//! package without a usable version and why); pubgrub's derivation is kept apart
//! ([`ResolveError::derivation`]).
//!
//! Project pages (and the core metadata of each project's newest wheel) are prefetched on a
//! few threads while pubgrub works, and the chosen wheels are downloaded in parallel.

mod candidates;
mod chain;
mod provider;
mod ranges;
mod report;
mod summary;

use crate::constraints::BuildConstraints;
use crate::index::{CachedFile, DistFile, HashSource, Hint, IndexClient, IndexError};
use crate::target::GuestTarget;
use candidates::{Candidates, Policy};
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{PackageName, Requirement, VersionOrUrl};
use provider::{Node, Provider, RootRequirement, root_version};
use pubgrub::PubGrubError;
use report::Explainer;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, PoisonError};
use summary::Verdict;

/// Threads that fetch project pages ahead of the resolver.
const PREFETCH_THREADS: usize = 4;
/// Threads that download the chosen wheels.
const DOWNLOAD_THREADS: usize = 4;
/// Prefetching metadata may download a wheel that ends up unused; only small ones are.
const PREFETCH_WHEEL_BYTES: u64 = 2 * 1024 * 1024;

/// The packages of a build environment.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Sorted by name.
    pub packages: Vec<ResolvedPackage>,
    /// Choices worth telling the user about: pre-releases, yanked files, hashes computed
    /// because the index gave none, extras a package does not provide.
    pub notes: Vec<String>,
}

/// One package of a resolution, downloaded and hash-checked.
#[derive(Debug, Clone)]
pub struct ResolvedPackage {
    /// The package's normalized name.
    pub name: PackageName,
    /// The chosen version.
    pub version: Version,
    /// The wheel chosen for the guest.
    pub file: DistFile,
    /// The wheel's sha256: the index's, checked against the download, or computed from the
    /// download when the index gave none (see `hash_source`).
    pub sha256: String,
    /// Whether the index vouched for `sha256`.
    pub hash_source: HashSource,
    /// The downloaded wheel in the cache.
    pub path: PathBuf,
}

/// Why the build requirements cannot be resolved. Messages name the requirement, package
/// or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A requirement wasm-build cannot install (a direct URL).
    #[error("cannot use the build requirement `{requirement}`: {reason}")]
    UnsupportedRequirement { requirement: String, reason: String },
    /// No set of versions satisfies the requirements. `summary` says the conflict in a
    /// sentence naming the requirements at odds; `derivation` is the resolver's whole
    /// reasoning (see [`ResolveError::derivation`]).
    #[error("cannot resolve the build requirements for {guest}: {summary}")]
    NoSolution {
        guest: String,
        summary: String,
        derivation: String,
    },
    /// Versions of a package the build needs exist, but none it can use (no wheel the guest
    /// can load, yanked, excluded by a constraint, …); the message names the chain of
    /// requirements that led to it and why each version is out.
    #[error("{message}")]
    NoWheel {
        package: String,
        message: String,
        derivation: String,
        /// What a build from source would start from, when an allowed sdist exists.
        sdist: Option<Box<SdistCandidate>>,
    },
    /// The index client failed for a package.
    #[error("cannot get `{package}`{required_by}: {error}")]
    Index {
        package: String,
        required_by: String,
        error: Box<IndexError>,
    },
    /// A package fails require-hashes mode.
    #[error(transparent)]
    RequireHashes(Box<RequireHashesError>),
}

impl ResolveError {
    /// How the resolver reached its conclusion, in words, for a failed resolution: pubgrub's
    /// derivation, one step a line, each naming the versions and requirements it combines.
    /// The message gives the gist; this is for the curious (the CLI shows it with `-v`).
    pub fn derivation(&self) -> Option<&str> {
        match self {
            Self::NoSolution { derivation, .. } | Self::NoWheel { derivation, .. } => {
                Some(derivation.as_str()).filter(|d| !d.is_empty())
            }
            _ => None,
        }
    }

    /// What the user can do about the error, if anything (see [`Hint`]).
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Index { error, .. } => error.hint(),
            _ => None,
        }
    }
}

/// A version of a package the build needs that has no usable wheel but an sdist the policy
/// allows (not yanked unless pinned, fitting `Requires-Python`, …): the newest such version
/// in the range the requirements ask for.
#[derive(Debug, Clone)]
pub struct SdistCandidate {
    pub name: PackageName,
    pub version: Version,
    /// The `.tar.gz` sdist, as the index lists it (with its sha256 when the index gives one).
    pub file: DistFile,
}

/// Why a package fails require-hashes mode.
#[derive(Debug, thiserror::Error)]
pub enum RequireHashesError {
    /// The package has no `==` pin in the constraints.
    #[error(
        "`{package}`{required_by} is not pinned in {file}: with require-hashes, every package \
         of the build environment needs a `{package}==<version> --hash=sha256:<hash>` line"
    )]
    NotPinned {
        package: String,
        required_by: String,
        file: String,
    },
    /// The package's pin lists no hash.
    #[error(
        "`{package} {version}` has no hash in {file}: with require-hashes, every package needs \
         `--hash=sha256:<hash>` with the sha256 of its wheel"
    )]
    MissingHash {
        package: String,
        version: String,
        file: String,
    },
    /// The wheel's sha256 is not among the listed hashes.
    #[error(
        "the wheel {filename} of `{package} {version}` has sha256 {actual}, which {file} does \
         not allow (it lists {allowed})"
    )]
    HashNotAllowed {
        package: String,
        version: String,
        filename: String,
        actual: String,
        file: String,
        allowed: String,
    },
}

/// Resolves `requirements` (with their transitive dependencies) to pure-Python wheels for
/// `target`, within `constraints`, and downloads them into the cache. Call it again with
/// the union of requirements for a second round; the client's memo makes that cheap.
pub fn resolve(
    client: &IndexClient,
    target: &GuestTarget,
    requirements: &[Requirement],
    constraints: &BuildConstraints,
) -> Result<Resolution, ResolveError> {
    let roots = root_requirements(requirements, target)?;
    let (sender, receiver) = mpsc::channel::<PackageName>();
    let receiver = Mutex::new(receiver);
    let (chosen, mut notes) = std::thread::scope(|scope| {
        for _ in 0..PREFETCH_THREADS {
            scope.spawn(|| prefetch(client, target, constraints, &receiver));
        }
        // The provider owns the only sender: dropping it at the end of this closure stops
        // the prefetch threads before the scope joins them.
        let provider = Provider::new(client, target, constraints, &roots, sender);
        let selected = match pubgrub::resolve(&provider, Node::Root, root_version()) {
            Ok(selected) => selected,
            Err(PubGrubError::NoSolution(tree)) => {
                let sources = client.sources();
                let knowledge = provider.into_knowledge();
                let explainer = Explainer {
                    knowledge: &knowledge,
                    target,
                    sources: &sources,
                };
                let derivation = explainer.derivation(&tree);
                return Err(match explainer.verdict(&tree) {
                    Verdict::NoWheel {
                        package,
                        message,
                        sdist,
                    } => ResolveError::NoWheel {
                        sdist: sdist.map(|found| {
                            let (version, file) = *found;
                            Box::new(SdistCandidate {
                                name: package.clone(),
                                version,
                                file,
                            })
                        }),
                        package: package.to_string(),
                        message,
                        derivation,
                    },
                    Verdict::Conflict(summary) => ResolveError::NoSolution {
                        guest: explainer.guest(),
                        summary,
                        derivation,
                    },
                });
            }
            Err(PubGrubError::ErrorChoosingVersion { source, .. })
            | Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
            | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
        };
        let mut chosen = Vec::new();
        let mut notes = provider.notes();
        for (node, version) in selected {
            let Node::Package(name) = node else {
                continue;
            };
            let candidates = provider.candidates(&name)?;
            // Versions are only ever chosen from those with a usable wheel.
            let file = candidates.files(&version).first().cloned().ok_or_else(|| {
                ResolveError::NoSolution {
                    guest: format!("{name} {version}"),
                    summary: "internal error: a version without a usable wheel was chosen"
                        .to_string(),
                    derivation: String::new(),
                }
            })?;
            if !version.is_stable()
                && let Some(reason) = provider.prerelease_reason(&name)
            {
                notes.push(format!("using pre-release {name} {version}: {reason}"));
            }
            if let Some(reason) = &file.yanked {
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(" (yanked because: {reason})")
                };
                notes.push(format!(
                    "using yanked {} because {name}=={version} is pinned{why}",
                    file.filename
                ));
            }
            chosen.push((name, version, file));
        }
        Ok((chosen, notes))
    })?;

    if constraints.require_hashes() {
        for (name, version, file) in &chosen {
            check_required_hash(
                constraints,
                target,
                name,
                version,
                &file.filename,
                file.sha256.as_deref(),
            )?;
        }
    }
    let files: Vec<&DistFile> = chosen.iter().map(|(_, _, file)| file).collect();
    let downloads = download_all(client, &files);
    let mut packages = Vec::with_capacity(chosen.len());
    for ((name, version, file), download) in chosen.into_iter().zip(downloads) {
        let cached = download.map_err(|error| ResolveError::Index {
            package: name.to_string(),
            required_by: String::new(),
            error: Box::new(error),
        })?;
        if constraints.require_hashes() {
            check_required_hash(
                constraints,
                target,
                &name,
                &version,
                &file.filename,
                Some(&cached.sha256),
            )?;
        }
        if cached.hash_source == HashSource::Computed {
            notes.push(format!(
                "{} lists {} without a sha256; its bytes hash to {}",
                file.source, file.filename, cached.sha256
            ));
        }
        packages.push(ResolvedPackage {
            name,
            version,
            file,
            sha256: cached.sha256,
            hash_source: cached.hash_source,
            path: cached.path,
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Resolution { packages, notes })
}

/// The requirements that apply to the guest, checked for what wasm-build supports.
fn root_requirements(
    requirements: &[Requirement],
    target: &GuestTarget,
) -> Result<Vec<RootRequirement>, ResolveError> {
    let env = target.marker_environment();
    let mut roots = Vec::new();
    for requirement in requirements {
        if !requirement.evaluate_markers(env, &[]) {
            continue;
        }
        let specifiers = match &requirement.version_or_url {
            None => VersionSpecifiers::empty(),
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.clone(),
            Some(VersionOrUrl::Url(url)) => {
                return Err(ResolveError::UnsupportedRequirement {
                    requirement: requirement.to_string(),
                    reason: format!(
                        "direct URL requirements ({url}) are not supported; \
                         publish the wheel to an index or a find-links folder"
                    ),
                });
            }
        };
        let full = requirement.to_string();
        let text = full.split(';').next().unwrap_or(&full).trim().to_string();
        roots.push(RootRequirement {
            name: requirement.name.clone(),
            extras: requirement.extras.clone(),
            specifiers,
            text,
        });
    }
    Ok(roots)
}

/// With require-hashes: the package's wheel hash (when known) must be listed for it.
fn check_required_hash(
    constraints: &BuildConstraints,
    target: &GuestTarget,
    name: &PackageName,
    version: &Version,
    filename: &str,
    sha256: Option<&str>,
) -> Result<(), ResolveError> {
    let file = constraints.source().map_or_else(
        || "the build constraints".to_string(),
        |p| p.display().to_string(),
    );
    let applicable = constraints.for_package(name, target.marker_environment());
    let allowed: Vec<&str> = applicable.hashes().collect();
    let refuse = |error| Err(ResolveError::RequireHashes(Box::new(error)));
    if applicable.pinned_version().is_none() {
        return refuse(RequireHashesError::NotPinned {
            package: name.to_string(),
            required_by: String::new(),
            file,
        });
    }
    if allowed.is_empty() {
        return refuse(RequireHashesError::MissingHash {
            package: name.to_string(),
            version: version.to_string(),
            file,
        });
    }
    match sha256 {
        Some(actual) if !allowed.contains(&actual) => refuse(RequireHashesError::HashNotAllowed {
            package: name.to_string(),
            version: version.to_string(),
            filename: filename.to_string(),
            actual: actual.to_string(),
            file,
            allowed: allowed
                .iter()
                .map(|h| format!("sha256:{h}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        _ => Ok(()),
    }
}

/// Fetches project pages (and the metadata of each project's newest usable wheel) that the
/// resolver is about to need, until the channel closes. Errors are left for the resolver to
/// meet and report.
fn prefetch(
    client: &IndexClient,
    target: &GuestTarget,
    constraints: &BuildConstraints,
    receiver: &Mutex<Receiver<PackageName>>,
) {
    let mut seen = HashSet::new();
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(name) = next else {
            return;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        let Ok(files) = client.project_files_shared(&name) else {
            continue;
        };
        let applicable = constraints.for_package(&name, target.marker_environment());
        let candidates = Candidates::new(
            &name,
            &files,
            &Policy {
                target,
                constraint: &applicable,
                allowed_yanks: &HashSet::new(),
                preferred_hashes: &applicable.hashes().map(str::to_string).collect(),
                exclude_newer: client.exclude_newer(),
                available: &|file| client.is_available(file),
            },
        );
        let newest = candidates
            .versions()
            .rev()
            .find(|v| v.is_stable())
            .and_then(|v| candidates.files(v).first());
        if let Some(file) = newest
            && (file.core_metadata || file.size.is_some_and(|s| s <= PREFETCH_WHEEL_BYTES))
        {
            let _ = client.metadata(file);
        }
    }
}

/// Downloads `files` on a few threads; results in the same order.
fn download_all(client: &IndexClient, files: &[&DistFile]) -> Vec<Result<CachedFile, IndexError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<CachedFile, IndexError>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..DOWNLOAD_THREADS.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else {
                        return;
                    };
                    let result = client.download_verified(file);
                    results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .zip(files)
        .map(|(result, file)| {
            result.unwrap_or_else(|| {
                Err(IndexError::transfer(
                    &file.url,
                    "the download thread did not finish",
                ))
            })
        })
        .collect()
}
