//! The package index client: which files exist for a project (PEP 691 JSON or PEP 503 HTML
//! simple indexes, merged with find-links locations), their core metadata (PEP 658/714
//! `.metadata` files, or the wheel's own `METADATA`), and verified downloads into the
//! content-addressed wheel cache.
//!
//! Index pages are cached on disk with their HTTP caching headers and revalidated with
//! conditional requests when stale; in offline mode only the cache and local find-links are
//! read. Every downloaded file is checked against the index's sha256 (or hashed, when the
//! index gives none) before it is cached; a file that does not match is never stored.
//!
//! One [`IndexClient`] is meant to serve a whole process: it memoizes pages, metadata and
//! downloads, so resolving a second round of requirements costs almost nothing.

mod find_links;
mod html;
mod http;
mod page_cache;
mod simple;
mod wheel_store;

use crate::archive::zip::{StrictZip, ZipError};
use crate::cache::{Bucket, Cache, create_private_dir, sha256_bytes, sha256_file, write_atomic};
use crate::filename::{SdistFilename, WheelFilename};
use crate::limits::ArchiveLimits;
use crate::metadata::CoreMetadata;
use anyhow::{Context, bail};
use find_links::FindLinks;
use http::{HttpClient, PageResponse, Validators};
use page_cache::{CachedPage, PageCache};
use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use url::Url;
use wheel_store::WheelStore;

/// The index used when none is given.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple/";

/// Where distributions come from and how the network may be used.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// The main simple index (default [`DEFAULT_INDEX_URL`]).
    pub index_url: Option<String>,
    /// More simple indexes, searched after the main one.
    pub extra_index_urls: Vec<String>,
    /// Local folders of distribution files, or URLs (or local files) of flat HTML pages.
    pub find_links: Vec<String>,
    /// Read only the cache and local find-links; never touch the network.
    pub offline: bool,
    /// Revalidate every cached index page once, even if it is still fresh.
    pub refresh: bool,
}

/// One file of a project as an index or find-links location lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistFile {
    /// The file name, a single path component.
    pub filename: String,
    /// Absolute `http(s)://` URL without fragment, or a `file://` URL for local files.
    pub url: String,
    /// Lower-case hex sha256 the index gave for the file.
    pub sha256: Option<String>,
    /// The file's `Requires-Python`, as the index gave it.
    pub requires_python: Option<String>,
    /// `Some(reason)` when the file is yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    /// Whether a PEP 658/714 `.metadata` file is available next to the file.
    pub core_metadata: bool,
    /// The sha256 of that `.metadata` file, when the index gave it.
    pub metadata_sha256: Option<String>,
    /// The size in bytes, when the index gave it.
    pub size: Option<u64>,
    /// The index page or find-links location that listed the file, for messages.
    pub source: String,
}

impl DistFile {
    /// Whether the file is yanked.
    pub fn is_yanked(&self) -> bool {
        self.yanked.is_some()
    }

    /// The local path of a file from a find-links folder or local page.
    pub fn local_path(&self) -> Option<PathBuf> {
        let url = Url::parse(&self.url).ok()?;
        if url.scheme() == "file" {
            url.to_file_path().ok()
        } else {
            None
        }
    }

    /// What the file is, if it is a wheel or an sdist of `project`.
    pub fn kind(&self, project: &PackageName) -> Option<DistKind> {
        classify(&self.filename, project)
    }
}

/// A distribution file's kind and version, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistKind {
    /// A wheel, with its parsed file name.
    Wheel(WheelFilename),
    /// A source distribution (`.tar.gz`, or a legacy `.zip`).
    Sdist(Version),
}

impl DistKind {
    /// The version in the file name.
    pub fn version(&self) -> &Version {
        match self {
            Self::Wheel(wheel) => &wheel.version,
            Self::Sdist(version) => version,
        }
    }
}

/// Reads a file name as a wheel or sdist of `project`; `None` for anything else (other
/// projects' files, eggs, installers, unparseable names).
fn classify(filename: &str, project: &PackageName) -> Option<DistKind> {
    if filename.ends_with(".whl") {
        let wheel = WheelFilename::from_str(filename).ok()?;
        return (&wheel.name == project).then_some(DistKind::Wheel(wheel));
    }
    SdistFilename::parse_for(filename, project)
        .ok()
        .map(|sdist| DistKind::Sdist(sdist.version))
}

/// Where the sha256 of a downloaded file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSource {
    /// The index listed it and the download matched it.
    Index,
    /// The index gave none (or the file is local): it was computed from the bytes.
    Computed,
}

/// A file in the wheel cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The cached file, under `wheels-v1/sha256/…`.
    pub path: PathBuf,
    /// Its sha256 (lower-case hex).
    pub sha256: String,
    /// Whether the index vouched for that sha256.
    pub hash_source: HashSource,
}

/// Why the index client could not provide something. Every message names the project,
/// file or URL at fault.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Offline, and no page of the project is cached.
    #[error(
        "cannot look up `{project}` offline: no index page for it is in the cache \
         (missing: {missing}); run once without offline mode to fill the cache"
    )]
    OfflineProject { project: String, missing: String },
    /// Offline, and the file is not in the wheel cache.
    #[error("`{filename}` is not in the cache and offline mode forbids downloading it from {url}")]
    OfflineFile { filename: String, url: String },
    /// The request failed before a response, or the body could not be read.
    #[error("request to {url} failed: {reason}")]
    Transfer { url: String, reason: String },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}{hint}")]
    Status {
        url: String,
        status: u16,
        hint: String,
    },
    /// A transient failure that persisted through every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<IndexError>,
    },
    /// A project page that cannot be parsed.
    #[error("the index page {url} is invalid: {reason}")]
    InvalidPage { url: String, reason: String },
    /// A downloaded file whose sha256 differs from the index's; it was not cached.
    #[error(
        "sha256 mismatch for `{filename}` from {url}: expected {expected}, got {actual}; \
         the file was refused and not cached"
    )]
    HashMismatch {
        filename: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// A PEP 658 metadata file whose sha256 differs from the index's.
    #[error(
        "sha256 mismatch for the core metadata of `{filename}` ({url}): expected {expected}, \
         got {actual}"
    )]
    MetadataHashMismatch {
        filename: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// A wheel (or metadata file) whose core metadata cannot be read.
    #[error("`{filename}` has invalid core metadata: {reason}")]
    InvalidMetadata { filename: String, reason: String },
    /// A file name that cannot be stored safely.
    #[error("`{filename}` is not a safe file name for the cache")]
    InvalidFileName { filename: String },
    /// A find-links folder or page that cannot be read.
    #[error("find-links location {location}: {reason}")]
    FindLinks { location: String, reason: String },
    /// A local file operation failed.
    #[error("{action}: {error}")]
    Io {
        action: String,
        error: std::io::Error,
    },
    /// The cache could not be read or written.
    #[error("{action}: {error:#}")]
    Cache {
        action: String,
        error: anyhow::Error,
    },
}

impl IndexError {
    fn cache(action: &str, error: anyhow::Error) -> Self {
        Self::Cache {
            action: format!("{action} (in the wasm-build cache)"),
            error,
        }
    }
}

/// A map whose values are computed once per key, with concurrent callers for the same key
/// waiting for the first one instead of repeating its work. Failures are not remembered.
struct OnceMap<K, V> {
    slots: Mutex<HashMap<K, Arc<Mutex<Option<V>>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> OnceMap<K, V> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn get_or_try_insert<E>(&self, key: &K, init: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        let mut value = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = value.as_ref() {
            return Ok(value.clone());
        }
        let computed = init()?;
        *value = Some(computed.clone());
        Ok(computed)
    }
}

/// The package index client. `Send + Sync`: share it by reference across threads.
pub struct IndexClient {
    indexes: Vec<Url>,
    find_links: Vec<FindLinks>,
    offline: bool,
    refresh: bool,
    /// When this client was made (Unix milliseconds): pages fetched since then by any
    /// process count as revalidated.
    started_at: u64,
    http: HttpClient,
    pages: PageCache,
    metadata_dir: PathBuf,
    wheels: WheelStore,
    projects: OnceMap<PackageName, Arc<[DistFile]>>,
    flat_pages: OnceMap<String, Option<Arc<[DistFile]>>>,
    metadata: OnceMap<String, Arc<CoreMetadata>>,
    downloads: OnceMap<String, CachedFile>,
}

impl std::fmt::Debug for IndexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexClient")
            .field("indexes", &self.indexes)
            .field("find_links", &self.find_links)
            .field("offline", &self.offline)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl IndexClient {
    /// Makes a client over `options`, caching in `cache`'s `Index` and `Wheels` buckets.
    /// Fails on an index URL that is not http(s) or a find-links location that does not exist.
    pub fn new(options: IndexOptions, cache: &Cache) -> anyhow::Result<Self> {
        let main = options.index_url.as_deref().unwrap_or(DEFAULT_INDEX_URL);
        let mut indexes = Vec::new();
        for raw in std::iter::once(main).chain(options.extra_index_urls.iter().map(String::as_str))
        {
            let mut url =
                Url::parse(raw).with_context(|| format!("index URL `{raw}` is not a valid URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!("index URL `{raw}` must be an http:// or https:// URL");
            }
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            url.set_fragment(None);
            if !indexes.contains(&url) {
                indexes.push(url);
            }
        }
        let find_links = options
            .find_links
            .iter()
            .map(|location| FindLinks::parse(location))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let index_dir = cache.bucket(Bucket::Index)?;
        let metadata_dir = index_dir.join("metadata");
        create_private_dir(&metadata_dir)?;
        Ok(Self {
            indexes,
            find_links,
            offline: options.offline,
            refresh: options.refresh,
            started_at: page_cache::now_millis(),
            http: HttpClient::new()?,
            pages: PageCache::new(index_dir.join("pages"))?,
            metadata_dir,
            wheels: WheelStore::new(cache.bucket(Bucket::Wheels)?)?,
            projects: OnceMap::new(),
            flat_pages: OnceMap::new(),
            metadata: OnceMap::new(),
            downloads: OnceMap::new(),
        })
    }

    /// Whether the client works from the cache and local files only.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The indexes and find-links locations searched, in order, for messages.
    pub fn sources(&self) -> Vec<String> {
        self.indexes
            .iter()
            .map(Url::to_string)
            .chain(self.find_links.iter().map(FindLinks::describe))
            .collect()
    }

    /// Every wheel and sdist of `name` over all indexes and find-links locations, in search
    /// order. When two sources list the same file name, the first one wins. A project no
    /// source knows gives an empty list.
    pub fn project_files(&self, name: &PackageName) -> Result<Vec<DistFile>, IndexError> {
        Ok(self.project_files_shared(name)?.to_vec())
    }

    /// [`Self::project_files`] without copying the memoized list.
    pub(crate) fn project_files_shared(
        &self,
        name: &PackageName,
    ) -> Result<Arc<[DistFile]>, IndexError> {
        self.projects
            .get_or_try_insert(name, || self.collect_project_files(name))
    }

    fn collect_project_files(&self, name: &PackageName) -> Result<Arc<[DistFile]>, IndexError> {
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        let mut add = |listed: &[DistFile]| {
            for file in listed {
                if classify(&file.filename, name).is_some() && seen.insert(file.filename.clone()) {
                    files.push(file.clone());
                }
            }
        };
        for index in &self.indexes {
            let url = index
                .join(&format!("{name}/"))
                .map_err(|e| IndexError::InvalidPage {
                    url: index.to_string(),
                    reason: format!("cannot form the page URL of `{name}`: {e}"),
                })?;
            match self.page(&url, simple::ACCEPT_SIMPLE)? {
                Some(page) => add(&page.files),
                None => missing.push(url.to_string()),
            }
        }
        for location in &self.find_links {
            match location {
                FindLinks::Dir(dir) => add(&find_links::list_dir(dir)?),
                FindLinks::Page(url) => {
                    let listed = self.flat_pages.get_or_try_insert(&url.to_string(), || {
                        Ok::<_, IndexError>(
                            self.page(url, simple::ACCEPT_HTML)?
                                .map(|page| Arc::from(page.files)),
                        )
                    })?;
                    match listed {
                        Some(listed) => add(&listed),
                        None => missing.push(url.to_string()),
                    }
                }
            }
        }
        if self.offline && files.is_empty() && !missing.is_empty() {
            return Err(IndexError::OfflineProject {
                project: name.to_string(),
                missing: missing.join(", "),
            });
        }
        Ok(files.into())
    }

    /// A page from the cache or the network, honouring freshness, `refresh` and `offline`.
    /// `None` when offline and the page was never cached.
    fn page(&self, url: &Url, accept: &str) -> Result<Option<CachedPage>, IndexError> {
        if url.scheme() == "file" {
            return self.local_page(url).map(Some);
        }
        let key = url.as_str();
        let usable = |page: &CachedPage| {
            (page.is_fresh() && !self.refresh) || page.fetched_since(self.started_at)
        };
        let cached = self.pages.read(key);
        if self.offline {
            return Ok(cached);
        }
        if cached
            .as_ref()
            .is_some_and(|page| page.is_fresh() && !self.refresh)
        {
            return Ok(cached);
        }
        let _lock = self
            .pages
            .lock(key)
            .map_err(|e| IndexError::cache("locking the index page cache", e))?;
        // Another process may have fetched the page while this one waited for the lock.
        let cached = self.pages.read(key);
        if cached.as_ref().is_some_and(usable) {
            return Ok(cached);
        }
        let validators = cached
            .as_ref()
            .map(|page| Validators {
                etag: page.etag.as_deref(),
                last_modified: page.last_modified.as_deref(),
            })
            .unwrap_or_default();
        let page = match self.http.get_page(url, accept, &validators)? {
            PageResponse::Fetched {
                body,
                content_type,
                final_url,
                cache,
            } => {
                let files = simple::parse_page(&body, content_type.as_deref(), &final_url)
                    .map_err(|reason| IndexError::InvalidPage {
                        url: url.to_string(),
                        reason,
                    })?;
                CachedPage::new(key, cache, true, files)
            }
            PageResponse::NotModified { cache } => match cached {
                Some(page) => page.revalidated(cache),
                None => {
                    return Err(IndexError::InvalidPage {
                        url: url.to_string(),
                        reason: "the server answered 304 Not Modified to a plain request"
                            .to_string(),
                    });
                }
            },
            PageResponse::NotFound { cache } => CachedPage::new(key, cache, false, Vec::new()),
        };
        self.pages
            .write(&page)
            .map_err(|e| IndexError::cache("writing an index page", e))?;
        Ok(Some(page))
    }

    /// A flat find-links page stored on this machine.
    fn local_page(&self, url: &Url) -> Result<CachedPage, IndexError> {
        let location = url.to_string();
        let path = url.to_file_path().map_err(|()| IndexError::FindLinks {
            location: location.clone(),
            reason: "not a local path".to_string(),
        })?;
        let text = std::fs::read_to_string(&path).map_err(|e| IndexError::FindLinks {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        let files = simple::parse_html(&text, url);
        Ok(CachedPage::new(
            &location,
            http::CacheHeaders::default(),
            true,
            files,
        ))
    }

    /// Downloads `file` into the content-addressed wheel cache (or finds it there) and
    /// returns the cached path. See [`Self::download_verified`].
    pub fn download(&self, file: &DistFile) -> Result<PathBuf, IndexError> {
        Ok(self.download_verified(file)?.path)
    }

    /// Downloads `file` into the wheel cache, checking it against the index's sha256; when
    /// the index gives none, the sha256 is computed and reported as such. A file whose bytes
    /// do not match is refused and nothing is cached under its name. Local files are hashed
    /// and copied into the cache.
    pub fn download_verified(&self, file: &DistFile) -> Result<CachedFile, IndexError> {
        self.downloads
            .get_or_try_insert(&file.url, || self.fetch_file(file))
    }

    fn fetch_file(&self, file: &DistFile) -> Result<CachedFile, IndexError> {
        let hash_source = if file.sha256.is_some() {
            HashSource::Index
        } else {
            HashSource::Computed
        };
        let done = |path: PathBuf, sha256: &str| CachedFile {
            path,
            sha256: sha256.to_string(),
            hash_source,
        };
        if let Some(source) = file.local_path() {
            let (actual, _) = sha256_file(&source)
                .map_err(|e| IndexError::cache("hashing a find-links file", e))?;
            check_hash(file, &source.display().to_string(), &actual)?;
            if let Some(path) = self.wheels.verified(&actual, &file.filename)? {
                return Ok(done(path, &actual));
            }
            let _lock = self.wheels.lock(&actual)?;
            let path = match self.wheels.verified(&actual, &file.filename)? {
                Some(path) => path,
                None => self.wheels.import_local(&source, &actual, &file.filename)?,
            };
            return Ok(done(path, &actual));
        }

        let known = file
            .sha256
            .clone()
            .or_else(|| self.wheels.recorded_hash(&file.url));
        if let Some(sha256) = &known
            && let Some(path) = self.wheels.verified(sha256, &file.filename)?
        {
            return Ok(done(path, sha256));
        }
        if self.offline {
            return Err(IndexError::OfflineFile {
                filename: file.filename.clone(),
                url: file.url.clone(),
            });
        }
        let _lock = self.wheels.lock(known.as_deref().unwrap_or(&file.url))?;
        if let Some(sha256) = &known
            && let Some(path) = self.wheels.verified(sha256, &file.filename)?
        {
            return Ok(done(path, sha256));
        }
        let url = Url::parse(&file.url).map_err(|e| IndexError::Transfer {
            url: file.url.clone(),
            reason: format!("invalid URL: {e}"),
        })?;
        let mut tmp = self.wheels.temp_file()?;
        let (actual, _size) = self.http.download(&url, tmp.as_file_mut())?;
        // On a mismatch `tmp` is dropped here, which deletes it: nothing reaches the cache.
        check_hash(file, &file.url, &actual)?;
        let path = self.wheels.publish(tmp, &actual, &file.filename)?;
        if file.sha256.is_none() {
            self.wheels.record_hash(&file.url, &actual)?;
        }
        Ok(done(path, &actual))
    }

    /// The core metadata of a wheel: from the PEP 658 `.metadata` file when the index offers
    /// one (checked against its hash when given), else from the wheel's own
    /// `*.dist-info/METADATA` (downloading the wheel). Cached by the wheel's sha256.
    pub fn metadata(&self, file: &DistFile) -> Result<Arc<CoreMetadata>, IndexError> {
        self.metadata
            .get_or_try_insert(&file.url, || self.load_metadata(file))
    }

    fn load_metadata(&self, file: &DistFile) -> Result<Arc<CoreMetadata>, IndexError> {
        let parse = |bytes: &[u8]| {
            CoreMetadata::parse(bytes).map_err(|e| IndexError::InvalidMetadata {
                filename: file.filename.clone(),
                reason: format!("{e:#}"),
            })
        };
        let known = if file.local_path().is_some() {
            None
        } else {
            file.sha256
                .clone()
                .or_else(|| self.wheels.recorded_hash(&file.url))
        };
        if let Some(sha256) = &known
            && let Ok(bytes) = std::fs::read(self.metadata_path(sha256))
            && let Ok(metadata) = parse(&bytes)
        {
            return Ok(Arc::new(metadata));
        }
        if file.core_metadata
            && !self.offline
            && let Some(sha256) = &file.sha256
            && let Some(bytes) = self.fetch_metadata_file(file)?
        {
            let metadata = parse(&bytes)?;
            self.store_metadata(sha256, &bytes)?;
            return Ok(Arc::new(metadata));
        }
        let cached = self.download_verified(file)?;
        let bytes = read_wheel_metadata(&cached.path, &file.filename)?;
        let metadata = parse(&bytes)?;
        self.store_metadata(&cached.sha256, &bytes)?;
        Ok(Arc::new(metadata))
    }

    /// Fetches `<file url>.metadata`; `None` when the index does not have it after all.
    fn fetch_metadata_file(&self, file: &DistFile) -> Result<Option<Vec<u8>>, IndexError> {
        let url_text = format!("{}.metadata", file.url);
        let url = Url::parse(&url_text).map_err(|e| IndexError::Transfer {
            url: url_text.clone(),
            reason: format!("invalid URL: {e}"),
        })?;
        let Some(bytes) = self.http.get_bytes(&url, http::MAX_METADATA_BYTES)? else {
            return Ok(None);
        };
        if let Some(expected) = &file.metadata_sha256 {
            let actual = sha256_bytes(&bytes);
            if &actual != expected {
                return Err(IndexError::MetadataHashMismatch {
                    filename: file.filename.clone(),
                    url: url_text,
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(Some(bytes))
    }

    fn metadata_path(&self, wheel_sha256: &str) -> PathBuf {
        self.metadata_dir.join(format!("{wheel_sha256}.METADATA"))
    }

    fn store_metadata(&self, wheel_sha256: &str, bytes: &[u8]) -> Result<(), IndexError> {
        write_atomic(&self.metadata_path(wheel_sha256), bytes)
            .map_err(|e| IndexError::cache("writing core metadata", e))
    }
}

/// Refuses `actual` when the index gave a different sha256 for `file`.
fn check_hash(file: &DistFile, location: &str, actual: &str) -> Result<(), IndexError> {
    match &file.sha256 {
        Some(expected) if expected != actual => Err(IndexError::HashMismatch {
            filename: file.filename.clone(),
            url: location.to_string(),
            expected: expected.clone(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Reads `<name>-<version>.dist-info/METADATA` from a wheel. The wheel must hold exactly one
/// top-level `.dist-info/METADATA`, or one whose folder matches the wheel's name.
fn read_wheel_metadata(path: &Path, filename: &str) -> Result<Vec<u8>, IndexError> {
    let invalid = |reason: String| IndexError::InvalidMetadata {
        filename: filename.to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| IndexError::Io {
        action: format!("opening {}", path.display()),
        error: e,
    })?;
    // The strict reader: the metadata resolution relies on is what every installer reads.
    let archive = StrictZip::open(&file, &ArchiveLimits::default())
        .map_err(|e| invalid(format!("{:#}", anyhow::Error::from(e))))?;
    let candidates: Vec<String> = archive
        .members()
        .iter()
        .map(|member| member.name.as_str())
        .filter(|name| {
            name.strip_suffix(".dist-info/METADATA")
                .is_some_and(|dir| !dir.is_empty() && !dir.contains('/'))
        })
        .map(str::to_string)
        .collect();
    let chosen = match candidates.as_slice() {
        [] => return Err(invalid("the wheel has no .dist-info/METADATA".to_string())),
        [only] => only.clone(),
        several => {
            let wheel = WheelFilename::from_str(filename).map_err(|e| invalid(format!("{e:#}")))?;
            let expected = wheel.dist_info_dir();
            several
                .iter()
                .find(|name| {
                    name.strip_suffix("/METADATA")
                        .is_some_and(|dir| dir.eq_ignore_ascii_case(&expected))
                })
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "the wheel has several .dist-info folders ({}) and none is {expected}",
                        several.join(", ")
                    ))
                })?
        }
    };
    let index = archive
        .members()
        .iter()
        .position(|member| member.name == chosen)
        .expect("a listed member");
    let entry = archive.reader(index).expect("a member's index");
    let mut bytes = Vec::new();
    entry
        .take(http::MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            invalid(format!(
                "cannot read {chosen}: {:#}",
                anyhow::Error::from(ZipError::from(e))
            ))
        })?;
    if bytes.len() as u64 > http::MAX_METADATA_BYTES {
        return Err(invalid(format!("{chosen} is larger than 16 MiB")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn name(s: &str) -> PackageName {
        PackageName::from_str(s).unwrap()
    }

    #[test]
    fn classifies_file_names_for_a_project() {
        let project = name("python-dateutil");
        assert!(matches!(
            classify("python_dateutil-2.9.0-py2.py3-none-any.whl", &project),
            Some(DistKind::Wheel(_))
        ));
        assert_eq!(
            classify("python-dateutil-2.8.2.tar.gz", &project),
            Some(DistKind::Sdist(Version::from_str("2.8.2").unwrap()))
        );
        assert_eq!(
            classify("python-dateutil-1.0.zip", &project),
            Some(DistKind::Sdist(Version::from_str("1.0").unwrap()))
        );
        assert_eq!(classify("six-1.16.0-py2.py3-none-any.whl", &project), None);
        assert_eq!(classify("python-dateutil-1.0.exe", &project), None);
        assert_eq!(classify("python-dateutil-1.0.egg", &project), None);
    }

    fn wheel_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        {
            let mut zip = zip::ZipWriter::new(tmp.as_file_mut());
            for (name, data) in entries {
                zip.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            zip.finish().unwrap();
        }
        tmp
    }

    #[test]
    fn reads_metadata_from_a_wheel() {
        let meta: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";
        let wheel = wheel_with(&[
            ("demo/__init__.py", b""),
            ("demo-1.0.dist-info/METADATA", meta),
        ]);
        let bytes = read_wheel_metadata(wheel.path(), "demo-1.0-py3-none-any.whl").unwrap();
        assert_eq!(bytes, meta);

        let two = wheel_with(&[
            ("other-1.0.dist-info/METADATA", b"x"),
            ("demo-1.0.dist-info/METADATA", meta),
        ]);
        let bytes = read_wheel_metadata(two.path(), "demo-1.0-py3-none-any.whl").unwrap();
        assert_eq!(bytes, meta);

        let nested = wheel_with(&[("pkg/demo-1.0.dist-info/METADATA", meta)]);
        let err = read_wheel_metadata(nested.path(), "demo-1.0-py3-none-any.whl").unwrap_err();
        assert!(err.to_string().contains("no .dist-info/METADATA"), "{err}");

        let not_zip = tempfile::NamedTempFile::new().unwrap();
        let err = read_wheel_metadata(not_zip.path(), "demo-1.0-py3-none-any.whl").unwrap_err();
        assert!(
            err.to_string().contains("demo-1.0-py3-none-any.whl"),
            "{err}"
        );
    }

    #[test]
    fn client_rejects_bad_options() {
        let cache = Cache::temporary().unwrap();
        let bad_scheme = IndexOptions {
            index_url: Some("ftp://example.org/simple".into()),
            ..IndexOptions::default()
        };
        let err = IndexClient::new(bad_scheme, &cache).unwrap_err();
        assert!(
            err.to_string().contains("ftp://example.org/simple"),
            "{err}"
        );
        let missing = IndexOptions {
            find_links: vec!["/no/such/folder".into()],
            ..IndexOptions::default()
        };
        assert!(IndexClient::new(missing, &cache).is_err());
    }

    #[test]
    fn index_urls_get_a_trailing_slash() {
        let cache = Cache::temporary().unwrap();
        let client = IndexClient::new(
            IndexOptions {
                index_url: Some("https://example.org/simple".into()),
                extra_index_urls: vec!["https://example.org/simple/".into()],
                ..IndexOptions::default()
            },
            &cache,
        )
        .unwrap();
        assert_eq!(client.sources(), ["https://example.org/simple/"]);
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<IndexClient>();
    }

    #[test]
    fn offline_without_cache_names_the_project() {
        let cache = Cache::temporary().unwrap();
        let client = IndexClient::new(
            IndexOptions {
                offline: true,
                ..IndexOptions::default()
            },
            &cache,
        )
        .unwrap();
        let err = client.project_files(&name("hatchling")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`hatchling` offline"), "{message}");
        assert!(
            message.contains("https://pypi.org/simple/hatchling/"),
            "{message}"
        );
    }
}
