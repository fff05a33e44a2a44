//! The voter: what a repmgrd promises and grants, and the durable record
//! of it. Every repmgrd is a voter (a primary refuses while it is one).
//!
//! - A heartbeat from a primary of a term this voter knows to be current
//!   is acknowledged with a promise: no vote for anyone for the lease time.
//!   A heartbeat of an older term is answered "superseded".
//! - A vote is granted only for a term above every term it granted or
//!   knows, once every promise it made has run out, after its start-up
//!   quarantine, while it does not itself see the failed primary, and to a
//!   candidate with at least its WAL. A grant is itself a promise to the
//!   candidate, and it is written (fsynced) before the answer leaves.
//! - No vote at all while the last primary it heard from said it does not
//!   fence itself (it knew of no node that could be promoted
//!   automatically): promoting then could leave two primaries.

use super::settings::Safety;
use super::timing::QUARANTINE_MS;
use super::types::{
    DaemonStatus, HeartbeatReply, Lsn, NodeId, Persisted, Refusal, Term, Time, VoteReply,
    VoteRequest,
};

/// What the voter needs to know of its own node to answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoterView {
    /// The local server runs as a writable (unfenced) primary.
    pub am_primary: bool,
    /// This node still sees the primary named in a vote request healthy:
    /// its last check of it succeeded within the failure window, or its
    /// WAL receiver streams from it.
    pub sees: Option<NodeId>,
    /// A standby's own timeline and WAL position, when it could be
    /// promoted itself (None: a witness, or priority 0): a candidate with
    /// less WAL than another candidate is refused. A node that can never
    /// be promoted does not hold up a failover for the WAL it has (with
    /// synchronous replication the election's own rule covers it).
    pub wal: Option<(u32, Lsn)>,
    pub timeline: u32,
    /// It follows the majority rule, under which a primary that does not
    /// fence itself is never voted against (`failover_quorum=repmgr`
    /// accepts that risk).
    pub needs_fence: bool,
}

/// The voter's state: the durable part and the promises in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteBook {
    pub durable: Persisted,
    /// Until when a promise it made holds, and to whom.
    promise_until: Time,
    promise_to: Option<NodeId>,
    /// No vote before this (start-up, or its server came back).
    quarantine_until: Time,
    /// Every rule on in repmgrd (see `Safety`).
    safety: Safety,
}

impl VoteBook {
    pub fn new(durable: Persisted, now: Time, lease_ms: u64) -> VoteBook {
        VoteBook {
            durable,
            promise_until: Time(0),
            promise_to: None,
            quarantine_until: now.plus(lease_ms.max(QUARANTINE_MS)),
            safety: Safety::default(),
        }
    }

    /// The rules in force (only the simulation's self-test switches one
    /// off).
    pub fn set_safety(&mut self, safety: Safety) {
        self.safety = safety;
        if !safety.quarantine {
            self.quarantine_until = Time(0);
        }
    }

    /// The local server came back after being unreachable: a primary may
    /// have counted this node as one without a repmgrd in the meantime.
    pub fn requarantine(&mut self, now: Time, lease_ms: u64) {
        if !self.safety.quarantine {
            return;
        }
        self.quarantine_until = self
            .quarantine_until
            .max(now.plus(lease_ms.max(QUARANTINE_MS)));
    }

    /// The highest term this voter knows of, granted or seen.
    pub fn highest_term(&self) -> Term {
        self.durable.granted_term.max(self.durable.known_term)
    }

    /// Who acts in [`Self::highest_term`], when known.
    pub fn highest_holder(&self) -> Option<NodeId> {
        if self.durable.granted_term >= self.durable.known_term {
            self.durable.granted_to
        } else {
            self.durable.known_primary
        }
    }

    /// It promised someone not to vote, or sits out its quarantine.
    pub fn bound_until(&self) -> Time {
        self.promise_until.max(self.quarantine_until)
    }

    /// A primary (or a candidate that won `term`) renews its lease.
    /// Returns the answer, and the durable state when it changed.
    pub fn on_heartbeat(
        &mut self,
        now: Time,
        from: NodeId,
        term: Term,
        fences: bool,
        lease_ms: u64,
    ) -> (HeartbeatReply, Option<Persisted>) {
        let highest = self.highest_term();
        let holder = self.highest_holder();
        // An older term, or the same term held by another node.
        if term < highest || (term == highest && holder.is_some_and(|h| h != from)) {
            return (
                HeartbeatReply::Superseded {
                    term: highest,
                    by: holder,
                },
                None,
            );
        }
        let mut changed = None;
        if term > self.durable.known_term
            || self.durable.known_primary != Some(from)
            || self.durable.known_fences != fences
        {
            self.durable.known_term = self.durable.known_term.max(term);
            self.durable.known_primary = Some(from);
            self.durable.known_fences = fences;
            changed = Some(self.durable);
        }
        self.promise_until = self.promise_until.max(now.plus(lease_ms));
        self.promise_to = Some(from);
        (
            HeartbeatReply::Ack {
                promise_ms: lease_ms,
                known_term: self.durable.known_term,
            },
            changed,
        )
    }

    /// A candidate asks for this voter's vote.
    pub fn on_vote(
        &mut self,
        now: Time,
        req: &VoteRequest,
        view: &VoterView,
        lease_ms: u64,
    ) -> (VoteReply, Option<Persisted>) {
        match self.refusal(now, req, view) {
            Some(r) => (VoteReply::Refused(r), None),
            None if req.pre => (VoteReply::Granted { promise_ms: 0 }, None),
            None if self.durable.granted_term == req.term => (
                VoteReply::Granted {
                    promise_ms: lease_ms,
                },
                None,
            ),
            None => {
                self.durable.granted_term = req.term;
                self.durable.granted_to = Some(req.candidate);
                self.promise_until = self.promise_until.max(now.plus(lease_ms));
                self.promise_to = Some(req.candidate);
                (
                    VoteReply::Granted {
                        promise_ms: lease_ms,
                    },
                    Some(self.durable),
                )
            }
        }
    }

    fn refusal(&self, now: Time, req: &VoteRequest, view: &VoterView) -> Option<Refusal> {
        let d = &self.durable;
        // The same request again (a retry) gets the same answer.
        if req.term == d.granted_term && d.granted_to == Some(req.candidate) {
            return None;
        }
        if req.term <= d.granted_term {
            return Some(Refusal::TermTaken {
                granted: d.granted_term,
                to: d.granted_to,
            });
        }
        if req.term <= d.known_term {
            return Some(Refusal::Stale {
                known: d.known_term,
            });
        }
        if view.am_primary {
            return Some(Refusal::IsPrimary);
        }
        if let (Some(primary), false, true) = (d.known_primary, d.known_fences, view.needs_fence) {
            return Some(Refusal::NoFence { primary });
        }
        let bound = if self.promise_to == Some(req.candidate) {
            self.quarantine_until
        } else {
            self.bound_until()
        };
        if now < bound && self.safety.voters_keep_promises {
            return Some(Refusal::LeaseHeld {
                left_ms: bound.since(now),
            });
        }
        if view.sees == Some(req.failed) && self.safety.prevote {
            return Some(Refusal::PrimaryVisible);
        }
        if let Some((tli, lsn)) = view.wal {
            let behind = if self.safety.newest_timeline {
                tli > req.timeline || (tli == req.timeline && lsn > req.lsn)
            } else {
                lsn > req.lsn
            };
            if behind {
                return Some(Refusal::MoreWal { lsn });
            }
        }
        None
    }

    /// What a status request is answered with.
    pub fn status(&self, now: Time, view: &VoterView) -> DaemonStatus {
        DaemonStatus {
            granted_term: self.durable.granted_term,
            granted_to: self.durable.granted_to,
            known_term: self.durable.known_term,
            holds_lease: now < self.bound_until() || view.sees.is_some() || view.am_primary,
            automatic: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: u64 = 2_000;

    fn book() -> VoteBook {
        VoteBook::new(Persisted::default(), Time(0), L)
    }

    fn req(term: Term, candidate: NodeId, lsn: Lsn) -> VoteRequest {
        VoteRequest {
            term,
            candidate,
            failed: 1,
            timeline: 1,
            lsn,
            pre: false,
        }
    }

    fn standby_view(lsn: Lsn) -> VoterView {
        VoterView {
            wal: Some((1, lsn)),
            timeline: 1,
            needs_fence: true,
            ..VoterView::default()
        }
    }

    const AFTER_QUARANTINE: Time = Time(QUARANTINE_MS + 1);

    #[test]
    fn no_vote_during_the_start_up_quarantine() {
        let mut b = book();
        let (r, p) = b.on_vote(Time(5_000), &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(
            r,
            VoteReply::Refused(Refusal::LeaseHeld {
                left_ms: QUARANTINE_MS - 5_000
            })
        );
        assert!(p.is_none());
        let (r, p) = b.on_vote(AFTER_QUARANTINE, &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(r, VoteReply::Granted { promise_ms: L });
        assert_eq!(
            p,
            Some(Persisted {
                granted_term: 2,
                granted_to: Some(2),
                ..Persisted::default()
            })
        );
    }

    #[test]
    fn an_acknowledged_heartbeat_is_a_promise_not_to_vote() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        let (r, p) = b.on_heartbeat(t, 1, 1, true, L);
        assert_eq!(
            r,
            HeartbeatReply::Ack {
                promise_ms: L,
                known_term: 1
            }
        );
        assert_eq!(p.map(|p| p.known_primary), Some(Some(1)));
        let (r, _) = b.on_vote(t.plus(L - 1), &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(r, VoteReply::Refused(Refusal::LeaseHeld { left_ms: 1 }));
        let (r, _) = b.on_vote(t.plus(L), &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(r, VoteReply::Granted { promise_ms: L });
    }

    /// SIGHUP may shorten the lease (Core::on_reload swaps the settings):
    /// a promise made under the longer one still runs to its end.
    #[test]
    fn a_promise_outlives_a_shorter_lease_after_a_reload() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        let long = 50_000;
        let (r, _) = b.on_heartbeat(t, 1, 1, true, long);
        assert!(matches!(r, HeartbeatReply::Ack { promise_ms, .. } if promise_ms == long));
        // Now asked under the new, shorter lease.
        let (r, p) = b.on_vote(t.plus(10_000), &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(
            r,
            VoteReply::Refused(Refusal::LeaseHeld { left_ms: 40_000 })
        );
        assert!(p.is_none());
        let (r, _) = b.on_vote(t.plus(long), &req(2, 2, 10), &standby_view(5), L);
        assert_eq!(r, VoteReply::Granted { promise_ms: L });
    }

    #[test]
    fn one_vote_per_term_and_never_below_a_granted_one() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        assert_eq!(
            b.on_vote(t, &req(3, 2, 10), &standby_view(5), L).0,
            VoteReply::Granted { promise_ms: L }
        );
        // The same candidate asking again gets the same answer.
        assert_eq!(
            b.on_vote(t, &req(3, 2, 10), &standby_view(5), L).0,
            VoteReply::Granted { promise_ms: L }
        );
        // Another candidate, same or lower term: refused.
        for term in [2, 3] {
            assert_eq!(
                b.on_vote(t.plus(10 * L), &req(term, 3, 10), &standby_view(5), L)
                    .0,
                VoteReply::Refused(Refusal::TermTaken {
                    granted: 3,
                    to: Some(2)
                })
            );
        }
        // A grant is a promise to the candidate: a higher term for another
        // candidate must wait for it to run out.
        assert!(matches!(
            b.on_vote(t.plus(1), &req(4, 3, 10), &standby_view(5), L).0,
            VoteReply::Refused(Refusal::LeaseHeld { .. })
        ));
        assert_eq!(
            b.on_vote(t.plus(L), &req(4, 3, 10), &standby_view(5), L).0,
            VoteReply::Granted { promise_ms: L }
        );
    }

    #[test]
    fn a_voter_with_more_wal_or_that_sees_the_primary_refuses() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        assert_eq!(
            b.on_vote(t, &req(2, 2, 10), &standby_view(11), L).0,
            VoteReply::Refused(Refusal::MoreWal { lsn: 11 })
        );
        let newer_timeline = VoterView {
            wal: Some((2, 1)),
            ..standby_view(1)
        };
        assert!(matches!(
            b.on_vote(t, &req(2, 2, 10), &newer_timeline, L).0,
            VoteReply::Refused(Refusal::MoreWal { .. })
        ));
        let sees = VoterView {
            sees: Some(1),
            ..standby_view(5)
        };
        assert_eq!(
            b.on_vote(t, &req(2, 2, 10), &sees, L).0,
            VoteReply::Refused(Refusal::PrimaryVisible)
        );
        let primary = VoterView {
            am_primary: true,
            ..VoterView::default()
        };
        assert_eq!(
            b.on_vote(t, &req(2, 2, 10), &primary, L).0,
            VoteReply::Refused(Refusal::IsPrimary)
        );
        // A witness has no WAL to compare.
        let witness = VoterView::default();
        assert_eq!(
            b.on_vote(t, &req(2, 2, 10), &witness, L).0,
            VoteReply::Granted { promise_ms: L }
        );
    }

    #[test]
    fn heartbeats_of_an_older_term_are_told_they_are_superseded() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        assert_eq!(
            b.on_vote(t, &req(5, 2, 10), &standby_view(5), L).0,
            VoteReply::Granted { promise_ms: L }
        );
        assert_eq!(
            b.on_heartbeat(t, 1, 4, true, L).0,
            HeartbeatReply::Superseded {
                term: 5,
                by: Some(2)
            }
        );
        // The winner's own heartbeats in its term are acknowledged.
        assert!(matches!(
            b.on_heartbeat(t, 2, 5, true, L).0,
            HeartbeatReply::Ack { .. }
        ));
        // Another node claiming the same term is not.
        assert!(matches!(
            b.on_heartbeat(t, 3, 5, true, L).0,
            HeartbeatReply::Superseded { .. }
        ));
        // A stale request below the known term is refused.
        let mut c = book();
        c.on_heartbeat(t, 1, 7, true, L);
        assert_eq!(
            c.on_vote(t.plus(10 * L), &req(6, 2, 10), &standby_view(5), L)
                .0,
            VoteReply::Refused(Refusal::Stale { known: 7 })
        );
    }

    #[test]
    fn a_pre_vote_records_nothing() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        let pre = VoteRequest {
            pre: true,
            ..req(2, 2, 10)
        };
        assert_eq!(
            b.on_vote(t, &pre, &standby_view(5), L),
            (VoteReply::Granted { promise_ms: 0 }, None)
        );
        assert_eq!(b.durable.granted_term, 0);
        // Another candidate can still have the real vote.
        assert!(matches!(
            b.on_vote(t, &req(2, 3, 10), &standby_view(5), L).0,
            VoteReply::Granted { .. }
        ));
    }

    #[test]
    fn what_was_granted_survives_a_restart() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        let (_, p) = b.on_vote(t, &req(3, 2, 10), &standby_view(5), L);
        let restarted = VoteBook::new(p.unwrap(), Time(0), L);
        let mut r = restarted;
        assert!(matches!(
            r.on_vote(
                Time(10 * QUARANTINE_MS),
                &req(3, 4, 10),
                &standby_view(5),
                L
            )
            .0,
            VoteReply::Refused(Refusal::TermTaken { granted: 3, .. })
        ));
    }

    #[test]
    fn no_vote_while_the_last_primary_heard_does_not_fence_itself() {
        let mut b = book();
        let t = AFTER_QUARANTINE;
        let (_, p) = b.on_heartbeat(t, 1, 1, false, L);
        assert_eq!(p.map(|p| p.known_fences), Some(false));
        assert_eq!(
            b.on_vote(t.plus(10 * L), &req(2, 2, 10), &standby_view(5), L)
                .0,
            VoteReply::Refused(Refusal::NoFence { primary: 1 })
        );
        // The same primary saying it fences now lifts that.
        let (_, p) = b.on_heartbeat(t.plus(10 * L), 1, 1, true, L);
        assert_eq!(p.map(|p| p.known_fences), Some(true));
        assert!(matches!(
            b.on_vote(t.plus(20 * L), &req(2, 2, 10), &standby_view(5), L)
                .0,
            VoteReply::Granted { .. }
        ));
    }
}
