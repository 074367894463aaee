//! Files into the content-addressed wheel cache, checked against the index's sha256, and
//! the core metadata of wheels (PEP 658 files or the wheel's own `METADATA`).

use super::{CachedFile, DistFile, HashSource, IndexClient, IndexError, http, read_wheel_metadata};
use crate::cache::{sha256_bytes, sha256_file, write_atomic};
use crate::metadata::CoreMetadata;
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

impl IndexClient {
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
        let url = Url::parse(&file.url)
            .map_err(|e| IndexError::transfer(&file.url, format!("invalid URL: {e}")))?;
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
        let url = Url::parse(&url_text)
            .map_err(|e| IndexError::transfer(&url_text, format!("invalid URL: {e}")))?;
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
