//! A winner's votes: the pre-vote (would the voters grant the term?),
//! then the claim of the term itself, and when to re-run an election
//! that fell short.

use super::*;

impl Standby {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask_for_votes(
        &mut self,
        core: &mut Ctx,
        now: Time,
        failed: NodeInfo,
        f: &LocalFacts,
        obs: &[NodeObs],
        visible: usize,
        total: usize,
    ) {
        let highest = obs
            .iter()
            .map(|o| {
                o.term
                    .max(o.daemon.map_or(0, |d| d.granted_term.max(d.known_term)))
            })
            .chain([f.voting_term, core.book.highest_term(), self.seen_term])
            .max()
            .unwrap_or(0);
        let term = highest + 1;
        // Without a heartbeat heard, the failed primary's published word
        // that it fences itself must stand in (see `primary`). A primary
        // whose repmgrd never ran cannot fence itself at all: promoting
        // is what repmgr does, and the log says what that risks.
        if core.s.quorum == Quorum::Majority && core.book.durable.known_primary.is_none() {
            if !failed.published {
                core.log(
                    Level::Warning,
                    format!("primary {failed} has never run repmgrd: it cannot fence itself, and if it is only cut off it keeps taking writes"),
                );
            } else if !failed.fences {
                core.log(
                    Level::Warning,
                    format!("this node won the election but never heard primary {failed} say it fences itself; not promoting"),
                );
                self.degrade(core, now, Some(failed), true);
                return;
            }
        }
        let ask = Ask {
            term,
            visible,
            total,
            pre: true,
        };
        self.start_voting(core, now, failed, f, ask);
    }

    /// Enters the (pre-)vote step of `ask` and sends its requests.
    fn start_voting(
        &mut self,
        core: &mut Ctx,
        now: Time,
        failed: NodeInfo,
        f: &LocalFacts,
        ask: Ask,
    ) {
        let request = vote_request(core, &failed, f, ask.term, ask.pre);
        self.phase = Phase::Electing {
            failed,
            step: Step::Voting {
                term: ask.term,
                sent: now,
                visible: ask.visible,
                total: ask.total,
                pre: ask.pre,
            },
        };
        self.send_votes(core, now, request, ask.visible, ask.total);
    }

    /// Asks every other voter; this node's own answer (by the same rules)
    /// counts first. A real vote of its own is recorded like any other.
    pub(super) fn send_votes(
        &mut self,
        core: &mut Ctx,
        now: Time,
        request: VoteRequest,
        visible: usize,
        total: usize,
    ) {
        let view = core.voter_view(
            false,
            self.sees_primary(&core.s, now, core.facts.as_ref()),
            false,
        );
        let lease = core.s.lease_ms();
        let (mine, p) = core.book.on_vote(now, &request, &view, lease);
        core.persist(p);
        if let VoteReply::Refused(why) = mine {
            let failed = match &self.phase {
                Phase::Electing { failed, .. } => failed.clone(),
                _ => return,
            };
            core.log(
                Level::Warning,
                format!(
                    "this node won the election but cannot vote for itself ({why}); not promoting"
                ),
            );
            // A promise running out is worth waiting for, not a whole
            // re-run interval.
            let lefts: Vec<u64> = match why {
                Refusal::LeaseHeld { left_ms } => vec![left_ms],
                _ => Vec::new(),
            };
            let at = rerun_at(&core.s, now, &lefts, 1);
            self.degrade_until(now, Some(failed), Some(at));
            return;
        }
        let me = core.s.node_id;
        let to: Vec<NodeId> = core
            .nodes()
            .iter()
            .filter(|n| n.is_voter() && n.id != me && n.id != request.failed)
            .map(|n| n.id)
            .collect();
        // This node's own answer is one; a majority of every voter is
        // needed (repmgr's rule: every visible voter).
        let needed = match core.s.quorum {
            Quorum::Majority => (total / 2 + 1).saturating_sub(1),
            Quorum::Repmgr => visible.saturating_sub(1),
        };
        core.pending.votes = true;
        core.out.push(Action::RequestVotes {
            request,
            to,
            needed,
        });
    }

    // Long: pre-vote and vote answers share the counting, the refusal
    // reasons and the re-run timing; one function keeps them in step.
    pub(super) fn on_votes(
        &mut self,
        core: &mut Ctx,
        now: Time,
        term: Term,
        replies: &[(NodeId, VoteReply)],
    ) {
        let Phase::Electing {
            failed,
            step:
                Step::Voting {
                    term: t,
                    sent,
                    visible,
                    total,
                    pre,
                },
        } = self.phase.clone()
        else {
            return;
        };
        if t != term {
            return;
        }
        let mut lease = Lease::new(term, total);
        let mut granted = 1;
        let mut lefts = Vec::new();
        for (id, r) in replies {
            match r {
                VoteReply::Granted { promise_ms } => {
                    granted += 1;
                    lease.promise(*id, sent, *promise_ms);
                }
                VoteReply::Refused(why) => {
                    core.log(Level::Info, format!("node {id} refused its vote: {why}"));
                    if let Refusal::LeaseHeld { left_ms } = why {
                        lefts.push(*left_ms);
                    }
                    if let Refusal::TermTaken { granted, .. } | Refusal::Stale { known: granted } =
                        why
                    {
                        self.seen_term = self.seen_term.max(*granted);
                    }
                }
                VoteReply::Silent => {
                    core.log(Level::Info, format!("node {id} cannot vote: no answer"))
                }
            }
        }
        let enough = match core.s.quorum {
            Quorum::Majority => granted * 2 > total,
            Quorum::Repmgr => granted >= visible,
        };
        if pre {
            if !enough {
                core.log(
                    Level::Warning,
                    format!("this node won the election but only {granted} of {total} voters would grant term {term}; not promoting"),
                );
                let missing = (total / 2 + 1).saturating_sub(granted);
                let at = rerun_at(&core.s, now, &lefts, missing);
                self.degrade_until(now, Some(failed), Some(at));
                return;
            }
            let Some(f) = core.facts.clone() else {
                self.degrade(core, now, Some(failed), true);
                return;
            };
            let ask = Ask {
                term,
                visible,
                total,
                pre: false,
            };
            self.start_voting(core, now, failed, &f, ask);
            return;
        }
        core.log(
            Level::Info,
            format!("claim of voting term {term}: {granted} of {total} voters granted"),
        );
        if !enough {
            core.log(
                Level::Warning,
                "this node won the election but could not claim the term; not promoting",
            );
            self.degrade(core, now, Some(failed), true);
            return;
        }
        // The votes are promises from `sent`: promote while they hold.
        let until = lease
            .end()
            .map_or(now, |e| e.minus(lease.stop_margin(&core.s)));
        self.phase = Phase::Electing {
            failed: failed.clone(),
            step: Step::Confirming {
                term,
                lease,
                until,
                visible,
                total,
                next: now,
            },
        };
        self.round(core);
    }
}

/// A round of (pre-)votes to start: for `term`, counted against `visible`
/// and `total` voters.
struct Ask {
    term: Term,
    visible: usize,
    total: usize,
    pre: bool,
}

/// This candidate's request for `term` (a pre-vote when `pre`), with the
/// position its local server last gave.
fn vote_request(
    core: &Ctx,
    failed: &NodeInfo,
    f: &LocalFacts,
    term: Term,
    pre: bool,
) -> VoteRequest {
    VoteRequest {
        term,
        candidate: core.s.node_id,
        failed: failed.id,
        timeline: f.timeline,
        lsn: f.lsn,
        pre,
    }
}

/// When to re-run an election that failed for want of `missing` votes,
/// given the promises (`lefts`, ms still to run) that refusing voters are
/// keeping: just after enough of them have run out, when that is sooner
/// than `election_rerun_interval`.
pub(super) fn rerun_at(s: &Settings, now: Time, lefts: &[u64], missing: usize) -> Time {
    let interval = now.plus(s.election_rerun_interval_ms.max(1_000));
    let mut lefts = lefts.to_vec();
    lefts.sort_unstable();
    match missing.checked_sub(1).and_then(|i| lefts.get(i)) {
        // The voter's clock may run slower than ours (1 %), and the
        // answer took a moment to arrive.
        Some(&ms) => interval.min(now.plus(ms + ms / 100 + 100)),
        None => interval,
    }
}
