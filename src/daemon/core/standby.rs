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

mod candidacy;
mod delay;
mod promotion;
mod recovery;
mod retry;
mod votes;

#[derive(Debug, Clone)]
pub(super) struct Standby {
    upstream: Option<NodeInfo>,
    phase: Phase,
    watching: Option<NodeId>,
    /// When the upstream last answered a check.
    last_ok: Option<Time>,
    /// When the last routine check was sent, and its number (it counts as
    /// the first attempt when it fails).
    check_sent: Option<(Time, u64)>,
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
    /// The local WAL receiver streams from this superseded node, since
    /// then; and the node whose stream this standby ended (reported once).
    superseded_stream: Option<(NodeId, Time)>,
    stream_ended: Option<NodeId>,
    /// Set when this standby's promotion completed: the core makes it the
    /// role in force.
    pub(super) promoted: Option<Box<Primary>>,
}

#[derive(Debug, Clone)]
enum Phase {
    Attaching,
    Healthy,
    /// Attempt k (from 1) is sent at `first` + (k − 1) × reconnect_interval,
    /// whether the ones before it have answered or not: a hung upstream
    /// costs each attempt its deadline, and the attempts overlap.
    Retrying {
        first: Time,
        /// Attempts sent (the failed check that began this counts).
        sent: u32,
        /// Attempts answered with a failure.
        failed: u32,
        /// Answers to checks numbered below this predate the loss.
        from_seq: u64,
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
    /// `failover_delay`: the election starts at `until`; the failed
    /// primary is checked every cycle meanwhile, and an answer (to a check
    /// numbered `from_seq` or later) cancels it.
    FailoverDelay {
        until: Time,
        from_seq: u64,
    },
    /// `promote_delay`: this node won; at `until` a fresh round decides
    /// again (and the votes, the look at the old primary and every other
    /// check follow it). The failed primary answering cancels it.
    PromoteDelay {
        until: Time,
        from_seq: u64,
    },
    /// A cluster round for the decision; `delayed`: `promote_delay` has
    /// been served (a win asks for the votes at once).
    Gathering {
        delayed: bool,
    },
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
            superseded_stream: None,
            stream_ended: None,
            promoted: None,
        }
    }

    /// A former primary whose server came back in recovery.
    /// Whether its promotion has been started and has not reported yet.
    pub(super) fn promoting(&self) -> bool {
        matches!(
            self.phase,
            Phase::Electing {
                step: Step::Promoting { .. },
                ..
            }
        )
    }

    pub(super) fn after_primary(p: Primary) -> Standby {
        Standby {
            prepared_for: p.prepared_for(),
            ..Standby::new()
        }
    }

    /// Its upstream, and when that last answered a check.
    pub(super) fn upstream_seen(&self) -> (Option<NodeId>, Option<Time>) {
        (self.upstream.as_ref().map(|u| u.id), self.last_ok)
    }

    /// When it needs a tick (a time past is dropped alone: a scan that
    /// waits on its round must not hold up the lease's renewals).
    pub(super) fn wakeups(&self, s: &Settings) -> Vec<Time> {
        match &self.phase {
            Phase::Retrying { .. } => self.attempt_due(s).into_iter().collect(),
            Phase::Waiting {
                next_scan, until, ..
            } => vec![*next_scan, *until],
            Phase::Electing {
                step: Step::Confirming { next, lease, .. },
                ..
            } => vec![*next, lease.next_renewal(s)],
            Phase::Electing {
                step: Step::Promoting { lease, .. },
                ..
            } => vec![lease.next_renewal(s)],
            Phase::Electing {
                step: Step::FailoverDelay { until, .. } | Step::PromoteDelay { until, .. },
                ..
            } => vec![*until],
            _ => Vec::new(),
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
        let streams = s.safety.receiver_check
            && f.and_then(|f| f.receiver)
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
        self.end_superseded_stream(core, now, f);
        if self.after_preparation(core, now, f) {
            return;
        }
        match &self.phase {
            Phase::Attaching => self.attach(core, f),
            Phase::Healthy => {
                if let Some(up) = &self.upstream {
                    let id = up.id;
                    if core.check(id) {
                        self.check_sent = Some((now, core.check_seq));
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
                        self.check_sent = Some((now, core.check_seq));
                    }
                }
                if core.s.failover == Failover::Automatic && !f.paused {
                    self.round(core);
                }
            }
            // A delay: the failed primary may come back meanwhile.
            Phase::Electing {
                step: Step::FailoverDelay { .. } | Step::PromoteDelay { .. },
                ..
            } => self.delay_tick(core, now),
            _ => {}
        }
    }

    pub(super) fn timers(&mut self, core: &mut Ctx, now: Time) {
        self.send_due_attempts(core, now);
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
                } else if now >= *next_scan && core.gather_sparing(Some(failed.id)) {
                    *next_scan = now.plus(SCAN_MS);
                }
            }
            Phase::Electing {
                step: Step::Confirming { next, .. },
                failed,
            } if now >= *next && core.gather_sparing(Some(failed.id)) => {
                *next = now.plus(SCAN_MS);
            }
            Phase::Electing {
                step: Step::FailoverDelay { .. } | Step::PromoteDelay { .. },
                ..
            } => self.delay_timers(core, now),
            _ => {}
        }
        self.renew_candidate_lease(core, now);
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
                seq,
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
                self.on_check(core, now, node, ok && !demoted, seq);
            }
            Input::UpstreamClosed { node } => {
                let watched = self.upstream.as_ref().is_some_and(|u| u.id == node);
                if watched && matches!(self.phase, Phase::Healthy) {
                    core.log(Level::Warning, "connection to the upstream node was lost");
                    let from = core.check_seq + 1;
                    self.lose_upstream(core, now, now, None, from);
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

    // Long: one match over the phases a check result can arrive in.
    fn on_check(&mut self, core: &mut Ctx, now: Time, node: NodeId, ok: bool, seq: u64) {
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
                    let first = self.check_sent.map_or(now, |(t, _)| t);
                    self.lose_upstream(core, now, first, Some(seq), seq + 1);
                }
            }
            Phase::Degraded { since, .. } if is_upstream && ok => {
                // A primary upstream that another node has superseded (this
                // node heard a newer primary) is no upstream to go back to,
                // even if it runs again (an old primary without repmgrd):
                // degraded, the re-runs and the newer primary's heartbeats
                // decide.
                if self.upstream_superseded(core) {
                    return;
                }
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
            Phase::Electing {
                failed,
                step: Step::FailoverDelay { from_seq, .. } | Step::PromoteDelay { from_seq, .. },
            } if ok && node == failed.id && seq >= from_seq => {
                self.recovered_during_delay(core, now, failed)
            }
            Phase::Retrying { from_seq, .. } if is_upstream && seq >= from_seq => {
                self.retry_answered(core, now, ok)
            }
            _ => {}
        }
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

    /// A cluster round; the node this phase lost is not waited for long.
    fn round(&self, core: &mut Ctx) -> bool {
        let down = match &self.phase {
            Phase::Electing { failed, .. } | Phase::Waiting { failed, .. } => Some(failed.id),
            Phase::Reattaching { lost } => Some(lost.id),
            Phase::Degraded { lost, .. } => lost.as_ref().map(|l| l.id),
            _ => None,
        };
        core.gather_sparing(down)
    }

    /// The upstream is a primary and another node is the primary this node
    /// last heard of.
    fn upstream_superseded(&self, core: &Ctx) -> bool {
        let Some(up) = self
            .upstream
            .as_ref()
            .filter(|u| u.kind == NodeKind::Primary)
        else {
            return false;
        };
        core.book.durable.known_primary.is_some_and(|p| p != up.id)
    }

    /// A primary's heartbeat arrived (pushed by a new primary right after
    /// its promotion): a waiting or degraded standby follows it at once.
    pub(super) fn heard_primary(&mut self, core: &mut Ctx, now: Time, from: NodeId, term: Term) {
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
            self.follow(core, now, failed, target);
        }
    }
}

/// How recently a WAL receiver must have heard from its sender to count
/// as streaming: two monitoring intervals and a second.
pub(super) fn receiver_window(s: &Settings) -> u64 {
    2 * s.monitor_interval_ms + 1_000
}
