//! Build environments: the resolved wheels unpacked into one site-packages folder, with
//! bytecode compiled inside the sandbox, cached by the exact set of wheels.
//!
//! An environment is made once (under a lock, in a staging folder renamed into place) and
//! then only ever mounted read-only. Before each reuse its fingerprint is compared with the
//! seal recorded when it was made; a changed environment is checked by content and rebuilt
//! if it no longer matches. The seal and the content manifest are tagged with the cache's
//! seal key, so a manifest or seal written by anyone else does not count.

use crate::integrity::{self, SealedTree, TreeState};
use crate::runtime::Runtime;
use crate::sandbox::{GuestRun, Limits, LogSink, Mount, Sandbox};
use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;
use wasm_build_packaging::cache::{self, Bucket, Cache, FileLock, SealKey};
use wasm_build_packaging::resolve::ResolvedPackage;

/// Bumped whenever the layout or the bytecode step changes, so old entries are not reused.
const FORMAT: &str = "wasm-build-env-v1";
/// Where the environment is mounted while its bytecode is compiled; the same path as in
/// hook runs, so the `.pyc` files name the right source paths.
/// Unpacked size of all wheels of one environment together: a guard against archives
/// that decompress without end, far above any real build backend.
const MAX_ENV_BYTES: u64 = 2 << 30;
const GUEST_ENV: &str = crate::hooks::guest_paths::ENV;

/// One wheel of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWheel {
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
pub struct BuildEnv {
    /// The cache key: the runtime and the exact wheels.
    pub key: String,
    /// The folder mounted at `/wasm-build/env`.
    pub site_packages: PathBuf,
    /// `name==version` of each wheel, for messages.
    pub contents: Vec<String>,
}

/// Returns the environment made of exactly `wheels`, making it if the cache has no intact
/// copy.
pub fn prepare(
    sandbox: &Sandbox,
    runtime: &Runtime,
    cache: &Cache,
    wheels: &[EnvWheel],
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
    if is_intact(&dir, &key, seal_key)? {
        mark_used(&dir);
        return Ok(env);
    }
    let _lock = FileLock::acquire(bucket.join(format!("{key}.lock")))?;
    if is_intact(&dir, &key, seal_key)? {
        mark_used(&dir);
        return Ok(env);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let staging = cache::staging_dir_for(&dir)?;
    let site_packages = staging.path().join("site-packages");
    fs::create_dir(&site_packages)
        .with_context(|| format!("creating {}", site_packages.display()))?;
    let mut budget = MAX_ENV_BYTES;
    for wheel in &wheels {
        install_wheel(&wheel.path, &site_packages, &mut budget).with_context(|| {
            format!(
                "installing {} into the build environment",
                wheel.path.display()
            )
        })?;
    }
    compile_bytecode(sandbox, &site_packages, staging.path())?;
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

fn is_intact(dir: &Path, key: &str, seal_key: &SealKey) -> Result<bool> {
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
            eprintln!(
                "warning: cached build environment {} was changed ({why}); making it again",
                dir.display()
            );
            Ok(false)
        }
    }
}

/// Records the last use, for `wasm-build cache prune`.
fn mark_used(dir: &Path) {
    // Best effort: only prune's decisions depend on it.
    let _ = File::create(dir.join("last-used")).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Unpacks a wheel the way an installer does for an import-only environment: the root-is-
/// purelib tree plus `.data/purelib` and `.data/platlib`. Scripts, headers and data files
/// are left out: a build backend imports its requirements, it does not run their scripts.
fn install_wheel(wheel: &Path, site_packages: &Path, budget: &mut u64) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("reading {} as a zip", wheel.display()))?;
    for index in 0..archive.len() {
        let mut member = archive.by_index(index)?;
        let name = member
            .name()
            .with_context(|| format!("member {index} of {}", wheel.display()))?
            .into_owned();
        let Some(relative) = install_path(&name)? else {
            continue;
        };
        let target = site_packages.join(&relative);
        if member.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .with_context(|| format!("writing {} (a duplicate member?)", target.display()))?;
        let written = io::copy(&mut (&mut member).take(*budget + 1), &mut out)
            .with_context(|| format!("extracting {name}"))?;
        if written > *budget {
            bail!(
                "the build environment would exceed {} MiB",
                MAX_ENV_BYTES >> 20
            );
        }
        *budget -= written;
    }
    Ok(())
}

/// Where member `name` goes, relative to site-packages; `None` for members left out.
fn install_path(name: &str) -> Result<Option<PathBuf>> {
    let path = Path::new(name);
    if name.contains('\\')
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        bail!("wheel member `{name}` is not a plain relative path");
    }
    let mut components = path.components();
    let Some(Component::Normal(first)) = components.next() else {
        return Ok(None);
    };
    if first.to_string_lossy().ends_with(".data") {
        let category = components.next();
        let rest: PathBuf = components.collect();
        return Ok(match category {
            Some(Component::Normal(c)) if (c == "purelib" || c == "platlib") => {
                (!rest.as_os_str().is_empty()).then_some(rest)
            }
            _ => None,
        });
    }
    Ok(Some(path.to_path_buf()))
}

/// Compiles every module of the environment to bytecode inside the sandbox (the guest's
/// interpreter decides the bytecode format). Unchecked-hash `.pyc` files are never
/// revalidated against their sources, which cannot change in a read-only environment.
fn compile_bytecode(sandbox: &Sandbox, site_packages: &Path, scratch: &Path) -> Result<()> {
    let tmp = scratch.join("tmp");
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let run = GuestRun {
        args: [
            "-S",
            "-m",
            "compileall",
            "-q",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            GUEST_ENV,
        ]
        .map(String::from)
        .to_vec(),
        env: vec![
            ("TMPDIR".into(), "/tmp".into()),
            ("PYTHONHASHSEED".into(), "0".into()),
        ],
        mounts: vec![
            Mount::read_write(site_packages, GUEST_ENV),
            Mount::read_write(&tmp, "/tmp"),
        ],
        limits: Limits::default(),
        log: LogSink::Capture,
    };
    // A module that does not compile (test data, Python 2 leftovers) only loses its
    // bytecode, as with pip; the sandbox ending the run is an error.
    sandbox
        .run(&run)
        .map_err(|e| anyhow::anyhow!("compiling the build environment's bytecode: {e}"))?;
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_paths() {
        let p = |s: &str| {
            install_path(s)
                .unwrap()
                .map(|p| p.to_string_lossy().into_owned())
        };
        assert_eq!(p("pkg/__init__.py").as_deref(), Some("pkg/__init__.py"));
        assert_eq!(p("a-1.data/purelib/pkg/x.py").as_deref(), Some("pkg/x.py"));
        assert_eq!(p("a-1.data/platlib/y.py").as_deref(), Some("y.py"));
        assert_eq!(p("a-1.data/scripts/tool"), None);
        assert_eq!(p("a-1.data/data/share/x"), None);
        assert!(install_path("../evil.py").is_err());
        assert!(install_path("/abs.py").is_err());
        assert!(install_path("a\\b.py").is_err());
    }
}
