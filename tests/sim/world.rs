//! The event loop: delivers each node's inputs at their simulated times,
//! carries out each node's actions against the model, applies the faults,
//! moves WAL, writes as a client would, and checks the invariants.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use repmgr::daemon::core::types::*;
use repmgr::daemon::core::{Core, Failover};

use crate::model::*;
use crate::schedule::Fault;

mod checks;

/// splitmix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The longest a fence, demotion or unfence takes in the model.
pub const FENCE_OP_MAX: u64 = 600;
/// Connect and query deadline of every conninfo (connect_timeout=2).
pub const CONNECT_TIMEOUT: u64 = 2_000;
/// observe::DOWN_GRACE in the driver.
pub const DOWN_GRACE: u64 = 250;
const CLIENT_EVERY: u64 = 50;
const REPLICATE_EVERY: u64 = 10;

#[derive(Debug, Clone)]
enum Ev {
    Wake(Id),
    ReadLocal(Id, u64),
    Input(Id, u64, Input),
    /// A cluster round ends; the node given answered too late to count.
    Gather(Id, u64, Option<Id>),
    PeerReq {
        to: Id,
        token: u64,
        req: PeerRequest,
    },
    PeerRep {
        token: u64,
        reply: PeerReply,
    },
    RoundEnd(Id, u64, u64),
    Job(Id, u64, Action),
    Fault(Fault),
    Client,
    Replicate,
}

/// Something a targeted class waits for to apply its next faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This voter granted a (real, not pre-) vote.
    Grants(Id),
    /// A node was promoted.
    Promotion,
}

/// The faults applied once `when` happens (given the node it happened
/// to), each after its delay (ms).
pub struct Trigger {
    pub when: When,
    pub faults: Box<dyn Fn(Id) -> Vec<(u64, Fault)>>,
}

/// Who asked a peer request, for routing the answer.
#[derive(Debug, Clone, Copy)]
struct Token {
    from: Id,
    epoch: u64,
    round: u64,
    to: Id,
    /// A heartbeat's send time: its answer goes straight to the sender.
    sent: Option<Time>,
}

pub struct World {
    pub g: u64,
    pub hosts: Vec<Host>,
    pub net: Net,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    slab: BTreeMap<u64, Ev>,
    seq: u64,
    pub rng: Rng,
    rounds: BTreeMap<(Id, u64), Round>,
    tokens: BTreeMap<u64, Token>,
    next_id: u64,
    next_record: u64,
    next_tli: u32,
    /// synchronous_standby_names ("" = asynchronous).
    pub sync: String,
    /// Commits acknowledged to a client under synchronous replication.
    pub acked: Vec<u64>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub steps: u64,
    pub promotions: u32,
    wake_at: BTreeMap<Id, u64>,
    /// Info lines in the trace too (SIM_VERBOSE=1).
    pub verbose: bool,
    pub triggers: Vec<Trigger>,
    /// A targeted class in which no node may be promoted at all: why.
    pub no_promotion: Option<&'static str>,
    /// A targeted class's nodes whose servers must run at the end: why.
    pub expect_running: Vec<(Id, &'static str)>,
    /// A targeted class's standbys that must stream from the newest
    /// primary by the stable phase: why.
    pub expect_following: Option<(Vec<Id>, &'static str)>,
    /// Who was promoted in each term.
    promoted_in: BTreeMap<Term, Id>,
    /// Since when each standby's server has streamed from a node that a
    /// term its repmgrd knows superseded (invariant (f)).
    superseded_stream_since: BTreeMap<Id, u64>,
}

impl World {
    pub fn new(hosts: Vec<Host>, sync: String, rng: Rng) -> World {
        let mut w = World {
            g: 0,
            hosts,
            net: Net::default(),
            queue: BinaryHeap::new(),
            slab: BTreeMap::new(),
            seq: 0,
            rng,
            rounds: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_id: 1,
            next_record: 1,
            next_tli: 2,
            sync,
            acked: Vec::new(),
            violations: Vec::new(),
            trace: Vec::new(),
            steps: 0,
            promotions: 0,
            wake_at: BTreeMap::new(),
            verbose: std::env::var("SIM_VERBOSE").is_ok_and(|v| v == "1"),
            triggers: Vec::new(),
            no_promotion: None,
            expect_running: Vec::new(),
            expect_following: None,
            promoted_in: BTreeMap::new(),
            superseded_stream_since: BTreeMap::new(),
        };
        w.at(0, Ev::Client);
        w.at(0, Ev::Replicate);
        for i in 0..w.hosts.len() {
            let (t, id) = (w.rng.range(0, 500), w.hosts[i].id);
            w.at(t, Ev::Wake(id));
        }
        w
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.slab.insert(self.seq, ev);
        self.queue.push(Reverse((t, self.seq)));
    }

    pub fn fault_at(&mut self, t: u64, f: Fault) {
        self.at(t, Ev::Fault(f));
    }

    /// Applies the faults of the triggers waiting for `when`, once.
    fn happened(&mut self, when: When, who: Id) {
        let (now, later): (Vec<Trigger>, Vec<Trigger>) = std::mem::take(&mut self.triggers)
            .into_iter()
            .partition(|t| t.when == when);
        self.triggers = later;
        for t in now {
            self.log(format!("TRIGGER {when:?} of node{who}"));
            for (d, f) in (t.faults)(who) {
                match d {
                    0 => crate::schedule::apply(self, f),
                    _ => self.fault_at(self.g + d, f),
                }
            }
        }
    }

    fn idx(&self, id: Id) -> usize {
        self.hosts.iter().position(|h| h.id == id).unwrap_or(0)
    }

    pub fn log(&mut self, line: String) {
        if self.trace.len() < 200_000 {
            self.trace.push(format!("{:>8} {line}", self.g));
        }
    }

    fn violation(&mut self, what: String) {
        self.log(format!("VIOLATION {what}"));
        if self.violations.len() < 5 {
            self.violations.push(format!("t={} {what}", self.g));
        }
    }

    /// Runs until `end` (global ms).
    pub fn run(&mut self, end: u64) {
        while let Some(Reverse((t, seq))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.g = t;
            let Some(ev) = self.slab.remove(&seq) else {
                continue;
            };
            self.steps += 1;
            self.handle(ev);
            if !self.violations.is_empty() {
                break;
            }
        }
        self.g = end;
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake(id) => {
                let i = self.idx(id);
                if self.wake_at.get(&id).is_some_and(|w| *w > self.g) {
                    return;
                }
                self.wake_at.remove(&id);
                if self.hosts[i].core.is_some() {
                    self.deliver(i, Input::Tick);
                }
            }
            Ev::ReadLocal(id, epoch) => {
                let i = self.idx(id);
                if self.hosts[i].epoch != epoch {
                    return;
                }
                let f = self.hosts[i].pg_up().then(|| {
                    local_facts(&self.hosts[i], &self.hosts, &self.net, self.g, &self.sync)
                });
                self.deliver(i, Input::Local(f));
            }
            Ev::Input(id, epoch, input) => {
                let i = self.idx(id);
                if self.hosts[i].epoch == epoch {
                    self.deliver(i, input);
                }
            }
            Ev::Gather(id, epoch, late) => {
                let i = self.idx(id);
                if self.hosts[i].epoch == epoch {
                    let mut obs = self.observe_all(i);
                    if let Some(o) = obs.iter_mut().find(|o| Some(o.id) == late) {
                        *o = NodeObs::unreachable(o.id);
                    }
                    if self.verbose {
                        let brief: Vec<String> = obs
                            .iter()
                            .map(|o| {
                                format!(
                                    "{}:{}{}/{}/{}",
                                    o.id,
                                    if o.reachable { "" } else { "x" },
                                    o.in_recovery.map_or("?", |r| if r { "s" } else { "p" }),
                                    o.timeline,
                                    o.lsn
                                )
                            })
                            .collect();
                        let me = &self.hosts[i];
                        self.log(format!(
                            "node{id} gathers {brief:?} (own {}/{})",
                            me.pg.tli,
                            me.pg.wal.len()
                        ));
                    }
                    self.deliver(i, Input::Cluster(obs));
                }
            }
            Ev::PeerReq { to, token, req } => self.peer_request(to, token, req),
            Ev::PeerRep { token, reply } => self.peer_reply(token, reply),
            Ev::RoundEnd(id, epoch, round) => self.end_round(id, epoch, round),
            Ev::Job(id, epoch, action) => self.finish_job(id, epoch, action),
            Ev::Fault(f) => crate::schedule::apply(self, f),
            Ev::Client => {
                self.client_round();
                self.at(self.g + CLIENT_EVERY, Ev::Client);
            }
            Ev::Replicate => {
                self.replicate();
                self.check_superseded_streams();
                self.at(self.g + REPLICATE_EVERY, Ev::Replicate);
            }
        }
    }

    /// One input into node `i`'s repmgrd, held back while it is paused.
    pub fn deliver(&mut self, i: usize, input: Input) {
        let h = &mut self.hosts[i];
        if h.core.is_none() {
            return;
        }
        if !h.daemon_alive() {
            if !matches!(input, Input::Tick) {
                h.backlog.push(input);
            }
            return;
        }
        let now = h.local(self.g);
        let actions = match h.core.as_mut() {
            Some(c) => c.step(now, input),
            None => return,
        };
        self.execute(i, actions);
        self.schedule_wake(i);
    }

    pub fn schedule_wake(&mut self, i: usize) {
        let h = &self.hosts[i];
        let Some(core) = h.core.as_ref() else {
            return;
        };
        let at = h.global(core.next_wakeup()).max(self.g + 1);
        let id = h.id;
        if self
            .wake_at
            .get(&id)
            .is_some_and(|w| *w <= at && *w > self.g)
        {
            return;
        }
        self.wake_at.insert(id, at);
        self.at(at, Ev::Wake(id));
    }

    /// Resumes a paused daemon: what arrived meanwhile is handled now.
    pub fn resume_daemon(&mut self, i: usize) {
        let backlog = std::mem::take(&mut self.hosts[i].backlog);
        for input in backlog {
            self.deliver(i, input);
        }
        self.deliver(i, Input::Tick);
    }

    // ---------------------------------------------------------- driver

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            self.act(i, a);
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        let (id, epoch) = (self.hosts[i].id, self.hosts[i].epoch);
        match a {
            Action::ReadLocal => {
                let h = &self.hosts[i];
                let delay = if h.pg_up() || !h.pg.running {
                    1
                } else {
                    CONNECT_TIMEOUT
                };
                self.at(self.g + delay, Ev::ReadLocal(id, epoch));
            }
            Action::CheckUpstream { node, ping, seq } => {
                let (ok, delay) = self.probe(i, node);
                let t = &self.hosts[self.idx(node)];
                let in_recovery = (ok && !ping).then_some(t.pg.recovery);
                let input = Input::UpstreamCheck {
                    node,
                    ok,
                    in_recovery,
                    seq,
                };
                self.at(self.g + delay, Ev::Input(id, epoch, input));
            }
            Action::Watch { node } => self.hosts[i].watching = node,
            Action::GatherCluster { down } => {
                let others: Vec<Id> = self
                    .hosts
                    .iter()
                    .map(|h| h.id)
                    .filter(|o| *o != id && Some(*o) != down)
                    .collect();
                let rest = others
                    .iter()
                    .map(|o| self.probe(i, *o).1)
                    .max()
                    .unwrap_or(1);
                // The driver waits for a node found failed only a moment
                // after the others (observe::DOWN_GRACE).
                let (delay, late) = match down.filter(|d| *d != id) {
                    Some(d) => {
                        let mine = self.probe(i, d).1;
                        if mine <= rest + DOWN_GRACE {
                            (rest.max(mine), None)
                        } else {
                            (rest + DOWN_GRACE, Some(d))
                        }
                    }
                    None => (rest, None),
                };
                self.at(self.g + delay, Ev::Gather(id, epoch, late));
            }
            Action::SendHeartbeats {
                term,
                to,
                promoted,
                local_must_answer,
                fences,
            } => {
                let sent = self.hosts[i].local(self.g);
                if self.verbose {
                    self.log(format!("node{id} heartbeats term {term} to {to:?}"));
                }
                if local_must_answer && !self.hosts[i].pg_up() {
                    return; // the real driver checks its own server first
                }
                let timeline = self.hosts[i].pg.tli;
                for t in to {
                    let req = PeerRequest::Heartbeat {
                        from: id,
                        term,
                        timeline,
                        promoted,
                        fences,
                    };
                    self.send_heartbeat(i, t, sent, req);
                }
            }
            Action::RequestVotes {
                request,
                to,
                needed,
            } => {
                let timeout = self.hosts[i].settings.heartbeat_timeout_ms();
                let round = self.open_round(
                    i,
                    Round::Votes {
                        term: request.term,
                        replies: BTreeMap::new(),
                        expected: to.clone(),
                        needed,
                    },
                    timeout,
                );
                for t in to {
                    self.send(i, t, round, PeerRequest::Vote(request));
                }
            }
            Action::Promote { .. } => {
                self.check_candidate_has_the_wal(i);
                let d = self.rng.range(30, 150);
                self.at(self.g + d, Ev::Job(id, epoch, a));
            }
            Action::Follow { .. } => {
                let d = self.rng.range(50, 200);
                self.at(self.g + d, Ev::Job(id, epoch, a));
            }
            Action::Fence { .. } | Action::Unfence { .. } => {
                let d = self.rng.range(20, FENCE_OP_MAX);
                self.at(self.g + d, Ev::Job(id, epoch, a));
            }
            Action::Rejoin { .. } => {
                let d = self.rng.range(200, 800);
                self.at(self.g + d, Ev::Job(id, epoch, a));
            }
            Action::PrepareAsStandby { target } => {
                let h = &mut self.hosts[i];
                if !h.pg.running {
                    h.pg.standby_signal = true;
                    h.pg.upstream = Some(target);
                }
            }
            Action::EndStream { from, .. } => {
                // ALTER SYSTEM SET primary_conninfo = '' and a reload: the
                // receiver ends and starts no more. (The driver does it
                // only while the receiver still streams from `from`.)
                let h = &mut self.hosts[i];
                if h.pg_up() && h.pg.recovery && h.pg.streaming && h.pg.upstream == Some(from) {
                    h.pg.upstream = None;
                    h.pg.streaming = false;
                }
            }
            Action::Persist(p) => self.hosts[i].durable = p,
            Action::Reply { .. } => {}
            Action::WitnessSync { primary, .. } => {
                let p = self.idx(primary);
                if self.net.both(id, primary) && self.hosts[p].pg_up() {
                    self.hosts[i].pg.meta = self.hosts[p].pg.meta.clone();
                }
            }
            Action::Log(level, msg) => {
                if matches!(level, Level::Notice | Level::Warning | Level::Error) || self.verbose {
                    self.log(format!("node{id} {level:?}: {msg}"));
                }
            }
            Action::Event { name, details, .. } => {
                self.log(format!("node{id} event {name}: {details}"))
            }
            Action::Exit => {
                self.log(format!("node{id} repmgrd exits"));
                self.hosts[i].core = None;
                self.hosts[i].exited = true;
            }
            Action::WriteStatus { .. } => {
                // Its row on the primary carries its failover mode (the
                // driver publishes it again after a reload).
                let auto = self.hosts[i].settings.failover == Failover::Automatic;
                if let Some(p) = self
                    .hosts
                    .iter()
                    .position(|h| !h.pg.recovery && !h.pg.witness && h.pg_up())
                {
                    let pid = self.hosts[p].id;
                    if p == i || self.net.both(id, pid) {
                        for n in &mut self.hosts[p].pg.meta {
                            if n.id == id {
                                n.automatic = auto;
                            }
                        }
                    }
                }
            }
            Action::PublishFencing { fences } => {
                let h = &mut self.hosts[i];
                if h.pg_up() && !h.pg.recovery {
                    for n in &mut h.pg.meta {
                        if n.id == id {
                            n.fences = fences;
                        }
                    }
                }
            }
            Action::SetActive { .. }
            | Action::RecordUpstream { .. }
            | Action::FenceHook { .. }
            | Action::ChildrenDisconnected { .. } => {}
        }
    }

    /// One connection attempt from node `i` to `to`: whether it works,
    /// and when the answer (or the failure) comes.
    fn probe(&self, i: usize, to: Id) -> (bool, u64) {
        let me = self.hosts[i].id;
        let t = &self.hosts[self.idx(to)];
        let rtt = self.net.delay(me, to) + self.net.delay(to, me);
        if !self.net.connects(me, to) {
            return (false, CONNECT_TIMEOUT);
        }
        if t.pg_up() {
            (true, rtt + 1)
        } else if !t.pg.running && !t.host_paused {
            (false, rtt)
        } else {
            (false, CONNECT_TIMEOUT)
        }
    }

    fn observe_all(&self, i: usize) -> Vec<NodeObs> {
        let me = self.hosts[i].id;
        let window = 2 * self.hosts[i].settings.monitor_interval_ms + 1_000;
        self.hosts
            .iter()
            .map(|h| {
                if !(self.net.connects(me, h.id) && h.pg_up()) {
                    return NodeObs::unreachable(h.id);
                }
                let fresh = h.pg.streaming
                    && h.pg
                        .last_recv
                        .is_some_and(|t| self.g.saturating_sub(t) <= window);
                NodeObs {
                    id: h.id,
                    reachable: true,
                    in_recovery: Some(h.pg.recovery),
                    timeline: h.pg.tli,
                    lsn: h.pg.wal.len() as Lsn,
                    term: h.pg.voting_term,
                    fenced: !h.pg.recovery && h.pg.read_only,
                    receiver_fresh: fresh,
                    streams_from: h.pg.upstream.filter(|_| h.pg.streaming),
                    daemon: if h.daemon_alive() {
                        h.core.as_ref().map(|c| c.status(h.local(self.g)))
                    } else {
                        None
                    },
                    daemon_session: Some(h.core.is_some()),
                }
            })
            .collect()
    }

    fn open_round(&mut self, i: usize, r: Round, timeout: u64) -> u64 {
        let (id, epoch) = (self.hosts[i].id, self.hosts[i].epoch);
        let round = self.next_id;
        self.next_id += 1;
        self.rounds.insert((id, round), r);
        self.at(self.g + timeout, Ev::RoundEnd(id, epoch, round));
        round
    }

    /// A heartbeat to `to`; its answer is delivered alone. A voter with no
    /// repmgrd (nothing listens) is probed by its server instead.
    fn send_heartbeat(&mut self, i: usize, to: Id, sent: Time, req: PeerRequest) {
        let (from, epoch) = (self.hosts[i].id, self.hosts[i].epoch);
        let t = self.idx(to);
        if self.hosts[t].core.is_none() {
            if self.net.connects(from, to) && self.hosts[t].pg_up() {
                let rtt = self.net.delay(from, to) + self.net.delay(to, from) + 1;
                // The driver reads the server it probes: a primary, or a
                // newer history, supersedes the sender.
                let (my_term, my_tli) = match req {
                    PeerRequest::Heartbeat { term, timeline, .. } => (term, timeline),
                    _ => (0, 0),
                };
                let o = &self.hosts[t].pg;
                let newer = o.voting_term > my_term
                    || o.tli > my_tli
                    || (!o.recovery && o.voting_term == my_term);
                let reply = if !o.witness && newer {
                    HeartbeatReply::Superseded {
                        term: o.voting_term.max(my_term + 1),
                        by: (!o.recovery).then_some(to),
                    }
                } else {
                    HeartbeatReply::NoDaemon
                };
                let input = Input::Heartbeat {
                    from: to,
                    sent,
                    reply,
                };
                self.at(self.g + rtt, Ev::Input(from, epoch, input));
            }
            return;
        }
        let token = self.next_id;
        self.next_id += 1;
        self.tokens.insert(
            token,
            Token {
                from,
                epoch,
                round: 0,
                to,
                sent: Some(sent),
            },
        );
        if self.net.up(from, to) {
            let d = self.net.delay(from, to);
            self.at(self.g + d, Ev::PeerReq { to, token, req });
        }
    }

    fn send(&mut self, i: usize, to: Id, round: u64, req: PeerRequest) {
        let (from, epoch) = (self.hosts[i].id, self.hosts[i].epoch);
        let token = self.next_id;
        self.next_id += 1;
        self.tokens.insert(
            token,
            Token {
                from,
                epoch,
                round,
                to,
                sent: None,
            },
        );
        // A vote opens a connection of its own.
        if self.net.up(from, to) && !self.net.syn_dropped.contains(&(from, to)) {
            let d = self.net.delay(from, to);
            self.at(self.g + d, Ev::PeerReq { to, token, req });
        }
    }

    fn peer_request(&mut self, to: Id, token: u64, req: PeerRequest) {
        let i = self.idx(to);
        if self.hosts[i].core.is_none() {
            return; // nobody listens
        }
        let Some(tok) = self.tokens.get(&token).copied() else {
            return;
        };
        if !self.hosts[i].daemon_alive() {
            self.hosts[i].backlog.push(Input::Peer {
                token,
                request: req,
            });
            return;
        }
        let now = self.hosts[i].local(self.g);
        let real_vote = matches!(req, PeerRequest::Vote(VoteRequest { pre: false, .. }));
        let actions = match self.hosts[i].core.as_mut() {
            Some(c) => c.step(
                now,
                Input::Peer {
                    token,
                    request: req,
                },
            ),
            None => return,
        };
        let granted = real_vote
            && actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Reply {
                        reply: PeerReply::Vote(VoteReply::Granted { .. }),
                        ..
                    }
                )
            });
        for a in &actions {
            if let Action::Reply { token: t, reply } = a {
                if *t == token && self.net.up(to, tok.from) {
                    let d = self.net.delay(to, tok.from);
                    self.at(
                        self.g + d,
                        Ev::PeerRep {
                            token,
                            reply: *reply,
                        },
                    );
                }
            }
        }
        self.execute(i, actions);
        self.schedule_wake(i);
        if granted {
            self.happened(When::Grants(to), to);
        }
    }

    fn peer_reply(&mut self, token: u64, reply: PeerReply) {
        let Some(tok) = self.tokens.get(&token).copied() else {
            return;
        };
        if let (Some(sent), PeerReply::Heartbeat(h)) = (tok.sent, reply) {
            let i = self.idx(tok.from);
            if self.verbose {
                self.log(format!(
                    "node{} heartbeat answer from node{}: {h:?}",
                    tok.from, tok.to
                ));
            }
            if self.hosts[i].epoch == tok.epoch {
                let input = Input::Heartbeat {
                    from: tok.to,
                    sent,
                    reply: h,
                };
                self.deliver(i, input);
            }
            return;
        }
        let Some(r) = self.rounds.get_mut(&(tok.from, tok.round)) else {
            return;
        };
        let done = match (r, reply) {
            (
                Round::Votes {
                    replies,
                    expected,
                    needed,
                    ..
                },
                PeerReply::Vote(v),
            ) => {
                replies.insert(tok.to, v);
                let granted = replies
                    .values()
                    .filter(|v| matches!(v, VoteReply::Granted { .. }))
                    .count();
                replies.len() == expected.len() || granted >= *needed
            }
            _ => false,
        };
        if done {
            self.end_round(tok.from, tok.epoch, tok.round);
        }
    }

    fn end_round(&mut self, id: Id, epoch: u64, round: u64) {
        let Some(r) = self.rounds.remove(&(id, round)) else {
            return;
        };
        let i = self.idx(id);
        if self.hosts[i].epoch != epoch {
            return;
        }
        if self.verbose {
            self.log(format!("node{id} round {round} ends: {r:?}"));
        }
        let input = match r {
            Round::Votes {
                term,
                replies,
                expected,
                ..
            } => Input::Votes {
                term,
                replies: expected
                    .iter()
                    .map(|t| (*t, replies.get(t).copied().unwrap_or(VoteReply::Silent)))
                    .collect(),
            },
        };
        self.deliver(i, input);
    }

    // ------------------------------------------------------------ jobs

    fn finish_job(&mut self, id: Id, epoch: u64, a: Action) {
        let i = self.idx(id);
        let done = match a {
            Action::Promote { term, .. } => Done::Promoted {
                ok: self.promote(i, term),
            },
            Action::Follow { target } => {
                let t = self.idx(target);
                let ok = if self.net.connects(id, target)
                    && self.hosts[t].pg_up()
                    && self.hosts[i].pg_up()
                {
                    if is_prefix(&self.hosts[i].pg.wal, &self.hosts[t].pg.wal)
                        || self.hosts[i].pg.wal.is_empty()
                    {
                        self.hosts[i].pg.upstream = Some(target);
                        self.record_standby_of(id, target);
                        Ok(())
                    } else {
                        Err("this node cannot follow: its timeline diverged".to_string())
                    }
                } else {
                    Err("the new primary is unreachable".to_string())
                };
                Done::Followed {
                    target,
                    ok,
                    streams_anyway: false,
                }
            }
            Action::Fence { how } => {
                let h = &mut self.hosts[i];
                let ok = if how == FenceHow::Kill {
                    // SIGKILL needs no answer; a server that answers, or
                    // has no postmaster, is left as it is.
                    if h.pg.running && h.pg.paused {
                        h.pg.running = false;
                        h.pg.crashed = true;
                        h.pg.paused = false;
                        Ok(())
                    } else if h.pg.running {
                        Err("the local server answers again".to_string())
                    } else {
                        Err("no postmaster runs".to_string())
                    }
                } else if h.pg.paused || h.host_paused {
                    Err("the server does not answer".to_string())
                } else {
                    match how {
                        FenceHow::ReadOnly if h.pg.running => {
                            h.pg.read_only = true;
                            Ok(())
                        }
                        FenceHow::ReadOnly => Err("the server is down".to_string()),
                        FenceHow::Stop => {
                            h.pg.running = false;
                            h.pg.crashed = false;
                            Ok(())
                        }
                        FenceHow::Kill => Ok(()),
                        FenceHow::Demote { to } => {
                            h.pg.standby_signal = true;
                            h.pg.recovery = true;
                            h.pg.running = true;
                            h.pg.read_only = false;
                            h.pg.upstream = to;
                            h.pg.streaming = false;
                            h.exposed_since = self.g;
                            Ok(())
                        }
                    }
                };
                self.log(format!("node{id} fence {how:?}: {ok:?}"));
                Done::Fenced { how, ok }
            }
            Action::Unfence { start } => {
                let h = &mut self.hosts[i];
                h.pg.read_only = false;
                if start && !h.pg.running {
                    h.pg.running = true;
                    h.pg.recovery = h.pg.standby_signal;
                    h.exposed_since = self.g;
                }
                self.log(format!("node{id} unfenced (start {start})"));
                Done::Unfenced { ok: Ok(()) }
            }
            Action::Rejoin { target } => {
                let t = self.idx(target);
                // ops::rejoin needs the primary itself.
                let primary = !self.hosts[t].pg.recovery && !self.hosts[t].pg.witness;
                let ok = if primary
                    && self.net.connects(id, target)
                    && self.hosts[t].pg_up()
                    && !self.hosts[i].host_paused
                {
                    let n = common_prefix(&self.hosts[i].pg.wal, &self.hosts[t].pg.wal);
                    let h = &mut self.hosts[i];
                    h.pg.wal.truncate(n);
                    h.pg.recovery = true;
                    h.pg.standby_signal = true;
                    h.pg.running = true;
                    h.pg.paused = false;
                    h.pg.read_only = false;
                    h.pg.upstream = Some(target);
                    h.pg.streaming = false;
                    self.record_standby_of(id, target);
                    Ok(format!("node{id} rejoined node{target}"))
                } else {
                    Err("the primary is unreachable".to_string())
                };
                Done::Rejoined { target, ok }
            }
            _ => return,
        };
        if self.hosts[i].epoch != epoch {
            return;
        }
        // pg_promote has returned, the job still records the promotion:
        // a read of the local server can see it out of recovery before the
        // report arrives.
        if matches!(done, Done::Promoted { ok: Ok(()) }) && self.rng.chance(33) {
            let d = self.rng.range(1, 600);
            self.at(self.g + d, Ev::Input(id, epoch, Input::Done(done)));
            return;
        }
        self.deliver(i, Input::Done(done));
    }

    /// What follow and rejoin record on the primary: an active standby
    /// of `upstream` (its standbys get it by replication).
    fn record_standby_of(&mut self, id: Id, upstream: Id) {
        let u = self.idx(upstream);
        let p = if self.hosts[u].pg.recovery {
            self.hosts
                .iter()
                .position(|h| !h.pg.recovery && !h.pg.witness && h.pg_up())
        } else {
            Some(u)
        };
        if let Some(p) = p {
            for n in &mut self.hosts[p].pg.meta {
                if n.id == id {
                    n.kind = NodeKind::Standby;
                    n.active = true;
                    n.upstream = Some(upstream);
                }
            }
        }
    }

    fn promote(&mut self, i: usize, term: Term) -> Result<(), String> {
        let id = self.hosts[i].id;
        if !self.hosts[i].pg_up() || !self.hosts[i].pg.recovery {
            return Err("the server is not a running standby".into());
        }
        let tli = self.next_tli;
        self.next_tli += 1;
        {
            let h = &mut self.hosts[i];
            h.pg.recovery = false;
            h.pg.standby_signal = false;
            h.pg.upstream = None;
            h.pg.streaming = false;
            h.pg.tli = tli;
            h.pg.voting_term = term;
            for n in &mut h.pg.meta {
                if n.id == id {
                    n.kind = NodeKind::Primary;
                    n.upstream = None;
                    n.active = true;
                } else if n.kind == NodeKind::Primary {
                    n.kind = NodeKind::Standby;
                    n.active = false;
                }
            }
        }
        self.promotions += 1;
        self.log(format!("node{id} PROMOTED term {term} timeline {tli}"));
        if let Some(why) = self.no_promotion {
            self.violation(format!("node{id} promoted: {why}"));
        }
        // Invariant (e): one primary per term.
        match self.promoted_in.insert(term, id) {
            Some(other) if other != id => self.violation(format!(
                "node{id} promoted in term {term}, as node{other} was"
            )),
            _ => {}
        }
        self.happened(When::Promotion, id);
        if !self.sync.is_empty() {
            let wal = &self.hosts[i].pg.wal;
            let last = wal.last().copied().unwrap_or(0);
            let lost: Vec<u64> = self
                .acked
                .iter()
                .copied()
                .filter(|r| *r > last || !wal.contains(r))
                .take(3)
                .collect();
            if !lost.is_empty() {
                self.violation(format!(
                    "node{id} promoted without acknowledged commits {lost:?} (sync)"
                ));
            }
        }
        Ok(())
    }

    // --------------------------------------------------------- traffic

    fn client_round(&mut self) {
        let writers: Vec<usize> = (0..self.hosts.len())
            .filter(|i| self.hosts[*i].takes_writes())
            .collect();
        for &w in &writers {
            let r = self.next_record;
            self.next_record += 1;
            let pid = self.hosts[w].id;
            self.hosts[w].pg.wal.push(r);
            if self.sync.is_empty() {
                continue;
            }
            // Synchronous: acknowledged once a listed standby has it.
            let spec = repmgr::daemon::core::sync::SyncSpec::parse(&self.sync);
            let pwal_len = self.hosts[w].pg.wal.len();
            let mut acked = false;
            for s in 0..self.hosts.len() {
                let ok = {
                    let sh = &self.hosts[s];
                    sh.id != pid
                        && sh.pg.recovery
                        && sh.pg.upstream == Some(pid)
                        && sh.pg_up()
                        && self.net.both(sh.id, pid)
                        && spec.as_ref().is_some_and(|sp| sp.lists(&sh.name))
                        && sh.pg.wal.len() + 1 == pwal_len
                        && is_prefix(&sh.pg.wal, &self.hosts[w].pg.wal)
                };
                if ok {
                    self.hosts[s].pg.wal.push(r);
                    acked = true;
                }
            }
            if acked {
                self.acked.push(r);
            }
        }
        self.check_one_writer(&writers);
    }

    fn replicate(&mut self) {
        for s in 0..self.hosts.len() {
            let (sid, up) = (self.hosts[s].id, self.hosts[s].pg.upstream);
            let streams = match up {
                Some(u) if u != sid && self.hosts[s].pg.recovery && self.hosts[s].pg_up() => {
                    let ui = self.idx(u);
                    // A stream carries on through dropped SYNs; a new
                    // one cannot start.
                    let opens = !self.net.syn_dropped.contains(&(sid, u));
                    self.net.both(sid, u)
                        && (opens || self.hosts[s].pg.streaming)
                        && self.hosts[ui].pg_up()
                        && !self.hosts[ui].pg.witness
                }
                _ => false,
            };
            if !streams {
                self.hosts[s].pg.streaming = false;
                continue;
            }
            let ui = self.idx(up.unwrap_or_default());
            let (uwal_len, prefix) = {
                let (a, b) = (&self.hosts[s].pg.wal, &self.hosts[ui].pg.wal);
                // Record ids are unique: equal last records mean a prefix.
                let p = a.is_empty() || (b.len() >= a.len() && b[a.len() - 1] == a[a.len() - 1]);
                (b.len(), p)
            };
            if !prefix {
                self.hosts[s].pg.streaming = false;
                continue;
            }
            let from = self.hosts[s].pg.wal.len();
            let tail: Vec<u64> = self.hosts[ui].pg.wal[from..uwal_len].to_vec();
            let (tli, term, meta) = {
                let u = &self.hosts[ui].pg;
                (u.tli, u.voting_term, u.meta.clone())
            };
            let h = &mut self.hosts[s];
            h.pg.wal.extend(tail);
            h.pg.tli = h.pg.tli.max(tli);
            h.pg.voting_term = h.pg.voting_term.max(term);
            h.pg.meta = meta;
            h.pg.last_recv = Some(self.g);
            h.pg.streaming = true;
        }
    }

    /// Starts (or restarts) node `i`'s repmgrd with its durable state.
    pub fn start_daemon(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        h.epoch += 1;
        h.exited = false;
        h.backlog.clear();
        let now = h.local(self.g);
        h.core = Some(Core::new(h.settings.clone(), h.durable, now));
        h.exposed_since = self.g;
        self.deliver(i, Input::Tick);
    }
}
