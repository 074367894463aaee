//! The trees the backend builds in: a scratch copy of a project folder, or an sdist
//! unpacked by the strict extractor, each in the build's scratch folder.

use super::git::Checkout;
use super::plan::SourceKind as PlanSource;
use super::{BuildError, Frontend, Settings};
use crate::protocol::guest_paths;
use crate::reporter::{Event, Reporter, SourceFacts, SourceKind, Warning};
use crate::sandbox::{Determinism, FIXED_EPOCH, Isolation};
use anyhow::{Context, anyhow};
use sha2::Digest;
use std::fs;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasm_build_packaging::archive::{self, NamedBy};
use wasm_build_packaging::cache;
use wasm_build_packaging::filename::SdistFilename;
use wasm_build_packaging::limits::ENTRY_BYTES;
use wasm_build_packaging::pyproject::BuildSystem;
use wasm_build_packaging::scratch;
use wasm_build_packaging::tempdirs::place::{self, PlaceReason, ScratchPlace};
use wasm_build_packaging::tempdirs::{HeldDir, TempKind};

/// A source tree ready for the backend: a scratch copy the guest may write.
#[derive(Clone)]
pub(super) struct Project {
    pub root: PathBuf,
    /// Where the guest sees `root`.
    pub guest_root: String,
    pub executables: Vec<String>,
    pub build_system: BuildSystem,
    /// For messages: the user's path or sdist name.
    pub label: String,
    /// The sdist this tree was unpacked from: what is built from it must be that project,
    /// at that version.
    pub sdist: Option<SdistFilename>,
    /// In a deterministic build: the epoch and the base seed of its runs.
    pub determinism: Option<Determinism>,
    /// A project folder's git repository, copied for the guest's git emulation.
    pub checkout: Checkout,
    /// The folders made in the scratch folder for this tree, removed once its step is done
    /// (what a build holds in memory is bounded by one step's trees, see [`Scratch::new`]).
    pub made: Vec<PathBuf>,
}

impl Project {
    /// Removes what was made for this tree in the scratch folder.
    pub fn remove(&self) -> Result<(), BuildError> {
        for dir in &self.made {
            scratch::remove(dir)
                .with_context(|| format!("removing {} after its step", dir.display()))?;
        }
        Ok(())
    }
}

/// The scratch folder of one build. Guests write into it and can nest folders deeper than
/// `std::fs::remove_dir_all` (one descriptor per level) can remove, so it is removed with
/// [`scratch::remove`], which walks any depth. It is locked while the build runs, so that
/// `cache prune` can tell it from the leftovers of a process that was killed.
pub(super) struct Scratch {
    dir: Option<HeldDir>,
    /// Its share of memory when it is there, given back after it is removed.
    _reservation: Option<place::Reservation>,
    reporter: Arc<dyn Reporter>,
}

impl Scratch {
    /// Makes the scratch folder of a build of `steps` steps where [`place::choose`] puts
    /// it, and reports where that is. Never in memory for a build requirement built inside
    /// a build (its budget is the outer build's), nor when guests run on threads of this
    /// process (a guest the time limit gave up on keeps its files open until it wakes).
    pub fn new(frontend: &Frontend, steps: usize, kind: PlanSource) -> Result<Self, BuildError> {
        let settings = &frontend.settings;
        let asked = settings.scratch_dir.as_deref();
        let not_memory = |why: &str| ScratchPlace {
            folder: place::off_memory(asked),
            reason: PlaceReason::NotMemory(why.to_string()),
        };
        let (mut place, mut reservation) =
            if asked.is_none() && super::sdist_requirements::inside_a_build() {
                (not_memory("a build requirement built inside a build"), None)
            } else if asked.is_none() && matches!(settings.isolation, Isolation::Thread) {
                (not_memory("guests run on threads of this process"), None)
            } else {
                place::choose(asked, scratch_budget(settings, steps, kind))
            };
        let mut dir = HeldDir::new_in(&place.folder, TempKind::Scratch);
        if let Err(error) = &dir
            && let Some(disk) = place::after_failure(&place, error)
        {
            (place, reservation) = (disk, None);
            dir = HeldDir::new_in(&place.folder, TempKind::Scratch);
        }
        let dir = dir.with_context(|| {
            format!("creating the scratch folder in {}", place.folder.display())
        })?;
        frontend.reporter.report(&Event::ScratchReady {
            folder: dir.path(),
            reason: &place.reason,
        });
        Ok(Self {
            dir: Some(dir),
            _reservation: reservation,
            reporter: frontend.reporter.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), HeldDir::path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let path = dir.path().display().to_string();
        if let Err(e) = dir.remove() {
            self.reporter.report(&Event::Warning(&Warning::ScratchLeft {
                path,
                error: e.to_string(),
            }));
        }
    }
}

/// What a build of `steps` steps from a source of `kind` may hold at most in its scratch
/// folder and its guests. A step's tree (a staged copy, or an unpacked sdist, within their
/// limits, 4 KiB counted for each entry as the disk limit counts them) stays until the step
/// ends; a hook run may grow it, within the disk limit, which counts the tree with the
/// run's own folders (but not a folder's `.git` copy, mounted read-only, within the staging
/// limits); a run's folders go before the step's next run is made, and prepare runs work
/// elsewhere (`place::off_memory`). The artifacts kept so far stay besides: one for each
/// step, and a metadata folder copied once more. Its guests: two at once (the build
/// environment's bytecode is compiled by two).
fn scratch_budget(settings: &Settings, steps: usize, kind: PlanSource) -> place::Budget {
    let bytes_of =
        |bytes: u64, entries: u64| bytes.saturating_add(entries.saturating_mul(ENTRY_BYTES));
    let (stage, unpack) = (&settings.stage_limits, &settings.extract_limits);
    let artifacts = &settings.artifact_limits;
    let disk = settings.limits.disk;
    let tree = bytes_of(stage.max_bytes, stage.max_entries)
        .max(bytes_of(unpack.max_unpacked_bytes, unpack.max_members))
        .max(disk);
    let tree_entries = stage
        .max_entries
        .max(unpack.max_members)
        .max(disk / ENTRY_BYTES);
    let (git, git_entries) = match kind {
        PlanSource::Tree => (
            bytes_of(stage.max_bytes, stage.max_entries),
            stage.max_entries,
        ),
        PlanSource::Sdist => (0, 0),
    };
    let artifact = bytes_of(artifacts.max_artifact_bytes, artifacts.archive.max_members);
    let kept = u64::try_from(steps.max(1))
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    place::Budget {
        // An in-tree backend's step also holds its bytecode and the compile run's output.
        scratch: tree
            .saturating_add(git)
            .saturating_add(artifact.saturating_mul(kept))
            .saturating_add(2 * crate::backend_bytecode::MAX_STEP_BYTES),
        entries: tree_entries
            .saturating_add(git_entries)
            .saturating_add(artifacts.archive.max_members.saturating_mul(kept)),
        guests: settings.limits.memory.saturating_mul(2),
    }
}

/// How messages name a project folder: as the user wrote it, unless that names no folder
/// by itself (`.`, `..`, `../..`), then its absolute path.
fn folder_label(source: &Path) -> String {
    if source.file_name().is_some() {
        return source.display().to_string();
    }
    fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string()
}

impl Frontend {
    /// A scratch copy of a project folder.
    pub(super) fn stage_tree(&self, source: &Path, scratch: &Path) -> Result<Project, BuildError> {
        let root = scratch.join(format!("src-{}", unique_suffix()));
        let staged = archive::stage_source_tree(source, &root, &self.settings.stage_limits)
            .map_err(|error| BuildError::Input {
                what: format!("the project folder {}", source.display()),
                source: error.into(),
            })?;
        let checkout = self.stage_git(source, scratch, &staged)?;
        for warning in staged.warnings {
            self.reporter
                .report(&Event::Warning(&Warning::Staging(warning)));
        }
        let build_system = BuildSystem::read(&root).map_err(|e| e.relabel(&root, source))?;
        let label = folder_label(source);
        let mut made = vec![root.clone()];
        if let Checkout::Repository(copy) = &checkout {
            made.push(copy.clone());
        }
        Ok(Project {
            made,
            root,
            guest_root: guest_paths::SOURCE.to_string(),
            executables: staged.executables,
            build_system,
            determinism: self.determinism(
                None,
                staged.newest_mtime.map(|m| m.seconds),
                label.clone(),
            ),
            label,
            sdist: None,
            checkout,
        })
    }

    /// Safely unpacks the sdist the user gave.
    pub(super) fn unpack_sdist_path(
        &self,
        sdist: &Path,
        scratch: &Path,
    ) -> Result<Project, BuildError> {
        let unreadable = |e: std::io::Error| BuildError::Input {
            what: format!("the sdist {}", sdist.display()),
            source: anyhow!(e),
        };
        let mut file = fs::File::open(sdist).map_err(unreadable)?;
        let name = sdist
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The digest of the very bytes that are unpacked, for the report.
        let (sha256, _) = cache::sha256_reader(&file).map_err(unreadable)?;
        file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
        let mut facts = SourceFacts {
            path: sdist.display().to_string(),
            kind: SourceKind::Sdist,
            sha256: Some(sha256),
            project: None,
            clock: None,
        };
        self.reporter.report(&Event::Source(&facts));
        let project = self.unpack_sdist(&file, &name, scratch)?;
        if let Some(sdist) = &project.sdist {
            facts.project = Some((sdist.name.to_string(), sdist.version.to_string()));
            self.reporter.report(&Event::Source(&facts));
        }
        Ok(project)
    }

    /// Safely unpacks an sdist into the scratch folder.
    pub(super) fn unpack_sdist(
        &self,
        file: &fs::File,
        name: &str,
        scratch: &Path,
    ) -> Result<Project, BuildError> {
        let dest = scratch.join(format!("sdist-{}", unique_suffix()));
        let extracted = archive::extract_sdist_file(file, name, &dest, &self.extract_limits())
            .map_err(|source| BuildError::sdist_refused(name, source))?;
        if extracted.named_by != NamedBy::FileName {
            self.reporter
                .report(&Event::Warning(&Warning::RenamedSdist {
                    file: name.to_string(),
                    project: format!("{} {}", extracted.filename.name, extracted.filename.version),
                    named_by: extracted.named_by,
                }));
        }
        let build_system = BuildSystem::read(&extracted.root)
            .map_err(|e| e.relabel(&extracted.root, Path::new(name)))?;
        let determinism = if self.settings.deterministic {
            let mut handle = file;
            handle
                .seek(SeekFrom::Start(0))
                .and_then(|_| cache::sha256_reader(handle))
                .map(|(sha256, _)| {
                    self.determinism(
                        Some(sha256),
                        extracted.newest_mtime.map(|m| m.seconds),
                        name.to_string(),
                    )
                })
                .context("reading the sdist again")?
        } else {
            None
        };
        Ok(Project {
            made: vec![dest],
            root: extracted.root,
            guest_root: guest_paths::SOURCE.to_string(),
            executables: extracted.executables,
            build_system,
            label: name.to_string(),
            sdist: Some(extracted.filename),
            determinism,
            checkout: Checkout::NotATree,
        })
    }

    /// For an editable wheel the guest sees the scratch copy at the project's real path, so
    /// that the paths the backend writes into the wheel point at the user's tree.
    pub(super) fn editable_view(
        &self,
        project: Project,
        source: &Path,
    ) -> Result<Project, BuildError> {
        let real =
            fs::canonicalize(source).with_context(|| format!("resolving {}", source.display()))?;
        let guest_root = real
            .to_str()
            .ok_or_else(|| anyhow!("{} is not valid UTF-8", real.display()))?
            .to_string();
        // A project under /tmp is fine: the guest resolves a path through the preopen with
        // the longest matching prefix, so the project's mount wins inside its own folder.
        let reserved = guest_paths::RESERVED;
        if guest_root == "/"
            || guest_root == guest_paths::TMP
            || reserved
                .iter()
                .any(|r| within(&guest_root, r) || within(r, &guest_root))
        {
            return Err(anyhow!(
                "cannot build an editable wheel of {}: its path overlaps the sandbox's own \
                 folders ({}); move the project elsewhere",
                real.display(),
                reserved.join(", ")
            )
            .into());
        }
        Ok(Project {
            guest_root,
            ..project
        })
    }
}

impl Frontend {
    /// A deterministic build's epoch and base seed for a source (none when the build is not
    /// deterministic): the epoch is the user's `--env SOURCE_DATE_EPOCH`, else the source's
    /// newest file (sdist member or file of the folder; not before 1980, which zip archives
    /// cannot hold), else 1980-01-01;
    /// the seed is the sha256 of the sdist (of nothing, for a folder). The source's facts
    /// are reported with the epoch.
    fn determinism(
        &self,
        sha256: Option<String>,
        newest: Option<i64>,
        label: String,
    ) -> Option<Determinism> {
        if !self.settings.deterministic {
            return None;
        }
        let given = self
            .settings
            .guest_env
            .iter()
            .rev()
            .find(|(key, _)| key == "SOURCE_DATE_EPOCH")
            .and_then(|(_, value)| value.trim().parse::<u64>().ok());
        let newest = newest.and_then(|seconds| u64::try_from(seconds).ok());
        let (epoch, from) = match (given, newest) {
            (Some(epoch), _) => (epoch, "SOURCE_DATE_EPOCH"),
            (None, Some(newest)) => (newest.max(FIXED_EPOCH), "newest_member"),
            (None, None) => (FIXED_EPOCH, "fixed"),
        };
        let seed = match &sha256 {
            Some(hex) => sha2::Sha256::digest(hex.as_bytes()).into(),
            None => sha2::Sha256::digest(b"").into(),
        };
        self.reporter.report(&Event::Source(&SourceFacts {
            path: label,
            kind: if sha256.is_some() {
                SourceKind::Sdist
            } else {
                SourceKind::Tree
            },
            sha256,
            project: None,
            clock: Some((epoch, from)),
        }));
        Some(Determinism { epoch, seed })
    }
}

fn within(path: &str, folder: &str) -> bool {
    path == folder || path.starts_with(&format!("{folder}/"))
}

/// A name no other scratch folder of this process has.
pub(super) fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::folder_label;
    use std::path::Path;

    #[test]
    fn a_folder_is_named_as_given_unless_that_names_nothing() {
        assert_eq!(folder_label(Path::new("proj")), "proj");
        assert_eq!(folder_label(Path::new("../a/proj")), "../a/proj");
        let here = std::env::current_dir().unwrap();
        assert_eq!(folder_label(Path::new(".")), here.display().to_string());
        let parent = here.parent().unwrap().display().to_string();
        assert_eq!(folder_label(Path::new("..")), parent);
    }
}
