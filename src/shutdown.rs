//! The process-wide stop request. repmgrd's signal thread sets it on
//! SIGTERM or SIGINT; every bounded wait below the daemon (a query, a
//! connect, a child process, a sleep) looks at it and gives up early, so a
//! stop is honoured within about [`POLL`] whatever the daemon waits on.
//!
//! Once the daemon's loop has ended, [`finish`] opens a short window
//! ([`FINAL_WRITES`]) in which waits run again, so that the last writes
//! (repmgrd's stop in the metadata, the shutdown event) are not cut off by
//! the very stop they record. The window is bounded: a frozen server can
//! delay the exit by at most that much, and another signal ends it at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const FINISHING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(RUNNING);
static FINISH_BY: Mutex<Option<Instant>> = Mutex::new(None);

/// How often waits look at the flag.
pub const POLL: Duration = Duration::from_millis(100);

/// How long the last writes after a stop may take in all.
pub const FINAL_WRITES: Duration = Duration::from_millis(1_000);

/// Asks every wait to end (during the final writes: ends them too).
pub fn request() {
    STATE.store(STOPPING, Ordering::SeqCst);
}

/// Whether waits should give up now.
pub fn requested() -> bool {
    match STATE.load(Ordering::SeqCst) {
        RUNNING => false,
        FINISHING => FINISH_BY
            .lock()
            .map_or(true, |by| by.is_none_or(|t| Instant::now() >= t)),
        _ => true,
    }
}

/// After a stop, once nothing else runs: lets waits run for at most
/// [`FINAL_WRITES`] more. Does nothing unless a stop was requested.
pub fn finish() {
    if let Ok(mut by) = FINISH_BY.lock() {
        *by = Some(Instant::now() + FINAL_WRITES);
    }
    let _ = STATE.compare_exchange(STOPPING, FINISHING, Ordering::SeqCst, Ordering::SeqCst);
}
