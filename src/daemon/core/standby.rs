//! A standby: watch the upstream, retry it on the clock, elect, promote or
//! follow, and fall back to a degraded state that keeps looking.
//!
//! Phases: `Attaching` (no upstream known) → `Healthy` → on a failed
//! check or a closed connection, `Retrying` (`reconnect_attempts` at
//! `reconnect_interval` from the first failure) → `Electing` (gather,
//! decide, ask for votes, confirm, promote) or `Waiting` for the winner, or
//! `Following` a new primary → `Healthy` again, or `Degraded` (election
//! re-runs every `election_rerun_interval`, only against a primary that
//! has been unreachable for the whole failure window).

use std::collections::BTreeMap;

use super::context::Ctx;
use super::election::{self, Ballot, Outcome};
use super::primary::{Lease, Primary};
use super::settings::{Failover, Quorum, Settings};
use super::sync::SyncSpec;
use super::types::*;

#[derive(Debug, Clone)]
pub(super) struct Standby {
    upstream: Option<NodeInfo>,
    phase: Phase,
    watching: Option<NodeId>,
    /// When the upstream last answered a check.
    last_ok: Option<Time>,
    /// When the last check was sent (it counts as the first attempt).
    check_sent: Option<Time>,
    /// The upstream (expected to be the primary) last answered as a standby.
    upstream_in_recovery: bool,
    /// Since when each node has not answered, for the re-run window.
    unreachable_since: BTreeMap<NodeId, Time>,
    /// This former primary came back as a standby of that node.
    prepared_for: Option<NodeId>,
    prepared_back_since: Option<Time>,
    /// The highest term any answer mentioned.
    seen_term: Term,
    /// Since when no round has shown a writable primary.
    no_primary_since: Option<Time>,
    local_was_down: bool,
    /// Set when this standby's promotion completed: the core makes it the
    /// role in force.
    pub(super) promoted: Option<Box<Primary>>,
}

#[derive(Debug, Clone)]
enum Phase {
    Attaching,
    Healthy,
    Retrying {
        first: Time,
        attempt: u32,
    },
    Electing {
        failed: NodeInfo,
        step: Step,
    },
    Waiting {
        failed: NodeInfo,
        until: Time,
        next_scan: Time,
    },
    Following {
        failed: Option<NodeInfo>,
        target: NodeInfo,
    },
    Reattaching {
        lost: NodeInfo,
    },
    Degraded {
        since: Time,
        lost: Option<NodeInfo>,
        next_election: Option<Time>,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Gathering,
    /// Asking whether voters would grant `term` (`pre`), then for the votes.
    Voting {
        term: Term,
        sent: Time,
        visible: usize,
        total: usize,
        pre: bool,
    },
    /// Won: the failed primary is looked at once more before promoting.
    Confirming {
        term: Term,
        lease: Lease,
        until: Time,
        visible: usize,
        total: usize,
        next: Time,
    },
    Promoting {
        term: Term,
        lease: Lease,
    },
}

/// How often a waiting loser, or a candidate that found the old primary
/// answering, looks again.
const SCAN_MS: u64 = 250;

impl Standby {
    pub(super) fn new() -> Standby {
        Standby {
            upstream: None,
            phase: Phase::Attaching,
            watching: None,
            last_ok: None,
            check_sent: None,
            upstream_in_recovery: false,
            unreachable_since: BTreeMap::new(),
            prepared_for: None,
            prepared_back_since: None,
            seen_term: 0,
            no_primary_since: None,
            local_was_down: false,
            promoted: None,
        }
    }

    /// A former primary whose server came back in recovery.
    pub(super) fn after_primary(p: Primary) -> Standby {
        Standby {
            prepared_for: p.prepared_for(),
            ..Standby::new()
        }
    }

    pub(super) fn wakeup(&self, s: &Settings) -> Option<Time> {
        match &self.phase {
            Phase::Retrying { .. } => self.attempt_due(s),
            Phase::Waiting {
                next_scan, until, ..
            } => Some((*next_scan).min(*until)),
            Phase::Electing {
                step: Step::Confirming { next, lease, .. },
                ..
            } => Some((*next).min(lease.next_renewal(s))),
            Phase::Electing {
                step: Step::Promoting { lease, .. },
                ..
            } => Some(lease.next_renewal(s)),
            _ => None,
        }
    }

    /// The next retry attempt is due at this time.
    fn attempt_due(&self, s: &Settings) -> Option<Time> {
        match self.phase {
            Phase::Retrying { first, attempt } => {
                Some(first.plus(s.reconnect_interval_ms * u64::from(attempt.saturating_sub(1))))
            }
            _ => None,
        }
    }

    pub(super) fn status_line(&self, s: &Settings) -> String {
        let me = format!("\"{}\" (ID: {})", s.node_name, s.node_id);
        match (&self.phase, &self.upstream) {
            (Phase::Degraded { .. }, _) => format!("node {me} monitoring in degraded state"),
            (_, Some(u)) => format!("node {me} monitoring upstream node {u} in normal state"),
            _ => format!("node {me} monitoring in degraded state"),
        }
    }

    /// The primary this standby still sees healthy: its last check
    /// succeeded within the failure window, or its WAL receiver hears from
    /// it. A vote against that primary is refused.
    pub(super) fn sees_primary(
        &self,
        s: &Settings,
        now: Time,
        f: Option<&LocalFacts>,
    ) -> Option<NodeId> {
        let up = self.upstream.as_ref()?;
        if self.upstream_in_recovery && up.kind == NodeKind::Primary {
            return None;
        }
        let checked = matches!(self.phase, Phase::Healthy)
            && self.last_ok.is_some_and(|t| {
                now.since(t) <= s.failure_window_ms().max(s.monitor_interval_ms * 2)
            });
        let streams = f
            .and_then(|f| f.receiver)
            .is_some_and(|r| r.streaming && r.last_msg_age <= receiver_window(s));
        (checked || streams).then_some(up.id)
    }

    // ------------------------------------------------------------ ticks

    pub(super) fn tick(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) {
        if self.local_was_down {
            self.local_was_down = false;
            core.log(
                Level::Notice,
                format!("reconnected to local node {}", core.me()),
            );
            core.out.push(Action::SetActive { active: true });
            core.event(
                "standby_recovery",
                true,
                format!("local standby {} has recovered", core.me()),
                None,
            );
        }
        if self.after_preparation(core, now, f) {
            return;
        }
        match &self.phase {
            Phase::Attaching => self.attach(core, f),
            Phase::Healthy => {
                if let Some(up) = &self.upstream {
                    let id = up.id;
                    if core.check(id) {
                        self.check_sent = Some(now);
                    }
                    core.out.push(Action::WriteStatus { upstream: Some(id) });
                }
            }
            Phase::Degraded { since, .. } => {
                if let Some(limit) = core.s.degraded_monitoring_timeout_ms {
                    if now.since(*since) >= limit {
                        core.log(
                            Level::Warning,
                            format!(
                                "degraded monitoring timeout ({} seconds) exceeded, terminating",
                                limit / 1000
                            ),
                        );
                        core.out.push(Action::Exit);
                        return;
                    }
                }
                // The lost upstream may be back; meanwhile look for a
                // primary (and re-run the election when due).
                if let Some(up) = self.upstream.clone() {
                    if core.check(up.id) {
                        self.check_sent = Some(now);
                    }
                }
                if core.s.failover == Failover::Automatic && !f.paused {
                    core.gather();
                }
            }
            _ => {}
        }
    }

    pub(super) fn timers(&mut self, core: &mut Ctx, now: Time) {
        if let Some(due) = self.attempt_due(&core.s) {
            if now >= due && !core.pending.check {
                let Phase::Retrying { attempt, .. } = self.phase else {
                    return;
                };
                if let Some(up) = self.upstream.clone() {
                    core.log(
                        Level::Info,
                        format!(
                            "checking state of node {up}, {attempt} of {} attempts",
                            core.s.reconnect_attempts
                        ),
                    );
                    core.pending.check = true;
                    core.out.push(Action::CheckUpstream {
                        node: up.id,
                        ping: up.kind != NodeKind::Primary,
                    });
                }
            }
        }
        match &mut self.phase {
            Phase::Waiting {
                until,
                next_scan,
                failed,
                ..
            } => {
                if now >= *until {
                    let failed = failed.clone();
                    core.log(
                        Level::Warning,
                        format!(
                            "no new primary appeared within {} seconds",
                            core.s.primary_notification_timeout_ms / 1000
                        ),
                    );
                    self.degrade(core, now, Some(failed), true);
                } else if now >= *next_scan && core.gather() {
                    *next_scan = now.plus(SCAN_MS);
                }
            }
            Phase::Electing {
                step: Step::Confirming { next, .. },
                ..
            } if now >= *next && core.gather() => {
                *next = now.plus(SCAN_MS);
            }
            _ => {}
        }
        self.renew_candidate_lease(core, now);
    }

    /// A candidate with votes holds the lease those votes promised; it
    /// renews it with heartbeats until its promotion is done.
    fn renew_candidate_lease(&mut self, core: &mut Ctx, now: Time) {
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

    pub(super) fn local_down(&mut self, core: &mut Ctx, _now: Time) {
        if !self.local_was_down {
            self.local_was_down = true;
            core.log(
                Level::Warning,
                format!("unable to connect to local node {}", core.me()),
            );
            core.out.push(Action::SetActive { active: false });
            core.event(
                "standby_failure",
                false,
                format!("unable to connect to local standby {}", core.me()),
                None,
            );
        }
    }

    // ---------------------------------------------------------- inputs

    pub(super) fn on_input(&mut self, core: &mut Ctx, now: Time, input: Input) {
        match input {
            Input::UpstreamCheck {
                node,
                ok,
                in_recovery,
            } => {
                // A primary that runs in recovery now (demoted, rejoined)
                // is no primary: that is a failed check of a primary.
                let expects_primary = self
                    .upstream
                    .as_ref()
                    .is_some_and(|u| u.id == node && u.kind == NodeKind::Primary);
                let demoted = expects_primary && in_recovery == Some(true);
                if expects_primary && in_recovery.is_some() {
                    self.upstream_in_recovery = demoted;
                }
                if demoted && ok && matches!(self.phase, Phase::Healthy) {
                    core.log(
                        Level::Warning,
                        format!("upstream node {node} runs in recovery: it is no primary any more"),
                    );
                }
                self.on_check(core, now, node, ok && !demoted);
            }
            Input::UpstreamClosed { node } => {
                let watched = self.upstream.as_ref().is_some_and(|u| u.id == node);
                if watched && matches!(self.phase, Phase::Healthy) {
                    core.log(Level::Warning, "connection to the upstream node was lost");
                    self.lose_upstream(core, now, now, 1);
                }
            }
            Input::Cluster(obs) => self.on_cluster(core, now, &obs),
            Input::Votes { term, replies } => self.on_votes(core, now, term, &replies),
            Input::Heartbeat { from, sent, reply } => {
                self.on_heartbeat(core, now, from, sent, reply)
            }
            Input::Done(d) => self.on_done(core, now, d),
            _ => {}
        }
    }

    fn on_check(&mut self, core: &mut Ctx, now: Time, node: NodeId, ok: bool) {
        if !ok {
            self.unreachable_since.entry(node).or_insert(now);
        } else {
            self.unreachable_since.remove(&node);
        }
        let is_upstream = self.upstream.as_ref().is_some_and(|u| u.id == node);
        match self.phase.clone() {
            Phase::Healthy if is_upstream => {
                if ok {
                    self.last_ok = Some(now);
                    if self.watching != Some(node) {
                        self.watch(core, Some(node));
                    }
                } else {
                    let first = self.check_sent.unwrap_or(now);
                    self.lose_upstream(core, now, first, 2);
                }
            }
            Phase::Degraded { since, .. } if is_upstream && ok => {
                let up = self.upstream.clone();
                if let Some(u) = up {
                    core.log(
                        Level::Notice,
                        format!(
                            "reconnected to upstream node {u} after {} seconds",
                            now.since(since) / 1000
                        ),
                    );
                    core.event(
                        "repmgrd_upstream_reconnect",
                        true,
                        format!("reconnected to upstream node {u}"),
                        None,
                    );
                }
                self.last_ok = Some(now);
                self.phase = Phase::Healthy;
                self.watch(core, Some(node));
            }
            Phase::Retrying { first, attempt } if is_upstream => {
                let Some(up) = self.upstream.clone() else {
                    return;
                };
                if ok {
                    core.log(
                        Level::Notice,
                        format!("node {up} has recovered, reconnecting"),
                    );
                    core.event(
                        "repmgrd_upstream_reconnect",
                        true,
                        format!("reconnected to upstream node {up}"),
                        None,
                    );
                    self.last_ok = Some(now);
                    self.phase = Phase::Healthy;
                    self.watching = None;
                    self.watch(core, Some(up.id));
                } else if attempt >= core.s.reconnect_attempts {
                    core.log(
                        Level::Warning,
                        format!(
                            "unable to reconnect to node {up} after {} attempts",
                            core.s.reconnect_attempts
                        ),
                    );
                    if up.kind == NodeKind::Primary {
                        self.start_election(core, now, up);
                    } else {
                        self.reattach(core, now, up);
                    }
                } else {
                    self.phase = Phase::Retrying {
                        first,
                        attempt: attempt + 1,
                    };
                }
            }
            _ => {}
        }
    }

    /// The upstream stopped answering: retry on the clock. `first_attempt`
    /// is the number the next attempt carries (2 when the failed check
    /// itself counts as the first).
    fn lose_upstream(&mut self, core: &mut Ctx, now: Time, first: Time, first_attempt: u32) {
        let Some(up) = self.upstream.clone() else {
            return;
        };
        self.watch(core, None);
        core.log(
            Level::Warning,
            format!("unable to connect to upstream node {up}"),
        );
        core.event(
            "repmgrd_upstream_disconnect",
            false,
            format!("lost connection to upstream node {up}"),
            None,
        );
        self.unreachable_since.entry(up.id).or_insert(first);
        if first_attempt > core.s.reconnect_attempts {
            core.log(
                Level::Warning,
                format!(
                    "unable to reconnect to node {up} after {} attempts",
                    core.s.reconnect_attempts
                ),
            );
            if up.kind == NodeKind::Primary {
                self.start_election(core, now, up);
            } else {
                self.reattach(core, now, up);
            }
            return;
        }
        self.phase = Phase::Retrying {
            first,
            attempt: first_attempt,
        };
        self.timers(core, now);
    }

    fn watch(&mut self, core: &mut Ctx, node: Option<NodeId>) {
        if self.watching != node {
            self.watching = node;
            core.out.push(Action::Watch { node });
        }
    }

    /// Finds the upstream in the metadata: this node's record's upstream,
    /// else the active primary; failing both, asks the cluster.
    fn attach(&mut self, core: &mut Ctx, f: &LocalFacts) {
        let me = core.s.node_id;
        let mine = f.nodes.iter().find(|n| n.id == me);
        let found = mine
            .and_then(|m| m.upstream)
            .and_then(|u| f.nodes.iter().find(|n| n.id == u))
            .or_else(|| {
                f.nodes
                    .iter()
                    .find(|n| n.kind == NodeKind::Primary && n.active && n.id != me)
            })
            .cloned();
        match found {
            Some(up) => self.set_upstream(core, up),
            None => {
                core.gather();
            }
        }
    }

    fn set_upstream(&mut self, core: &mut Ctx, up: NodeInfo) {
        core.log(Level::Info, format!("monitoring upstream node {up}"));
        self.upstream = Some(up.clone());
        self.phase = Phase::Healthy;
        self.last_ok = None;
        self.watch(core, Some(up.id));
    }

    // -------------------------------------------------------- election

    fn start_election(&mut self, core: &mut Ctx, _now: Time, failed: NodeInfo) {
        self.watch(core, None);
        self.phase = Phase::Electing {
            failed,
            step: Step::Gathering,
        };
        if !core.gather() {
            // A round is in flight; its answer serves the election.
        }
    }

    fn on_cluster(&mut self, core: &mut Ctx, now: Time, obs: &[NodeObs]) {
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
                if let Some(p) = self.primary_in(core, obs, None) {
                    self.set_upstream(core, p);
                }
            }
            Phase::Electing {
                failed,
                step: Step::Gathering,
            } => self.decide(core, now, failed, obs),
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
                    self.follow(core, Some(failed), p);
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
                Some(p) => self.follow(core, Some(lost), p),
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

    fn known(&self, core: &Ctx) -> Term {
        core.book.highest_term()
    }

    /// A node that runs as an unfenced primary of a current term: active
    /// in the metadata, not `except`, and not older than anything this
    /// node knows.
    fn primary_in(&self, core: &Ctx, obs: &[NodeObs], except: Option<NodeId>) -> Option<NodeInfo> {
        let known = self.known(core);
        let nodes = core.nodes();
        obs.iter()
            .filter(|o| o.is_writable_primary() && Some(o.id) != except && o.id != core.s.node_id)
            .filter(|o| o.term >= known)
            .filter_map(|o| {
                nodes
                    .iter()
                    .find(|n| n.id == o.id && n.active && n.kind != NodeKind::Witness)
            })
            .min_by_key(|n| n.id)
            .cloned()
    }

    fn decide(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo, obs: &[NodeObs]) {
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
                Some(p) => self.follow(core, Some(failed), p),
                None => self.degrade(core, now, Some(failed), true),
            },
            Outcome::Won => self.ask_for_votes(core, now, failed, &f, obs, visible, total),
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

    fn wait_for(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
        self.phase = Phase::Waiting {
            failed,
            until: now.plus(core.s.primary_notification_timeout_ms.max(1_000)),
            next_scan: now.plus(SCAN_MS),
        };
    }

    #[allow(clippy::too_many_arguments)]
    fn ask_for_votes(
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
        let request = VoteRequest {
            term,
            candidate: core.s.node_id,
            failed: failed.id,
            timeline: f.timeline,
            lsn: f.lsn,
            pre: true,
        };
        self.phase = Phase::Electing {
            failed,
            step: Step::Voting {
                term,
                sent: now,
                visible,
                total,
                pre: true,
            },
        };
        self.send_votes(core, now, request, visible, total);
    }

    /// Asks every other voter; this node's own answer (by the same rules)
    /// counts first. A real vote of its own is recorded like any other.
    fn send_votes(
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

    fn on_votes(&mut self, core: &mut Ctx, now: Time, term: Term, replies: &[(NodeId, VoteReply)]) {
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
            let request = VoteRequest {
                term,
                candidate: core.s.node_id,
                failed: failed.id,
                timeline: f.timeline,
                lsn: f.lsn,
                pre: false,
            };
            self.phase = Phase::Electing {
                failed,
                step: Step::Voting {
                    term,
                    sent: now,
                    visible,
                    total,
                    pre: false,
                },
            };
            self.send_votes(core, now, request, visible, total);
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
            .map_or(now, |e| e.minus(core.s.stop_margin_ms()));
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
        core.gather();
    }

    /// A visible standby that could be promoted and has WAL this node
    /// lacks on the same timeline.
    fn better_candidate(&self, core: &Ctx, obs: &[NodeObs]) -> Option<NodeId> {
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
            .find(|o| o.timeline > tli || (o.timeline == tli && o.lsn > lsn))
            .map(|o| o.id)
    }

    fn on_heartbeat(
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
    fn promote(&mut self, core: &mut Ctx, now: Time) {
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
            .is_some_and(|e| now.plus(core.s.stop_margin_ms()) < e);
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

    fn on_done(&mut self, core: &mut Ctx, now: Time, done: Done) {
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

    fn follow(&mut self, core: &mut Ctx, failed: Option<NodeInfo>, target: NodeInfo) {
        if core.paused() {
            core.log(
                Level::Notice,
                "repmgrd is paused; not following the new primary",
            );
            let now_phase = Phase::Degraded {
                since: Time(0),
                lost: failed,
                next_election: None,
            };
            self.phase = now_phase;
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
    fn reattach(&mut self, core: &mut Ctx, now: Time, lost: NodeInfo) {
        if core.s.failover != Failover::Automatic || core.paused() {
            core.log(
                Level::Notice,
                "upstream standby lost; not re-attaching (failover is manual or repmgrd is paused)",
            );
            self.degrade(core, now, Some(lost), false);
            return;
        }
        self.phase = Phase::Reattaching { lost };
        core.gather();
    }

    fn degrade(&mut self, core: &mut Ctx, now: Time, lost: Option<NodeInfo>, rerun: bool) {
        let next = rerun.then(|| now.plus(core.s.election_rerun_interval_ms.max(1_000)));
        self.degrade_until(now, lost, next);
    }

    /// Degraded, with the next election at `next` (None: none).
    fn degrade_until(&mut self, now: Time, lost: Option<NodeInfo>, next: Option<Time>) {
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

    fn degraded_round(
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
            self.follow(core, lost, p);
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

    /// A primary's heartbeat arrived (pushed by a new primary right after
    /// its promotion): a waiting or degraded standby follows it at once.
    pub(super) fn heard_primary(&mut self, core: &mut Ctx, _now: Time, from: NodeId, term: Term) {
        if term < self.known(core) && term < core.book.highest_term() {
            return;
        }
        let failed = match &self.phase {
            Phase::Waiting { failed, .. } if from != failed.id => Some(failed.clone()),
            Phase::Degraded { lost, .. } if lost.as_ref().is_none_or(|l| l.id != from) => {
                lost.clone()
            }
            _ => return,
        };
        if let Some(target) = core.node(from) {
            self.follow(core, failed, target);
        }
    }

    /// The server came back as the standby prepared while it was down (a
    /// former primary): it should stream from the new primary within a
    /// moment; if it cannot, auto_rejoin rewinds it, else the operator is
    /// told what to run. True when this cycle was spent on it.
    fn after_preparation(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) -> bool {
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

/// How recently a WAL receiver must have heard from its sender to count
/// as streaming: two monitoring intervals and a second.
pub(super) fn receiver_window(s: &Settings) -> u64 {
    2 * s.monitor_interval_ms + 1_000
}

/// When to re-run an election that failed for want of `missing` votes,
/// given the promises (`lefts`, ms still to run) that refusing voters are
/// keeping: just after enough of them have run out, when that is sooner
/// than `election_rerun_interval`.
fn rerun_at(s: &Settings, now: Time, lefts: &[u64], missing: usize) -> Time {
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
