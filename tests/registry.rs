//! Registry mode end to end (issue 16): many sources in one process with a JSON report that
//! validates against `docs/report.schema.json`, a hostile source among good ones,
//! `--metadata` against the real pypa/build, and `verify` against wheels pypa/build made.

mod common;

use common::python::{tools_python, validate_json};
use common::wheel::{one_byte_changed, rewrite_wheel};
use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "registry/support.rs"]
mod support;
use support::*;

#[path = "registry/serve.rs"]
mod serve;

#[path = "registry/deterministic.rs"]
mod deterministic;

#[path = "registry/provenance.rs"]
mod provenance;

#[path = "registry/static_metadata.rs"]
mod static_metadata;

#[test]
fn a_batch_of_three_sdists_with_a_report() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["flit", "hatchling", "setuptools"]);
    let out = work.path().join("out");
    let report_path = work.path().join("r.json");
    let built = build_ok(
        wasm_build()
            .args(&sdists)
            .args(["-j", "2", "--wheel", "-o"])
            .arg(&out)
            .arg("--report")
            .arg(&report_path),
    );
    let wheels = [
        "flit_demo-0.1.0-py3-none-any.whl",
        "hatch_demo-0.3.0-py3-none-any.whl",
        "setuptools_demo-1.2.3-py3-none-any.whl",
    ];
    assert_eq!(built, wheels.map(|w| out.join(w)), "in the order given");
    validate_json(&report_path, &schema());

    let report = read_json(&report_path);
    assert_eq!(report["version"], "1.0");
    assert_eq!(report["exit_code"], 0);
    // pypa/build's part: each wheel with its size and sha256.
    let artifacts = report["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 3);
    for (artifact, wheel) in artifacts.iter().zip(wheels) {
        let bytes = fs::read(out.join(wheel)).unwrap();
        assert_eq!(artifact["name"], wheel);
        assert_eq!(artifact["kind"], "wheel");
        assert_eq!(artifact["size"], bytes.len());
        assert_eq!(artifact["hashes"]["sha256"], sha256(&bytes));
    }
    // wasm-build's part, per source.
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    for (source, sdist) in sources.iter().zip(&sdists) {
        assert_eq!(source["outcome"]["status"], "ok");
        assert_eq!(source["source"]["kind"], "sdist");
        assert_eq!(
            source["source"]["sha256"],
            sha256(&fs::read(sdist).unwrap())
        );
        assert!(source["runtime"]["module_sha256"].as_str().unwrap().len() == 64);
        let requirements = source["build_requirements"].as_array().unwrap();
        assert!(!requirements.is_empty(), "{source}");
        let runs = source["hook_runs"].as_array().unwrap();
        assert!(runs.iter().any(|run| {
            run["hooks"]
                .as_array()
                .unwrap()
                .contains(&Value::from("build_wheel"))
        }));
        for run in runs {
            assert!(run["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
            assert!(run["cpu_time_seconds"].as_f64().unwrap() > 0.0);
            assert!(run["disk_high_water_bytes"].as_u64().unwrap() > 0);
        }
        let artifact = &source["artifacts"][0];
        assert_eq!(artifact["metadata"]["name"], source["project"]["name"]);
        assert!(artifact["dynamic"].is_array());
    }
    assert_eq!(sources[1]["backend"], "hatchling.build");
}

#[test]
fn a_hostile_source_does_not_stop_the_batch() {
    let work = tempfile::tempdir().unwrap();
    let good = fixture_sdists(work.path(), &["flit", "hatchling"]);
    let hostile = hostile_sdist(work.path());
    let refused_wheel = bad_record_project(work.path());
    let out = work.path().join("out");
    let report_path = work.path().join("r.json");
    let output = run(wasm_build()
        .arg(&good[0])
        .arg(&hostile)
        .arg(&refused_wheel)
        .arg(&good[1])
        .args(["-j", "2", "--wheel", "-o"])
        .arg(&out)
        .arg("--report")
        .arg(&report_path));
    // The artifact refusal (7) is more severe than the refused input (3).
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(
        listing(&out),
        [
            "flit_demo-0.1.0-py3-none-any.whl",
            "hatch_demo-0.3.0-py3-none-any.whl"
        ]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the link points outside the tree"),
        "{stderr}"
    );
    validate_json(&report_path, &schema());
    let report = read_json(&report_path);
    assert_eq!(report["exit_code"], 7);
    let outcomes: Vec<&Value> = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["outcome"])
        .collect();
    assert_eq!(outcomes[0]["status"], "ok");
    assert_eq!(outcomes[3]["status"], "ok");
    assert_eq!(outcomes[1]["class"], "input_refused");
    assert_eq!(outcomes[1]["rule"], "archive.member.link.outside");
    assert_eq!(
        report["sources"][1]["source"]["sha256"],
        sha256(&fs::read(&hostile).unwrap())
    );
    assert_eq!(outcomes[2]["class"], "artifact_refused");
    assert_eq!(outcomes[2]["rule"], "record_hash");
    assert_eq!(outcomes[2]["exit_code"], 7);
}

#[test]
fn fail_fast_skips_what_was_not_started() {
    let work = tempfile::tempdir().unwrap();
    let good = fixture_sdists(work.path(), &["flit"]);
    let hostile = hostile_sdist(work.path());
    let list = work.path().join("sources.txt");
    fs::write(
        &list,
        format!(
            "# one per line\n{}\n\n{}\n",
            hostile.display(),
            good[0].display()
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let report_path = work.path().join("r.json");
    let output = run(wasm_build()
        .arg("--sources-from")
        .arg(&list)
        .args(["--fail-fast", "--wheel", "-o"])
        .arg(&out)
        .arg("--report")
        .arg(&report_path));
    assert_eq!(output.status.code(), Some(3));
    assert!(!out.exists());
    let report = read_json(&report_path);
    assert_eq!(report["sources"][0]["outcome"]["status"], "failed");
    assert_eq!(report["sources"][1]["outcome"]["status"], "skipped");
    validate_json(&report_path, &schema());
}

#[test]
fn metadata_is_what_pypa_build_prints() {
    let work = tempfile::tempdir().unwrap();
    let names = [
        "flit",
        "hatchling",
        "poetry",
        "setuptools",
        "setuptools-legacy",
        "pdm",
        "intree",
    ];
    let sdists = fixture_sdists(work.path(), &names);
    // PEP 643: Metadata-Version 2.2+ without Dynamic fields is static.
    let expected_source = [
        "static",
        "static",
        "static",
        "static",
        "prepare_metadata_for_build_wheel", // `Dynamic: summary` (setup.py)
        "prepare_metadata_for_build_wheel", // Metadata-Version 2.1
        "prepare_metadata_for_build_wheel", // Metadata-Version 2.1
    ];
    for (sdist, expected) in sdists.iter().zip(expected_source) {
        let report_path = work.path().join("m.json");
        let ours = metadata_json(
            wasm_build()
                .arg("--metadata")
                .arg(sdist)
                .arg("--report")
                .arg(&report_path),
        );
        validate_json(&report_path, &schema());
        let entry = &read_json(&report_path)["sources"][0];
        assert_eq!(entry["metadata_source"], expected, "{}", sdist.display());
        if expected == "static" {
            assert_eq!(
                entry["hook_runs"],
                Value::Array(Vec::new()),
                "no backend ran"
            );
            assert!(entry["runtime"].is_null(), "no interpreter was started");
        } else {
            assert!(entry["runtime"]["module_sha256"].is_string(), "{entry}");
        }
        assert_eq!(entry["metadata"], ours);
        assert_eq!(ours, pypa_metadata(sdist), "{}", sdist.display());

        // The hook gives the same answer.
        let forced = metadata_json(
            wasm_build()
                .args(["--metadata", "--no-static-metadata"])
                .arg(sdist),
        );
        assert_eq!(forced, ours, "{}", sdist.display());
    }

    // A project folder, and a wheel.
    let project = fixture("hatchling");
    let ours = metadata_json(wasm_build().arg("--metadata").arg(project.path()));
    assert_eq!(ours, pypa_metadata(project.path()));
    let wheels = work.path().join("wheels");
    let built = build_ok(wasm_build().arg(&sdists[0]).arg("-o").arg(&wheels));
    let ours = metadata_json(wasm_build().arg("--metadata").arg(&built[0]));
    assert_eq!(ours, pypa_metadata(&built[0]));
}

#[test]
fn verify_says_identical_equivalent_or_differs() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["flit", "setuptools"]);
    for sdist in &sdists {
        let theirs = pypa_wheel(sdist, &work.path().join("pypa"));
        let output = run(verify_cmd().arg(sdist).arg(&theirs));
        assert_eq!(output.status.code(), Some(0), "{}", sdist.display());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("identical {}\n", theirs.display())
        );
    }

    let theirs = pypa_wheel(&sdists[0], &work.path().join("pypa"));
    // Members in another order, stored rather than deflated: equivalent.
    let reordered = work
        .path()
        .join("reordered")
        .join(theirs.file_name().unwrap());
    rewrite_wheel(&theirs, &reordered, |members| members.reverse());
    let report_path = work.path().join("v.json");
    let output = run(verify_cmd()
        .arg(&sdists[0])
        .arg(&reordered)
        .arg("--report")
        .arg(&report_path));
    assert_eq!(output.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("equivalent "));
    validate_json(&report_path, &schema());

    // One byte of one file changed (RECORD kept right, so the wheel itself is valid):
    // differs, naming the member.
    let changed = work
        .path()
        .join("changed")
        .join(theirs.file_name().unwrap());
    one_byte_changed(&theirs, &changed, "flit_demo/__init__.py");
    let output = run(verify_cmd()
        .arg(&sdists[0])
        .arg(&theirs)
        .arg(&changed)
        .arg("--report")
        .arg(&report_path));
    assert_eq!(output.status.code(), Some(11));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("identical {}", theirs.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("differs {}", changed.display())),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("flit_demo/__init__.py: different bytes"),
        "{stderr}"
    );
    validate_json(&report_path, &schema());
    let report = read_json(&report_path);
    let comparison = &report["sources"][0]["comparisons"][1];
    assert_eq!(comparison["verdict"], "differs");
    let differences = comparison["differences"].as_array().unwrap();
    assert!(
        differences
            .iter()
            .any(|d| d["member"] == "flit_demo/__init__.py" && d["kind"] == "content")
    );
    assert_eq!(report["sources"][0]["outcome"]["class"], "differs");

    // A wheel the verifier refuses is not compared: the input is refused.
    let broken = work.path().join("broken").join(theirs.file_name().unwrap());
    fs::create_dir_all(broken.parent().unwrap()).unwrap();
    let mut bytes = fs::read(&theirs).unwrap();
    bytes.truncate(bytes.len() - 10);
    fs::write(&broken, bytes).unwrap();
    let output = run(verify_cmd().arg(&sdists[0]).arg(&broken));
    assert_eq!(output.status.code(), Some(3));
}

/// `verify` with the reference builds' SOURCE_DATE_EPOCH.
fn verify_cmd() -> Command {
    let mut cmd = wasm_build();
    cmd.arg("verify").env("SOURCE_DATE_EPOCH", PYPA_EPOCH);
    cmd
}

/// What `wasm-build --metadata` printed, parsed (it must succeed).
fn metadata_json(cmd: &mut Command) -> Value {
    let output = run(cmd);
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `python -m build --metadata SOURCE` of the real pypa/build.
fn pypa_metadata(source: &Path) -> Value {
    let output = Command::new(tools_python())
        .args(["-m", "build", "--metadata"])
        .arg(source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python -m build --metadata {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The wheel `python -m build --wheel SDIST` makes, with SOURCE_DATE_EPOCH set.
fn pypa_wheel(sdist: &Path, outdir: &Path) -> PathBuf {
    let output = Command::new(tools_python())
        .args(["-m", "build", "--wheel", "-o"])
        .arg(outdir)
        .arg(sdist)
        .env("SOURCE_DATE_EPOCH", PYPA_EPOCH)
        .env("TZ", "UTC")
        .env("PYTHONHASHSEED", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stem = sdist
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(".tar.gz")
        .to_string();
    outdir.join(format!("{stem}-py3-none-any.whl"))
}

const PYPA_EPOCH: &str = "1700000000";
