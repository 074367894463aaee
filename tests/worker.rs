//! `wasm-build worker` against a real redis-server (started by each test on a random port,
//! AOF on): every job gets exactly one result, the artifacts are the CLI's bytes, a dead
//! worker's job is finished by another, hostile sources are refused once, Redis may
//! restart, SIGTERM lets the build in hand finish.

mod common;
#[path = "worker/support.rs"]
mod support;
#[path = "worker/verify.rs"]
mod verify;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;
use support::{
    ArtifactStore, RedisServer, Worker, direct_build, fixture_sdists, job, slow_sdist, wait_for,
};

pub(crate) const STREAM: &str = "jobs";
pub(crate) const GROUP: &str = "builders";

/// Results per job ID.
pub(crate) fn by_job(results: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for result in results {
        map.entry(result["job_id"].as_str().unwrap().to_string())
            .or_default()
            .push(result);
    }
    map
}

pub(crate) fn wait_for_results(
    server: &RedisServer,
    count: usize,
    workers: &[&Worker],
    limit: u64,
) {
    let what = format!("{count} results");
    let done = || server.results(STREAM).len() >= count;
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(&what, Duration::from_secs(limit), done)
    }))
    .is_err()
    {
        let logs: Vec<String> = workers.iter().map(|w| w.dump()).collect();
        panic!(
            "only {} of {count} results; logs:\n{}",
            server.results(STREAM).len(),
            logs.join("\n")
        );
    }
}

/// The one wheel in `dir`.
fn wheel_in(dir: &Path) -> Vec<u8> {
    let wheels: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?} in {}", dir.display());
    fs::read(&wheels[0]).unwrap()
}

fn metrics_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// 60 jobs: 3 real sdists (flit, hatchling, an in-tree backend) × 20 distinct config
/// settings (the in-tree backend writes them into METADATA, so its wheels differ).
#[test]
fn three_workers_give_each_job_one_result_with_the_cli_s_bytes() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(&["flit", "hatchling", "intree"], work.path());
    let server = RedisServer::start();
    let mut expected = BTreeMap::new();
    for (s, sdist) in sdists.iter().enumerate() {
        for n in 0..20 {
            let id = format!("job-{s}-{n}");
            let value = n.to_string();
            let settings = [("n", value.as_str())];
            let direct = work.path().join("direct").join(&id);
            let wheel = direct_build(sdist, &settings, &direct);
            expected.insert(id.clone(), fs::read(wheel).unwrap());
            let outdir = work.path().join("out").join(&id);
            server.add(STREAM, &job(&id, sdist, &outdir, &settings));
        }
    }
    let port = metrics_port();
    let metrics = format!("{port}");
    let mut workers = vec![
        Worker::start(&server, STREAM, "w1", &["--metrics", &metrics]),
        Worker::start(&server, STREAM, "w2", &[]),
        Worker::start(&server, STREAM, "w3", &[]),
    ];
    wait_for_results(&server, 60, &workers.iter().collect::<Vec<_>>(), 300);

    let results = server.results(STREAM);
    let per_job = by_job(&results);
    assert_eq!(per_job.len(), 60);
    for (id, wheel) in &expected {
        let found = &per_job[id];
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        let result = found[0];
        assert_eq!(result["status"], "ok", "{result}");
        assert_eq!(result["cached"], false);
        // The report entry of `serve`'s job runner rides along.
        assert_eq!(result["report"]["outcome"]["status"], "ok", "{result}");
        assert_eq!(result["report"]["task"], "build", "{result}");
        let outdir = work.path().join("out").join(id);
        assert!(wheel_in(&outdir) == *wheel, "{id}: not the CLI's wheel");
        let artifact = &result["artifacts"][0];
        assert_eq!(artifact["kind"], "wheel");
        assert_eq!(
            artifact["sha256"],
            wasm_build_packaging::cache::sha256_bytes(wheel)
        );
    }
    let keys: std::collections::BTreeSet<_> =
        results.iter().map(|r| r["key"].to_string()).collect();
    assert_eq!(keys.len(), 60, "distinct options make distinct keys");
    let busy: std::collections::BTreeSet<_> =
        results.iter().map(|r| r["worker"].to_string()).collect();
    assert!(busy.len() >= 2, "the jobs were shared: {busy:?}");
    assert_eq!(server.pending(STREAM, GROUP), 0);

    // The same build asked again under another ID is answered from the stored result.
    let again_dir = work.path().join("again");
    let again = job("again", &sdists[2], &again_dir, &[("n", "3")]);
    server.add(STREAM, &again);
    wait_for_results(&server, 61, &workers.iter().collect::<Vec<_>>(), 60);
    let results = server.results(STREAM);
    let answer = by_job(&results)["again"].clone();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["cached"], true);
    assert_eq!(answer[0]["key"], per_job["job-2-3"][0]["key"]);
    assert!(!again_dir.exists(), "nothing was built for a stored result");

    let text = scrape(port);
    let done: u64 = workers[0]
        .log()
        .iter()
        .filter(|l| l["event"] == "job" && l["status"] == "ok" && l["written"] == true)
        .count() as u64;
    assert!(
        text.contains(&format!(
            "wasm_build_worker_jobs_total{{status=\"ok\"}} {done}\n"
        )),
        "{text}"
    );
    assert!(text.contains("wasm_build_worker_in_flight 0\n"), "{text}");
    for worker in &mut workers {
        assert_eq!(worker.stop(), Some(0), "{}", worker.dump());
    }
}

#[test]
fn a_job_of_a_killed_worker_is_reclaimed_and_finished_once() {
    let work = tempfile::tempdir().unwrap();
    let sdist = slow_sdist(work.path());
    let server = RedisServer::start();
    let outdir = work.path().join("out");
    server.add(STREAM, &job("slow", &sdist, &outdir, &[("sleep", "4")]));
    let mut first = Worker::start(&server, STREAM, "doomed", &["--claim-idle", "2"]);
    wait_for(
        "the first worker to start the build",
        Duration::from_secs(60),
        || first.logged("job-started", Some("slow")),
    );
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait(), None);
    let mut second = Worker::start(&server, STREAM, "heir", &["--claim-idle", "2"]);
    wait_for_results(&server, 1, &[&first, &second], 120);
    // Long enough for a duplicate to show up, were there one.
    std::thread::sleep(Duration::from_secs(3));
    let results = server.results(STREAM);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "ok", "{}", results[0]);
    assert_eq!(results[0]["worker"], "heir");
    assert_eq!(results[0]["deliveries"], 2);
    assert!(wheel_in(&outdir).starts_with(b"PK"));
    assert_eq!(server.pending(STREAM, GROUP), 0);
    assert_eq!(second.stop(), Some(0), "{}", second.dump());
}

/// A `.tar.gz` whose second member climbs out of the tree.
fn hostile_sdist(dir: &Path) -> std::path::PathBuf {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "evil_demo-1.0/PKG-INFO",
            &b"Metadata-Version: 2.1\nName: evil-demo\nVersion: 1.0\n"[..],
        ),
        ("evil_demo-1.0/../../escaped.txt", b"outside"),
    ] {
        let mut header = tar::Header::new_gnu();
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let path = dir.join("evil_demo-1.0.tar.gz");
    fs::write(&path, gz.finish().unwrap()).unwrap();
    path
}

#[test]
fn a_hostile_sdist_is_refused_once_and_a_broken_job_is_dead_lettered() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(&["intree"], work.path());
    let hostile = hostile_sdist(work.path());
    let server = RedisServer::start();
    let out = work.path().join("out");
    server.add(
        STREAM,
        &job("good-1", &sdists[0], &out.join("1"), &[("n", "1")]),
    );
    server.add(STREAM, &job("hostile", &hostile, &out.join("h"), &[]));
    // Its source does not have the sha256 the job says: never built, retried, then dead.
    let mut broken = job("broken", &sdists[0], &out.join("b"), &[]);
    broken["source"]["sha256"] = Value::String("0".repeat(64));
    server.add(STREAM, &broken);
    server.add(
        STREAM,
        &job("good-2", &sdists[0], &out.join("2"), &[("n", "2")]),
    );
    let flags = ["--claim-idle", "1", "--max-deliveries", "2"];
    let mut workers = [
        Worker::start(&server, STREAM, "a", &flags),
        Worker::start(&server, STREAM, "b", &flags),
    ];
    wait_for_results(&server, 3, &workers.iter().collect::<Vec<_>>(), 120);
    wait_for("the dead letter", Duration::from_secs(60), || {
        !server.entries(&format!("{STREAM}.dead")).is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    let results = server.results(STREAM);
    let per_job = by_job(&results);
    assert_eq!(results.len(), 3, "{results:?}");
    let refused = per_job["hostile"][0];
    assert_eq!(refused["status"], "refused", "{refused}");
    assert_eq!(refused["class"], "input_refused");
    assert_eq!(
        refused["report"]["outcome"]["class"], "input_refused",
        "{refused}"
    );
    assert_eq!(refused["deliveries"], 1);
    assert!(
        refused["error"].as_str().unwrap().contains(".."),
        "{refused}"
    );
    assert!(!work.path().join("escaped.txt").exists());
    for good in ["good-1", "good-2"] {
        assert_eq!(per_job[good][0]["status"], "ok", "{}", per_job[good][0]);
    }
    assert!(!per_job.contains_key("broken"));
    let dead = server.entries(&format!("{STREAM}.dead"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = &dead[0].1["reason"];
    assert!(
        reason.contains("delivered 3 times, more than the 2 allowed"),
        "{reason}"
    );
    assert!(reason.contains("sha256"), "{reason}");
    assert_eq!(server.pending(STREAM, GROUP), 0);
    for worker in &mut workers {
        assert_eq!(worker.stop(), Some(0), "{}", worker.dump());
    }
}

#[test]
fn workers_reconnect_when_redis_restarts_and_the_run_completes() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(&["intree"], work.path());
    let mut server = RedisServer::start();
    for n in 0..12 {
        let id = format!("job-{n}");
        let value = n.to_string();
        let outdir = work.path().join(&id);
        server.add(STREAM, &job(&id, &sdists[0], &outdir, &[("n", &value)]));
    }
    let mut workers = [
        Worker::start(&server, STREAM, "a", &["--claim-idle", "5"]),
        Worker::start(&server, STREAM, "b", &["--claim-idle", "5"]),
    ];
    wait_for_results(&server, 1, &workers.iter().collect::<Vec<_>>(), 120);
    server.stop();
    std::thread::sleep(Duration::from_secs(3));
    server.launch();
    wait_for_results(&server, 12, &workers.iter().collect::<Vec<_>>(), 180);
    std::thread::sleep(Duration::from_secs(2));
    let results = server.results(STREAM);
    let per_job = by_job(&results);
    assert_eq!(per_job.len(), 12);
    for (id, found) in &per_job {
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        assert_eq!(found[0]["status"], "ok", "{}", found[0]);
    }
    assert!(
        workers.iter().any(|w| w.logged("redis-lost", None)),
        "{}",
        workers[0].dump()
    );
    assert_eq!(server.pending(STREAM, GROUP), 0);
    for worker in &mut workers {
        assert_eq!(worker.stop(), Some(0), "{}", worker.dump());
    }
}

#[test]
fn sigterm_lets_the_build_in_hand_finish_then_exits_0() {
    let work = tempfile::tempdir().unwrap();
    let sdist = slow_sdist(work.path());
    let server = RedisServer::start();
    let outdir = work.path().join("out");
    server.add(STREAM, &job("slow", &sdist, &outdir, &[("sleep", "3")]));
    let mut worker = Worker::start(&server, STREAM, "w", &[]);
    wait_for("the build to start", Duration::from_secs(60), || {
        worker.logged("job-started", Some("slow"))
    });
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait(), Some(0), "{}", worker.dump());
    let results = server.results(STREAM);
    assert_eq!(results.len(), 1, "{}", worker.dump());
    assert_eq!(results[0]["status"], "ok", "{}", results[0]);
    assert!(wheel_in(&outdir).starts_with(b"PK"));
    assert_eq!(server.pending(STREAM, GROUP), 0);
    assert!(worker.logged("stopping", None));
    assert!(worker.logged("stopped", None));
    assert_eq!(
        server.consumers(STREAM, GROUP),
        0,
        "a stopped worker leaves the group"
    );
}

/// A source given by URL and artifacts sent with PUT (a pre-signed object-store upload):
/// the bytes uploaded are the CLI's, nothing is written to a folder.
#[test]
fn a_source_by_url_is_built_and_its_wheel_put_to_the_store() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(&["intree"], work.path());
    let name = sdists[0].file_name().unwrap().to_str().unwrap().to_string();
    let bytes = fs::read(&sdists[0]).unwrap();
    let store = ArtifactStore::start(BTreeMap::from([(format!("/files/{name}"), bytes)]));
    let wheel = fs::read(direct_build(&sdists[0], &[], &work.path().join("direct"))).unwrap();
    let server = RedisServer::start();
    let mut put = job("by-url", &sdists[0], Path::new("/unused"), &[]);
    put["source"] = serde_json::json!({
        "url": store.url(&format!("/files/{name}")),
        "sha256": put["source"]["sha256"],
    });
    put["artifacts"] = serde_json::json!({"put": {"wheel": store.url("/upload/w.whl?sig=1")}});
    server.add(STREAM, &put);
    let mut worker = Worker::start(&server, STREAM, "w", &[]);
    wait_for_results(&server, 1, &[&worker], 120);
    let results = server.results(STREAM);
    assert_eq!(results[0]["status"], "ok", "{}", results[0]);
    assert_eq!(
        results[0]["artifacts"][0]["location"],
        store.url("/upload/w.whl?sig=1")
    );
    let uploads = store.uploads.lock().unwrap().clone();
    assert_eq!(uploads.len(), 1, "{:?}", uploads.keys());
    assert!(
        uploads["/upload/w.whl?sig=1"] == wheel,
        "not the CLI's wheel"
    );
    assert_eq!(server.pending(STREAM, GROUP), 0);
    assert_eq!(worker.stop(), Some(0), "{}", worker.dump());
}
