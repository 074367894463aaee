//! `wasm-build cache …` and `wasm-build runtime info`.

use crate::runtime::{Catalog, SourceKind};
use crate::sandbox;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};
use wasm_build_packaging::cache::{Bucket, Cache};

/// Staging folders older than this are leftovers of an interrupted process.
const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Removes everything in the cache; returns the bytes freed.
pub fn clean(cache: &Cache) -> Result<u64> {
    let mut freed = 0;
    for entry in read_dir(cache.root())? {
        freed += remove(&entry)?;
    }
    Ok(freed)
}

/// Removes build environments unused for `max_age` (with their prepared backends), compiled
/// modules and runtimes that no runtime of this binary's catalog uses, and leftovers of
/// interrupted writes.
pub fn prune(cache: &Cache, max_age: Duration) -> Result<u64> {
    let now = SystemTime::now();
    let older_than = |path: &Path, age: Duration| {
        fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
    };
    let mut freed = 0;
    for bucket in Bucket::ALL {
        let dir = cache.bucket(bucket)?;
        for entry in read_dir(&dir)? {
            let name = file_name(&entry);
            if name.starts_with(".tmp") && older_than(&entry, STALE_STAGING) {
                freed += remove(&entry)?;
            }
        }
    }

    // Build environments: a folder per key, with `<key>.seal` and `<key>.lock` beside it.
    let envs = cache.bucket(Bucket::Envs)?;
    for entry in read_dir(&envs)? {
        let name = file_name(&entry);
        if name.starts_with('.') || !entry.is_dir() {
            continue;
        }
        let stamp = entry.join("last-used");
        let last_used = if stamp.exists() { stamp } else { entry.clone() };
        if older_than(&last_used, max_age) {
            freed += remove(&entry)?;
            for extra in ["seal", "lock"] {
                let path = envs.join(format!("{name}.{extra}"));
                if path.exists() {
                    freed += remove(&path)?;
                }
            }
        }
    }

    // Prepared backends, `<env key>-<image key>.<ext>`: they go with their environment.
    let prepared = cache.bucket(Bucket::Prepared)?;
    for entry in read_dir(&prepared)? {
        let name = file_name(&entry);
        let env = name.split('-').next().unwrap_or_default();
        if !name.starts_with('.') && !envs.join(env).is_dir() {
            freed += remove(&entry)?;
        }
    }

    let catalog = Catalog::builtin()?;
    let runtimes = cache.bucket(Bucket::Runtimes)?;
    let wanted: Vec<String> = catalog
        .runtimes
        .iter()
        .map(|(id, spec)| format!("{id}-{}", &spec.module.sha256[..16]))
        .collect();
    for entry in read_dir(&runtimes)? {
        let name = file_name(&entry);
        if entry.is_dir() && !name.starts_with('.') && !wanted.contains(&name) {
            freed += remove(&entry)?;
        }
    }

    let compiled = cache.bucket(Bucket::Compiled)?;
    let keys = sandbox::current_compiled_keys(
        catalog
            .runtimes
            .values()
            .map(|spec| spec.module.sha256.as_str()),
    )?;
    for entry in read_dir(&compiled)? {
        let name = file_name(&entry);
        let key = name.split('.').next().unwrap_or_default();
        if !name.starts_with('.') && !keys.iter().any(|k| k == key) {
            freed += remove(&entry)?;
        }
    }
    Ok(freed)
}

/// A description of the catalog's runtimes (or one of them) and of the engine.
pub fn runtime_info(only: Option<&str>) -> Result<String> {
    let catalog = Catalog::builtin()?;
    if let Some(name) = only {
        catalog.get(name)?;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wasm-build {}, wasmtime {}",
        env!("CARGO_PKG_VERSION"),
        sandbox::wasmtime_version()
    );
    let _ = writeln!(out, "default runtime: {}", catalog.default);
    for (id, spec) in &catalog.runtimes {
        if only.is_some_and(|name| name != id) {
            continue;
        }
        let _ = writeln!(out);
        let default = if *id == catalog.default {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(out, "{id}{default}");
        let _ = writeln!(out, "  {}", spec.description);
        let _ = writeln!(out, "  python: {}", spec.python_version);
        let source = match spec.source {
            SourceKind::Embedded => "embedded in this binary".to_string(),
            SourceKind::Download => format!(
                "downloaded from a carrier wheel: {}",
                spec.carriers
                    .iter()
                    .map(|c| format!("{}=={} ({})", c.package, c.version, c.member))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = writeln!(out, "  source: {source}");
        let _ = writeln!(
            out,
            "  module: sha256 {} ({} bytes)",
            spec.module.sha256, spec.module.size
        );
        if let Some(stdlib) = &spec.stdlib {
            let _ = writeln!(
                out,
                "  stdlib: manifest sha256 {} ({} files, {} bytes)",
                stdlib.manifest_sha256, stdlib.files, stdlib.size
            );
        }
        if let Some(provenance) = &spec.provenance {
            let _ = writeln!(out, "  provenance:");
            let text = match provenance {
                toml::Value::Table(table) => {
                    toml::to_string_pretty(table).context("formatting the provenance")?
                }
                other => format!("{other}\n"),
            };
            for line in text.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    Ok(out)
}

fn read_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        entries.push(
            entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path(),
        );
    }
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes a file or folder (never following links) and returns the bytes it held.
fn remove(path: &Path) -> Result<u64> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let size = sandbox::disk_usage(path);
        make_writable(path);
        fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(size)
    } else {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(meta.len())
    }
}

/// Cache folders are the host's own; a read-only folder inside one must not stop removal.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata()
                && meta.is_dir()
            {
                let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
                make_writable(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_every_runtime_and_wasmtime() {
        let info = runtime_info(None).unwrap();
        assert!(info.contains("wasmtime 48."), "{info}");
        for id in Catalog::builtin().unwrap().runtimes.keys() {
            assert!(info.contains(id.as_str()), "{info}");
        }
        assert!(runtime_info(Some("no-such-runtime")).is_err());
    }

    #[test]
    fn prune_removes_old_envs_and_leftovers_only() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path()).unwrap();
        let envs = cache.bucket(Bucket::Envs).unwrap();
        for name in ["old", "fresh"] {
            fs::create_dir_all(envs.join(name).join("site-packages")).unwrap();
            fs::write(envs.join(name).join("last-used"), "").unwrap();
            fs::write(envs.join(format!("{name}.seal")), "x").unwrap();
        }
        let long_ago = SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
        fs::File::options()
            .write(true)
            .open(envs.join("old/last-used"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let prepared = cache.bucket(Bucket::Prepared).unwrap();
        for name in [
            "old-1.image",
            "old-1.sha256",
            "fresh-2.image",
            "fresh-2.refused",
        ] {
            fs::write(prepared.join(name), "x").unwrap();
        }
        prune(&cache, Duration::from_secs(30 * 24 * 3600)).unwrap();
        assert!(!envs.join("old").exists());
        assert!(!envs.join("old.seal").exists());
        assert!(envs.join("fresh").exists());
        assert!(envs.join("fresh.seal").exists());
        // Prepared backends go with their environment.
        let mut left: Vec<String> = read_dir(&prepared)
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        left.sort();
        assert_eq!(left, ["fresh-2.image", "fresh-2.refused"]);
    }
}
