//! Bytecode of in-tree backends (`backend-path`): a backend that builds itself (setuptools,
//! hatchling, flit-core, pdm-backend, poetry-core) or a project's own build script is never
//! prepared, and without bytecode every hook run compiles its modules from source again;
//! in the guest that is a fifth to a quarter of such a build.
//!
//! Before a step's first hook run the host lists the `.py` files below `backend-path` in
//! the staged tree, keyed by path and bytes ([`backend_sources`]), and copies the bytecode
//! the cache holds for those keys into a folder of the step, mounted read-only at
//! [`GUEST_DIR`]. The runner imports a module below `backend-path` from there only under
//! the key of the file it is about to import; anything else it compiles from source, as
//! before, and names it. After the step has built its artifact, the named files are
//! compiled for later builds by a run of `guest/compile_sources.py`: stdlib code that only
//! calls `compile()` on the bytes whose key the host computed, never runs the project's code,
//! and whose output the host takes only under those keys.
//!
//! A file is compiled the second time a build names it, not the first: the first time only
//! an empty entry records that it was seen. A source built once (a registry building each
//! upload, say) costs nothing more than before; one built again and again pays one compile
//! run, in its second build, and imports from bytecode from the third on.
//!
//! Bytecode decides what the guest computes, so it is kept like a build environment: in the
//! user's private cache, each entry behind a header tagged with the cache's seal key and
//! checked against its content before every use ([`cache::read_tagged_bytes`]). A step
//! sees only the bytecode of its own files.

use crate::protocol::{guest_paths, read_guest_file};
use crate::runtime::Runtime;
use crate::sandbox::{GuestRun, Limits, Mount, Sandbox};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasm_build_packaging::backend_sources::{self, BackendSource, MAX_SOURCE_BYTES};
use wasm_build_packaging::cache::{self, Bucket, Cache, SealKey};

/// Bumped whenever what goes into an entry changes, so old entries are not reused.
const FORMAT: &str = "backend-bytecode-1";
/// The guest script that compiles the files the runs named.
const COMPILE_SOURCES: &str = include_str!("../../guest/compile_sources.py");
/// Where hook runs find the step's bytecode.
pub(crate) const GUEST_DIR: &str = "/wasm-build/bytecode";
/// One module's bytecode above this is not kept (marshalled code is 1–3× its source for
/// real modules, up to ~12× for contrived ones).
const MAX_MODULE_BYTES: u64 = 16 << 20;
/// The bytecode of a step's sources, together, is kept and offered up to this much: what
/// the scratch budget counts for the step's folder, and again for the compile run's output.
pub(crate) const MAX_STEP_BYTES: u64 = 2 * MAX_SOURCE_BYTES;
/// The compile run's time limit, when `--timeout` is longer: it compiles what the hook runs
/// just compiled, in a fraction of their time.
const MAX_COMPILE_TIME: Duration = Duration::from_secs(60);
/// The entry of a source that does not compile cleanly (it fails or warns): kept so that
/// no later build tries again; never offered.
const UNCOMPILABLE: &[u8] = b"\0";

/// The in-tree backend's bytecode in one step.
pub(crate) struct StepBytecode {
    /// The step's folder of `<source key>` files, mounted read-only at [`GUEST_DIR`].
    folder: tempfile::TempDir,
    sources: Vec<BackendSource>,
    /// Keys of the sources the cache had an entry for that is neither "seen" nor missing:
    /// their bytecode (offered when it fit in [`MAX_STEP_BYTES`]), or [`UNCOMPILABLE`].
    known: HashSet<String>,
    /// Keys of the sources an earlier build named without bytecode (an empty entry).
    seen: HashSet<String>,
    /// How many sources' bytecode the step's folder holds.
    offered: usize,
    /// The bytes of bytecode the cache holds for the step's sources.
    cached_bytes: u64,
    bucket: PathBuf,
    seal_key: SealKey,
    module_sha256: String,
}

impl StepBytecode {
    /// The bytecode for the tree at `tree` (seen by the guest at `guest_root`) of a
    /// backend at `backend_path`, in a folder made in `scratch`; `Err(why not)` when there
    /// is none to offer (no backend-path, no Python files, too many, an unreadable cache).
    pub(crate) fn gather(
        cache: &Cache,
        runtime: &Runtime,
        tree: &Path,
        guest_root: &str,
        backend_path: &[String],
        scratch: &Path,
    ) -> Result<StepBytecode, String> {
        if backend_path.is_empty() {
            return Err("the backend is not in the tree".into());
        }
        let sources =
            backend_sources::collect(tree, guest_root, backend_path, pyc_tag(runtime).as_deref())
                .map_err(|e| e.to_string())?;
        if sources.is_empty() {
            return Err("no Python files below backend-path".into());
        }
        let found = || -> Result<StepBytecode> {
            let folder = tempfile::Builder::new()
                .prefix("bytecode-")
                .tempdir_in(scratch)
                .context("creating the step's bytecode folder")?;
            let mut step = StepBytecode {
                folder,
                sources,
                known: HashSet::new(),
                seen: HashSet::new(),
                offered: 0,
                cached_bytes: 0,
                bucket: cache.bucket(Bucket::Bytecode)?,
                seal_key: cache.seal_key()?.clone(),
                module_sha256: runtime.module_sha256.clone(),
            };
            step.copy_cached()?;
            Ok(step)
        };
        found().map_err(|e| format!("{e:#}"))
    }

    /// Copies what the cache holds for the step's sources into its folder, up to
    /// [`MAX_STEP_BYTES`] (what does not fit is known, not offered: the guest compiles it).
    fn copy_cached(&mut self) -> Result<()> {
        for source in &self.sources {
            let (entry, label) = self.entry(&source.key);
            let Some(bytes) =
                cache::read_tagged_bytes(&entry, &self.seal_key, &label, MAX_MODULE_BYTES)
            else {
                continue;
            };
            // Best effort: only `cache prune`'s choice depends on it.
            let _ = File::options()
                .append(true)
                .open(&entry)
                .and_then(|f| f.set_modified(SystemTime::now()));
            if bytes.is_empty() {
                self.seen.insert(source.key.clone());
                continue;
            }
            self.known.insert(source.key.clone());
            if bytes == UNCOMPILABLE {
                continue;
            }
            self.cached_bytes += bytes.len() as u64;
            if self.cached_bytes > MAX_STEP_BYTES {
                continue;
            }
            let path = self.folder.path().join(&source.key);
            fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            self.offered += 1;
        }
        Ok(())
    }

    /// The cache entry of a source key for this runtime, and what its tag is about.
    fn entry(&self, source_key: &str) -> (PathBuf, String) {
        let key = cache::sha256_bytes(
            format!("{FORMAT}\n{}\n{source_key}\n", self.module_sha256).as_bytes(),
        );
        let path = self.bucket.join(&key[..2]).join(&key);
        (path, format!("bytecode {key}"))
    }

    /// The read-only mount of the step's bytecode.
    pub(crate) fn mount(&self) -> Mount {
        Mount::read_only(self.folder.path(), GUEST_DIR)
    }

    /// Of the step's sources that the runs compiled from source (`reported`, guest paths
    /// as the runner named them: only those the host listed count), in the tree at `tree`:
    /// compiles those an earlier build named too and keeps their bytecode for later builds,
    /// and records the others as seen.
    pub(crate) fn compile_reported(
        &self,
        sandbox: &Sandbox,
        tree: &Path,
        guest_root: &str,
        reported: &HashSet<String>,
        limits: &Limits,
    ) -> Result<Compiled> {
        let (wanted, first_seen): (Vec<&BackendSource>, Vec<&BackendSource>) = self
            .sources
            .iter()
            .filter(|s| !self.known.contains(&s.key) && reported.contains(&s.guest_path))
            .partition(|s| self.seen.contains(&s.key));
        for source in &first_seen {
            self.store(&source.key, b"")?;
        }
        let mut compiled = Compiled {
            first_seen: first_seen.len(),
            ..Compiled::default()
        };
        // The output must fit the run's disk limit too, beside the list of what to compile.
        let headroom = 16 << 20;
        let room = MAX_STEP_BYTES
            .saturating_sub(self.cached_bytes)
            .min(limits.disk.saturating_sub(headroom));
        if wanted.is_empty() || room == 0 {
            return Ok(compiled);
        }
        let run_dir = tempfile::Builder::new()
            .prefix("compile-")
            .tempdir_in(self.folder.path().parent().unwrap_or(self.folder.path()))
            .context("creating the compile run's folder")?;
        let (out, tmp) = (run_dir.path().join("out"), run_dir.path().join("tmp"));
        for dir in [&out, &tmp] {
            fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let listing: Vec<[&str; 2]> = wanted
            .iter()
            .map(|s| [s.guest_path.as_str(), s.key.as_str()])
            .collect();
        fs::write(tmp.join("sources.json"), serde_json::to_vec(&listing)?)
            .context("writing the list of sources to compile")?;
        let run = GuestRun::script(
            COMPILE_SOURCES,
            &[
                &format!("{}/sources.json", guest_paths::TMP),
                guest_paths::OUT,
                &room.to_string(),
                &MAX_MODULE_BYTES.to_string(),
            ],
            vec![
                Mount::read_only(tree, guest_root),
                Mount::read_write(&out, guest_paths::OUT),
                Mount::read_write(&tmp, guest_paths::TMP),
            ],
            Limits {
                wall_time: limits.wall_time.min(MAX_COMPILE_TIME),
                disk: limits.disk.min(room + headroom),
                ..limits.clone()
            },
        );
        compiled.failure = match sandbox.run(&run) {
            Ok(exit) if exit.code == 0 => None,
            Ok(exit) => Some(format!(
                "the compile run exited with {}: {}",
                exit.code,
                String::from_utf8_lossy(&exit.log)
            )),
            Err(error) => Some(error.to_string()),
        };
        // Each `<key>` the run finished is whole (it writes through a temporary name), also
        // when it was stopped; it works through the list in order.
        let mut stopped_at_first_unfinished = compiled.failure.is_some();
        for source in wanted {
            // The run's folder is the guest's: a name is taken only as a regular file.
            match read_guest_file(&out, &source.key, MAX_MODULE_BYTES)? {
                Some(bytes) if bytes == UNCOMPILABLE => self.store(&source.key, UNCOMPILABLE)?,
                Some(bytes) if !bytes.is_empty() => {
                    self.store(&source.key, &bytes)?;
                    compiled.compiled += 1;
                }
                // The file the failed run was compiling is not tried again; the ones after
                // it are, by the next build that names them.
                _ if stopped_at_first_unfinished => {
                    self.store(&source.key, UNCOMPILABLE)?;
                    stopped_at_first_unfinished = false;
                }
                // Changed by a hook: compiled when a build names it again.
                _ => {}
            }
        }
        Ok(compiled)
    }

    /// Writes the cache entry of a source key: its bytecode, empty for "seen", or
    /// [`UNCOMPILABLE`].
    fn store(&self, source_key: &str, bytes: &[u8]) -> Result<()> {
        let (entry, label) = self.entry(source_key);
        if let Some(parent) = entry.parent() {
            cache::create_private_dir(parent)?;
        }
        cache::write_tagged_bytes(&entry, &self.seal_key, &label, bytes)
    }

    /// How many sources the step has, and how many of them its folder offers bytecode for.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.sources.len(), self.offered)
    }
}

/// What [`StepBytecode::compile_reported`] did.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    /// Sources compiled and kept for later builds.
    pub compiled: usize,
    /// Sources recorded as seen, to be compiled when a build names them again.
    pub first_seen: usize,
    /// Why the compile run failed, when it did (what it finished is kept).
    pub failure: Option<String>,
}

/// The interpreter's `sys.implementation.cache_tag` (`cpython-313`), when its version is
/// known.
fn pyc_tag(runtime: &Runtime) -> Option<String> {
    let mut parts = runtime.python_version.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && numeric(minor)).then(|| format!("cpython-{major}{minor}"))
}

/// Removes bytecode not used for `max_age`; the bytes freed.
pub(crate) fn prune(cache: &Cache, max_age: Duration) -> Result<u64> {
    use crate::cache_files::{entries, older_than, remove};
    let mut freed = 0;
    for (name, shard) in entries(&cache.bucket(Bucket::Bytecode)?)? {
        if name.starts_with('.') || !shard.is_dir() {
            continue;
        }
        for (_, entry) in entries(&shard)? {
            if older_than(&entry, max_age) {
                freed += remove(&entry)?;
            }
        }
        // An emptied shard goes too (another process may have just filled it: keep it then).
        let _ = fs::remove_dir(&shard);
    }
    Ok(freed)
}

#[cfg(test)]
mod tests;
