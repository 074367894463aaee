//! Test support: a package index served on 127.0.0.1 (PEP 691 JSON or PEP 503 HTML, PEP 658
//! metadata files, ETags, Cache-Control, injected failures, tampered files), real wheels from
//! PyPI downloaded once, and tiny wheels made on the spot.

#![allow(dead_code)]

pub mod tls;

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::index::{DistFile, IndexClient, IndexOptions};
use wasm_build_packaging::resolve::{Resolution, ResolveError, resolve};
use wasm_build_packaging::target::GuestTarget;

/// The guest of the VMware CPython 3.12.0 runtime, as its probe reports it.
pub fn wasi_312() -> GuestTarget {
    GuestTarget::from_probe_json(include_str!("../fixtures/probe-wasi-cpython-3.12.0.json"))
        .expect("valid probe JSON")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Real distribution files from PyPI: (file name, sha256, URL).
const PYPI_FILES: &[(&str, &str, &str)] = &[
    (
        "flit_core-3.9.0-py3-none-any.whl",
        "7aada352fb0c7f5538c4fafeddf314d3a6a92ee8e2b1de70482329e42de70301",
        "https://files.pythonhosted.org/packages/38/45/618e84e49a6c51e5dd15565ec2fcd82ab273434f236b8f108f065ded517a/flit_core-3.9.0-py3-none-any.whl",
    ),
    (
        "hatchling-1.25.0-py3-none-any.whl",
        "b47948e45d4d973034584dd4cb39c14b6a70227cf287ab7ec0ad7983408a882c",
        "https://files.pythonhosted.org/packages/0c/8b/90e80904fdc24ce33f6fc6f35ebd2232fe731a8528a22008458cf197bc4d/hatchling-1.25.0-py3-none-any.whl",
    ),
    (
        "packaging-24.1-py3-none-any.whl",
        "5b8f2217dbdbd2f7f384c41c628544e6d52f2d0f53c6d0c3ea61aa5d1d7ff124",
        "https://files.pythonhosted.org/packages/08/aa/cc0199a5f0ad350994d660967a8efb233fe0416e4639146c089643407ce6/packaging-24.1-py3-none-any.whl",
    ),
    (
        "pathspec-0.12.1-py3-none-any.whl",
        "a0d503e138a4c123b27490a4f7beda6a01c6f288df0e4a8b79c7eb0dc7b4cc08",
        "https://files.pythonhosted.org/packages/cc/20/ff623b09d963f88bfde16306a54e12ee5ea43e9b597108672ff3a408aad6/pathspec-0.12.1-py3-none-any.whl",
    ),
    (
        "pluggy-1.5.0-py3-none-any.whl",
        "44e1ad92c8ca002de6377e165f3e0f1be63266ab4d554740532335b9d75ea669",
        "https://files.pythonhosted.org/packages/88/5f/e351af9a41f866ac3f1fac4ca0613908d9a41741cfcf2228f4ad853b697d/pluggy-1.5.0-py3-none-any.whl",
    ),
    (
        "trove_classifiers-2024.7.2-py3-none-any.whl",
        "ccc57a33717644df4daca018e7ec3ef57a835c48e96a1e71fc07eb7edac67af6",
        "https://files.pythonhosted.org/packages/0f/b0/09794439a62a7dc18bffdbf145aaf50297fd994890b11da27a13e376b947/trove_classifiers-2024.7.2-py3-none-any.whl",
    ),
    (
        "tomli-2.0.1-py3-none-any.whl",
        "939de3e7a6161af0c887ef91b7d41a53e7c5a1ca976325f429cb46ea9bc30ecc",
        "https://files.pythonhosted.org/packages/97/75/10a9ebee3fd790d20926a90a2547f0bf78f371b2f13aa822c759680ca7b9/tomli-2.0.1-py3-none-any.whl",
    ),
    (
        "setuptools-75.1.0-py3-none-any.whl",
        "35ab7fd3bcd95e6b7fd704e4a1539513edad446c097797f2985e0e4b960772f2",
        "https://files.pythonhosted.org/packages/ff/ae/f19306b5a221f6a436d8f2238d5b80925004093fa3edea59835b514d9057/setuptools-75.1.0-py3-none-any.whl",
    ),
    (
        "wheel-0.44.0-py3-none-any.whl",
        "2376a90c98cc337d18623527a97c31797bd02bad0033d41547043a1cbfbe448f",
        "https://files.pythonhosted.org/packages/1b/d1/9babe2ccaecff775992753d8686970b1e2755d21c8a63be73aba7a4e7d77/wheel-0.44.0-py3-none-any.whl",
    ),
    (
        "six-1.16.0-py2.py3-none-any.whl",
        "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
        "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/six-1.16.0-py2.py3-none-any.whl",
    ),
    (
        "charset_normalizer-3.3.2-py3-none-any.whl",
        "3e4d1f6587322d2788836a99c69062fbb091331ec940e02d12d179c1d53e25fc",
        "https://files.pythonhosted.org/packages/28/76/e6222113b83e3622caa4bb41032d0b1bf785250607392e1b778aca0b8a7d/charset_normalizer-3.3.2-py3-none-any.whl",
    ),
    (
        "charset_normalizer-3.3.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "90d558489962fd4918143277a773316e56c72da56ec7aa3dc3dbbe20fdfed15b",
        "https://files.pythonhosted.org/packages/ee/fb/14d30eb4956408ee3ae09ad34299131fb383c47df355ddb428a7331cfa1e/charset_normalizer-3.3.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ),
    (
        "MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "f5dfb42c4604dddc8e4305050aa6deb084540643ed5804d7455b5df8fe16f5e5",
        "https://files.pythonhosted.org/packages/0a/0d/2454f072fae3b5a137c119abf15465d1771319dfe9e4acbb31722a0fff91/MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ),
    (
        "MarkupSafe-2.1.5.tar.gz",
        "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
        "https://files.pythonhosted.org/packages/87/5b/aae44c6655f3801e81aa3eef09dbbf012431987ba564d7231722f68df02d/MarkupSafe-2.1.5.tar.gz",
    ),
];

/// The bytes of a real file from PyPI, downloaded once (by the index client, into a
/// content-addressed cache under the target folder) and checked against its pinned sha256.
pub fn pypi_file(filename: &str) -> Arc<Vec<u8>> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Mutex::default);
    if let Some(bytes) = loaded.lock().unwrap().get(filename) {
        return Arc::clone(bytes);
    }
    let &(_, sha256, url) = PYPI_FILES
        .iter()
        .find(|(name, _, _)| *name == filename)
        .unwrap_or_else(|| panic!("{filename} is not a pinned PyPI fixture"));
    let cache = Cache::at(Path::new(env!("CARGO_TARGET_TMPDIR")).join("pypi-cache")).unwrap();
    let client = IndexClient::new(IndexOptions::default(), &cache).unwrap();
    let file = DistFile {
        filename: filename.to_string(),
        url: url.to_string(),
        sha256: Some(sha256.to_string()),
        requires_python: None,
        yanked: None,
        core_metadata: false,
        metadata_sha256: None,
        size: None,
        upload_time: None,
        source: "https://pypi.org/simple/".to_string(),
    };
    let path = client
        .download(&file)
        .unwrap_or_else(|e| panic!("cannot download the test fixture {filename}: {e}"));
    let bytes = Arc::new(std::fs::read(path).unwrap());
    loaded
        .lock()
        .unwrap()
        .insert(filename.to_string(), Arc::clone(&bytes));
    bytes
}

/// A tiny wheel made for a test: (file name, bytes).
pub struct TinyWheel {
    pub name: String,
    pub version: String,
    pub requires_dist: Vec<String>,
    pub provides_extra: Vec<String>,
    pub requires_python: Option<String>,
    pub tag: String,
}

impl TinyWheel {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            requires_dist: Vec::new(),
            provides_extra: Vec::new(),
            requires_python: None,
            tag: "py3-none-any".to_string(),
        }
    }

    pub fn requires(mut self, requirement: &str) -> Self {
        self.requires_dist.push(requirement.to_string());
        self
    }

    pub fn extra(mut self, extra: &str) -> Self {
        self.provides_extra.push(extra.to_string());
        self
    }

    pub fn requires_python(mut self, spec: &str) -> Self {
        self.requires_python = Some(spec.to_string());
        self
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.to_string();
        self
    }

    /// The name as wheel file names and `.dist-info` folders write it (`-` escaped).
    fn escaped_name(&self) -> String {
        self.name.replace(['-', '.'], "_")
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-{}.whl", self.escaped_name(), self.version, self.tag)
    }

    pub fn metadata(&self) -> String {
        let mut text = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        if let Some(spec) = &self.requires_python {
            text.push_str(&format!("Requires-Python: {spec}\n"));
        }
        for extra in &self.provides_extra {
            text.push_str(&format!("Provides-Extra: {extra}\n"));
        }
        for requirement in &self.requires_dist {
            text.push_str(&format!("Requires-Dist: {requirement}\n"));
        }
        text
    }

    pub fn build(&self) -> Vec<u8> {
        let dist_info = format!("{}-{}.dist-info", self.escaped_name(), self.version);
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            let module = format!("{}/__init__.py", self.escaped_name());
            let wheel = format!(
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {}\n",
                self.tag
            );
            let entries = [
                (module, "".to_string()),
                (format!("{dist_info}/METADATA"), self.metadata()),
                (format!("{dist_info}/WHEEL"), wheel),
                (format!("{dist_info}/RECORD"), String::new()),
            ];
            for (name, data) in entries {
                zip.start_file(name, options).unwrap();
                zip.write_all(data.as_bytes()).unwrap();
            }
            zip.finish().unwrap();
        }
        buffer.into_inner()
    }
}

/// One file served by the test index.
#[derive(Clone)]
pub struct Served {
    pub filename: String,
    pub bytes: Arc<Vec<u8>>,
    pub yanked: Option<String>,
    pub requires_python: Option<String>,
    /// The METADATA inside a wheel, served as `<file>.metadata` when enabled.
    pub metadata: Option<Vec<u8>>,
    /// PEP 700 `upload-time` (RFC 3339) on JSON pages.
    pub upload_time: Option<String>,
}

/// How the index writes project pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// PEP 691 JSON when asked for it (as PyPI does).
    Json,
    /// PEP 503 HTML only, whatever the client asks for.
    Html,
}

/// One request the index answered.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub status: u16,
    pub conditional: bool,
    pub user_agent: String,
}

struct State {
    projects: BTreeMap<String, Vec<Served>>,
    format: Format,
    hashes: bool,
    metadata_files: bool,
    cache_control: Option<String>,
    tampered: HashSet<String>,
    failures: HashMap<String, VecDeque<u16>>,
    log: Vec<Logged>,
}

/// A package index on 127.0.0.1, stopped when dropped.
pub struct TestIndex {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    scheme: &'static str,
}

fn normalize(name: &str) -> String {
    pep508_rs::PackageName::from_str(name)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| name.to_string())
}

impl TestIndex {
    pub fn start(format: Format) -> Self {
        Self::serve(format, None)
    }

    /// The same index over HTTPS, with the certificate of `tests/fixtures/tls/server.pem`
    /// (127.0.0.1 and localhost), signed by the test authority `ca.pem` that nothing trusts.
    pub fn start_tls(format: Format) -> Self {
        Self::serve(format, Some(tls::server_config()))
    }

    fn serve(format: Format, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            projects: BTreeMap::new(),
            format,
            hashes: true,
            metadata_files: false,
            cache_control: None,
            tampered: HashSet::new(),
            failures: HashMap::new(),
            log: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    let tls = tls.clone();
                    std::thread::spawn(move || match tls {
                        None => handle(stream, &state),
                        Some(config) => {
                            let Ok(connection) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            handle(rustls::StreamOwned::new(connection, stream), &state);
                        }
                    });
                }
            })
        };
        Self {
            addr,
            state,
            stop,
            thread: Some(thread),
            scheme,
        }
    }

    /// The simple index URL: `http://127.0.0.1:PORT/simple/` (`https` for a TLS index).
    pub fn url(&self) -> String {
        format!("{}://{}/simple/", self.scheme, self.addr)
    }

    /// The flat find-links page listing every file.
    pub fn flat_url(&self) -> String {
        format!("http://{}/flat/", self.addr)
    }

    /// Serves `bytes` as `filename` under `project`.
    pub fn add(&self, project: &str, filename: &str, bytes: Arc<Vec<u8>>) -> &Self {
        let metadata = filename
            .ends_with(".whl")
            .then(|| wheel_metadata(&bytes))
            .flatten();
        self.state
            .lock()
            .unwrap()
            .projects
            .entry(normalize(project))
            .or_default()
            .push(Served {
                filename: filename.to_string(),
                bytes,
                yanked: None,
                requires_python: None,
                metadata,
                upload_time: None,
            });
        self
    }

    /// Serves a real PyPI file.
    pub fn add_pypi(&self, project: &str, filename: &str) -> &Self {
        self.add(project, filename, pypi_file(filename))
    }

    /// Serves a tiny wheel.
    pub fn add_tiny(&self, wheel: &TinyWheel) -> &Self {
        self.add(&wheel.name, &wheel.filename(), Arc::new(wheel.build()))
    }

    /// Changes one served file's attributes.
    pub fn update(&self, filename: &str, change: impl FnOnce(&mut Served)) {
        let mut state = self.state.lock().unwrap();
        let served = state
            .projects
            .values_mut()
            .flatten()
            .find(|s| s.filename == filename)
            .expect("served file");
        change(served);
    }

    /// Gives `filename` a PEP 700 upload time (shown on JSON pages only, as PEP 700 says).
    pub fn uploaded(&self, filename: &str, rfc3339: &str) {
        self.update(filename, |s| s.upload_time = Some(rfc3339.to_string()));
    }

    pub fn yank(&self, filename: &str, reason: &str) {
        self.update(filename, |s| s.yanked = Some(reason.to_string()));
    }

    /// Serves other bytes than the page's hash promises for `filename` (which may be a
    /// `.metadata` file).
    pub fn tamper(&self, filename: &str) {
        self.state
            .lock()
            .unwrap()
            .tampered
            .insert(filename.to_string());
    }

    /// Lists files without hashes.
    pub fn without_hashes(&self) {
        self.state.lock().unwrap().hashes = false;
    }

    /// Offers PEP 658 `.metadata` files.
    pub fn with_metadata_files(&self) {
        self.state.lock().unwrap().metadata_files = true;
    }

    pub fn cache_control(&self, value: &str) {
        self.state.lock().unwrap().cache_control = Some(value.to_string());
    }

    /// The next requests for `path` get these statuses.
    pub fn fail(&self, path: &str, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .failures
            .insert(path.to_string(), statuses.iter().copied().collect());
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// How many requests were for paths starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.path.starts_with(prefix))
            .count()
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wheel_metadata(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)?
        .to_string();
    let mut out = Vec::new();
    archive.by_name(&name).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

fn handle(mut stream: impl Read + Write, state: &Mutex<State>) {
    // GET requests have no body: nothing the reader buffers past the headers is lost.
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    drop(reader);
    let response = respond(&path, &headers, state);
    state.lock().unwrap().log.push(Logged {
        path: path.clone(),
        status: response.status,
        conditional: headers.contains_key("if-none-match")
            || headers.contains_key("if-modified-since"),
        user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
    });
    let reason = match response.status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response.body);
    let _ = stream.flush();
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn respond(path: &str, headers: &HashMap<String, String>, state: &Mutex<State>) -> Response {
    let mut state = state.lock().unwrap();
    if let Some(queue) = state.failures.get_mut(path)
        && let Some(status) = queue.pop_front()
    {
        return Response {
            status,
            headers: Vec::new(),
            body: b"injected failure".to_vec(),
        };
    }
    let not_found = || Response {
        status: 404,
        headers: Vec::new(),
        body: b"not found".to_vec(),
    };
    if let Some(rest) = path.strip_prefix("/simple/") {
        let project = normalize(rest.trim_end_matches('/'));
        let Some(files) = state.projects.get(&project) else {
            return not_found();
        };
        let json = state.format == Format::Json
            && headers
                .get("accept")
                .is_some_and(|a| a.contains("application/vnd.pypi.simple.v1+json"));
        let (content_type, body) = if json {
            (
                "application/vnd.pypi.simple.v1+json",
                json_page(&project, files, &state),
            )
        } else {
            ("text/html", html_page(files, &state, "/files/"))
        };
        return page_response(content_type, body, headers, &state);
    }
    if path == "/flat/" {
        let all: Vec<Served> = state.projects.values().flatten().cloned().collect();
        let body = html_page(&all, &state, "/files/");
        return page_response("text/html", body, headers, &state);
    }
    if let Some(filename) = path.strip_prefix("/files/") {
        let lookup = |name: &str| {
            state
                .projects
                .values()
                .flatten()
                .find(|s| s.filename == name)
                .cloned()
        };
        if let Some(wheel) = filename.strip_suffix(".metadata") {
            return match lookup(wheel).and_then(|s| s.metadata) {
                Some(mut metadata) if state.metadata_files => {
                    if state.tampered.contains(filename) {
                        metadata.extend_from_slice(b"Requires-Dist: evil\n");
                    }
                    Response {
                        status: 200,
                        headers: vec![("Content-Type".into(), "text/plain".into())],
                        body: metadata,
                    }
                }
                _ => not_found(),
            };
        }
        return match lookup(filename) {
            Some(served) => {
                let mut body = served.bytes.as_ref().clone();
                if state.tampered.contains(filename) {
                    body.extend_from_slice(b"tampered");
                }
                Response {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                    body,
                }
            }
            None => not_found(),
        };
    }
    not_found()
}

fn page_response(
    content_type: &str,
    body: String,
    request: &HashMap<String, String>,
    state: &State,
) -> Response {
    let etag = format!("\"{}\"", &sha256_hex(body.as_bytes())[..16]);
    let mut headers = vec![
        ("Content-Type".to_string(), content_type.to_string()),
        ("ETag".to_string(), etag.clone()),
    ];
    if let Some(cc) = &state.cache_control {
        headers.push(("Cache-Control".to_string(), cc.clone()));
    }
    if request.get("if-none-match") == Some(&etag) {
        return Response {
            status: 304,
            headers,
            body: Vec::new(),
        };
    }
    Response {
        status: 200,
        headers,
        body: body.into_bytes(),
    }
}

fn json_page(project: &str, files: &[Served], state: &State) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut hashes = serde_json::Map::new();
            if state.hashes {
                hashes.insert("sha256".into(), sha256_hex(&f.bytes).into());
            }
            let core_metadata = match (&f.metadata, state.metadata_files) {
                (Some(m), true) => serde_json::json!({"sha256": sha256_hex(m)}),
                _ => serde_json::json!(false),
            };
            serde_json::json!({
                "filename": f.filename,
                // Relative to the page, as PEP 691 allows.
                "url": format!("../../files/{}", f.filename),
                "hashes": hashes,
                "requires-python": f.requires_python,
                "yanked": match &f.yanked { Some(r) if !r.is_empty() => serde_json::json!(r), Some(_) => serde_json::json!(true), None => serde_json::json!(false) },
                "core-metadata": core_metadata,
                "size": f.bytes.len(),
                "upload-time": f.upload_time,
            })
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files}).to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_page(files: &[Served], state: &State, prefix: &str) -> String {
    let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
    for f in files {
        let mut attrs = String::new();
        if let Some(spec) = &f.requires_python {
            attrs.push_str(&format!(" data-requires-python=\"{}\"", escape(spec)));
        }
        if let Some(reason) = &f.yanked {
            attrs.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
        }
        if let (Some(m), true) = (&f.metadata, state.metadata_files) {
            attrs.push_str(&format!(" data-core-metadata=\"sha256={}\"", sha256_hex(m)));
        }
        let fragment = if state.hashes {
            format!("#sha256={}", sha256_hex(&f.bytes))
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<a href=\"{prefix}{}{fragment}\"{attrs}>{}</a><br/>\n",
            f.filename, f.filename
        ));
    }
    html.push_str("</body></html>\n");
    html
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Parses requirement strings.
pub fn reqs(list: &[&str]) -> Vec<pep508_rs::Requirement> {
    list.iter()
        .map(|s| pep508_rs::Requirement::from_str(s).unwrap())
        .collect()
}

/// Resolves `requirements` for the WASI 3.12 guest without constraints.
pub fn run(client: &IndexClient, requirements: &[&str]) -> Result<Resolution, ResolveError> {
    resolve(
        client,
        &wasi_312(),
        &reqs(requirements),
        &BuildConstraints::none(),
    )
}

/// `name==version` of each resolved package.
pub fn pins(resolution: &Resolution) -> Vec<String> {
    resolution
        .packages
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

/// Writes tiny wheels into `dir` (a find-links folder).
pub fn write_wheels(dir: &Path, wheels: &[TinyWheel]) {
    for wheel in wheels {
        std::fs::write(dir.join(wheel.filename()), wheel.build()).unwrap();
    }
}
