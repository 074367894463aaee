//! `--metadata` from static PKG-INFO starts no engine, runtime or guest.

use super::common::python::validate_json;
use super::common::*;
use super::support::*;
use std::fs;

/// Static metadata is answered before any engine, runtime or guest exists: with a
/// python.wasm that cannot even be loaded, a batch of static sdists still answers; a batch
/// that also needs a hook makes the frontend once, for the hooks only.
#[test]
fn static_metadata_starts_no_interpreter() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(
        work.path(),
        &["flit", "hatchling", "setuptools-legacy", "pdm"],
    );
    let (statics, hooks) = sdists.split_at(2);
    let broken = work.path().join("broken.wasm");
    fs::write(&broken, b"not a wasm module").unwrap();

    let report_path = work.path().join("static.json");
    let output = run(wasm_build()
        .args(["--metadata", "-j", "2", "-v", "--python-wasm"])
        .arg(&broken)
        .args(statics)
        .arg("--report")
        .arg(&report_path));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("Preparing the interpreter"), "{stderr}");
    validate_json(&report_path, &schema());
    let report = read_json(&report_path);
    for entry in report["sources"].as_array().unwrap() {
        assert_eq!(entry["metadata_source"], "static", "{entry}");
        assert!(entry["runtime"].is_null(), "{entry}");
    }
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);

    // A source that needs the hook needs the interpreter, which cannot be loaded.
    let output = run(wasm_build()
        .args(["--metadata", "--python-wasm"])
        .arg(&broken)
        .arg(&statics[0])
        .arg(&hooks[0]));
    assert!(!output.status.success());

    // Two hook sources among static ones: the interpreter is prepared once.
    let report_path = work.path().join("mixed.json");
    let output = run(wasm_build()
        .args(["--metadata", "-j", "2", "-v"])
        .arg(&statics[0])
        .arg(&hooks[0])
        .arg(&statics[1])
        .arg(&hooks[1])
        .arg("--report")
        .arg(&report_path));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("Preparing the interpreter").count(),
        1,
        "{stderr}"
    );
    validate_json(&report_path, &schema());
    let report = read_json(&report_path);
    let sources = report["sources"].as_array().unwrap();
    let from: Vec<&str> = sources
        .iter()
        .map(|s| s["metadata_source"].as_str().unwrap())
        .collect();
    assert_eq!(
        from,
        [
            "static",
            "prepare_metadata_for_build_wheel",
            "static",
            "prepare_metadata_for_build_wheel"
        ]
    );
    assert!(sources[0]["runtime"].is_null());
    assert!(sources[1]["runtime"]["module_sha256"].is_string());
    assert!(sources[1]["not_static"].is_string(), "{}", sources[1]);
}
