//! A primary: it stays writable only while it holds a lease that a
//! majority of the voters renew, and never once it is superseded.
//!
//! - Every [`Settings::heartbeat_every_ms`] it sends a heartbeat to every
//!   voter; each acknowledgement is a promise not to vote for a while
//!   ([`super::vote`]). A voter with no repmgrd connected to its server
//!   counts as a promise of [`QUARANTINE_MS`] (its repmgrd, once started,
//!   sits that long out).
//! - When no round has reached a majority for
//!   [`Settings::soft_fence_after_ms`] it fences itself read-only (client
//!   sessions end); [`Settings::stop_margin_ms`] before the lease could end
//!   it stops the server, so it can take no write once a vote elsewhere
//!   becomes possible. When a majority answers again and nobody has a
//!   newer term, the fence is lifted (the server started again).
//! - Any answer that names a newer term demotes it (standby.signal, then a
//!   restart in recovery), or stops it with `fence_mode=stop`; with
//!   `auto_rejoin` it then rejoins the new primary. The fence is recorded
//!   durably first, so a restart by hand is fenced again at once.
//! - The lease fence is for a cluster that can fail over on its own: a
//!   primary whose metadata names no node that could be promoted
//!   automatically (an active standby of priority > 0 whose repmgrd runs
//!   with `failover=automatic`) says so in its heartbeats and does not
//!   fence itself on losing its lease, once enough voters heard it that no
//!   majority can be gathered without one of them (they grant no vote
//!   while they know that). repmgr's own behaviour with `failover=manual`
//!   is kept: repmgrd never stops such a primary.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Ctx;
use super::settings::{Quorum, Settings};
use super::timing::{self, QUARANTINE_MS};
use super::types::*;

mod children;
mod done;
mod health;
mod hung;
mod lease;
mod rejoin;

pub(super) use lease::Lease;

#[derive(Debug, Clone)]
pub(super) struct Primary {
    term: Term,
    lease: Lease,
    started: Time,
    /// The fence on the server now, and one being applied.
    applied: Option<FenceHow>,
    applying: Option<FenceHow>,
    superseded: Option<(Term, Option<NodeId>)>,
    /// A repmgrd_fence event was recorded for this episode.
    evented: bool,
    majority_lost_logged: bool,
    /// The last fence failure logged and recorded: a step retried every
    /// evaluation records its failure once, not each time.
    fence_error: Option<String>,
    timeline: u32,
    children: BTreeMap<NodeId, bool>,
    children_missing_since: Option<Time>,
    next_child_check: Time,
    rejoin_after: Option<Time>,
    /// A rejoin waits for a cluster round to name its target
    /// (primary/rejoin.rs).
    rejoin_wanted: bool,
    /// When a server stopped by its own fence next looks for a newer
    /// primary (primary/rejoin.rs).
    next_look: Time,
    prepared_for: Option<NodeId>,
    down_since: Option<Time>,
    /// Whether the server, down since `down_since`, was looked at for a
    /// kill (primary/hung.rs).
    hung_decided: bool,
    /// Since when the server has not answered while a fence job of ours
    /// ran (that job may be what took it down; if it fails, the server
    /// is down all the same: primary/hung.rs).
    down_in_job: Option<Time>,
    /// What its heartbeats say: it knows of an automatic candidate.
    advertise: bool,
    /// Since when heartbeats have said it does not fence, and the voters
    /// that acknowledged one of those.
    no_fence_since: Option<Time>,
    no_fence_heard: BTreeSet<NodeId>,
}

impl Primary {
    pub(super) fn new(core: &mut Ctx, now: Time, f: &LocalFacts) -> Primary {
        let me = core.s.node_id;
        let mut term = f.voting_term;
        if core.book.durable.known_primary == Some(me) {
            term = term.max(core.book.durable.known_term);
        }
        let voters = core.voters().len().max(1);
        let superseded = match core.book.durable.fence {
            Some(FenceState::Superseded { term, by }) => Some((term, by)),
            _ => None,
        };
        Primary {
            term,
            lease: Lease::new(term, voters),
            started: now,
            applied: f.read_only_fenced.then_some(FenceHow::ReadOnly),
            applying: None,
            superseded,
            evented: core.book.durable.fence.is_some(),
            majority_lost_logged: false,
            fence_error: None,
            timeline: f.timeline,
            children: BTreeMap::new(),
            children_missing_since: None,
            next_child_check: now,
            rejoin_after: None,
            rejoin_wanted: false,
            next_look: now,
            prepared_for: None,
            down_since: None,
            hung_decided: false,
            down_in_job: None,
            advertise: true,
            no_fence_since: None,
            no_fence_heard: BTreeSet::new(),
        }
    }

    /// A standby that just promoted itself, with the lease its votes gave.
    /// `timeline`: the one it promoted from (the promotion begins the next).
    pub(super) fn promoted(term: Term, lease: Lease, now: Time, timeline: u32) -> Primary {
        Primary {
            term,
            lease,
            started: now,
            applied: None,
            applying: None,
            superseded: None,
            evented: false,
            majority_lost_logged: false,
            fence_error: None,
            timeline: timeline + 1,
            children: BTreeMap::new(),
            children_missing_since: None,
            next_child_check: now,
            rejoin_after: None,
            rejoin_wanted: false,
            next_look: now,
            prepared_for: None,
            down_since: None,
            hung_decided: false,
            down_in_job: None,
            advertise: true,
            no_fence_since: None,
            no_fence_heard: BTreeSet::new(),
        }
    }

    pub(super) fn fenced(&self) -> bool {
        self.applied.is_some() || self.superseded.is_some()
    }

    pub(super) fn prepared_for(&self) -> Option<NodeId> {
        self.prepared_for
    }

    /// When it needs a tick: the next renewal, and the soft and the hard
    /// fence times.
    pub(super) fn wakeups(&self, s: &Settings) -> Vec<Time> {
        if self.down_since.is_some() && self.applied != Some(FenceHow::Stop) {
            return self.kill_due(s).into_iter().collect();
        }
        let mut t = vec![self.lease.next_renewal(s)];
        if s.quorum == Quorum::Majority {
            if let Some(end) = self.lease.end() {
                let span = self.lease.span(s.lease_ms());
                let soft = span / 2;
                let stop = self.lease.stop_margin(s);
                for margin in [soft, stop] {
                    let at = end.minus(margin);
                    if at > Time(0) {
                        t.push(at.max(Time(1)));
                    }
                }
            }
        }
        t
    }

    // ------------------------------------------------------------ ticks

    pub(super) fn tick(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) {
        self.hung_decided = false;
        self.down_in_job = None;
        if self.applied == Some(FenceHow::Kill) {
            self.applied = None; // started again: the other fences apply
        }
        if self.down_since.take().is_some() && self.applied != Some(FenceHow::Stop) {
            core.log(
                Level::Notice,
                format!("reconnected to local node {}", core.me()),
            );
            core.event(
                "repmgrd_local_reconnect",
                true,
                format!("reconnected to local node {}", core.me()),
                None,
            );
        }
        if self.applied == Some(FenceHow::Stop)
            && self.applying.is_none()
            && core.s.safety.refence_on_start
        {
            // Started by hand while fenced: fence again at once.
            self.applied = None;
        }
        self.timeline = f.timeline;
        self.term = self.term.max(f.voting_term);
        self.lease.voters = core.voters().len().max(1);
        self.lease.term = self.term;
        self.check_book(core);
        self.update_fencing(core, now);
        if f.read_only_fenced && self.applied.is_none() && core.book.durable.fence.is_some() {
            self.applied = Some(FenceHow::ReadOnly);
        }
        core.out.push(Action::WriteStatus { upstream: None });
        // A renewal due within a quarter interval goes with this cycle's
        // answer of the local server (which it needs anyway): one wake-up
        // a second instead of two, and no separate check of the server.
        if self.down_since.is_none() && self.applied != Some(FenceHow::Stop) {
            let soon = now.plus(self.lease.renewal_every(&core.s) / 4);
            self.renew_due(core, now, soon);
        }
        self.evaluate(core, now);
        self.check_children(core, now, f);
    }

    pub(super) fn timers(&mut self, core: &mut Ctx, now: Time) {
        if self.down_since.is_some() && self.applied != Some(FenceHow::Stop) {
            self.kill_if_hung(core, now);
            return;
        }
        self.renew_due(core, now, now);
        self.evaluate(core, now);
    }

    /// Sends the heartbeats that renew the lease when the next renewal is
    /// due by `by` (`now`, or a little later: renewing early only starts
    /// the voters' promises sooner, which is always safe).
    fn renew_due(&mut self, core: &mut Ctx, now: Time, by: Time) {
        // A superseded primary holds no lease: the voters' promises to it
        // must run out so that an election can succeed.
        if self.superseded.is_none() && by >= self.lease.next_renewal(&core.s) {
            let me = core.s.node_id;
            let to: Vec<NodeId> = core
                .voters()
                .iter()
                .filter(|n| n.id != me)
                .map(|n| n.id)
                .collect();
            self.lease.renewal_sent(now);
            if !to.is_empty() {
                core.out.push(Action::SendHeartbeats {
                    term: self.term,
                    to,
                    promoted: true,
                    local_must_answer: self.applied != Some(FenceHow::Stop),
                    fences: self.advertise && core.s.quorum == Quorum::Majority,
                });
            }
        }
    }

    pub(super) fn local_down(&mut self, core: &mut Ctx, now: Time) {
        if self.applied == Some(FenceHow::Stop) {
            return; // our own fence stopped it
        }
        if self.applying.is_some() {
            // Our own fence may be stopping it: known when the job ends.
            self.down_in_job.get_or_insert(now);
            return;
        }
        if self.down_since.is_none() {
            self.down_since = Some(now);
            core.log(
                Level::Warning,
                format!("unable to connect to local node {}", core.me()),
            );
            core.event(
                "repmgrd_local_disconnect",
                false,
                format!("unable to connect to local node {}", core.me()),
                None,
            );
        }
        // A promotion may happen elsewhere: look, so that whoever restarts
        // this server gets a standby.
        if self.prepared_for.is_none() {
            core.gather();
        }
        self.kill_if_hung(core, now);
    }

    // ---------------------------------------------------------- inputs

    pub(super) fn on_input(&mut self, core: &mut Ctx, now: Time, input: Input) {
        match input {
            Input::Heartbeat { from, sent, reply } => {
                match reply {
                    HeartbeatReply::Ack { promise_ms, .. } => {
                        self.lease.promise(from, sent, promise_ms);
                        if self.no_fence_since.is_some_and(|t| sent >= t) {
                            self.no_fence_heard.insert(from);
                            self.update_fencing(core, now);
                        }
                    }
                    HeartbeatReply::NoDaemon => {
                        self.lease.promise_unreported(from, sent, QUARANTINE_MS)
                    }
                    HeartbeatReply::Superseded { term, by } => self.supersede(core, term, by),
                }
                self.evaluate(core, now);
            }
            Input::Done(d) => self.on_done(core, now, d),
            Input::Cluster(obs) => {
                self.prepare_while_down(core, &obs);
                self.on_cluster_stopped(core, now, &obs);
            }
            _ => {}
        }
    }

    /// Another node claims to be the primary in `term`.
    pub(super) fn heard_other_primary(
        &mut self,
        core: &mut Ctx,
        now: Time,
        from: NodeId,
        term: Term,
    ) {
        if from != core.s.node_id && term > self.term {
            self.supersede(core, term, Some(from));
            self.evaluate(core, now);
        }
    }

    fn check_book(&mut self, core: &mut Ctx) {
        let me = core.s.node_id;
        let highest = core.book.highest_term();
        if highest > self.term && core.book.highest_holder() != Some(me) {
            let by = core.book.highest_holder();
            self.supersede(core, highest, by);
        }
    }

    fn supersede(&mut self, core: &mut Ctx, term: Term, by: Option<NodeId>) {
        if !core.s.safety.supersession_check {
            return;
        }
        if self.superseded.is_some_and(|(t, _)| t >= term) {
            return;
        }
        if term <= self.term && by.is_none_or(|b| b == core.s.node_id) {
            return;
        }
        // Its own promotion is no newer primary: it holds that term.
        if by == Some(core.s.node_id) {
            self.term = self.term.max(term);
            return;
        }
        self.superseded = Some((term, by));
        core.book.durable.fence = Some(FenceState::Superseded { term, by });
        let d = core.book.durable;
        core.persist(Some(d));
    }

    /// Applies the rule: superseded → demote; without a renewed lease →
    /// read-only, then stopped before the lease can end; a renewed lease
    /// and no newer term → unfenced.
    // Long: the fence decision table (superseded, down, lease thresholds,
    // unfence) in one place, so no rule can be skipped by a path around it.
    fn evaluate(&mut self, core: &mut Ctx, now: Time) {
        if self.applying.is_some() || core.pending.job {
            return;
        }
        // A server that is down (crashed, or stopped by its own fence)
        // takes no writes: it is not started to be fenced, only prepared
        // to come back as a standby.
        let stopped_superseded = self.applied == Some(FenceHow::Stop) && self.superseded.is_some();
        if self.down_since.is_some() || stopped_superseded {
            if let (Some((_, Some(by))), None) = (self.superseded, self.prepared_for) {
                self.prepare(core, by);
            }
            if self.down_since.is_none() && self.superseded.is_some() && core.s.auto_rejoin {
                self.rejoin(core, now);
            }
            return;
        }
        if let Some((term, by)) = self.superseded {
            let how = if core.s.fence_read_only {
                FenceHow::Demote { to: by }
            } else {
                FenceHow::Stop
            };
            let done = matches!(
                self.applied,
                Some(FenceHow::Demote { .. }) | Some(FenceHow::Stop)
            );
            if !done {
                let who = by.and_then(|b| core.node(b));
                let reason = match &who {
                    Some(n) => format!("node {n} was promoted in term {term}"),
                    None => format!("a promotion happened in term {term}"),
                };
                core.log(
                    Level::Warning,
                    format!("this primary is superseded: {reason}; fencing it"),
                );
                self.fence(core, how);
            } else if core.s.auto_rejoin {
                self.rejoin(core, now);
            }
            return;
        }
        self.look_while_stopped(core, now);
        if core.facts.is_none() {
            // Restarted while its fence keeps the server stopped: no
            // metadata, so no voters to count a lease on (one voter, itself,
            // would make a majority and lift the fence).
            return;
        }
        if core.s.quorum != Quorum::Majority {
            return;
        }
        if !core.book.durable.fencing {
            // Enough voters acknowledged that it does not fence that none
            // will vote (see `update_fencing`), and none of them knows a
            // newer term: a fence applied before is lifted.
            if self.applied.is_some() {
                let start = self.applied == Some(FenceHow::Stop);
                if core.job(Action::Unfence { start }) {
                    self.applying = Some(FenceHow::ReadOnly);
                }
            }
            return;
        }
        let s = core.s.clone();
        let t = self.thresholds(&s);
        let (lease, stop_margin, soft_at) = (t.lease, t.stop_margin, t.soft_at);
        // Right after start the first answers are on their way.
        let grace = now.since(self.started) < s.heartbeat_every_ms() + s.heartbeat_timeout_ms();
        let left = self.lease_left(now);
        let visible = 1 + self.lease.holding(now, soft_at.max(stop_margin + 1));
        let voters = self.lease.voters;
        if left < soft_at.max(stop_margin + 1) && !grace {
            if !self.majority_lost_logged {
                self.majority_lost_logged = true;
                core.log(
                    Level::Warning,
                    format!("this primary sees only {visible} of {voters} voters"),
                );
            }
        } else if left > soft_at + lease / 8 && self.majority_lost_logged {
            self.majority_lost_logged = false;
            core.log(
                Level::Notice,
                format!("this primary sees {visible} of {voters} voters again"),
            );
        }
        if grace {
            return;
        }
        if left <= stop_margin && s.safety.hard_fence {
            if self.applied != Some(FenceHow::Stop) {
                core.log(
                    Level::Warning,
                    "the lease of this primary is about to run out: stopping the server before another node can be promoted",
                );
                self.fence(core, FenceHow::Stop);
            }
        } else if left < soft_at {
            if self.applied.is_none() {
                let secs = (lease - left) / 1000;
                core.log(
                    Level::Warning,
                    format!("isolated for {secs} s: fencing this primary before another node can be promoted"),
                );
                self.fence(core, FenceHow::ReadOnly);
            }
        } else if self.applied.is_some() && self.evidence_left(&s, now) > soft_at + lease / 8 {
            // A majority renewed the lease, each saying it knows no newer
            // term (a server without its repmgrd says nothing of votes
            // that repmgrd granted: a partial heal to a witness whose
            // repmgrd is down unfenced the old primary beside the new).
            let start = self.applied == Some(FenceHow::Stop);
            if core.job(Action::Unfence { start }) {
                self.applying = Some(FenceHow::ReadOnly);
            }
        }
    }

    /// Whether the metadata names an automatic candidate, and so whether
    /// this primary fences itself on losing its lease: at once when one
    /// appears; no longer only when enough voters have heard it say so.
    fn update_fencing(&mut self, core: &mut Ctx, now: Time) {
        let me = core.s.node_id;
        self.advertise = core.nodes().iter().any(|n| {
            n.id != me && n.active && n.kind == NodeKind::Standby && n.priority > 0 && n.automatic
        });
        let fencing = if self.advertise {
            self.no_fence_since = None;
            self.no_fence_heard.clear();
            true
        } else {
            if self.no_fence_since.is_none() {
                self.no_fence_since = Some(now);
            }
            let heard = self.no_fence_heard.iter().filter(|id| **id != me).count();
            core.book.durable.fencing && heard < timing::blocking_others(self.lease.voters)
        };
        if fencing != core.book.durable.fencing {
            core.book.durable.fencing = fencing;
            let d = core.book.durable;
            core.persist(Some(d));
            core.log(
                Level::Notice,
                if fencing {
                    "an automatic failover candidate is registered: this primary fences itself if it loses its majority"
                } else {
                    "no automatic failover candidate is registered: this primary does not fence itself"
                },
            );
            core.out.push(Action::PublishFencing { fences: fencing });
        }
    }

    fn fence(&mut self, core: &mut Ctx, how: FenceHow) {
        if core.book.durable.fence.is_none() {
            core.book.durable.fence = Some(FenceState::Isolated);
            let d = core.book.durable;
            core.persist(Some(d));
        }
        if core.job(Action::Fence { how }) {
            self.applying = Some(how);
        }
    }

    /// While the local server is down: if a promotion happened elsewhere,
    /// prepare the data directory so a restart comes up as a standby.
    fn prepare_while_down(&mut self, core: &mut Ctx, obs: &[NodeObs]) {
        if self.down_since.is_none() || self.prepared_for.is_some() {
            return;
        }
        let newer = |o: &&NodeObs| {
            o.reachable
                && o.id != core.s.node_id
                && (o.timeline > self.timeline || o.term > self.term)
        };
        let target = obs
            .iter()
            .filter(newer)
            .find(|o| o.is_writable_primary())
            .or_else(|| obs.iter().find(newer));
        if let Some(t) = target {
            self.prepare(core, t.id);
        }
    }

    /// Writes standby.signal for `target` into the stopped server's data
    /// directory, once.
    fn prepare(&mut self, core: &mut Ctx, target: NodeId) {
        // Restarted while its fence keeps the server stopped, the core has
        // no node list (no local facts); the driver has the cached records
        // and writes for the target's. Else a node not in the metadata is
        // no target.
        let node = match core.node(target) {
            Some(n) => n.to_string(),
            None if core.facts.is_none() => format!("node {target}"),
            None => return,
        };
        self.prepared_for = Some(target);
        core.out.push(Action::PrepareAsStandby { target });
        let details = format!(
            "node {} fenced: {node} holds a newer term or a newer timeline than this node, which was stopped; it will restart as a standby",
            core.me()
        );
        core.log(Level::Warning, details.clone());
        core.event_on(target, "repmgrd_fence", true, details);
    }
}
