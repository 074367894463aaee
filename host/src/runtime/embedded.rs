//! The runtimes compiled into this binary: the compressed module and stdlib built by
//! `python-wasm/build-runtime`, checked against `runtime.toml` when unpacked.

/// The compressed files of one embedded runtime.
pub struct EmbeddedFiles {
    pub module_gz: &'static [u8],
    pub stdlib_gz: Option<&'static [u8]>,
}

/// The embedded files of runtime `id`, if this binary carries it.
pub fn files(id: &str) -> Option<EmbeddedFiles> {
    match id {
        "cpython-3.13" => Some(EmbeddedFiles {
            module_gz: include_bytes!("../../../python-wasm/cpython-3.13/python.wasm.gz"),
            stdlib_gz: Some(include_bytes!(
                "../../../python-wasm/cpython-3.13/stdlib.tar.gz"
            )),
        }),
        _ => None,
    }
}
