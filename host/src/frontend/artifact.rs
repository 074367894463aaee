//! What the backend returned, checked before it leaves the scratch folder, and published
//! into the output folder once every requested artifact passed.

use super::source::Project;
use super::{BuildError, Distribution, Refusal};
use anyhow::{Context, Result};
use pep440_rs::Version;
use pep508_rs::PackageName;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use wasm_build_packaging::filename::WheelFilename;
use wasm_build_packaging::limits::ArtifactLimits;
use wasm_build_packaging::publish::{OutputDir, PublishError};
use wasm_build_packaging::verify::{self, CollectedArtifact};

/// A verified artifact, waiting to be published.
pub(super) enum Artifact {
    /// An sdist or wheel, held open: what is published is the very file that was verified.
    File(CollectedArtifact),
    /// A `.dist-info` folder, copied out of the guest's output folder after the run ended
    /// (through handles, without following links) and held open.
    Dir { dir: OwnedFd, name: String },
}

impl Artifact {
    pub fn name(&self) -> &str {
        match self {
            Artifact::File(file) => &file.file_name,
            Artifact::Dir { name, .. } => name,
        }
    }
}

/// Checks what `dist`'s build hook returned (`returned`, in `out_dir`) and keeps it: a
/// metadata folder is copied into `verified`, a file is held open.
pub(super) fn check(
    project: &Project,
    dist: Distribution,
    what: String,
    returned: &str,
    out_dir: &Path,
    verified: &Path,
    limits: &ArtifactLimits,
) -> Result<Artifact, BuildError> {
    let refused = |source: Refusal| BuildError::ArtifactRefused {
        what: what.clone(),
        source: Box::new(source),
    };
    if dist == Distribution::Metadata {
        let collected = verify::collect_metadata_dir(out_dir, returned, limits)
            .map_err(|e| refused(e.into()))?;
        let (name, version) = (
            collected.metadata.name.parse::<PackageName>(),
            collected.metadata.version.parse::<Version>(),
        );
        if let (Ok(name), Ok(version)) = (name, version) {
            same_project(project, "metadata", &name, &version).map_err(refused)?;
        }
        let kept = OutputDir::open(verified, None)
            .and_then(|verified| verified.publish_tree(&collected.name, &collected.dir))
            .context("keeping the verified metadata")?;
        let dir = fs::File::open(&kept)
            .with_context(|| format!("opening {}", kept.display()))?
            .into();
        return Ok(Artifact::Dir {
            dir,
            name: collected.name,
        });
    }
    let collected = verify::collect_artifact(out_dir, returned).map_err(|e| refused(e.into()))?;
    if dist == Distribution::Sdist {
        verify::verify_sdist_file(&collected.file, &collected.file_name, limits)
            .map_err(|e| refused(e.into()))?;
    } else {
        let wheel = verify::verify_wheel_file(&collected.file, &collected.file_name, limits)
            .map_err(|e| refused(e.into()))?;
        let file = &wheel.filename;
        same_project(project, "wheel", &file.name, &file.version).map_err(refused)?;
        check_pure(file).map_err(refused)?;
    }
    Ok(Artifact::File(collected))
}

/// What is built from an sdist must be the sdist's project at the sdist's version: a
/// backend must not pass off a wheel of another project as this one's.
fn same_project(
    project: &Project,
    what: &'static str,
    name: &PackageName,
    version: &Version,
) -> Result<(), Refusal> {
    let Some(sdist) = &project.sdist else {
        return Ok(());
    };
    if &sdist.name != name || &sdist.version != version {
        return Err(Refusal::OtherProject {
            what,
            found: format!("{name} {version}"),
            sdist: project.label.clone(),
            expected: format!("{} {}", sdist.name, sdist.version),
        });
    }
    Ok(())
}

/// A wheel built in the sandbox can only be pure Python: a platform tag means the backend
/// built (or tried to build) extensions for WASI, which no host can install.
fn check_pure(filename: &WheelFilename) -> Result<(), Refusal> {
    let platforms: Vec<&str> = filename
        .platform_tags
        .iter()
        .map(String::as_str)
        .filter(|tag| *tag != "any")
        .collect();
    if !platforms.is_empty() {
        return Err(Refusal::Platform {
            platforms: platforms.join("."),
        });
    }
    Ok(())
}

/// Moves the verified artifacts into `outdir`, each under a temporary name first so that
/// no partial file ever carries an artifact's name. The part of `outdir` below `project`
/// (the project folder, a stranger's tree) is walked without following links.
pub(super) fn publish(
    artifacts: &[Artifact],
    outdir: &Path,
    project: Option<&Path>,
) -> Result<Vec<PathBuf>, PublishError> {
    let dest = OutputDir::open(outdir, project)?;
    artifacts
        .iter()
        .map(|artifact| match artifact {
            Artifact::File(file) => file.publish(&dest),
            Artifact::Dir { dir, name } => dest.publish_tree(name, dir),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_project_compares_normalized_names_and_pep_440_versions() {
        // What `same_project` relies on: `Foo_Bar 1.0` (an sdist) is `foo-bar 1.0.0` (a wheel).
        let sdist =
            wasm_build_packaging::filename::SdistFilename::parse_guess("Foo_Bar-1.0.tar.gz")
                .unwrap();
        assert_eq!(sdist.name, "foo-bar".parse::<PackageName>().unwrap());
        assert_eq!(sdist.version, "1.0.0".parse::<Version>().unwrap());
        assert_ne!(sdist.version, "1.0.post0".parse::<Version>().unwrap());
    }
}
