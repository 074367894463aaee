//! A deterministic guest: what a run sees of time and chance depends on what it is given,
//! not on the host.
//!
//! - The wall clock starts at the given epoch and moves one microsecond per reading, so it
//!   moves (code that waits for it to pass a point gets there) without following the host's
//!   speed. The monotonic clock stays the host's: the limits are the host's business.
//! - WASI's random bytes come from a generator seeded with the given seed.
//! - File times (access, modification, change) the guest reads are clamped to the epoch, as
//!   reproducible builds clamp them to `SOURCE_DATE_EPOCH`: the files a backend writes
//!   carry the host's time on disk, and tools that copy a file's time into an archive would
//!   otherwise stamp the host's clock into the artifact. The interpreter's and the build
//!   environment's bytecode is unchecked-hash, so no import looks at source times.

use super::guest_memory::with_guest_memory;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::{Caller, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi::{HostWallClock, WasiCtxBuilder};
use wiggle::{GuestMemory, GuestPtr};

const MODULE: &str = "wasi_snapshot_preview1";
const SUCCESS: i32 = 0;

/// What a deterministic run is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Determinism {
    /// The wall clock at the start, and the latest file time the guest sees: seconds since
    /// the Unix epoch.
    pub epoch: u64,
    /// Seeds the guest's random bytes.
    pub seed: [u8; 32],
}

impl Determinism {
    /// What prepare runs get in a deterministic build, whatever the source: their memory
    /// image serves every source, so it must not depend on any one of them.
    pub(crate) fn for_prepare() -> Self {
        Self {
            epoch: FIXED_EPOCH,
            seed: Sha256::digest(b"wasm-build prepare run").into(),
        }
    }

    /// Gives a run's WASI context this clock and randomness.
    pub(super) fn configure(&self, builder: &mut WasiCtxBuilder) {
        builder.wall_clock(StepClock {
            start: Duration::from_secs(self.epoch),
            reads: AtomicU64::new(0),
        });
        builder.secure_random(StdRng::from_seed(self.seed));
        let insecure: [u8; 32] = Sha256::new()
            .chain_update(b"insecure:")
            .chain_update(self.seed)
            .finalize()
            .into();
        builder.insecure_random(StdRng::from_seed(insecure));
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&insecure[..16]);
        builder.insecure_random_seed(u128::from_le_bytes(seed));
    }

    /// The file-time clamp, in nanoseconds.
    pub(super) fn clamp_nanos(&self) -> u64 {
        self.epoch.saturating_mul(1_000_000_000)
    }
}

/// 1980-01-01T00:00:00Z, the earliest time a zip archive can hold: the epoch of a folder
/// without `SOURCE_DATE_EPOCH`, and of prepare runs.
pub const FIXED_EPOCH: u64 = 315_532_800;

/// A wall clock that starts at `start` and moves a microsecond per reading.
struct StepClock {
    start: Duration,
    reads: AtomicU64,
}

impl HostWallClock for StepClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn now(&self) -> Duration {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_micros(reads)
    }
}

/// Where a store keeps the WASI context and the file-time clamp (nanoseconds) of its run.
pub(super) type Parts<T> = fn(&mut T) -> (&mut WasiP1Ctx, Option<u64>);

/// Shadows `fd_filestat_get` and `path_filestat_get` of `linker`'s WASI preview 1 (added
/// before) with calls that clamp the times they return to the run's clamp, when it has one.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    parts: Parts<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        move |mut caller: Caller<'_, T>, fd: i32, buf: i32| {
            stat_call(&mut caller, parts, buf, |wasi, memory| {
                in_tokio(p1::fd_filestat_get(wasi, memory, fd, buf))
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              flags: i32,
              path: i32,
              path_len: i32,
              buf: i32| {
            stat_call(&mut caller, parts, buf, |wasi, memory| {
                in_tokio(p1::path_filestat_get(
                    wasi, memory, fd, flags, path, path_len, buf,
                ))
            })
        },
    )?;
    Ok(())
}

/// Runs a stat call, then clamps the times of the filestat it wrote at `buf`.
fn stat_call<T>(
    caller: &mut Caller<'_, T>,
    parts: Parts<T>,
    buf: i32,
    original: impl FnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    with_guest_memory(caller, |state, mut memory| {
        let (wasi, clamp) = parts(state);
        clamped(wasi, &mut memory, clamp, buf, original)
    })
}

fn clamped(
    wasi: &mut WasiP1Ctx,
    memory: &mut GuestMemory<'_>,
    clamp: Option<u64>,
    buf: i32,
    original: impl FnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    let errno = original(wasi, memory)?;
    if errno == SUCCESS
        && let Some(clamp) = clamp
    {
        let at = GuestPtr::<types::Filestat>::new(buf as u32);
        // The call just wrote it; a guest that cannot read it back gets it unclamped.
        if let Ok(mut stat) = memory.read(at) {
            stat.atim = stat.atim.min(clamp);
            stat.mtim = stat.mtim.min(clamp);
            stat.ctim = stat.ctim.min(clamp);
            let _ = memory.write(at, stat);
        }
    }
    Ok(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_steps_from_its_epoch() {
        let clock = StepClock {
            start: Duration::from_secs(1_000),
            reads: AtomicU64::new(0),
        };
        assert_eq!(clock.now(), Duration::from_secs(1_000));
        assert_eq!(
            clock.now(),
            Duration::from_secs(1_000) + Duration::from_micros(1)
        );
        assert_eq!(clock.resolution(), Duration::from_micros(1));
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        use rand::Rng;
        let bytes = |seed: [u8; 32]| {
            let mut rng = StdRng::from_seed(seed);
            let mut out = [0u8; 16];
            rng.fill_bytes(&mut out);
            out
        };
        assert_eq!(bytes([1; 32]), bytes([1; 32]));
        assert_ne!(bytes([1; 32]), bytes([2; 32]));
    }
}
