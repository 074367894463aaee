//! The values of flags, checked while the command line is parsed: a value that cannot work
//! is a bad command line (exit 2), found before anything is prepared, and the message
//! quotes the value cut short (a 500 KB value is not echoed back).

use super::terminal::quote;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::path::PathBuf;
use wasm_build::runtime::Catalog;
use wasm_build_packaging::index;

/// A value parser from a function that says why a value is refused.
#[derive(Clone, Copy)]
pub struct Checked<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg.map_or_else(|| "a value".to_string(), ToString::to_string);
        let refuse = |why: String| {
            clap::Error::raw(ErrorKind::ValueValidation, format!("{flag}: {why}\n")).with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the value is not valid UTF-8".to_string()))?;
        (self.0)(text).map_err(|why| refuse(format!("{} {why}", quote(text))))
    }
}

/// `KEY=VALUE`, or `KEY` alone for an empty value (as `python -m build -C` takes it); the
/// key must not be empty.
pub fn config_setting(setting: &str) -> Result<(String, String), String> {
    let (key, value) = setting.split_once('=').unwrap_or((setting, ""));
    if key.is_empty() {
        return Err("has an empty key: settings are KEY=VALUE or KEY".to_string());
    }
    Ok((key.to_string(), value.to_string()))
}

/// A JSON object (`{"key": "value", "list": ["a", "b"]}`).
pub fn config_json(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("is not a JSON object: settings are given as {\"key\": value, …}".into()),
        Err(e) => Err(format!("is not valid JSON: {e}")),
    }
}

/// An http(s) index URL.
pub fn index_url(url: &str) -> Result<String, String> {
    index::parse_index_url(url)
        .map(|_| url.to_string())
        .map_err(|e| format!("is not an index URL: {}", e.root_cause()))
}

/// A `--find-links` location that can be read: an http(s) URL, or a folder or page here.
pub fn find_links(location: &str) -> Result<String, String> {
    index::check_find_links(location)
        .map(|()| location.to_string())
        .map_err(|e| match e.root_cause().to_string() {
            why if why.contains("neither a folder, a file nor") => {
                "does not exist (a folder of wheels, a page listing them, or an http(s) URL)"
                    .to_string()
            }
            why => format!("cannot be used: {why}"),
        })
}

/// A runtime of this binary's catalog.
pub fn runtime_name(name: &str) -> Result<String, String> {
    let catalog = Catalog::builtin().map_err(|e| format!("{e:#}"))?;
    match catalog.get(name) {
        Ok(_) => Ok(name.to_string()),
        Err(_) => Err(format!(
            "is not a runtime of this wasm-build; available: {}",
            catalog
                .runtimes
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A whole number of at least 1 (a limit of 0 would stop every run).
pub fn positive(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("is not allowed: the limit must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err("is not a whole number".to_string()),
    }
}

/// A file that exists.
pub fn existing_file(path: &str) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(PathBuf::from(path)),
        Ok(_) => Err("is not a file".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".to_string()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

/// A folder that exists.
pub fn existing_dir(path: &str) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(PathBuf::from(path)),
        Ok(_) => Err("is not a folder".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".to_string()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_split_like_python_build() {
        assert_eq!(config_setting("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(
            config_setting("--flag").unwrap(),
            ("--flag".into(), String::new())
        );
        assert!(config_setting("=x").is_err());
        assert!(config_setting("").is_err());
    }

    #[test]
    fn config_json_must_be_an_object() {
        assert_eq!(
            Value::Object(config_json(r#"{"a": ["1", 2], "b": {"c": null}}"#).unwrap()),
            serde_json::json!({"a": ["1", 2], "b": {"c": null}})
        );
        assert!(
            config_json("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(config_json("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn limits_are_positive_numbers() {
        assert_eq!(positive("5"), Ok(5));
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert!(positive("ten").is_err());
    }

    #[test]
    fn index_urls_are_http() {
        assert!(index_url("https://example.org/simple").is_ok());
        assert!(index_url("not-a-url").is_err());
        assert!(index_url("ftp://example.org/").is_err());
    }

    #[test]
    fn runtimes_come_from_the_catalog() {
        let catalog = Catalog::builtin().unwrap();
        assert!(runtime_name(&catalog.default).is_ok());
        assert!(runtime_name("nope").unwrap_err().contains(&catalog.default));
    }
}
