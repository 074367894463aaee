//! The `wasm-build` command line: its flags, its terminal reporter, and the one writer
//! through which everything reaches the terminal.

pub mod args;
pub mod batch;
pub mod parse;
pub mod preflight;
pub mod registry;
pub mod reporter;
pub mod serve;
pub mod signals;
pub mod terminal;
pub mod values;
pub mod verify;
pub mod worker;
