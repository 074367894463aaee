//! The guest's own marker environment and tags: pinned for the catalog's runtimes, else
//! asked of the interpreter once per runtime and kept beside it in the cache.

use super::{GuestRun, Limits, LogSink, Mount, Sandbox};
use crate::protocol::guest_paths;
use crate::runtime::Runtime;
use anyhow::{Context, Result, anyhow};
use std::fs;
use wasm_build_packaging::cache::{self, Bucket, Cache};
use wasm_build_packaging::target::{GuestTarget, PROBE_SCRIPT};

/// The guest's marker environment: pinned in the catalog for its own runtimes (so that a
/// first run need not wait for the stdlib being unpacked), else asked of the guest within
/// `limits` and cached next to the runtime.
pub(crate) fn probe_target(
    sandbox: &Sandbox,
    runtime: &Runtime,
    cache: &Cache,
    limits: &Limits,
) -> Result<GuestTarget> {
    if let Some(markers) = crate::runtime::pinned_markers(runtime) {
        return GuestTarget::new(markers);
    }
    let path = cache
        .bucket(Bucket::Runtimes)?
        .join(format!("target-{}.json", &runtime.module_sha256[..32]));
    if let Ok(json) = fs::read_to_string(&path)
        && let Ok(target) = GuestTarget::from_probe_json(&json)
    {
        return Ok(target);
    }
    let io = tempfile::tempdir().context("creating a scratch folder")?;
    let script = format!(
        "import sys\nsys.stdout = open('{}/target.json', 'w')\n{PROBE_SCRIPT}\nsys.stdout.close()\n",
        guest_paths::IO
    );
    let run = GuestRun {
        args: vec!["-S".into(), "-c".into(), script],
        // The hooks' start-up environment, so that the pre-initialized interpreter serves the
        // probe: with another one the module as built would be compiled for this run alone
        // (seconds on the first run). The markers do not depend on these variables.
        env: super::base_environment(),
        mounts: vec![Mount::read_write(io.path(), guest_paths::IO)],
        limits: limits.clone(),
        log: LogSink::Capture,
        determinism: None,
    };
    let exit = sandbox
        .run(&run)
        .map_err(|e| anyhow!(e).context("asking the interpreter for its environment"))?;
    let json = fs::read_to_string(io.path().join("target.json")).with_context(|| {
        format!(
            "the interpreter did not report its environment (exit code {}): {}",
            exit.code,
            String::from_utf8_lossy(&exit.log)
        )
    })?;
    let target = GuestTarget::from_probe_json(&json)?;
    cache::write_atomic(&path, json.as_bytes())?;
    Ok(target)
}
