//! HTTP for the index client: one `ureq` agent (rustls, gzip), timeouts, a User-Agent that
//! names wasm-build, conditional requests, and retries with backoff on transient failures
//! (connection errors, timeouts, 408, 429 and 5xx responses).

use super::{IndexError, NetworkFailure, Roots};
use crate::cache::hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use ureq::ResponseExt;
use ureq::http::{HeaderMap, StatusCode, header};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::Url;

mod roots;
use roots::root_certs;

/// The User-Agent sent with every request.
pub(crate) const USER_AGENT: &str = concat!(
    "wasm-build/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/wasm-build/wasm-build)"
);

/// How many times a request is tried before a transient failure is reported.
const MAX_ATTEMPTS: u32 = 4;
/// The first retry waits this long; each later one twice as long as the one before.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// A server's `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);
/// Index pages larger than this are refused (PyPI's largest JSON pages are a few MiB).
const MAX_PAGE_BYTES: u64 = 256 * 1024 * 1024;
/// Core metadata files larger than this are refused.
pub(crate) const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

/// Validators of a cached page, sent as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// The HTTP caching headers of a response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheHeaders {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// `Cache-Control: max-age` in seconds.
    pub max_age: Option<u64>,
    /// `Cache-Control: no-cache`, `no-store` or `must-revalidate` with no max-age: always
    /// revalidate before use.
    pub no_cache: bool,
}

impl CacheHeaders {
    fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut parsed = Self {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
            ..Self::default()
        };
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = directive.trim();
                let (key, arg) = match directive.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                if key.eq_ignore_ascii_case("max-age") {
                    parsed.max_age = arg.and_then(|v| v.parse().ok());
                } else if key.eq_ignore_ascii_case("no-cache")
                    || key.eq_ignore_ascii_case("no-store")
                {
                    parsed.no_cache = true;
                }
            }
        }
        parsed
    }
}

/// The outcome of a page request.
#[derive(Debug)]
pub(crate) enum PageResponse {
    /// 200: the body, its content type, the URL after redirects, and caching headers.
    Fetched {
        body: Vec<u8>,
        content_type: Option<String>,
        final_url: Url,
        cache: CacheHeaders,
    },
    /// 304: the cached copy is still valid.
    NotModified { cache: CacheHeaders },
    /// 404 or 410: the index does not have this page.
    NotFound { cache: CacheHeaders },
}

/// A failed attempt: whether trying again may help, and how long the server asked to wait.
enum Attempt {
    Transient(IndexError, Option<Duration>),
    Fatal(IndexError),
}

/// The HTTP client shared by every request of one [`super::IndexClient`].
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    agent: ureq::Agent,
    /// Which roots the agent trusts, for telling certificate errors apart.
    roots: Roots,
}

impl HttpClient {
    /// A client trusting the certificates in `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (as
    /// uv and pip do), else the system's trust store when `native_tls`, else Mozilla's roots:
    /// the first two serve networks whose TLS goes through a proxy with its own authority.
    pub fn new(native_tls: bool) -> anyhow::Result<Self> {
        let (root_certs, roots) = root_certs(native_tls)?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(root_certs)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_redirects(10)
            .build();
        Ok(Self {
            agent: ureq::Agent::with_parts(
                config,
                DefaultConnector::default(),
                OncePerHostResolver::default(),
            ),
            roots,
        })
    }

    /// GETs a page, conditionally when `validators` are given.
    pub fn get_page(
        &self,
        url: &Url,
        accept: &str,
        validators: &Validators<'_>,
    ) -> Result<PageResponse, IndexError> {
        self.with_retries(url, || {
            let mut request = self.agent.get(url.as_str()).header(header::ACCEPT, accept);
            if let Some(etag) = validators.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(date) = validators.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, date);
            }
            let mut response = request
                .call()
                .map_err(|e| classify_error(url, e, self.roots))?;
            let status = response.status();
            let cache = CacheHeaders::from_headers(response.headers());
            match status {
                StatusCode::NOT_MODIFIED => Ok(PageResponse::NotModified { cache }),
                StatusCode::NOT_FOUND | StatusCode::GONE => Ok(PageResponse::NotFound { cache }),
                s if s.is_success() => {
                    let content_type = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let final_url =
                        Url::parse(&response.get_uri().to_string()).unwrap_or_else(|_| url.clone());
                    let body = response
                        .body_mut()
                        .with_config()
                        .limit(MAX_PAGE_BYTES)
                        .read_to_vec()
                        .map_err(|e| classify_error(url, e, self.roots))?;
                    Ok(PageResponse::Fetched {
                        body,
                        content_type,
                        final_url,
                        cache,
                    })
                }
                s => Err(status_error(url, s, response.headers())),
            }
        })
    }

    /// GETs a small file (at most `limit` bytes). `Ok(None)` on 404/410.
    pub fn get_bytes(&self, url: &Url, limit: u64) -> Result<Option<Vec<u8>>, IndexError> {
        self.with_retries(url, || {
            let mut response = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| classify_error(url, e, self.roots))?;
            match response.status() {
                StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
                s if s.is_success() => response
                    .body_mut()
                    .with_config()
                    .limit(limit)
                    .read_to_vec()
                    .map(Some)
                    .map_err(|e| classify_error(url, e, self.roots)),
                s => Err(status_error(url, s, response.headers())),
            }
        })
    }

    /// Streams `url` into `file` (truncated first on every attempt), returning the sha256
    /// and size of what was written.
    pub fn download(&self, url: &Url, file: &mut File) -> Result<(String, u64), IndexError> {
        self.download_at_most(url, file, u64::MAX)
    }

    /// [`Self::download`], refusing a body of more than `limit` bytes.
    pub fn download_at_most(
        &self,
        url: &Url,
        file: &mut File,
        limit: u64,
    ) -> Result<(String, u64), IndexError> {
        self.with_retries(url, || {
            let io_error = |e: std::io::Error| {
                Attempt::Fatal(IndexError::Io {
                    action: "writing a download to the cache".to_string(),
                    error: e,
                })
            };
            file.set_len(0).map_err(io_error)?;
            file.rewind().map_err(io_error)?;
            let mut response = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| classify_error(url, e, self.roots))?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                return Err(Attempt::Fatal(IndexError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                    hint: String::new(),
                }));
            }
            if !status.is_success() {
                return Err(status_error(url, status, response.headers()));
            }
            let mut reader = response.body_mut().as_reader();
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // A connection that breaks mid-body is worth another try.
                    Err(e) => {
                        return Err(Attempt::Transient(
                            IndexError::transfer(url.as_str(), e.to_string()),
                            None,
                        ));
                    }
                };
                total += n as u64;
                if total > limit {
                    return Err(Attempt::Fatal(IndexError::transfer(
                        url.as_str(),
                        format!("the file is larger than {limit} bytes"),
                    )));
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_error)?;
            }
            file.flush().map_err(io_error)?;
            Ok((hex(&hasher.finalize()), total))
        })
    }

    fn with_retries<T>(
        &self,
        url: &Url,
        mut attempt: impl FnMut() -> Result<T, Attempt>,
    ) -> Result<T, IndexError> {
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Transient(error, _)) if tries >= MAX_ATTEMPTS => {
                    return Err(IndexError::GaveUp {
                        url: url.to_string(),
                        attempts: tries,
                        last: Box::new(error),
                    });
                }
                Err(Attempt::Transient(_, retry_after)) => {
                    let wait = retry_after.unwrap_or(backoff).min(MAX_RETRY_AFTER);
                    std::thread::sleep(wait);
                    backoff *= 2;
                }
            }
        }
    }
}

/// Looks each host up once per client and shares the answer between threads.
///
/// Parallel lookups of one name are what the prefetch and download threads would
/// otherwise make, and some resolvers drop concurrent queries (glibc then waits its 5 s
/// timeout before retrying; seen here on every cold resolution). Built on ureq's
/// `unversioned` resolver API, which Cargo.lock pins.
#[derive(Debug, Default)]
struct OncePerHostResolver {
    inner: DefaultResolver,
    hosts: Mutex<HashMap<String, Arc<Mutex<Option<ResolvedSocketAddrs>>>>>,
}

impl Resolver for OncePerHostResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let slot = {
            let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(hosts.entry(key).or_default())
        };
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(addresses) = cached.as_ref() {
            return Ok(addresses.clone());
        }
        let addresses = self.inner.resolve(uri, config, timeout).map_err(|error| {
            let host = uri.host().unwrap_or_default().to_string();
            match error {
                ureq::Error::Io(source) => ureq::Error::Io(std::io::Error::new(
                    source.kind(),
                    NameResolution { host, source },
                )),
                other => other,
            }
        })?;
        *cached = Some(addresses.clone());
        Ok(addresses)
    }
}

/// A host name that did not resolve, told apart from the other I/O errors ureq reports.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the host name {host}: {source}")]
struct NameResolution {
    host: String,
    source: std::io::Error,
}

/// Sorts a transport error into retryable or not, and by what the user can do about it.
fn classify_error(url: &Url, error: ureq::Error, roots: Roots) -> Attempt {
    use ureq::Error as E;
    let failure = failure_kind(&error, roots);
    let transient = matches!(
        error,
        E::Io(_) | E::Timeout(_) | E::ConnectionFailed | E::HostNotFound | E::Protocol(_)
    ) && !matches!(failure, NetworkFailure::Certificate(_));
    let reason = match error {
        E::BodyExceedsLimit(limit) => format!("the response is larger than {limit} bytes"),
        other => other.to_string(),
    };
    let error = IndexError::Transfer {
        url: url.to_string(),
        reason,
        failure,
    };
    if transient {
        Attempt::Transient(error, None)
    } else {
        Attempt::Fatal(error)
    }
}

/// Whether a transport error means "no connection" (the network is down, the host name does
/// not resolve, nothing listens), a refused certificate, or something else.
fn failure_kind(error: &ureq::Error, roots: Roots) -> NetworkFailure {
    use std::io::ErrorKind as K;
    use ureq::Error as E;
    use ureq::Timeout as T;
    let certificate = |error: &rustls::Error| {
        matches!(
            error,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    };
    match error {
        E::HostNotFound | E::ConnectionFailed | E::Timeout(T::Resolve | T::Connect) => {
            NetworkFailure::Unreachable
        }
        E::Rustls(inner) if certificate(inner) => NetworkFailure::Certificate(roots),
        E::Io(io) => {
            let inner = io.get_ref();
            if inner.is_some_and(|e| e.is::<NameResolution>()) {
                NetworkFailure::Unreachable
            } else if inner
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .is_some_and(certificate)
            {
                NetworkFailure::Certificate(roots)
            } else if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::NetworkUnreachable
                    | K::HostUnreachable
                    | K::NetworkDown
                    | K::AddrNotAvailable
            ) {
                NetworkFailure::Unreachable
            } else {
                NetworkFailure::Other
            }
        }
        _ => NetworkFailure::Other,
    }
}

/// An unexpected status: 408, 429 and 5xx are retried (honouring `Retry-After` in seconds).
fn status_error(url: &Url, status: StatusCode, headers: &HeaderMap) -> Attempt {
    let hint = match status.as_u16() {
        401 | 403 => " (wasm-build does not send credentials to indexes)".to_string(),
        _ => String::new(),
    };
    let error = IndexError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        hint,
    };
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if retryable {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Attempt::Transient(error, retry_after)
    } else {
        Attempt::Fatal(error)
    }
}

#[cfg(test)]
mod tests;
