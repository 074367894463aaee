//! Names of archive members and link targets: validation and lexical resolution.
//!
//! Every name from an archive is checked here before anything else looks at it. A valid
//! name becomes a [`RelPath`]: UTF-8, relative, `/`-separated, without empty, `.` or `..`
//! components. Symlink targets are resolved lexically against the link's folder and
//! rewritten to a canonical relative form (see [`LinkTarget`]).

use std::fmt;

/// Why a member name or link target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRule {
    #[error("the name is not UTF-8")]
    NotUtf8,
    #[error("the name is empty")]
    Empty,
    #[error("the name contains a NUL byte")]
    Nul,
    #[error("the name contains a control character")]
    ControlChar,
    #[error("the name contains a backslash")]
    Backslash,
    #[error("the path is absolute")]
    Absolute,
    #[error("the path has a `..` component")]
    ParentDir,
    #[error("the path has an empty component")]
    EmptyComponent,
    #[error("the path has a `.` component")]
    CurDir,
    #[error("the name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
}

/// The longest member name or link target: Linux's `PATH_MAX`. No tool can open a longer
/// relative path in one call, so `tarfile` and `zipfile` could not extract such a member
/// either; and the depth it bounds bounds the work of placing a member.
pub const MAX_NAME_BYTES: usize = 4096;

/// How strictly `.` components are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Tar archives: `.` components (as in `./pkg-1.0/setup.py`, written by `tar -C dir .`)
    /// are harmless and dropped, as tar and Python's tarfile do.
    Tar,
    /// Zip archives (wheels): names must be exactly the RECORD's paths, so `.` is refused.
    Zip,
}

/// A validated relative path: one or more `/`-separated components, none of them empty,
/// `.` or `..`, and none containing `/` or NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Builds a path from components the caller has already validated (no `/`, NUL, `.`,
    /// `..` or empty component). Returns `None` for an empty list or a bad component.
    pub(crate) fn from_components<'a>(
        components: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let mut out = String::new();
        for component in components {
            if component.is_empty()
                || component == "."
                || component == ".."
                || component.contains(['/', '\0'])
            {
                return None;
            }
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(component);
        }
        (!out.is_empty()).then_some(Self(out))
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.0.split('/')
    }

    /// The first component.
    pub fn top(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The number of components.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The folder holding this path, `None` for a single component.
    pub fn parent(&self) -> Option<RelPath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| Self(parent.to_string()))
    }

    /// Every proper ancestor, shortest first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(move |(i, _)| &self.0[..i])
    }

    /// This path relative to `prefix` (`None` unless it lies strictly inside it).
    pub fn strip_prefix(&self, prefix: &str) -> Option<&str> {
        self.0
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member name that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberName {
    /// `None` when the name is only `.` components (the archive root, as in `./`).
    pub path: Option<RelPath>,
    /// Whether the name ended in `/` (a folder, by convention).
    pub trailing_slash: bool,
}

/// Validates a member name from an archive.
pub(crate) fn parse_member_name(raw: &[u8], dialect: Dialect) -> Result<MemberName, NameRule> {
    let text = check_characters(raw)?;
    if text.starts_with('/') {
        return Err(NameRule::Absolute);
    }
    let (body, trailing_slash) = match text.strip_suffix('/') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let mut components = Vec::new();
    for component in body.split('/') {
        match component {
            "" => return Err(NameRule::EmptyComponent),
            ".." => return Err(NameRule::ParentDir),
            "." if dialect == Dialect::Tar => {}
            "." => return Err(NameRule::CurDir),
            _ => components.push(component),
        }
    }
    Ok(MemberName {
        path: RelPath::from_components(components),
        trailing_slash,
    })
}

/// The character rules shared by member names and link targets.
fn check_characters(raw: &[u8]) -> Result<&str, NameRule> {
    if raw.is_empty() {
        return Err(NameRule::Empty);
    }
    if raw.len() > MAX_NAME_BYTES {
        return Err(NameRule::TooLong);
    }
    if raw.contains(&0) {
        return Err(NameRule::Nul);
    }
    let text = std::str::from_utf8(raw).map_err(|_| NameRule::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(NameRule::ControlChar);
    }
    if text.contains('\\') {
        return Err(NameRule::Backslash);
    }
    Ok(text)
}

/// A symlink target that resolves inside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkTarget {
    /// Where the link points, as components from the tree's root (empty: the root).
    pub resolved: Vec<String>,
    /// The target to write: zero or more `..` followed by plain components, the shortest
    /// relative path from the link's folder to `resolved` (`.` for the link's own folder).
    pub text: String,
}

/// Why a symlink target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRule {
    #[error("link target: {0}")]
    Name(NameRule),
    #[error("the link target is absolute")]
    Absolute,
    #[error("the link points outside the tree")]
    Outside,
}

/// Resolves a symlink's target lexically, relative to the folder that holds `link`, and
/// checks that it stays at or below the first `floor` components of `link` (1 for an sdist:
/// inside its top-level folder; 0 for a source tree: inside its root).
///
/// Lexical resolution alone is unsound when a target walks `..` out of another symlink
/// (`a/b/s -> ../..` and `x -> a/b/s/..` resolve differently on disk). The returned
/// [`LinkTarget::text`] is therefore the canonical form `../../c/d`: its `..` steps only
/// climb the link's own ancestors, which are real folders, and every later step goes down.
/// Going down from a folder inside the tree stays inside as long as every link in the tree
/// was written in this form, so what was checked is what the file system will do.
pub(crate) fn resolve_link(
    link: &RelPath,
    target: &[u8],
    floor: usize,
) -> Result<LinkTarget, LinkRule> {
    let text = check_characters(target).map_err(LinkRule::Name)?;
    if text.starts_with('/') {
        return Err(LinkRule::Absolute);
    }
    let folder: Vec<&str> = link.components().collect();
    let folder = &folder[..folder.len().saturating_sub(1)];
    let mut resolved: Vec<&str> = folder.to_vec();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if resolved.len() <= floor {
                    return Err(LinkRule::Outside);
                }
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    if resolved.len() < floor {
        return Err(LinkRule::Outside);
    }
    let common = folder
        .iter()
        .zip(&resolved)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; folder.len() - common];
    parts.extend(&resolved[common..]);
    let text = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    Ok(LinkTarget {
        resolved: resolved.into_iter().map(str::to_string).collect(),
        text,
    })
}

/// A name from an archive made safe to print: invalid UTF-8 replaced, control characters
/// escaped, so an error message cannot drive the user's terminal; past
/// [`DISPLAY_NAME_CHARS`] characters cut short with `…`.
pub(crate) fn display_name(raw: &[u8]) -> String {
    let head = &raw[..raw.len().min(4 * DISPLAY_NAME_CHARS)];
    let text = String::from_utf8_lossy(head);
    let cut = text.chars().count() > DISPLAY_NAME_CHARS || head.len() < raw.len();
    let shown: String = text
        .chars()
        .take(DISPLAY_NAME_CHARS)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() || c == '\\' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if cut { shown + "…" } else { shown }
}

/// The most characters of a name [`display_name`] shows.
pub(crate) const DISPLAY_NAME_CHARS: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> RelPath {
        parse_member_name(s.as_bytes(), Dialect::Zip)
            .unwrap()
            .path
            .unwrap()
    }

    #[test]
    fn accepts_plain_names() {
        let name = parse_member_name(b"pkg-1.0/src/pkg/__init__.py", Dialect::Zip).unwrap();
        assert_eq!(name.path.unwrap().as_str(), "pkg-1.0/src/pkg/__init__.py");
        assert!(!name.trailing_slash);
        let dir = parse_member_name(b"pkg-1.0/src/", Dialect::Zip).unwrap();
        assert!(dir.trailing_slash);
        assert_eq!(dir.path.unwrap().as_str(), "pkg-1.0/src");
    }

    #[test]
    fn tar_drops_dot_components_zip_refuses_them() {
        let name = parse_member_name(b"./pkg-1.0/./a", Dialect::Tar).unwrap();
        assert_eq!(name.path.unwrap().as_str(), "pkg-1.0/a");
        assert_eq!(parse_member_name(b"./", Dialect::Tar).unwrap().path, None);
        assert_eq!(
            parse_member_name(b"./a", Dialect::Zip),
            Err(NameRule::CurDir)
        );
    }

    #[test]
    fn refuses_each_rule() {
        let cases: &[(&[u8], NameRule)] = &[
            (b"", NameRule::Empty),
            (b"a/\0b", NameRule::Nul),
            (b"a/\xffb", NameRule::NotUtf8),
            (b"a/b\nc", NameRule::ControlChar),
            (b"a\\..\\b", NameRule::Backslash),
            (b"/etc/passwd", NameRule::Absolute),
            (b"a/../../b", NameRule::ParentDir),
            (b"..", NameRule::ParentDir),
            (b"a//b", NameRule::EmptyComponent),
            (b"a//", NameRule::EmptyComponent),
            (&[b'a'; MAX_NAME_BYTES + 1], NameRule::TooLong),
        ];
        for (raw, rule) in cases {
            assert_eq!(
                parse_member_name(raw, Dialect::Tar).as_ref().err(),
                Some(rule),
                "{}",
                display_name(raw)
            );
        }
    }

    #[test]
    fn relpath_helpers() {
        let p = path("a/b/c");
        assert_eq!(p.top(), "a");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.file_name(), "c");
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(p.strip_prefix("a"), Some("b/c"));
        assert_eq!(p.strip_prefix("a/b/c"), None);
        assert_eq!(p.strip_prefix("a/"), None);
    }

    #[test]
    fn links_resolve_lexically_to_canonical_text() {
        let link = path("pkg-1.0/docs/readme");
        let t = resolve_link(&link, b"../README.md", 1).unwrap();
        assert_eq!(t.resolved, ["pkg-1.0", "README.md"]);
        assert_eq!(t.text, "../README.md");
        // `..` after a plain component is folded away.
        let t = resolve_link(&link, b"sub/../../src/./x", 1).unwrap();
        assert_eq!(t.text, "../src/x");
        // Pointing at the link's own folder or the top-level folder is inside.
        assert_eq!(resolve_link(&link, b".", 1).unwrap().text, ".");
        assert_eq!(resolve_link(&link, b"..", 1).unwrap().resolved, ["pkg-1.0"]);
    }

    #[test]
    fn links_outside_are_refused() {
        let link = path("pkg-1.0/docs/readme");
        assert_eq!(resolve_link(&link, b"../..", 1), Err(LinkRule::Outside));
        assert_eq!(
            resolve_link(&link, b"../../pkg-1.0/x", 1),
            Err(LinkRule::Outside)
        );
        assert_eq!(
            resolve_link(&link, b"a/../../../..", 1),
            Err(LinkRule::Outside)
        );
        assert_eq!(
            resolve_link(&link, b"/etc/passwd", 1),
            Err(LinkRule::Absolute)
        );
        assert_eq!(
            resolve_link(&link, b"", 1),
            Err(LinkRule::Name(NameRule::Empty))
        );
        // With floor 0 (a source tree) the root itself is the limit.
        let link = path("docs/readme");
        assert_eq!(resolve_link(&link, b"../x", 0).unwrap().text, "../x");
        assert_eq!(resolve_link(&link, b"../../x", 0), Err(LinkRule::Outside));
    }

    #[test]
    fn display_escapes_controls() {
        assert_eq!(display_name(b"a\x1b[31mb\xff"), "a\\u{1b}[31mb\u{fffd}");
        let long = display_name(&[b'x'; 100_000]);
        assert_eq!(long.chars().count(), DISPLAY_NAME_CHARS + 1);
        assert!(long.ends_with("x…"));
    }
}
