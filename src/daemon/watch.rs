//! The upstream watcher: a thread holding its own idle connection to the
//! upstream and blocking on it. When the upstream's postmaster dies its
//! backends exit and the socket closes, so the loss is reported at once
//! instead of at the next monitoring tick. A hung (not dead) upstream keeps
//! the socket open; the per-tick check with a deadline catches that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use super::signals::Wake;
use crate::conninfo::ConnInfo;

/// Stops the watcher when dropped (it notices within one poll step).
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long one blocking wait lasts before the stop flag is checked. A
/// closed connection wakes the wait at once whatever this is; it only
/// bounds how long a dropped watcher lingers (with its idle connection),
/// so it is long enough to cost nothing while idle.
const STEP: Duration = Duration::from_secs(5);

/// Starts watching `ci`; a lost connection sends `Wake::UpstreamLost(generation)`.
pub fn start(ci: &ConnInfo, generation: u64, tx: Sender<Wake>) -> Option<Watcher> {
    let mut client = crate::db::connect::connect(ci, crate::db::reach::DAEMON_APP_NAME).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("upstream-watch".into())
        .spawn(move || loop {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            let lost = client.wait_closed(STEP);
            if lost {
                if !flag.load(Ordering::Relaxed) {
                    let _ = tx.send(Wake::UpstreamLost(generation));
                }
                return;
            }
        })
        .ok()?;
    Some(Watcher { stop })
}
