//! Ctrl-C and SIGTERM: stop the guests, remove the scratch folders, say so in one line,
//! exit 130 or 143.
//!
//! Both signals are blocked in every thread (the mask is set before any thread starts, and
//! threads inherit it; child processes get a clean mask from `std::process`) and taken by
//! one watcher thread with `sigwait`: no code runs in a signal handler. On the first signal
//! the watcher kills every guest process and refuses to start more; the build then fails
//! where it stands and unwinds as any failed build does, removing its scratch folder, and
//! the main thread sees [`received`] and ends with [`interrupted`] instead of the build's
//! error. A build busy in the host (downloading, compiling the interpreter) for longer
//! than [`GRACE`] is not waited for: the watcher removes every folder the process holds
//! itself and exits. A second signal does that at once.

use super::terminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use wasm_build::sandbox;
use wasm_build_packaging::tempdirs;

/// How long the build may take to wind down on its own after the first signal.
const GRACE: Duration = Duration::from_secs(3);

/// The first signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Whether the one line was written.
static ANNOUNCED: Mutex<bool> = Mutex::new(false);

/// SIGINT and SIGTERM, as a set.
fn signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes the set before sigaddset reads it; both only write
    // the local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Takes SIGINT and SIGTERM from here on. Call it before any other thread is started.
pub fn install() {
    let set = signals();
    // SAFETY: changes this thread's signal mask only; `set` is initialized.
    let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if blocked != 0 {
        // The default behaviour stays: the process ends at once, leaving its folders to
        // `cache prune`.
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || watch(set));
}

fn watch(set: libc::sigset_t) {
    loop {
        let mut signal = 0;
        // SAFETY: waits for one of the blocked signals of `set` and writes its number.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if RECEIVED
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            sandbox::stop_guests();
            let _ = std::thread::Builder::new()
                .name("signal-grace".into())
                .spawn(move || {
                    std::thread::sleep(GRACE);
                    force(signal)
                });
        } else {
            force(RECEIVED.load(Ordering::SeqCst));
        }
    }
}

/// Ends the process now: the guests killed, the folders it holds removed.
fn force(signal: i32) -> ! {
    sandbox::stop_guests();
    let left = tempdirs::remove_held();
    for (path, error) in left {
        terminal::to_stderr(&terminal::message(
            "warning: ",
            &format!(
                "could not remove the scratch folder {}: {error}",
                path.display()
            ),
        ));
    }
    announce(signal);
    std::process::exit(exit_code(signal).into())
}

/// The signal that asked this process to stop, if one did (one delivered but not yet taken
/// by the watcher counts).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => pending(),
        signal => Some(signal),
    }
}

fn pending() -> Option<i32> {
    // SAFETY: sigpending writes the set of pending signals into a zeroed local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if libc::sigpending(&mut set) != 0 {
            return None;
        }
        [libc::SIGINT, libc::SIGTERM]
            .into_iter()
            .find(|&signal| libc::sigismember(&set, signal) == 1)
    }
}

/// Says that the build was interrupted and returns the exit code for `signal`: call it
/// once the build's folders are gone (the frontend dropped).
pub fn interrupted(signal: i32) -> ExitCode {
    sandbox::stop_guests();
    announce(signal);
    ExitCode::from(exit_code(signal))
}

fn announce(signal: i32) {
    let mut announced = ANNOUNCED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *announced {
        return;
    }
    *announced = true;
    let name = if signal == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    // A spinner may be half drawn on the line: start a clean one.
    if terminal::stderr_is_terminal() {
        terminal::to_stderr("\r\x1b[2K");
    }
    terminal::to_stderr(&terminal::message(
        "error: ",
        &format!("interrupted by {name}: the build was stopped and its scratch folders removed"),
    ));
}

/// 128 + the signal's number, as a shell reports a process ended by it.
fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}
