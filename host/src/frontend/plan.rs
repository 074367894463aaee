//! Which artifacts a request builds, in which order, and from what: decided before anything
//! is staged, from the request alone.

use super::{BuildRequest, Distribution};
use std::path::{Path, PathBuf};

/// What the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// A project folder.
    Tree,
    /// An sdist file.
    Sdist,
}

/// Where one step's project comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A scratch copy of the project folder.
    Tree,
    /// A scratch copy of the project folder, seen by the guest at the folder's real path
    /// (so that an editable wheel points at the user's tree).
    TreeAtItsPath,
    /// The sdist the user gave, unpacked.
    GivenSdist,
    /// The sdist an earlier step built, unpacked from the very handle that was verified.
    BuiltSdist,
}

/// One artifact to build. Each step gets a tree of its own: no step sees what an earlier
/// backend run left in its tree (`build/`, `*.egg-info`), as a build of each from a fresh
/// checkout would not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub dist: Distribution,
    pub from: Origin,
}

/// A request that cannot be planned: the command line asks for something impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("only a wheel or wheel metadata can be built from an sdist, not {0}")]
    NotFromAnSdist(&'static str),
    #[error(
        "an editable wheel and a wheel have the same file name: build them in two runs with \
         different output folders"
    )]
    EditableAndWheel,
}

impl BuildRequest {
    /// Whether the source is an sdist file (else a project folder).
    pub(crate) fn source_kind(&self) -> SourceKind {
        if self.source.is_file() {
            SourceKind::Sdist
        } else {
            SourceKind::Tree
        }
    }

    /// Whether the request can be planned, before anything is prepared: the combination of
    /// distributions is possible from this source.
    pub fn check(&self) -> Result<(), PlanError> {
        plan(&self.distributions, self.source_kind()).map(drop)
    }

    /// Where the artifacts go: `outdir`, else `dist/` in the project folder, or the sdist's
    /// own folder.
    pub fn output_folder(&self) -> PathBuf {
        match (&self.outdir, self.source_kind()) {
            (Some(dir), _) => dir.clone(),
            (None, SourceKind::Sdist) => self
                .source
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            (None, SourceKind::Tree) => self.source.join("dist"),
        }
    }
}

/// The steps that build `distributions` from a source of `kind`. Empty `distributions`:
/// from a folder, the sdist and then the wheel from that sdist (as `python -m build`
/// does); from an sdist, the wheel.
pub(crate) fn plan(
    distributions: &[Distribution],
    kind: SourceKind,
) -> Result<Vec<Step>, PlanError> {
    let step = |dist, from| Step { dist, from };
    if distributions.is_empty() {
        return Ok(match kind {
            SourceKind::Tree => vec![
                step(Distribution::Sdist, Origin::Tree),
                step(Distribution::Wheel, Origin::BuiltSdist),
            ],
            SourceKind::Sdist => vec![step(Distribution::Wheel, Origin::GivenSdist)],
        });
    }
    if distributions.contains(&Distribution::Editable)
        && distributions.contains(&Distribution::Wheel)
    {
        return Err(PlanError::EditableAndWheel);
    }
    let mut steps = Vec::new();
    for &dist in distributions {
        let from = match (kind, dist) {
            (SourceKind::Sdist, Distribution::Wheel | Distribution::Metadata) => Origin::GivenSdist,
            (SourceKind::Sdist, other) => return Err(PlanError::NotFromAnSdist(other.label())),
            (SourceKind::Tree, Distribution::Editable) => Origin::TreeAtItsPath,
            (SourceKind::Tree, _) => Origin::Tree,
        };
        if !steps.iter().any(|s: &Step| s.dist == dist) {
            steps.push(step(dist, from));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Distribution::{Editable, Metadata, Sdist, Wheel};

    fn planned(dists: &[Distribution], kind: SourceKind) -> Vec<(Distribution, Origin)> {
        plan(dists, kind)
            .unwrap()
            .into_iter()
            .map(|s| (s.dist, s.from))
            .collect()
    }

    #[test]
    fn by_default_the_wheel_is_built_from_the_sdist() {
        assert_eq!(
            planned(&[], SourceKind::Tree),
            [(Sdist, Origin::Tree), (Wheel, Origin::BuiltSdist)]
        );
        assert_eq!(
            planned(&[], SourceKind::Sdist),
            [(Wheel, Origin::GivenSdist)]
        );
    }

    #[test]
    fn from_a_folder_each_artifact_is_built_from_the_folder() {
        for dist in [Sdist, Wheel, Metadata] {
            assert_eq!(planned(&[dist], SourceKind::Tree), [(dist, Origin::Tree)]);
        }
        assert_eq!(
            planned(&[Editable], SourceKind::Tree),
            [(Editable, Origin::TreeAtItsPath)]
        );
        assert_eq!(
            planned(&[Sdist, Wheel, Metadata], SourceKind::Tree),
            [
                (Sdist, Origin::Tree),
                (Wheel, Origin::Tree),
                (Metadata, Origin::Tree)
            ]
        );
        assert_eq!(
            planned(&[Sdist, Editable, Metadata], SourceKind::Tree),
            [
                (Sdist, Origin::Tree),
                (Editable, Origin::TreeAtItsPath),
                (Metadata, Origin::Tree)
            ]
        );
    }

    #[test]
    fn from_an_sdist_only_wheels_and_metadata() {
        assert_eq!(
            planned(&[Wheel], SourceKind::Sdist),
            [(Wheel, Origin::GivenSdist)]
        );
        assert_eq!(
            planned(&[Wheel, Metadata], SourceKind::Sdist),
            [(Wheel, Origin::GivenSdist), (Metadata, Origin::GivenSdist)]
        );
        for dist in [Sdist, Editable] {
            assert_eq!(
                plan(&[dist], SourceKind::Sdist),
                Err(PlanError::NotFromAnSdist(dist.label()))
            );
        }
        assert!(plan(&[Wheel, Sdist], SourceKind::Sdist).is_err());
    }

    #[test]
    fn an_editable_wheel_and_a_wheel_are_refused_together() {
        assert_eq!(
            plan(&[Wheel, Editable], SourceKind::Tree),
            Err(PlanError::EditableAndWheel)
        );
        assert_eq!(
            plan(&[Sdist, Wheel, Editable, Metadata], SourceKind::Tree),
            Err(PlanError::EditableAndWheel)
        );
    }

    #[test]
    fn a_distribution_named_twice_is_built_once() {
        assert_eq!(
            planned(&[Wheel, Wheel], SourceKind::Tree),
            [(Wheel, Origin::Tree)]
        );
    }
}
