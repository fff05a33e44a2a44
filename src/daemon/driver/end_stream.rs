//! Ending a WAL stream from a superseded node (the core's `EndStream`)
//! without undoing a follow that runs at the same time.
//!
//! The main loop clears primary_conninfo; a follow job, on a worker
//! thread, writes it. Checked naively ("does the receiver still stream
//! from that node?") the two race: a follow that writes between the check
//! and the clear, or that has written and reloaded while the receiver has
//! not restarted yet (it still shows the old sender), would have its fresh
//! primary_conninfo cleared. So every job that writes primary_conninfo
//! does it under the lock of `writes` and counts the write there;
//! the clear runs under the same lock and only when no write happened
//! since the local observation the core decided on. Skipping only delays:
//! the core asks again next cycle, with fresh facts.

use std::time::Duration;

use super::Driver;
use crate::daemon::core::types::*;
use crate::db;

/// How long the main loop waits for a job's write to finish before it
/// skips this cycle's clear (a follow that restarts the server holds the
/// lock for the restart; the loop must stay responsive to signals).
const MAIN_LOOP_WAIT: Duration = Duration::from_millis(200);

/// How long a standby waits for its WAL receiver to end by itself after
/// its stream from a superseded node was cut (the main loop waits).
const RECEIVER_END_WAIT: Duration = Duration::from_millis(500);

/// What end_stream does with the stream the core found superseded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Clear,
    /// This repmgrd wrote primary_conninfo since the observation the core
    /// decided on: the receiver may be about to restart towards another
    /// node; the core asks again with fresh facts.
    SkipWritten,
    /// The receiver streams from another node (or not at all) by now.
    SkipSender,
}

/// Clear only when no write happened since the observation (`seen`, the
/// count then; `now`, the count under the lock) and the receiver still
/// streams from `from`.
pub(super) fn decide(seen: u64, now: u64, from: NodeId, sender: Option<NodeId>) -> Decision {
    if now != seen {
        Decision::SkipWritten
    } else if sender != Some(from) {
        Decision::SkipSender
    } else {
        Decision::Clear
    }
}

impl Driver {
    /// The core found the local WAL receiver streaming from `from`, which
    /// term `term` superseded: under the write lock, unless [`decide`]
    /// says otherwise, clear primary_conninfo and reload (each statement
    /// bounded by the local connection's deadline), then end a receiver
    /// still running after a moment (an auxiliary process:
    /// pg_terminate_backend refuses it; repmgrd runs on the server's host
    /// as its user). The core repeats this each cycle while it streams.
    pub(super) fn end_stream(&mut self, from: NodeId, term: Term) {
        let seen = self.writes_seen;
        let writes = self.writes.clone();
        let Some(held) = writes.hold(MAIN_LOOP_WAIT) else {
            crate::log_debug!(
                "not ending the WAL stream from node {from} now: primary_conninfo is being written"
            );
            return;
        };
        let Some(c) = self.local.as_mut() else {
            return;
        };
        let sender = match db::server::wal_receiver_sender(c) {
            Ok(Some((host, port))) => {
                super::observe::sender_node(&self.nodes, Some(&host), Some(port))
            }
            Ok(None) => None,
            Err(e) => {
                crate::log_warning!("unable to read the WAL receiver: {}", e.reason());
                return;
            }
        };
        match decide(seen, held.count(), from, sender) {
            Decision::Clear => {}
            Decision::SkipWritten => {
                crate::log_debug!(
                    "not ending the WAL stream from node {from}: primary_conninfo was written since the last look at the local node"
                );
                return;
            }
            Decision::SkipSender => return,
        }
        if let Err(e) = db::server::clear_primary_conninfo(c) {
            crate::log_warning!(
                "unable to end the WAL stream from node {from} (superseded in term {term}): {}",
                e.reason()
            );
            return;
        }
        drop(held);
        // The startup process ends the receiver itself once it has the
        // reload; a receiver still streaming from that node after
        // RECEIVER_END_WAIT is ended by signal (the reload was slow to
        // arrive: a new receiver then starts with no primary_conninfo).
        let ended = crate::poll::until(RECEIVER_END_WAIT, Duration::from_millis(20), || {
            match db::server::wal_receiver_sender(c) {
                Ok(Some((host, port))) => {
                    let still = super::observe::sender_node(&self.nodes, Some(&host), Some(port));
                    (still != Some(from)).then_some(())
                }
                Ok(None) | Err(_) => Some(()),
            }
        });
        // A follow that wrote meanwhile restarts the receiver itself; the
        // one running now may already be its new one.
        if ended.is_none() && writes.count() == seen {
            if let Ok(Some(pid)) = db::server::wal_receiver_pid(c) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_since_the_observation_skips_the_clear() {
        assert_eq!(decide(3, 4, 1, Some(1)), Decision::SkipWritten);
        assert_eq!(decide(3, 4, 1, Some(2)), Decision::SkipWritten);
    }

    #[test]
    fn a_receiver_on_another_sender_or_none_is_left_alone() {
        assert_eq!(decide(3, 3, 1, Some(2)), Decision::SkipSender);
        assert_eq!(decide(3, 3, 1, None), Decision::SkipSender);
    }

    #[test]
    fn the_same_sender_and_no_write_clears() {
        assert_eq!(decide(0, 0, 1, Some(1)), Decision::Clear);
    }
}
