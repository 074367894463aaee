//! Core metadata (`METADATA`, `PKG-INFO`): the header part of the email-style format.

mod json;

pub(crate) use self::json::fields_and_body;
pub use self::json::{MetadataJsonError, metadata_json};

use anyhow::{Result, bail};

/// The fields wasm-build reads from core metadata; every header is kept in `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: String,
    pub version: String,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub provides_extra: Vec<String>,
    /// Every header in order, with continuation lines joined.
    pub headers: Vec<(String, String)>,
}

impl CoreMetadata {
    /// Parses core metadata. `Metadata-Version`, `Name` and `Version` are required.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => bail!("core metadata is not UTF-8: {e}"),
        };
        let headers = parse_headers(text)?;
        let one = |key: &str| -> Result<Option<String>> {
            let mut values = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone());
            let first = values.next();
            if values.next().is_some() {
                bail!("core metadata has more than one `{key}` field");
            }
            Ok(first)
        };
        let many = |key: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let required = |key: &str| -> Result<String> {
            match one(key)? {
                Some(v) if !v.is_empty() => Ok(v),
                _ => bail!("core metadata lacks the `{key}` field"),
            }
        };
        Ok(Self {
            metadata_version: required("Metadata-Version")?,
            name: required("Name")?,
            version: required("Version")?,
            requires_python: one("Requires-Python")?,
            requires_dist: many("Requires-Dist"),
            provides_extra: many("Provides-Extra"),
            headers,
        })
    }
}

/// Why an sdist's PKG-INFO does not give the metadata of the wheels built from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStatic {
    #[error("its PKG-INFO has Metadata-Version {0}; PEP 643 (2.2) is needed to rely on it")]
    MetadataVersion(String),
    #[error("its PKG-INFO marks {} as dynamic", .0.join(", "))]
    Dynamic(Vec<String>),
}

impl CoreMetadata {
    /// Whether, by PEP 643, every wheel built from the sdist with this PKG-INFO has exactly
    /// these fields: Metadata-Version 2.2 or later, and no field marked `Dynamic` (a
    /// dynamic field is one a wheel may fill in or change).
    pub fn static_for_wheels(&self) -> Result<(), NotStatic> {
        let version = self.metadata_version.trim();
        let number = |part: Option<&str>| part.and_then(|p| p.parse::<u32>().ok());
        let mut parts = version.split('.');
        let at_least_2_2 = match (number(parts.next()), number(parts.next())) {
            (Some(major), Some(minor)) => (major, minor) >= (2, 2),
            _ => false,
        };
        if !at_least_2_2 {
            return Err(NotStatic::MetadataVersion(version.to_string()));
        }
        let dynamic: Vec<String> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Dynamic"))
            .map(|(_, v)| v.clone())
            .collect();
        if !dynamic.is_empty() {
            return Err(NotStatic::Dynamic(dynamic));
        }
        Ok(())
    }
}

/// Splits the header block (up to the first empty line) into `(key, value)` pairs. The
/// same email-style format serves METADATA, PKG-INFO and a wheel's WHEEL file.
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header.
            match headers.last_mut() {
                Some((_, value)) => {
                    value.push('\n');
                    value.push_str(line.trim_start());
                }
                None => bail!("core metadata starts with a continuation line"),
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            bail!("core metadata line `{line}` is not `Key: value`");
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            bail!("core metadata line `{line}` has an invalid field name");
        }
        headers.push((key.to_string(), value.trim().to_string()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_stops_at_body() {
        let meta = CoreMetadata::parse(
            b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: a>=1\n\
              Requires-Dist: b; extra == 'x'\nProvides-Extra: x\nRequires-Python: >=3.8\n\
              Description: line one\n        line two\n\nName: body is ignored\n",
        )
        .unwrap();
        assert_eq!(meta.name, "demo");
        assert_eq!(meta.version, "1.0");
        assert_eq!(meta.requires_dist, ["a>=1", "b; extra == 'x'"]);
        assert_eq!(meta.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(meta.provides_extra, ["x"]);
        let description = meta.headers.iter().find(|(k, _)| k == "Description");
        assert_eq!(description.unwrap().1, "line one\nline two");
    }

    #[test]
    fn static_only_from_2_2_without_dynamic_fields() {
        let meta = |text: &str| CoreMetadata::parse(text.as_bytes()).unwrap();
        let head = "Name: a\nVersion: 1\n";
        for version in ["2.2", "2.4", "2.10", "3.0"] {
            let m = meta(&format!("Metadata-Version: {version}\n{head}"));
            assert_eq!(m.static_for_wheels(), Ok(()), "{version}");
        }
        for version in ["1.0", "2.1", "2", "x.y", "2.1.9"] {
            let m = meta(&format!("Metadata-Version: {version}\n{head}"));
            assert_eq!(
                m.static_for_wheels(),
                Err(NotStatic::MetadataVersion(version.into()))
            );
        }
        let m = meta(&format!(
            "Metadata-Version: 2.2\n{head}Dynamic: Requires-Dist\ndynamic: License-File\n"
        ));
        assert_eq!(
            m.static_for_wheels(),
            Err(NotStatic::Dynamic(vec![
                "Requires-Dist".into(),
                "License-File".into()
            ]))
        );
    }

    #[test]
    fn rejects_missing_or_duplicate_fields() {
        assert!(CoreMetadata::parse(b"Metadata-Version: 2.1\nName: demo\n").is_err());
        assert!(
            CoreMetadata::parse(b"Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1\n").is_err()
        );
        assert!(CoreMetadata::parse(b"garbage\n").is_err());
        assert!(CoreMetadata::parse(b"Metadata-Version: 2.1\nName: \xff\nVersion: 1\n").is_err());
    }
}
