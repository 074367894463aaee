//! Index pages on disk, with the HTTP caching headers they came with.
//!
//! Each page is one JSON file under `index-v1/pages/`, named by the sha256 of its URL, and
//! holds the parsed file list (not the raw body), so a warm read costs one small parse.
//! Entries are written atomically; a lock file per URL makes concurrent processes fetch a
//! cold page once and the others read what the first one wrote.

use super::DistFile;
use super::http::CacheHeaders;
use crate::cache::{FileLock, create_private_dir, sha256_bytes, write_atomic};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bumped whenever [`CachedPage`] changes shape or what is kept of a page; older entries are
/// then refetched in full when online.
const FORMAT: u32 = 2;
/// The oldest format still read, offline: format 1 lacks upload times (PEP 700), which only
/// `exclude-newer` needs, and has everything else.
const OLDEST_READ: u32 = 1;

/// A page as it was last fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedPage {
    format: u32,
    /// The URL the page was requested from (the cache key).
    pub url: String,
    /// Milliseconds since the Unix epoch when the page was fetched or last revalidated.
    pub fetched_at: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub max_age: Option<u64>,
    pub no_cache: bool,
    /// `false` when the index answered 404/410 for this page.
    pub found: bool,
    pub files: Vec<DistFile>,
}

impl CachedPage {
    /// A page fetched just now.
    pub fn new(url: &str, cache: CacheHeaders, found: bool, files: Vec<DistFile>) -> Self {
        Self {
            format: FORMAT,
            url: url.to_string(),
            fetched_at: now_millis(),
            etag: cache.etag,
            last_modified: cache.last_modified,
            max_age: cache.max_age,
            no_cache: cache.no_cache,
            found,
            files,
        }
    }

    /// The same page, confirmed unchanged by a 304 just now. A 304 may update the caching
    /// headers; missing ones keep their old values.
    pub fn revalidated(mut self, cache: CacheHeaders) -> Self {
        self.fetched_at = now_millis();
        if cache.etag.is_some() {
            self.etag = cache.etag;
        }
        if cache.last_modified.is_some() {
            self.last_modified = cache.last_modified;
        }
        if cache.max_age.is_some() || cache.no_cache {
            self.max_age = cache.max_age;
            self.no_cache = cache.no_cache;
        }
        self
    }

    /// Whether the page may be used without asking the server: within its `max-age`.
    /// Pages without one are always revalidated (conditionally, when they carry validators).
    pub fn is_fresh(&self) -> bool {
        if self.no_cache {
            return false;
        }
        match self.max_age {
            Some(max_age) => now_millis() < self.fetched_at.saturating_add(max_age * 1000),
            None => false,
        }
    }

    /// Whether the page was stored in the current format (older ones are still read offline).
    pub fn is_current_format(&self) -> bool {
        self.format == FORMAT
    }

    /// Whether the page was fetched or revalidated at or after `since` (Unix milliseconds).
    pub fn fetched_since(&self, since: u64) -> bool {
        self.fetched_at >= since
    }
}

/// The folder of cached pages.
#[derive(Debug, Clone)]
pub(crate) struct PageCache {
    dir: PathBuf,
}

impl PageCache {
    pub fn new(dir: PathBuf) -> Result<Self> {
        create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    fn key(url: &str) -> String {
        sha256_bytes(url.as_bytes())
    }

    fn entry_path(&self, url: &str) -> PathBuf {
        self.dir.join(format!("{}.json", Self::key(url)))
    }

    /// The cached page for `url`. A missing, unreadable, corrupt or unknown-format entry is
    /// `None` (and is simply replaced by the next fetch).
    pub fn read(&self, url: &str) -> Option<CachedPage> {
        let bytes = std::fs::read(self.entry_path(url)).ok()?;
        let page: CachedPage = serde_json::from_slice(&bytes).ok()?;
        ((OLDEST_READ..=FORMAT).contains(&page.format) && page.url == url).then_some(page)
    }

    /// Stores `page` atomically.
    pub fn write(&self, page: &CachedPage) -> Result<()> {
        let bytes = serde_json::to_vec(page)?;
        write_atomic(&self.entry_path(&page.url), &bytes)
    }

    /// Takes the lock that serializes fetches of `url` across processes.
    pub fn lock(&self, url: &str) -> Result<FileLock> {
        FileLock::acquire(self.dir.join(format!("{}.lock", Self::key(url))))
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_freshness() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PageCache::new(dir.path().join("pages")).unwrap();
        let url = "https://index.example/simple/demo/";
        assert!(cache.read(url).is_none());
        let headers = CacheHeaders {
            etag: Some("\"v1\"".into()),
            max_age: Some(600),
            ..CacheHeaders::default()
        };
        let page = CachedPage::new(url, headers, true, Vec::new());
        assert!(page.is_fresh());
        cache.write(&page).unwrap();
        let read = cache.read(url).unwrap();
        assert_eq!(read.etag.as_deref(), Some("\"v1\""));
        assert!(read.found);
        // Another URL never reads this entry.
        assert!(cache.read("https://index.example/simple/other/").is_none());
    }

    #[test]
    fn pages_without_max_age_are_stale() {
        let page = CachedPage::new("u", CacheHeaders::default(), true, Vec::new());
        assert!(!page.is_fresh());
        let no_cache = CacheHeaders {
            max_age: Some(600),
            no_cache: true,
            ..CacheHeaders::default()
        };
        assert!(!CachedPage::new("u", no_cache, true, Vec::new()).is_fresh());
        let mut old = CachedPage::new(
            "u",
            CacheHeaders {
                max_age: Some(10),
                ..CacheHeaders::default()
            },
            true,
            Vec::new(),
        );
        old.fetched_at -= 11_000;
        assert!(!old.is_fresh());
        let renewed = old.revalidated(CacheHeaders::default());
        assert!(renewed.is_fresh(), "a 304 without headers keeps max-age");
    }

    #[test]
    fn pages_of_the_previous_format_are_read_but_not_current() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PageCache::new(dir.path().to_path_buf()).unwrap();
        let url = "https://index.example/simple/demo/";
        let mut page = CachedPage::new(url, CacheHeaders::default(), true, Vec::new());
        page.format = 1;
        cache.write(&page).unwrap();
        let read = cache.read(url).unwrap();
        assert!(!read.is_current_format());
        page.format = FORMAT + 1;
        cache.write(&page).unwrap();
        assert!(
            cache.read(url).is_none(),
            "a newer format is not guessed at"
        );
    }

    #[test]
    fn corrupt_entries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PageCache::new(dir.path().to_path_buf()).unwrap();
        let url = "https://index.example/simple/demo/";
        std::fs::write(cache.entry_path(url), b"{truncated").unwrap();
        assert!(cache.read(url).is_none());
    }
}
