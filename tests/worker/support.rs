//! A real redis-server on a random port with AOF on, worker processes of the real binary,
//! the fixture sdists, and reading what the workers wrote.

use crate::common;
use redis::streams::StreamRangeReply;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of this test: its own port and folder, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.launch();
        server
    }

    /// Starts redis-server (again) on the same port and folder: it reloads its AOF.
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(File::create(self.dir.path().join("server.log")).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real one; install it \
                     with `apt-get install -y redis-server` (.ci/run does)"
                )
            });
        self.child = Some(child);
        wait_for(
            "redis-server to accept connections",
            Duration::from_secs(20),
            || self.connection_now().is_some(),
        );
    }

    /// Stops the server with SIGTERM (it writes its AOF out) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            child.wait().unwrap();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connection_now(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut con).ok()?;
        Some(con)
    }

    pub fn connection(&self) -> redis::Connection {
        self.connection_now()
            .expect("connecting to the test's redis-server")
    }

    /// Every entry of `stream`: (entry ID, field → value).
    pub fn entries(&self, stream: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query(&mut self.connection())
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let fields = entry
                    .map
                    .iter()
                    .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                    .collect();
                (entry.id, fields)
            })
            .collect()
    }

    /// The results written to `STREAM.results`, parsed.
    pub fn results(&self, stream: &str) -> Vec<Value> {
        self.entries(&format!("{stream}.results"))
            .into_iter()
            .map(|(_, fields)| serde_json::from_str(&fields["result"]).unwrap())
            .collect()
    }

    /// How many jobs of the group are delivered but not acknowledged.
    pub fn pending(&self, stream: &str, group: &str) -> u64 {
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query(&mut self.connection())
            .unwrap();
        match reply {
            redis::Value::Array(items) => redis::from_redis_value_ref(&items[0]).unwrap(),
            other => panic!("XPENDING answered {other:?}"),
        }
    }

    /// How many consumers the group has.
    pub fn consumers(&self, stream: &str, group: &str) -> usize {
        let reply: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(group)
            .query(&mut self.connection())
            .unwrap();
        reply.len()
    }

    /// Adds a job (JSON); returns its entry ID.
    pub fn add(&self, stream: &str, job: &Value) -> String {
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("job")
            .arg(job.to_string())
            .query(&mut self.connection())
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `wasm-build worker` process; its stderr (JSON lines) goes to a file.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    pub fn start(server: &RedisServer, stream: &str, name: &str, extra: &[&str]) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.jsonl");
        let child = common::wasm_build()
            .args(["worker", "--redis", &server.url(), "--stream", stream])
            .args(["--group", "builders", "--consumer", name])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker {
            name: name.to_string(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Whether a log line has `event` (and `job_id` when given).
    pub fn logged(&self, event: &str, job_id: Option<&str>) -> bool {
        self.log()
            .iter()
            .any(|line| line["event"] == event && job_id.is_none_or(|id| line["job_id"] == id))
    }

    pub fn signal(&self, signal_number: i32) {
        signal(self.child.as_ref().unwrap(), signal_number);
    }

    /// Waits for the process to end; its exit code (`None`: killed by a signal).
    pub fn wait(&mut self) -> Option<i32> {
        let status = self.child.take().unwrap().wait().unwrap();
        status.code()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    pub fn dump(&self) -> String {
        format!(
            "--- {} ---\n{}",
            self.name,
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, number: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to our own child process, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, number) }, 0);
}

/// Polls `done` every 100 ms; panics after `limit` naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sdists of the fixtures `names` (each built with the real CLI), in `into`.
pub fn fixture_sdists(names: &[&str], into: &Path) -> Vec<PathBuf> {
    names
        .iter()
        .map(|name| {
            let project = common::fixture(name);
            let built = common::build_ok(
                common::wasm_build()
                    .args(["build", "--sdist", "-q", "-o"])
                    .arg(into)
                    .arg(project.path()),
            );
            assert_eq!(built.len(), 1);
            built[0].clone()
        })
        .collect()
}

/// The sdist of the in-tree fixture whose backend sleeps `config_settings["sleep"]`
/// seconds in build_wheel: a build that lasts as long as a test needs.
pub fn slow_sdist(into: &Path) -> PathBuf {
    let project = common::fixture("intree");
    let backend = project.path().join("_build/backend.py");
    let text = fs::read_to_string(&backend).unwrap();
    let slow = text.replace(
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n",
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    \
         import time\n    time.sleep(float((config_settings or {}).get(\"sleep\", \"0\")))\n",
    );
    assert_ne!(slow, text);
    fs::write(&backend, slow).unwrap();
    let pyproject = project.path().join("pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap();
    fs::write(&pyproject, text.replace("intree-demo", "slow-demo")).unwrap();
    fs::rename(
        project.path().join("intree_demo"),
        project.path().join("slow_demo"),
    )
    .unwrap();
    let built = common::build_ok(
        common::wasm_build()
            .args(["build", "--sdist", "-q", "-o"])
            .arg(into)
            .arg(project.path()),
    );
    built[0].clone()
}

/// A job building the wheel of `sdist` into `outdir` with these config settings.
pub fn job(id: &str, sdist: &Path, outdir: &Path, settings: &[(&str, &str)]) -> Value {
    let (sha256, _) = wasm_build_packaging::cache::sha256_file(sdist).unwrap();
    let config: serde_json::Map<String, Value> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    serde_json::json!({
        "id": id,
        "source": {"path": sdist.display().to_string(), "sha256": sha256},
        "build": ["wheel"],
        "options": {"config_settings": config},
        "artifacts": {"dir": outdir.display().to_string()},
    })
}

/// The wheel `wasm-build` builds from `sdist` with these settings, run directly.
pub fn direct_build(sdist: &Path, settings: &[(&str, &str)], outdir: &Path) -> PathBuf {
    let mut cmd = common::wasm_build();
    cmd.args(["build", "-q", "-o"]).arg(outdir);
    for (k, v) in settings {
        cmd.arg("-C").arg(format!("{k}={v}"));
    }
    let built = common::build_ok(cmd.arg(sdist));
    assert_eq!(built.len(), 1);
    built[0].clone()
}

/// An HTTP server on 127.0.0.1: GET serves `files`, PUT stores the body under its path.
pub struct ArtifactStore {
    pub port: u16,
    pub uploads: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl ArtifactStore {
    pub fn start(files: BTreeMap<String, Vec<u8>>) -> ArtifactStore {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let uploads = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let stored = uploads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut parts = request.split_whitespace();
                let (method, path) = (parts.next().unwrap(), parts.next().unwrap().to_string());
                let mut writer = stream;
                let (status, body) = match method {
                    "GET" => match files.get(&path) {
                        Some(body) => ("200 OK", body.clone()),
                        None => ("404 Not Found", Vec::new()),
                    },
                    "PUT" => {
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        stored.lock().unwrap().insert(path, body);
                        ("201 Created", Vec::new())
                    }
                    _ => ("405 Method Not Allowed", Vec::new()),
                };
                let _ = write!(
                    writer,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = writer.write_all(&body);
            }
        });
        ArtifactStore { port, uploads }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
