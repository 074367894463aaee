//! The seal key: a secret outside the cache that what the cache holds is verified against.
//!
//! A checksum or seal stored beside a cache entry proves nothing to someone who can write
//! the entry: they write both. So every record that stands for content (the checksum of a
//! compiled module, the seal of a checked file or tree, the manifest of a build
//! environment) carries an HMAC-SHA256 tag under a 32-byte random key kept in a user-only
//! file outside the cache (`$XDG_STATE_HOME/wasm-build/seal-key`, else
//! `~/.local/state/wasm-build/seal-key`). A record whose tag does not verify is no record:
//! the entry is checked by content again, or made again. A temporary cache gets a key that
//! lives only in the process.

use super::folders::{self, Place, UnsafeFolder};
use crate::archive::fs::{open_dir_path, open_regular_file};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The key file's name in its folder.
pub const SEAL_KEY_FILE: &str = "seal-key";
/// Separates these tags from any other use of the key.
const DOMAIN: &[u8] = b"wasm-build cache record v1\0";
/// Bytes of key.
const LEN: usize = 32;

/// The secret the cache's records are tagged with.
#[derive(Clone)]
pub struct SealKey([u8; LEN]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Why the seal key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error(transparent)]
    Folder(#[from] UnsafeFolder),
    #[error(
        "the cache's seal key {} belongs to uid {owner}, not to you; remove it (wasm-build \
         makes a new one, and makes its cached compiled code again)",
        path.display()
    )]
    Owner { path: PathBuf, owner: u32 },
    #[error(
        "the cache's seal key {} can be read or written by other users (mode {mode:04o}), who \
         could forge what the cache holds; remove it (wasm-build makes a new one, and makes \
         its cached compiled code again)",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the cache's seal key {} is damaged (not 64 hex digits); remove it (wasm-build makes a \
         new one, and makes its cached compiled code again)",
        path.display()
    )]
    Damaged { path: PathBuf },
    #[error("cannot read or make the cache's seal key {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no randomness for a new seal key")]
    Random(#[source] getrandom::Error),
    #[error("cannot find where to keep the cache's seal key: set XDG_STATE_HOME or HOME")]
    NoStateFolder,
}

impl SealKey {
    /// The key in `file`, made (0600, in a 0700 folder, atomically) if there is none yet.
    /// Refuses a key or folder another user could read or change.
    pub fn load_or_create(file: &Path) -> Result<Self, SealKeyError> {
        let io_error = |source| SealKeyError::Io {
            path: file.to_path_buf(),
            source,
        };
        let dir = file.parent().ok_or(SealKeyError::NoStateFolder)?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or(SealKeyError::NoStateFolder)?;
        super::create_private_dir(dir).map_err(|e| io_error(io::Error::other(format!("{e:#}"))))?;
        folders::check_own(dir, Place::SealKey, true)?;
        folders::check_above(dir, Place::SealKey)?;
        let dir_fd = open_dir_path(dir).map_err(io_error)?;
        loop {
            match open_regular_file(&dir_fd, name) {
                Ok((file_handle, stat)) => return Self::read(file, file_handle, &stat),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e)),
            }
            match Self::create(dir, file) {
                Ok(()) => {}
                // Another process made it first: read theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// A key that lives only in this process (for a temporary cache).
    pub fn ephemeral() -> Result<Self, SealKeyError> {
        let mut key = [0u8; LEN];
        getrandom::fill(&mut key).map_err(SealKeyError::Random)?;
        Ok(Self(key))
    }

    fn create(dir: &Path, file: &Path) -> io::Result<()> {
        let key = Self::ephemeral().map_err(io::Error::other)?;
        // tempfile makes the file 0600; it appears under its name complete, or not at all.
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-seal-key-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        tmp.write_all(format!("{}\n", super::hex(&key.0)).as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(file).map_err(|e| e.error)?;
        Ok(())
    }

    fn read(
        path: &Path,
        file: std::fs::File,
        stat: &rustix::fs::Stat,
    ) -> Result<Self, SealKeyError> {
        if stat.st_uid != folders::euid() {
            return Err(SealKeyError::Owner {
                path: path.to_path_buf(),
                owner: stat.st_uid,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SealKeyError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        file.take(256)
            .read_to_string(&mut text)
            .map_err(|source| SealKeyError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let damaged = || SealKeyError::Damaged {
            path: path.to_path_buf(),
        };
        let bytes = unhex(text.trim_end_matches('\n')).ok_or_else(damaged)?;
        Ok(Self(bytes.try_into().map_err(|_| damaged())?))
    }

    /// The tag of `value` recorded as `label` (which names what the record is about, so
    /// that a record cannot be moved to another entry), as lower-case hex.
    pub fn tag(&self, label: &str, value: &str) -> String {
        super::hex(&self.mac(label, value).finalize().into_bytes())
    }

    /// Whether `tag` is [`Self::tag`]`(label, value)`, compared in constant time.
    pub fn verify(&self, label: &str, value: &str, tag: &str) -> bool {
        unhex(tag).is_some_and(|tag| self.mac(label, value).verify_slice(&tag).is_ok())
    }

    fn mac(&self, label: &str, value: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(&(label.len() as u64).to_le_bytes());
        mac.update(label.as_bytes());
        mac.update(value.as_bytes());
        mac
    }
}

/// Where the user's seal key lives: `$XDG_STATE_HOME/wasm-build/seal-key`, else
/// `~/.local/state/wasm-build/seal-key` (outside the cache, which it vouches for).
pub fn default_seal_key_file() -> Result<PathBuf, SealKeyError> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let state = match absolute("XDG_STATE_HOME") {
        Some(dir) => dir,
        None => absolute("HOME")
            .ok_or(SealKeyError::NoStateFolder)?
            .join(".local/state"),
    };
    Ok(state.join("wasm-build").join(SEAL_KEY_FILE))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_key_is_made_once_private_and_then_read() {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join("deep/wasm-build").join(SEAL_KEY_FILE);
        let made = SealKey::load_or_create(&file).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let again = SealKey::load_or_create(&file).unwrap();
        assert_eq!(made.0, again.0);
        assert_ne!(made.0, SealKey::ephemeral().unwrap().0);
        // Nothing but the key is left in its folder.
        assert_eq!(fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_key_others_could_read_or_a_damaged_one_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join(SEAL_KEY_FILE);
        SealKey::load_or_create(&file).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let message = SealKey::load_or_create(&file).unwrap_err().to_string();
        assert!(
            message.contains("(mode 0640)") && message.contains("remove it"),
            "{message}"
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&file, "not a key\n").unwrap();
        assert!(matches!(
            SealKey::load_or_create(&file),
            Err(SealKeyError::Damaged { .. })
        ));
        // A link in its place is not followed.
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
        assert!(SealKey::load_or_create(&file).is_err());
    }

    #[test]
    fn a_key_in_a_folder_others_can_write_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("wasm-build");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let message = SealKey::load_or_create(&dir.join(SEAL_KEY_FILE))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("chmod go-w {}", dir.display()))
                && message.contains("XDG_STATE_HOME"),
            "{message}"
        );
    }

    #[test]
    fn tags_bind_the_key_the_label_and_the_value() {
        let key = SealKey::ephemeral().unwrap();
        let tag = key.tag("compiled module a.cwasm", "abc");
        assert_eq!(tag.len(), 64);
        assert!(key.verify("compiled module a.cwasm", "abc", &tag));
        assert!(!key.verify("compiled module b.cwasm", "abc", &tag));
        assert!(!key.verify("compiled module a.cwasm", "abd", &tag));
        // The label's length is part of the tag: moving bytes between label and value
        // does not keep it.
        assert!(!key.verify("compiled module a.cwasma", "bc", &tag));
        assert!(
            !SealKey::ephemeral()
                .unwrap()
                .verify("compiled module a.cwasm", "abc", &tag)
        );
        assert!(!key.verify("compiled module a.cwasm", "abc", "not hex"));
        assert!(!key.verify("compiled module a.cwasm", "abc", ""));
    }

    #[test]
    fn a_tag_is_hmac_sha256() {
        // Computed independently with Python's hmac module over the same framing:
        // hmac.new(key, DOMAIN + (1).to_bytes(8, "little") + b"l" + b"v", "sha256")
        let key = SealKey(*b"0123456789abcdef0123456789abcdef");
        assert_eq!(
            key.tag("l", "v"),
            "098d19a6424c8c37b1f0966c7624013841136e7194a832d2c72f4e461bd0eab0"
        );
    }
}
