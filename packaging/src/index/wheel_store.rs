//! Downloaded distribution files, content-addressed by sha256:
//! `wheels-v1/sha256/<first two hex digits>/<sha256>/<filename>`.
//!
//! An entry only ever appears by an atomic rename of a fully written and hash-checked
//! temporary file, and it is hashed again when first used by a process: a damaged entry is
//! removed and fetched anew. Files an index lists without a hash are recorded by URL
//! (`wheels-v1/urls/<sha256 of the URL>`) so they can be found again, offline too.

use super::IndexError;
use super::simple::{is_plain_filename, is_sha256_hex};
use crate::cache::{FileLock, create_private_dir, sha256_bytes, sha256_file, write_atomic};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

#[derive(Debug, Clone)]
pub(crate) struct WheelStore {
    root: PathBuf,
}

impl WheelStore {
    pub fn new(root: PathBuf) -> Result<Self, IndexError> {
        for sub in ["sha256", "urls", "locks"] {
            create_private_dir(&root.join(sub)).map_err(|e| IndexError::cache("creating", e))?;
        }
        Ok(Self { root })
    }

    /// Where the file `filename` with this sha256 lives.
    pub fn entry_path(&self, sha256: &str, filename: &str) -> Result<PathBuf, IndexError> {
        let lower_hex = is_sha256_hex(sha256) && !sha256.bytes().any(|b| b.is_ascii_uppercase());
        if !lower_hex || !is_plain_filename(filename) {
            return Err(IndexError::InvalidFileName {
                filename: filename.to_string(),
            });
        }
        Ok(self
            .root
            .join("sha256")
            .join(&sha256[..2])
            .join(sha256)
            .join(filename))
    }

    /// Whether an entry for (sha256, filename) exists, without checking its contents (which
    /// [`Self::verified`] does when it is used).
    pub fn contains(&self, sha256: &str, filename: &str) -> bool {
        self.entry_path(sha256, filename)
            .is_ok_and(|path| path.is_file())
    }

    /// The entry for (sha256, filename) if it exists and its contents still hash to sha256.
    /// A damaged entry is removed so that it is fetched again.
    pub fn verified(&self, sha256: &str, filename: &str) -> Result<Option<PathBuf>, IndexError> {
        let path = self.entry_path(sha256, filename)?;
        if !path.is_file() {
            return Ok(None);
        }
        match sha256_file(&path) {
            Ok((actual, _)) if actual == sha256 => Ok(Some(path)),
            _ => {
                // Damaged (or unreadable): drop it; the caller fetches it again.
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// Takes the lock that serializes fetching one entry across processes.
    pub fn lock(&self, key: &str) -> Result<FileLock, IndexError> {
        let name = sha256_bytes(key.as_bytes());
        FileLock::acquire(self.root.join("locks").join(format!("{name}.lock")))
            .map_err(|e| IndexError::cache("locking the wheel cache", e))
    }

    /// A temporary file on the same file system as the entries.
    pub fn temp_file(&self) -> Result<NamedTempFile, IndexError> {
        tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&self.root)
            .map_err(|e| IndexError::Io {
                action: format!("creating a temporary file in {}", self.root.display()),
                error: e,
            })
    }

    /// Moves a fully written and checked temporary file into place.
    pub fn publish(
        &self,
        tmp: NamedTempFile,
        sha256: &str,
        filename: &str,
    ) -> Result<PathBuf, IndexError> {
        let dest = self.entry_path(sha256, filename)?;
        let parent = dest.parent().unwrap_or(&self.root);
        create_private_dir(parent).map_err(|e| IndexError::cache("creating", e))?;
        tmp.as_file().sync_all().map_err(|e| IndexError::Io {
            action: format!("syncing the download of {filename}"),
            error: e,
        })?;
        tmp.persist(&dest).map_err(|e| IndexError::Io {
            action: format!("moving {filename} into the cache at {}", dest.display()),
            error: e.error,
        })?;
        Ok(dest)
    }

    /// The sha256 recorded for a file downloaded from `url` that its index gave no hash for.
    pub fn recorded_hash(&self, url: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.url_record_path(url)).ok()?;
        let hash = text.trim();
        is_sha256_hex(hash).then(|| hash.to_string())
    }

    /// Records the sha256 computed for a file downloaded from `url`.
    pub fn record_hash(&self, url: &str, sha256: &str) -> Result<(), IndexError> {
        write_atomic(&self.url_record_path(url), sha256.as_bytes())
            .map_err(|e| IndexError::cache("recording a download", e))
    }

    fn url_record_path(&self, url: &str) -> PathBuf {
        self.root.join("urls").join(sha256_bytes(url.as_bytes()))
    }

    /// Copies a local file into the store, checking that it still hashes to `sha256`.
    pub fn import_local(
        &self,
        source: &Path,
        sha256: &str,
        filename: &str,
    ) -> Result<PathBuf, IndexError> {
        let tmp = self.temp_file()?;
        let io = |e| IndexError::Io {
            action: format!("copying {} into the cache", source.display()),
            error: e,
        };
        std::fs::copy(source, tmp.path()).map_err(io)?;
        let (actual, _) = sha256_file(tmp.path()).map_err(|e| IndexError::cache("hashing", e))?;
        if actual != sha256 {
            return Err(IndexError::HashMismatch {
                filename: filename.to_string(),
                url: source.display().to_string(),
                expected: sha256.to_string(),
                actual,
            });
        }
        self.publish(tmp, sha256, filename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const CONTENT: &[u8] = b"wheel bytes";

    fn store() -> (tempfile::TempDir, WheelStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = WheelStore::new(dir.path().join("wheels-v1")).unwrap();
        (dir, store)
    }

    #[test]
    fn entries_are_content_addressed_and_checked_on_read() {
        let (_dir, store) = store();
        let hash = sha256_bytes(CONTENT);
        let mut tmp = store.temp_file().unwrap();
        tmp.write_all(CONTENT).unwrap();
        let path = store.publish(tmp, &hash, "a-1.0-py3-none-any.whl").unwrap();
        assert!(path.ends_with(format!(
            "sha256/{}/{hash}/a-1.0-py3-none-any.whl",
            &hash[..2]
        )));
        assert_eq!(
            store.verified(&hash, "a-1.0-py3-none-any.whl").unwrap(),
            Some(path.clone())
        );
        // Damage the entry: it is detected and removed.
        std::fs::write(&path, b"tampered").unwrap();
        assert_eq!(
            store.verified(&hash, "a-1.0-py3-none-any.whl").unwrap(),
            None
        );
        assert!(!path.exists());
    }

    #[test]
    fn refuses_unsafe_names() {
        let (_dir, store) = store();
        let hash = sha256_bytes(CONTENT);
        assert!(store.entry_path(&hash, "../escape.whl").is_err());
        assert!(store.entry_path("../../etc", "a.whl").is_err());
    }

    #[test]
    fn url_records() {
        let (_dir, store) = store();
        let hash = sha256_bytes(CONTENT);
        assert_eq!(store.recorded_hash("https://x/a.whl"), None);
        store.record_hash("https://x/a.whl", &hash).unwrap();
        assert_eq!(store.recorded_hash("https://x/a.whl"), Some(hash));
    }

    #[test]
    fn import_checks_the_hash() {
        let (dir, store) = store();
        let source = dir.path().join("a-1.0-py3-none-any.whl");
        std::fs::write(&source, CONTENT).unwrap();
        let wrong = sha256_bytes(b"other");
        let err = store
            .import_local(&source, &wrong, "a-1.0-py3-none-any.whl")
            .unwrap_err();
        assert!(matches!(err, IndexError::HashMismatch { .. }), "{err}");
        assert_eq!(
            store.verified(&wrong, "a-1.0-py3-none-any.whl").unwrap(),
            None
        );
        let hash = sha256_bytes(CONTENT);
        store
            .import_local(&source, &hash, "a-1.0-py3-none-any.whl")
            .unwrap();
        assert!(
            store
                .verified(&hash, "a-1.0-py3-none-any.whl")
                .unwrap()
                .is_some()
        );
    }
}
