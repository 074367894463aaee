//! Timing guest runs as the frontend makes them, for `host/examples/guest_bench.rs` and
//! `bench/`: hook runs on a fresh copy of a project, or the interpreter with a build
//! environment, with everything else (runtime, sandbox, environment) ready beforehand.

use super::{Frontend, Settings};
use crate::env::BuildEnv;
use crate::hooks;
use crate::protocol::{Hook, HookCall, guest_paths};
use crate::reporter::Reporter;
use crate::sandbox::{GuestRun, LogSink, Mount};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasm_build_packaging::pyproject::{BuildSystem, parse_requirement};

/// A frontend with one build environment made, ready to time runs in it.
pub struct GuestBench {
    frontend: Frontend,
    env: BuildEnv,
    project: Option<(PathBuf, BuildSystem)>,
}

impl GuestBench {
    /// Provisions what `settings` ask for and makes the build environment of `with` plus,
    /// when `project` is given, the project's build requirements.
    pub fn new(
        settings: Settings,
        reporter: Arc<dyn Reporter>,
        project: Option<&Path>,
        with: &[String],
    ) -> Result<Self> {
        let frontend = Frontend::new(settings, reporter)?;
        let project = project
            .map(|dir| anyhow::Ok((dir.to_path_buf(), BuildSystem::read(dir)?)))
            .transpose()?;
        let mut requirements = with
            .iter()
            .map(|raw| parse_requirement(raw).with_context(|| format!("--with {raw}")))
            .collect::<Result<Vec<_>>>()?;
        if let Some((_, build_system)) = &project {
            requirements.extend(build_system.requirements.iter().cloned());
        }
        let env = frontend
            .environment(&requirements, "the benchmark")
            .map_err(|e| anyhow!(super::error::one_line(&e)))?;
        Ok(Self {
            frontend,
            env,
            project,
        })
    }

    /// The runtime's id.
    pub fn runtime_id(&self) -> &str {
        &self.frontend.runtime.id
    }

    /// The guest's full Python version.
    pub fn python_full_version(&self) -> &str {
        &self.frontend.target.markers.python_full_version
    }

    /// `name==version` of each wheel in the environment.
    pub fn environment(&self) -> &[String] {
        &self.env.contents
    }

    /// The environment's site-packages on the host.
    pub fn site_packages(&self) -> &Path {
        &self.env.site_packages
    }

    /// One sandbox run calling `get_requires_for_build_X` and `build` on a fresh copy of the
    /// project, as a build makes it (from the prepared backend unless the settings say
    /// otherwise); the time of the run alone.
    pub fn time_hooks(&self, build: Hook) -> Result<Duration> {
        let Some((dir, build_system)) = &self.project else {
            bail!("no project to run hooks on");
        };
        let get_requires = match build {
            Hook::BuildWheel => Hook::GetRequiresForBuildWheel,
            Hook::BuildSdist => Hook::GetRequiresForBuildSdist,
            Hook::BuildEditable => Hook::GetRequiresForBuildEditable,
            other => bail!("{other} is not a build hook"),
        };
        let scratch = tempfile::tempdir().context("creating a scratch folder")?;
        let project = self
            .frontend
            .stage_tree(dir, scratch.path())
            .map_err(|e| anyhow!(super::error::one_line(&e)))?;
        let calls = HookCall::build_step(get_requires, build, &build_system.requires);
        let context = self
            .frontend
            .hook_context(&project, &self.env, None, scratch.path(), None);
        let started = Instant::now();
        let results = hooks::call_hooks(&context, &calls).map_err(|e| {
            anyhow!(
                "{}\n{}",
                super::error::one_line(&e),
                String::from_utf8_lossy(&e.log)
            )
        })?;
        let elapsed = started.elapsed();
        if results.stopped_for_requirements {
            bail!("the backend asked for more requirements; pass them with --with");
        }
        Ok(elapsed)
    }

    /// One run of the interpreter with `args`, a fresh `/tmp`, the environment at its
    /// usual place and `mounts`; the time of the run. Fails unless it exits with 0.
    pub fn time_python(&self, args: &[String], mounts: &[Mount]) -> Result<Duration> {
        let scratch = tempfile::tempdir().context("creating a scratch folder")?;
        let run = GuestRun {
            args: args.to_vec(),
            env: self.frontend.guest_env.clone(),
            mounts: [
                Mount::read_write(scratch.path(), guest_paths::TMP),
                Mount::read_only(&self.env.site_packages, guest_paths::ENV),
            ]
            .into_iter()
            .chain(mounts.iter().cloned())
            .collect(),
            limits: self.frontend.settings.limits.clone(),
            log: LogSink::Capture,
            determinism: None,
        };
        let started = Instant::now();
        let exit = self.frontend.sandbox.run(&run)?;
        let elapsed = started.elapsed();
        if exit.code != 0 {
            bail!("exit {}: {}", exit.code, String::from_utf8_lossy(&exit.log));
        }
        Ok(elapsed)
    }
}
