//! The `wasm-build` command line: its flags, its terminal reporter, and the one writer
//! through which everything reaches the terminal.

pub mod args;
pub mod parse;
pub mod preflight;
pub mod reporter;
pub mod signals;
pub mod terminal;
pub mod values;
pub mod worker;
