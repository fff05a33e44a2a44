//! The lock around this repmgrd's writes and clears of primary_conninfo,
//! and the count of its writes: shared by the jobs that write it and the
//! main loop's end of a superseded stream (see `end_stream`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// The lock and the count. The count is read without the lock (the
/// main loop never waits for a job to read it).
#[derive(Clone, Default)]
pub(super) struct ConninfoWrites(Arc<Inner>);

#[derive(Default)]
struct Inner {
    lock: Mutex<()>,
    count: AtomicU64,
}

/// The lock, held; [`Held::wrote`] counts a write.
pub(super) struct Held<'a> {
    _guard: MutexGuard<'a, ()>,
    count: &'a AtomicU64,
}

impl Held<'_> {
    pub(super) fn wrote(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// Writes counted so far, none of them under way.
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl ConninfoWrites {
    /// Writes counted so far.
    pub(super) fn count(&self) -> u64 {
        self.0.count.load(Ordering::SeqCst)
    }

    /// The lock, waited for at most `limit` (polled: a std mutex has no
    /// timed wait). A poisoned lock is taken all the same: it guards no
    /// data, only the order of the writes.
    pub(super) fn hold(&self, limit: Duration) -> Option<Held<'_>> {
        let inner = &*self.0;
        let take = || match inner.lock.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let guard = take().or_else(|| crate::poll::until(limit, LOCK_POLL, take))?;
        Some(Held {
            _guard: guard,
            count: &inner.count,
        })
    }
}

const LOCK_POLL: Duration = Duration::from_millis(5);

/// How long a job waits for the main loop's clear (a few statements, each
/// bounded by the local connection's deadline) before it gives up.
pub(super) const JOB_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_bounded_and_counts_writes() {
        let w = ConninfoWrites::default();
        let held = w.hold(Duration::ZERO).expect("free lock");
        held.wrote();
        assert_eq!(w.count(), 1);
        let other = w.clone();
        let t = std::time::Instant::now();
        assert!(
            std::thread::spawn(move || other.hold(Duration::from_millis(50)).is_none())
                .join()
                .unwrap_or(false)
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(w.hold(Duration::ZERO).is_some());
    }
}
