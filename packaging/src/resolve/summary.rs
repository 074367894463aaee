//! The headline of a failed resolution: what the conflict comes down to, in a sentence naming
//! the requirements at odds (`hatchling 1.27.0 needs packaging>=24.2, but the build
//! requirements ask for packaging<20`), or the one package the build needs that has no
//! version it can use, with the reason for that package only. pubgrub's derivation stays
//! available apart, for `-v`.

use super::candidates::{Candidates, Exclusion};
use super::provider::Node;
use super::ranges::describe;
use super::report::{Explainer, Tree, VERSIONS_SHOWN};
use pep440_rs::Version;
use pep508_rs::PackageName;
use pubgrub::{DerivationTree, External, Ranges};
use std::collections::{BTreeSet, HashMap};

/// What a failed resolution comes down to.
pub(crate) enum Verdict {
    /// Versions of a package the build needs exist, but none it can use: the chain of
    /// requirements that led to it and why each version is out.
    NoWheel {
        package: PackageName,
        message: String,
        /// The newest version in the required range that has an sdist to build from.
        sdist: Option<Box<(Version, crate::index::DistFile)>>,
    },
    /// Anything else, in a sentence.
    Conflict(String),
}

/// A requirement of the derivation: `parent` (at the versions in `parent_range`) requires
/// `dep` in `range`.
#[derive(Clone, Copy)]
struct Requirement<'t> {
    parent: &'t Node,
    parent_range: &'t Ranges<Version>,
    dep: &'t Node,
    range: &'t Ranges<Version>,
}

impl Requirement<'_> {
    fn same(&self, other: &Self) -> bool {
        self.parent == other.parent
            && self.parent_range == other.parent_range
            && self.dep == other.dep
            && self.range == other.range
    }
}

/// The facts a derivation rests on (its leaves).
#[derive(Default)]
struct Facts<'t> {
    requirements: Vec<Requirement<'t>>,
    /// Versions whose metadata (or wheel) ruled them out, with the reason, by package.
    ruled_out: HashMap<&'t PackageName, Vec<(&'t Ranges<Version>, &'t String)>>,
}

impl<'t> Facts<'t> {
    fn of(tree: &'t Tree) -> Self {
        let mut facts = Self::default();
        facts.collect(tree);
        facts
    }

    fn collect(&mut self, tree: &'t Tree) {
        match tree {
            DerivationTree::External(External::FromDependencyOf(
                parent,
                parent_range,
                dep,
                range,
            )) => {
                let requirement = Requirement {
                    parent,
                    parent_range,
                    dep,
                    range,
                };
                if !self.requirements.iter().any(|r| r.same(&requirement)) {
                    self.requirements.push(requirement);
                }
            }
            DerivationTree::External(External::Custom(node, range, reason)) => {
                if let Some(name) = node.package() {
                    self.ruled_out
                        .entry(name)
                        .or_default()
                        .push((range, reason));
                }
            }
            DerivationTree::External(_) => {}
            DerivationTree::Derived(derived) => {
                self.collect(&derived.cause1);
                self.collect(&derived.cause2);
            }
        }
    }

    /// Why the metadata ruled out `version` of `name`, if it did.
    fn ruled_out(&self, name: &PackageName, version: &Version) -> Option<&'t String> {
        self.ruled_out
            .get(name)?
            .iter()
            .find(|(range, _)| range.contains(version))
            .map(|(_, reason)| *reason)
    }
}

/// Why a version has no usable file, in the words of a summary (plural: "the other versions
/// of foo …"). The order is the precedence: a version with a yanked wheel and an sdist is
/// out because of the yank.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Reason {
    Constraint(String),
    NotCached,
    NoUploadTime,
    Yanked,
    OtherPython,
    NoPureWheel,
}

impl Reason {
    pub(super) fn of(exclusions: &[Exclusion]) -> Self {
        exclusions
            .iter()
            .map(|exclusion| match exclusion {
                Exclusion::Constraint(by) => Self::Constraint(by.clone()),
                Exclusion::NotCached(_) => Self::NotCached,
                Exclusion::NoUploadTime { .. } => Self::NoUploadTime,
                Exclusion::Yanked { .. } => Self::Yanked,
                Exclusion::RequiresPython { .. } => Self::OtherPython,
                Exclusion::Sdist(_) | Exclusion::PlatformWheel(_) => Self::NoPureWheel,
            })
            .min()
            .unwrap_or(Self::NoPureWheel)
    }

    fn phrase(&self, explainer: &Explainer<'_>) -> String {
        match self {
            Self::Constraint(by) => format!("are excluded by the build constraint {by}"),
            Self::NotCached => "are not in the cache, and offline mode forbids downloading".into(),
            Self::NoUploadTime => "have no upload time on their index (exclude-newer)".into(),
            Self::Yanked => "are yanked".into(),
            Self::OtherPython => format!(
                "require another Python than {}",
                explainer.target.python_version()
            ),
            Self::NoPureWheel => format!("have no pure-Python wheel for {}", explainer.guest()),
        }
    }
}

impl Explainer<'_> {
    /// What the failure comes down to.
    pub fn verdict(&self, tree: &Tree) -> Verdict {
        let facts = Facts::of(tree);
        let unsatisfiable = facts
            .requirements
            .iter()
            .filter(|r| self.usable_in(&facts, r.dep, r.range).is_empty())
            .fold(None::<Requirement<'_>>, |best, r| match best {
                Some(b) if self.weight(&facts, &b) >= self.weight(&facts, r) => Some(b),
                _ => Some(*r),
            });
        let clash = self.clash(&facts);
        match (unsatisfiable, clash) {
            (Some(u), _) if self.weight(&facts, &u) > 0 => self.unsatisfiable(tree, &facts, u),
            (_, Some((a, b))) => Verdict::Conflict(self.clash_summary(&facts, a, b)),
            (Some(u), None) => self.unsatisfiable(tree, &facts, u),
            (None, None) => {
                let mut names: Vec<String> = Vec::new();
                for r in &facts.requirements {
                    let name = r.dep.to_string();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                Verdict::Conflict(format!(
                    "the requirements on {} cannot all be met",
                    join_or(&names, "and")
                ))
            }
        }
    }

    fn candidates_of(&self, node: &Node) -> Option<&Candidates> {
        node.package()
            .and_then(|name| self.knowledge.candidates.get(name))
            .map(AsRef::as_ref)
    }

    /// The usable versions of `node`'s package in `range` that the metadata did not rule
    /// out, newest first.
    fn usable_in(&self, facts: &Facts<'_>, node: &Node, range: &Ranges<Version>) -> Vec<&Version> {
        let (Some(name), Some(candidates)) = (node.package(), self.candidates_of(node)) else {
            return Vec::new();
        };
        candidates
            .versions()
            .rev()
            .filter(|v| range.contains(*v) && facts.ruled_out(name, v).is_none())
            .collect()
    }

    /// How much a requirement is what the user meant: the top-level list most, then a
    /// requirement of the newest version of its package (the one the resolver tried first).
    fn weight(&self, facts: &Facts<'_>, requirement: &Requirement<'_>) -> u8 {
        match requirement.parent {
            Node::Root => 2,
            parent => {
                let newest = self
                    .usable_in(facts, parent, &Ranges::full())
                    .first()
                    .copied();
                u8::from(newest.is_some_and(|v| requirement.parent_range.contains(v)))
            }
        }
    }

    /// Two requirements of different parents on one package that no usable version
    /// satisfies together, the most meaningful pair first; the top-level one second.
    fn clash<'t>(&self, facts: &Facts<'t>) -> Option<(Requirement<'t>, Requirement<'t>)> {
        let requirements = &facts.requirements;
        let mut best: Option<(u8, Requirement<'t>, Requirement<'t>)> = None;
        for (i, a) in requirements.iter().enumerate() {
            for b in &requirements[i + 1..] {
                if a.dep.package().is_none()
                    || a.dep.package() != b.dep.package()
                    || a.parent.package() == b.parent.package()
                {
                    continue;
                }
                let both = a.range.intersection(b.range);
                if !self.usable_in(facts, a.dep, &both).is_empty() {
                    continue;
                }
                let (wa, wb) = (self.weight(facts, a), self.weight(facts, b));
                if best.as_ref().is_none_or(|(w, _, _)| wa + wb > *w) {
                    let (first, second) = if wa >= wb { (*b, *a) } else { (*a, *b) };
                    best = Some((wa + wb, first, second));
                }
            }
        }
        best.map(|(_, first, second)| match first.parent {
            Node::Root => (second, first),
            _ => (first, second),
        })
    }

    /// `foo>=2` as its requirement wrote it (`foo` when any version will do).
    fn wanted(&self, requirement: &Requirement<'_>) -> String {
        self.term(requirement.dep, requirement.range)
    }

    /// `the build requirements ask for foo>=2`, `bar 1.0 needs foo>=2`,
    /// `bar 1.0 to 1.4 need foo>=2`.
    fn asks(&self, facts: &Facts<'_>, requirement: &Requirement<'_>) -> String {
        let wanted = self.wanted(requirement);
        let parent = requirement.parent;
        if matches!(parent, Node::Root) {
            return format!("the build requirements ask for {wanted}");
        }
        let inside = self.usable_in(facts, parent, requirement.parent_range);
        let all = self.usable_in(facts, parent, &Ranges::full());
        match inside.as_slice() {
            [] => format!(
                "{} needs {wanted}",
                self.term(parent, requirement.parent_range)
            ),
            [only] => format!("{parent} {only} needs {wanted}"),
            several if several.len() == all.len() => {
                format!("every version of {parent} needs {wanted}")
            }
            [newest, .., oldest] => {
                // A run of consecutive usable versions reads as "from … to …".
                let first = all.iter().position(|v| v == newest);
                let last = all.iter().position(|v| v == oldest);
                let contiguous =
                    matches!((first, last), (Some(f), Some(l)) if l - f + 1 == inside.len());
                if contiguous {
                    format!("{parent} {oldest} to {newest} need {wanted}")
                } else {
                    format!(
                        "{parent}{} need {wanted}",
                        describe(&self.shown(parent, requirement.parent_range))
                    )
                }
            }
        }
    }

    /// `a needs X, but b asks for Y`, and what rules out the other versions of a.
    fn clash_summary(
        &self,
        facts: &Facts<'_>,
        first: Requirement<'_>,
        second: Requirement<'_>,
    ) -> String {
        let mut others = self.other_versions(facts, &first, &second);
        let (mut first, mut second) = (first, second);
        if others.is_none() && !matches!(second.parent, Node::Root) {
            // Tell the other versions of the side that has some.
            others = self.other_versions(facts, &second, &first);
            if others.is_some() {
                (first, second) = (second, first);
            }
        }
        let mut summary = format!(
            "{}, but {}",
            self.asks(facts, &first),
            self.asks(facts, &second)
        );
        if let Some(others) = others {
            summary.push_str("; ");
            summary.push_str(&others);
        }
        summary
    }

    /// Why the versions of `first`'s parent that `first` does not cover are out too:
    /// `the other versions of hatchling need packaging>=21.3, or are yanked`.
    fn other_versions(
        &self,
        facts: &Facts<'_>,
        first: &Requirement<'_>,
        second: &Requirement<'_>,
    ) -> Option<String> {
        let parent = first.parent;
        let name = parent.package()?;
        let candidates = self.candidates_of(parent)?;
        let dep_name = first.dep.package()?;
        // The versions of the parent the build could have used at all.
        let wanted = facts
            .requirements
            .iter()
            .filter(|r| r.dep == parent)
            .fold(Ranges::full(), |range, r| range.intersection(r.range));
        let mut needs: Vec<String> = Vec::new();
        let mut ruled_out: Option<&String> = None;
        let mut unexplained = false;
        for version in candidates.versions().rev() {
            if !wanted.contains(version) || first.parent_range.contains(version) {
                continue;
            }
            let conflicting = facts.requirements.iter().find(|r| {
                r.parent == parent
                    && r.parent_range.contains(version)
                    && r.dep.package() == Some(dep_name)
                    && self
                        .usable_in(facts, r.dep, &r.range.intersection(second.range))
                        .is_empty()
            });
            if let Some(r) = conflicting {
                let label = self.wanted(r);
                let label = label.strip_prefix(&r.dep.to_string()).unwrap_or(&label);
                if !needs.iter().any(|l| l == label) {
                    needs.push(label.to_string());
                }
            } else if let Some(reason) = facts.ruled_out(name, version) {
                ruled_out.get_or_insert(reason);
            } else {
                unexplained = true;
            }
        }
        let excluded: BTreeSet<Reason> = candidates
            .exclusions()
            .filter(|(version, _)| wanted.contains(*version))
            .map(|(_, exclusions)| Reason::of(exclusions))
            .collect();
        let mut parts = Vec::new();
        if !needs.is_empty() {
            parts.push(format!("need {dep_name}{}", join_or(&needs, "or")));
        }
        if let Some(reason) = ruled_out {
            parts.push(format!("cannot be used ({reason})"));
        }
        if unexplained {
            parts.push("conflict with other requirements".to_string());
        }
        parts.extend(excluded.iter().map(|reason| reason.phrase(self)));
        (!parts.is_empty()).then(|| {
            // The parts may hold "or" themselves: a comma before the last one keeps them apart.
            let joined = match parts.as_slice() {
                [init @ .., last] if !init.is_empty() => format!("{}, or {last}", init.join(", ")),
                _ => parts.concat(),
            };
            format!("the other versions of {name} {joined}")
        })
    }

    /// A requirement no usable version satisfies.
    fn unsatisfiable(
        &self,
        tree: &Tree,
        facts: &Facts<'_>,
        requirement: Requirement<'_>,
    ) -> Verdict {
        let who = self.asks(facts, &requirement);
        let node = requirement.dep;
        let (Some(name), Some(candidates)) = (node.package(), self.candidates_of(node)) else {
            return Verdict::Conflict(format!("{who}, which cannot be found"));
        };
        if !candidates.any_files {
            return Verdict::Conflict(match candidates.uploaded_later {
                Some(cutoff) => format!(
                    "{who}, but every file of {name} was uploaded after {cutoff} (exclude-newer)"
                ),
                None if self.sources.is_empty() => format!(
                    "{who}, but {name} cannot be found: no index is searched and no find-links \
                     location was given"
                ),
                None => format!(
                    "{who}, but {name} was not found (searched {})",
                    self.sources.join(", ")
                ),
            });
        }
        let excluded: Vec<(&Version, &[Exclusion])> = candidates
            .exclusions()
            .filter(|(version, _)| requirement.range.contains(*version))
            .collect();
        if !excluded.is_empty() {
            return Verdict::NoWheel {
                package: name.clone(),
                message: self.no_wheel_message(tree, name, requirement.range, &excluded),
                sdist: candidates
                    .sdist_in(requirement.range)
                    .map(|(version, file)| Box::new((version.clone(), file.clone()))),
            };
        }
        let ruled_out = candidates
            .versions()
            .rev()
            .filter(|v| requirement.range.contains(*v))
            .find_map(|v| facts.ruled_out(name, v).map(|reason| (v, reason)));
        if let Some((version, reason)) = ruled_out {
            return Verdict::Conflict(format!(
                "{who}, but no version of it can be used: {name} {version} cannot ({reason})"
            ));
        }
        let usable: Vec<String> = candidates
            .versions()
            .rev()
            .take(VERSIONS_SHOWN)
            .map(ToString::to_string)
            .collect();
        let later = candidates
            .uploaded_later
            .map(|cutoff| format!("; files uploaded after {cutoff} are ignored (exclude-newer)"))
            .unwrap_or_default();
        Verdict::Conflict(format!(
            "{who}, but {name} has no such version (versions with a usable wheel: {}{later})",
            usable.join(", ")
        ))
    }
}

/// `a`, `a or b`, `a, b or c`.
fn join_or(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}
