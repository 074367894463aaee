//! What the guest interpreter is, as the guest itself reports it: the PEP 508 marker
//! environment and the wheel tags it can load. Build requirements are resolved for this
//! target, never for the host.

use anyhow::{Context, Result, bail};
use pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The marker values a guest reports (the keys of PEP 508's environment markers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestMarkers {
    pub implementation_name: String,
    pub implementation_version: String,
    pub os_name: String,
    pub platform_machine: String,
    pub platform_python_implementation: String,
    pub platform_release: String,
    pub platform_system: String,
    pub platform_version: String,
    pub python_full_version: String,
    pub python_version: String,
    pub sys_platform: String,
}

/// The Python code that prints [`GuestMarkers`] as JSON inside the guest.
pub const PROBE_SCRIPT: &str = r#"
import json, os, platform, sys
def fmt(info):
    v = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        v += info.releaselevel[0] + str(info.serial)
    return v
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"#;

/// The guest a build environment is made for.
#[derive(Debug, Clone)]
pub struct GuestTarget {
    pub markers: GuestMarkers,
    environment: MarkerEnvironment,
    python_full_version: Version,
    tags: Vec<(String, String, String)>,
}

impl GuestTarget {
    /// Builds the target from the markers the guest reported.
    pub fn new(markers: GuestMarkers) -> Result<Self> {
        let environment = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &markers.implementation_name,
            implementation_version: &markers.implementation_version,
            os_name: &markers.os_name,
            platform_machine: &markers.platform_machine,
            platform_python_implementation: &markers.platform_python_implementation,
            platform_release: &markers.platform_release,
            platform_system: &markers.platform_system,
            platform_version: &markers.platform_version,
            python_full_version: &markers.python_full_version,
            python_version: &markers.python_version,
            sys_platform: &markers.sys_platform,
        })
        .context("the guest reported invalid marker values")?;
        let python_full_version =
            Version::from_str(&markers.python_full_version).with_context(|| {
                format!(
                    "the guest reported an invalid Python version `{}`",
                    markers.python_full_version
                )
            })?;
        let release = python_full_version.release();
        let (major, minor) = match release {
            [3, minor, ..] => (3u64, *minor),
            _ => bail!("the guest runs Python {python_full_version}; only CPython 3 is supported"),
        };
        let tags = pure_python_tags(major, minor, &markers.implementation_name);
        Ok(Self {
            markers,
            environment,
            python_full_version,
            tags,
        })
    }

    /// Parses the JSON printed by [`PROBE_SCRIPT`].
    pub fn from_probe_json(json: &str) -> Result<Self> {
        let markers: GuestMarkers = serde_json::from_str(json.trim())
            .with_context(|| format!("the guest's marker report is not valid: {json:?}"))?;
        Self::new(markers)
    }

    /// The PEP 508 marker environment for evaluating requirement markers.
    pub fn marker_environment(&self) -> &MarkerEnvironment {
        &self.environment
    }

    /// The guest's full Python version, for `Requires-Python`.
    pub fn python_version(&self) -> &Version {
        &self.python_full_version
    }

    /// The wheel tags (python, abi, platform) the guest can load, most specific first.
    /// Only pure-Python wheels: the guest cannot load native extensions built for the host.
    pub fn supported_tags(&self) -> &[(String, String, String)] {
        &self.tags
    }
}

/// The pure-Python tags of packaging's `compatible_tags` for CPython 3.`minor`:
/// `cp3M-none-any`, then `py3M-none-any`, `py3-none-any`, `py3(M-1)-none-any`, … `py30-none-any`.
fn pure_python_tags(major: u64, minor: u64, implementation: &str) -> Vec<(String, String, String)> {
    let tag = |py: String| (py, "none".to_string(), "any".to_string());
    let mut tags = Vec::new();
    if implementation == "cpython" {
        tags.push(tag(format!("cp{major}{minor}")));
    }
    tags.push(tag(format!("py{major}{minor}")));
    tags.push(tag(format!("py{major}")));
    for m in (0..minor).rev() {
        tags.push(tag(format!("py{major}{m}")));
    }
    tags
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pep508_rs::Requirement;

    /// The VMware CPython 3.12.0 guest, as its probe reports itself (shared with the
    /// integration tests).
    pub(crate) fn wasi_312() -> GuestTarget {
        GuestTarget::from_probe_json(include_str!(
            "../tests/fixtures/probe-wasi-cpython-3.12.0.json"
        ))
        .unwrap()
    }

    #[test]
    fn tags_for_312() {
        let target = wasi_312();
        let tags: Vec<String> = target
            .supported_tags()
            .iter()
            .map(|(p, a, pl)| format!("{p}-{a}-{pl}"))
            .collect();
        assert_eq!(
            &tags[..4],
            [
                "cp312-none-any",
                "py312-none-any",
                "py3-none-any",
                "py311-none-any"
            ]
        );
        assert_eq!(tags.last().unwrap(), "py30-none-any");
    }

    #[test]
    fn markers_evaluate_for_the_guest() {
        let target = wasi_312();
        let env = target.marker_environment();
        let req = |s: &str| Requirement::<pep508_rs::VerbatimUrl>::from_str(s).unwrap();
        assert!(req("a; sys_platform == 'wasi'").evaluate_markers(env, &[]));
        assert!(!req("a; sys_platform == 'linux'").evaluate_markers(env, &[]));
        assert!(!req("tomli; python_version < '3.11'").evaluate_markers(env, &[]));
    }

    #[test]
    fn rejects_garbage_probe() {
        assert!(GuestTarget::from_probe_json("not json").is_err());
    }
}
