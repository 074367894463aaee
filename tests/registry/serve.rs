//! `wasm-build serve` end to end: twenty jobs through a pipe, sources by path and by URL
//! from an HTTP server on 127.0.0.1, one with a wrong sha256, lines that are no job.

use super::common::python::validate_json_lines;
use super::common::*;
use super::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves the files of `dir` over HTTP/1.1 on 127.0.0.1 (one request per connection);
/// returns the base URL and the count of requests.
fn file_server(dir: PathBuf) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let name = request
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let response = match fs::read(dir.join(name)) {
                Ok(body) if !name.contains('/') => {
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend(body);
                    head
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, requests)
}

#[test]
fn serve_runs_twenty_jobs_from_a_pipe() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["flit", "hatchling"]);
    let served = work.path().join("served");
    fs::create_dir(&served).unwrap();
    for sdist in &sdists {
        fs::copy(sdist, served.join(sdist.file_name().unwrap())).unwrap();
    }
    let (base, requests) = file_server(served);
    let out = |id: &str| work.path().join("out").join(id);

    let mut jobs: Vec<String> = Vec::new();
    let mut expect_ok = Vec::new();
    for i in 0..16 {
        let sdist = &sdists[i % 2];
        let name = sdist.file_name().unwrap().to_str().unwrap();
        let id = format!("job-{i}");
        let job = if i % 2 == 0 {
            json!({"id": id, "path": sdist, "distributions": ["wheel"], "outdir": out(&id)})
        } else {
            json!({"id": id, "url": format!("{base}/{name}"),
                   "sha256": sha256(&fs::read(sdist).unwrap()),
                   "distributions": ["wheel"], "outdir": out(&id)})
        };
        jobs.push(job.to_string());
        expect_ok.push(id);
    }
    let flit = sdists[0].file_name().unwrap().to_str().unwrap();
    jobs.push(
        json!({"id": "wrong-sha", "url": format!("{base}/{flit}"), "sha256": "0".repeat(64),
               "outdir": out("wrong-sha")})
        .to_string(),
    );
    jobs.push(json!({"id": "no-sha", "url": format!("{base}/{flit}")}).to_string());
    jobs.push(json!({"id": "meta", "task": "metadata", "path": &sdists[1]}).to_string());
    jobs.push("this is not a job".into());

    let mut child = wasm_build()
        .args(["serve", "-j", "2"])
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = jobs.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()).unwrap());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    writer.join().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let results_path = work.path().join("results.jsonl");
    fs::write(&results_path, &stdout).unwrap();
    validate_json_lines(&results_path, &schema(), "job_result");
    let results: BTreeMap<String, Value> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|r| (r["id"].as_str().unwrap_or("<none>").to_string(), r))
        .collect();
    assert_eq!(stdout.lines().count(), 20, "{stdout}\n{stderr}");

    for id in &expect_ok {
        let result = &results[id];
        assert_eq!(result["outcome"]["status"], "ok", "{result}");
        let artifact = &result["artifacts"][0];
        let path = Path::new(artifact["path"].as_str().unwrap());
        assert!(path.starts_with(out(id)), "{result}");
        assert_eq!(
            artifact["hashes"]["sha256"],
            sha256(&fs::read(path).unwrap())
        );
    }
    // URL jobs say where their source came from.
    assert!(
        results["job-1"]["source"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&base)
    );

    let wrong = &results["wrong-sha"];
    assert_eq!(wrong["outcome"]["status"], "failed");
    let message = wrong["outcome"].to_string();
    assert!(message.contains("sha256"), "{message}");
    assert!(
        !out("wrong-sha").exists(),
        "nothing was built from a wrong download"
    );

    assert_eq!(results["no-sha"]["outcome"]["status"], "failed");
    assert!(results["no-sha"]["outcome"].to_string().contains("sha256"));
    // Refused before (or at) the download, a URL job's source is its URL.
    for id in ["no-sha", "wrong-sha"] {
        let source = &results[id]["source"];
        assert_eq!(source["path"], format!("{base}/{flit}"), "{source}");
        assert_eq!(source["url"], source["path"], "{source}");
        assert!(results[id]["runtime"].is_null(), "{}", results[id]);
    }
    assert_eq!(results["meta"]["outcome"]["status"], "ok");
    assert_eq!(results["meta"]["metadata"]["name"], "hatch-demo");
    let not_a_job = &results["<none>"];
    assert_eq!(not_a_job["outcome"]["status"], "failed");
    assert!(not_a_job["outcome"].to_string().contains("line 20"));
    // Eight good URL jobs and the wrong one: each downloaded once; no-sha never was.
    assert_eq!(requests.load(Ordering::SeqCst), 9);
}

/// SIGTERM with input still open: the job running finishes (its result is `ok`, not
/// stopped), no job starts after it, and serve exits 0.
#[test]
fn serve_ends_cleanly_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["setuptools"]);
    let job = |id: &str| {
        json!({"id": id, "path": &sdists[0], "distributions": ["wheel"],
               "outdir": work.path().join(id)})
        .to_string()
            + "\n"
    };
    let mut child = wasm_build()
        .args(["serve", "-j", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(job("first").as_bytes()).unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"status\":\"ok\""), "{first}");
    // The second job is read and (most likely) running when the signal comes.
    stdin.write_all(job("second").as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // A third job, written once the signal has surely been taken, is never started.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = stdin.write_all(job("third").as_bytes());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert!(status.success(), "{status:?}");
    for line in rest.lines() {
        let result: Value = serde_json::from_str(line).unwrap();
        assert_eq!(result["id"], "second", "{line}");
        assert_eq!(
            result["outcome"]["status"], "ok",
            "a running job finishes: {line}"
        );
    }
    assert!(!work.path().join("third").exists());
}
