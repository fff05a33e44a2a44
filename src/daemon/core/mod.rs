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

mod context;
pub mod election;
pub mod health;
mod primary;
pub mod settings;
mod standby;
pub mod sync;
pub mod timing;
pub mod types;
pub mod vote;
mod witness;

use context::{Ctx, Pending};
use health::{Health, HealthRole};
use primary::Primary;
pub use settings::{Failover, Quorum, Safety, Settings};
use standby::Standby;
use types::*;
use vote::{VoteBook, VoterView};
use witness::Witness;

/// Which part this node plays, with the state of that part.
#[derive(Debug, Clone)]
enum Role {
    /// Until the local server first answered.
    Unknown,
    Standby(Standby),
    Primary(Primary),
    Witness(Witness),
}

/// The state machine of one repmgrd.
#[derive(Debug, Clone)]
pub struct Core {
    ctx: Ctx,
    role: Role,
    /// The local server answered at the last read; since when it has not.
    local_down_since: Option<Time>,
    next_tick: Time,
    next_status_log: Time,
    /// The time of the last step: wake-ups are never in the past of it.
    last_now: Time,
}

impl Core {
    /// A core for a repmgrd starting at `now`, with its durable state.
    pub fn new(s: Settings, persisted: Persisted, now: Time) -> Core {
        let lease = s.lease_ms();
        let status_every = s.log_status_interval_ms;
        let mut persisted = persisted;
        if !s.safety.durable_votes {
            // The grants lived in memory only (a session lock, say).
            persisted.granted_term = 0;
            persisted.granted_to = None;
        }
        let mut book = VoteBook::new(persisted, now, lease);
        book.set_safety(s.safety);
        Core {
            ctx: Ctx {
                book,
                s,
                facts: None,
                pending: Pending::default(),
                check_seq: 0,
                out: Vec::new(),
            },
            role: Role::Unknown,
            local_down_since: None,
            next_tick: now,
            next_status_log: now.plus(status_every),
            last_now: now,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.ctx.s
    }

    /// What this repmgrd answers a status request with now.
    pub fn status(&self, now: Time) -> DaemonStatus {
        let mut s = self.ctx.book.status(now, &self.voter_view(now));
        s.automatic = self.ctx.s.failover == Failover::Automatic;
        s
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
        let role = match &self.role {
            Role::Standby(sb) => sb.wakeups(&self.ctx.s),
            Role::Primary(p) => p.wakeups(&self.ctx.s),
            Role::Witness(_) | Role::Unknown => Vec::new(),
        };
        // A time already passed is being waited on (an answer is due) or
        // was handled; each is dropped alone, so that it cannot hide a
        // later one (a primary's stop time behind its read-only time)
        // until the next monitoring tick.
        role.into_iter()
            .filter(|w| *w > self.last_now)
            .fold(self.next_tick, Time::min)
    }

    /// Feeds one observation; returns what to do.
    pub fn step(&mut self, now: Time, input: Input) -> Vec<Action> {
        self.last_now = now;
        // A read's own answer never asks for the next read: the driver
        // reads synchronously and steps the answer at once, so against a
        // hung server (each read takes its whole deadline, longer than
        // the interval) reads would follow reads for ever and nothing else
        // the driver received (a fence job's end, a peer's answer) would
        // be stepped: a primary hung during its own fence job was never
        // killed. The next tick, after those, asks.
        let read_answer = matches!(input, Input::Local(_));
        match input {
            Input::Peer { token, request } => self.on_peer(now, token, request),
            Input::Reload(s) => self.on_reload(now, *s),
            Input::Local(f) => {
                self.ctx.pending.local = false;
                self.on_local(now, f);
            }
            other => self.dispatch(now, other),
        }
        if now >= self.next_tick && !self.ctx.pending.local && !read_answer {
            self.ctx.pending.local = true;
            self.next_tick = now.plus(self.ctx.s.monitor_interval_ms.max(100));
            self.ctx.out.push(Action::ReadLocal);
        }
        self.timers(now);
        std::mem::take(&mut self.ctx.out)
    }

    /// What the role in force does with an input.
    fn dispatch(&mut self, now: Time, input: Input) {
        match &input {
            Input::UpstreamCheck { .. } => {
                self.ctx.pending.checks = self.ctx.pending.checks.saturating_sub(1)
            }
            Input::Cluster(_) => self.ctx.pending.gather = false,
            Input::Votes { .. } => self.ctx.pending.votes = false,
            Input::Done(_) => self.ctx.pending.job = false,
            _ => {}
        }
        match &mut self.role {
            Role::Standby(sb) => sb.on_input(&mut self.ctx, now, input),
            Role::Primary(p) => p.on_input(&mut self.ctx, now, input),
            Role::Witness(w) => w.on_input(&mut self.ctx, now, input),
            Role::Unknown => {}
        }
        self.settle_role();
    }

    /// A standby whose promotion completed becomes the primary.
    fn settle_role(&mut self) {
        if let Role::Standby(sb) = &mut self.role {
            if let Some(p) = sb.promoted.take() {
                self.role = Role::Primary(*p);
                // Read the server again at once: until then the facts say
                // it is in recovery, and the health view would not yet
                // vouch for the new primary.
                self.next_tick = self.last_now;
            }
        }
    }

    fn on_local(&mut self, now: Time, f: Option<LocalFacts>) {
        let Some(f) = f else {
            if self.local_down_since.is_none() {
                self.local_down_since = Some(now);
            }
            match &mut self.role {
                Role::Standby(sb) => sb.local_down(&mut self.ctx, now),
                Role::Primary(p) => p.local_down(&mut self.ctx, now),
                Role::Witness(w) => w.local_down(&mut self.ctx, now),
                // Started while the server is down, and the state file
                // records a fence of this node's own: that fence keeps the
                // server stopped, and a newer primary is looked for
                // (primary/rejoin.rs); else nothing is known to act on.
                Role::Unknown
                    if !self.ctx.s.is_witness && self.ctx.book.durable.fence.is_some() =>
                {
                    self.ctx.log(
                        Level::Notice,
                        "the local server is down and this node fenced it: it stays fenced; looking for a newer primary",
                    );
                    self.role = Role::Primary(Primary::stopped(&mut self.ctx, now));
                }
                Role::Unknown => {}
            }
            self.settle_role();
            return;
        };
        if self.local_down_since.take().is_some() {
            // A primary may have counted this node as having no repmgrd.
            self.ctx.book.requarantine(now, self.ctx.s.lease_ms());
        }
        self.ctx.facts = Some(f.clone());
        let role = std::mem::replace(&mut self.role, Role::Unknown);
        let next = match role {
            Role::Witness(mut w) => {
                w.tick(&mut self.ctx, now, &f);
                Role::Witness(w)
            }
            Role::Unknown if self.ctx.s.is_witness => {
                let mut w = Witness::new(&self.ctx.s);
                w.tick(&mut self.ctx, now, &f);
                Role::Witness(w)
            }
            Role::Primary(mut p) if !f.in_recovery => {
                p.tick(&mut self.ctx, now, &f);
                Role::Primary(p)
            }
            Role::Standby(mut sb) if f.in_recovery => {
                sb.tick(&mut self.ctx, now, &f);
                Role::Standby(sb)
            }
            Role::Primary(p) => {
                // The server now runs in recovery: demoted, or rejoined.
                self.ctx.log(
                    Level::Notice,
                    "local node is now a standby; monitoring its upstream",
                );
                let mut sb = Standby::after_primary(p);
                sb.tick(&mut self.ctx, now, &f);
                Role::Standby(sb)
            }
            // The server left recovery before the promotion reported: the
            // report makes this node a primary, with the term it won. (A
            // primary made from these facts would hold the term before the
            // election, hear of its own promotion as a newer one, and fence
            // itself.)
            Role::Standby(sb) if !f.in_recovery && sb.promoting() => Role::Standby(sb),
            Role::Standby(_) if !f.in_recovery => {
                self.ctx.log(
                    Level::Notice,
                    "local node is now a primary; monitoring it as such",
                );
                let mut p = Primary::new(&mut self.ctx, now, &f);
                p.tick(&mut self.ctx, now, &f);
                Role::Primary(p)
            }
            Role::Unknown if f.in_recovery => {
                let mut sb = Standby::new();
                sb.tick(&mut self.ctx, now, &f);
                Role::Standby(sb)
            }
            _ => {
                let mut p = Primary::new(&mut self.ctx, now, &f);
                p.tick(&mut self.ctx, now, &f);
                Role::Primary(p)
            }
        };
        self.role = next;
        self.settle_role();
    }

    fn timers(&mut self, now: Time) {
        // 0 is "off", as repmgr's `log_status_interval > 0` test
        if self.ctx.s.log_status_interval_ms > 0 && now >= self.next_status_log {
            self.next_status_log = now.plus(self.ctx.s.log_status_interval_ms.max(1_000));
            let line = match &self.role {
                Role::Standby(sb) => sb.status_line(&self.ctx.s),
                Role::Primary(_) => format!(
                    "monitoring primary node \"{}\" (ID: {}) in normal state",
                    self.ctx.s.node_name, self.ctx.s.node_id
                ),
                Role::Witness(w) => w.status_line(&self.ctx.s),
                Role::Unknown => return,
            };
            self.ctx.log(Level::Info, line);
        }
        match &mut self.role {
            Role::Standby(sb) => sb.timers(&mut self.ctx, now),
            Role::Primary(p) => p.timers(&mut self.ctx, now),
            Role::Witness(_) | Role::Unknown => {}
        }
        self.settle_role();
    }

    // ------------------------------------------------------------ peers

    /// What this node's voter should know of itself to answer.
    fn voter_view(&self, now: Time) -> VoterView {
        let f = self.ctx.facts.as_ref();
        let (am_primary, sees) = match &self.role {
            Role::Primary(p) => (!p.fenced(), None),
            Role::Standby(sb) => (false, sb.sees_primary(&self.ctx.s, now, f)),
            Role::Witness(w) => (false, w.sees_primary(&self.ctx.s, now)),
            Role::Unknown => (false, None),
        };
        let witness = matches!(self.role, Role::Witness(_));
        self.ctx.voter_view(am_primary, sees, witness)
    }

    fn on_peer(&mut self, now: Time, token: u64, request: PeerRequest) {
        let lease = self.ctx.s.lease_ms();
        let reply = match request {
            PeerRequest::Heartbeat {
                from,
                term,
                promoted,
                fences,
                ..
            } => {
                let (r, p) = self.ctx.book.on_heartbeat(now, from, term, fences, lease);
                self.ctx.persist(p);
                match &mut self.role {
                    Role::Standby(sb) if promoted => {
                        sb.heard_primary(&mut self.ctx, now, from, term)
                    }
                    Role::Primary(p) => p.heard_other_primary(&mut self.ctx, now, from, term),
                    Role::Witness(w) => w.heard_primary(now, from),
                    Role::Standby(_) => {}
                    Role::Unknown => {}
                }
                self.settle_role();
                PeerReply::Heartbeat(r)
            }
            PeerRequest::Vote(req) => {
                let view = self.voter_view(now);
                let (r, p) = self.ctx.book.on_vote(now, &req, &view, lease);
                self.ctx.persist(p);
                match r {
                    VoteReply::Granted { .. } => self.ctx.log(
                        Level::Info,
                        format!(
                            "granted node {} the vote for term {} (node {} failed)",
                            req.candidate, req.term, req.failed
                        ),
                    ),
                    VoteReply::Refused(why) => self.ctx.log(
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
            PeerRequest::Status => PeerReply::Status(self.status(now)),
        };
        self.ctx.out.push(Action::Reply { token, reply });
    }

    fn on_reload(&mut self, now: Time, s: Settings) {
        // A promise already made is kept even if the new lease is shorter
        // (the voter's own clock decides; see VoteBook).
        let _ = now;
        self.ctx.s = s;
    }
}

// ------------------------------------------------------------ health

impl Core {
    /// This node's health at `now`.
    pub fn health(&self, now: Time) -> Health {
        let facts = self.ctx.facts.as_ref();
        let running = self.local_down_since.is_none() && facts.is_some();
        let durable = &self.ctx.book.durable;
        let mut h = Health {
            role: match &self.role {
                Role::Unknown => HealthRole::Unknown,
                Role::Primary(_) => HealthRole::Primary,
                Role::Standby(_) => HealthRole::Standby,
                Role::Witness(_) => HealthRole::Witness,
            },
            running,
            writable: false,
            // A superseded node stays fenced; an isolation fence counts
            // only while the primary has one applied or being applied (the
            // durable record of it outlives a fence job that failed).
            fenced: matches!(durable.fence, Some(FenceState::Superseded { .. })),
            isolated: false,
            superseded: match durable.fence {
                Some(FenceState::Superseded { term, .. }) => Some(term),
                _ => None,
            },
            streaming: false,
            upstream: None,
            upstream_seen_ms_ago: None,
            in_recovery: facts.map(|f| f.in_recovery),
            timeline: facts.map(|f| f.timeline),
            paused: facts.is_some_and(|f| f.paused),
            known_term: durable.known_term,
        };
        match &self.role {
            Role::Primary(p) => self.primary_health(p, now, &mut h),
            Role::Standby(sb) => {
                let (upstream, last_ok) = sb.upstream_seen();
                h.upstream = upstream;
                h.upstream_seen_ms_ago = last_ok.map(|t| now.since(t));
                h.streaming = running
                    && facts
                        .is_some_and(|f| f.in_recovery && f.receiver.is_some_and(|r| r.streaming));
            }
            Role::Witness(_) | Role::Unknown => {}
        }
        h
    }

    fn primary_health(&self, p: &Primary, now: Time, h: &mut Health) {
        let s = &self.ctx.s;
        let lease = p.lease_view(s, now);
        if let Some(term) = lease.superseded {
            h.superseded = Some(h.superseded.map_or(term, |t| t.max(term)));
        }
        h.fenced |= lease.fenced;
        h.isolated =
            s.quorum == Quorum::Majority && self.ctx.book.durable.fencing && !lease.majority;
        let facts_writable = self
            .ctx
            .facts
            .as_ref()
            .is_some_and(|f| !f.in_recovery && !f.read_only_fenced);
        h.writable = h.running
            && facts_writable
            && !h.fenced
            && !h.isolated
            && h.superseded.is_none()
            && !lease.down;
    }
}

// Test-only items stay at the end of the file: the layering check reads
// a file only up to its first `#[cfg(test)]`.
#[cfg(test)]
impl Core {
    /// The phase in force, for the phase tests: `standby/healthy`,
    /// `primary/read-only`, `witness/watching 1`, ...
    fn phase(&self) -> String {
        match &self.role {
            Role::Unknown => "unknown".into(),
            Role::Standby(sb) => format!("standby/{}", sb.phase_name()),
            Role::Primary(p) => p.phase_name(),
            Role::Witness(w) => w.phase_name(),
        }
    }
}

#[cfg(test)]
mod tests;
