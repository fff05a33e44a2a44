//! The process-wide stop request. repmgrd's signal thread sets it on
//! SIGTERM or SIGINT; every bounded wait below the daemon (a query, a
//! connect, a child process, a sleep) looks at it and gives up early, so a
//! stop is honoured within about [`POLL`] whatever the daemon waits on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

/// How often waits look at the flag.
pub const POLL: Duration = Duration::from_millis(100);

/// Asks every wait to end.
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
