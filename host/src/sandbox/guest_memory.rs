//! The guest's memory together with its store's state, as each shadowed WASI call needs
//! them (what wasmtime-wasi's own linker glue does before calling its implementation).

use wasmtime::{Caller, Extern};
use wiggle::GuestMemory;

/// Runs `f` with the caller's store state and its exported `memory`.
pub(in crate::sandbox) fn with_guest_memory<T, R>(
    caller: &mut Caller<'_, T>,
    f: impl FnOnce(&mut T, GuestMemory<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => {
            let (bytes, state) = memory.data_and_store_mut(&mut *caller);
            f(state, GuestMemory::Unshared(bytes))
        }
        Some(Extern::SharedMemory(memory)) => {
            f(caller.data_mut(), GuestMemory::Shared(memory.data()))
        }
        _ => wasmtime::bail!("missing required memory export"),
    }
}
