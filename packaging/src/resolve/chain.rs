//! A package the build needs without a version it can use: the chain of requirements from
//! the top level to it, and why each of its versions is out.

use super::candidates::{Exclusion, VersionExclusions};
use super::provider::{Edge, Node};
use super::report::{Explainer, Tree, VERSIONS_SHOWN};
use super::summary::Reason;
use pep440_rs::Version;
use pep508_rs::PackageName;
use pubgrub::Ranges;
use std::collections::{BTreeSet, HashSet};

impl Explainer<'_> {
    /// The chain of requirements from the top level to `name` and why each version in
    /// `range` is out.
    pub(super) fn no_wheel_message(
        &self,
        tree: &Tree,
        name: &PackageName,
        range: &Ranges<Version>,
        excluded: &[(&Version, &[Exclusion])],
    ) -> String {
        let reasons: BTreeSet<Reason> = excluded.iter().map(|(_, why)| Reason::of(why)).collect();
        let only_platform = reasons
            .iter()
            .all(|r| matches!(r, Reason::NoPureWheel | Reason::OtherPython));
        let guest = self.guest();
        let mut message = if only_platform {
            format!("no version of `{name}` that the build needs has a wheel {guest} can use:\n")
        } else {
            format!("no version of `{name}` that the build needs can be used:\n")
        };
        let chain = self.chain(tree, name);
        for (i, step) in chain.iter().enumerate() {
            let arrow = if i == 0 { "  " } else { "  → " };
            message.push_str(&format!("{arrow}{step}\n"));
        }
        let arrow = if chain.is_empty() { "  " } else { "  → " };
        let term = self.term(&Node::Package(name.clone()), range);
        if only_platform {
            message.push_str(&format!(
                "{arrow}{term} has no pure-Python wheel for {guest}:"
            ));
        } else {
            message.push_str(&format!("{arrow}{term} has no usable wheel:"));
        }
        for (listed, (version, why)) in excluded.iter().enumerate() {
            if listed == VERSIONS_SHOWN {
                message.push_str(&format!(
                    "\n      and {} older versions",
                    excluded.len() - VERSIONS_SHOWN
                ));
                break;
            }
            let why = VersionExclusions {
                exclusions: why,
                detailed: listed == 0,
            };
            message.push_str(&format!("\n      {name} {version}: {why}"));
        }
        if reasons.contains(&Reason::NoPureWheel) {
            message.push_str(
                "\nBuild environments hold pure-Python wheels only (tags such as py3-none-any): \
                 the sandbox cannot load native extensions.",
            );
        }
        if reasons.contains(&Reason::NotCached) {
            message.push_str(
                "\nOffline, only wheels in the cache (downloaded by an earlier build) and in \
                 find-links folders can be used.",
            );
        }
        if reasons.contains(&Reason::NoUploadTime) {
            message.push_str(
                "\nexclude-newer needs the upload time of every file, which indexes give on \
                 their PEP 691 JSON pages (PEP 700) and not on HTML pages; files without one \
                 are not used.",
            );
        }
        message
    }

    /// The requirement edges from the root to `name`, preferring parents that took part in
    /// the conflict.
    fn chain_edges(&self, tree: &Tree, name: &PackageName) -> Vec<Edge> {
        let in_tree = tree.packages();
        let mut steps: Vec<Edge> = Vec::new();
        let mut seen: HashSet<PackageName> = HashSet::from([name.clone()]);
        let mut current = name.clone();
        while let Some(edges) = self.knowledge.edges.get(&current) {
            let usable = |edge: &&Edge| {
                edge.parent
                    .package()
                    .is_none_or(|parent| !seen.contains(parent))
            };
            // The newest parent version that took part in the conflict, else the newest seen.
            let Some(edge) = edges
                .iter()
                .filter(usable)
                .filter(|edge| in_tree.contains(&edge.parent))
                .max_by_key(|edge| &edge.parent_version)
                .or_else(|| {
                    edges
                        .iter()
                        .filter(usable)
                        .max_by_key(|edge| &edge.parent_version)
                })
            else {
                break;
            };
            steps.push(edge.clone());
            match edge.parent.package() {
                None => break,
                Some(parent) => {
                    seen.insert(parent.clone());
                    current = parent.clone();
                }
            }
        }
        steps.reverse();
        steps
    }

    /// The chain as lines: `the build requirements: hatchling>=1`,
    /// `hatchling 1.25.0 requires foo>=2`.
    fn chain(&self, tree: &Tree, name: &PackageName) -> Vec<String> {
        self.chain_edges(tree, name)
            .into_iter()
            .map(|edge| match edge.parent {
                Node::Root => format!("the build requirements: {}", edge.requirement),
                parent => format!(
                    "{parent} {} requires {}",
                    edge.parent_version, edge.requirement
                ),
            })
            .collect()
    }
}
