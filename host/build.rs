//! Compiles the embedded runtime's pre-initialized interpreter ahead of time.
//!
//! A first run would otherwise spend seconds on it: Winch for the start-up run, then
//! Cranelift for the snapshot (issue 18: 4.1 of a 5.8 s first build). Here the build makes
//! the same module the library makes on first use — the pinned `python.wasm` and stdlib
//! (checked against `python-wasm/runtime.toml`), the start-up run of
//! `src/sandbox/preinit.rs` in the same WASI world as `Guest::wasi_context` gives it — and
//! compiles it with the engine settings of guests in child processes (the command line's).
//! The result goes into the binary zstd-compressed (`runtime/embedded.rs`), beside the
//! module and stdlib themselves, recompressed from the committed gzip files; the library
//! loads it when its engine accepts it (same wasmtime, same settings, a CPU with the
//! features it was compiled for) and makes its own otherwise.
//!
//! Debug builds (whose Cranelift would take minutes) and `WASM_BUILD_PRECOMPILE=0` embed
//! nothing, and every first run compiles as before.

#[allow(dead_code)]
#[path = "src/sandbox/preinit.rs"]
mod preinit;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The runtime this binary embeds (see `src/runtime/embedded.rs`).
const RUNTIME: &str = "cpython-3.13";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let recipe = manifest_dir.join("../python-wasm");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for input in [
        "src/sandbox/preinit.rs".into(),
        recipe.join("runtime.toml"),
        recipe.join(RUNTIME),
    ] {
        println!("cargo::rerun-if-changed={}", input.display());
    }
    println!("cargo::rerun-if-env-changed=WASM_BUILD_PRECOMPILE");
    let release = std::env::var("PROFILE")? == "release";
    // zstd at 19 packs the three files ~2.8 MB smaller than gzip and unpacks them faster;
    // debug builds save the seconds instead.
    let level = if release { 19 } else { 3 };

    let runtime = Runtime::read(&recipe).context("reading the embedded runtime")?;
    let embed = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out_dir.join(format!("{RUNTIME}.{name}.zst"));
        let compressed = if bytes.is_empty() {
            Vec::new()
        } else {
            zstd::bulk::compress(bytes, level)?
        };
        std::fs::write(&path, compressed).with_context(|| format!("writing {}", path.display()))
    };
    embed("python.wasm", &runtime.module)?;
    embed("stdlib.tar", &runtime.stdlib_tar)?;

    let wanted = std::env::var("WASM_BUILD_PRECOMPILE").map_or(true, |value| value != "0");
    let compiled = if release && wanted {
        precompile(&runtime, &out_dir)
            .with_context(|| format!("precompiling the pre-initialized interpreter of {RUNTIME}"))?
    } else {
        Vec::new()
    };
    embed("snapshot.cwasm", &compiled)
}

/// The embedded runtime's files, checked against runtime.toml's pins.
struct Runtime {
    module: Vec<u8>,
    stdlib_tar: Vec<u8>,
    /// Where the guest sees the stdlib.
    stdlib_prefix: String,
}

impl Runtime {
    fn read(recipe: &Path) -> Result<Self> {
        let pins = Pins::read(&recipe.join("runtime.toml"))?;
        let module = gunzip(&recipe.join(&pins.module_file), &pins.module_gz_sha256)?;
        ensure!(
            sha256(&module) == pins.module_sha256,
            "{} does not unpack to the module runtime.toml pins",
            pins.module_file
        );
        Ok(Self {
            module,
            stdlib_tar: gunzip(&recipe.join(&pins.stdlib_file), &pins.stdlib_gz_sha256)?,
            stdlib_prefix: pins.stdlib_prefix,
        })
    }
}

/// The contents of the gzip file at `path`, whose sha256 must be `pinned`.
fn gunzip(path: &Path, pinned: &str) -> Result<Vec<u8>> {
    let gz = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        sha256(&gz) == pinned,
        "{} is not the file runtime.toml pins (sha256 {pinned})",
        path.display()
    );
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The module of our python.wasm's native deflate and SHA-256 imports.
const WASM_BUILD_IMPORTS: &str = "wasm_build";

/// The compiled pre-initialized interpreter, serialized by the engine.
fn precompile(runtime: &Runtime, out_dir: &Path) -> Result<Vec<u8>> {
    let stdlib = out_dir.join("stdlib");
    let root = out_dir.join("empty-root");
    for dir in [&stdlib, &root] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    tar::Archive::new(&runtime.stdlib_tar[..]).unpack(&stdlib)?;

    let kind = preinit::EngineKind::Uninterrupted;
    let wizer = preinit::start_up_wizer();
    let (context, instrumented) = wizer
        .instrument(&runtime.module)
        .map_err(anyhow::Error::from)?;
    let baseline = Engine::new(&preinit::baseline_config(kind))?;
    let module = Module::new(&baseline, &instrumented)?;

    // The start-up run's world, as `Guest::wasi_context` makes it for the library's own
    // start-up run: program name, base environment, output captured, the empty root
    // then the stdlib, read-only.
    let output = MemoryOutputPipe::new(1 << 20);
    let mut builder = WasiCtxBuilder::new();
    builder.allow_blocking_current_thread(true);
    builder.arg("python");
    builder.envs(&preinit::base_environment());
    builder.stdout(output.clone());
    builder.stderr(output.clone());
    builder.preopened_dir(&root, "/", FsPerms::ReadOnly)?;
    builder.preopened_dir(&stdlib, &runtime.stdlib_prefix, FsPerms::ReadOnly)?;
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&baseline);
    p1::add_to_linker_sync(&mut linker, |wasi| wasi)?;
    // The native deflate and SHA-256 (src/sandbox/native.rs): start-up calls neither.
    for import in module.imports() {
        if let (WASM_BUILD_IMPORTS, wasmtime::ExternType::Func(ty)) = (import.module(), import.ty())
        {
            linker.func_new(import.module(), import.name(), ty, |_, _, _| {
                Err(wasmtime::format_err!("start-up called a wasm_build import"))
            })?;
        }
    }
    let mut store = Store::new(&baseline, builder.build_p1());
    let instance = linker.instantiate(&mut store, &module)?;
    let init = instance.get_typed_func::<(), ()>(&mut store, preinit::INIT_EXPORT)?;
    if let Err(error) = init.call(&mut store, ()) {
        bail!(
            "start-up failed: {error:?}\n{}",
            String::from_utf8_lossy(&output.contents())
        );
    }
    ensure!(
        output.contents().is_empty(),
        "start-up printed output, which every run would replay:\n{}",
        String::from_utf8_lossy(&output.contents())
    );
    let snapshot = preinit::snapshot(&wizer, &context, &mut store, instance)?;
    let engine = Engine::new(&preinit::engine_config(kind))?;
    Ok(engine.precompile_module(&snapshot)?)
}

/// What runtime.toml pins for the embedded runtime.
struct Pins {
    module_file: String,
    module_sha256: String,
    module_gz_sha256: String,
    stdlib_file: String,
    stdlib_gz_sha256: String,
    stdlib_prefix: String,
}

impl Pins {
    fn read(path: &Path) -> Result<Self> {
        let catalog: toml::Table = std::fs::read_to_string(path)?.parse()?;
        let runtime = catalog.get("runtimes").and_then(|all| all.get(RUNTIME));
        let text = |table: &str, key: &str| -> Result<String> {
            runtime
                .and_then(|runtime| runtime.get(table)?.get(key)?.as_str())
                .map(str::to_string)
                .with_context(|| format!("runtime.toml has no {RUNTIME}.{table}.{key}"))
        };
        Ok(Self {
            module_file: text("module", "file")?,
            module_sha256: text("module", "sha256")?,
            module_gz_sha256: text("module", "gz-sha256")?,
            stdlib_file: text("stdlib", "file")?,
            stdlib_gz_sha256: text("stdlib", "gz-sha256")?,
            stdlib_prefix: text("stdlib", "prefix")?,
        })
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
