//! The pre-initialized interpreter: CPython's start-up done once per runtime instead of
//! once per hook.
//!
//! A runtime whose module exports `wasm_build_init` and `wasm_build_start` (the recipe's
//! `python-wasm/wasm_build_main.c`) is instantiated once with only the stdlib mounted and
//! the start-up environment; `wasm_build_init` brings the interpreter up as `python -S`
//! does, and wasmtime-wizer turns the instance's memory and globals into a new module whose
//! `_start` is `wasm_build_start`. Every run of that module begins where start-up ended.
//!
//! Only CPython and its stdlib run before the snapshot, never a backend, so the snapshot is
//! as trusted as the runtime it came from; it is rebuilt from the runtime, never downloaded.
//! It is compiled and cached like the runtime's own module (see [`super::module_cache`]).

use super::preinit::{self, EngineKind, INIT_EXPORT, START_EXPORT};
use super::{Guest, GuestRun, Limits, LogSink, Timings, WasmContext, log, module_cache};
use crate::runtime::Runtime;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use wasm_build_packaging::cache::{self, Bucket, Cache};
use wasmtime::{Engine, Module};
use wasmtime_wasi::I32Exit;
use wasmtime_wizer::Wizer;
/// Changes whenever what goes into a snapshot changes, so old ones are not reused.
const FORMAT: &str = "pre-initialized-1";
/// Epoch ticks the start-up may take (trusted code, but a hang must not hang the host).
const INIT_TICKS: u64 = 60_000 / super::EPOCH_TICK.as_millis() as u64;

/// A pre-initialized interpreter and what its start-up fixed.
#[derive(Clone)]
pub struct PreInitialized {
    pub module: Module,
    /// The compiled module in the cache.
    pub path: PathBuf,
    /// The environment variables CPython read while starting (see [`read_at_startup`]).
    startup_env: Vec<(String, String)>,
}

impl PreInitialized {
    /// Whether a run with these arguments and this environment behaves in the snapshot as
    /// it would in a fresh interpreter: the same start-up settings, and a command line that
    /// `wasm_build_start` takes (`-S` then `-c CODE`, `-m MODULE` or a script).
    pub fn serves(&self, args: &[String], env: &[(String, String)]) -> bool {
        let command_line = match args {
            [s, option, _operand, ..] if s == "-S" && (option == "-c" || option == "-m") => true,
            [s, script, ..] if s == "-S" => !script.starts_with('-'),
            _ => false,
        };
        command_line && startup_subset(env) == self.startup_env
    }
}

/// Whether CPython reads `key` while it starts: its own settings and the locale.
fn read_at_startup(key: &str) -> bool {
    key.starts_with("PYTHON") || key == "LANG" || key.starts_with("LC_")
}

fn startup_subset(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut subset: Vec<_> = env
        .iter()
        .filter(|(key, _)| read_at_startup(key))
        .cloned()
        .collect();
    subset.sort();
    subset
}

/// The runtime's pre-initialized interpreter for runs whose start-up environment is
/// `env`, from the cache or made now; `None` when the runtime has no such entry points.
pub fn load(
    guest: &Guest,
    runtime: &Runtime,
    cache: &Cache,
    env: &[(String, String)],
    timings: &Timings,
) -> Result<Option<PreInitialized>> {
    let engine = &guest.engine;
    let startup_env = startup_subset(env);
    let mut key = cache_key(engine, &runtime.module_sha256, env);
    // The interpreter keeps what start-up imported from the stdlib: one made with another
    // `--python-home` (or the same folder since changed) must not serve. The catalog's
    // runtimes have their stdlib pinned with the module.
    if let Some(stdlib) = runtime
        .stdlib
        .as_ref()
        .filter(|_| !crate::runtime::is_pinned(runtime))
    {
        let identity = crate::integrity::identity(&stdlib.host)
            .with_context(|| format!("reading the stdlib folder {}", stdlib.host.display()))?;
        key = module_cache::derived_key(engine, &[&key, &identity]);
    }
    // Runtimes without the entry points (the VMware build, most --python-wasm modules) are
    // remembered, so that no later process reads the module to find out again.
    let dir = cache.bucket(Bucket::Compiled)?;
    let unsupported = dir.join(format!("{key}.not-pre-initializable"));
    if unsupported.exists() {
        return Ok(None);
    }
    let seal_key = cache.seal_key()?;
    let precompiled = precompiled(guest, runtime, &startup_env);
    let result =
        module_cache::load_or_compile(engine, &dir, &key, seal_key, timings, precompiled, || {
            let wasm = std::fs::read(&runtime.module_path)
                .with_context(|| format!("reading {}", runtime.module_path.display()))?;
            if !has_entry_points(&wasm)? {
                return Err(NotPreInitializable.into());
            }
            let snapshot =
                make_snapshot(guest, &startup_env, &wasm, timings).with_context(|| {
                    format!(
                        "pre-initializing the interpreter {}",
                        runtime.module_path.display()
                    )
                })?;
            timings.time("compiling the interpreter (Cranelift)", || {
                Module::new(engine, &snapshot)
                    .wasm_context("compiling the pre-initialized interpreter")
            })
        });
    match result {
        Ok((module, path)) => Ok(Some(PreInitialized {
            module,
            path,
            startup_env,
        })),
        Err(error) if error.is::<NotPreInitializable>() => {
            cache::write_atomic(&unsupported, b"")?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The pre-initialized interpreter this binary carries (serialized, zstd-compressed), made
/// and compiled by its build script (`host/build.rs`) with the code and settings a first
/// run would use, when it is the one asked for: the embedded runtime's, for guests in child
/// processes, with the base start-up environment. `None` (or bytes this engine refuses,
/// made for a CPU with features this one lacks) sends the caller to make one.
fn precompiled(
    guest: &Guest,
    runtime: &Runtime,
    startup_env: &[(String, String)],
) -> Option<&'static [u8]> {
    if guest.kind != EngineKind::Uninterrupted
        || startup_env != startup_subset(&preinit::base_environment())
    {
        return None;
    }
    crate::runtime::precompiled_snapshot(runtime)
}

/// The compiled-module cache key of the pre-initialized interpreter for this runtime and
/// start-up environment.
pub fn cache_key(engine: &Engine, module_sha256: &str, env: &[(String, String)]) -> String {
    let startup: String = startup_subset(env)
        .iter()
        .map(|(k, v)| format!("{k}={v}\0"))
        .collect();
    module_cache::derived_key(engine, &[module_sha256, FORMAT, &startup])
}

#[derive(Debug, thiserror::Error)]
#[error("the module has no pre-initialization entry points")]
struct NotPreInitializable;

fn has_entry_points(wasm: &[u8]) -> Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::ExportSection(exports) =
            payload.context("reading the module")?
        {
            let mut found = (false, false);
            for export in exports {
                let export = export.context("reading the module's exports")?;
                if export.kind == wasmparser::ExternalKind::Func {
                    found.0 |= export.name == INIT_EXPORT;
                    found.1 |= export.name == START_EXPORT;
                }
            }
            return Ok(found == (true, true));
        }
    }
    Ok(false)
}

/// Runs `wasm_build_init` in an instrumented instance, with only the stdlib and the empty
/// root mounted, and returns the snapshot module.
fn make_snapshot(
    guest: &Guest,
    env: &[(String, String)],
    wasm: &[u8],
    timings: &Timings,
) -> Result<Vec<u8>> {
    let wizer = preinit::start_up_wizer();
    let (context, instrumented) = wizer
        .instrument(wasm)
        .wasm_context("instrumenting the module")?;
    // Start-up runs once, for milliseconds: compiled by the baseline compiler in a fraction
    // of Cranelift's time (the first run's largest cost). Only the memory and globals it
    // leaves are kept, and what a wasm program computes does not depend on the compiler
    // (NaN bit patterns aside, which the spec leaves open to any engine). Where Winch cannot
    // (another CPU, a module it does not take), Cranelift compiles it as before.
    let baseline = guest.baseline().ok();
    let on_winch = baseline.as_ref().and_then(|baseline| {
        timings.time("compiling start-up (Winch)", || {
            Module::new(&baseline.engine, &instrumented).ok()
        })
    });
    let (guest, module) = match (&baseline, on_winch) {
        (Some(baseline), Some(module)) => (baseline, module),
        _ => (
            guest,
            timings.time("compiling start-up (Cranelift)", || {
                Module::new(&guest.engine, &instrumented).wasm_context("compiling the module")
            })?,
        ),
    };
    timings.time("starting up and taking the snapshot", || {
        start_up_and_snapshot(guest, env, &wizer, &context, &module)
    })
}

/// Runs `wasm_build_init` in an instance of the instrumented `module` and returns wizer's
/// snapshot of it.
fn start_up_and_snapshot(
    guest: &Guest,
    env: &[(String, String)],
    wizer: &Wizer,
    context: &wasmtime_wizer::ModuleContext<'_>,
    module: &Module,
) -> Result<Vec<u8>> {
    let output = log::Capture::new(1 << 20, LogSink::Capture);
    let start_up = GuestRun {
        args: Vec::new(),
        env: env.to_vec(),
        mounts: Vec::new(),
        limits: Limits::default(),
        log: LogSink::Capture,
        determinism: None,
    };
    let mut store = guest.store(&start_up, &output)?;
    store.set_epoch_deadline(INIT_TICKS);

    let instance = guest
        .linker
        .instantiate(&mut store, module)
        .wasm_context("instantiating the module")?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .wasm_context("finding the start-up entry point")?;
    if let Err(error) = init.call(&mut store, ()) {
        let printed = String::from_utf8_lossy(&output.take().bytes).into_owned();
        match error.downcast_ref::<I32Exit>() {
            Some(exit) => bail!("start-up exited with status {}:\n{printed}", exit.0),
            None => bail!("start-up crashed: {error:?}\n{printed}"),
        }
    }
    let printed = output.take().bytes;
    if !printed.is_empty() {
        bail!(
            "start-up printed output, which would be replayed by every run:\n{}",
            String::from_utf8_lossy(&printed)
        );
    }
    preinit::snapshot(wizer, context, &mut store, instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn snapshot_with_env(env: &[(&str, &str)]) -> PreInitialized {
        let engine = Engine::default();
        let module = Module::new(&engine, b"\0asm\x01\0\0\0").unwrap();
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PreInitialized {
            module,
            path: PathBuf::new(),
            startup_env: startup_subset(&env),
        }
    }

    #[test]
    fn serves_the_command_lines_its_entry_point_takes() {
        let snapshot = snapshot_with_env(&[]);
        assert!(snapshot.serves(&strings(&["-S", "-c", "pass"]), &[]));
        assert!(snapshot.serves(&strings(&["-S", "-m", "compileall", "-q"]), &[]));
        assert!(snapshot.serves(&strings(&["-S", "/runner/hook_runner.py"]), &[]));
        assert!(!snapshot.serves(&strings(&["-c", "pass"]), &[]));
        assert!(!snapshot.serves(&strings(&["-S", "-c"]), &[]));
        assert!(!snapshot.serves(&strings(&["-S", "-I", "-c", "pass"]), &[]));
        assert!(!snapshot.serves(&strings(&["-S"]), &[]));
    }

    #[test]
    fn serves_only_the_start_up_environment_it_was_made_with() {
        let snapshot = snapshot_with_env(&[("PYTHONHASHSEED", "0"), ("LANG", "C.UTF-8")]);
        let args = strings(&["-S", "-c", "pass"]);
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // Variables CPython does not read while starting may differ.
        assert!(snapshot.serves(
            &args,
            &env(&[("LANG", "C.UTF-8"), ("HOME", "/x"), ("PYTHONHASHSEED", "0")])
        ));
        assert!(!snapshot.serves(&args, &env(&[("LANG", "C.UTF-8"), ("PYTHONHASHSEED", "1")])));
        assert!(!snapshot.serves(&args, &env(&[("LANG", "C.UTF-8")])));
        assert!(!snapshot.serves(
            &args,
            &env(&[
                ("LANG", "C.UTF-8"),
                ("PYTHONHASHSEED", "0"),
                ("PYTHONUTF8", "1")
            ])
        ));
    }

    #[test]
    fn finds_the_entry_points_among_the_exports() {
        let with = wat_module(&["wasm_build_init", "wasm_build_start", "_start"]);
        let without = wat_module(&["_start"]);
        assert!(has_entry_points(&with).unwrap());
        assert!(!has_entry_points(&without).unwrap());
    }

    /// A module exporting one empty function under each name.
    fn wat_module(exports: &[&str]) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut functions = wasm_encoder::FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut export_section = wasm_encoder::ExportSection::new();
        for name in exports {
            export_section.export(name, wasm_encoder::ExportKind::Func, 0);
        }
        module.section(&export_section);
        let mut code = wasm_encoder::CodeSection::new();
        let mut body = wasm_encoder::Function::new([]);
        body.instructions().end();
        code.function(&body);
        module.section(&code);
        module.finish()
    }
}
