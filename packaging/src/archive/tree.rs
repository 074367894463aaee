//! An in-memory model of the tree an archive describes, member by member.
//!
//! The model decides, before anything touches the disk, whether a member may be created:
//! its parents must be folders (never a symlink or a file, so nothing is ever written
//! "through" a link), and a path already taken may only be taken again by the same kind of
//! node. It also resolves paths through the tree's own symlinks without asking the file
//! system, which is how dangling links are found.

use super::path::RelPath;
use std::collections::HashMap;
use std::fmt;

/// What a path of the tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File,
    /// A symlink and where it points, as components from the tree's root.
    Symlink(Vec<String>),
}

impl Node {
    fn kind(&self) -> NodeKind {
        match self {
            Node::Dir => NodeKind::Dir,
            Node::File => NodeKind::File,
            Node::Symlink(_) => NodeKind::Symlink,
        }
    }
}

/// The kind of a node, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Dir => "folder",
            NodeKind::File => "file",
            NodeKind::Symlink => "symlink",
        })
    }
}

/// Why a member cannot take its place in the tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementRule {
    #[error("it would be written through the symlink `{link}`")]
    ThroughSymlink { link: String },
    #[error("it would be written inside the file `{file}`")]
    ThroughFile { file: String },
    #[error("a {new} would replace the {existing} of the same name")]
    Replaces { existing: NodeKind, new: NodeKind },
}

/// What [`Tree::place`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The path is new.
    New,
    /// A file replaces an earlier file of the same name (later members win, as in tar).
    ReplaceFile,
    /// A folder that already exists is listed again.
    ExistingDir,
}

/// The tree built so far.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: HashMap<String, Node>,
}

impl Tree {
    /// Records `node` at `path` if the rules allow it. Missing parent folders are recorded
    /// as folders (the writer creates them).
    pub(crate) fn place(&mut self, path: &RelPath, node: Node) -> Result<Placement, PlacementRule> {
        // Every recorded path's ancestors are recorded folders, and a folder is never
        // replaced: so the nearest recorded ancestor decides for all of them, and the
        // common case (the parent is known) costs one lookup, not one per level.
        let ancestors: Vec<&str> = path.ancestors().collect();
        let known = ancestors
            .iter()
            .rposition(|ancestor| self.nodes.contains_key(*ancestor));
        if let Some(i) = known {
            match &self.nodes[ancestors[i]] {
                Node::Dir => {}
                Node::File => {
                    return Err(PlacementRule::ThroughFile {
                        file: ancestors[i].to_string(),
                    });
                }
                Node::Symlink(_) => {
                    return Err(PlacementRule::ThroughSymlink {
                        link: ancestors[i].to_string(),
                    });
                }
            }
        }
        let placement = match (self.nodes.get(path.as_str()), &node) {
            (None, _) => Placement::New,
            (Some(Node::Dir), Node::Dir) => Placement::ExistingDir,
            (Some(Node::File), Node::File) => Placement::ReplaceFile,
            (Some(existing), new) => {
                return Err(PlacementRule::Replaces {
                    existing: existing.kind(),
                    new: new.kind(),
                });
            }
        };
        let missing = known.map_or(0, |i| i + 1);
        for ancestor in &ancestors[missing..] {
            self.nodes.insert((*ancestor).to_string(), Node::Dir);
        }
        self.nodes.insert(path.as_str().to_string(), node);
        Ok(placement)
    }

    /// How many paths are recorded (folders implied by names included).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The node recorded at `path`, without following links.
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Removes a symlink (used when staging drops a dangling one).
    pub(crate) fn remove_symlink(&mut self, path: &str) {
        if matches!(self.nodes.get(path), Some(Node::Symlink(_))) {
            self.nodes.remove(path);
        }
    }

    /// The symlinks of the tree, as (path, target components).
    pub(crate) fn symlinks(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.nodes.iter().filter_map(|(path, node)| match node {
            Node::Symlink(target) => Some((path.as_str(), target.as_slice())),
            _ => None,
        })
    }

    /// Follows `components` from the root through the tree's own symlinks and tells what
    /// is there at the end: `None` when something is missing, a file is walked into, or
    /// links loop (more than 40 hops, as Linux allows). The empty path is the root folder.
    pub(crate) fn resolve(&self, components: &[String]) -> Option<NodeKind> {
        let mut pending: Vec<String> = components.iter().rev().cloned().collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            current.push(component);
            match self.nodes.get(&current.join("/"))? {
                Node::Dir => {}
                Node::File if pending.is_empty() => return Some(NodeKind::File),
                Node::File => return None,
                Node::Symlink(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    current.clear();
                    pending.extend(target.iter().rev().cloned());
                }
            }
        }
        Some(NodeKind::Dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::from_components(s.split('/')).unwrap()
    }

    fn link(s: &str) -> Node {
        Node::Symlink(s.split('/').map(str::to_string).collect())
    }

    #[test]
    fn parents_become_folders_and_duplicates_follow_the_rules() {
        let mut tree = Tree::default();
        assert_eq!(tree.place(&p("t/a/b"), Node::File), Ok(Placement::New));
        assert_eq!(tree.get("t/a"), Some(&Node::Dir));
        assert_eq!(tree.place(&p("t/a"), Node::Dir), Ok(Placement::ExistingDir));
        assert_eq!(
            tree.place(&p("t/a/b"), Node::File),
            Ok(Placement::ReplaceFile)
        );
        assert_eq!(
            tree.place(&p("t/a"), Node::File),
            Err(PlacementRule::Replaces {
                existing: NodeKind::Dir,
                new: NodeKind::File
            })
        );
        assert_eq!(
            tree.place(&p("t/a/b/c"), Node::File),
            Err(PlacementRule::ThroughFile {
                file: "t/a/b".into()
            })
        );
    }

    #[test]
    fn nothing_goes_through_or_over_a_symlink() {
        let mut tree = Tree::default();
        tree.place(&p("t/l"), link("t/a")).unwrap();
        assert_eq!(
            tree.place(&p("t/l/x"), Node::File),
            Err(PlacementRule::ThroughSymlink { link: "t/l".into() })
        );
        assert!(matches!(
            tree.place(&p("t/l"), Node::File),
            Err(PlacementRule::Replaces { .. })
        ));
        assert!(matches!(
            tree.place(&p("t/l"), link("t")),
            Err(PlacementRule::Replaces { .. })
        ));
    }

    #[test]
    fn resolves_through_links_and_finds_dangling_ones() {
        let mut tree = Tree::default();
        tree.place(&p("t/src/mod.py"), Node::File).unwrap();
        tree.place(&p("t/alias"), link("t/src")).unwrap();
        tree.place(&p("t/alias2"), link("t/alias")).unwrap();
        tree.place(&p("t/dangling"), link("t/nope")).unwrap();
        tree.place(&p("t/loop"), link("t/loop")).unwrap();
        let comps = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            tree.resolve(&comps("t/alias2/mod.py")),
            Some(NodeKind::File)
        );
        assert_eq!(tree.resolve(&comps("t/alias")), Some(NodeKind::Dir));
        assert_eq!(tree.resolve(&comps("t/dangling")), None);
        assert_eq!(tree.resolve(&comps("t/loop")), None);
        assert_eq!(tree.resolve(&comps("t/src/mod.py/x")), None);
        assert_eq!(tree.resolve(&[]), Some(NodeKind::Dir));
    }
}
