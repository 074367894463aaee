//! Build environments for the frontend's builds: requirements resolved for the guest, then
//! the environment made or taken from the cache, memoized per process.

use super::{BuildError, Frontend};
use crate::env::{self, BuildEnv, EnvWheel};
use crate::reporter::{Event, ResolvedRequirement, Step, Warning};
use crate::sandbox::SandboxError;
use pep508_rs::{Requirement, VerbatimUrl};
use wasm_build_packaging::resolve;

impl Frontend {
    /// The build environment for `requirements` (of `label`, for messages).
    pub(super) fn environment(
        &self,
        requirements: &[Requirement<VerbatimUrl>],
        label: &str,
    ) -> Result<BuildEnv, BuildError> {
        let mut key: Vec<String> = requirements.iter().map(ToString::to_string).collect();
        key.sort();
        let known = super::lock(&self.environments).get(&key).cloned();
        if let Some((env, resolved)) = known {
            self.reporter.report(&Event::Requirements(&resolved));
            return Ok(env);
        }
        let failed = |source: anyhow::Error| BuildError::Requirements {
            what: label.to_string(),
            source,
        };
        let resolution = self
            .step(Step::Resolving, || {
                resolve::resolve(&self.index, &self.target, requirements, &self.constraints)
            })
            .map_err(|e| failed(e.into()))?;
        for note in &resolution.notes {
            self.reporter
                .report(&Event::Warning(&Warning::Resolution(note.clone())));
        }
        let wheels: Vec<EnvWheel> = resolution.packages.iter().map(EnvWheel::from).collect();
        let env = self
            .step(Step::PreparingEnvironment, || {
                env::prepare(
                    &self.sandbox,
                    &self.runtime,
                    &self.cache,
                    &wheels,
                    &self.settings.limits,
                    self.reporter.as_ref(),
                )
            })
            .map_err(|error| match error.downcast::<SandboxError>() {
                // The sandbox stopped the bytecode compilation: a limit, as for hooks.
                Ok(source) => BuildError::Stopped {
                    what: "compiling the build environment's bytecode".to_string(),
                    source,
                },
                Err(error) => failed(error),
            })?;
        self.reporter.report(&Event::EnvironmentReady {
            contents: &env.contents,
        });
        let resolved: Vec<ResolvedRequirement> = wheels
            .iter()
            .map(|wheel| ResolvedRequirement {
                name: wheel.name.clone(),
                version: wheel.version.clone(),
                filename: wheel
                    .path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: wheel.sha256.clone(),
            })
            .collect();
        self.reporter.report(&Event::Requirements(&resolved));
        super::lock(&self.environments).insert(key, (env.clone(), resolved));
        Ok(env)
    }
}
