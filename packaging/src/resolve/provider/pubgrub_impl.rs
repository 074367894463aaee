//! What pubgrub asks of the provider: which package next, which version, its dependencies.

use super::{Node, Provider, root_version};
use crate::resolve::ResolveError;
use pep440_rs::Version;
use pubgrub::{Dependencies, DependencyProvider, PackageResolutionStatistics, Ranges};
use std::cmp::Reverse;

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = ResolveError;
    /// (pinned to one version, conflicts seen, earlier discovered first)
    type Priority = (bool, u32, Reverse<usize>);

    fn prioritize(
        &self,
        node: &Node,
        range: &Ranges<Version>,
        statistics: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let order = self
            .discovered
            .borrow()
            .get(node)
            .copied()
            .unwrap_or(usize::MAX);
        (
            range.as_singleton().is_some(),
            statistics.conflict_count(),
            Reverse(order),
        )
    }

    fn choose_version(
        &self,
        node: &Node,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, ResolveError> {
        let Some(name) = node.package() else {
            return Ok(Some(root_version()));
        };
        let candidates = self.candidates(name)?;
        Ok(candidates
            .versions()
            .rev()
            .find(|v| range.contains(*v))
            .cloned())
    }

    fn get_dependencies(
        &self,
        node: &Node,
        version: &Version,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, ResolveError> {
        match node {
            Node::Root => self.root_dependencies(),
            Node::Package(name) => self.package_dependencies(node, name, None, version),
            Node::Extra(name, extra) => self.package_dependencies(node, name, Some(extra), version),
        }
    }
}
