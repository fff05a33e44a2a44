//! The start of an election and repmgr 5's two delays: `failover_delay`
//! holds the election back, `promote_delay` the votes of a node that won;
//! the failed primary is checked every cycle meanwhile, and its answer
//! cancels either.

use super::*;

impl Standby {
    pub(super) fn start_election(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
        self.watch(core, None);
        let delay = core.s.failover_delay_ms;
        if delay > 0 {
            core.log(
                Level::Notice,
                format!(
                    "waiting {} seconds (\"failover_delay\") before starting the election",
                    delay / 1000
                ),
            );
            self.phase = Phase::Electing {
                failed,
                step: Step::FailoverDelay {
                    until: now.plus(delay),
                    from_seq: core.check_seq + 1,
                },
            };
            return;
        }
        self.phase = Phase::Electing {
            failed,
            step: Step::Gathering { delayed: false },
        };
        // false: a round is in flight already, and its answer serves the
        // election as well.
        let _ = self.round(core);
    }

    /// This node won: `promote_delay` before a fresh round decides again.
    pub(super) fn start_promote_delay(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
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

    /// A cycle during a delay: the failed primary may come back meanwhile.
    pub(super) fn delay_tick(&mut self, core: &mut Ctx, now: Time) {
        let Phase::Electing { failed, .. } = &self.phase else {
            return;
        };
        if core.check(failed.id) {
            self.check_sent = Some((now, core.check_seq));
        }
    }

    /// A delay whose time has come ends in a cluster round.
    pub(super) fn delay_timers(&mut self, core: &mut Ctx, now: Time) {
        match &self.phase {
            Phase::Electing {
                step: Step::FailoverDelay { until, .. },
                ..
            } if now >= *until => self.gather_for_decision(core, false),
            Phase::Electing {
                step: Step::PromoteDelay { until, .. },
                ..
            } if now >= *until => {
                core.log(
                    Level::Info,
                    "\"promote_delay\" has passed; deciding again before asking for the votes",
                );
                self.gather_for_decision(core, true)
            }
            _ => {}
        }
    }

    /// The failed primary answered a check sent during a delay.
    pub(super) fn recovered_during_delay(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
        // Not a primary another node has superseded (an old
        // primary without repmgrd answering still).
        if core
            .book
            .durable
            .known_primary
            .is_some_and(|p| p != failed.id)
        {
            return;
        }
        core.log(
            Level::Notice,
            format!("node {failed} has recovered during the delay; failover cancelled"),
        );
        core.event(
            "repmgrd_upstream_reconnect",
            true,
            format!("reconnected to upstream node {failed}"),
            None,
        );
        self.upstream = Some(failed.clone());
        self.last_ok = Some(now);
        self.phase = Phase::Healthy;
        self.watching = None;
        self.watch(core, Some(failed.id));
    }

    /// A delay ended: a cluster round decides (again).
    fn gather_for_decision(&mut self, core: &mut Ctx, delayed: bool) {
        let Phase::Electing { failed, .. } = &self.phase else {
            return;
        };
        self.phase = Phase::Electing {
            failed: failed.clone(),
            step: Step::Gathering { delayed },
        };
        // false: a round is in flight already, and its answer serves the
        // election as well.
        let _ = self.round(core);
    }
}
