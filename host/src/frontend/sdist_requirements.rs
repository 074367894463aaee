//! Build requirements without a pure wheel but with an sdist: built into a pure wheel in the
//! sandbox, with this frontend and its limits, as pip does when no wheel fits.
//!
//! The resolver stays wheel-only. When it finds a package the build needs with no usable
//! wheel but an allowed sdist ([`ResolveError::NoWheel`] with an [`SdistCandidate`]), the
//! sdist is downloaded (checked against the index's sha256), built like any sdist given on
//! the command line (its own build environment, which may recurse here), its wheel verified
//! like every artifact and required to be pure, and the resolution runs again with the
//! built wheels as one more find-links folder. Built wheels are cached by the sdist's
//! sha256, with a record tagged with the cache's seal key naming the wheel and its sha256:
//! a cached wheel is hashed before every use, and rebuilt when it does not match.
//!
//! Builds from sdists nest at most [`MAX_DEPTH`] deep, and a package whose sdist build needs
//! itself (`a → b → a`) is refused with the cycle.

use super::{BuildError, BuildRequest, Distribution, Frontend, lock};
use crate::reporter::{Event, Step, Warning};
use anyhow::{Context, anyhow};
use pep508_rs::{PackageName, Requirement, VerbatimUrl};
use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasm_build_packaging::cache::{self, Bucket, sha256_bytes};
use wasm_build_packaging::filename::WheelFilename;
use wasm_build_packaging::index::IndexClient;
use wasm_build_packaging::resolve::{self, Resolution, ResolveError, SdistCandidate};
use wasm_build_packaging::tempdirs::{HeldDir, TempKind, place};

/// How deep builds from sdists may nest (a requirement of a requirement of …).
pub(crate) const MAX_DEPTH: usize = 4;
/// Most sdists one resolution may build before it gives up.
const MAX_BUILDS_PER_RESOLUTION: usize = 16;

/// Build backends that compile Rust whatever they build (their own sdists too): a chain of
/// build requirements that needs one of them built from its sdist is a project that
/// compiles native code (exit 8), told before the sdist is even downloaded.
const RUST_BACKENDS: &[&str] = &["maturin", "setuptools-rust"];
/// Largest cached wheel read back (the artifact limit bounds what is stored).
const MAX_CACHED_WHEEL: u64 = 1 << 30;

/// One sdist being built on this thread, for cycles and chains.
struct Frame {
    name: PackageName,
    /// `name version`.
    shown: String,
    /// The project whose build needed it.
    parent: String,
}

thread_local! {
    /// The builds from sdists under way on this thread, outermost first. Nested builds run
    /// on the thread that needed them, so this is the chain that led here.
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread is building a build requirement from its sdist for another build.
pub(super) fn inside_a_build() -> bool {
    STACK.with(|stack| !stack.borrow().is_empty())
}

/// Pops the frame pushed for a build when it ends, however it ends.
struct Pushed;

impl Drop for Pushed {
    fn drop(&mut self) {
        STACK.with(|stack| stack.borrow_mut().pop());
    }
}

/// `project → a 1.0 → b 2.0 → next`.
fn chain(label: &str, next: &str) -> String {
    STACK.with(|stack| {
        let stack = stack.borrow();
        let mut parts: Vec<&str> = match stack.first() {
            Some(first) => vec![first.parent.as_str()],
            None => vec![label],
        };
        parts.extend(stack.iter().map(|frame| frame.shown.as_str()));
        parts.push(next);
        parts.join(" → ")
    })
}

/// Whether `error` is a refusal that already names the chain of build requirements.
fn names_chain(error: &BuildError) -> bool {
    matches!(error, BuildError::Requirements { source, .. } if source.is::<SdistRequirementError>())
}

/// Why a build requirement could not be built from its sdist. The chain runs from the
/// project being built to the requirement at fault.
#[derive(Debug, thiserror::Error)]
pub enum SdistRequirementError {
    #[error(
        "{chain}: {package} compiles native code, and it has no pure-Python wheel for the \
         sandbox; wasm-build builds pure-Python wheels only"
    )]
    NativeCode {
        chain: String,
        package: String,
        #[source]
        source: anyhow::Error,
    },
    #[error(
        "{chain}: the build requirements form a cycle; `{package}` has no wheel and building \
         it from its sdist needs itself"
    )]
    Cycle { chain: String, package: String },
    #[error(
        "{chain}: building build requirements from their sdists nests more than {MAX_DEPTH} \
         deep"
    )]
    TooDeep { chain: String },
    #[error("{chain}: building `{package}` from its sdist failed")]
    Failed {
        chain: String,
        package: String,
        #[source]
        source: Box<BuildError>,
    },
}

/// The wheels built from sdists so far, as a find-links folder, and a client that searches
/// it as well (made again after each build: clients remember project listings).
pub(super) struct BuiltWheels {
    dir: HeldDir,
    index: Arc<IndexClient>,
}

impl Frontend {
    /// Resolves `requirements`, building requirements that only have sdists when allowed.
    pub(super) fn resolve_building_sdists(
        &self,
        requirements: &[Requirement<VerbatimUrl>],
        label: &str,
    ) -> Result<Resolution, BuildError> {
        let failed = |source: anyhow::Error| BuildError::Requirements {
            what: label.to_string(),
            source,
        };
        let mut built: Vec<(PackageName, String)> = Vec::new();
        loop {
            let extra = lock(&self.built_wheels).as_ref().map(|b| b.index.clone());
            let index = extra.as_deref().unwrap_or(&self.index);
            let result = self.step(Step::Resolving, || {
                resolve::resolve(index, &self.target, requirements, &self.constraints)
            });
            let error = match result {
                Ok(mut resolution) => {
                    if let Some(built) = lock(&self.built_wheels).as_ref() {
                        // Our own folder lists no hashes; that is no news to the user.
                        let ours = built.dir.path().display().to_string();
                        resolution.notes.retain(|note| !note.contains(&ours));
                    }
                    return Ok(resolution);
                }
                Err(error) => error,
            };
            let candidate = match &error {
                ResolveError::NoWheel {
                    sdist: Some(candidate),
                    ..
                } if self.may_build_sdists()
                    && built.len() < MAX_BUILDS_PER_RESOLUTION
                    && !built
                        .contains(&(candidate.name.clone(), candidate.version.to_string())) =>
                {
                    candidate.as_ref().clone()
                }
                _ => return Err(failed(error.into())),
            };
            self.wheel_from_sdist(&candidate, label)?;
            built.push((candidate.name, candidate.version.to_string()));
        }
    }

    fn may_build_sdists(&self) -> bool {
        // With require-hashes every wheel's hash is pinned: a wheel built here has none.
        !self.settings.no_build_requirements_from_sdist && !self.constraints.require_hashes()
    }

    /// Builds (or takes from the cache) the wheel of `candidate` and adds it to the
    /// find-links folder of built wheels.
    fn wheel_from_sdist(&self, candidate: &SdistCandidate, label: &str) -> Result<(), BuildError> {
        let shown = format!("{} {}", candidate.name, candidate.version);
        let requirements = |source: anyhow::Error| BuildError::Requirements {
            what: label.to_string(),
            source,
        };
        let refused = |error: SdistRequirementError| requirements(error.into());
        if RUST_BACKENDS.contains(&candidate.name.as_ref()) {
            return Err(BuildError::NativeCode {
                extension: None,
                switch: None,
                source: Box::new(refused(SdistRequirementError::NativeCode {
                    chain: chain(label, &shown),
                    package: shown.clone(),
                    source: anyhow!(
                        "{} builds Rust code with cargo, which the sandbox does not have, \
                         and has no pure-Python wheel",
                        candidate.name
                    ),
                })),
            });
        }
        let (depth, cycle) = STACK.with(|stack| {
            let stack = stack.borrow();
            let cycle = stack.iter().any(|frame| frame.name == candidate.name);
            (stack.len(), cycle)
        });
        if cycle {
            return Err(refused(SdistRequirementError::Cycle {
                chain: chain(label, &shown),
                package: candidate.name.to_string(),
            }));
        }
        if depth >= MAX_DEPTH {
            return Err(refused(SdistRequirementError::TooDeep {
                chain: chain(label, &shown),
            }));
        }
        let sdist = self
            .index
            .download_verified(&candidate.file)
            .map_err(|e| requirements(e.into()))?;
        let entry = CacheEntry::new(&self.cache, &sdist.sha256).map_err(requirements)?;
        let wheel = match entry.read(&self.cache) {
            Ok(found) => found,
            Err(why) => {
                if let Some(why) = why {
                    self.reporter
                        .report(&Event::Warning(&Warning::SdistWheelChanged {
                            path: entry.dir.display().to_string(),
                            why,
                        }));
                }
                None
            }
        };
        let (filename, bytes) = match wheel {
            Some(found) => {
                self.reporter.report(&Event::RequirementFromSdist {
                    requirement: &shown,
                    cached: true,
                });
                found
            }
            None => {
                self.reporter.report(&Event::RequirementFromSdist {
                    requirement: &shown,
                    cached: false,
                });
                let chain = chain(label, &shown);
                let built = self.build_sdist_wheel(candidate, &sdist.path, &sdist.sha256, label);
                let (filename, bytes) = built.map_err(|error| match error {
                    // An error from deeper down already names the whole chain.
                    BuildError::Requirements { source, .. }
                        if source.is::<SdistRequirementError>() =>
                    {
                        requirements(source)
                    }
                    // A Rust backend deeper down: the whole chain compiles native code.
                    BuildError::NativeCode { ref source, .. } if names_chain(source) => error,
                    BuildError::NativeCode { .. } => refused(SdistRequirementError::NativeCode {
                        chain,
                        package: shown.clone(),
                        source: anyhow::Error::new(error),
                    }),
                    error => refused(SdistRequirementError::Failed {
                        chain,
                        package: shown.clone(),
                        source: Box::new(error),
                    }),
                })?;
                entry
                    .write(&self.cache, &filename, &bytes)
                    .map_err(BuildError::Other)?;
                (filename, bytes)
            }
        };
        self.add_built_wheel(&filename, &bytes)
            .map_err(BuildError::Other)
    }

    /// Builds `candidate`'s wheel from the sdist at `cached` (whose sha256 is `sha256`):
    /// a copy checked against that hash, built in a scratch folder. The wheel's name and bytes.
    fn build_sdist_wheel(
        &self,
        candidate: &SdistCandidate,
        cached: &Path,
        sha256: &str,
        label: &str,
    ) -> Result<(String, Vec<u8>), BuildError> {
        let shown = format!("{} {}", candidate.name, candidate.version);
        let filename = &candidate.file.filename;
        if Path::new(filename).file_name() != Some(filename.as_ref()) {
            return Err(anyhow!("the sdist file name `{filename}` is not a plain name").into());
        }
        // Inside a build whose own scratch folder may be in memory: never in memory (the
        // nested build's own scratch folder neither, see `Scratch::new`).
        let folder = place::off_memory(self.settings.scratch_dir.as_deref());
        let scratch =
            HeldDir::new_in(&folder, TempKind::Scratch).context("creating a scratch folder")?;
        // A copy of our own, hashed as read: the cache copy could change after its check.
        let bytes = read_no_follow(cached, MAX_CACHED_WHEEL)?;
        if sha256_bytes(&bytes) != sha256 {
            return Err(anyhow!("{} changed after it was checked", cached.display()).into());
        }
        let source = scratch.path().join(filename);
        fs::write(&source, &bytes).context("copying the sdist into the scratch folder")?;
        let outdir = scratch.path().join("out");
        STACK.with(|stack| {
            stack.borrow_mut().push(Frame {
                name: candidate.name.clone(),
                shown: shown.clone(),
                parent: label.to_string(),
            })
        });
        let pushed = Pushed;
        let artifacts = self.build(&BuildRequest {
            source,
            distributions: vec![Distribution::Wheel],
            outdir: Some(outdir),
        });
        drop(pushed);
        let artifacts = artifacts?;
        let [wheel] = artifacts.as_slice() else {
            return Err(anyhow!("building {shown} from its sdist made no single wheel").into());
        };
        let name = wheel
            .file_name()
            .and_then(|n| n.to_str())
            .context("the built wheel's name is not UTF-8")?
            .to_string();
        let parsed = name.parse::<WheelFilename>()?;
        let pure = parsed.abi_tags.iter().all(|t| t == "none")
            && parsed.platform_tags.iter().all(|t| t == "any")
            && parsed.python_tags.iter().all(|t| t.starts_with("py"));
        if !pure || !parsed.is_compatible(self.target.supported_tags()) {
            return Err(BuildError::NativeCode {
                extension: None,
                switch: None,
                source: Box::new(anyhow!("its sdist builds the wheel {name}").into()),
            });
        }
        if parsed.name != candidate.name || parsed.version != candidate.version {
            return Err(anyhow!("the sdist of {shown} built the wheel {name}").into());
        }
        let bytes = read_no_follow(wheel, MAX_CACHED_WHEEL)?;
        Ok((name, bytes))
    }

    /// Puts a wheel into the find-links folder of built wheels and renews the client.
    fn add_built_wheel(&self, filename: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut built = lock(&self.built_wheels);
        let dir = match built.take() {
            Some(built) => built.dir,
            None => HeldDir::new(TempKind::Scratch).context("creating a folder for wheels")?,
        };
        fs::write(dir.path().join(filename), bytes)
            .with_context(|| format!("writing {filename}"))?;
        let mut options = self.settings.index.clone();
        options.find_links.push(dir.path().display().to_string());
        let index = Arc::new(IndexClient::new(options, &self.cache)?);
        *built = Some(BuiltWheels { dir, index });
        Ok(())
    }
}

/// The cache entry of the wheel built from the sdist with one sha256: the wheel in a folder
/// named after the sha256, and a record `<wheel file name> <wheel sha256>` tagged with the
/// seal key beside it.
struct CacheEntry {
    dir: PathBuf,
    record: PathBuf,
    label: String,
}

impl CacheEntry {
    fn new(cache: &cache::Cache, sdist_sha256: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            sdist_sha256.len() == 64 && sdist_sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "`{sdist_sha256}` is not a sha256"
        );
        let bucket = cache.bucket(Bucket::SdistWheels)?;
        Ok(Self {
            dir: bucket.join(sdist_sha256),
            record: bucket.join(format!("{sdist_sha256}.record")),
            label: format!("wheel built from the sdist {sdist_sha256}"),
        })
    }

    /// The cached wheel's name and bytes; `Ok(None)` when there is none, `Err(Some(why))`
    /// when an entry is there but cannot be trusted (it is then removed).
    fn read(&self, cache: &cache::Cache) -> Result<Option<(String, Vec<u8>)>, Option<String>> {
        let exists = fs::symlink_metadata(&self.record).is_ok();
        if !exists {
            return Ok(None);
        }
        let result = (|| {
            let key = cache.seal_key().map_err(|e| format!("{e:#}"))?;
            let record = cache::read_tagged(&self.record, key, &self.label)
                .ok_or("its record is not tagged with this cache's seal key")?;
            let (name, sha256) = record.split_once(' ').ok_or("its record is malformed")?;
            name.parse::<WheelFilename>()
                .map_err(|e| format!("{e:#}"))?;
            if Path::new(name).file_name() != Some(name.as_ref()) {
                return Err("its record names no plain file".to_string());
            }
            let bytes = read_no_follow(&self.dir.join(name), MAX_CACHED_WHEEL)
                .map_err(|e| format!("{e:#}"))?;
            let actual = sha256_bytes(&bytes);
            if actual != sha256 {
                return Err(format!(
                    "{name} has sha256 {actual}, its record says {sha256}"
                ));
            }
            Ok((name.to_string(), bytes))
        })();
        match result {
            Ok(found) => Ok(Some(found)),
            Err(why) => {
                let _ = crate::cache_files::remove_if_present(&self.record);
                let _ = crate::cache_files::remove_if_present(&self.dir);
                Err(Some(why))
            }
        }
    }

    /// Stores the wheel, then its tagged record.
    fn write(&self, cache: &cache::Cache, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        cache::create_private_dir(&self.dir)?;
        cache::write_atomic(&self.dir.join(name), bytes)?;
        let value = format!("{name} {}", sha256_bytes(bytes));
        cache::write_tagged(&self.record, cache.seal_key()?, &self.label, &value)
    }
}

/// Reads a regular file without following a link at its last component, at most `max` bytes.
fn read_no_follow(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let meta = file.metadata()?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    anyhow::ensure!(meta.len() <= max, "{} is too large", path.display());
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}
