//! A standby after a failed or abandoned election: following the winner,
//! re-attaching, the degraded state that keeps looking, and the restart of
//! a former primary prepared as a standby.

use super::*;

impl Standby {
    pub(super) fn follow(
        &mut self,
        core: &mut Ctx,
        now: Time,
        failed: Option<NodeInfo>,
        target: NodeInfo,
    ) {
        if core.paused() {
            core.log(
                Level::Notice,
                "repmgrd is paused; not following the new primary",
            );
            // Degraded from now: degraded_monitoring_timeout counts from
            // here (from time 0 it fired at the next cycle).
            self.phase = Phase::Degraded {
                since: now,
                lost: failed,
                next_election: None,
            };
            return;
        }
        core.log(
            Level::Notice,
            format!("attempting to follow new primary {target}"),
        );
        if core.job(Action::Follow { target: target.id }) {
            self.phase = Phase::Following { failed, target };
        }
    }

    /// A cascaded standby whose upstream standby died re-attaches to the
    /// primary.
    pub(super) fn reattach(&mut self, core: &mut Ctx, now: Time, lost: NodeInfo) {
        if core.s.failover != Failover::Automatic || core.paused() {
            core.log(
                Level::Notice,
                "upstream standby lost; not re-attaching (failover is manual or repmgrd is paused)",
            );
            self.degrade(core, now, Some(lost), false);
            return;
        }
        self.phase = Phase::Reattaching { lost };
        self.round(core);
    }

    pub(super) fn degrade(
        &mut self,
        core: &mut Ctx,
        now: Time,
        lost: Option<NodeInfo>,
        rerun: bool,
    ) {
        let next = rerun.then(|| now.plus(core.s.election_rerun_interval_ms.max(1_000)));
        self.degrade_until(now, lost, next);
    }

    /// Degraded, with the next election at `next` (None: none).
    pub(super) fn degrade_until(&mut self, now: Time, lost: Option<NodeInfo>, next: Option<Time>) {
        match &mut self.phase {
            Phase::Degraded { next_election, .. } => *next_election = next,
            _ => {
                self.phase = Phase::Degraded {
                    since: now,
                    lost,
                    next_election: next,
                }
            }
        }
    }

    pub(super) fn degraded_round(
        &mut self,
        core: &mut Ctx,
        now: Time,
        obs: &[NodeObs],
        lost: Option<NodeInfo>,
        next_election: Option<Time>,
    ) {
        if core.s.failover != Failover::Automatic || core.paused() {
            return;
        }
        let lost_id = lost.as_ref().map(|l| l.id);
        if let Some(p) = self.primary_in(core, obs, lost_id) {
            core.log(Level::Notice, format!("found new primary {p}"));
            self.follow(core, now, lost, p);
            return;
        }
        if next_election.is_none_or(|t| now < t) {
            return;
        }
        // The primary may have changed since the upstream was lost (a node
        // was promoted, then failed too): elect against the one the
        // metadata names now, when it has not answered for the whole
        // failure window; else against the lost one, likewise.
        let window = core.s.failure_window_ms();
        let gone = |id: NodeId| {
            self.unreachable_since
                .get(&id)
                .is_some_and(|since| now.since(*since) >= window)
        };
        // Nobody takes writes anywhere (a failed promotion, an old primary
        // rejoined as a standby): the primary of the metadata counts as
        // gone too.
        let headless = self
            .no_primary_since
            .is_some_and(|since| now.since(since) >= window);
        let me = core.s.node_id;
        let current = core
            .nodes()
            .into_iter()
            .find(|n| n.kind == NodeKind::Primary && n.id != me && n.active)
            .filter(|p| (Some(p.id) != lost_id && gone(p.id)) || headless);
        let target =
            current.or(lost.filter(|l| l.kind == NodeKind::Primary && (gone(l.id) || headless)));
        match target {
            Some(t) => {
                core.log(Level::Notice, "rerunning the election");
                self.start_election(core, now, t);
            }
            None => self.degrade(core, now, None, true),
        }
    }

    /// The server came back as the standby prepared while it was down (a
    /// former primary): it should stream from the new primary within a
    /// moment; if it cannot, auto_rejoin rewinds it, else the operator is
    /// told what to run. True when this cycle was spent on it.
    pub(super) fn after_preparation(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) -> bool {
        let Some(new_id) = self.prepared_for else {
            return false;
        };
        let Some(newer) = core.node(new_id) else {
            self.prepared_for = None;
            return false;
        };
        let since = *self.prepared_back_since.get_or_insert(now);
        let streaming = f
            .receiver
            .is_some_and(|r| r.streaming && r.last_msg_age <= receiver_window(&core.s));
        if streaming {
            self.prepared_for = None;
            self.prepared_back_since = None;
            let details = format!("former primary {} now streams from node {newer}", core.me());
            core.log(Level::Notice, details.clone());
            core.out.push(Action::RecordUpstream { upstream: new_id });
            core.event_on(new_id, "repmgrd_standby_reconnect", true, details);
            return false;
        }
        if now.since(since) < receiver_window(&core.s) {
            return true;
        }
        self.prepared_for = None;
        self.prepared_back_since = None;
        if core.s.auto_rejoin {
            core.log(
                Level::Notice,
                format!(
                    "auto_rejoin: rejoining node {} as a standby of the new primary",
                    core.me()
                ),
            );
            core.job(Action::Rejoin { target: new_id });
        } else {
            core.log(
                Level::Warning,
                format!(
                    "this former primary runs as a standby but cannot stream from node \"{}\"; run \"repmgr node rejoin --force-rewind\"",
                    newer.name
                ),
            );
        }
        true
    }
}

impl Standby {
    /// The node the local WAL receiver streams from, when a newer term
    /// superseded it: this repmgrd knows a primary of a term above the
    /// local server's `voting_term` (which replicates from its upstream:
    /// a cascading upstream standby of the current timeline, or the
    /// primary itself, brings the current term), and that primary is
    /// another node. (The term row arrives a moment after a follow: the
    /// caller waits `receiver_window` before acting on it.)
    fn superseded_sender(&self, core: &Ctx, f: &LocalFacts) -> Option<NodeId> {
        let d = &core.book.durable;
        let r = f.receiver?;
        let sender = r.sender?;
        let fresh = r.streaming && r.last_msg_age <= receiver_window(&core.s);
        let superseded = d.known_term > f.voting_term
            && d.known_primary.is_some_and(|p| p != sender)
            && sender != core.s.node_id;
        (fresh && superseded).then_some(sender)
    }

    /// A standby's server that streams from a superseded node (a zombie
    /// primary that came back: a paused host resumed, an old primary
    /// restarted without repmgrd) feeds it: its acknowledgements let the
    /// zombie confirm synchronous commits the cluster's primary never
    /// has, and this node diverges further. This happens when a follow of
    /// the new primary failed (this node had WAL past its fork) while the
    /// old stream went on. The stream is ended and kept ended
    /// ([`Action::EndStream`], repeated every cycle while it streams);
    /// the operator rewinds the node (`repmgr node rejoin
    /// --force-rewind`). A follow may run meanwhile (a degraded standby
    /// tries the new primary again at each of its heartbeats): the driver
    /// ends the stream only if it still comes from that node and no write
    /// of primary_conninfo happened since these facts were read (it then
    /// skips, and this rule asks again next cycle; deferring the action
    /// here while a job runs starved it).
    pub(super) fn end_superseded_stream(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) {
        if !core.s.safety.superseded_stream {
            return;
        }
        let Some(sender) = self.superseded_sender(core, f) else {
            self.superseded_stream = None;
            if f.receiver.is_some_and(|r| r.streaming) {
                self.stream_ended = None;
            }
            return;
        };
        let since = match self.superseded_stream {
            Some((s, t)) if s == sender => t,
            _ => {
                self.superseded_stream = Some((sender, now));
                now
            }
        };
        if now.since(since) < receiver_window(&core.s) {
            return;
        }
        let d = core.book.durable;
        let term = d.known_term;
        if self.stream_ended != Some(sender) {
            self.stream_ended = Some(sender);
            let primary = d
                .known_primary
                .and_then(|p| core.node(p))
                .map_or_else(|| "another node".to_string(), |p| format!("node {p}"));
            let from = core
                .node(sender)
                .map_or_else(|| format!("node {sender}"), |n| format!("node {n}"));
            let details = format!(
                "the WAL receiver of node {} streams from {from}, superseded by {primary} in term {term}: ending the stream (primary_conninfo cleared); run \"repmgr node rejoin --force-rewind\" to make it a standby of the primary",
                core.me()
            );
            core.log(Level::Warning, details.clone());
            core.event_on(
                d.known_primary.unwrap_or(sender),
                "repmgrd_superseded_stream_ended",
                true,
                details,
            );
        }
        core.out.push(Action::EndStream { from: sender, term });
    }
}

#[cfg(test)]
impl Standby {
    /// The phase's name, for the phase tests.
    pub(in super::super) fn phase_name(&self) -> &'static str {
        match &self.phase {
            Phase::Attaching => "attaching",
            Phase::Healthy => "healthy",
            Phase::Retrying { .. } => "retrying",
            Phase::Electing { step, .. } => match step {
                Step::FailoverDelay { .. } => "failover-delay",
                Step::PromoteDelay { .. } => "promote-delay",
                Step::Gathering { .. } => "gathering",
                Step::Voting { pre: true, .. } => "pre-voting",
                Step::Voting { pre: false, .. } => "voting",
                Step::Confirming { .. } => "confirming",
                Step::Promoting { .. } => "promoting",
            },
            Phase::Waiting { .. } => "waiting",
            Phase::Following { .. } => "following",
            Phase::Reattaching { .. } => "reattaching",
            Phase::Degraded { .. } => "degraded",
        }
    }
}
