//! The `wasm-build` command line: its flags, its terminal reporter, and the one writer
//! through which everything reaches the terminal.

pub mod args;
pub mod batch;
pub mod registry;
pub mod reporter;
pub mod terminal;
pub mod verify;
