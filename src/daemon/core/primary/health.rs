//! A primary's lease and fence as the health view reads them
//! ([`crate::daemon::core::health`]), with the fence thresholds that
//! `evaluate` acts on, so that the two can never disagree.

use super::super::health::LeaseView;
use super::super::settings::Settings;
use super::super::types::*;
use super::{Lease, Primary};

/// When a primary fences itself, as times left on its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Thresholds {
    /// How long the voters promise now.
    pub lease: u64,
    /// Stopped when no more than this is left.
    pub stop_margin: u64,
    /// Read-only when less than this is left.
    pub soft_at: u64,
}

impl Lease {
    /// How long before this lease ends its holder must be stopped: a
    /// quarter of what the voters promise now, at least a second. A
    /// candidate measures its votes with the same margin as the primary
    /// it becomes (its own settings' margin, longer when its voters
    /// promise less than it would, could never be met by renewals four
    /// times per promise).
    pub(in super::super) fn stop_margin(&self, s: &Settings) -> u64 {
        let span = self.span(s.lease_ms());
        (span / 4).max(1_000).min(span)
    }
}

impl Primary {
    /// The thresholds scale with what the voters actually promise.
    pub(super) fn thresholds(&self, s: &Settings) -> Thresholds {
        let lease = self.lease.span(s.lease_ms());
        let stop_margin = self.lease.stop_margin(s);
        let soft_after = match s.isolation_timeout_ms {
            Some(t) => t.min(lease / 2),
            None => lease / 2,
        };
        Thresholds {
            lease,
            stop_margin,
            soft_at: lease - soft_after,
        }
    }

    /// Time left on the lease a majority promised (0: none, or run out).
    pub(super) fn lease_left(&self, now: Time) -> u64 {
        self.lease.end().map_or(0, |e| e.since(now))
    }

    /// The same, of the promises that reported no higher term (every
    /// promise, with `unfence_evidence` off in the simulation's self-test).
    pub(super) fn evidence_left(&self, s: &Settings, now: Time) -> u64 {
        if !s.safety.unfence_evidence {
            return self.lease_left(now);
        }
        self.lease.reported_end().map_or(0, |e| e.since(now))
    }

    pub(in super::super) fn lease_view(&self, s: &Settings, now: Time) -> LeaseView {
        let t = self.thresholds(s);
        let left = self.lease_left(now);
        LeaseView {
            majority: left >= t.soft_at.max(t.stop_margin + 1),
            fenced: self.applied.is_some() || self.applying.is_some(),
            superseded: self.superseded.map(|(term, _)| term),
            down: self.down_since.is_some(),
        }
    }
}

#[cfg(test)]
impl Primary {
    /// `primary`, or `primary/` and what holds it back, for the phase
    /// tests: `superseded`, the fence applied (`read-only`, `stopped`,
    /// `demoted`), `down`.
    pub(in super::super) fn phase_name(&self) -> String {
        let mut parts = Vec::new();
        if self.superseded.is_some() {
            parts.push("superseded");
        }
        match self.applied {
            Some(FenceHow::ReadOnly) => parts.push("read-only"),
            Some(FenceHow::Stop) => parts.push("stopped"),
            Some(FenceHow::Kill) => parts.push("killed"),
            Some(FenceHow::Demote { .. }) => parts.push("demoted"),
            None => {}
        }
        if self.down_since.is_some() {
            parts.push("down");
        }
        match parts.is_empty() {
            true => "primary".into(),
            false => format!("primary/{}", parts.join("+")),
        }
    }
}
