//! A standby's candidacy: the cluster round, the decision, the votes,
//! the confirming look at the old primary, the promotion and its outcome.

use super::*;

impl Standby {
    // Long: one match over the phases a cluster round can answer.
    pub(super) fn on_cluster(&mut self, core: &mut Ctx, now: Time, obs: &[NodeObs]) {
        for o in obs {
            if o.reachable {
                self.unreachable_since.remove(&o.id);
            } else {
                self.unreachable_since.entry(o.id).or_insert(now);
            }
            let t = o
                .term
                .max(o.daemon.map_or(0, |d| d.granted_term.max(d.known_term)));
            self.seen_term = self.seen_term.max(t);
        }
        let nodes = core.nodes();
        let a_primary = obs.iter().any(|o| {
            o.is_writable_primary()
                && nodes
                    .iter()
                    .any(|n| n.id == o.id && n.kind != NodeKind::Witness)
        });
        if a_primary {
            self.no_primary_since = None;
        } else if self.no_primary_since.is_none() {
            self.no_primary_since = Some(now);
        }
        match self.phase.clone() {
            Phase::Attaching => {
                if let Some(mut p) = self.primary_in(core, obs, None) {
                    // It answers as the primary whatever its record says
                    // (as when following a winner): when it fails, that is
                    // a failed primary to elect against, not an upstream
                    // standby to re-attach from.
                    p.kind = NodeKind::Primary;
                    p.upstream = None;
                    self.set_upstream(core, p);
                }
            }
            Phase::Electing {
                failed,
                step: Step::Gathering { delayed },
            } => self.decide(core, now, failed, obs, delayed),
            Phase::Electing {
                failed,
                step: Step::Confirming { until, .. },
            } => {
                // Right before promoting: a standby that became visible
                // meanwhile may hold WAL this node lacks.
                if let Some(better) = self.better_candidate(core, obs) {
                    core.log(
                        Level::Warning,
                        format!("node {better} has WAL this node lacks; not promoting"),
                    );
                    self.degrade(core, now, Some(failed), true);
                    return;
                }
                let back = obs
                    .iter()
                    .find(|o| o.id == failed.id)
                    .is_some_and(|o| o.is_writable_primary());
                if !back {
                    self.promote(core, now);
                } else if now >= until {
                    core.log(
                        Level::Notice,
                        format!("original primary {failed} reappeared and still takes writes"),
                    );
                    core.event(
                        "repmgrd_failover_aborted",
                        true,
                        format!("original primary {failed} reappeared"),
                        None,
                    );
                    self.degrade(core, now, Some(failed), true);
                }
                // Otherwise wait for it to learn it is superseded and fence.
            }
            Phase::Waiting { failed, .. } => {
                if let Some(p) = self.primary_in(core, obs, Some(failed.id)) {
                    self.follow(core, now, Some(failed), p);
                } else if obs
                    .iter()
                    .find(|o| o.id == failed.id)
                    .is_some_and(|o| o.is_writable_primary() && o.term >= self.known(core))
                {
                    core.log(
                        Level::Notice,
                        format!("original primary {failed} reappeared"),
                    );
                    core.event(
                        "repmgrd_failover_aborted",
                        true,
                        format!("original primary {failed} reappeared"),
                        None,
                    );
                    self.phase = Phase::Healthy;
                    self.upstream = Some(failed.clone());
                    self.watch(core, Some(failed.id));
                }
            }
            Phase::Reattaching { lost } => match self.primary_in(core, obs, Some(lost.id)) {
                Some(p) => self.follow(core, now, Some(lost), p),
                None => {
                    core.log(Level::Warning, "no primary found to re-attach to");
                    self.degrade(core, now, Some(lost), false);
                }
            },
            Phase::Degraded {
                lost,
                next_election,
                ..
            } => self.degraded_round(core, now, obs, lost, next_election),
            _ => {}
        }
    }

    pub(super) fn known(&self, core: &Ctx) -> Term {
        core.book.highest_term()
    }

    /// A node that runs as an unfenced primary of a current term: active
    /// in the metadata, not `except`, and not older than anything this
    /// node knows.
    pub(super) fn primary_in(
        &self,
        core: &Ctx,
        obs: &[NodeObs],
        except: Option<NodeId>,
    ) -> Option<NodeInfo> {
        let known = self.known(core);
        let nodes = core.nodes();
        let checks = core.s.safety.follow_checks;
        obs.iter()
            .filter(|o| o.may_follow(known, core.s.safety))
            .filter(|o| Some(o.id) != except && o.id != core.s.node_id)
            .filter_map(|o| {
                nodes
                    .iter()
                    .find(|n| n.id == o.id && (n.active || !checks) && n.kind != NodeKind::Witness)
            })
            .min_by_key(|n| n.id)
            .cloned()
    }

    // Long: the refusals before a candidacy, in order, each a short early
    // return with its log line and event.
    pub(super) fn decide(
        &mut self,
        core: &mut Ctx,
        now: Time,
        failed: NodeInfo,
        obs: &[NodeObs],
        delayed: bool,
    ) {
        let Some(f) = core.facts.clone() else {
            core.log(
                Level::Warning,
                "unable to gather the cluster state for an election",
            );
            self.degrade(core, now, Some(failed), true);
            return;
        };
        let nodes = f.nodes.clone();
        let Some(me) = nodes.iter().find(|n| n.id == core.s.node_id).cloned() else {
            self.degrade(core, now, Some(failed), true);
            return;
        };
        // This node's own WAL receiver still hears from the failed primary
        // (an unknown sender counts as it), unless that node now answers
        // as a standby itself.
        let failed_is_standby = obs
            .iter()
            .any(|o| o.id == failed.id && o.reachable && o.in_recovery == Some(true));
        let fresh = !failed_is_standby
            && f.receiver.is_some_and(|r| {
                r.streaming
                    && r.last_msg_age <= receiver_window(&core.s)
                    && r.sender.is_none_or(|s| s == failed.id)
            });
        let known = self.known(core);
        let (my_timeline, my_lsn) = obs
            .iter()
            .find(|o| o.id == me.id && o.reachable)
            .map_or((f.timeline, f.lsn), |o| (o.timeline, o.lsn));
        let others: Vec<NodeObs> = obs.iter().filter(|o| o.id != me.id).cloned().collect();
        let obs = &others[..];
        let ballot = Ballot {
            settings: &core.s,
            me: &me,
            my_timeline,
            my_lsn,
            my_receiver_fresh: fresh,
            paused: f.paused,
            failed: &failed,
            nodes: &nodes,
            obs,
            known_term: known,
            sync: SyncSpec::parse(&f.sync_standby_names),
        };
        let outcome = election::decide(&ballot);
        let visible = election::visible_voters(&ballot);
        let total = election::counted_voters(&ballot);
        core.log(
            Level::Info,
            format!("election: {visible} of {total} voter(s) visible, outcome {outcome:?}"),
        );
        match outcome {
            Outcome::NotCandidate(why) => {
                core.log(Level::Notice, format!("not taking action: {why}"));
                if core.s.failover == Failover::Manual {
                    core.event(
                        "standby_disconnect_manual",
                        true,
                        format!(
                            "node {} lost its upstream {failed}; failover is manual",
                            core.me()
                        ),
                        None,
                    );
                }
                self.degrade(core, now, Some(failed), false);
            }
            Outcome::Cancelled(why) => {
                let text = match why {
                    election::Cancel::PrimaryStillVisible { by } if by == core.s.node_id => {
                        "this node still sees the primary (its WAL receiver streams from it)"
                            .to_string()
                    }
                    _ => why.to_string(),
                };
                core.log(Level::Warning, format!("failover cancelled: {text}"));
                if matches!(why, election::Cancel::SyncUnsafe(_)) {
                    core.event(
                        "repmgrd_failover_aborted",
                        false,
                        format!("no promotion after the loss of {failed}: {why}"),
                        None,
                    );
                }
                self.degrade(core, now, Some(failed), true);
            }
            Outcome::FollowExisting { new_primary } => match core.node(new_primary) {
                Some(p) => self.follow(core, now, Some(failed), p),
                None => self.degrade(core, now, Some(failed), true),
            },
            Outcome::Won if core.s.promote_delay_ms > 0 && !delayed => {
                let delay = core.s.promote_delay_ms;
                core.log(
                    Level::Notice,
                    format!(
                        "this node won the election; waiting {} seconds (\"promote_delay\") before promoting",
                        delay / 1000
                    ),
                );
                self.phase = Phase::Electing {
                    failed,
                    step: Step::PromoteDelay {
                        until: now.plus(delay),
                        from_seq: core.check_seq + 1,
                    },
                };
            }
            Outcome::Won if me.upstream.is_none() && !core.s.always_promote => {
                // repmgr's promote_self: stale metadata on the winner.
                core.log(
                    Level::Error,
                    format!(
                        "this node (ID: {}) does not have its upstream_node_id set, not promoting",
                        me.id
                    ),
                );
                core.log(
                    Level::Info,
                    "the local node's metadata has not been updated since it became a standby; set \"always_promote\" to \"true\" to force promotion in this situation",
                );
                core.event(
                    "repmgrd_promote_error",
                    false,
                    format!(
                        "node {} does not have its upstream_node_id set; not promoting",
                        core.me()
                    ),
                    None,
                );
                self.degrade(core, now, Some(failed), true);
            }
            Outcome::Won => {
                if me.upstream.is_none() {
                    core.log(
                        Level::Warning,
                        format!(
                            "this node (ID: {}) does not have its upstream_node_id set, promoting anyway (\"always_promote\" is set to \"true\")",
                            me.id
                        ),
                    );
                }
                self.ask_for_votes(core, now, failed, &f, obs, visible, total)
            }
            Outcome::Lost { winner } => {
                core.log(
                    Level::Notice,
                    format!("node {winner} is the promotion candidate; waiting for it to become primary"),
                );
                self.wait_for(core, now, failed);
            }
            Outcome::NoCandidate => {
                core.log(Level::Warning, "no node is eligible for promotion");
                self.wait_for(core, now, failed);
            }
        }
    }

    pub(super) fn wait_for(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
        self.phase = Phase::Waiting {
            failed,
            until: now.plus(core.s.primary_notification_timeout_ms.max(1_000)),
            next_scan: now.plus(SCAN_MS),
        };
    }

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

    /// A visible standby that could be promoted and has WAL this node
    /// lacks on the same timeline.
    pub(super) fn better_candidate(&self, core: &Ctx, obs: &[NodeObs]) -> Option<NodeId> {
        let me = core.s.node_id;
        // This round's view of this node itself, else the last local read.
        let (tli, lsn) = obs
            .iter()
            .find(|o| o.id == me && o.reachable)
            .map(|o| (o.timeline, o.lsn))
            .or_else(|| core.facts.as_ref().map(|f| (f.timeline, f.lsn)))?;
        let nodes = core.nodes();
        obs.iter()
            .filter(|o| o.id != me && o.reachable && o.in_recovery == Some(true))
            .filter(|o| o.daemon_session != Some(false) && o.daemon.is_none_or(|d| d.automatic))
            .filter(|o| {
                nodes.iter().any(|n| {
                    n.id == o.id
                        && n.kind == NodeKind::Standby
                        && n.priority > 0
                        && n.active
                        && n.automatic
                })
            })
            .find(|o| match core.s.safety.newest_timeline {
                true => o.timeline > tli || (o.timeline == tli && o.lsn > lsn),
                false => o.lsn > lsn,
            })
            .map(|o| o.id)
    }

    pub(super) fn on_heartbeat(
        &mut self,
        core: &mut Ctx,
        now: Time,
        from: NodeId,
        sent: Time,
        reply: HeartbeatReply,
    ) {
        let Phase::Electing { failed, step } = &mut self.phase else {
            return;
        };
        let (Step::Confirming { lease, .. } | Step::Promoting { lease, .. }) = step else {
            return;
        };
        match reply {
            HeartbeatReply::Ack { promise_ms, .. } => lease.promise(from, sent, promise_ms),
            HeartbeatReply::NoDaemon => {}
            HeartbeatReply::Superseded { term, by } => {
                if matches!(step, Step::Confirming { .. }) {
                    let failed = failed.clone();
                    core.log(
                        Level::Warning,
                        format!(
                            "term {term} was granted to node {} meanwhile; not promoting",
                            by.map_or("?".into(), |b| b.to_string())
                        ),
                    );
                    self.degrade(core, now, Some(failed), true);
                }
            }
        }
    }

    /// Votes and lease in hand, the old primary gone or fenced: promote.
    pub(super) fn promote(&mut self, core: &mut Ctx, now: Time) {
        let Phase::Electing {
            failed,
            step:
                Step::Confirming {
                    term,
                    lease,
                    visible,
                    total,
                    ..
                },
        } = self.phase.clone()
        else {
            return;
        };
        let still = lease
            .end()
            .is_some_and(|e| now.plus(lease.stop_margin(&core.s)) < e);
        if !still {
            core.log(
                Level::Warning,
                "the votes no longer hold (the promotion came too late); not promoting",
            );
            self.degrade(core, now, Some(failed), true);
            return;
        }
        if core.paused() {
            core.log(Level::Notice, "repmgrd is paused; not promoting");
            self.degrade(core, now, Some(failed), false);
            return;
        }
        core.log(
            Level::Notice,
            "this node is the winner, will now promote itself and inform other nodes",
        );
        if core.job(Action::Promote {
            term,
            failed: failed.id,
            visible,
            total,
        }) {
            self.phase = Phase::Electing {
                failed,
                step: Step::Promoting { term, lease },
            };
        }
    }

    // Long: one match over the jobs a standby runs (promote, follow, rejoin).
    pub(super) fn on_done(&mut self, core: &mut Ctx, now: Time, done: Done) {
        match (done, self.phase.clone()) {
            (
                Done::Promoted { ok },
                Phase::Electing {
                    failed,
                    step: Step::Promoting { term, lease },
                },
            ) => match ok {
                Ok(()) => {
                    let details = format!(
                        "node {} promoted to primary; old primary {failed} marked as failed",
                        core.me()
                    );
                    core.log(Level::Notice, details.clone());
                    core.log(Level::Info, format!("voting term is now {term}"));
                    core.event("repmgrd_failover_promote", true, details, Some(failed.id));
                    core.book.durable.known_term = core.book.durable.known_term.max(term);
                    core.book.durable.known_primary = Some(core.s.node_id);
                    // Its heartbeats as a candidate said it fences: so it
                    // does, until enough voters hear otherwise.
                    core.book.durable.fencing = true;
                    let d = core.book.durable;
                    core.persist(Some(d));
                    let tli = core.facts.as_ref().map_or(0, |f| f.timeline);
                    self.promoted = Some(Box::new(Primary::promoted(term, lease, now, tli)));
                }
                Err(why) => {
                    core.log(Level::Error, format!("promotion failed: {why}"));
                    core.event(
                        "repmgrd_promote_error",
                        false,
                        format!("promotion of node {} failed: {why}", core.me()),
                        None,
                    );
                    self.degrade(core, now, Some(failed), true);
                }
            },
            (
                Done::Followed {
                    target,
                    ok,
                    streams_anyway,
                },
                Phase::Following { failed, target: t },
            ) if target == t.id => {
                match ok {
                    Ok(()) => {}
                    Err(why) if streams_anyway => {
                        core.log(Level::Error, why);
                        core.log(
                            Level::Notice,
                            format!(
                                "the WAL receiver streams from node {t} all the same; following it"
                            ),
                        );
                    }
                    Err(why) => {
                        core.log(Level::Error, why);
                        self.degrade(core, now, failed, true);
                        return;
                    }
                }
                // The record was read before the winner promoted: it still
                // says standby. The node followed now is the primary.
                let mut rec = t.clone();
                rec.kind = NodeKind::Primary;
                rec.upstream = None;
                self.upstream = Some(rec);
                self.phase = Phase::Healthy;
                self.last_ok = Some(now);
                self.watching = None;
                self.watch(core, Some(t.id));
                let details = format!("node {} now following new upstream node {t}", core.me());
                core.log(Level::Notice, details.clone());
                core.event("repmgrd_failover_follow", true, details, Some(t.id));
            }
            (Done::Rejoined { ok, .. }, _) => match ok {
                Ok(details) => core.log(Level::Notice, details),
                Err(why) => {
                    core.log(Level::Error, "auto_rejoin failed");
                    core.log(Level::Error, why);
                }
            },
            _ => {}
        }
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
