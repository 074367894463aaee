//! What a guest run used: CPU time, memory and disk at their highest.

use std::time::Duration;

/// What a guest run used, measured where it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunStats {
    /// CPU time of the thread that ran the guest (user and system), when the platform
    /// tells it.
    pub cpu: Option<Duration>,
    /// The guest's linear memory at its largest, in bytes.
    pub peak_memory: u64,
    /// The most the writable mounts held at once, as the disk limit counts them.
    pub disk_high_water: u64,
    /// Bytes the host deflated for the guest (see `native`).
    #[serde(default)]
    pub native_deflated: u64,
    /// Bytes the host hashed with SHA-256 for the guest.
    #[serde(default)]
    pub native_hashed: u64,
}

/// CPU time (user and system) of the calling thread, where the platform tells it.
pub(super) fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a rusage into the pointer it is given, which points at
        // enough initialized memory for one.
        let done = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        if done != 0 {
            return None;
        }
        // SAFETY: getrusage succeeded, so it filled the struct (it was zeroed before anyway).
        let usage = unsafe { usage.assume_init() };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
