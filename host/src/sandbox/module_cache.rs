//! The compiled-module cache. Cranelift needs seconds for the interpreter; a precompiled
//! artifact loads in milliseconds.
//!
//! Loading a precompiled artifact is `unsafe` (its code runs unchecked, outside the
//! sandbox), so the host only loads files it wrote itself into its private cache: each is
//! checked against the sha256 recorded next to it, a record tagged with the seal key that
//! the cache does not hold, so that whoever could write the cache still cannot vouch for
//! other bytes. After that first check by content the file is sealed (its metadata
//! fingerprint, tagged the same way), and later starts check the seal instead of hashing
//! tens of MiB. A damaged or foreign entry, or one whose records do not verify, is compiled
//! again.

use super::{Timings, WasmContext};
use crate::integrity::{self, SealedFile};
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasm_build_packaging::cache::{self, FileLock, SealKey};
use wasmtime::{Engine, Module};

/// Loads the runtime's module from the cache, or compiles and caches it; also returns the
/// cached artifact's path.
pub fn load(
    engine: &Engine,
    runtime: &Runtime,
    dir: &Path,
    seal_key: &SealKey,
    timings: &Timings,
) -> Result<(Module, PathBuf)> {
    let key = cache_key(engine, &runtime.module_sha256);
    load_or_compile(engine, dir, &key, seal_key, timings, None, || {
        timings.time("compiling the interpreter (Cranelift)", || {
            Module::from_file(engine, &runtime.module_path).wasm_context(format!(
                "compiling the interpreter {}",
                runtime.module_path.display()
            ))
        })
    })
}

/// The compiled module cached under `key` in `dir` (the cache's compiled bucket), or the
/// one `compile` makes, cached for the next process, with the cached artifact's path. One
/// process compiles; the others wait and then load its result.
///
/// `precompiled`: the zstd-compressed serialized module this binary carries for `key`,
/// tried before `compile`. It is decompressed straight into the cache and mapped from
/// there, as later processes map it: no copy of its tens of MiB in memory, none
/// serialized again.
pub fn load_or_compile(
    engine: &Engine,
    dir: &Path,
    key: &str,
    seal_key: &SealKey,
    timings: &Timings,
    precompiled: Option<&[u8]>,
    compile: impl FnOnce() -> Result<Module>,
) -> Result<(Module, PathBuf)> {
    let artifact = dir.join(format!("{key}.cwasm"));
    let checksum = Checksum {
        path: dir.join(format!("{key}.sha256")),
        label: format!("sha256 of compiled module {key}.cwasm"),
        key: seal_key,
    };

    let load = || {
        timings.time("loading the compiled interpreter", || {
            load_verified(engine, &artifact, &checksum)
        })
    };
    if let Some(module) = load()? {
        return Ok((module, artifact));
    }
    let _lock = FileLock::acquire(dir.join(format!("{key}.lock")))?;
    if let Some(module) = load()? {
        return Ok((module, artifact));
    }
    if let Some(zst) = precompiled {
        let installed = timings.time("unpacking the precompiled interpreter", || {
            install_precompiled(engine, zst, &artifact, &checksum)
        })?;
        if let Some(module) = installed {
            return Ok((module, artifact));
        }
    }
    let module = compile()?;
    timings.time("caching the compiled interpreter", || {
        let bytes = module
            .serialize()
            .wasm_context("serializing the compiled interpreter")?;
        // The artifact first, its checksum last: a checksum only ever names a complete file.
        cache::write_atomic(&artifact, &bytes)?;
        checksum.record(&cache::sha256_bytes(&bytes))?;
        SealedFile::beside(&artifact, seal_key).seal_now()
    })?;
    Ok((module, artifact))
}

/// Decompresses `zst` into `artifact` (hashing it on the way), maps it, and records and
/// seals it. `None`, leaving no entry, when the bytes do not decompress or this engine
/// refuses them (made for a CPU with features this one lacks): the caller compiles.
fn install_precompiled(
    engine: &Engine,
    zst: &[u8],
    artifact: &Path,
    checksum: &Checksum<'_>,
) -> Result<Option<Module>> {
    let dir = artifact.parent().context("a cache entry has a folder")?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut hashing = HashingWriter {
        inner: file.as_file_mut(),
        hasher: Sha256::new(),
    };
    if zstd::stream::copy_decode(zst, &mut hashing).is_err() {
        return Ok(None);
    }
    hashing
        .inner
        .sync_all()
        .with_context(|| format!("writing the precompiled interpreter in {}", dir.display()))?;
    let sha256 = cache::hex(&hashing.hasher.finalize());
    file.persist(artifact)
        .map_err(|e| e.error)
        .with_context(|| format!("moving a temporary file to {}", artifact.display()))?;
    // SAFETY: the bytes are part of this binary, compiled by its own build from the pinned
    // runtime (checked against runtime.toml there) and written just now into the user's
    // private cache; the engine checks that they were made by this wasmtime with these
    // settings for a CPU like this one.
    let Ok(module) = (unsafe { Module::deserialize_file(engine, artifact) }) else {
        let _ = std::fs::remove_file(artifact);
        return Ok(None);
    };
    // The artifact first, its checksum last: a checksum only ever names a complete file.
    checksum.record(&sha256)?;
    SealedFile::beside(artifact, checksum.key).seal_now()?;
    Ok(Some(module))
}

/// A writer that hashes what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The sha256 a compiled module must have, recorded beside it with a tag under the seal key.
struct Checksum<'a> {
    path: PathBuf,
    /// What the tag is about: the artifact's name (a record moved to another entry fails).
    label: String,
    key: &'a SealKey,
}

impl Checksum<'_> {
    fn record(&self, sha256: &str) -> Result<()> {
        cache::write_tagged(&self.path, self.key, &self.label, sha256)
    }

    /// The recorded sha256, if the record is the host's.
    fn expected(&self) -> Option<String> {
        cache::read_tagged(&self.path, self.key, &self.label)
    }
}

/// The cached module, if the artifact is the user's own file and matches its checksum:
/// checked by content once, then by its sealed metadata fingerprint (see [`SealedFile`]).
fn load_verified(
    engine: &Engine,
    artifact: &Path,
    checksum: &Checksum<'_>,
) -> Result<Option<Module>> {
    let sealed = SealedFile::beside(artifact, checksum.key);
    if !sealed.is_sealed() {
        if !integrity::is_own_file(artifact) {
            return Ok(None);
        }
        let (Some(expected), Ok((found, _))) = (checksum.expected(), cache::sha256_file(artifact))
        else {
            return Ok(None);
        };
        if found != expected {
            return Ok(None);
        }
        sealed.seal_now()?;
    }
    // SAFETY: the file is exactly what this host serialized (checked against a sha256 only
    // the holder of the seal key could record, or unchanged since it was), in the user's own
    // cache that no other user can write; the engine checks version and settings.
    match unsafe { Module::deserialize_file(engine, artifact) } {
        Ok(module) => Ok(Some(module)),
        // Written by an incompatible engine or damaged in a way the checksum missed.
        Err(_) => Ok(None),
    }
}

/// (runtime sha256, wasmtime version, engine settings) as one hex string.
pub(super) fn cache_key(engine: &Engine, module_sha256: &str) -> String {
    derived_key(engine, &[module_sha256])
}

/// (`parts`, this binary's version, wasmtime version, engine settings) as one hex string.
pub(super) fn derived_key(engine: &Engine, parts: &[&str]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    parts.hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    wasmtime_version().hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = cache::hex(&hasher.0.finalize());
    digest[..32].to_string()
}

/// The wasmtime version this host was built with.
pub fn wasmtime_version() -> &'static str {
    // Kept in step with the `=` pin in host/Cargo.toml by the test below.
    "48.0.8"
}

/// Feeds `Hash` output into sha256, which is stable across processes and Rust versions
/// (unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine, a module with nothing in it that it compiled and serialized, and a cache
    /// folder with its seal key.
    struct Scene {
        engine: Engine,
        bytes: Vec<u8>,
        dir: tempfile::TempDir,
        key: SealKey,
    }

    impl Scene {
        fn new() -> Self {
            let engine = Engine::new(&super::super::engine_config(
                super::super::EngineKind::Interruptible,
            ))
            .unwrap();
            let bytes = Module::new(&engine, b"\0asm\x01\0\0\0")
                .unwrap()
                .serialize()
                .unwrap();
            Self {
                engine,
                bytes,
                dir: tempfile::tempdir().unwrap(),
                key: SealKey::ephemeral().unwrap(),
            }
        }

        /// The entry `m.cwasm` and its checksum record.
        fn entry(&self) -> (PathBuf, Checksum<'_>) {
            (
                self.dir.path().join("m.cwasm"),
                checksum(self.dir.path(), &self.key),
            )
        }
    }

    /// The checksum record of `m.cwasm` in `dir`.
    fn checksum<'a>(dir: &Path, key: &'a SealKey) -> Checksum<'a> {
        Checksum {
            path: dir.join("m.sha256"),
            label: "sha256 of compiled module m.cwasm".into(),
            key,
        }
    }

    /// A precompiled module goes into the cache as its bytes, recorded and sealed, so that
    /// the next process loads it; bytes that are not a module this engine takes leave no
    /// entry behind.
    #[test]
    fn a_precompiled_module_is_installed_as_is_or_not_at_all() {
        let scene = Scene::new();
        let (engine, bytes, key) = (&scene.engine, &scene.bytes, &scene.key);
        let (artifact, checksum) = scene.entry();
        let zst = zstd::stream::encode_all(&bytes[..], 3).unwrap();
        let installed = install_precompiled(engine, &zst, &artifact, &checksum).unwrap();
        assert!(installed.is_some());
        assert_eq!(&std::fs::read(&artifact).unwrap(), bytes);
        assert_eq!(checksum.expected(), Some(cache::sha256_bytes(bytes)));
        assert!(SealedFile::beside(&artifact, key).is_sealed());
        assert!(
            load_verified(engine, &artifact, &checksum)
                .unwrap()
                .is_some()
        );

        for refused in [
            zstd::stream::encode_all(&b"not a module"[..], 3).unwrap(),
            b"not zstd".to_vec(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let artifact = dir.path().join("m.cwasm");
            let checksum = super::tests::checksum(dir.path(), key);
            let installed = install_precompiled(engine, &refused, &artifact, &checksum);
            assert!(installed.unwrap().is_none());
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn a_changed_compiled_module_is_not_loaded() {
        let scene = Scene::new();
        let (engine, bytes) = (&scene.engine, &scene.bytes);
        let (artifact, checksum) = scene.entry();
        cache::write_atomic(&artifact, bytes).unwrap();
        checksum.record(&cache::sha256_bytes(bytes)).unwrap();
        assert!(
            load_verified(engine, &artifact, &checksum)
                .unwrap()
                .is_some()
        );
        // One bit changed: the code would run unchecked, so it is compiled again instead.
        let mut changed = bytes.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 1;
        std::fs::write(&artifact, &changed).unwrap();
        assert!(
            load_verified(engine, &artifact, &checksum)
                .unwrap()
                .is_none()
        );
    }

    /// The attack of issue 14: whoever can write the cache replaces the module and writes a
    /// matching checksum and seal. Without the seal key neither is the host's.
    #[test]
    fn a_changed_module_with_a_forged_checksum_and_seal_is_not_loaded() {
        let scene = Scene::new();
        let (engine, key) = (&scene.engine, &scene.key);
        let serialize = |wat: &[u8]| Module::new(engine, wat).unwrap().serialize().unwrap();
        let (artifact, checksum) = scene.entry();
        let ours = scene.bytes.clone();
        cache::write_atomic(&artifact, &ours).unwrap();
        checksum.record(&cache::sha256_bytes(&ours)).unwrap();
        SealedFile::beside(&artifact, key).seal_now().unwrap();
        assert!(
            load_verified(engine, &artifact, &checksum)
                .unwrap()
                .is_some()
        );

        // Another valid module in its place, a checksum and a seal for it: with no key (the
        // records of old) or with the attacker's own.
        // (module (func (export "f")))
        let theirs = serialize(
            b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x05\x01\x01f\0\0\x0a\x04\x01\x02\0\x0b",
        );
        let attacker = SealKey::ephemeral().unwrap();
        for key in [None, Some(&attacker)] {
            cache::write_atomic(&artifact, &theirs).unwrap();
            let sha = cache::sha256_bytes(&theirs);
            let fingerprint = integrity::file_fingerprint(&artifact).unwrap();
            let seal = SealedFile::beside(&artifact, &attacker).seal;
            match key {
                None => {
                    cache::write_atomic(&checksum.path, sha.as_bytes()).unwrap();
                    cache::write_atomic(&seal, fingerprint.as_bytes()).unwrap();
                }
                Some(key) => {
                    cache::write_tagged(&checksum.path, key, &checksum.label, &sha).unwrap();
                    SealedFile::beside(&artifact, key).seal_now().unwrap();
                }
            }
            assert!(
                load_verified(engine, &artifact, &checksum)
                    .unwrap()
                    .is_none()
            );
        }
        // A valid record of another entry, moved here, is not this entry's.
        let other = Checksum {
            label: "sha256 of compiled module other.cwasm".into(),
            ..checksum
        };
        other.record(&cache::sha256_bytes(&theirs)).unwrap();
        let checksum = Checksum {
            label: "sha256 of compiled module m.cwasm".into(),
            ..other
        };
        assert!(
            load_verified(engine, &artifact, &checksum)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn wasmtime_version_matches_the_pin() {
        let manifest = include_str!("../../Cargo.toml");
        let pin = format!("wasmtime = {{ version = \"={}\"", super::wasmtime_version());
        assert!(
            manifest.contains(&pin),
            "update wasmtime_version() to the Cargo.toml pin"
        );
    }
}
