//! Removing what the cache no longer needs: the primitives each cache owner (runtimes,
//! compiled modules, build environments, prepared backends) prunes its own files with.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The entries of a cache folder as (name, path), skipping names that are not UTF-8.
pub(crate) fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            entries.push((name.to_string(), entry.path()));
        }
    }
    Ok(entries)
}

/// Whether `path` (not followed) was last modified more than `age` ago.
pub(crate) fn older_than(path: &Path, age: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).is_ok_and(|d| d > age))
}

/// Removes a file or folder (never following links) and returns the bytes it held.
pub(crate) fn remove(path: &Path) -> Result<u64> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let size = wasm_build_packaging::scratch::usage(path, |_| false).map_or(0, |u| u.bytes);
        make_writable(path);
        fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(size)
    } else {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(meta.len())
    }
}

/// Removes `path` if it exists; the bytes freed.
pub(crate) fn remove_if_present(path: &Path) -> Result<u64> {
    match fs::symlink_metadata(path) {
        Ok(_) => remove(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Cache folders are the host's own; a read-only folder inside one must not stop removal.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(kind) = entry.file_type()
                && kind.is_dir()
            {
                let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
                make_writable(&entry.path());
            }
        }
    }
}
