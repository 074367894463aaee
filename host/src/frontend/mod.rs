//! The build frontend: from a source tree or an sdist to verified artifacts in the output
//! folder. Every step the backend takes runs in the sandbox; everything else is here.
//!
//! ```text
//! plan    which artifacts, from what (plan.rs)
//! stage   scratch copy of the tree, or safe extraction of the sdist (source.rs)
//! env     resolve `requires` → build environment, cached (environment.rs)
//! hooks   get_requires_for_build_X + build_X in one instance; if the backend asks for
//!         more, resolve again and run build_X in a new instance (crate::hooks)
//! verify  the returned artifact is checked before it leaves the scratch folder (artifact.rs)
//! publish all artifacts moved into the output folder once every build succeeded
//! ```

mod artifact;
mod bench;
mod describe;
mod environment;
mod error;
mod git;
mod hook_input;
mod metadata;
mod native;
mod plan;
mod run;
mod sdist_requirements;
mod source;

pub use self::bench::GuestBench;
pub(crate) use self::error::one_line;
pub use self::error::{BuildError, Hint, Limit, Refusal, index_hint};
pub use self::git::GitUnanswered;
use self::hook_input::config_settings_json;
pub(crate) use self::hook_input::guest_environment;
pub use self::metadata::{StaticAnswer, metadata_without_backend};
pub use self::plan::PlanError;
pub use self::sdist_requirements::SdistRequirementError;

use self::artifact::Artifact;
use self::plan::{Origin, SourceKind};
use self::source::{Project, Scratch};
use crate::backend_bytecode::StepBytecode;
use crate::env::BuildEnv;
use crate::hooks::{self, HookContext};
use crate::prepared::PreparedBackends;
use crate::protocol::{Hook, HookCall};
use crate::reporter::{BackendBytecode, Event, Reporter, ResolvedRequirement, Step, Warning};
use crate::runtime::{self, Runtime, RuntimeChoice};
use crate::sandbox::{self, Isolation, Limits, LogSink, Sandbox};
use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::limits::{ArchiveLimits, ArtifactLimits, StageLimits};
use wasm_build_packaging::publish::OutputDir;
use wasm_build_packaging::pyproject::parse_requirement;
use wasm_build_packaging::target::GuestTarget;

/// Most requirements a backend's `get_requires_for_build_*` may add.
const MAX_BACKEND_REQUIREMENTS: usize = 128;

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
    /// What it is called in messages.
    pub fn label(self) -> &'static str {
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
    /// `--config-json`: the hooks' `config_settings` object, which `config_settings` add to.
    pub config_json: Option<serde_json::Map<String, Value>>,
    /// The cache folder; `None`: `$WASM_BUILD_CACHE_DIR`, else the user's cache folder.
    pub cache_dir: Option<PathBuf>,
    /// Where builds' scratch folders are made; `None`: `$TMPDIR` when set, else in memory
    /// when the builds' limits fit (see [`wasm_build_packaging::tempdirs::place`]), else the
    /// system's temporary folder.
    pub scratch_dir: Option<PathBuf>,
    /// `--env KEY=VALUE`, added to the guest's fixed environment.
    pub guest_env: Vec<(String, String)>,
    pub limits: Limits,
    pub artifact_limits: ArtifactLimits,
    pub stage_limits: StageLimits,
    /// Limits for unpacking an sdist given as the source.
    pub extract_limits: ArchiveLimits,
    /// Use a throw-away cache (`--no-cache`).
    pub no_cache: bool,
    /// Where guests run: threads of this process, or child processes (what the CLI uses).
    pub isolation: Isolation,
    /// Import the backend in every hook run instead of starting runs from a prepared one
    /// (`--no-prepared-backend`, see docs/runtime.md).
    pub no_prepared_backends: bool,
    /// How many builds the caller runs at once (`-j`): as many guest processes are kept
    /// ready. 0 means 1.
    pub jobs: usize,
    /// Refuse build requirements that have no usable wheel instead of building them from
    /// their sdist (`--no-build-requirements-from-sdist`).
    pub no_build_requirements_from_sdist: bool,
    /// A deterministic guest (`--deterministic`): its clock starts at the source's epoch,
    /// its randomness is seeded from the source's sha256, file times are clamped to the
    /// epoch, and the host's `SOURCE_DATE_EPOCH` is not passed (see docs/cli.md).
    pub deterministic: bool,
}

impl Settings {
    /// `--config-json` with the `-C` settings added: the `config_settings` the hooks get.
    pub fn hooks_config_settings(&self) -> Value {
        config_settings_json(
            self.config_json.clone().unwrap_or_default(),
            &self.config_settings,
        )
    }
}

/// The frontend: one runtime, sandbox, index client and cache for any number of builds,
/// which may run at once from several threads. [`Frontend::with_reporter`] gives a view
/// that shares all of it and reports elsewhere (one report per build).
pub struct Frontend {
    shared: Arc<Shared>,
    reporter: Arc<dyn Reporter>,
    /// The backend warnings reported so far to `reporter` (category, message): each once,
    /// wherever the backend raised it.
    warned: Arc<Mutex<HashSet<(String, String)>>>,
}

/// What every build of a [`Frontend`] (and of its views) shares; opaque.
pub struct Shared {
    settings: Settings,
    runtime: Runtime,
    sandbox: Sandbox,
    target: GuestTarget,
    index: IndexClient,
    constraints: BuildConstraints,
    config_settings: Value,
    guest_env: Vec<(String, String)>,
    environments: Mutex<HashMap<Vec<String>, KnownEnv>>,
    /// Wheels built from the sdists of build requirements, searched by later resolutions.
    built_wheels: Mutex<Option<sdist_requirements::BuiltWheels>>,
    prepared: Option<PreparedBackends>,
    /// Last, so dropped last: with `--no-cache` it removes the folder that everything above
    /// works in, the stdlib a first run may still be unpacking among it (dropping the
    /// runtime waits for that).
    cache: Cache,
}

/// A build environment made by this process, and the wheels it holds (for reports).
type KnownEnv = (BuildEnv, Vec<ResolvedRequirement>);

impl std::ops::Deref for Frontend {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Frontend {
    /// Provisions the runtime, loads the sandbox and learns the guest's target. Everything
    /// the frontend does is reported to `reporter`.
    pub fn new(settings: Settings, reporter: Arc<dyn Reporter>) -> Result<Self> {
        let cache = match (&settings.cache_dir, settings.no_cache) {
            (_, true) => Cache::temporary()?,
            (Some(dir), false) => Cache::at(dir)?,
            (None, false) => Cache::from_env()?,
        };
        let index = IndexClient::new(settings.index.clone(), &cache)?;
        let choice = settings.runtime.clone().unwrap_or(RuntimeChoice::Default);
        reporter.report(&Event::StepStarted(Step::PreparingInterpreter));
        let prepared = (|| {
            let started = Instant::now();
            let runtime =
                runtime::provision_in_background(&choice, &cache, &index, reporter.as_ref())?;
            let unpacked = started.elapsed();
            let sandbox = Sandbox::with_isolation(&runtime, &cache, settings.isolation.clone())?;
            let timings = sandbox.timings();
            let target = timings.time("asking the interpreter for its markers", || {
                sandbox::probe_target(&sandbox, &runtime, &cache, &settings.limits)
            })?;
            let mut steps = vec![("unpacking or checking the runtime", unpacked)];
            steps.extend(timings.steps());
            reporter.report(&Event::InterpreterReady { steps: &steps });
            anyhow::Ok((runtime, sandbox, target))
        })();
        reporter.report(&Event::StepFinished(Step::PreparingInterpreter));
        let (runtime, sandbox, target) = prepared?;
        sandbox.keep_warm(settings.jobs);
        let constraints = match &settings.constraints {
            Some((path, require_hashes)) => BuildConstraints::from_file(path, *require_hashes)?,
            None => BuildConstraints::none(),
        };
        let config_settings = settings.hooks_config_settings();
        let guest_env = guest_environment(&settings.guest_env, !settings.deterministic);
        let prepared = if settings.no_prepared_backends {
            None
        } else {
            Some(PreparedBackends::new(&cache)?)
        };
        Ok(Self {
            shared: Arc::new(Shared {
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
                built_wheels: Mutex::new(None),
                prepared,
            }),
            reporter,
            warned: Default::default(),
        })
    }

    /// The same frontend (runtime, sandbox, caches, everything warm) reporting to
    /// `reporter`: what one build among others running at once reports to.
    pub fn with_reporter(&self, reporter: Arc<dyn Reporter>) -> Frontend {
        Frontend {
            shared: self.shared.clone(),
            reporter,
            warned: Default::default(),
        }
    }

    /// Where this view reports.
    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.reporter
    }

    /// The settings every build gets.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The package index client (its HTTP settings serve downloads of jobs' sources).
    pub(crate) fn index(&self) -> &IndexClient {
        &self.index
    }

    /// `-C` settings as the JSON object the hooks get.
    pub fn config_settings(&self) -> &Value {
        &self.config_settings
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
        let source = &request.source;
        let kind = request.source_kind();
        let steps = plan::plan(&request.distributions, kind)?;
        if kind == SourceKind::Tree {
            self.reporter
                .report(&Event::Source(&crate::reporter::SourceFacts {
                    path: source.display().to_string(),
                    kind: crate::reporter::SourceKind::Tree,
                    sha256: None,
                    project: None,
                    clock: None,
                }));
        }
        let outdir = request.output_folder();
        // A project that points its `dist` somewhere else is refused before anything runs.
        let project = (kind == SourceKind::Tree).then_some(source.as_path());
        OutputDir::check(&outdir, project).map_err(|e| BuildError::Input {
            what: format!("the output folder {}", outdir.display()),
            source: e.into(),
        })?;
        let scratch = Scratch::new(self, steps.len(), kind)?;
        let verified = scratch.path().join("verified");
        fs::create_dir(&verified).context("creating the scratch folder")?;

        let mut artifacts: Vec<Artifact> = Vec::new();
        for step in steps {
            let project = match step.from {
                Origin::Tree => self.stage_tree(source, scratch.path())?,
                Origin::TreeAtItsPath => {
                    let project = self.stage_tree(source, scratch.path())?;
                    self.editable_view(project, source)?
                }
                Origin::GivenSdist => self.unpack_sdist_path(source, scratch.path())?,
                Origin::BuiltSdist => {
                    let Some(Artifact::File(sdist)) = artifacts.last() else {
                        return Err(anyhow!("no sdist was built to build the wheel from").into());
                    };
                    self.unpack_sdist(&sdist.file, &sdist.file_name, scratch.path())?
                }
            };
            artifacts.push(self.build_one(&project, step.dist, scratch.path(), &verified)?);
            project.remove()?;
        }
        artifact::publish(&artifacts, &outdir, project).map_err(|e| BuildError::Other(e.into()))
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
        self.reporter.report(&Event::BuildStarted {
            dist,
            project: &project.label,
            backend: &bs.backend,
            python: &self.target.markers.python_full_version,
        });
        let env = self.environment(&bs.requirements, &project.label)?;
        let git_env = self.git_emulation(project)?;
        let git = git::mount(project, git_env.as_ref());
        let calls = HookCall::build_step(get_requires, build, &bs.requires);
        let name = project.sdist.as_ref().map(|s| s.name.to_string());
        let native = |e| native::classify_hook(e, name.as_deref());
        let bytecode = self.backend_bytecode(project, scratch);
        let mut results = hooks::call_hooks(
            &self.hook_context(project, &env, git, scratch, bytecode.as_ref()),
            &calls,
        )
        .map_err(native)?;
        let mut imported = results.bytecode.used;
        let mut compiled: HashSet<String> = std::mem::take(&mut results.bytecode.compiled)
            .into_iter()
            .collect();
        if results.stopped_for_requirements {
            let extra = results
                .value(get_requires)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Each name costs the host index requests: a backend gets a real build's worth.
            if extra.len() > MAX_BACKEND_REQUIREMENTS {
                return Err(BuildError::Requirements {
                    what: format!("{} (returned by {get_requires})", project.label),
                    source: anyhow!(
                        "the backend asked for {} build requirements; more than \
                         {MAX_BACKEND_REQUIREMENTS} are refused",
                        extra.len()
                    ),
                });
            }
            let mut requirements = bs.requirements.clone();
            for item in extra.iter().filter_map(Value::as_str) {
                let parsed = parse_requirement(item).map_err(|e| BuildError::Requirements {
                    what: format!("{} (returned by {get_requires})", project.label),
                    source: e.into(),
                })?;
                requirements.push(parsed);
            }
            let earlier = std::mem::take(&mut results.warnings);
            // The first run's folders go before the second run writes its own (and before
            // its environment, which may build requirements from their sdists): a step
            // holds one run's writes at a time (see `Scratch::new`).
            drop(results);
            let env = self.environment(&requirements, &project.label)?;
            results = hooks::call_hooks(
                &self.hook_context(project, &env, git, scratch, bytecode.as_ref()),
                &[HookCall::run(build)],
            )
            .map_err(native)?;
            results.warnings.splice(0..0, earlier);
            imported = imported.saturating_add(results.bytecode.used);
            compiled.extend(std::mem::take(&mut results.bytecode.compiled));
        }
        self.check_git(project, &results)?;
        let returned = results
            .value(build)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("`{build}` returned no name"))?;
        let artifact = artifact::check(
            project,
            dist,
            format!("{} `{returned}` (from {build})", dist.label()),
            returned,
            &results.out_dir(),
            verified,
            &self.artifact_limits(),
        )
        .map_err(|e| native::classify_artifact(e, &results.processes, name.as_deref()))?;
        self.report_artifact(&artifact, dist);
        for warning in &results.warnings {
            let key = (warning.category.clone(), warning.message.clone());
            if lock(&self.warned).insert(key) {
                self.reporter
                    .report(&Event::Warning(&Warning::Backend(warning.clone())));
            }
        }
        if let Some(compiler) = results.processes.iter().find(|p| p.is_compiler()) {
            self.reporter
                .report(&Event::Warning(&Warning::BuiltWithoutCompiler {
                    artifact: artifact.name().to_string(),
                    tried: compiler.describe(),
                }));
        }
        self.reporter.report(&Event::ArtifactBuilt {
            name: artifact.name(),
        });
        // The run's folders go before the compile run writes its own.
        drop(results);
        if let Some(bytecode) = &bytecode {
            self.compile_backend_bytecode(project, bytecode, imported, &compiled);
        }
        Ok(artifact)
    }

    /// The in-tree backend's bytecode for `project`'s step, in a folder made in `scratch`;
    /// `None` for a backend from the environment, and when there is none (reported).
    fn backend_bytecode(&self, project: &Project, scratch: &Path) -> Option<StepBytecode> {
        let backend_path = &project.build_system.backend_path;
        if backend_path.is_empty() {
            return None;
        }
        let gathered = StepBytecode::gather(
            &self.cache,
            &self.runtime,
            &project.root,
            &project.guest_root,
            backend_path,
            scratch,
        );
        if let Err(why) = &gathered {
            self.reporter
                .report(&Event::BackendBytecode(Err(why.as_str())));
        }
        gathered.ok()
    }

    /// Compiles what the step's runs compiled from source, for later builds, and reports
    /// what the step did with bytecode. A failure here costs later builds time, never
    /// this build its artifact.
    fn compile_backend_bytecode(
        &self,
        project: &Project,
        bytecode: &StepBytecode,
        imported: u64,
        reported: &HashSet<String>,
    ) {
        let started = Instant::now();
        let kept = bytecode.compile_reported(
            &self.sandbox,
            &project.root,
            &project.guest_root,
            reported,
            &self.settings.limits,
        );
        match kept {
            Ok(done) => {
                let (sources, cached) = bytecode.counts();
                self.reporter
                    .report(&Event::BackendBytecode(Ok(&BackendBytecode {
                        sources,
                        cached,
                        imported,
                        compiled: done.compiled,
                        compile_time: started.elapsed(),
                        first_seen: done.first_seen,
                        compile_failure: done.failure,
                    })));
            }
            Err(error) => {
                let why = format!("compiling it for later builds failed: {error:#}");
                self.reporter
                    .report(&Event::BackendBytecode(Err(why.as_str())));
            }
        }
    }

    fn hook_context<'a>(
        &'a self,
        project: &'a Project,
        env: &'a BuildEnv,
        git: Option<(&'a Path, &'a Path)>,
        scratch: &'a Path,
        bytecode: Option<&'a StepBytecode>,
    ) -> HookContext<'a> {
        HookContext {
            sandbox: &self.sandbox,
            backend: &project.build_system.backend,
            backend_path: &project.build_system.backend_path,
            source: &project.root,
            source_guest: &project.guest_root,
            site_packages: &env.site_packages,
            git,
            executables: &project.executables,
            bytecode,
            config_settings: &self.config_settings,
            markers: &self.target.markers,
            env: &self.guest_env,
            limits: &self.settings.limits,
            log: self.backend_output(false),
            scratch,
            prepare_dir: self.settings.scratch_dir.as_deref(),
            prepared: self.prepared.as_ref().map(|p| (p, env.key.as_str())),
            seed: None,
            determinism: project.determinism,
            reporter: self.reporter.as_ref(),
        }
    }

    /// Where the guest's output goes: kept, and streamed to the reporter when it wants it
    /// (or `always`).
    fn backend_output(&self, always: bool) -> LogSink {
        if !always && !self.reporter.wants_backend_output() {
            return LogSink::Capture;
        }
        let reporter = self.reporter.clone();
        LogSink::Stream(Arc::new(move |bytes: &[u8]| {
            reporter.report(&Event::BackendOutput(bytes));
        }))
    }

    /// The artifact limits, with the time the host may spend verifying: the run's own.
    fn artifact_limits(&self) -> ArtifactLimits {
        let mut limits = self.settings.artifact_limits;
        limits.archive.deadline = Some(Instant::now() + self.settings.limits.wall_time);
        limits
    }

    /// The limits for unpacking an sdist, with the time the host may spend on it.
    fn extract_limits(&self) -> ArchiveLimits {
        ArchiveLimits {
            deadline: Some(Instant::now() + self.settings.limits.wall_time),
            ..self.settings.extract_limits
        }
    }

    /// Runs `work` as `step`, reported before and after.
    fn step<T>(&self, step: Step, work: impl FnOnce() -> T) -> T {
        self.reporter.report(&Event::StepStarted(step));
        let result = work();
        self.reporter.report(&Event::StepFinished(step));
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
