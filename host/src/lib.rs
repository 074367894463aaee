//! wasm-build: a PEP 517 / PEP 660 build frontend that runs every build-backend hook inside
//! CPython compiled for WASI, executed by wasmtime.
//!
//! The host (this crate) does all the frontend work and trusts nothing the backend returns;
//! the backend sees only the folders the sandbox mounts for it. See `docs/architecture.md`.

pub mod env;
pub mod frontend;
pub mod hooks;
pub mod housekeeping;
pub mod integrity;
pub mod prepared;
pub mod progress;
pub mod project;
pub mod runtime;
pub mod sandbox;
pub mod terminal;
