//! Verify jobs through the queue: the wheel built from the sdist compared with wheels given
//! by path (from `wasm-build enqueue --verify-against`) and by URL, the verdict and each
//! wheel's differences in the result, which validates against docs/scale-out.schema.json.

use super::support::{ArtifactStore, RedisServer, Worker, direct_build, fixture_sdists};
use super::{GROUP, STREAM, by_job, wait_for_results};
use crate::common::python::validate_json_lines;
use crate::common::{self, wheel::one_byte_changed};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn docs(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

/// Writes `values` as JSON lines and validates each against `def` of `schema`.
fn validate_all(values: &[Value], schema: &str, def: &str, scratch: &Path) {
    let path = scratch.join(format!("{def}.jsonl"));
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    fs::write(&path, text).unwrap();
    validate_json_lines(&path, &docs(schema), def);
}

#[test]
fn verify_jobs_give_the_verdict_and_name_the_member_that_differs() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(&["flit"], work.path());
    let sdist = &sdists[0];
    let ours = direct_build(sdist, &[], &work.path().join("direct"));
    let name = ours.file_name().unwrap().to_str().unwrap().to_string();
    // One byte of one file changed, RECORD kept right: a valid wheel that differs.
    let changed = work.path().join("changed").join(&name);
    one_byte_changed(&ours, &changed, "flit_demo/__init__.py");
    let not_a_wheel = work.path().join("bad").join(&name);
    fs::create_dir_all(not_a_wheel.parent().unwrap()).unwrap();
    fs::write(&not_a_wheel, b"PK\x03\x04 not a zip").unwrap();
    let changed_bytes = fs::read(&changed).unwrap();
    let store = ArtifactStore::start(BTreeMap::from([(
        format!("/wheels/{name}?sig=1"),
        changed_bytes.clone(),
    )]));
    // The query is no part of the wheel's name.
    let changed_url = store.url(&format!("/wheels/{name}?sig=1"));
    let sha = wasm_build_packaging::cache::sha256_bytes;
    let server = RedisServer::start();

    // `enqueue --verify-against`: the CLI's own wheel, by path; nothing kept.
    let output = common::run(
        common::wasm_build()
            .args(["enqueue", "--redis", &server.url(), "--stream", STREAM])
            .args(["--id", "same"])
            .arg(sdist)
            .arg("--verify-against")
            .arg(&ours),
    );
    assert!(output.status.success(), "enqueue failed");
    let (source_sha, _) = wasm_build_packaging::cache::sha256_file(sdist).unwrap();
    let source = json!({"path": sdist.display().to_string(), "sha256": source_sha});
    // By URL, with the wheel built delivered to a folder: differs.
    let kept = work.path().join("kept");
    server.add(
        STREAM,
        &json!({"id": "changed", "build": ["verify"], "source": source,
                "verify_against": [{"url": changed_url, "sha256": sha(&changed_bytes)}],
                "artifacts": {"dir": kept.display().to_string()}}),
    );
    // Both wheels: the worst verdict, each wheel's own comparison.
    server.add(
        STREAM,
        &json!({"id": "both", "build": ["verify"], "source": source,
                "verify_against": [
                    {"path": ours.display().to_string(), "sha256": sha(&fs::read(&ours).unwrap())},
                    {"path": changed.display().to_string(), "sha256": sha(&changed_bytes)}]}),
    );
    // A file that is no wheel: refused, once.
    server.add(
        STREAM,
        &json!({"id": "bad", "build": ["verify"], "source": source,
                "verify_against": [{"path": not_a_wheel.display().to_string(),
                                    "sha256": sha(&fs::read(&not_a_wheel).unwrap())}]}),
    );
    let mut worker = Worker::start(&server, STREAM, "w", &[]);
    wait_for_results(&server, 4, &[&worker], 300);
    let results = server.results(STREAM);
    let per_job = by_job(&results);
    assert!(per_job.values().all(|r| r.len() == 1), "{per_job:?}");

    let same = per_job["same"][0];
    assert_eq!(same["status"], "ok", "{same}");
    assert_eq!(same["verdict"], "identical", "{same}");
    assert_eq!(
        (same["class"].as_str(), same["exit_code"].as_i64()),
        (Some("ok"), Some(0))
    );
    assert_eq!(
        same["artifacts"],
        json!([]),
        "nothing kept without `artifacts`"
    );
    assert_eq!(same["report"]["task"], "verify");
    let comparison = &same["report"]["comparisons"][0];
    assert_eq!(
        comparison["wheel"],
        ours.display().to_string(),
        "named as the job names it"
    );
    assert_eq!(comparison["verdict"], "identical");

    let differs = per_job["changed"][0];
    assert_eq!(differs["status"], "ok", "{differs}");
    assert_eq!(differs["verdict"], "differs");
    assert_eq!(
        (differs["class"].as_str(), differs["exit_code"].as_i64()),
        (Some("differs"), Some(11))
    );
    let comparison = &differs["report"]["comparisons"][0];
    assert_eq!(comparison["wheel"], changed_url);
    let members: Vec<&Value> = comparison["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["member"])
        .collect();
    assert!(
        members.contains(&&json!("flit_demo/__init__.py")),
        "{comparison}"
    );
    // The wheel built is delivered, and it is the CLI's.
    assert_eq!(differs["artifacts"][0]["kind"], "wheel");
    assert!(fs::read(kept.join(&name)).unwrap() == fs::read(&ours).unwrap());

    let both = per_job["both"][0];
    assert_eq!(both["verdict"], "differs", "{both}");
    let verdicts: Vec<&Value> = both["report"]["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["verdict"])
        .collect();
    assert_eq!(verdicts, [&json!("identical"), &json!("differs")]);
    assert_ne!(both["key"], same["key"], "the wheels are part of the key");

    let bad = per_job["bad"][0];
    assert_eq!(bad["status"], "refused", "{bad}");
    assert_eq!(bad["class"], "input_refused");
    assert!(bad.get("verdict").is_none(), "{bad}");
    assert!(bad["error"].as_str().unwrap().contains(&name), "{bad}");
    assert_eq!(server.pending(STREAM, GROUP), 0);

    // What producers write and what workers answer follow the published schemas.
    let jobs: Vec<Value> = server
        .entries(STREAM)
        .iter()
        .map(|(_, fields)| serde_json::from_str(&fields["job"]).unwrap())
        .collect();
    validate_all(&jobs, "scale-out.schema.json", "job", work.path());
    let reports: Vec<Value> = results.iter().map(|r| r["report"].clone()).collect();
    let bare: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("report");
            r
        })
        .collect();
    validate_all(&bare, "scale-out.schema.json", "result", work.path());
    validate_all(&reports, "report.schema.json", "source", work.path());
    assert_eq!(worker.stop(), Some(0), "{}", worker.dump());
}
