//! The compiled-module cache. Cranelift needs seconds for the interpreter; a precompiled
//! artifact loads in milliseconds.
//!
//! Loading a precompiled artifact is `unsafe` (its code runs unchecked), so the host only
//! loads files it wrote itself into its private cache, and checks each against the sha256
//! recorded next to it before use: a damaged or foreign entry is compiled again.

use super::WasmContext;
use crate::integrity::SealedFile;
use crate::runtime::Runtime;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasm_build_packaging::cache::{self, FileLock};
use wasmtime::{Engine, Module};

/// Loads the runtime's module from the cache, or compiles and caches it; also returns the
/// cached artifact's path.
pub fn load(engine: &Engine, runtime: &Runtime, dir: &Path) -> Result<(Module, PathBuf)> {
    let key = cache_key(engine, &runtime.module_sha256);
    load_or_compile(engine, dir, &key, || {
        Module::from_file(engine, &runtime.module_path).wasm_context(format!(
            "compiling the interpreter {}",
            runtime.module_path.display()
        ))
    })
}

/// The compiled module cached under `key` in `dir` (the cache's compiled bucket), or the
/// one `compile` makes, cached for the next process, with the cached artifact's path. One
/// process compiles; the others wait and then load its result.
pub fn load_or_compile(
    engine: &Engine,
    dir: &Path,
    key: &str,
    compile: impl FnOnce() -> Result<Module>,
) -> Result<(Module, PathBuf)> {
    let artifact = dir.join(format!("{key}.cwasm"));
    let checksum = dir.join(format!("{key}.sha256"));

    if let Some(module) = load_verified(engine, &artifact, &checksum)? {
        return Ok((module, artifact));
    }
    let _lock = FileLock::acquire(dir.join(format!("{key}.lock")))?;
    if let Some(module) = load_verified(engine, &artifact, &checksum)? {
        return Ok((module, artifact));
    }
    let module = compile()?;
    let bytes = module
        .serialize()
        .wasm_context("serializing the compiled interpreter")?;
    // The artifact first, its checksum last: a checksum only ever names a complete file.
    cache::write_atomic(&artifact, &bytes)?;
    cache::write_atomic(&checksum, cache::sha256_bytes(&bytes).as_bytes())?;
    SealedFile::beside(&artifact).seal_now()?;
    Ok((module, artifact))
}

/// The cached module, if the artifact is present and matches its checksum: checked by
/// content once, then by its sealed metadata fingerprint (see [`SealedFile`]).
fn load_verified(engine: &Engine, artifact: &Path, checksum: &Path) -> Result<Option<Module>> {
    let sealed = SealedFile::beside(artifact);
    if !sealed.is_sealed() {
        let (Ok(expected), Ok((found, _))) = (
            std::fs::read_to_string(checksum),
            cache::sha256_file(artifact),
        ) else {
            return Ok(None);
        };
        if found != expected.trim() {
            return Ok(None);
        }
        sealed.seal_now()?;
    }
    // SAFETY: the file is exactly what this host serialized (checked by sha256, or unchanged
    // since it was), in the host's private cache; the engine checks version and settings.
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

    #[test]
    fn a_changed_compiled_module_is_not_loaded() {
        let engine = Engine::new(&super::super::engine_config(
            super::super::EngineKind::Interruptible,
        ))
        .unwrap();
        let bytes = Module::new(&engine, b"\0asm\x01\0\0\0")
            .unwrap()
            .serialize()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (artifact, checksum) = (dir.path().join("m.cwasm"), dir.path().join("m.sha256"));
        cache::write_atomic(&artifact, &bytes).unwrap();
        cache::write_atomic(&checksum, cache::sha256_bytes(&bytes).as_bytes()).unwrap();
        assert!(
            load_verified(&engine, &artifact, &checksum)
                .unwrap()
                .is_some()
        );
        // One bit changed: the code would run unchecked, so it is compiled again instead.
        let mut changed = bytes.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 1;
        std::fs::write(&artifact, &changed).unwrap();
        assert!(
            load_verified(&engine, &artifact, &checksum)
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
