//! wasm-build: a PEP 517 / PEP 660 build frontend that runs every build-backend hook inside
//! CPython compiled for WASI, executed by wasmtime.
//!
//! The host (this crate) does all the frontend work and trusts nothing the backend returns;
//! the backend sees only the folders the sandbox mounts for it. See `docs/architecture.md`.
//!
//! # API
//!
//! - [`Frontend`] builds [`BuildRequest`]s with one runtime, sandbox, index client and cache,
//!   and reports what happens to a [`Reporter`]; failures are [`BuildError`]s, each with an
//!   exit class and a [`Hint`].
//! - [`sandbox`] runs the interpreter for WASI with exactly the mounts, environment and
//!   [`Limits`] asked for; [`runtime`] provisions the pinned interpreters.
//! - [`housekeeping`] cleans and prunes the cache.
//! - [`GuestBench`] times hook runs and guest runs as the frontend makes them.
//! - [`worker`] takes jobs from a Redis stream, builds them on a warm engine and writes
//!   their results back (`wasm-build worker`, docs/scale-out.md).
//! - [`service::run_task`] runs one [`Task`] (build, metadata, verify) of a source on a
//!   shared frontend and returns its [`report::SourceReport`]: the registry's unit of work
//!   (command-line batches, `serve`).
//!
//! Everything else is internal and may change.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod backend_bytecode;
mod cache_files;
mod env;
pub mod frontend;
mod hooks;
pub mod housekeeping;
pub mod integrity;
mod prepared;
mod protocol;
pub mod report;
pub mod reporter;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod service;
pub mod worker;

pub use frontend::{
    BuildError, BuildRequest, Distribution, Frontend, GitUnanswered, GuestBench, Hint, Limit,
    PlanError, Refusal, Settings, index_hint,
};
pub use hooks::{HookError, HookErrorKind};
pub use protocol::{BackendWarning, GitCommand, Hook, HookCall, ProcessAttempt, ProcessKind};
pub use reporter::{Event, Reporter, Silent, Step, Warning};
pub use sandbox::{Isolation, Limits};
pub use service::{Task, TaskResult, run_task};
