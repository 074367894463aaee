//! `wasm-build cache clean` and `cache prune`: each owner of cache files prunes its own
//! (`env`, `prepared`, `runtime`, `sandbox`); this removes what belongs to nobody, and the
//! scratch folders that killed processes left in `$TMPDIR` or in memory.

use crate::cache_files::{self, entries, older_than};
use crate::{env, prepared, runtime, sandbox};
use anyhow::{Context, Result};
use std::time::Duration;
use wasm_build_packaging::cache::{Bucket, Cache};
use wasm_build_packaging::tempdirs::{self, Swept, place};

/// Staging folders older than this are leftovers of an interrupted process.
const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Removes everything in the cache; returns the bytes freed.
pub fn clean(cache: &Cache) -> Result<u64> {
    let mut freed = 0;
    for (_, path) in entries(cache.root())? {
        freed += cache_files::remove(&path)?;
    }
    Ok(freed)
}

/// Removes build environments and in-tree backends' bytecode unused for `max_age` (with
/// the environments' prepared backends), compiled
/// modules and runtimes that no runtime of this binary's catalog uses, and leftovers of
/// interrupted writes. Returns the bytes freed.
pub fn prune(cache: &Cache, max_age: Duration) -> Result<u64> {
    let mut freed = 0;
    for bucket in Bucket::ALL {
        for (name, path) in entries(&cache.bucket(bucket)?)? {
            if name.starts_with(".tmp") && older_than(&path, STALE_STAGING) {
                freed += cache_files::remove(&path)?;
            }
        }
    }
    freed += env::prune(cache, max_age)?;
    freed += crate::backend_bytecode::prune(cache, max_age)?;
    freed += prepared::prune(cache)?;
    freed += runtime::prune(cache)?;
    freed += sandbox::prune_compiled(cache)?;
    Ok(freed)
}

/// Removes the folders that wasm-build processes which ended without cleaning up (killed,
/// crashed) left in `$TMPDIR` and in the memory folder scratch folders may go into
/// (`/dev/shm`): scratch folders, empty roots, `runtime run` folders, throw-away caches.
/// Only this user's, and only those no live process holds (see [`tempdirs`]). Returns what
/// was removed and the folders swept.
pub fn prune_scratch() -> Result<(Swept, Vec<String>)> {
    let tmp = std::env::temp_dir();
    let mut swept = tempdirs::sweep_stale(&tmp)?;
    let mut folders = vec![tmp.display().to_string()];
    if let Some(memory) = place::memory_folder()
        && memory != tmp
    {
        let more = tempdirs::sweep_stale(&memory)
            .with_context(|| format!("removing stale scratch folders in {}", memory.display()))?;
        swept.folders += more.folders;
        swept.bytes += more.bytes;
        folders.push(memory.display().to_string());
    }
    Ok((swept, folders))
}
