//! The build frontend: from a source tree or an sdist to verified artifacts in the output
//! folder. Every step the backend takes runs in the sandbox; everything else is here.
//!
//! ```text
//! stage   scratch copy of the tree, or safe extraction of the sdist
//! env     resolve `requires` → build environment (cached)
//! hooks   get_requires_for_build_X + build_X in one instance; if the backend asks for
//!         more, resolve again and run build_X in a new instance
//! verify  the returned artifact is checked before it leaves the scratch folder
//! publish all artifacts moved into the output folder once every build succeeded
//! ```

use crate::env::{self, BuildEnv, EnvWheel};
use crate::hooks::{self, Hook, HookCall, HookContext, HookError, guest_paths};
use crate::prepared::PreparedBackends;
use crate::progress;
use crate::project::{self, BuildSystem, ProjectError};
use crate::runtime::{self, Runtime, RuntimeChoice};
use crate::sandbox::{GuestRun, Isolation, Limits, LogSink, Mount, Sandbox};
use anyhow::{Context, Result, anyhow, bail};
use pep440_rs::Version;
use pep508_rs::{PackageName, Requirement, VerbatimUrl};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wasm_build_packaging::archive::{self, ArchiveError};
use wasm_build_packaging::cache::{self, Bucket, Cache};
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::filename::{SdistFilename, WheelFilename};
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::limits::{ArchiveLimits, ArtifactLimits, LimitExceeded, StageLimits};
use wasm_build_packaging::resolve;
use wasm_build_packaging::scratch;
use wasm_build_packaging::target::{GuestTarget, PROBE_SCRIPT};
use wasm_build_packaging::verify::{self, ArtifactError, ArtifactRule, CollectedArtifact};

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    Sdist,
    Wheel,
    /// A PEP 660 editable wheel.
    Editable,
    /// The wheel's `.dist-info` folder, from `prepare_metadata_for_build_wheel`.
    Metadata,
}

impl Distribution {
    fn label(self) -> &'static str {
        match self {
            Distribution::Sdist => "sdist",
            Distribution::Wheel => "wheel",
            Distribution::Editable => "editable wheel",
            Distribution::Metadata => "wheel metadata",
        }
    }

    fn hooks(self) -> (Hook, Hook) {
        match self {
            Distribution::Sdist => (Hook::GetRequiresForBuildSdist, Hook::BuildSdist),
            Distribution::Wheel => (Hook::GetRequiresForBuildWheel, Hook::BuildWheel),
            Distribution::Editable => (Hook::GetRequiresForBuildEditable, Hook::BuildEditable),
            Distribution::Metadata => (
                Hook::GetRequiresForBuildWheel,
                Hook::PrepareMetadataForBuildWheel,
            ),
        }
    }
}

/// One build: a source and what to make of it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// A project folder, or an sdist (`.tar.gz`).
    pub source: PathBuf,
    /// Empty: an sdist, then a wheel built from that sdist (as `python -m build` does).
    /// From an sdist source, empty means a wheel.
    pub distributions: Vec<Distribution>,
    /// Defaults to `dist/` in the project folder (next to the sdist for an sdist source).
    pub outdir: Option<PathBuf>,
}

/// Settings shared by every build of a [`Frontend`].
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub runtime: Option<RuntimeChoice>,
    pub index: IndexOptions,
    /// `--build-constraint` file and `--require-hashes`.
    pub constraints: Option<(PathBuf, bool)>,
    /// `-C KEY=VALUE`; a key given several times becomes a list, as with `python -m build`.
    pub config_settings: Vec<(String, String)>,
    /// `--env KEY=VALUE`, added to the guest's fixed environment.
    pub guest_env: Vec<(String, String)>,
    pub limits: Limits,
    pub artifact_limits: ArtifactLimits,
    pub stage_limits: StageLimits,
    /// Limits for unpacking an sdist given as the source.
    pub extract_limits: ArchiveLimits,
    /// Stream the backend's output (`-v`).
    pub verbose: bool,
    /// Print nothing but errors and the artifacts (`-q`).
    pub quiet: bool,
    /// Use a throw-away cache (`--no-cache`).
    pub no_cache: bool,
    /// Where guests run: threads of this process, or child processes (what the CLI uses).
    pub isolation: Isolation,
    /// Import the backend in every hook run instead of starting runs from a prepared one
    /// (`--no-prepared-backend`, see [`crate::prepared`]).
    pub no_prepared_backends: bool,
}

/// A build that failed. Backend failures, sandbox failures and refusals are kept apart,
/// each with its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("{what} was refused: {source:#}")]
    Input { what: String, source: anyhow::Error },
    #[error("cannot install the build requirements of {what}: {source}")]
    Requirements { what: String, source: anyhow::Error },
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("the backend's {what} was refused: {source:#}")]
    ArtifactRefused { what: String, source: anyhow::Error },
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl BuildError {
    /// The process exit code for this failure (see `docs/cli.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Other(_) => 1,
            BuildError::Project(_) | BuildError::Input { .. } => 3,
            BuildError::Requirements { .. } => 4,
            BuildError::Hook(e) if e.kind.is_sandbox_failure() => 6,
            BuildError::Hook(_) => 5,
            BuildError::ArtifactRefused { .. } => 7,
        }
    }
}

/// A source tree ready for the backend: a scratch copy the guest may write.
#[derive(Clone)]
struct Project {
    root: PathBuf,
    /// Where the guest sees `root`.
    guest_root: String,
    executables: Vec<String>,
    build_system: BuildSystem,
    /// For messages: the user's path or sdist name.
    label: String,
    /// The sdist this tree was unpacked from: what is built from it must be that project,
    /// at that version.
    sdist: Option<SdistFilename>,
}

/// The scratch folder of one build. Guests write into it and can nest folders deeper than
/// `std::fs::remove_dir_all` (one descriptor per level) can remove, so it is removed with
/// [`scratch::remove`], which walks any depth.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = scratch::remove(self.path()) {
            eprintln!(
                "warning: could not remove the scratch folder {}: {e}",
                self.path().display()
            );
        }
    }
}

/// A verified artifact, waiting to be published.
enum Artifact {
    /// An sdist or wheel, held open: what is published is the very file that was verified.
    File(CollectedArtifact),
    /// A `.dist-info` folder, copied out of the guest's output folder after the run ended.
    Dir { path: PathBuf, name: String },
}

impl Artifact {
    fn name(&self) -> &str {
        match self {
            Artifact::File(file) => &file.file_name,
            Artifact::Dir { name, .. } => name,
        }
    }
}

/// The frontend: one runtime, sandbox, index client and cache for any number of builds.
pub struct Frontend {
    settings: Settings,
    cache: Cache,
    runtime: Runtime,
    sandbox: Sandbox,
    target: GuestTarget,
    index: IndexClient,
    constraints: BuildConstraints,
    config_settings: Value,
    guest_env: Vec<(String, String)>,
    environments: Mutex<HashMap<Vec<String>, BuildEnv>>,
    prepared: Option<PreparedBackends>,
}

impl Frontend {
    /// Provisions the runtime, loads the sandbox and learns the guest's target.
    pub fn new(settings: Settings) -> Result<Self> {
        let cache = if settings.no_cache {
            Cache::temporary()?
        } else {
            Cache::from_env()?
        };
        let index = IndexClient::new(settings.index.clone(), &cache)?;
        let choice = settings.runtime.clone().unwrap_or(RuntimeChoice::Default);
        let show = !settings.quiet && !settings.verbose;
        let (runtime, sandbox, target) = progress::spin(show, "Preparing the interpreter", || {
            let runtime = runtime::provision(&choice, &cache, &index)?;
            let sandbox = Sandbox::with_isolation(&runtime, &cache, settings.isolation.clone())?;
            let target = probe_target(&sandbox, &runtime, &cache)?;
            anyhow::Ok((runtime, sandbox, target))
        })?;
        let constraints = match &settings.constraints {
            Some((path, require_hashes)) => BuildConstraints::from_file(path, *require_hashes)?,
            None => BuildConstraints::none(),
        };
        let config_settings = config_settings_json(&settings.config_settings);
        let guest_env = guest_environment(&settings.guest_env);
        let prepared = if settings.no_prepared_backends {
            None
        } else {
            Some(PreparedBackends::new(&cache)?)
        };
        Ok(Self {
            settings,
            cache,
            runtime,
            sandbox,
            target,
            index,
            constraints,
            config_settings,
            guest_env,
            environments: Mutex::new(HashMap::new()),
            prepared,
        })
    }

    /// The runtime the backends run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The guest's marker environment and tags.
    pub fn target(&self) -> &GuestTarget {
        &self.target
    }

    /// Builds what `request` asks for and moves the verified artifacts into the output
    /// folder. On failure nothing is written there and the source is untouched.
    pub fn build(&self, request: &BuildRequest) -> Result<Vec<PathBuf>, BuildError> {
        let scratch = Scratch(
            tempfile::Builder::new()
                .prefix("wasm-build-")
                .tempdir()
                .context("creating the scratch folder")?,
        );
        let is_sdist = request.source.is_file();
        let outdir = match &request.outdir {
            Some(dir) => dir.clone(),
            None if is_sdist => request
                .source
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            None => request.source.join("dist"),
        };
        let verified = scratch.path().join("verified");
        fs::create_dir(&verified).context("creating the scratch folder")?;

        let mut artifacts = Vec::new();
        if is_sdist {
            if request
                .distributions
                .iter()
                .any(|d| !matches!(d, Distribution::Wheel | Distribution::Metadata))
            {
                return Err(anyhow!(
                    "{} is an sdist: only --wheel or --metadata can be built from it",
                    request.source.display()
                )
                .into());
            }
            let project = self.unpack_sdist_path(&request.source, scratch.path())?;
            let wanted = if request.distributions.is_empty() {
                vec![Distribution::Wheel]
            } else {
                request.distributions.clone()
            };
            for dist in wanted {
                artifacts.push(self.build_one(&project, dist, scratch.path(), &verified)?);
            }
        } else {
            let source = &request.source;
            if !source.is_dir() {
                return Err(anyhow!(
                    "{} is neither a project folder nor an sdist (.tar.gz)",
                    source.display()
                )
                .into());
            }
            let project = self.stage_tree(source, scratch.path())?;
            if request.distributions.is_empty() {
                // As `python -m build`: the wheel is built from the sdist just made, which
                // proves the sdist complete.
                let sdist =
                    self.build_one(&project, Distribution::Sdist, scratch.path(), &verified)?;
                let Artifact::File(sdist_file) = &sdist else {
                    unreachable!("an sdist build yields a file");
                };
                let from_sdist =
                    self.unpack_sdist(&sdist_file.file, &sdist_file.file_name, scratch.path())?;
                let wheel =
                    self.build_one(&from_sdist, Distribution::Wheel, scratch.path(), &verified)?;
                artifacts.extend([sdist, wheel]);
            } else {
                for &dist in &request.distributions {
                    let project = if dist == Distribution::Editable {
                        self.editable_view(&project, source)?
                    } else {
                        self.restage_if_used(&project, source, scratch.path(), &artifacts)?
                    };
                    artifacts.push(self.build_one(&project, dist, scratch.path(), &verified)?);
                }
            }
        }
        publish(&artifacts, &outdir).map_err(BuildError::Other)
    }

    /// Runs the interpreter in the sandbox with a build environment made of `requirements`
    /// and an empty scratch source folder as cwd (`wasm-build runtime run`). `args` are
    /// `-c CODE ...`, `-m MODULE ...` or `SCRIPT ...` as for `python`. Returns the exit code.
    pub fn run_python(&self, requirements: &[String], args: &[String]) -> Result<i32, BuildError> {
        let parsed = requirements
            .iter()
            .map(|raw| {
                project::parse_requirement(raw).map_err(|e| BuildError::Requirements {
                    what: "--with".to_string(),
                    source: anyhow!("--with {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let env = self.environment(&parsed, "the interpreter")?;
        let scratch = tempfile::Builder::new()
            .prefix("wasm-build-run-")
            .tempdir()
            .context("creating the scratch folder")?;
        let (src, tmp) = (scratch.path().join("src"), scratch.path().join("tmp"));
        for dir in [&src, &tmp] {
            fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut argv = vec![
            "-S".to_string(),
            "-c".to_string(),
            RUN_BOOTSTRAP.to_string(),
        ];
        argv.extend(args.iter().cloned());
        let run = GuestRun {
            args: argv,
            env: self.guest_env.clone(),
            mounts: vec![
                Mount::read_write(&src, guest_paths::SOURCE),
                Mount::read_write(&tmp, guest_paths::TMP),
                Mount::read_only(&env.site_packages, guest_paths::ENV),
            ],
            limits: self.settings.limits.clone(),
            log: LogSink::Terminal,
        };
        let exit = self.sandbox.run(&run).map_err(|e| anyhow!("{e}"))?;
        Ok(exit.code)
    }

    /// Builds one distribution of `project`, returning the verified artifact.
    fn build_one(
        &self,
        project: &Project,
        dist: Distribution,
        scratch: &Path,
        verified: &Path,
    ) -> Result<Artifact, BuildError> {
        let (get_requires, build) = dist.hooks();
        let bs = &project.build_system;
        self.say(format!(
            "Building {} of {} with {} (CPython {} for WASI)",
            dist.label(),
            project.label,
            bs.backend,
            self.target.markers.python_full_version
        ));
        let env = self.environment(&bs.requirements, &project.label)?;
        let calls = HookCall::build_step(get_requires, build, &bs.requires);
        let mut results = self.spin(format!("Running {get_requires}, {build}"), || {
            hooks::call_hooks(&self.hook_context(project, &env, scratch), &calls)
        })?;
        if results.stopped_for_requirements {
            let extra = results
                .value(get_requires)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut requirements = bs.requirements.clone();
            for item in extra.iter().filter_map(Value::as_str) {
                let parsed =
                    project::parse_requirement(item).map_err(|e| BuildError::Requirements {
                        what: format!("{} (returned by {get_requires})", project.label),
                        source: anyhow!("`{get_requires}` {e}"),
                    })?;
                requirements.push(parsed);
            }
            let env = self.environment(&requirements, &project.label)?;
            results = self.spin(format!("Running {build}"), || {
                hooks::call_hooks(
                    &self.hook_context(project, &env, scratch),
                    &[HookCall::run(build)],
                )
            })?;
        }
        let returned = results
            .value(build)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("`{build}` returned no name"))?
            .to_string();
        let refused = |source: anyhow::Error| BuildError::ArtifactRefused {
            what: format!("{} `{returned}` (from {build})", dist.label()),
            source,
        };
        let out_dir = results.out_dir();
        let limits = &self.settings.artifact_limits;
        let artifact = match dist {
            Distribution::Metadata => {
                let collected = verify::collect_metadata_dir(&out_dir, &returned, limits)
                    .map_err(|e| refused(with_hint(e)))?;
                let (name, version) = (
                    collected.metadata.name.parse::<PackageName>(),
                    collected.metadata.version.parse::<Version>(),
                );
                if let (Ok(name), Ok(version)) = (name, version) {
                    same_project(project, "metadata", &name, &version).map_err(refused)?;
                }
                let dest = verified.join(&collected.name);
                copy_tree_or_file(&collected.path, &dest)?;
                Artifact::Dir {
                    path: dest,
                    name: collected.name,
                }
            }
            _ => {
                let collected = verify::collect_artifact(&out_dir, &returned)
                    .map_err(|e| refused(with_hint(e)))?;
                if dist == Distribution::Sdist {
                    verify::verify_sdist_file(&collected.file, &collected.file_name, limits)
                        .map_err(|e| refused(with_hint(e)))?;
                } else {
                    let wheel =
                        verify::verify_wheel_file(&collected.file, &collected.file_name, limits)
                            .map_err(|e| refused(with_hint(e)))?;
                    let file = &wheel.filename;
                    same_project(project, "wheel", &file.name, &file.version).map_err(refused)?;
                    check_pure(file).map_err(refused)?;
                }
                Artifact::File(collected)
            }
        };
        self.say(format!("Built {}", artifact.name()));
        Ok(artifact)
    }

    fn hook_context<'a>(
        &'a self,
        project: &'a Project,
        env: &'a BuildEnv,
        scratch: &'a Path,
    ) -> HookContext<'a> {
        HookContext {
            sandbox: &self.sandbox,
            backend: &project.build_system.backend,
            backend_path: &project.build_system.backend_path,
            source: &project.root,
            source_guest: &project.guest_root,
            site_packages: &env.site_packages,
            executables: &project.executables,
            config_settings: &self.config_settings,
            env: &self.guest_env,
            limits: &self.settings.limits,
            log: if self.settings.verbose {
                LogSink::Terminal
            } else {
                LogSink::Capture
            },
            scratch,
            prepared: self.prepared.as_ref().map(|p| (p, env.key.as_str())),
        }
    }

    /// The build environment for `requirements`: resolved for the guest, then made or
    /// taken from the cache. Memoized per process (sdist and wheel usually share one).
    fn environment(
        &self,
        requirements: &[Requirement<VerbatimUrl>],
        label: &str,
    ) -> Result<BuildEnv, BuildError> {
        let mut key: Vec<String> = requirements.iter().map(ToString::to_string).collect();
        key.sort();
        if let Some(env) = lock(&self.environments).get(&key) {
            return Ok(env.clone());
        }
        let failed = |source: anyhow::Error| BuildError::Requirements {
            what: label.to_string(),
            source,
        };
        let resolution = self
            .spin("Resolving build requirements", || {
                resolve::resolve(&self.index, &self.target, requirements, &self.constraints)
            })
            .map_err(|e| failed(e.into()))?;
        let wheels: Vec<EnvWheel> = resolution.packages.iter().map(EnvWheel::from).collect();
        let env = self
            .spin("Preparing the build environment", || {
                env::prepare(&self.sandbox, &self.runtime, &self.cache, &wheels)
            })
            .map_err(failed)?;
        if !env.contents.is_empty() {
            self.say(format!("Build environment: {}", env.contents.join(", ")));
        }
        lock(&self.environments).insert(key, env.clone());
        Ok(env)
    }

    /// A scratch copy of a project folder.
    fn stage_tree(&self, source: &Path, scratch: &Path) -> Result<Project, BuildError> {
        let root = scratch.join(format!("src-{}", unique_suffix()));
        let staged = archive::stage_source_tree(source, &root, &self.settings.stage_limits)
            .map_err(|source_err| BuildError::Input {
                what: format!("the project folder {}", source.display()),
                source: source_err.into(),
            })?;
        for warning in &staged.warnings {
            self.warn(&warning.to_string());
        }
        let build_system = BuildSystem::read(&root).map_err(|e| relabel(e, &root, source))?;
        Ok(Project {
            root,
            guest_root: guest_paths::SOURCE.to_string(),
            executables: staged.executables,
            build_system,
            label: source.display().to_string(),
            sdist: None,
        })
    }

    /// Safely unpacks the sdist the user gave.
    fn unpack_sdist_path(&self, sdist: &Path, scratch: &Path) -> Result<Project, BuildError> {
        let file = fs::File::open(sdist).map_err(|e| BuildError::Input {
            what: format!("the sdist {}", sdist.display()),
            source: anyhow!(e),
        })?;
        let name = sdist
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.unpack_sdist(&file, &name, scratch)
    }

    /// Safely unpacks an sdist into the scratch folder.
    fn unpack_sdist(
        &self,
        file: &fs::File,
        name: &str,
        scratch: &Path,
    ) -> Result<Project, BuildError> {
        let dest = scratch.join(format!("sdist-{}", unique_suffix()));
        let extracted =
            archive::extract_sdist_file(file, name, &dest, &self.settings.extract_limits).map_err(
                |source| BuildError::Input {
                    what: format!("the sdist {name}"),
                    source: source.into(),
                },
            )?;
        let build_system = BuildSystem::read(&extracted.root)
            .map_err(|e| relabel(e, &extracted.root, Path::new(name)))?;
        Ok(Project {
            root: extracted.root,
            guest_root: guest_paths::SOURCE.to_string(),
            executables: extracted.executables,
            build_system,
            label: name.to_string(),
            sdist: Some(extracted.filename),
        })
    }

    /// Each distribution of one request gets a clean copy of the tree, as a native build
    /// of each from a fresh checkout would: leftovers of the previous hook (egg-info,
    /// build/) must not leak into the next artifact.
    fn restage_if_used(
        &self,
        project: &Project,
        source: &Path,
        scratch: &Path,
        done: &[Artifact],
    ) -> Result<Project, BuildError> {
        if done.is_empty() {
            return Ok(project.clone());
        }
        self.stage_tree(source, scratch)
    }

    /// For an editable wheel the guest sees the scratch copy at the project's real path, so
    /// that the paths the backend writes into the wheel point at the user's tree.
    fn editable_view(&self, project: &Project, source: &Path) -> Result<Project, BuildError> {
        let real =
            fs::canonicalize(source).with_context(|| format!("resolving {}", source.display()))?;
        let guest_root = real
            .to_str()
            .ok_or_else(|| anyhow!("{} is not valid UTF-8", real.display()))?
            .to_string();
        // A project under /tmp is fine: the guest resolves a path through the preopen with
        // the longest matching prefix, so the project's mount wins inside its own folder.
        let reserved = ["/out", "/src", "/wasm-build", "/usr/local"];
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
            ..project.clone()
        })
    }

    fn spin<T>(&self, message: impl Into<String>, work: impl FnOnce() -> T) -> T {
        progress::spin(
            !self.settings.quiet && !self.settings.verbose,
            message,
            work,
        )
    }

    fn say(&self, message: String) {
        if !self.settings.quiet {
            eprintln!("* {message}");
        }
    }

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// An artifact's refusal, with the flag that raises the limit it ran into, if a flag does.
fn with_hint(error: ArtifactError) -> anyhow::Error {
    let limit = match &error.rule {
        ArtifactRule::Limit(limit) | ArtifactRule::Archive(ArchiveError::Limit(limit)) => limit,
        _ => return error.into(),
    };
    match limit {
        LimitExceeded::ArtifactBytes { .. } | LimitExceeded::UnpackedBytes { .. } => {
            anyhow!("{error}; raise it with --artifact-limit MIB")
        }
        _ => error.into(),
    }
}

/// What is built from an sdist must be the sdist's project at the sdist's version: a
/// backend must not pass off a wheel of another project as this one's.
fn same_project(
    project: &Project,
    what: &str,
    name: &PackageName,
    version: &Version,
) -> Result<()> {
    let Some(sdist) = &project.sdist else {
        return Ok(());
    };
    if &sdist.name != name || &sdist.version != version {
        bail!(
            "it is a {what} of {name} {version}, but the sdist `{}` is {} {}",
            project.label,
            sdist.name,
            sdist.version
        );
    }
    Ok(())
}

fn within(path: &str, folder: &str) -> bool {
    path == folder || path.starts_with(&format!("{folder}/"))
}

/// A wheel built in the sandbox can only be pure Python: a platform tag means the backend
/// built (or tried to build) extensions for WASI, which no host can install.
fn check_pure(filename: &WheelFilename) -> Result<()> {
    let platforms: Vec<&str> = filename
        .platform_tags
        .iter()
        .map(String::as_str)
        .filter(|tag| *tag != "any")
        .collect();
    if !platforms.is_empty() {
        bail!(
            "it is tagged for the platform {} (the sandbox's own): the project builds native \
             extensions, and wasm-build only builds pure-Python wheels",
            platforms.join(".")
        );
    }
    Ok(())
}

/// Errors about the scratch copy name the user's file instead.
fn relabel(error: ProjectError, scratch_root: &Path, user_root: &Path) -> ProjectError {
    let fix = |p: PathBuf| match p.strip_prefix(scratch_root) {
        Ok(rel) => user_root.join(rel),
        Err(_) => p,
    };
    match error {
        ProjectError::NotAProject(p) => ProjectError::NotAProject(fix(p)),
        ProjectError::Read { path, source } => ProjectError::Read {
            path: fix(path),
            source,
        },
        ProjectError::InvalidToml { path, message } => ProjectError::InvalidToml {
            path: fix(path),
            message,
        },
        ProjectError::InvalidField {
            path,
            field,
            problem,
        } => ProjectError::InvalidField {
            path: fix(path),
            field,
            problem,
        },
    }
}

/// Starts what `wasm-build runtime run` was given, with the build environment on
/// `sys.path` (`.pth` files processed) and the source folder as cwd.
const RUN_BOOTSTRAP: &str = r#"
import os, runpy, site, sys
os.chdir("/src")
site.addsitedir("/wasm-build/env")
args = sys.argv[1:]
if args[:1] == ["-c"] and len(args) > 1:
    sys.argv = ["-c"] + args[2:]
    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
elif args[:1] == ["-m"] and len(args) > 1:
    sys.argv = [args[1]] + args[2:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
elif args:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
else:
    sys.exit("wasm-build runtime run: give -c CODE, -m MODULE or a script")
"#;

/// A name no other scratch folder of this process has.
fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `-C` settings as the JSON object the hooks get: repeated keys become lists.
fn config_settings_json(settings: &[(String, String)]) -> Value {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in settings {
        match map.get_mut(key) {
            None => {
                map.insert(key.clone(), Value::String(value.clone()));
            }
            Some(Value::Array(items)) => items.push(Value::String(value.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.clone())]);
            }
        }
    }
    Value::Object(map.into_iter().collect())
}

/// The guest's whole environment: a fixed set, `SOURCE_DATE_EPOCH` from the host when set,
/// and what the user passed with `--env` (which wins).
pub fn guest_environment(user: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> =
        crate::sandbox::base_environment().into_iter().collect();
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        env.insert("SOURCE_DATE_EPOCH".into(), epoch);
    }
    for (key, value) in user {
        env.insert(key.clone(), value.clone());
    }
    env.into_iter().collect()
}

/// Asks the guest for its marker environment once per runtime; cached next to it.
pub fn probe_target(sandbox: &Sandbox, runtime: &Runtime, cache: &Cache) -> Result<GuestTarget> {
    let path = cache
        .bucket(Bucket::Runtimes)?
        .join(format!("target-{}.json", &runtime.module_sha256[..32]));
    if let Ok(json) = fs::read_to_string(&path)
        && let Ok(target) = GuestTarget::from_probe_json(&json)
    {
        return Ok(target);
    }
    let io = tempfile::tempdir().context("creating a scratch folder")?;
    let script = format!(
        "import sys\nsys.stdout = open('{}/target.json', 'w')\n{PROBE_SCRIPT}\nsys.stdout.close()\n",
        guest_paths::IO
    );
    let run = GuestRun {
        args: vec!["-S".into(), "-c".into(), script],
        env: Vec::new(),
        mounts: vec![Mount::read_write(io.path(), guest_paths::IO)],
        limits: Limits::default(),
        log: LogSink::Capture,
    };
    let exit = sandbox
        .run(&run)
        .map_err(|e| anyhow!("asking the interpreter for its environment: {e}"))?;
    let json = fs::read_to_string(io.path().join("target.json")).with_context(|| {
        format!(
            "the interpreter did not report its environment (exit code {}): {}",
            exit.code,
            String::from_utf8_lossy(&exit.log)
        )
    })?;
    let target = GuestTarget::from_probe_json(&json)?;
    cache::write_atomic(&path, json.as_bytes())?;
    Ok(target)
}

/// Moves the verified artifacts into `outdir`, each under a temporary name first so that
/// no partial file ever carries an artifact's name.
fn publish(artifacts: &[Artifact], outdir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    let mut published = Vec::new();
    for artifact in artifacts {
        let dest = match artifact {
            Artifact::File(file) => file
                .publish(outdir)
                .with_context(|| format!("writing {} into {}", file.file_name, outdir.display()))?,
            Artifact::Dir { path, name } => publish_dir(path, name, outdir)?,
        };
        published.push(dest);
    }
    Ok(published)
}

fn publish_dir(path: &Path, name: &str, outdir: &Path) -> Result<PathBuf> {
    let dest = outdir.join(name);
    let staging = tempfile::Builder::new()
        .prefix(".wasm-build-")
        .tempdir_in(outdir)
        .with_context(|| format!("writing into {}", outdir.display()))?;
    let tmp = staging.path().join(name);
    copy_tree_or_file(path, &tmp)?;
    if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(&dest).with_context(|| format!("replacing {}", dest.display()))?;
    }
    fs::rename(&tmp, &dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(dest)
}

fn copy_tree_or_file(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if meta.is_dir() {
        fs::create_dir(to).with_context(|| format!("creating {}", to.display()))?;
        for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
            let entry = entry?;
            copy_tree_or_file(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        fs::copy(from, to).with_context(|| format!("copying to {}", to.display()))?;
    } else {
        bail!("{} is neither a file nor a folder", from.display());
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_config_settings_become_lists() {
        let settings = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x".to_string()),
            ("a".to_string(), "2".to_string()),
            ("a".to_string(), "3".to_string()),
        ];
        assert_eq!(
            config_settings_json(&settings),
            serde_json::json!({"a": ["1", "2", "3"], "b": "x"})
        );
    }

    #[test]
    fn same_project_compares_normalized_names_and_pep_440_versions() {
        // What `same_project` relies on: `Foo_Bar 1.0` (an sdist) is `foo-bar 1.0.0` (a wheel).
        let sdist = SdistFilename::parse_guess("Foo_Bar-1.0.tar.gz").unwrap();
        assert_eq!(sdist.name, "foo-bar".parse::<PackageName>().unwrap());
        assert_eq!(sdist.version, "1.0.0".parse::<Version>().unwrap());
        assert_ne!(sdist.version, "1.0.post0".parse::<Version>().unwrap());
    }

    #[test]
    fn guest_environment_is_fixed_plus_user() {
        let env = guest_environment(&[
            ("HOME".into(), "/tmp/elsewhere".into()),
            ("X".into(), "1".into()),
        ]);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("HOME"), Some("/tmp/elsewhere"));
        assert_eq!(get("X"), Some("1"));
        assert_eq!(get("TMPDIR"), Some("/tmp"));
        assert_eq!(get("PATH"), None);
    }
}
