//! A project's wheel metadata as JSON (`--metadata`): read from a wheel, from an sdist's
//! PKG-INFO where PEP 643 makes it the wheel's, else from `prepare_metadata_for_build_wheel`
//! in the sandbox.

use super::describe::read_metadata_file;
use super::plan::SourceKind;
use super::source::Scratch;
use super::{BuildError, Distribution, Frontend, Settings};
use crate::reporter::{
    Event, MetadataAnswer, MetadataSource, Reporter, SourceFacts, SourceKind as Kind,
};
use anyhow::{Context, anyhow};
use std::fs::{self, File};
use std::path::Path;
use wasm_build_packaging::archive;
use wasm_build_packaging::cache;
use wasm_build_packaging::metadata::{CoreMetadata, metadata_json};
use wasm_build_packaging::verify;

/// How far [`metadata_without_backend`] got.
#[derive(Debug)]
pub enum StaticAnswer {
    /// The answer, from a wheel or a static PKG-INFO: no backend code ran.
    Answered(MetadataAnswer),
    /// The backend's hook must answer; `not_static` says why PKG-INFO could not (for an
    /// sdist that was read).
    NeedsHook { not_static: Option<String> },
}

/// The core metadata of the wheel `source` is, or (with `allow_static`) of the sdist
/// `source` whose PKG-INFO is static by PEP 643 (Metadata-Version 2.2 or later, nothing a
/// wheel may change `Dynamic`), as `python -m build --metadata` prints it; reported to
/// `reporter`. Needs no runtime, sandbox or cache: a caller answers these before it makes
/// a [`Frontend`], and makes one only for [`StaticAnswer::NeedsHook`].
pub fn metadata_without_backend(
    source: &Path,
    allow_static: bool,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<StaticAnswer, BuildError> {
    let answer = if is_wheel(source) {
        wheel_metadata(source, settings, reporter)?
    } else if allow_static && source.is_file() {
        match static_metadata(source, settings, reporter)? {
            Ok(answer) => answer,
            Err(why) => {
                return Ok(StaticAnswer::NeedsHook {
                    not_static: Some(why),
                });
            }
        }
    } else {
        return Ok(StaticAnswer::NeedsHook { not_static: None });
    };
    reporter.report(&Event::Metadata(&answer));
    Ok(StaticAnswer::Answered(answer))
}

impl Frontend {
    /// The core metadata of the wheel `source` builds to (a project folder or an sdist), or
    /// of the wheel `source` is, as `python -m build --metadata` prints it. With
    /// `allow_static`, an sdist whose PKG-INFO is static by PEP 643 (Metadata-Version 2.2 or
    /// later, nothing `Dynamic`) answers without running any backend code.
    pub fn metadata(
        &self,
        source: &Path,
        allow_static: bool,
    ) -> Result<MetadataAnswer, BuildError> {
        match metadata_without_backend(source, allow_static, &self.settings, &*self.reporter)? {
            StaticAnswer::Answered(answer) => Ok(answer),
            StaticAnswer::NeedsHook { not_static } => self.metadata_from_hook(source, not_static),
        }
    }

    /// The metadata of the wheel the project folder or sdist `source` builds to, from
    /// `prepare_metadata_for_build_wheel` in the sandbox; `not_static` (why PKG-INFO was
    /// not used) goes into the answer.
    pub fn metadata_from_hook(
        &self,
        source: &Path,
        not_static: Option<String>,
    ) -> Result<MetadataAnswer, BuildError> {
        let kind = if source.is_file() {
            SourceKind::Sdist
        } else {
            SourceKind::Tree
        };
        let json = self.hook_metadata(source, kind)?;
        let answer = MetadataAnswer {
            source: MetadataSource::Hook,
            not_static,
            json,
        };
        self.reporter.report(&Event::Metadata(&answer));
        Ok(answer)
    }

    /// `prepare_metadata_for_build_wheel` (or the runner's fallback) in the sandbox, on a
    /// scratch copy of the tree or the unpacked sdist; nothing is published.
    fn hook_metadata(
        &self,
        source: &Path,
        kind: SourceKind,
    ) -> Result<serde_json::Map<String, serde_json::Value>, BuildError> {
        let scratch = Scratch::new(self, 1, kind)?;
        let verified = scratch.path().join("verified");
        fs::create_dir(&verified).context("creating the scratch folder")?;
        let project = match kind {
            SourceKind::Sdist => self.unpack_sdist_path(source, scratch.path())?,
            SourceKind::Tree => {
                self.reporter.report(&Event::Source(&SourceFacts {
                    path: source.display().to_string(),
                    kind: Kind::Tree,
                    sha256: None,
                    project: None,
                    clock: None,
                }));
                self.stage_tree(source, scratch.path())?
            }
        };
        let artifact =
            self.build_one(&project, Distribution::Metadata, scratch.path(), &verified)?;
        let super::artifact::Artifact::Dir { dir, name } = &artifact else {
            return Err(anyhow!("the metadata hook returned no folder").into());
        };
        let bytes =
            read_metadata_file(dir).ok_or_else(|| anyhow!("cannot read METADATA of {name}"))?;
        metadata_json(&bytes)
            .with_context(|| format!("reading {name}/METADATA"))
            .map_err(BuildError::Other)
    }
}

/// The metadata of a wheel file, after verification.
fn wheel_metadata(
    path: &Path,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<MetadataAnswer, BuildError> {
    let refused = |source: anyhow::Error| BuildError::Input {
        what: format!("the wheel {}", path.display()),
        source,
    };
    let file = File::open(path).map_err(|e| refused(e.into()))?;
    let name = file_name(path);
    let (sha256, _) = cache::sha256_reader(&file).map_err(|e| refused(e.into()))?;
    let limits = &settings.artifact_limits;
    let wheel = verify::verify_wheel_file(&file, &name, limits).map_err(|e| refused(e.into()))?;
    reporter.report(&Event::Source(&SourceFacts {
        path: path.display().to_string(),
        kind: Kind::Wheel,
        sha256: Some(sha256),
        project: Some((
            wheel.filename.name.to_string(),
            wheel.filename.version.to_string(),
        )),
        clock: None,
    }));
    let facts = verify::describe_verified(&file, &name, limits).map_err(|e| refused(e.into()))?;
    let json = metadata_json(&facts.core_metadata).map_err(|e| refused(e.into()))?;
    Ok(MetadataAnswer {
        source: MetadataSource::Wheel,
        not_static: None,
        json,
    })
}

/// The sdist's PKG-INFO when PEP 643 makes it the wheel's metadata (`Err(why not)`
/// otherwise), read with the extraction rules, nothing written or run.
fn static_metadata(
    path: &Path,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<Result<MetadataAnswer, String>, BuildError> {
    let name = file_name(path);
    let refused = |source: anyhow::Error| BuildError::Input {
        what: format!("the sdist {name}"),
        source,
    };
    let file = File::open(path).map_err(|e| refused(e.into()))?;
    let (sha256, _) = cache::sha256_reader(&file).map_err(|e| refused(e.into()))?;
    let mut facts = SourceFacts {
        path: path.display().to_string(),
        kind: Kind::Sdist,
        sha256: Some(sha256),
        project: None,
        clock: None,
    };
    reporter.report(&Event::Source(&facts));
    let read = archive::read_sdist_file(&file, &name, &settings.extract_limits)
        .map_err(|source| BuildError::sdist_refused(&name, source))?;
    facts.project = Some((
        read.filename.name.to_string(),
        read.filename.version.to_string(),
    ));
    reporter.report(&Event::Source(&facts));
    let Some(pkg_info) = read.pkg_info else {
        return Ok(Err("it has no PKG-INFO".into()));
    };
    let parsed = match CoreMetadata::parse(&pkg_info) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Err(format!("its PKG-INFO does not parse: {e:#}"))),
    };
    if let Err(why) = parsed.static_for_wheels() {
        return Ok(Err(why.to_string()));
    }
    match metadata_json(&pkg_info) {
        Ok(json) => Ok(Ok(MetadataAnswer {
            source: MetadataSource::Static,
            not_static: None,
            json,
        })),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Whether `path` names a wheel: a file whose name ends in `.whl`.
pub(crate) fn is_wheel(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("whl"))
        && path.is_file()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
