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

mod dist;
mod error;
mod exclude_newer;
mod fetch;
mod find_links;
mod html;
mod http;
mod once_map;
mod page_cache;
mod simple;
mod wheel_metadata;
mod wheel_store;

pub use dist::{CachedFile, DistFile, DistKind, HashSource};
pub use error::{Hint, IndexError, NetworkFailure, Roots};
pub use exclude_newer::ExcludeNewer;

use crate::cache::{Bucket, Cache, create_private_dir};
use crate::metadata::CoreMetadata;
use anyhow::{Context, bail};
use dist::classify;
use find_links::FindLinks;
use http::{HttpClient, PageResponse, Validators};
use once_map::OnceMap;
use page_cache::{CachedPage, PageCache};
use pep508_rs::PackageName;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;
use wheel_metadata::read_wheel_metadata;
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
    /// Search no index, only `find_links` (`index_url` and `extra_index_urls` are ignored).
    pub no_index: bool,
    /// Read only the cache and local find-links; never touch the network. Files a cached
    /// index page lists are then candidates only when they are in the wheel cache, and files
    /// of local find-links folders always are.
    pub offline: bool,
    /// Revalidate every cached index page once, even if it is still fresh.
    pub refresh: bool,
    /// Trust the operating system's certificate store instead of Mozilla's roots built into
    /// the binary (for TLS-intercepting proxies whose authority is installed system-wide).
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`, when set, take precedence over both.
    pub native_tls: bool,
    /// Ignore files uploaded at or after this moment, by the PEP 700 upload times of the
    /// index's JSON pages. Files of indexes that give no upload time (PEP 503 HTML pages,
    /// many mirrors) are then not used at all, and the resolution's notes and errors say
    /// so; files on this machine (find-links folders, local pages' local links) are always
    /// used.
    pub exclude_newer: Option<ExcludeNewer>,
}

/// The package index client. `Send + Sync`: share it by reference across threads.
pub struct IndexClient {
    indexes: Vec<Url>,
    find_links: Vec<FindLinks>,
    offline: bool,
    refresh: bool,
    exclude_newer: Option<ExcludeNewer>,
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
            .field("exclude_newer", &self.exclude_newer)
            .finish_non_exhaustive()
    }
}

/// Reads a user's index URL: http(s), with the path ending in `/`, without a fragment.
pub fn parse_index_url(raw: &str) -> anyhow::Result<Url> {
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
    Ok(url)
}

/// Checks a user's `--find-links` value as [`IndexClient::new`] reads it: an http(s) URL,
/// a `file://` URL, or a path to a folder or a page that exists.
pub fn check_find_links(location: &str) -> anyhow::Result<()> {
    FindLinks::parse(location).map(drop)
}

impl IndexClient {
    /// Makes a client over `options`, caching in `cache`'s `Index` and `Wheels` buckets.
    /// Fails on an index URL that is not http(s) or a find-links location that does not exist.
    pub fn new(options: IndexOptions, cache: &Cache) -> anyhow::Result<Self> {
        let main = options.index_url.as_deref().unwrap_or(DEFAULT_INDEX_URL);
        let mut indexes = Vec::new();
        let urls = std::iter::once(main).chain(options.extra_index_urls.iter().map(String::as_str));
        for raw in urls.filter(|_| !options.no_index) {
            let url = parse_index_url(raw)?;
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
            exclude_newer: options.exclude_newer,
            started_at: page_cache::now_millis(),
            http: HttpClient::new(options.native_tls)?,
            pages: PageCache::new(index_dir.join("pages"))?,
            metadata_dir,
            wheels: WheelStore::new(cache.bucket(Bucket::Wheels)?)?,
            projects: OnceMap::new(),
            flat_pages: OnceMap::new(),
            metadata: OnceMap::new(),
            downloads: OnceMap::new(),
        })
    }

    /// Downloads `url` into `file` through this client's HTTP settings (trust roots,
    /// retries), refusing more than `limit` bytes: for a source a job names by URL. Returns
    /// the sha256 (hex) and size of what was written, for the caller to check.
    pub fn download_url(
        &self,
        url: &Url,
        file: &mut std::fs::File,
        limit: u64,
    ) -> Result<(String, u64), IndexError> {
        if self.offline {
            return Err(IndexError::OfflineFile {
                filename: url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                url: url.to_string(),
            });
        }
        self.http.download_at_most(url, file, limit)
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
    /// order. When two sources list the same file name, the first one wins (offline, the
    /// first whose file can be had without the network). A project no source knows gives an
    /// empty list.
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
        let mut listed: Vec<DistFile> = Vec::new();
        let mut missing = Vec::new();
        let mut add = |files: &[DistFile]| {
            listed.extend(
                files
                    .iter()
                    .filter(|file| classify(&file.filename, name).is_some())
                    .cloned(),
            );
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
                    let files = self.flat_pages.get_or_try_insert(&url.to_string(), || {
                        Ok::<_, IndexError>(
                            self.page(url, simple::ACCEPT_HTML)?
                                .map(|page| Arc::from(page.files)),
                        )
                    })?;
                    match files {
                        Some(files) => add(&files),
                        None => missing.push(url.to_string()),
                    }
                }
            }
        }
        if self.offline && listed.is_empty() && !missing.is_empty() {
            return Err(IndexError::OfflineProject {
                project: name.to_string(),
                missing: missing.join(", "),
            });
        }
        Ok(self.first_of_each_name(listed).into())
    }

    /// One file per file name, in search order: the first source's, except that offline a
    /// later source's copy that can be had without the network (a find-links file, a cached
    /// download) wins over one that cannot.
    fn first_of_each_name(&self, listed: Vec<DistFile>) -> Vec<DistFile> {
        let mut chosen: Vec<DistFile> = Vec::with_capacity(listed.len());
        let mut position: HashMap<String, usize> = HashMap::new();
        for file in listed {
            match position.get(&file.filename) {
                None => {
                    position.insert(file.filename.clone(), chosen.len());
                    chosen.push(file);
                }
                Some(&at) => {
                    if self.offline && !self.is_available(&chosen[at]) && self.is_available(&file) {
                        chosen[at] = file;
                    }
                }
            }
        }
        chosen
    }

    /// Whether `file` can be had now: always online; offline only when it is on this
    /// machine (a find-links file) or its download is in the wheel cache. The cache entry is
    /// hashed again when it is used.
    pub fn is_available(&self, file: &DistFile) -> bool {
        if !self.offline || file.local_path().is_some() {
            return true;
        }
        file.sha256
            .clone()
            .or_else(|| self.wheels.recorded_hash(&file.url))
            .is_some_and(|sha256| self.wheels.contains(&sha256, &file.filename))
    }

    /// The `exclude-newer` cutoff, if any.
    pub fn exclude_newer(&self) -> Option<ExcludeNewer> {
        self.exclude_newer
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
        // A page stored by an older wasm-build lacks what this one reads from pages (upload
        // times): fetch it whole, not conditionally.
        let cached = cached.filter(CachedPage::is_current_format);
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
        let cached = self.pages.read(key).filter(CachedPage::is_current_format);
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
}

#[cfg(test)]
mod tests;
