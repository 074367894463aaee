//! SLSA provenance of a build: an in-toto Statement v1 whose predicate is SLSA Provenance
//! v1 (<https://slsa.dev/spec/v1.0/provenance>), made from a source's report entry.

use super::{SourceReport, Tool};
use serde_json::{Value, json};

/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA Provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a wasm-build build is: its parameters are documented at this URI.
pub const BUILD_TYPE: &str =
    "https://github.com/wasm-build/wasm-build/blob/main/docs/provenance.md#build-type-v1";
/// Who built: this program, identified by name (the version is in `builder.version`).
pub const BUILDER_ID: &str = "https://github.com/wasm-build/wasm-build";

/// The Statement for the artifacts `entry` published (`None` when it published none: no
/// subject, nothing to attest).
pub fn statement(entry: &SourceReport) -> Option<Value> {
    let subject: Vec<Value> = entry
        .artifacts
        .iter()
        .filter(|a| a.path.is_some())
        .filter_map(|a| {
            let hashes = a.hashes.as_ref()?;
            Some(json!({"name": a.name, "digest": {"sha256": hashes.sha256}}))
        })
        .collect();
    if subject.is_empty() {
        return None;
    }
    let source = &entry.source;
    let mut source_param = json!({"path": source.path});
    if let Some(url) = &source.url {
        source_param["url"] = json!(url);
    }
    if let Some(sha256) = &source.sha256 {
        source_param["digest"] = json!({"sha256": sha256});
    }
    let mut dependencies = Vec::new();
    // The sdist itself, when it was one (a folder has no digest).
    if let Some(sha256) = &source.sha256 {
        let uri = source.url.clone().unwrap_or_else(|| file_uri(&source.path));
        dependencies.push(json!({
            "uri": uri,
            "name": file_name(&source.path),
            "digest": {"sha256": sha256},
        }));
    }
    // A source that published artifacts was built: its runtime is known.
    let runtime = entry.runtime.as_ref()?;
    dependencies.push(json!({
        "name": format!("{} (python.wasm)", runtime.id),
        "uri": format!("pkg:generic/cpython-wasi@{}", runtime.python_version),
        "digest": {"sha256": runtime.module_sha256},
        "annotations": {"role": "interpreter", "wasmtime_version": runtime.wasmtime_version},
    }));
    if let Some(manifest) = &runtime.stdlib_manifest_sha256 {
        dependencies.push(json!({
            "name": format!("{} stdlib", runtime.id),
            "uri": format!("pkg:generic/cpython-wasi-stdlib@{}", runtime.python_version),
            "digest": {"sha256": manifest},
            "annotations": {"role": "stdlib", "digest_of": "the stdlib's content manifest"},
        }));
    }
    for requirement in &entry.build_requirements {
        dependencies.push(json!({
            "name": requirement.filename,
            "uri": format!("pkg:pypi/{}@{}", requirement.name, requirement.version),
            "digest": {"sha256": requirement.sha256},
            "annotations": {"role": "build requirement"},
        }));
    }
    let tool = Tool::this();
    Some(json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": source_param,
                    "task": entry.task,
                    "distributions": entry.requested,
                    "config_settings": entry.config_settings,
                },
                "internalParameters": {
                    "backend": entry.backend,
                    "limits": entry.limits,
                    "deterministic": entry.deterministic,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {tool.name.clone(): tool.version},
                },
                "metadata": {
                    "startedOn": entry.started_at,
                    "finishedOn": entry.finished_at,
                },
            },
        },
    }))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A `file://` URI of a local path (absolute or not, as given), its bytes percent-encoded
/// where a URI needs it.
fn file_uri(path: &str) -> String {
    let mut uri = String::from("file://");
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}
