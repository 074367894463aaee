//! Build environments: the resolved wheels unpacked into one site-packages folder, with
//! bytecode compiled inside the sandbox, cached by the exact set of wheels.
//!
//! An environment is made once (under a lock, in a staging folder renamed into place) and
//! then only ever mounted read-only. Before each reuse its fingerprint is compared with the
//! seal recorded when it was made; a changed environment is checked by content and rebuilt
//! if it no longer matches. The seal and the content manifest are tagged with the cache's
//! seal key, so a manifest or seal written by anyone else does not count.

use crate::integrity::{self, SealedTree, TreeState};
use crate::protocol::guest_paths;
use crate::reporter::{Event, Reporter, Warning};
use crate::runtime::Runtime;
use crate::sandbox::{GuestRun, LimitHit, Limits, Mount, Sandbox, SandboxError};
use anyhow::{Context, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasm_build_packaging::cache::{self, Bucket, Cache, FileLock, SealKey};
use wasm_build_packaging::install::SitePackages;
use wasm_build_packaging::resolve::ResolvedPackage;

/// Bumped whenever the layout or the bytecode step changes, so old entries are not reused.
const FORMAT: &str = "wasm-build-env-v1";
/// Unpacked size of all wheels of one environment together: a guard against archives
/// that decompress without end, far above any real build backend.
const MAX_ENV_BYTES: u64 = 2 << 30;
/// Where the environment is mounted while its bytecode is compiled; the same path as in
/// hook runs, so the `.pyc` files name the right source paths.
const GUEST_ENV: &str = guest_paths::ENV;
/// The guest script that compiles one part of an environment's modules.
const COMPILE_PART: &str = include_str!("../../guest/compile_part.py");
/// How many runs compile an environment's bytecode, at once: a fixed number, not the
/// machine's cores, so that the split and what the step may hold at once are the same
/// everywhere. Two halve the first build's wait on a machine with two cores.
const COMPILE_PARTS: usize = 2;

/// One wheel of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvWheel {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The downloaded wheel, already checked against `sha256`.
    pub path: PathBuf,
}

impl From<&ResolvedPackage> for EnvWheel {
    fn from(package: &ResolvedPackage) -> Self {
        Self {
            name: package.name.to_string(),
            version: package.version.to_string(),
            sha256: package.sha256.clone(),
            path: package.path.clone(),
        }
    }
}

/// A ready build environment.
#[derive(Debug, Clone)]
pub(crate) struct BuildEnv {
    /// The cache key: the runtime and the exact wheels.
    pub key: String,
    /// The folder mounted at `/wasm-build/env`.
    pub site_packages: PathBuf,
    /// `name==version` of each wheel, for messages.
    pub contents: Vec<String>,
}

/// Returns the environment made of exactly `wheels`, making it if the cache has no intact
/// copy; its bytecode is compiled in the sandbox within `limits`.
pub(crate) fn prepare(
    sandbox: &Sandbox,
    runtime: &Runtime,
    cache: &Cache,
    wheels: &[EnvWheel],
    limits: &Limits,
    reporter: &dyn Reporter,
) -> Result<BuildEnv> {
    let mut wheels = wheels.to_vec();
    wheels.sort_by(|a, b| a.name.cmp(&b.name));
    let key = env_key(runtime, &wheels);
    let bucket = cache.bucket(Bucket::Envs)?;
    let dir = bucket.join(&key);
    let env = BuildEnv {
        key: key.clone(),
        site_packages: dir.join("site-packages"),
        contents: wheels
            .iter()
            .map(|w| format!("{}=={}", w.name, w.version))
            .collect(),
    };
    let seal_key = cache.seal_key()?;
    if is_intact(&dir, &key, seal_key, reporter)? {
        mark_used(&dir);
        return Ok(env);
    }
    let _lock = FileLock::acquire(bucket.join(format!("{key}.lock")))?;
    if is_intact(&dir, &key, seal_key, reporter)? {
        mark_used(&dir);
        return Ok(env);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (mut staging, mut site_packages) = install(&dir, &wheels)?;
    if let Err(error) = compile_bytecode(
        sandbox,
        &site_packages,
        staging.path(),
        limits,
        COMPILE_PARTS,
    ) {
        if !hit_disk_limit(&error) {
            return Err(error);
        }
        // One part's share of the room was too small for its bytecode, which one run with
        // the whole room may still fit, as it did before the step was split: a fresh copy,
        // compiled by one run.
        drop(staging);
        (staging, site_packages) = install(&dir, &wheels)?;
        compile_bytecode(sandbox, &site_packages, staging.path(), limits, 1)?;
    }
    let manifest = integrity::manifest(&site_packages)?;
    cache::write_tagged(
        &staging.path().join("manifest.sha256"),
        seal_key,
        &manifest_label(&key),
        &manifest.sha256,
    )?;
    cache::publish_dir(staging, &dir)?;
    SealedTree {
        root: &env.site_packages,
        seal: dir.with_extension("seal"),
        expected_sha256: &manifest.sha256,
        key: seal_key,
    }
    .seal_now()?;
    mark_used(&dir);
    Ok(env)
}

/// Installs `wheels` into a new staging folder for `dir`: the folder and its site-packages.
fn install(dir: &Path, wheels: &[EnvWheel]) -> Result<(tempfile::TempDir, PathBuf)> {
    let staging = cache::staging_dir_for(dir)?;
    let site_packages = staging.path().join("site-packages");
    let mut packages = SitePackages::create(&site_packages, MAX_ENV_BYTES)?;
    for wheel in wheels {
        let file =
            File::open(&wheel.path).with_context(|| format!("opening {}", wheel.path.display()))?;
        let label = wheel
            .path
            .file_name()
            .map_or_else(|| wheel.name.clone(), |n| n.to_string_lossy().into_owned());
        packages
            .install(&file, &label)
            .context("installing the build environment")?;
    }
    Ok((staging, site_packages))
}

/// Whether the sandbox ended a bytecode run at the disk limit.
fn hit_disk_limit(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<SandboxError>(),
        Some(SandboxError::Limit {
            hit: LimitHit::Disk,
            ..
        })
    )
}

fn env_key(runtime: &Runtime, wheels: &[EnvWheel]) -> String {
    let mut text = format!("{FORMAT}\n{}\n", runtime.module_sha256);
    for wheel in wheels {
        text.push_str(&format!(
            "{}=={} {}\n",
            wheel.name, wheel.version, wheel.sha256
        ));
    }
    cache::sha256_bytes(text.as_bytes())[..32].to_string()
}

/// What the tag of an environment's content manifest is about: that environment.
fn manifest_label(key: &str) -> String {
    format!("content manifest of build environment {key}")
}

fn is_intact(dir: &Path, key: &str, seal_key: &SealKey, reporter: &dyn Reporter) -> Result<bool> {
    // A manifest whose tag does not verify was not written by this user's wasm-build.
    let Some(expected) =
        cache::read_tagged(&dir.join("manifest.sha256"), seal_key, &manifest_label(key))
    else {
        return Ok(false);
    };
    let site_packages = dir.join("site-packages");
    let tree = SealedTree {
        root: &site_packages,
        seal: dir.with_extension("seal"),
        expected_sha256: &expected,
        key: seal_key,
    };
    match tree.check()? {
        TreeState::Intact => Ok(true),
        TreeState::Missing => Ok(false),
        TreeState::Damaged(why) => {
            reporter.report(&Event::Warning(&Warning::EnvironmentChanged {
                path: dir.display().to_string(),
                why,
            }));
            Ok(false)
        }
    }
}

/// Records the last use, for `wasm-build cache prune`.
fn mark_used(dir: &Path) {
    // Best effort: only prune's decisions depend on it.
    let _ = File::create(dir.join("last-used")).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Compiles every module of the environment to bytecode inside the sandbox (the guest's
/// interpreter decides the bytecode format), in `parts` runs at once. Unchecked-hash
/// `.pyc` files are never revalidated against their sources, which cannot change in a
/// read-only environment.
fn compile_bytecode(
    sandbox: &Sandbox,
    site_packages: &Path,
    scratch: &Path,
    limits: &Limits,
    parts: usize,
) -> Result<()> {
    let tmp = scratch.join("tmp");
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let runs: Vec<GuestRun> = (0..parts)
        .map(|part| {
            // The hooks' start-up environment (`PYTHONHASHSEED=0` among it, for reproducible
            // `.pyc` files): with another one the module as built would be compiled for it
            // (seconds on a first run).
            GuestRun::script(
                COMPILE_PART,
                &[&part.to_string(), &parts.to_string(), GUEST_ENV],
                vec![
                    Mount::read_write(site_packages, GUEST_ENV),
                    Mount::read_write(&tmp, guest_paths::TMP),
                ],
                limits.clone(),
            )
        })
        .collect();
    // The runs write into the same mounts at once: each may add only its share of the room
    // the disk limit leaves, so that together they stay within it.
    let disk = crate::sandbox::shared_disk_limit(&runs[0], parts as u64);
    let exits = std::thread::scope(|scope| {
        let running: Vec<_> = runs
            .into_iter()
            .map(|mut run| {
                run.limits.disk = disk;
                scope.spawn(move || sandbox.run(&run))
            })
            .collect();
        running
            .into_iter()
            .map(|run| run.join().expect("a bytecode compilation thread panicked"))
            .collect::<Vec<_>>()
    });
    // A module that does not compile (test data, Python 2 leftovers) only loses its
    // bytecode, as with pip; the sandbox ending a run is an error.
    for exit in exits {
        exit.map_err(|mut error| {
            // The user set the limits for all the runs together: name theirs, not a share.
            if let SandboxError::Limit { limits: hit, .. } = &mut error {
                **hit = limits.clone();
            }
            anyhow::anyhow!(error).context("compiling the build environment's bytecode")
        })?;
    }
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(())
}

/// Removes environments not used for `max_age`, with their seal and lock; the bytes freed.
pub(crate) fn prune(cache: &Cache, max_age: Duration) -> Result<u64> {
    use crate::cache_files::{entries, older_than, remove, remove_if_present};
    let envs = cache.bucket(Bucket::Envs)?;
    let mut freed = 0;
    for (name, path) in entries(&envs)? {
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        let stamp = path.join("last-used");
        let last_used = if stamp.exists() { stamp } else { path.clone() };
        if older_than(&last_used, max_age) {
            freed += remove(&path)?;
            for extra in ["seal", "lock"] {
                freed += remove_if_present(&envs.join(format!("{name}.{extra}")))?;
            }
        }
    }
    Ok(freed)
}

/// Whether the environment with cache key `key` is in the cache.
pub(crate) fn exists(cache: &Cache, key: &str) -> Result<bool> {
    Ok(cache.bucket(Bucket::Envs)?.join(key).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_old_environments_only() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path()).unwrap();
        let envs = cache.bucket(Bucket::Envs).unwrap();
        for name in ["old", "fresh"] {
            fs::create_dir_all(envs.join(name).join("site-packages")).unwrap();
            fs::write(envs.join(name).join("last-used"), "").unwrap();
            fs::write(envs.join(format!("{name}.seal")), "x").unwrap();
        }
        let long_ago = SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
        File::options()
            .write(true)
            .open(envs.join("old/last-used"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        prune(&cache, Duration::from_secs(30 * 24 * 3600)).unwrap();
        assert!(!exists(&cache, "old").unwrap());
        assert!(!envs.join("old.seal").exists());
        assert!(exists(&cache, "fresh").unwrap());
        assert!(envs.join("fresh.seal").exists());
    }
}
