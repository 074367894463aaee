//! wasm-build
