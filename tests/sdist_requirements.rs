//! End to end: build requirements that exist only as sdists (issue 19, item 5), served by a
//! package index on 127.0.0.1 made for each test. Every project here uses the stdlib-only
//! backend of tests/fixtures/sdist-requirements in-tree, so nothing else is downloaded. Each
//! sdist holds a nonce: its sha256, the key of the cache of built wheels, is new each run.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A simple index on 127.0.0.1 serving sdists made from generated projects.
struct Index {
    url: String,
    /// sdist file name → bytes.
    files: BTreeMap<String, Vec<u8>>,
    nonce: String,
}

/// One project: its name, version, build requirements, and whether it compiles C.
struct Spec<'a> {
    name: &'a str,
    requires: &'a [&'a str],
    native: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn pyproject(spec: &Spec<'_>, nonce: &str) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[build-system]\nrequires = [{}]\nbuild-backend = \"backend\"\nbackend-path = [\"_build\"]\n\n\
         [project]\nname = \"{}\"\nversion = \"1.0\"\n\n\
         [tool.fixture]\nimports = [{}]\nnative = {}\nnonce = \"{nonce}\"\n",
        list(spec.requires),
        spec.name,
        list(spec.requires),
        spec.native
    )
}

/// Writes the project of `spec` into `dir`.
fn write_project(dir: &Path, spec: &Spec<'_>, nonce: &str) {
    fs::create_dir_all(dir.join("_build")).unwrap();
    fs::copy(
        fixtures().join("sdist-requirements").join("backend.py"),
        dir.join("_build").join("backend.py"),
    )
    .unwrap();
    fs::write(dir.join("pyproject.toml"), pyproject(spec, nonce)).unwrap();
    fs::write(
        dir.join("PKG-INFO"),
        format!("Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n", spec.name),
    )
    .unwrap();
    fs::write(dir.join("ext.c"), "int f(void) { return 1; }\n").unwrap();
}

impl Index {
    /// Serves the sdists of `specs` (and nothing else) until the test process ends.
    fn serve(specs: &[Spec<'_>]) -> Self {
        let nonce = format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
        );
        let mut files = BTreeMap::new();
        for spec in specs {
            let project = tempfile::tempdir().unwrap();
            write_project(project.path(), spec, &nonce);
            let top = format!("{}-1.0", spec.name);
            let mut gz = Vec::new();
            {
                let encoder = flate2::write::GzEncoder::new(&mut gz, Default::default());
                let mut builder = tar::Builder::new(encoder);
                builder.mode(tar::HeaderMode::Deterministic);
                builder.append_dir_all(&top, project.path()).unwrap();
                builder.into_inner().unwrap().finish().unwrap();
            }
            files.insert(format!("{top}.tar.gz"), gz);
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(files.clone());
        let base = url.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let served = served.clone();
                let base = base.clone();
                std::thread::spawn(move || respond(stream, &served, &base));
            }
        });
        Self { url, files, nonce }
    }

    fn index_url(&self) -> String {
        format!("{}/simple/", self.url)
    }

    /// The sha256 of the sdist `file`: the key of its cache entry.
    fn sha256(&self, file: &str) -> String {
        sha256(&self.files[file])
    }

    /// A project folder requiring `requires`, built with the same backend.
    fn project(&self, requires: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            name: "top",
            requires,
            native: false,
        };
        write_project(dir.path(), &spec, &self.nonce);
        dir
    }

    /// `wasm-build PROJECT --wheel -o OUT` against this index only.
    fn wheel_cmd(&self, project: &Path, out: &Path) -> Command {
        let mut cmd = wasm_build();
        cmd.arg(project)
            .args(["--wheel", "--index-url", &self.index_url(), "-o"])
            .arg(out);
        cmd
    }
}

/// Answers one request: `/simple/<name>/` lists the project's sdist with its sha256,
/// `/files/<file>` serves it, anything else is 404.
fn respond(mut stream: std::net::TcpStream, files: &BTreeMap<String, Vec<u8>>, base: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (kind, body) = if let Some(name) = path
        .strip_prefix("/simple/")
        .and_then(|p| p.strip_suffix('/'))
    {
        let links: String = files
            .iter()
            .filter(|(file, _)| file.starts_with(&format!("{name}-")))
            .map(|(file, bytes)| {
                format!(
                    "<a href=\"{base}/files/{file}#sha256={}\">{file}</a>\n",
                    sha256(bytes)
                )
            })
            .collect();
        if links.is_empty() {
            ("", None)
        } else {
            (
                "text/html",
                Some(format!("<html><body>\n{links}</body></html>\n").into_bytes()),
            )
        }
    } else if let Some(file) = path.strip_prefix("/files/") {
        ("application/octet-stream", files.get(file).cloned())
    } else {
        ("", None)
    };
    let response = match body {
        Some(body) => {
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            head.extend(body);
            head
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

/// The cached wheel built from the sdist with `sdist_sha256`.
fn cached_wheel(sdist_sha256: &str) -> PathBuf {
    let dir = shared_cache().join("sdist-wheels-v1").join(sdist_sha256);
    let names = listing(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    dir.join(&names[0])
}

const BUILDING: &str = "Building build requirement onlysdist 1.0 from its sdist";
const FROM_CACHE: &str = "Using build requirement onlysdist 1.0, built from its sdist earlier";

fn stderr_of(cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(output.status.success(), "wasm-build failed");
    String::from_utf8(output.stderr).unwrap()
}

/// (a) A pure requirement published only as an sdist is built in the sandbox, and a second
/// build takes its wheel from the cache without running its backend.
#[test]
fn a_requirement_with_only_an_sdist_is_built_once_then_cached() {
    let index = Index::serve(&[Spec {
        name: "onlysdist",
        requires: &[],
        native: false,
    }]);
    let project = index.project(&["onlysdist"]);
    let out = tempfile::tempdir().unwrap();
    let stderr = stderr_of(index.wheel_cmd(project.path(), out.path()).arg("-v"));
    assert!(stderr.contains(BUILDING), "{stderr}");
    assert!(stderr.contains("onlysdist-1.0.tar.gz"), "{stderr}");
    assert_eq!(listing(out.path()), ["top-1.0-py3-none-any.whl"]);
    let cached = cached_wheel(&index.sha256("onlysdist-1.0.tar.gz"));
    assert!(cached.ends_with("onlysdist-1.0-py3-none-any.whl"));

    // Again: from the cache; onlysdist's backend does not run (no build of its sdist).
    fs::remove_dir_all(out.path()).unwrap();
    let stderr = stderr_of(index.wheel_cmd(project.path(), out.path()).arg("-v"));
    assert!(stderr.contains(FROM_CACHE), "{stderr}");
    assert!(!stderr.contains(BUILDING), "{stderr}");
    assert!(!stderr.contains("of onlysdist-1.0.tar.gz"), "{stderr}");
    assert_eq!(listing(out.path()), ["top-1.0-py3-none-any.whl"]);

    // The off switch refuses it as before, naming the package without a wheel.
    fs::remove_dir_all(out.path()).unwrap();
    let stderr = build_fails(
        index
            .wheel_cmd(project.path(), out.path())
            .arg("--no-build-requirements-from-sdist"),
        4,
    );
    assert!(stderr.contains("onlysdist"), "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
}

/// (d) A cached wheel changed on disk is not used: the requirement is built again.
#[test]
fn a_tampered_cached_wheel_is_built_again() {
    let index = Index::serve(&[Spec {
        name: "onlysdist",
        requires: &[],
        native: false,
    }]);
    let project = index.project(&["onlysdist"]);
    let out = tempfile::tempdir().unwrap();
    stderr_of(&mut index.wheel_cmd(project.path(), out.path()));
    let cached = cached_wheel(&index.sha256("onlysdist-1.0.tar.gz"));
    let mut bytes = fs::read(&cached).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&cached, &bytes).unwrap();

    fs::remove_dir_all(out.path()).unwrap();
    let stderr = stderr_of(&mut index.wheel_cmd(project.path(), out.path()));
    assert!(stderr.contains("was changed"), "{stderr}");
    assert!(stderr.contains(BUILDING), "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
    assert_eq!(listing(out.path()), ["top-1.0-py3-none-any.whl"]);
    // Rebuilt and stored again, intact.
    assert_ne!(
        fs::read(cached_wheel(&index.sha256("onlysdist-1.0.tar.gz"))).unwrap(),
        bytes
    );
}

/// (b) Two sdist-only packages that need each other to build: refused, naming the cycle.
#[test]
fn sdists_requiring_each_other_are_refused_with_the_cycle() {
    let index = Index::serve(&[
        Spec {
            name: "cyca",
            requires: &["cycb"],
            native: false,
        },
        Spec {
            name: "cycb",
            requires: &["cyca"],
            native: false,
        },
    ]);
    let project = index.project(&["cyca"]);
    let out = tempfile::tempdir().unwrap();
    let stderr = build_fails(&mut index.wheel_cmd(project.path(), out.path()), 4);
    assert!(
        stderr.contains("cyca 1.0 → cycb 1.0 → cyca 1.0"),
        "{stderr}"
    );
    assert!(stderr.contains("cycle"), "{stderr}");
    assert!(listing(out.path()).is_empty());
}

/// (c) An sdist-only requirement that compiles native code, needed through another
/// sdist-only one: refused with the whole chain.
#[test]
fn a_requirement_that_compiles_native_code_is_refused_with_the_chain() {
    let index = Index::serve(&[
        Spec {
            name: "middle",
            requires: &["nativedep"],
            native: false,
        },
        Spec {
            name: "nativedep",
            requires: &[],
            native: true,
        },
    ]);
    let project = index.project(&["middle"]);
    let out = tempfile::tempdir().unwrap();
    let stderr = build_fails(&mut index.wheel_cmd(project.path(), out.path()), 4);
    assert!(stderr.contains("→ middle 1.0 → nativedep 1.0"), "{stderr}");
    assert!(stderr.contains("compiles native code"), "{stderr}");
    assert!(listing(out.path()).is_empty());
}
