//! The runtimes compiled into this binary: the module, the stdlib and the pre-initialized
//! interpreter compiled ahead of time, zstd-compressed by `host/build.rs` from the files
//! `python-wasm/build-runtime` made (checked against `runtime.toml` there, and again here
//! when unpacked).

/// The compressed files of one embedded runtime.
pub struct EmbeddedFiles {
    pub module_zst: &'static [u8],
    pub stdlib_zst: Option<&'static [u8]>,
    /// The pre-initialized interpreter compiled ahead of time for guests in child
    /// processes; empty when the build made none (debug builds, `WASM_BUILD_PRECOMPILE=0`).
    pub precompiled_snapshot_zst: &'static [u8],
}

/// The embedded files of runtime `id`, if this binary carries it.
pub fn files(id: &str) -> Option<EmbeddedFiles> {
    match id {
        "cpython-3.13" => Some(EmbeddedFiles {
            module_zst: include_bytes!(concat!(env!("OUT_DIR"), "/cpython-3.13.python.wasm.zst")),
            stdlib_zst: Some(include_bytes!(concat!(
                env!("OUT_DIR"),
                "/cpython-3.13.stdlib.tar.zst"
            ))),
            precompiled_snapshot_zst: include_bytes!(concat!(
                env!("OUT_DIR"),
                "/cpython-3.13.snapshot.cwasm.zst"
            )),
        }),
        _ => None,
    }
}
