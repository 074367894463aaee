//! `--provenance`: an in-toto Statement v1 with a SLSA Provenance v1 predicate, validated
//! against the schema transcribed from the specs, and its digests checked against the files.

use super::common::python::validate_json;
use super::common::*;
use super::support::*;
use serde_json::Value;
use std::fs;
use std::path::Path;

#[test]
fn provenance_is_slsa_v1_with_every_input_digest() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["setuptools"]);
    let out = work.path().join("out");
    let provenance = work.path().join("build.intoto.jsonl");
    let report_path = work.path().join("r.json");
    let built = build_ok(
        wasm_build()
            .arg(&sdists[0])
            .args(["--wheel", "-o"])
            .arg(&out)
            .arg("--provenance")
            .arg(&provenance)
            .arg("--report")
            .arg(&report_path),
    );
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/provenance/slsa-provenance-v1.schema.json");
    validate_json(&provenance, &schema);

    let statement: Value = serde_json::from_slice(&fs::read(&provenance).unwrap()).unwrap();
    let report = read_json(&report_path);
    let source = &report["sources"][0];
    // The subject: the wheel, by name and digest.
    let wheel = &built[0];
    assert_eq!(
        statement["subject"],
        serde_json::json!([{
            "name": wheel.file_name().unwrap().to_str().unwrap(),
            "digest": {"sha256": sha256(&fs::read(wheel).unwrap())},
        }])
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert!(
        definition["buildType"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let sdist_sha = sha256(&fs::read(&sdists[0]).unwrap());
    assert_eq!(
        definition["externalParameters"]["source"]["digest"]["sha256"],
        sdist_sha
    );
    let dependencies = definition["resolvedDependencies"].as_array().unwrap();
    let digests: Vec<&str> = dependencies
        .iter()
        .map(|d| d["digest"]["sha256"].as_str().unwrap())
        .collect();
    assert!(digests.contains(&sdist_sha.as_str()));
    assert!(digests.contains(&source["runtime"]["module_sha256"].as_str().unwrap()));
    if let Some(stdlib) = source["runtime"]["stdlib_manifest_sha256"].as_str() {
        assert!(digests.contains(&stdlib));
    }
    let requirements = source["build_requirements"].as_array().unwrap();
    assert!(!requirements.is_empty());
    for requirement in requirements {
        assert!(
            digests.contains(&requirement["sha256"].as_str().unwrap()),
            "{requirement} is not among {digests:?}"
        );
    }
    let run = &statement["predicate"]["runDetails"];
    assert_eq!(
        run["builder"]["version"]["wasm-build"],
        report["tool"]["version"]
    );
    assert_eq!(run["metadata"]["startedOn"], source["started_at"]);
    assert_eq!(run["metadata"]["finishedOn"], source["finished_at"]);
}
