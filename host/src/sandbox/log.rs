//! The guest's stdout and stderr: captured up to a limit, optionally streamed to the caller.

use bytes::Bytes;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Receives the guest's output as it is written.
pub type OutputFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Where guest output goes besides the in-memory capture.
#[derive(Clone, Default)]
pub enum LogSink {
    /// Kept in memory only; shown by the caller if the run fails.
    #[default]
    Capture,
    /// Also handed to this function as it arrives (raw bytes from the guest: whoever shows
    /// them must make them inert).
    Stream(OutputFn),
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogSink::Capture => "Capture",
            LogSink::Stream(_) => "Stream",
        })
    }
}

/// What a run wrote, and whether it tried to write more than the limit.
pub struct Captured {
    pub bytes: Vec<u8>,
    pub overflowed: bool,
}

/// A bounded capture shared by the guest's stdout and stderr.
#[derive(Clone)]
pub struct Capture {
    state: Arc<Mutex<State>>,
}

struct State {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
    sink: LogSink,
    /// A guest process's capture: everything goes to this process's stdout as written, for
    /// the parent to capture and bound (see `isolated`); nothing is kept here.
    forward: bool,
}

/// The most one `check_write` permits: bounds what a single guest write makes the host copy.
const WRITE_PERMIT: usize = 64 * 1024;

impl Capture {
    pub fn new(limit: usize, sink: LogSink) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                bytes: Vec::new(),
                limit,
                overflowed: false,
                sink,
                forward: false,
            })),
        }
    }

    /// Writes everything to stdout as it comes, unbounded: the guest side of a run in a
    /// child process, whose parent bounds the output (and ends the run past the limit).
    pub fn forwarding() -> Self {
        let capture = Self::new(0, LogSink::Capture);
        capture.lock().forward = true;
        capture
    }

    /// Takes what was captured so far.
    pub fn take(&self) -> Captured {
        let mut state = self.lock();
        Captured {
            bytes: std::mem::take(&mut state.bytes),
            overflowed: state.overflowed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `data`; `false` when it did not fit under the limit (what fits is kept).
    pub fn append(&self, data: &[u8]) -> bool {
        let mut state = self.lock();
        if state.forward {
            let mut stdout = std::io::stdout().lock();
            return stdout.write_all(data).and_then(|()| stdout.flush()).is_ok();
        }
        let room = state.limit.saturating_sub(state.bytes.len());
        let kept = data.len().min(room);
        state.bytes.extend_from_slice(&data[..kept]);
        if let LogSink::Stream(stream) = &state.sink {
            stream(&data[..kept]);
        }
        if kept < data.len() {
            state.overflowed = true;
            return false;
        }
        true
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) {
            Ok(())
        } else {
            // Ends the run at once: the host reports the log limit.
            Err(StreamError::trap("the guest exceeded the log limit"))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other(
                "the guest exceeded the log limit",
            )))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_flags_the_rest() {
        let capture = Capture::new(5, LogSink::Capture);
        let mut stream = capture.clone();
        assert!(stream.write(Bytes::from_static(b"abc")).is_ok());
        assert!(stream.write(Bytes::from_static(b"defg")).is_err());
        let captured = capture.take();
        assert_eq!(captured.bytes, b"abcde");
        assert!(captured.overflowed);
    }
}
