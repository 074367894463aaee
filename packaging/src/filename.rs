//! Distribution file names: wheels (PEP 427 / binary distribution format) and sdists (PEP 625).

use anyhow::{Context, Result, bail};
use pep440_rs::Version;
use pep508_rs::PackageName;
use std::fmt;
use std::str::FromStr;

/// A parsed wheel file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    /// The distribution name, normalized.
    pub name: PackageName,
    /// The name exactly as written in the file name.
    pub raw_name: String,
    pub version: Version,
    /// The optional build tag (`1`, `0.editable`), the tie-breaker between wheels whose
    /// names are otherwise equal.
    pub build_tag: Option<BuildTag>,
    pub python_tags: Vec<String>,
    pub abi_tags: Vec<String>,
    pub platform_tags: Vec<String>,
}

impl WheelFilename {
    /// Whether any of the wheel's tag triples is in `supported`.
    pub fn is_compatible(&self, supported: &[(String, String, String)]) -> bool {
        self.python_tags.iter().any(|py| {
            self.abi_tags.iter().any(|abi| {
                self.platform_tags.iter().any(|plat| {
                    supported
                        .iter()
                        .any(|(p, a, pl)| p == py && a == abi && pl == plat)
                })
            })
        })
    }

    /// The `.dist-info` folder name a wheel with this file name must contain.
    pub fn dist_info_dir(&self) -> String {
        format!("{}-{}.dist-info", self.raw_name, self.version_str())
    }

    /// The version as written in the file name's canonical form.
    pub fn version_str(&self) -> String {
        self.version.to_string()
    }
}

impl FromStr for WheelFilename {
    type Err = anyhow::Error;

    fn from_str(filename: &str) -> Result<Self> {
        let stem = filename
            .strip_suffix(".whl")
            .with_context(|| format!("wheel file name `{filename}` does not end in .whl"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build_tag, tags) = match parts.as_slice() {
            [name, version, py, abi, plat] => (*name, *version, None, [*py, *abi, *plat]),
            [name, version, build, py, abi, plat] => {
                let tag = BuildTag::from_str(build).with_context(|| {
                    format!("wheel file name `{filename}`: invalid build tag `{build}`")
                })?;
                (*name, *version, Some(tag), [*py, *abi, *plat])
            }
            _ => bail!(
                "wheel file name `{filename}` is not `name-version[-build]-python-abi-platform.whl`"
            ),
        };
        let package = PackageName::from_str(name)
            .with_context(|| format!("wheel file name `{filename}`: invalid name `{name}`"))?;
        let version = Version::from_str(version).with_context(|| {
            format!("wheel file name `{filename}`: invalid version `{version}`")
        })?;
        let split = |s: &str| -> Result<Vec<String>> {
            if s.is_empty() || s.split('.').any(str::is_empty) {
                bail!("wheel file name `{filename}` has an empty compatibility tag");
            }
            if !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                bail!(
                    "wheel file name `{filename}`: compatibility tag `{s}` holds characters \
                     other than letters, digits and `_`"
                );
            }
            Ok(s.split('.').map(str::to_string).collect())
        };
        Ok(Self {
            name: package,
            raw_name: name.to_string(),
            version,
            build_tag,
            python_tags: split(tags[0])?,
            abi_tags: split(tags[1])?,
            platform_tags: split(tags[2])?,
        })
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.raw_name, self.version)?;
        if let Some(build) = &self.build_tag {
            write!(f, "-{build}")?;
        }
        write!(
            f,
            "-{}-{}-{}.whl",
            self.python_tags.join("."),
            self.abi_tags.join("."),
            self.platform_tags.join(".")
        )
    }
}

/// A wheel's build tag: one or more ASCII digits, then anything but `-` (PEP 427, as
/// pypa/packaging's `parse_wheel_filename`, pip and uv read it). setuptools names editable
/// wheels with the build tag `0.editable`; pdm-backend takes one from `--build-number`.
///
/// Tags compare as PEP 427 sorts them: by the leading number, then by the rest as a
/// string (`2` < `10` < `10a`). Control characters are refused (packaging refuses a
/// newline only; no backend writes any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuildTag {
    number: u64,
    rest: String,
    text: String,
}

impl BuildTag {
    /// The leading number (`0` for `0.editable`).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// What follows the leading digits (`.editable` for `0.editable`; may be empty).
    pub fn rest(&self) -> &str {
        &self.rest
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for BuildTag {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            bail!("a build tag must start with a digit");
        }
        if text.contains('-') || text.chars().any(char::is_control) {
            bail!("a build tag may not hold `-` or control characters");
        }
        let number = text[..digits]
            .parse()
            .context("the build tag's leading number is too large")?;
        Ok(Self {
            number,
            rest: text[digits..].to_string(),
            text: text.to_string(),
        })
    }
}

impl Ord for BuildTag {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.number, &self.rest, &self.text).cmp(&(other.number, &other.rest, &other.text))
    }
}

impl PartialOrd for BuildTag {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BuildTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A parsed source distribution file name: `{name}-{version}.tar.gz`, or a legacy
/// `{name}-{version}.zip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistFilename {
    pub name: PackageName,
    /// The name exactly as written in the file name.
    pub raw_name: String,
    pub version: Version,
    /// The version exactly as written in the file name.
    pub raw_version: String,
}

impl SdistFilename {
    /// Parses a PEP 625 name (`{normalized_name}-{version}.tar.gz`, where the name holds no
    /// `-`; a legacy `.zip` too). Legacy names with dashes in the project name need
    /// [`Self::parse_for`].
    pub fn parse(filename: &str) -> Result<Self> {
        let stem = strip_sdist_suffix(filename)?;
        let (name, version) = stem.split_once('-').with_context(|| {
            format!("sdist file name `{filename}` is not `name-version.tar.gz` (or `.zip`)")
        })?;
        Self::from_parts(filename, name, version)
    }

    /// Parses a file name known to belong to `project`, which may contain dashes
    /// (`zope.interface-5.0.tar.gz`, `python-dateutil-2.8.tar.gz`).
    pub fn parse_for(filename: &str, project: &PackageName) -> Result<Self> {
        let stem = strip_sdist_suffix(filename)?;
        match split_name_version(stem, project) {
            Some((name, version)) => Self::from_parts(filename, name, version),
            None => bail!(
                "sdist file name `{filename}` does not start with the project name `{project}`"
            ),
        }
    }

    /// Parses a file name whose project is unknown and may hold dashes: the first `-` that
    /// is followed by a valid version separates name and version (`python-dateutil-2.8.2`
    /// splits after `dateutil`). Prefer [`Self::parse_for`] when the project is known.
    pub fn parse_guess(filename: &str) -> Result<Self> {
        let stem = strip_sdist_suffix(filename)?;
        for (i, _) in stem.match_indices('-') {
            let (name, version) = (&stem[..i], &stem[i + 1..]);
            if PackageName::from_str(name).is_ok() && Version::from_str(version).is_ok() {
                return Self::from_parts(filename, name, version);
            }
        }
        bail!("sdist file name `{filename}` is not `name-version.tar.gz` (or `.zip`)")
    }

    fn from_parts(filename: &str, name: &str, version: &str) -> Result<Self> {
        let package = PackageName::from_str(name)
            .with_context(|| format!("sdist file name `{filename}`: invalid name `{name}`"))?;
        let parsed = Version::from_str(version).with_context(|| {
            format!("sdist file name `{filename}`: invalid version `{version}`")
        })?;
        Ok(Self {
            name: package,
            raw_name: name.to_string(),
            version: parsed,
            raw_version: version.to_string(),
        })
    }

    /// The single top-level folder an sdist with this name holds.
    pub fn top_level_dir(&self) -> String {
        format!("{}-{}", self.raw_name, self.raw_version)
    }
}

fn strip_sdist_suffix(filename: &str) -> Result<&str> {
    filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))
        .with_context(|| {
            format!("sdist file name `{filename}` ends in neither .tar.gz nor (legacy) .zip")
        })
}

/// Splits `{name}-{version}` (a file name's stem, a `.dist-info` folder's name without its
/// suffix) at the `-` whose left side normalizes to `project`. Names may hold dashes in
/// legacy forms (`python-dateutil-2.8.2`), so every dash is tried from the left.
pub fn split_name_version<'a>(stem: &'a str, project: &PackageName) -> Option<(&'a str, &'a str)> {
    stem.match_indices('-')
        .map(|(i, _)| (&stem[..i], &stem[i + 1..]))
        .find(|(name, _)| PackageName::from_str(name).is_ok_and(|n| &n == project))
}

/// Every way `stem` splits at a `-` into a valid name and version, leftmost first.
pub(crate) fn name_version_splits(stem: &str) -> impl Iterator<Item = (PackageName, Version)> + '_ {
    stem.match_indices('-').filter_map(|(i, _)| {
        let name = PackageName::from_str(&stem[..i]).ok()?;
        let version = Version::from_str(&stem[i + 1..]).ok()?;
        Some((name, version))
    })
}

/// Whether two `{name}-{version}` strings (an sdist's file name without `.tar.gz`, its
/// top-level folder) name the same project at the same version: equal, or split so that
/// the names normalize alike and the versions are equal under PEP 440. PEP 625 normalizes
/// the file name but not the folder: `ruamel_yaml-0.19.1.tar.gz` holds `ruamel.yaml-0.19.1/`.
pub fn same_name_version(a: &str, b: &str) -> bool {
    a == b
        || name_version_splits(a).any(|(name_a, version_a)| {
            name_version_splits(b)
                .any(|(name_b, version_b)| name_a == name_b && version_a == version_b)
        })
}

/// The name as it appears in wheel and sdist file names and in `.dist-info` folders:
/// normalized, with `-` replaced by `_` (PEP 427 / PEP 625 escaping).
pub fn escaped_name(name: &PackageName) -> String {
    name.as_dist_info_name().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        list.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn parses_wheel_names() {
        let w: WheelFilename = "flit_core-3.9.0-py3-none-any.whl".parse().unwrap();
        assert_eq!(w.name.as_ref(), "flit-core");
        assert_eq!(w.version.to_string(), "3.9.0");
        assert_eq!(w.dist_info_dir(), "flit_core-3.9.0.dist-info");
        let w: WheelFilename = "six-1.16.0-1-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(w.build_tag.as_ref().map(BuildTag::as_str), Some("1"));
        assert_eq!(w.python_tags, ["py2", "py3"]);
        assert_eq!(w.to_string(), "six-1.16.0-1-py2.py3-none-any.whl");
    }

    #[test]
    fn rejects_bad_wheel_names() {
        for bad in [
            "foo.whl",
            "foo-1.0.whl",
            "foo-1.0-py3-none.whl",
            "foo-notaversion-py3-none-any.whl",
            "foo-1.0-x-py3-none-any.whl",
            "foo-1.0-.editable-py3-none-any.whl",
            "foo-1.0-1\r-py3-none-any.whl",
            "foo-1.0-99999999999999999999999-py3-none-any.whl",
            "foo-1.0-py3..py2-none-any.whl",
            "foo-1.0-py3-none-any.zip",
            "foo-1.0-py3-none-any x.whl",
            "foo-1.0-py3-none-../x.whl",
            "foo-1.0-py3-none-\u{e9}.whl",
        ] {
            assert!(bad.parse::<WheelFilename>().is_err(), "{bad}");
        }
    }

    /// The names each backend gives its editable (and plain) wheels, taken from native
    /// builds of a project named `Demo.Pkg` at `1.0.post1` with setuptools 84.2.1,
    /// hatchling 1.33.0, flit_core 4.2.0, pdm-backend 2.5.0 and poetry-core 2.5.0.
    #[test]
    fn parses_each_backends_editable_wheel_names() {
        for (backend, name, build) in [
            (
                "setuptools",
                "demo_pkg-1.0.post1-0.editable-py3-none-any.whl",
                Some((0, ".editable")),
            ),
            ("hatchling", "demo_pkg-1.0.post1-py2.py3-none-any.whl", None),
            ("flit_core", "demo_pkg-1.0.post1-py2.py3-none-any.whl", None),
            (
                "pdm-backend",
                "demo_pkg-1.0.post1-py2.py3-none-any.whl",
                None,
            ),
            (
                "pdm-backend --build-number=7.local",
                "demo_pkg-1.0.post1-7.local-py2.py3-none-any.whl",
                Some((7, ".local")),
            ),
            (
                "poetry-core",
                "demo_pkg-1.0.post1-py2.py3-none-any.whl",
                None,
            ),
        ] {
            let w: WheelFilename = name.parse().unwrap_or_else(|e| panic!("{backend}: {e:#}"));
            assert_eq!(w.name.as_ref(), "demo-pkg", "{backend}");
            assert_eq!(w.version.to_string(), "1.0.post1", "{backend}");
            assert_eq!(
                w.dist_info_dir(),
                "demo_pkg-1.0.post1.dist-info",
                "{backend}"
            );
            assert_eq!(
                w.build_tag.as_ref().map(|t| (t.number(), t.rest())),
                build,
                "{backend}"
            );
            assert_eq!(w.to_string(), name, "{backend}");
        }
    }

    #[test]
    fn build_tags_are_what_pypa_packaging_accepts() {
        // `(\d+)(.*)`: digits, then anything but `-` (which separates the fields).
        for (tag, number, rest) in [
            ("1", 1, ""),
            ("0.editable", 0, ".editable"),
            ("20240101_abc", 20240101, "_abc"),
            ("1 x", 1, " x"),
            ("007", 7, ""),
        ] {
            let parsed = BuildTag::from_str(tag).unwrap();
            assert_eq!((parsed.number(), parsed.rest()), (number, rest), "{tag}");
            assert_eq!(parsed.as_str(), tag);
        }
        for bad in ["", "x1", ".1", "1\n", "1\u{1b}"] {
            assert!(BuildTag::from_str(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn build_tags_sort_by_number_then_rest() {
        let tag = |s: &str| BuildTag::from_str(s).unwrap();
        let mut tags = [
            tag("10"),
            tag("2b"),
            tag("2"),
            tag("10a"),
            tag("0.editable"),
        ];
        tags.sort();
        let sorted: Vec<&str> = tags.iter().map(BuildTag::as_str).collect();
        assert_eq!(sorted, ["0.editable", "2", "2b", "10", "10a"]);
        // Equal as PEP 427 compares them, but still told apart (`Ord` agrees with `Eq`).
        assert!(tag("07") != tag("7"));
        assert_ne!(tag("07").cmp(&tag("7")), std::cmp::Ordering::Equal);
    }

    #[test]
    fn wheel_compatibility() {
        let supported = tags(&[("py3", "none", "any"), ("cp312", "none", "any")]);
        let pure: WheelFilename = "a-1-py2.py3-none-any.whl".parse().unwrap();
        assert!(pure.is_compatible(&supported));
        let native: WheelFilename = "a-1-cp312-cp312-manylinux_2_17_x86_64.whl".parse().unwrap();
        assert!(!native.is_compatible(&supported));
    }

    #[test]
    fn parses_sdist_names() {
        let s = SdistFilename::parse("flit_core-3.9.0.tar.gz").unwrap();
        assert_eq!(s.top_level_dir(), "flit_core-3.9.0");
        let project = PackageName::from_str("python-dateutil").unwrap();
        let s = SdistFilename::parse_for("python-dateutil-2.8.2.tar.gz", &project).unwrap();
        assert_eq!(s.version.to_string(), "2.8.2");
        assert!(SdistFilename::parse("foo.zip").is_err());
        assert!(SdistFilename::parse("foo-1.0.tar.xz").is_err());
        let s = SdistFilename::parse("foo-1.0.zip").unwrap();
        assert_eq!(s.top_level_dir(), "foo-1.0");
        let s = SdistFilename::parse_guess("python-dateutil-2.8.2.zip").unwrap();
        assert_eq!(s.name.as_ref(), "python-dateutil");
    }

    #[test]
    fn guesses_legacy_sdist_names() {
        let s = SdistFilename::parse_guess("python-dateutil-2.8.2.tar.gz").unwrap();
        assert_eq!(s.name.as_ref(), "python-dateutil");
        assert_eq!(s.raw_version, "2.8.2");
        let s = SdistFilename::parse_guess("flit_core-3.9.0.tar.gz").unwrap();
        assert_eq!(s.name.as_ref(), "flit-core");
        assert!(SdistFilename::parse_guess("src.tar.gz").is_err());
        assert!(SdistFilename::parse_guess("a-b-c.tar.gz").is_err());
    }

    #[test]
    fn same_name_version_compares_normalized() {
        assert!(same_name_version(
            "ruamel_yaml-0.19.1",
            "ruamel.yaml-0.19.1"
        ));
        assert!(same_name_version("Foo.Bar-1.0", "foo_bar-1.0.0"));
        assert!(same_name_version(
            "python_dateutil-2.8.2",
            "python-dateutil-2.8.2"
        ));
        assert!(same_name_version("src", "src"));
        assert!(!same_name_version("pkg-1.0", "evil-1.0"));
        assert!(!same_name_version("pkg-1.0", "pkg-1.1"));
        assert!(!same_name_version("pkg-1.0", "pkg"));
        assert!(!same_name_version("pkg", "pkg-"));
    }

    #[test]
    fn splits_name_and_version_for_a_project() {
        let project = PackageName::from_str("zope-interface").unwrap();
        assert_eq!(
            split_name_version("zope.interface-5.0", &project),
            Some(("zope.interface", "5.0"))
        );
        assert_eq!(split_name_version("zope-5.0", &project), None);
    }
}
