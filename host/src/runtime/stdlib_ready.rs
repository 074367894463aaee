//! Waiting for a stdlib that another thread is unpacking.

use anyhow::{Context, Result};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Whether a runtime's stdlib folder is there: at once, or once the thread unpacking it
/// has finished. Clones share the one outcome; the first to wait joins the thread, the
/// others wait for it.
#[derive(Clone, Default)]
pub struct StdlibReady(Option<Arc<Unpacking>>);

struct Unpacking {
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    outcome: OnceLock<Result<(), String>>,
}

impl StdlibReady {
    /// Runs `unpack` on another thread; [`StdlibReady::wait`] returns its outcome.
    pub(crate) fn unpacking(unpack: impl FnOnce() -> Result<()> + Send + 'static) -> Result<Self> {
        let thread = std::thread::Builder::new()
            .name("stdlib-unpack".into())
            .spawn(unpack)
            .context("starting the thread that unpacks the stdlib")?;
        Ok(Self(Some(Arc::new(Unpacking {
            thread: Mutex::new(Some(thread)),
            outcome: OnceLock::new(),
        }))))
    }

    /// Waits until the stdlib is there; the error that kept it from being unpacked, if any
    /// (every caller gets it).
    pub fn wait(&self) -> Result<()> {
        let Some(unpacking) = &self.0 else {
            return Ok(());
        };
        unpacking
            .outcome
            .get_or_init(|| unpacking.join())
            .clone()
            .map_err(anyhow::Error::msg)
    }
}

impl Unpacking {
    fn join(&self) -> Result<(), String> {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match thread.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(error))) => Err(format!("{error:#}")),
            Some(Err(_)) => Err("the thread unpacking the stdlib panicked".to_string()),
        }
    }
}

impl Drop for Unpacking {
    /// Nobody waited: the unpacking still finishes (or fails and cleans up) before the
    /// runtime is gone, so that no half-written stdlib outlives it.
    fn drop(&mut self) {
        if self.outcome.get().is_none() {
            let _ = self.join();
        }
    }
}

impl std::fmt::Debug for StdlibReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            None => "ready",
            Some(unpacking) => match unpacking.outcome.get() {
                Some(Ok(())) => "ready",
                Some(Err(_)) => "failed",
                None => "unpacking",
            },
        };
        f.write_str(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An unpacking that takes a moment, and whether it has finished.
    fn slow_unpacking() -> (StdlibReady, Arc<AtomicBool>) {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let ready = StdlibReady::unpacking(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        (ready, done)
    }

    #[test]
    fn every_waiter_sees_the_unpacking_finished_and_its_outcome() {
        let (ready, done) = slow_unpacking();
        let other = ready.clone();
        let waiter = std::thread::spawn(move || {
            other.wait().unwrap();
            done.load(Ordering::SeqCst)
        });
        ready.wait().unwrap();
        assert!(
            waiter.join().unwrap(),
            "a waiter went on before the unpacking ended"
        );

        let failed = StdlibReady::unpacking(|| anyhow::bail!("disk full")).unwrap();
        for _ in 0..2 {
            let error = failed.wait().unwrap_err().to_string();
            assert!(error.contains("disk full"), "{error}");
        }
        assert!(StdlibReady::default().wait().is_ok());
    }

    #[test]
    fn a_runtime_dropped_unwaited_lets_the_unpacking_finish() {
        let (ready, done) = slow_unpacking();
        drop(ready);
        assert!(done.load(Ordering::SeqCst));
    }
}
