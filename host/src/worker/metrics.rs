//! The worker's counters, served as Prometheus text over plain HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the build-seconds histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// What a worker counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub ok: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    /// Answered from a stored result.
    pub cached: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Jobs received that had been delivered before.
    pub redeliveries: AtomicU64,
    pub in_flight: AtomicU64,
    pub reconnects: AtomicU64,
    histogram: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one build's duration.
    pub fn observe_build(&self, seconds: f64) {
        let mut h = self
            .histogram
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP wasm_build_worker_jobs_total Jobs finished, by result status.\n");
        out.push_str("# TYPE wasm_build_worker_jobs_total counter\n");
        for (status, counter) in [
            ("ok", &self.ok),
            ("refused", &self.refused),
            ("failed", &self.failed),
        ] {
            out.push_str(&format!(
                "wasm_build_worker_jobs_total{{status=\"{status}\"}} {}\n",
                get(counter)
            ));
        }
        for (name, help, kind, counter) in [
            (
                "wasm_build_worker_cached_total",
                "Jobs answered from a stored result without building.",
                "counter",
                &self.cached,
            ),
            (
                "wasm_build_worker_dead_lettered_total",
                "Jobs moved to the dead-letter stream.",
                "counter",
                &self.dead_lettered,
            ),
            (
                "wasm_build_worker_redeliveries_total",
                "Jobs received that had been delivered before.",
                "counter",
                &self.redeliveries,
            ),
            (
                "wasm_build_worker_reconnects_total",
                "Redis connections lost or refused.",
                "counter",
                &self.reconnects,
            ),
            (
                "wasm_build_worker_in_flight",
                "Jobs being worked on now.",
                "gauge",
                &self.in_flight,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                get(counter)
            ));
        }
        let h = self
            .histogram
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = "wasm_build_worker_build_seconds";
        out.push_str(&format!(
            "# HELP {name} Time from starting a job's build to its artifacts delivered.\n\
             # TYPE {name} histogram\n"
        ));
        for (count, bound) in h.counts.iter().zip(BUCKETS) {
            out.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {count}\n"));
        }
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", h.count));
        out.push_str(&format!("{name}_sum {}\n{name}_count {}\n", h.sum, h.count));
        out
    }
}

/// `PORT`, `:PORT` or `HOST:PORT`; a bare port binds to 127.0.0.1.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not PORT or HOST:PORT"))
}

/// Serves `metrics` at every path of `listener`, one connection at a time, until the
/// process ends.
pub fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, &metrics);
    }
}

fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    // The request itself does not matter: read its head (bounded) and answer.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = metrics.render();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_to_loopback() {
        assert_eq!(parse_addr("9100").unwrap().to_string(), "127.0.0.1:9100");
        assert_eq!(parse_addr(":9100").unwrap().to_string(), "127.0.0.1:9100");
        assert_eq!(parse_addr("0.0.0.0:1").unwrap().to_string(), "0.0.0.0:1");
        assert!(parse_addr("x").is_err());
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_build(0.3);
        m.observe_build(7.0);
        let text = m.render();
        assert!(text.contains("wasm_build_worker_build_seconds_bucket{le=\"0.25\"} 0\n"));
        assert!(text.contains("wasm_build_worker_build_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("wasm_build_worker_build_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("wasm_build_worker_build_seconds_count 2\n"));
    }
}
