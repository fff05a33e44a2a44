//! repmgrd's decisions, without I/O: a state machine that takes
//! observations and the time, and returns actions
//! (`Core::step(now, input) -> Vec<Action>`). It reads no clock, opens no
//! socket and touches no file; the driver (`daemon::driver`) gathers the
//! observations with deadlines and carries out the actions, and the
//! simulation (`tests/sim`) does both against a model of a cluster.
//!
//! The shape follows raft-rs's `RawNode`: inputs in, actions out, time as a
//! value. All policy lives here, once:
//!
//! - a standby checks its upstream every cycle; a failed check starts
//!   `reconnect_attempts` scheduled by the clock ([`standby`]);
//! - then an election ([`election`]): the winner asks every voter for its
//!   vote ([`vote`]) and promotes only with a majority, holding a lease
//!   that every vote and every heartbeat renews;
//! - a primary renews its lease with heartbeats to every voter, fences
//!   itself before the lease can run out (read-only, then stop), and is
//!   demoted when any voter knows a newer term ([`primary`]);
//! - a witness watches the primary and votes ([`witness`]).
//!
//! [`timing`] holds every duration and the reasoning for each.

pub mod election;
mod primary;
mod standby;
pub mod sync;
pub mod timing;
pub mod types;
pub mod vote;
mod witness;

use primary::Primary;
use standby::Standby;
use types::*;
use vote::{VoteBook, VoterView};
use witness::Witness;

/// Automatic or manual failover (`failover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failover {
    #[default]
    Manual,
    Automatic,
}

/// Which quorum rule elections follow (`failover_quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// A strict majority of every voter, the failed primary counted; the
    /// primary holds a lease and fences itself without one.
    #[default]
    Majority,
    /// repmgr's rule: more than half of the visible siblings; no lease.
    Repmgr,
}

/// What the core is told of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub node_id: NodeId,
    pub node_name: String,
    pub failover: Failover,
    pub quorum: Quorum,
    pub monitor_interval_ms: u64,
    pub reconnect_attempts: u32,
    pub reconnect_interval_ms: u64,
    pub primary_notification_timeout_ms: u64,
    pub election_rerun_interval_ms: u64,
    /// None: never give up.
    pub degraded_monitoring_timeout_ms: Option<u64>,
    pub primary_visibility_consensus: bool,
    /// The read-only fence; false: stop the server.
    pub fence_read_only: bool,
    /// `primary_isolation_timeout` when set.
    pub isolation_timeout_ms: Option<u64>,
    pub auto_rejoin: bool,
    /// None: children are not checked.
    pub child_nodes_check_interval_ms: Option<u64>,
    pub child_nodes_disconnect_min_count: i32,
    pub child_nodes_connected_min_count: i32,
    pub child_nodes_disconnect_timeout_ms: u64,
    pub child_nodes_connected_include_witness: bool,
    pub witness_sync_interval_ms: u64,
    pub log_status_interval_ms: u64,
    /// This node is a witness.
    pub is_witness: bool,
    /// The safety rules, all on. Switching one off is for the
    /// simulation's self-test only (it proves the checker finds the split
    /// brain the rule prevents); repmgrd never does.
    pub safety: Safety,
}

/// Rules the simulation's self-test can switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    /// Voters keep the promises they make (no vote while one holds).
    pub voters_keep_promises: bool,
    /// The failed primary counts as a voter in the majority.
    pub count_failed_primary: bool,
    /// A primary stops its server before its lease can run out (not only
    /// the read-only default, which a client can override).
    pub hard_fence: bool,
}

impl Default for Safety {
    fn default() -> Safety {
        Safety {
            voters_keep_promises: true,
            count_failed_primary: true,
            hard_fence: true,
        }
    }
}

impl Default for Settings {
    /// repmgr's defaults.
    fn default() -> Settings {
        Settings {
            node_id: 0,
            node_name: String::new(),
            failover: Failover::Automatic,
            quorum: Quorum::Majority,
            monitor_interval_ms: 2_000,
            reconnect_attempts: 6,
            reconnect_interval_ms: 10_000,
            primary_notification_timeout_ms: 60_000,
            election_rerun_interval_ms: 15_000,
            degraded_monitoring_timeout_ms: None,
            primary_visibility_consensus: false,
            fence_read_only: true,
            isolation_timeout_ms: None,
            auto_rejoin: false,
            child_nodes_check_interval_ms: Some(5_000),
            child_nodes_disconnect_min_count: -1,
            child_nodes_connected_min_count: -1,
            child_nodes_disconnect_timeout_ms: 30_000,
            child_nodes_connected_include_witness: false,
            witness_sync_interval_ms: 15_000,
            log_status_interval_ms: 300_000,
            is_witness: false,
            safety: Safety::default(),
        }
    }
}

/// Which part this node plays, with the state of that part.
#[derive(Debug, Clone)]
enum Role {
    /// Until the local server first answered.
    Unknown,
    Standby(Standby),
    Primary(Primary),
    Witness(Witness),
}

/// Work the core asked for and has not heard back about: at most one of
/// each kind is in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pending {
    local: bool,
    check: bool,
    gather: bool,
    votes: bool,
    job: bool,
}

/// The state machine of one repmgrd.
#[derive(Debug, Clone)]
pub struct Core {
    s: Settings,
    /// The voter in this node: promises, grants, the durable record.
    pub book: VoteBook,
    role: Role,
    /// The local server answered at the last read; since when it has not.
    local_down_since: Option<Time>,
    /// The last facts the local server gave.
    facts: Option<LocalFacts>,
    pending: Pending,
    next_tick: Time,
    next_status_log: Time,
    /// The time of the last step: wake-ups are never in the past of it.
    last_now: Time,
    out: Vec<Action>,
}

impl Core {
    /// A core for a repmgrd starting at `now`, with its durable state.
    pub fn new(s: Settings, persisted: Persisted, now: Time) -> Core {
        let lease = s.lease_ms();
        let status_every = s.log_status_interval_ms;
        let mut book = VoteBook::new(persisted, now, lease);
        book.keep_promises = s.safety.voters_keep_promises;
        Core {
            book,
            s,
            role: Role::Unknown,
            local_down_since: None,
            facts: None,
            pending: Pending::default(),
            next_tick: now,
            next_status_log: now.plus(status_every),
            last_now: now,
            out: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// What this repmgrd answers a status request with now.
    pub fn status(&self, now: Time) -> DaemonStatus {
        self.book.status(now, &self.voter_view(now))
    }

    /// The role in force, for logs and the simulation's checks.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Unknown => "unknown",
            Role::Standby(_) => "standby",
            Role::Primary(_) => "primary",
            Role::Witness(_) => "witness",
        }
    }

    /// When the core next needs a [`Input::Tick`].
    pub fn next_wakeup(&self) -> Time {
        let mut t = self.next_tick;
        let role = match &self.role {
            Role::Standby(sb) => sb.wakeup(&self.s),
            Role::Primary(p) => p.wakeup(&self.s),
            Role::Witness(_) | Role::Unknown => None,
        };
        if let Some(w) = role.filter(|w| *w > self.last_now) {
            t = t.min(w);
        }
        t
    }

    /// Feeds one observation; returns what to do.
    pub fn step(&mut self, now: Time, input: Input) -> Vec<Action> {
        self.last_now = now;
        match input {
            Input::Peer { token, request } => self.on_peer(now, token, request),
            Input::Reload(s) => self.on_reload(now, *s),
            Input::Local(f) => {
                self.pending.local = false;
                self.on_local(now, f);
            }
            other => self.dispatch(now, other),
        }
        if now >= self.next_tick && !self.pending.local {
            self.pending.local = true;
            self.next_tick = now.plus(self.s.monitor_interval_ms.max(100));
            self.out.push(Action::ReadLocal);
        }
        self.timers(now);
        std::mem::take(&mut self.out)
    }

    /// What the role in force does with an input.
    fn dispatch(&mut self, now: Time, input: Input) {
        match &input {
            Input::UpstreamCheck { .. } => self.pending.check = false,
            Input::Cluster(_) => self.pending.gather = false,
            Input::Votes { .. } => self.pending.votes = false,
            Input::Done(_) => self.pending.job = false,
            _ => {}
        }
        let mut role = std::mem::replace(&mut self.role, Role::Unknown);
        match &mut role {
            Role::Standby(sb) => sb.on_input(self, now, input),
            Role::Primary(p) => p.on_input(self, now, input),
            Role::Witness(w) => w.on_input(self, now, input),
            Role::Unknown => {}
        }
        self.settle_role(role);
    }

    /// A role's handler may have replaced the role (a promotion, a
    /// demotion): keep the new one if so.
    fn settle_role(&mut self, handled: Role) {
        if matches!(self.role, Role::Unknown) {
            self.role = handled;
        }
    }

    fn on_local(&mut self, now: Time, f: Option<LocalFacts>) {
        let Some(f) = f else {
            if self.local_down_since.is_none() {
                self.local_down_since = Some(now);
            }
            let mut role = std::mem::replace(&mut self.role, Role::Unknown);
            match &mut role {
                Role::Standby(sb) => sb.local_down(self, now),
                Role::Primary(p) => p.local_down(self, now),
                Role::Witness(w) => w.local_down(self, now),
                Role::Unknown => {}
            }
            self.settle_role(role);
            return;
        };
        if self.local_down_since.take().is_some() {
            // A primary may have counted this node as having no repmgrd.
            self.book.requarantine(now, self.s.lease_ms());
        }
        self.facts = Some(f.clone());
        let role = std::mem::replace(&mut self.role, Role::Unknown);
        let next = match role {
            Role::Witness(mut w) => {
                w.tick(self, now, &f);
                Role::Witness(w)
            }
            Role::Unknown if self.s.is_witness => {
                let mut w = Witness::new(&self.s);
                w.tick(self, now, &f);
                Role::Witness(w)
            }
            Role::Primary(mut p) if !f.in_recovery => {
                p.tick(self, now, &f);
                Role::Primary(p)
            }
            Role::Standby(mut sb) if f.in_recovery => {
                sb.tick(self, now, &f);
                Role::Standby(sb)
            }
            Role::Primary(p) => {
                // The server now runs in recovery: demoted, or rejoined.
                self.log(
                    Level::Notice,
                    "local node is now a standby; monitoring its upstream",
                );
                let mut sb = Standby::after_primary(p);
                sb.tick(self, now, &f);
                Role::Standby(sb)
            }
            Role::Standby(_) if !f.in_recovery => {
                self.log(
                    Level::Notice,
                    "local node is now a primary; monitoring it as such",
                );
                let mut p = Primary::new(self, now, &f);
                p.tick(self, now, &f);
                Role::Primary(p)
            }
            Role::Unknown if f.in_recovery => {
                let mut sb = Standby::new();
                sb.tick(self, now, &f);
                Role::Standby(sb)
            }
            _ => {
                let mut p = Primary::new(self, now, &f);
                p.tick(self, now, &f);
                Role::Primary(p)
            }
        };
        if matches!(self.role, Role::Unknown) {
            self.role = next;
        }
    }

    fn timers(&mut self, now: Time) {
        if now >= self.next_status_log {
            self.next_status_log = now.plus(self.s.log_status_interval_ms.max(1_000));
            let line = match &self.role {
                Role::Standby(sb) => sb.status_line(&self.s),
                Role::Primary(_) => format!(
                    "monitoring primary node \"{}\" (ID: {}) in normal state",
                    self.s.node_name, self.s.node_id
                ),
                Role::Witness(w) => w.status_line(&self.s),
                Role::Unknown => return,
            };
            self.log(Level::Info, line);
        }
        let mut role = std::mem::replace(&mut self.role, Role::Unknown);
        match &mut role {
            Role::Standby(sb) => sb.timers(self, now),
            Role::Primary(p) => p.timers(self, now),
            Role::Witness(_) | Role::Unknown => {}
        }
        self.settle_role(role);
    }

    // ------------------------------------------------------------ peers

    /// What this node's voter should know of itself to answer.
    fn voter_view(&self, now: Time) -> VoterView {
        let f = self.facts.as_ref();
        let (am_primary, sees) = match &self.role {
            Role::Primary(p) => (!p.fenced(), None),
            Role::Standby(sb) => (false, sb.sees_primary(&self.s, now, f)),
            Role::Witness(w) => (false, w.sees_primary(&self.s, now)),
            Role::Unknown => (false, None),
        };
        let me = self.s.node_id;
        let candidate = f.is_some_and(|f| {
            f.nodes
                .iter()
                .any(|n| n.id == me && n.kind == NodeKind::Standby && n.priority > 0)
        });
        let wal = match (&self.role, f) {
            (Role::Witness(_), _) | (_, None) => None,
            (_, Some(_)) if !candidate => None,
            (_, Some(f)) => Some((f.timeline, f.lsn)),
        };
        VoterView {
            am_primary,
            sees,
            wal,
            timeline: f.map_or(0, |f| f.timeline),
        }
    }

    fn on_peer(&mut self, now: Time, token: u64, request: PeerRequest) {
        let lease = self.s.lease_ms();
        let reply = match request {
            PeerRequest::Heartbeat {
                from,
                term,
                promoted,
                ..
            } => {
                let (r, p) = self.book.on_heartbeat(now, from, term, lease);
                self.persist(p);
                let mut role = std::mem::replace(&mut self.role, Role::Unknown);
                match &mut role {
                    Role::Standby(sb) if promoted => sb.heard_primary(self, now, from, term),
                    Role::Primary(p) => p.heard_other_primary(self, now, from, term),
                    Role::Witness(w) => w.heard_primary(now, from),
                    Role::Standby(_) => {}
                    Role::Unknown => {}
                }
                self.settle_role(role);
                PeerReply::Heartbeat(r)
            }
            PeerRequest::Vote(req) => {
                let view = self.voter_view(now);
                let (r, p) = self.book.on_vote(now, &req, &view, lease);
                self.persist(p);
                match r {
                    VoteReply::Granted { .. } => self.log(
                        Level::Info,
                        format!(
                            "granted node {} the vote for term {} (node {} failed)",
                            req.candidate, req.term, req.failed
                        ),
                    ),
                    VoteReply::Refused(why) => self.log(
                        Level::Info,
                        format!(
                            "refused node {} the vote for term {}: {why}",
                            req.candidate, req.term
                        ),
                    ),
                    VoteReply::Silent => {}
                }
                PeerReply::Vote(r)
            }
            PeerRequest::Status => PeerReply::Status(self.book.status(now, &self.voter_view(now))),
        };
        self.out.push(Action::Reply { token, reply });
    }

    fn on_reload(&mut self, now: Time, s: Settings) {
        // A promise already made is kept even if the new lease is shorter
        // (the voter's own clock decides; see VoteBook).
        let _ = now;
        self.s = s;
    }

    // ---------------------------------------------------------- helpers

    fn persist(&mut self, p: Option<Persisted>) {
        if let Some(p) = p {
            self.out.push(Action::Persist(p));
        }
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    fn event(&mut self, name: &'static str, ok: bool, details: String, primary_id: Option<NodeId>) {
        self.out.push(Action::Event {
            name,
            ok,
            details,
            primary_id,
            on: None,
        });
    }

    fn event_on(&mut self, on: NodeId, name: &'static str, ok: bool, details: String) {
        self.out.push(Action::Event {
            name,
            ok,
            details,
            primary_id: Some(on),
            on: Some(on),
        });
    }

    fn me(&self) -> String {
        format!("\"{}\" (ID: {})", self.s.node_name, self.s.node_id)
    }

    fn node(&self, id: NodeId) -> Option<NodeInfo> {
        self.facts
            .as_ref()
            .and_then(|f| f.nodes.iter().find(|n| n.id == id).cloned())
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.facts
            .as_ref()
            .map(|f| f.nodes.clone())
            .unwrap_or_default()
    }

    /// Asks for a cluster round unless one is in flight.
    fn gather(&mut self) -> bool {
        if self.pending.gather {
            return false;
        }
        self.pending.gather = true;
        self.out.push(Action::GatherCluster);
        true
    }

    fn check(&mut self, node: NodeId) -> bool {
        if self.pending.check {
            return false;
        }
        self.pending.check = true;
        self.out.push(Action::CheckUpstream { node, ping: false });
        true
    }

    fn job(&mut self, a: Action) -> bool {
        if self.pending.job {
            return false;
        }
        self.pending.job = true;
        self.out.push(a);
        true
    }

    fn paused(&self) -> bool {
        self.facts.as_ref().is_some_and(|f| f.paused)
    }

    /// The voters of the cluster as this node's metadata has them.
    fn voters(&self) -> Vec<NodeInfo> {
        self.nodes().into_iter().filter(|n| n.is_voter()).collect()
    }
}

#[cfg(test)]
mod tests;
