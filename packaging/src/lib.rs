//! Python packaging for wasm-build, without the sandbox: distribution file names, core
//! metadata, `pyproject.toml`'s `[build-system]`, the guest target, the package index
//! client, build-requirement resolution, wheel installation into build environments, safe
//! archive handling, artifact verification, and the walk of trees a stranger wrote.
//!
//! Everything here treats its input as untrusted: index pages, downloaded files, sdists
//! and whatever a build backend produced.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
pub mod backend_sources;
pub mod cache;
mod civil;
pub mod constraints;
pub mod filename;
pub mod index;
pub mod install;
pub mod limits;
pub mod metadata;
pub mod pep508;
pub mod publish;
pub mod pyproject;
pub mod resolve;
pub mod scratch;
pub mod target;
pub mod tempdirs;
pub mod verify;

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod proptests;
