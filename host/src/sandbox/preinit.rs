//! What a pre-initialized interpreter is made from, shared by the library and its build
//! script (`host/build.rs` includes this file), which makes the embedded runtime's ahead of
//! time: the engine settings, the start-up environment, the entry points and the snapshot
//! of an initialized instance. Both must make the same module for the one they compile to
//! be loadable by the other, so neither keeps its own copy.
//!
//! Standalone: it names only std, anyhow, wasmtime and wasmtime-wizer.

use std::future::Future;
use std::pin::pin;
use std::task::{Poll, Waker};
use wasmtime::{Config, Instance, OptLevel, Store};
use wasmtime_wizer::{InstanceState, ModuleContext, SnapshotVal, ValType, Wizer};

/// The module's export that brings the interpreter up and returns.
pub const INIT_EXPORT: &str = "wasm_build_init";
/// The module's export that runs one command line in a pre-initialized instance.
pub const START_EXPORT: &str = "wasm_build_start";
/// Wasm stack for the guest. CPython recurses deeply while importing setuptools.
pub const MAX_WASM_STACK: usize = 8 << 20;

/// The two engine settings: with epoch interruption (guests on a thread) or without
/// (guests in a child process, stopped by killing it). Compiled modules differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Interruptible,
    Uninterrupted,
}

/// The engine settings every module the interpreter runs in is compiled with.
pub fn engine_config(kind: EngineKind) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(kind == EngineKind::Interruptible);
    // wasmtime-wasi turns on wasmtime's async feature, which bounds max_wasm_stack by the
    // async stack size even when no async call is ever made.
    config.async_stack_size(MAX_WASM_STACK + (1 << 20));
    config.max_wasm_stack(MAX_WASM_STACK);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    // CPython calls through function pointers everywhere (type slots, vectorcall): with the
    // table filled at instantiation (~4,500 entries, microseconds) no `call_indirect` has to
    // check for a lazily initialized entry. Measured: hooks 2–3 % faster.
    config.table_lazy_init(false);
    config
}

/// [`engine_config`] on wasmtime's baseline compiler (Winch), which compiles the
/// interpreter several times faster than Cranelift into code that runs slower: for a run
/// too short to pay for Cranelift, the start-up run a snapshot is taken from.
pub fn baseline_config(kind: EngineKind) -> Config {
    let mut config = engine_config(kind);
    config.strategy(wasmtime::Strategy::Winch);
    // Winch only emits lazily initialized tables (which the one run does not miss).
    config.table_lazy_init(true);
    config
}

/// The environment every guest starts from; the frontend adds `SOURCE_DATE_EPOCH` and the
/// user's `--env`. The pre-initialized interpreter is made with it, so its start-up
/// settings (`PYTHON*`, the locale) are those of every run that does not change them.
pub fn base_environment() -> Vec<(String, String)> {
    [
        ("TMPDIR", "/tmp"),
        ("HOME", "/tmp/home"),
        ("LANG", "C.UTF-8"),
        ("PYTHONHASHSEED", "0"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The wizer that turns an instance after `wasm_build_init` into a module whose `_start`
/// is `wasm_build_start`.
pub fn start_up_wizer() -> Wizer {
    let mut wizer = Wizer::new();
    wizer
        .init_func(INIT_EXPORT)
        .func_rename("_start", START_EXPORT);
    wizer
}

/// Wizer's snapshot of `instance` (of the module `wizer` instrumented, after its start-up
/// returned): the new module.
pub fn snapshot<T: Send>(
    wizer: &Wizer,
    context: &ModuleContext<'_>,
    store: &mut Store<T>,
    instance: Instance,
) -> anyhow::Result<Vec<u8>> {
    let mut view = InstanceView { store, instance };
    ready(wizer.snapshot(context, &mut view))?
        .map_err(|error| anyhow::Error::from(error).context("snapshotting the instance"))
}

/// What wizer reads from the initialized instance.
struct InstanceView<'a, T: 'static> {
    store: &'a mut Store<T>,
    instance: Instance,
}

impl<T: Send> InstanceState for InstanceView<'_, T> {
    fn global_get(&mut self, name: &str, _: ValType) -> impl Future<Output = SnapshotVal> + Send {
        // The instrumented module exports every global wizer asks for; a missing one or a
        // reference type is a bug in wizer's instrumentation, which panics here by contract.
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer exports the globals it snapshots");
        let value = match global.get(&mut *self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!(
                "a global of type {:?} cannot be snapshotted",
                other.ty(&*self.store)
            ),
        };
        std::future::ready(value)
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer exports the memories it snapshots");
        contents(memory.data(&*self.store));
        std::future::ready(())
    }
}

/// The output of a future that never waits: wizer's snapshot is `async` for hosts that
/// read instances asynchronously, and [`InstanceView`] answers at once.
fn ready<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => anyhow::bail!("the snapshot waited on something that never comes"),
    }
}
