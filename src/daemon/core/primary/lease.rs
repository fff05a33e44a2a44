//! The lease a primary (or a candidate with votes) holds: each voter's
//! promise not to vote for a while, counted as a majority's, and the
//! renewals that keep it.

use std::collections::BTreeMap;

use super::super::settings::Settings;
use super::super::timing;
use super::super::types::*;

/// Promises a lease holder collected: from each voter, when the request
/// was sent and how long was promised.
///
/// (`pub` in this private module: primary.rs re-exports it to the core;
/// `pub(in super::super)` would read to src/layering.rs as an import of
/// the core, a circle.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub(super) term: Term,
    pub(super) voters: usize,
    promises: BTreeMap<NodeId, (Time, u64)>,
    /// The promises that are also reports that the voter knows no higher
    /// term (acknowledgements and votes; not a voter's server answering
    /// without its repmgrd): what lifting a fence rests on.
    reports: BTreeMap<NodeId, (Time, u64)>,
    /// What each voter promised in its latest answer.
    latest_ms: BTreeMap<NodeId, u64>,
    last_sent: Option<Time>,
}

impl Lease {
    pub fn new(term: Term, voters: usize) -> Lease {
        Lease {
            term,
            voters,
            promises: BTreeMap::new(),
            reports: BTreeMap::new(),
            latest_ms: BTreeMap::new(),
            last_sent: None,
        }
    }

    /// Records a promise that reports no higher term (an acknowledgement
    /// or a vote), keeping whichever of the old and new ends later.
    pub fn promise(&mut self, from: NodeId, sent: Time, ms: u64) {
        self.promise_unreported(from, sent, ms);
        keep_later(&mut self.reports, from, (sent, ms));
    }

    /// A promise that reports nothing: a voter's server answering with
    /// no repmgrd (that repmgrd, once started, sits out its quarantine,
    /// but it may have voted before it stopped).
    pub fn promise_unreported(&mut self, from: NodeId, sent: Time, ms: u64) {
        self.latest_ms.insert(from, ms);
        keep_later(&mut self.promises, from, (sent, ms));
    }

    /// When a majority's promises have all run out.
    pub fn end(&self) -> Option<Time> {
        let p: Vec<(Time, u64)> = self.promises.values().copied().collect();
        timing::lease_end(self.voters, &p)
    }

    /// The same, counting only the promises that reported no higher term.
    pub fn reported_end(&self) -> Option<Time> {
        let p: Vec<(Time, u64)> = self.reports.values().copied().collect();
        timing::lease_end(self.voters, &p)
    }

    /// How long the voters promise now: the shortest of their latest
    /// promises. Fence times are measured against it, since voters with
    /// other settings promise other lengths. (Not the promises kept for
    /// the lease's end: a longer one kept from before, such as the 10 s a
    /// voter without repmgrd counts for, would stretch every threshold and
    /// fence a primary whose voters all answer.)
    pub fn span(&self, fallback: u64) -> u64 {
        self.latest_ms.values().copied().min().unwrap_or(fallback)
    }

    /// Renewals come four times per promise, and at least as often as
    /// this node's own settings say.
    pub fn next_renewal(&self, s: &Settings) -> Time {
        self.last_sent
            .map_or(Time(0), |t| t.plus(self.renewal_every(s)))
    }

    /// The interval between renewals.
    pub fn renewal_every(&self, s: &Settings) -> u64 {
        s.heartbeat_every_ms()
            .min((self.span(s.lease_ms()) / 4).max(200))
    }

    pub fn renewal_sent(&mut self, now: Time) {
        self.last_sent = Some(now);
    }

    /// Voters whose promise has more than `left` ms still to run: those
    /// that keep the lease above a fence threshold, for the "sees N
    /// voters" lines. (Counting those that answered lately said "sees 3
    /// of 3" at the very moment a primary fenced itself: the silence
    /// that fences is shorter than "lately" was.)
    pub fn holding(&self, now: Time, left: u64) -> usize {
        self.promises
            .values()
            .filter(|(sent, ms)| sent.plus(timing::discount(*ms)) > now.plus(left))
            .count()
    }
}

/// Keeps whichever of `from`'s old promise and `new` ends later.
fn keep_later(m: &mut BTreeMap<NodeId, (Time, u64)>, from: NodeId, new: (Time, u64)) {
    let end = |(t, ms): (Time, u64)| t.plus(timing::discount(ms));
    match m.get(&from) {
        Some(old) if end(*old) >= end(new) => {}
        _ => {
            m.insert(from, new);
        }
    }
}
