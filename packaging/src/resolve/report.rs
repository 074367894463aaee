//! Explaining a failed resolution: pubgrub's derivation in words a user reads (package
//! names, the guest, readable ranges, why versions were unusable), and for a requirement
//! with no usable wheel, the chain of requirements that led to it.

use super::candidates::VersionExclusions;
use super::provider::{Knowledge, Node};
use super::ranges::describe;
use crate::target::GuestTarget;
use pep440_rs::Version;
use pubgrub::{
    DefaultStringReporter, DerivationTree, Derived, External, Map, Ranges, ReportFormatter,
    Reporter, Term,
};
use std::sync::Arc;

pub(super) type Tree = DerivationTree<Node, Ranges<Version>, String>;
type Ext = External<Node, Ranges<Version>, String>;
type Der = Derived<Node, Ranges<Version>, String>;
type Terms = Map<Node, Term<Ranges<Version>>>;

/// How many versions a message lists before it says "and N more".
pub(super) const VERSIONS_SHOWN: usize = 5;

/// Formats derivation trees with what the resolver learned.
pub(crate) struct Explainer<'a> {
    pub knowledge: &'a Knowledge,
    pub target: &'a GuestTarget,
    /// The indexes and find-links locations searched.
    pub sources: &'a [String],
}

impl Explainer<'_> {
    /// The guest, as users know it: `CPython 3.12.0 on wasi`.
    pub fn guest(&self) -> String {
        format!(
            "{} {} on {}",
            self.target.markers.platform_python_implementation,
            self.target.python_version(),
            self.target.markers.sys_platform
        )
    }

    /// pubgrub's derivation, worded for users.
    pub fn derivation(&self, tree: &Tree) -> String {
        DefaultStringReporter::report_with_formatter(&self.simplify(tree), self)
    }

    /// Folds "there is no other version of X" leaves into the dependency of X they qualify
    /// (`X==1.0 depends on …` then covers every version of X), as pubgrub's
    /// `collapse_no_versions` does for the depending side. Leaves about a required range, or
    /// that carry a reason (sdists only, platform wheels, yanked, excluded by a constraint),
    /// stay: they are the explanation.
    fn simplify(&self, tree: &Tree) -> Tree {
        let DerivationTree::Derived(derived) = tree else {
            return tree.clone();
        };
        let cause1 = self.simplify(&derived.cause1);
        let cause2 = self.simplify(&derived.cause2);
        for (absence, other) in [(&cause1, &cause2), (&cause2, &cause1)] {
            let (
                DerivationTree::External(External::NoVersions(node, missing)),
                DerivationTree::External(External::FromDependencyOf(p1, r1, p2, r2)),
            ) = (absence, other)
            else {
                continue;
            };
            if self.has_reasons(node, missing) {
                continue;
            }
            if p1 == node {
                return DerivationTree::External(External::FromDependencyOf(
                    p1.clone(),
                    r1.union(missing),
                    p2.clone(),
                    r2.clone(),
                ));
            }
        }
        DerivationTree::Derived(Derived {
            terms: derived.terms.clone(),
            shared_id: derived.shared_id,
            cause1: Arc::new(cause1),
            cause2: Arc::new(cause2),
        })
    }

    /// Whether versions of `node` in `range` exist but were excluded for a reason.
    fn has_reasons(&self, node: &Node, range: &Ranges<Version>) -> bool {
        let Some(candidates) = node
            .package()
            .and_then(|n| self.knowledge.candidates.get(n))
        else {
            return false;
        };
        !candidates.any_files
            || candidates
                .exclusions()
                .any(|(version, _)| range.contains(version))
    }

    /// A required range: `foo~=1.2` as the requirement wrote it, else `foo>=1.2, <2`, or
    /// `foo` for any version, or `the build requirements`.
    pub(super) fn term(&self, node: &Node, range: &Ranges<Version>) -> String {
        if matches!(node, Node::Root) || range == &Ranges::full() {
            return node.to_string();
        }
        if let Some(label) = self.knowledge.labels.get(&(node.clone(), range.clone())) {
            return format!("{node}{label}");
        }
        let shown = self.shown(node, range);
        if shown == Ranges::full() {
            return node.to_string();
        }
        format!("{node}{}", describe(&shown))
    }

    /// The simplest range that holds the same known versions of the package as `range`
    /// (as uv shows them): pubgrub's ranges have holes at every version it ruled out one by
    /// one, which says nothing when those versions cannot be used anyway. Simplified over
    /// the usable versions when the range holds some, else over every version listed.
    pub(super) fn shown(&self, node: &Node, range: &Ranges<Version>) -> Ranges<Version> {
        let Some(candidates) = node
            .package()
            .and_then(|n| self.knowledge.candidates.get(n))
        else {
            return range.clone();
        };
        if candidates.versions().any(|v| range.contains(v)) {
            return range.simplify(candidates.versions());
        }
        let mut listed: Vec<&Version> = candidates
            .versions()
            .chain(candidates.exclusions().map(|(v, _)| v))
            .collect();
        listed.sort();
        range.simplify(listed.into_iter())
    }

    /// The depending side of a dependency, by the versions it covers: `foo==1.0` when one
    /// usable version is in the range, `foo` when all are, else as [`Self::term`].
    fn versions_term(&self, node: &Node, range: &Ranges<Version>) -> String {
        if let Some(candidates) = node
            .package()
            .and_then(|n| self.knowledge.candidates.get(n))
        {
            let all: Vec<&Version> = candidates.versions().collect();
            let inside: Vec<&&Version> = all.iter().filter(|v| range.contains(**v)).collect();
            if let [only] = inside.as_slice() {
                return format!("{node}=={only}");
            }
            if !inside.is_empty() && inside.len() == all.len() {
                return node.to_string();
            }
        }
        self.term(node, range)
    }

    /// "there is no version of foo>=2 …" with what exists instead.
    fn no_versions(&self, node: &Node, range: &Ranges<Version>) -> String {
        let Some(name) = node.package() else {
            return "the build requirements cannot be met".to_string();
        };
        let Some(candidates) = self.knowledge.candidates.get(name) else {
            return format!("there is no version of {}", self.term(node, range));
        };
        if !candidates.any_files {
            return format!(
                "{name} was not found (searched {})",
                self.sources.join(", ")
            );
        }
        let excluded: Vec<_> = candidates
            .exclusions()
            .filter(|(version, _)| range.contains(*version))
            .collect();
        if excluded.is_empty() {
            let usable: Vec<String> = candidates
                .versions()
                .rev()
                .take(VERSIONS_SHOWN)
                .map(ToString::to_string)
                .collect();
            let labelled = self
                .knowledge
                .labels
                .contains_key(&(node.clone(), range.clone()));
            return match usable.as_slice() {
                [] => format!("no version of {name} has a wheel {} can use", self.guest()),
                // A range pubgrub made up: "every other version" of a package.
                [only] if !labelled => format!("the only usable version of {name} is {only}"),
                several if !labelled => {
                    format!("the usable versions of {name} are {}", several.join(", "))
                }
                several => format!(
                    "there is no version of {} (usable versions: {})",
                    self.term(node, range),
                    several.join(", ")
                ),
            };
        }
        let mut reasons: Vec<String> = excluded
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, (version, why))| {
                let why = VersionExclusions {
                    exclusions: why,
                    detailed: i == 0,
                };
                format!("{name} {version} {} {why}", why.verb())
            })
            .collect();
        if excluded.len() > 3 {
            reasons.push(format!(
                "{} more versions cannot be used",
                excluded.len() - 3
            ));
        }
        let labelled = self
            .knowledge
            .labels
            .contains_key(&(node.clone(), range.clone()));
        let others_usable = candidates.versions().next().is_some();
        if !labelled && others_usable {
            // A range pubgrub made up: the versions it did not try because they have no
            // usable wheel.
            return format!(
                "no other version of {name} can be used ({})",
                reasons.join("; ")
            );
        }
        format!(
            "no wheel of {} can be used ({})",
            self.term(node, range),
            reasons.join("; ")
        )
    }

    fn terms(&self, terms: &Terms) -> String {
        let list: Vec<_> = terms.iter().collect();
        match list.as_slice() {
            [] => "the build requirements cannot be met".to_string(),
            [(Node::Root, Term::Positive(_))] => "the build requirements cannot be met".to_string(),
            [(node, Term::Positive(range))] => {
                format!("{} cannot be used", self.versions_term(node, range))
            }
            [(node, Term::Negative(range))] => format!("{} is required", self.term(node, range)),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => self.format_external(
                &External::FromDependencyOf((*p1).clone(), r1.clone(), (*p2).clone(), r2.clone()),
            ),
            several => {
                let parts: Vec<String> = several
                    .iter()
                    .map(|(node, t)| match t {
                        Term::Positive(range) => self.versions_term(node, range),
                        Term::Negative(range) => format!("not {}", self.term(node, range)),
                    })
                    .collect();
                match parts.as_slice() {
                    [a, b] => format!("{a} and {b} cannot be used together"),
                    _ => format!("{} cannot be used together", parts.join(", ")),
                }
            }
        }
    }
}

impl ReportFormatter<Node, Ranges<Version>, String> for Explainer<'_> {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        match external {
            External::NotRoot(node, version) => {
                format!("we are solving the dependencies of {node} {version}")
            }
            External::NoVersions(node, range) => self.no_versions(node, range),
            External::Custom(node, range, reason) => {
                format!(
                    "{} cannot be used: {reason}",
                    self.versions_term(node, range)
                )
            }
            External::FromDependencyOf(parent, parent_range, dep, dep_range) => match parent {
                Node::Root => format!("the build requirements need {}", self.term(dep, dep_range)),
                _ => format!(
                    "{} depends on {}",
                    self.versions_term(parent, parent_range),
                    self.term(dep, dep_range)
                ),
            },
        }
    }

    fn format_terms(&self, terms: &Terms) -> String {
        self.terms(terms)
    }

    fn explain_both_external(&self, e1: &Ext, e2: &Ext, current: &Terms) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(e1),
            self.format_external(e2),
            self.terms(current)
        )
    }

    fn explain_both_ref(
        &self,
        ref1: usize,
        d1: &Der,
        ref2: usize,
        d2: &Der,
        current: &Terms,
    ) -> String {
        format!(
            "Because {} ({ref1}) and {} ({ref2}), {}.",
            self.terms(&d1.terms),
            self.terms(&d2.terms),
            self.terms(current)
        )
    }

    fn explain_ref_and_external(
        &self,
        ref_id: usize,
        derived: &Der,
        external: &Ext,
        current: &Terms,
    ) -> String {
        format!(
            "Because {} ({ref_id}) and {}, {}.",
            self.terms(&derived.terms),
            self.format_external(external),
            self.terms(current)
        )
    }

    fn and_explain_external(&self, external: &Ext, current: &Terms) -> String {
        format!(
            "And because {}, {}.",
            self.format_external(external),
            self.terms(current)
        )
    }

    fn and_explain_ref(&self, ref_id: usize, derived: &Der, current: &Terms) -> String {
        format!(
            "And because {} ({ref_id}), {}.",
            self.terms(&derived.terms),
            self.terms(current)
        )
    }

    fn and_explain_prior_and_external(
        &self,
        prior: &Ext,
        external: &Ext,
        current: &Terms,
    ) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior),
            self.format_external(external),
            self.terms(current)
        )
    }
}
