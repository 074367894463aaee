//! The pubgrub dependency provider: packages, extras as virtual packages, candidate
//! versions from the index, dependencies from core metadata evaluated for the guest.

use super::candidates::{Candidates, Exclusion, Policy};
use super::ranges::{Prereleases, requirement_range};
use super::{RequireHashesError, ResolveError};
use crate::constraints::BuildConstraints;
use crate::index::{IndexClient, IndexError};
use crate::metadata::CoreMetadata;
use crate::target::GuestTarget;
use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, VersionOrUrl};
use pubgrub::{Dependencies, DependencyConstraints, Ranges};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::mpsc::Sender;

/// A node of the resolution: the root, a package, or a package with one extra (a virtual
/// package that depends on the package at the same version and on the extra's
/// requirements).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Node {
    Root,
    Package(PackageName),
    Extra(PackageName, ExtraName),
}

impl Node {
    /// The package a node stands for (`None` for the root).
    pub fn package(&self) -> Option<&PackageName> {
        match self {
            Self::Root => None,
            Self::Package(name) | Self::Extra(name, _) => Some(name),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => write!(f, "the build requirements"),
            Self::Package(name) => write!(f, "{name}"),
            Self::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

/// The version pubgrub gives the root node.
pub(crate) fn root_version() -> Version {
    Version::new([0])
}

/// One requirement edge seen while resolving, for explaining how a package was reached.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub parent: Node,
    pub parent_version: Version,
    /// The requirement as written in the parent's metadata (or the top-level list).
    pub requirement: String,
}

/// A top-level requirement that applies to the guest.
#[derive(Debug, Clone)]
pub(crate) struct RootRequirement {
    pub name: PackageName,
    pub extras: Vec<ExtraName>,
    pub specifiers: VersionSpecifiers,
    pub text: String,
}

/// What pubgrub needs to explain a failure, kept after the provider is gone.
pub(crate) struct Knowledge {
    pub candidates: HashMap<PackageName, Rc<Candidates>>,
    /// Every requirement edge, by the required package.
    pub edges: HashMap<PackageName, Vec<Edge>>,
    /// The specifiers as written for each range made from requirements, so messages can
    /// show `~=1.2` rather than the range it became.
    pub labels: HashMap<(Node, Ranges<Version>), String>,
}

pub(crate) struct Provider<'a> {
    client: &'a IndexClient,
    target: &'a GuestTarget,
    constraints: &'a BuildConstraints,
    roots: &'a [RootRequirement],
    /// Packages whose pre-releases are allowed by a top-level requirement or constraint.
    explicit_prereleases: HashSet<PackageName>,
    /// Versions pinned with `==`/`===` at the top level or by a constraint.
    allowed_yanks: HashMap<PackageName, HashSet<Version>>,
    candidates: RefCell<HashMap<PackageName, Rc<Candidates>>>,
    edges: RefCell<HashMap<PackageName, Vec<Edge>>>,
    labels: RefCell<HashMap<(Node, Ranges<Version>), String>>,
    /// Requirements whose pre-releases were admitted because nothing else fits.
    prerelease_fallbacks: RefCell<BTreeMap<PackageName, String>>,
    notes: RefCell<BTreeSet<String>>,
    discovered: RefCell<HashMap<Node, usize>>,
    prefetch: Sender<PackageName>,
}

impl<'a> Provider<'a> {
    pub fn new(
        client: &'a IndexClient,
        target: &'a GuestTarget,
        constraints: &'a BuildConstraints,
        roots: &'a [RootRequirement],
        prefetch: Sender<PackageName>,
    ) -> Self {
        let mut explicit_prereleases = HashSet::new();
        let mut allowed_yanks: HashMap<PackageName, HashSet<Version>> = HashMap::new();
        for root in roots {
            if root.specifiers.iter().any(|s| s.any_prerelease()) {
                explicit_prereleases.insert(root.name.clone());
            }
            if let [only] = root.specifiers.as_ref()
                && matches!(only.operator(), Operator::Equal | Operator::ExactEqual)
            {
                allowed_yanks
                    .entry(root.name.clone())
                    .or_default()
                    .insert(only.version().clone());
            }
        }
        Self {
            client,
            target,
            constraints,
            roots,
            explicit_prereleases,
            allowed_yanks,
            candidates: RefCell::default(),
            edges: RefCell::default(),
            labels: RefCell::default(),
            prerelease_fallbacks: RefCell::default(),
            notes: RefCell::default(),
            discovered: RefCell::default(),
            prefetch,
        }
    }

    /// The candidates of `name`, fetched once.
    pub fn candidates(&self, name: &PackageName) -> Result<Rc<Candidates>, ResolveError> {
        if let Some(found) = self.candidates.borrow().get(name) {
            return Ok(Rc::clone(found));
        }
        let files = self
            .client
            .project_files_shared(name)
            .map_err(|error| self.index_error(name, error))?;
        let env = self.target.marker_environment();
        let applicable = self.constraints.for_package(name, env);
        if self.constraints.require_hashes() && applicable.pinned_version().is_none() {
            return Err(ResolveError::RequireHashes(Box::new(
                RequireHashesError::NotPinned {
                    package: name.to_string(),
                    required_by: self.required_by(name),
                    file: self.constraints_file(),
                },
            )));
        }
        let mut allowed_yanks = self.allowed_yanks.get(name).cloned().unwrap_or_default();
        if let Some(pinned) = applicable.pinned_version() {
            allowed_yanks.insert(pinned.clone());
        }
        let preferred_hashes = applicable.hashes().map(str::to_string).collect();
        let candidates = Rc::new(Candidates::new(
            name,
            &files,
            &Policy {
                target: self.target,
                constraint: &applicable,
                allowed_yanks: &allowed_yanks,
                preferred_hashes: &preferred_hashes,
                exclude_newer: self.client.exclude_newer(),
                available: &|file| self.client.is_available(file),
            },
        ));
        self.note_missing_upload_times(&candidates);
        self.candidates
            .borrow_mut()
            .insert(name.clone(), Rc::clone(&candidates));
        Ok(candidates)
    }

    /// With exclude-newer, says which pages give no upload times (their files were left out).
    fn note_missing_upload_times(&self, candidates: &Candidates) {
        let mut notes = self.notes.borrow_mut();
        for exclusion in candidates.every_exclusion() {
            if let Exclusion::NoUploadTime { source, .. } = exclusion {
                notes.insert(format!(
                    "{source} gives no upload times (PEP 700), so exclude-newer left its files out"
                ));
            }
        }
    }

    fn constraints_file(&self) -> String {
        self.constraints.source().map_or_else(
            || "the build constraints".to_string(),
            |p| p.display().to_string(),
        )
    }

    fn index_error(&self, name: &PackageName, error: IndexError) -> ResolveError {
        ResolveError::Index {
            package: name.to_string(),
            required_by: self.required_by(name),
            error: Box::new(error),
        }
    }

    /// ` (required by hatchling 1.25.0)`, or empty for a top-level requirement.
    pub fn required_by(&self, name: &PackageName) -> String {
        let edges = self.edges.borrow();
        match edges.get(name).and_then(|edges| edges.last()) {
            Some(edge) if edge.parent != Node::Root => {
                format!(" (required by {} {})", edge.parent, edge.parent_version)
            }
            _ => String::new(),
        }
    }

    /// Everything learned, for error reports.
    pub fn into_knowledge(self) -> Knowledge {
        Knowledge {
            candidates: self.candidates.into_inner(),
            edges: self.edges.into_inner(),
            labels: self.labels.into_inner(),
        }
    }

    /// Notes for the user about choices that deserve a mention.
    pub fn notes(&self) -> Vec<String> {
        self.notes.borrow().iter().cloned().collect()
    }

    /// Whether a top-level requirement or an applicable constraint names a pre-release of
    /// `name`, which admits its pre-releases everywhere.
    fn explicit_prereleases(&self, name: &PackageName) -> bool {
        self.explicit_prereleases.contains(name)
            || self
                .constraints
                .for_package(name, self.target.marker_environment())
                .mentions_prerelease()
    }

    /// Why pre-releases of `name` were admitted, if they were.
    pub fn prerelease_reason(&self, name: &PackageName) -> Option<String> {
        if self.explicit_prereleases(name) {
            return Some("a top-level requirement or constraint names a pre-release".into());
        }
        self.prerelease_fallbacks
            .borrow()
            .get(name)
            .map(|req| format!("no final release satisfies `{req}`"))
    }

    fn discover(&self, node: &Node) {
        let mut discovered = self.discovered.borrow_mut();
        let next = discovered.len();
        discovered.entry(node.clone()).or_insert(next);
    }

    /// Dependencies of the root: the top-level requirements.
    fn root_dependencies(
        &self,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, ResolveError> {
        let requirements: Vec<Dep> = self
            .roots
            .iter()
            .map(|root| Dep {
                name: root.name.clone(),
                extras: root.extras.clone(),
                specifiers: root.specifiers.clone(),
                text: root.text.clone(),
            })
            .collect();
        self.dependencies_of(&Node::Root, &root_version(), requirements)
    }

    /// Dependencies of a package or extra node at `version`, from its core metadata.
    fn package_dependencies(
        &self,
        node: &Node,
        name: &PackageName,
        extra: Option<&ExtraName>,
        version: &Version,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, ResolveError> {
        let candidates = self.candidates(name)?;
        let Some(file) = candidates.files(version).first() else {
            return Ok(Dependencies::Unavailable(format!(
                "no usable wheel of {name} {version}"
            )));
        };
        let metadata = match self.client.metadata(file) {
            Ok(metadata) => metadata,
            Err(IndexError::InvalidMetadata { reason, .. }) => {
                return Ok(Dependencies::Unavailable(format!(
                    "its wheel {} has invalid metadata: {reason}",
                    file.filename
                )));
            }
            Err(error) => return Err(self.index_error(name, error)),
        };
        if let Some(problem) = self.check_metadata(&metadata, name, version) {
            return Ok(Dependencies::Unavailable(problem));
        }
        let env = self.target.marker_environment();
        let mut deps = Vec::new();
        for line in &metadata.requires_dist {
            let requirement = match crate::pep508::requirement(line) {
                Ok(requirement) => requirement,
                Err(e) => {
                    return Ok(Dependencies::Unavailable(format!(
                        "its metadata has an invalid Requires-Dist `{line}`: {e}"
                    )));
                }
            };
            let applies = match extra {
                None => requirement.evaluate_markers(env, &[]),
                // An extra adds what its marker turns on, beyond the base requirements.
                Some(extra) => {
                    requirement.evaluate_markers(env, std::slice::from_ref(extra))
                        && !requirement.evaluate_markers(env, &[])
                }
            };
            if !applies {
                continue;
            }
            let specifiers = match requirement.version_or_url {
                None => VersionSpecifiers::empty(),
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers,
                Some(VersionOrUrl::Url(_)) => {
                    return Ok(Dependencies::Unavailable(format!(
                        "it requires `{line}`, and direct URL requirements are not supported"
                    )));
                }
            };
            deps.push(Dep {
                name: requirement.name,
                extras: requirement.extras,
                specifiers,
                text: line.split(';').next().unwrap_or(line).trim().to_string(),
            });
        }
        if let Some(extra) = extra {
            let provided = metadata
                .provides_extra
                .iter()
                .any(|e| ExtraName::from_str(e).is_ok_and(|e| &e == extra));
            if !provided {
                self.notes.borrow_mut().insert(format!(
                    "{name} {version} does not provide the extra `{extra}`"
                ));
            }
        }
        let mut result = self.dependencies_of(node, version, deps)?;
        if let (Some(_), Dependencies::Available(constraints)) = (extra, &mut result) {
            // The extra is the package itself at the same version, plus its requirements.
            let mut pinned: Vec<(Node, Ranges<Version>)> = vec![(
                Node::Package(name.clone()),
                Ranges::singleton(version.clone()),
            )];
            pinned.extend(std::mem::take(constraints));
            *constraints = pinned.into_iter().collect();
        }
        Ok(result)
    }

    /// A reason to refuse metadata that does not describe the file it came with.
    fn check_metadata(
        &self,
        metadata: &CoreMetadata,
        name: &PackageName,
        version: &Version,
    ) -> Option<String> {
        let same_name = PackageName::from_str(&metadata.name).is_ok_and(|n| &n == name);
        let same_version = Version::from_str(&metadata.version).is_ok_and(|v| &v == version);
        if !same_name || !same_version {
            return Some(format!(
                "its metadata describes {} {} instead",
                metadata.name, metadata.version
            ));
        }
        let requires = metadata.requires_python.as_deref()?.trim();
        if requires.is_empty() {
            return None;
        }
        let python = self.target.python_version();
        match crate::pep508::specifiers(requires) {
            Ok(specifiers) if specifiers.contains(python) => None,
            Ok(_) => Some(format!(
                "it requires Python {requires}, and the guest runs Python {python}"
            )),
            Err(e) => Some(format!("its metadata has an invalid Requires-Python: {e}")),
        }
    }

    /// Turns grouped requirements into pubgrub constraints, recording edges.
    fn dependencies_of(
        &self,
        parent: &Node,
        parent_version: &Version,
        deps: Vec<Dep>,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, ResolveError> {
        let self_name = parent.package();
        for dep in &deps {
            if Some(&dep.name) != self_name {
                // Errors surface when the resolver asks for the package itself.
                let _ = self.prefetch.send(dep.name.clone());
            }
        }
        let mut by_name: BTreeMap<PackageName, (Vec<&Dep>, BTreeSet<ExtraName>)> = BTreeMap::new();
        for dep in &deps {
            let entry = by_name.entry(dep.name.clone()).or_default();
            entry.0.push(dep);
            entry.1.extend(dep.extras.iter().cloned());
        }
        let mut constraints: Vec<(Node, Ranges<Version>)> = Vec::new();
        for (name, (reqs, extras)) in by_name {
            let text = reqs
                .iter()
                .map(|d| d.text.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            self.edges
                .borrow_mut()
                .entry(name.clone())
                .or_default()
                .push(Edge {
                    parent: parent.clone(),
                    parent_version: parent_version.clone(),
                    requirement: text,
                });
            if Some(&name) == self_name {
                // `foo[all]` requiring `foo[a]`: the same version with more extras.
                for extra in extras {
                    let node = Node::Extra(name.clone(), extra);
                    self.discover(&node);
                    constraints.push((node, Ranges::singleton(parent_version.clone())));
                }
                continue;
            }
            let candidates = self.candidates(&name)?;
            let versions: Vec<&Version> = candidates.versions().collect();
            let explicit = self.explicit_prereleases(&name);
            let mut range = Ranges::full();
            for dep in &reqs {
                let (dep_range, prereleases) =
                    requirement_range(&dep.specifiers, &versions, explicit);
                if prereleases == Prereleases::OnlyOption {
                    self.prerelease_fallbacks
                        .borrow_mut()
                        .entry(name.clone())
                        .or_insert_with(|| dep.text.clone());
                }
                range = range.intersection(&dep_range);
            }
            let label = reqs
                .iter()
                .filter(|d| !d.specifiers.is_empty())
                .map(|d| d.specifiers.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let nodes = std::iter::once(Node::Package(name.clone())).chain(
                extras
                    .into_iter()
                    .map(|extra| Node::Extra(name.clone(), extra)),
            );
            for node in nodes {
                self.discover(&node);
                if !label.is_empty() {
                    self.labels
                        .borrow_mut()
                        .insert((node.clone(), range.clone()), label.clone());
                }
                constraints.push((node, range.clone()));
            }
        }
        Ok(Dependencies::Available(
            constraints
                .into_iter()
                .collect::<DependencyConstraints<_, _>>(),
        ))
    }
}

/// One requirement of a node, before grouping by package.
struct Dep {
    name: PackageName,
    extras: Vec<ExtraName>,
    specifiers: VersionSpecifiers,
    text: String,
}

mod pubgrub_impl;
