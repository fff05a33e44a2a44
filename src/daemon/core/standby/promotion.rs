//! A candidate with votes: the lease it renews, the last look before
//! promoting (a better candidate, the old primary), the promotion, and
//! the outcome of a standby's jobs (promote, follow, rejoin).

use super::*;

impl Standby {
    /// A candidate with votes holds the lease those votes promised; it
    /// renews it with heartbeats until its promotion is done.
    pub(super) fn renew_candidate_lease(&mut self, core: &mut Ctx, now: Time) {
        let term = match &self.phase {
            Phase::Electing {
                step: Step::Confirming { term, .. } | Step::Promoting { term, .. },
                ..
            } => *term,
            _ => return,
        };
        let due = match &self.phase {
            Phase::Electing {
                step: Step::Confirming { lease, .. } | Step::Promoting { lease, .. },
                ..
            } => lease.next_renewal(&core.s),
            _ => return,
        };
        if now < due {
            return;
        }
        let to: Vec<NodeId> = core
            .voters()
            .iter()
            .filter(|n| n.id != core.s.node_id)
            .map(|n| n.id)
            .collect();
        if let Phase::Electing {
            step: Step::Confirming { lease, .. } | Step::Promoting { lease, .. },
            ..
        } = &mut self.phase
        {
            lease.renewal_sent(now);
        }
        core.out.push(Action::SendHeartbeats {
            term,
            to,
            promoted: false,
            local_must_answer: true,
            // A candidate that loses its lease undoes its promotion.
            fences: true,
        });
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
