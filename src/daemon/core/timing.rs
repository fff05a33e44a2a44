//! Every duration the core decides with, derived from the settings in one
//! place, with the reasoning behind each (repmgrd.8, TIMING, states the
//! same numbers).
//!
//! The safety argument rests on promises that voters make and keep on
//! their own clocks: a voter that acknowledges a primary's heartbeat (or
//! grants a vote) promises not to grant any vote for its lease time
//! [`Settings::lease_ms`] from then. A primary counts a promise as lasting
//! [`discount`] of that from the moment it *sent* the heartbeat (so delay
//! on the way only shortens what it counts), and hard-fences itself before
//! the promises of a majority run out. A candidate needs the votes of a
//! majority, and a voter grants only once every promise it made has
//! expired: the two majorities share a voter, so the old lease has ended,
//! and its holder fenced, before the new one begins.

use super::settings::Settings;
use super::types::Time;

/// How much faster than ours another node's clock may run, in parts per
/// ten thousand (1 %): a promise of `p` ms is counted as `p × 0.99`.
pub const DRIFT_PER_10K: u64 = 100;

/// Fixed allowance against a promise, on top of drift (scheduling delay
/// between receiving a heartbeat and starting its promise).
pub const PROMISE_SLACK_MS: u64 = 50;

/// A repmgrd that starts (or reconnects to its own server) grants no vote
/// for this long, at least: a primary may have counted on it while no
/// repmgrd was connected to its server.
pub const QUARANTINE_MS: u64 = 10_000;

/// The shortest lease: below it a primary would fence on a scheduling
/// hiccup.
pub const MIN_LEASE_MS: u64 = 2_000;

/// How long a promise of `promised` ms can be counted on by the node that
/// sent the request.
pub fn discount(promised: u64) -> u64 {
    promised
        .saturating_sub(promised * DRIFT_PER_10K / 10_000)
        .saturating_sub(PROMISE_SLACK_MS)
}

impl Settings {
    /// The time a standby takes to declare its upstream failed after its
    /// first failed check: (reconnect_attempts − 1) × reconnect_interval.
    pub fn failure_window_ms(&self) -> u64 {
        u64::from(self.reconnect_attempts.saturating_sub(1)) * self.reconnect_interval_ms
    }

    /// What this node promises when it acknowledges a heartbeat or grants
    /// a vote: as long as its own failure window (so a failover after a
    /// crash is not delayed), and at least [`MIN_LEASE_MS`].
    pub fn lease_ms(&self) -> u64 {
        self.failure_window_ms().max(MIN_LEASE_MS)
    }

    /// How often a lease holder renews: four times per lease, and at least
    /// once per monitoring interval.
    pub fn heartbeat_every_ms(&self) -> u64 {
        (self.lease_ms() / 4).clamp(200, self.monitor_interval_ms.max(200))
    }

    /// How long a heartbeat round waits for answers.
    pub fn heartbeat_timeout_ms(&self) -> u64 {
        (self.lease_ms() / 4).clamp(200, 2_000)
    }

    /// How long before its lease ends a lease holder must have been
    /// hard-fenced (stopped or demoted): the time that takes, bounded.
    pub fn stop_margin_ms(&self) -> u64 {
        (self.lease_ms() / 4).max(1_000)
    }

    /// When the read-only fence goes on: once half the lease has passed
    /// without a renewal, or after `primary_isolation_timeout` when that is
    /// set and earlier.
    pub fn soft_fence_after_ms(&self) -> u64 {
        let half = self.lease_ms() / 2;
        match self.isolation_timeout_ms {
            Some(t) => t.min(half),
            None => half,
        }
    }
}

/// A repmgrd's timing as its status row publishes it: what the others
/// compare theirs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub lease_ms: u64,
    pub reconnect_attempts: u32,
    pub reconnect_interval_ms: u64,
    pub monitor_interval_ms: u64,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a lease of {} ms (reconnect_attempts={}, reconnect_interval={}, monitor_interval_secs={})",
            self.lease_ms,
            self.reconnect_attempts,
            self.reconnect_interval_ms / 1000,
            self.monitor_interval_ms / 1000
        )
    }
}

impl Settings {
    /// This node's timing, as published.
    pub fn published(&self) -> Published {
        Published {
            lease_ms: self.lease_ms(),
            reconnect_attempts: self.reconnect_attempts,
            reconnect_interval_ms: self.reconnect_interval_ms,
            monitor_interval_ms: self.monitor_interval_ms,
        }
    }

    /// What in these settings is safe but works against its purpose: a
    /// `primary_isolation_timeout` that the lease overrides, that fences a
    /// healthy primary between two heartbeats, or whose read-only fence
    /// repmgrd can never lift (the bounds repmgrd.8, TIMING, states).
    /// Checked at start and after each SIGHUP.
    pub fn timing_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(t) = self.isolation_timeout_ms else {
            return out;
        };
        let lease = self.lease_ms();
        let half = lease / 2;
        let hiccup = self.heartbeat_every_ms() + lease * DRIFT_PER_10K / 10_000 + PROMISE_SLACK_MS;
        let unlift = lease / 8 + lease * DRIFT_PER_10K / 10_000 + PROMISE_SLACK_MS;
        if t > half {
            out.push(format!(
                "primary_isolation_timeout ({} s) is more than half the lease ({lease} ms): an isolated primary is made read-only after {half} ms",
                t / 1000
            ));
        } else if t <= hiccup {
            out.push(format!(
                "primary_isolation_timeout ({} s) is not above a heartbeat interval plus its allowance ({hiccup} ms): a healthy primary is made read-only between two heartbeats",
                t / 1000
            ));
        } else if t <= unlift {
            out.push(format!(
                "primary_isolation_timeout ({} s) is not above an eighth of the lease plus its allowance ({unlift} ms): repmgrd can never lift the read-only fence it applies",
                t / 1000
            ));
        }
        out
    }
}

/// One warning per other repmgrd (`label`, its published timing) whose
/// timing differs from `mine`: every node is expected to use the same
/// settings, or failover and fencing times differ from node to node.
pub fn timing_differences(mine: Published, others: &[(String, Published)]) -> Vec<String> {
    others
        .iter()
        .filter(|(_, theirs)| *theirs != mine)
        .map(|(label, theirs)| format!("{label} runs with {theirs}; this node with {mine}"))
        .collect()
}

/// How many of the other voters must hold a promise to a lease holder so
/// that no candidate can gather a majority of all `voters` without them:
/// the holder never votes for another while it holds, so a candidate has
/// `voters − 1` to win `voters / 2 + 1` from.
pub fn blocking_others(voters: usize) -> usize {
    voters.saturating_sub(voters / 2 + 1)
}

/// The end of a lease made of `promises` (each: when the request was sent
/// and what was promised), given `voters` voters of whom the holder is
/// one: the latest time that enough promises (see [`blocking_others`])
/// all still hold.
pub fn lease_end(voters: usize, promises: &[(Time, u64)]) -> Option<Time> {
    let others = blocking_others(voters);
    if others == 0 {
        return Some(Time(u64::MAX));
    }
    let mut ends: Vec<Time> = promises
        .iter()
        .map(|(sent, ms)| sent.plus(discount(*ms)))
        .collect();
    if ends.len() < others {
        return None;
    }
    ends.sort_unstable_by(|a, b| b.cmp(a));
    Some(ends[others - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(attempts: u32, interval_s: u64, monitor_s: u64) -> Settings {
        Settings {
            reconnect_attempts: attempts,
            reconnect_interval_ms: interval_s * 1000,
            monitor_interval_ms: monitor_s * 1000,
            ..Settings::default()
        }
    }

    #[test]
    fn the_lease_is_the_failure_window_with_a_floor() {
        // repmgr's defaults: 6 attempts 10 s apart.
        let d = settings(6, 10, 2);
        assert_eq!(d.failure_window_ms(), 50_000);
        assert_eq!(d.lease_ms(), 50_000);
        assert_eq!(d.heartbeat_every_ms(), 2_000);
        assert_eq!(d.stop_margin_ms(), 12_500);
        assert_eq!(d.soft_fence_after_ms(), 25_000);
        // Fast settings: 3 attempts 1 s apart.
        let f = settings(3, 1, 1);
        assert_eq!(f.lease_ms(), 2_000);
        assert_eq!(f.heartbeat_every_ms(), 500);
        assert_eq!(f.heartbeat_timeout_ms(), 500);
        assert_eq!(f.stop_margin_ms(), 1_000);
        // One attempt: no window, the floor holds.
        assert_eq!(settings(1, 1, 1).lease_ms(), MIN_LEASE_MS);
    }

    #[test]
    fn isolation_timeouts_that_defeat_their_purpose_are_named() {
        let with = |t: Option<u64>, attempts: u32, interval_s: u64| Settings {
            isolation_timeout_ms: t,
            ..settings(attempts, interval_s, 2)
        };
        // Unset, or within its useful range (default lease 50 s).
        assert!(with(None, 6, 10).timing_warnings().is_empty());
        assert!(with(Some(10_000), 6, 10).timing_warnings().is_empty());
        assert!(with(Some(25_000), 6, 10).timing_warnings().is_empty());
        let one = |t: u64| {
            let w = with(Some(t), 6, 10).timing_warnings();
            assert_eq!(w.len(), 1, "{t}: {w:?}");
            w[0].clone()
        };
        assert!(one(30_000).contains("more than half the lease (50000 ms)"));
        // H = 2 s, allowance 550 ms.
        assert!(one(2_000).contains("between two heartbeats"));
        assert!(one(0).contains("between two heartbeats"));
        // L/8 + 550 = 6,800 ms.
        assert!(one(3_000).contains("never lift"));
        assert!(one(6_000).contains("never lift"));
    }

    #[test]
    fn differing_published_timing_is_named_per_node() {
        let mine = settings(3, 1, 1).published();
        assert_eq!(mine.lease_ms, 2_000);
        let theirs = settings(7, 1, 1).published();
        let others = vec![
            ("node \"node2\" (ID: 2)".to_string(), mine),
            ("node \"node3\" (ID: 3)".to_string(), theirs),
        ];
        let w = timing_differences(mine, &others);
        assert_eq!(
            w,
            vec![
                "node \"node3\" (ID: 3) runs with a lease of 6000 ms (reconnect_attempts=7, reconnect_interval=1, monitor_interval_secs=1); this node with a lease of 2000 ms (reconnect_attempts=3, reconnect_interval=1, monitor_interval_secs=1)"
                    .to_string()
            ]
        );
        assert!(timing_differences(mine, &others[..1]).is_empty());
    }

    #[test]
    fn a_promise_counts_less_than_it_says() {
        assert_eq!(discount(10_000), 10_000 - 100 - 50);
        assert_eq!(discount(10), 0);
    }

    #[test]
    fn the_lease_ends_when_a_majority_of_promises_has() {
        // Three voters: the holder and one promise make a majority.
        let t = |s: u64| Time(s * 1000);
        let p = [(t(10), 2_000), (t(12), 2_000)];
        assert_eq!(lease_end(3, &p), Some(t(12).plus(discount(2_000))));
        // Five voters: two promises needed; the second latest decides.
        assert_eq!(lease_end(5, &p), Some(t(10).plus(discount(2_000))));
        assert_eq!(lease_end(5, &p[..1]), None);
        // Alone, or two voters (the other cannot win without the
        // holder's vote): always held. Four: one promise blocks, as with
        // three.
        assert_eq!(lease_end(1, &[]), Some(Time(u64::MAX)));
        assert_eq!(lease_end(2, &[]), Some(Time(u64::MAX)));
        assert_eq!(lease_end(4, &p), Some(t(12).plus(discount(2_000))));
    }
}
