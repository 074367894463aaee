//! Build constraint files (`--build-constraint FILE`): pip's requirements-file format,
//! limited to what constrains a build environment — `name<specifiers>[; marker]` lines with
//! `--hash=sha256:…` options — plus `--require-hashes`.
//!
//! Constraints restrict the versions of packages that appear in a resolution; they never
//! add packages. In require-hashes mode every resolved package must be pinned with `==`
//! and its wheel's sha256 must be one of the hashes listed for it.
//!
//! Anything a constraint file could say that wasm-build cannot honour (other files,
//! indexes, editable or URL requirements, extras, hash algorithms other than sha256) is an
//! error naming the file and line, never silently ignored.

use anyhow::{Context, Result, bail};
use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerTree, PackageName, VersionOrUrl};
use std::fmt;
use std::path::{Path, PathBuf};

/// One constraint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// The constrained package.
    pub name: PackageName,
    /// The versions the line allows (empty: any).
    pub specifiers: VersionSpecifiers,
    /// The line applies only where this marker is true.
    pub marker: MarkerTree,
    /// Allowed sha256 hashes (lower-case hex) of the package's wheel.
    pub hashes: Vec<String>,
    /// The (first) line number in the file, 1-based.
    pub line: usize,
    /// The requirement as written, for messages.
    pub text: String,
}

impl Constraint {
    /// The version this line pins with `==V` (no wildcard) or `===V`.
    pub fn pinned_version(&self) -> Option<&Version> {
        match self.specifiers.as_ref() {
            [only] if matches!(only.operator(), Operator::Equal | Operator::ExactEqual) => {
                Some(only.version())
            }
            _ => None,
        }
    }
}

/// The constraints of one build.
#[derive(Debug, Clone, Default)]
pub struct BuildConstraints {
    source: Option<PathBuf>,
    entries: Vec<Constraint>,
    require_hashes: bool,
}

impl BuildConstraints {
    /// No constraints.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a constraint file. `require_hashes` turns on require-hashes mode (so does a
    /// `--require-hashes` line in the file).
    pub fn from_file(path: &Path, require_hashes: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading build constraints {}", path.display()))?;
        Self::parse(&text, path, require_hashes)
    }

    /// Parses constraint text; `source` names the file in messages.
    pub fn parse(text: &str, source: &Path, require_hashes: bool) -> Result<Self> {
        let mut constraints = Self {
            source: Some(source.to_path_buf()),
            entries: Vec::new(),
            require_hashes,
        };
        for (line, logical) in logical_lines(text) {
            let at = || format!("{}:{line}", source.display());
            let tokens: Vec<&str> = logical.split_whitespace().collect();
            if tokens.is_empty() {
                continue;
            }
            let split = tokens
                .iter()
                .position(|t| t.starts_with('-'))
                .unwrap_or(tokens.len());
            let (requirement, options) = tokens.split_at(split);
            let hashes = parse_options(options, requirement.is_empty(), &mut constraints)
                .with_context(at)?;
            if requirement.is_empty() {
                continue;
            }
            let text = requirement.join(" ");
            let constraint = parse_requirement(&text, hashes, line).with_context(at)?;
            if let Some(earlier) = constraints
                .entries
                .iter()
                .find(|c| c.name == constraint.name && c.marker == constraint.marker)
            {
                bail!(
                    "{}: `{}` is constrained twice (also on line {}); merge the lines into one",
                    at(),
                    constraint.name,
                    earlier.line
                );
            }
            constraints.entries.push(constraint);
        }
        Ok(constraints)
    }

    /// Whether every resolved package must be pinned and hash-checked by this file.
    pub fn require_hashes(&self) -> bool {
        self.require_hashes
    }

    /// The file the constraints came from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether there are no constraint lines.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The lines that apply to `name` in `env` (their markers are true).
    pub fn for_package<'a>(
        &'a self,
        name: &PackageName,
        env: &MarkerEnvironment,
    ) -> Applicable<'a> {
        Applicable {
            source: self.source.as_deref(),
            entries: self
                .entries
                .iter()
                .filter(|c| &c.name == name && c.marker.evaluate(env, &[]))
                .collect(),
        }
    }
}

/// The constraint lines that apply to one package.
#[derive(Debug, Clone)]
pub struct Applicable<'a> {
    source: Option<&'a Path>,
    entries: Vec<&'a Constraint>,
}

impl Applicable<'_> {
    /// Whether no line applies.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every applicable line allows `version`.
    pub fn allows(&self, version: &Version) -> bool {
        self.entries.iter().all(|c| c.specifiers.contains(version))
    }

    /// Whether a line names a pre-release, which allows pre-releases of the package.
    pub fn mentions_prerelease(&self) -> bool {
        self.entries
            .iter()
            .any(|c| c.specifiers.iter().any(|s| s.any_prerelease()))
    }

    /// The version the lines pin exactly, if one does.
    pub fn pinned_version(&self) -> Option<&Version> {
        self.entries.iter().find_map(|c| c.pinned_version())
    }

    /// Every hash listed for the package.
    pub fn hashes(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .flat_map(|c| c.hashes.iter().map(String::as_str))
    }
}

impl fmt::Display for Applicable<'_> {
    /// `` `foo==1.0` (constraints.txt line 3) ``, joined with "and".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.entries.iter().enumerate() {
            if i > 0 {
                write!(f, " and ")?;
            }
            match self.source {
                Some(source) => write!(f, "`{}` ({} line {})", c.text, source.display(), c.line)?,
                None => write!(f, "`{}`", c.text)?,
            }
        }
        Ok(())
    }
}

/// Joins `\` continuations and strips comments, yielding (first line number, logical line).
/// As in pip, a comment line never continues onto the next one.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let is_comment = raw.trim_start().starts_with('#');
        match raw.strip_suffix('\\') {
            Some(head) if !is_comment => {
                let entry = pending.get_or_insert_with(|| (number, String::new()));
                entry.1.push_str(head);
                entry.1.push(' ');
            }
            _ => {
                let (first, mut joined) = pending.take().unwrap_or((number, String::new()));
                if !is_comment {
                    joined.push_str(raw);
                }
                lines.push((first, strip_comment(&joined).to_string()));
            }
        }
    }
    if let Some((first, joined)) = pending {
        lines.push((first, strip_comment(&joined).to_string()));
    }
    lines
}

/// Removes a `#` comment that starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Reads the options of one line; returns the sha256 hashes. `--require-hashes` alone on a
/// line turns on require-hashes mode.
fn parse_options(
    options: &[&str],
    standalone: bool,
    constraints: &mut BuildConstraints,
) -> Result<Vec<String>> {
    let mut hashes = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let option = options[i];
        let (name, inline_value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        match name {
            "--hash" => {
                if standalone {
                    bail!("`--hash` must follow a requirement on the same (continued) line");
                }
                let value = match inline_value {
                    Some(value) => value,
                    None => {
                        i += 1;
                        options
                            .get(i)
                            .copied()
                            .context("`--hash` needs a value such as sha256:<hex>")?
                    }
                };
                hashes.push(parse_hash(value)?);
            }
            "--require-hashes" if standalone && inline_value.is_none() => {
                constraints.require_hashes = true;
            }
            "-r" | "--requirement" | "-c" | "--constraint" => bail!(
                "`{name}` (including another file) is not supported in build constraints; \
                 put every constraint in this file"
            ),
            "-e" | "--editable" => {
                bail!("editable requirements cannot be build constraints")
            }
            "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" | "--no-index" => {
                bail!(
                    "`{name}` is not supported in build constraints; pass indexes to wasm-build \
                     on the command line"
                )
            }
            other => bail!("option `{other}` is not supported in build constraints"),
        }
        i += 1;
    }
    Ok(hashes)
}

/// Reads `sha256:<64 hex digits>`.
fn parse_hash(value: &str) -> Result<String> {
    let Some((algorithm, digest)) = value.split_once(':') else {
        bail!("hash `{value}` is not `<algorithm>:<hex digest>`");
    };
    if algorithm != "sha256" {
        bail!(
            "hash `{value}` uses {algorithm}; wasm-build checks sha256 hashes only \
             (list the sha256 of each wheel)"
        );
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("hash `{value}` is not 64 hexadecimal digits");
    }
    Ok(digest.to_ascii_lowercase())
}

fn parse_requirement(text: &str, hashes: Vec<String>, line: usize) -> Result<Constraint> {
    let requirement = crate::pep508::requirement(text)
        .map_err(|e| anyhow::anyhow!("`{text}` is not a valid requirement: {e}"))?;
    if !requirement.extras.is_empty() {
        bail!(
            "`{text}`: constraints cannot have extras; constrain `{}` itself",
            requirement.name
        );
    }
    let specifiers = match requirement.version_or_url {
        None => VersionSpecifiers::empty(),
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers,
        Some(VersionOrUrl::Url(_)) => bail!(
            "`{text}`: URL requirements cannot be build constraints; pin a version from the index"
        ),
    };
    Ok(Constraint {
        name: requirement.name,
        specifiers,
        marker: requirement.marker,
        hashes,
        line,
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn parse(text: &str) -> Result<BuildConstraints> {
        BuildConstraints::parse(text, Path::new("constraints.txt"), false)
    }

    fn env() -> MarkerEnvironment {
        crate::target::tests::wasi_312()
            .marker_environment()
            .clone()
    }

    fn name(s: &str) -> PackageName {
        PackageName::from_str(s).unwrap()
    }

    fn v(s: &str) -> Version {
        Version::from_str(s).unwrap()
    }

    #[test]
    fn parses_pinned_lines_with_hashes_and_continuations() {
        let text = format!(
            "# generated by pip-compile\n\
             \n\
             hatchling==1.25.0 \\\n    --hash=sha256:{H1} \\\n    --hash sha256:{} \n\
             packaging==24.1  # via hatchling\n\
             Pluggy >= 1.0, <2 ; python_version >= '3.8' --hash=sha256:{H1}\n\
             tomli==2.0.1 ; python_version < '3.11'\n",
            H2.to_uppercase()
        );
        let constraints = parse(&text).unwrap();
        assert_eq!(constraints.entries.len(), 4);
        let hatchling = constraints.for_package(&name("hatchling"), &env());
        assert_eq!(hatchling.pinned_version(), Some(&v("1.25.0")));
        assert_eq!(hatchling.hashes().collect::<Vec<_>>(), [H1, H2]);
        assert_eq!(constraints.entries[0].line, 3);
        assert_eq!(constraints.entries[1].line, 6);
        let pluggy = constraints.for_package(&name("pluggy"), &env());
        assert!(pluggy.allows(&v("1.5.0")));
        assert!(!pluggy.allows(&v("2.0")));
        assert_eq!(pluggy.pinned_version(), None);
        // The marker is false for the guest: the line does not apply.
        assert!(constraints.for_package(&name("tomli"), &env()).is_empty());
        assert!(
            hatchling
                .to_string()
                .contains("`hatchling==1.25.0` (constraints.txt line 3)")
        );
    }

    #[test]
    fn comment_lines_do_not_continue() {
        let constraints = parse("# note \\\nsix==1.16.0\n").unwrap();
        assert_eq!(constraints.entries.len(), 1);
        assert_eq!(constraints.entries[0].line, 2);
        // A `#` inside a token is not a comment.
        let err = parse("six==1.16#x\n").unwrap_err();
        assert!(format!("{err:#}").contains("constraints.txt:1"), "{err:#}");
    }

    #[test]
    fn require_hashes_line_turns_the_mode_on() {
        assert!(
            parse("--require-hashes\nsix==1.16.0 --hash=sha256:").is_err(),
            "an empty hash is refused"
        );
        let constraints = parse(&format!(
            "--require-hashes\nsix==1.16.0 --hash=sha256:{H1}\n"
        ))
        .unwrap();
        assert!(constraints.require_hashes());
    }

    #[test]
    fn rejects_what_it_cannot_honour_naming_file_and_line() {
        let cases = [
            ("-r other.txt", "another file"),
            ("-c other.txt", "another file"),
            ("-e ./src", "editable"),
            ("--index-url https://example.org/simple", "command line"),
            ("six @ https://example.org/six.whl", "URL requirements"),
            ("hatchling[foo]==1.0", "extras"),
            ("six==1.16 --hash=md5:abc", "sha256 hashes only"),
            ("six==1.16 --hash=sha256:xyz", "64 hexadecimal"),
            ("six==1.16 --hash", "needs a value"),
            ("--hash=sha256:", "must follow a requirement"),
            ("six==1.16 --no-binary :all:", "not supported"),
            ("six=1.16", "not a valid requirement"),
        ];
        for (line, expected) in cases {
            let text = format!("flit_core==3.9\n{line}\n");
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains("constraints.txt:2"), "{line}: {err}");
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn rejects_duplicates_with_the_same_marker() {
        let err = parse("six==1.16.0\nSix==1.15.0\n").unwrap_err();
        assert!(err.to_string().contains("constrained twice"), "{err}");
        // Different markers may each pin their own version.
        parse("six==1.16.0; python_version >= '3.12'\nsix==1.15.0; python_version < '3.12'\n")
            .unwrap();
    }

    #[test]
    fn pins_and_prereleases() {
        let constraints = parse("a===1.0\nb==1.*\nc==2.0b1\nd>=1\n").unwrap();
        let get = |n: &str| constraints.for_package(&name(n), &env());
        assert_eq!(get("a").pinned_version(), Some(&v("1.0")));
        assert_eq!(get("b").pinned_version(), None);
        assert!(get("c").mentions_prerelease());
        assert!(!get("d").mentions_prerelease());
        assert!(get("unknown").is_empty());
        assert!(get("unknown").allows(&v("9")));
    }

    #[test]
    fn none_is_empty() {
        let none = BuildConstraints::none();
        assert!(none.is_empty());
        assert!(!none.require_hashes());
        assert!(none.source().is_none());
    }
}
