//! A scripted world for the table-driven phase tests: every action the
//! core asks for is answered from a [`World`] that each case edits at
//! given times, after a given lag; every phase the core enters is
//! recorded, so a case states the transitions it expects.
//!
//! A case is a list of beats, each `(ms, Beat)`: the clock runs `ms`
//! further (ticking every 100 ms, answering as it goes), then the beat
//! applies. `Reach` runs the clock only until the phase is entered.

use std::collections::{BTreeMap, VecDeque};

use super::*;

/// How long each kind of answer takes to arrive.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lag {
    pub check: u64,
    pub gather: u64,
    pub votes: u64,
    pub job: u64,
}

/// What the core's actions are answered with, as of the moment each
/// answer arrives.
#[derive(Debug, Clone)]
pub(super) struct World {
    /// What the local server says (None: it does not answer).
    pub local: Option<LocalFacts>,
    /// The local server's facts while a fence keeps it stopped.
    stopped: Option<LocalFacts>,
    /// A check of each node: Some(in_recovery) when it answers; a node
    /// missing here fails its checks.
    pub checks: BTreeMap<NodeId, Option<bool>>,
    /// A cluster round's answer.
    pub cluster: Vec<NodeObs>,
    /// Each voter's answer to a pre-vote and to a vote (Silent when
    /// missing).
    pub pre_votes: BTreeMap<NodeId, VoteReply>,
    pub votes: BTreeMap<NodeId, VoteReply>,
    /// Each voter's answer to a heartbeat (none when missing).
    pub hb: BTreeMap<NodeId, HeartbeatReply>,
    pub promote: Result<(), String>,
    /// The server leaves recovery as soon as the promotion starts, long
    /// before the promotion job reports.
    pub promote_leaves_recovery_early: bool,
    pub follow: Result<(), String>,
    /// A follow that failed leaves the WAL receiver streaming anyway.
    pub streams_anyway: bool,
    pub fence: Result<(), String>,
    pub lag: Lag,
}

impl World {
    pub fn new(local: LocalFacts) -> World {
        World {
            local: Some(local),
            stopped: None,
            checks: BTreeMap::new(),
            cluster: Vec::new(),
            pre_votes: BTreeMap::new(),
            votes: BTreeMap::new(),
            hb: BTreeMap::new(),
            promote: Ok(()),
            promote_leaves_recovery_early: false,
            follow: Ok(()),
            streams_anyway: false,
            fence: Ok(()),
            lag: Lag::default(),
        }
    }

    /// Node `id`'s entry in the cluster round's answer.
    pub fn obs(&mut self, id: NodeId) -> &mut NodeObs {
        if !self.cluster.iter().any(|o| o.id == id) {
            self.cluster.push(NodeObs::unreachable(id));
        }
        self.cluster
            .iter_mut()
            .find(|o| o.id == id)
            .expect("pushed above")
    }

    /// `id` grants both the pre-vote and the vote.
    pub fn grants(&mut self, id: NodeId, promise_ms: u64) {
        self.pre_votes
            .insert(id, VoteReply::Granted { promise_ms: 0 });
        self.votes.insert(id, VoteReply::Granted { promise_ms });
    }

    pub fn acks(&mut self, id: NodeId, promise_ms: u64) {
        self.hb.insert(
            id,
            HeartbeatReply::Ack {
                promise_ms,
                known_term: 1,
            },
        );
    }

    /// Node `id` stops answering anything.
    pub fn cut(&mut self, id: NodeId) {
        self.checks.remove(&id);
        self.hb.remove(&id);
        self.pre_votes.remove(&id);
        self.votes.remove(&id);
        *self.obs(id) = NodeObs::unreachable(id);
    }
}

/// A server that answers as a writable primary of `term`.
pub(super) fn primary_obs(id: NodeId, term: Term) -> NodeObs {
    NodeObs {
        in_recovery: Some(false),
        term,
        ..standby_obs(id, 100)
    }
}

/// An answer still on its way.
#[derive(Debug)]
enum Due {
    Check {
        node: NodeId,
        seq: u64,
    },
    Gather,
    Votes {
        request: VoteRequest,
        to: Vec<NodeId>,
    },
    Heartbeat {
        from: NodeId,
        sent: Time,
    },
    Job(Action),
}

/// What a case starts from.
pub(super) struct Setup {
    pub s: Settings,
    pub durable: Persisted,
    pub world: World,
}

pub(super) enum Beat {
    /// Change the world.
    Set(fn(&mut World)),
    /// Feed an input (a peer's request, a closed connection).
    Feed(Input),
    /// The run of the clock stops once this phase is entered; it must be
    /// within the beat's `ms`.
    Reach(&'static str),
    /// The phase in force now.
    Is(&'static str),
    /// The phases entered since the previous `Went` (or the start), in
    /// order: every transition, none left out.
    Went(&'static [&'static str]),
    /// An action seen while the clock ran for the latest beat that ran it
    /// (and since): described, and matched.
    Saw(&'static str, fn(&Action) -> bool),
    NotSaw(&'static str, fn(&Action) -> bool),
}

pub(super) struct Case {
    pub name: &'static str,
    pub setup: fn() -> Setup,
    pub beats: Vec<(u64, Beat)>,
}

/// A core in its world, and what it did.
pub(super) struct Run {
    pub core: Core,
    pub world: World,
    pub now: u64,
    due: VecDeque<(u64, Due)>,
    /// Every action, with when it was asked for.
    pub log: Vec<(u64, Action)>,
    /// Every phase entered, with when.
    pub phases: Vec<(u64, String)>,
}

impl Run {
    pub fn new(setup: Setup) -> Run {
        let mut r = Run {
            core: Core::new(setup.s, setup.durable, Time(0)),
            world: setup.world,
            now: 0,
            due: VecDeque::new(),
            log: Vec::new(),
            phases: vec![(0, "unknown".into())],
        };
        r.feed(Input::Tick);
        r
    }

    /// Steps with `input`, then delivers every answer due by now.
    pub fn feed(&mut self, input: Input) {
        let mut next = Some(input);
        let mut steps = 0;
        while let Some(i) = next.take().or_else(|| self.take_due()) {
            // A job retried at once each time it fails answers forever
            // at the same instant when it takes no time: give it a lag.
            steps += 1;
            assert!(steps < 10_000, "no end of answers at {} ms", self.now);
            let actions = self.core.step(Time(self.now), i);
            let phase = self.core.phase();
            if self.phases.last().is_none_or(|(_, p)| *p != phase) {
                self.phases.push((self.now, phase));
            }
            for a in actions {
                self.ask(&a);
                self.log.push((self.now, a));
            }
        }
    }

    fn ask(&mut self, a: &Action) {
        let (lag, due) = match a {
            Action::ReadLocal => (0, Due::Job(Action::ReadLocal)),
            Action::CheckUpstream { node, seq, .. } => (
                self.world.lag.check,
                Due::Check {
                    node: *node,
                    seq: *seq,
                },
            ),
            Action::GatherCluster { .. } => (self.world.lag.gather, Due::Gather),
            Action::RequestVotes { request, to, .. } => (
                self.world.lag.votes,
                Due::Votes {
                    request: *request,
                    to: to.clone(),
                },
            ),
            Action::SendHeartbeats { to, .. } => {
                for from in to {
                    self.due.push_back((
                        self.now,
                        Due::Heartbeat {
                            from: *from,
                            sent: Time(self.now),
                        },
                    ));
                }
                return;
            }
            Action::Promote { .. } if self.world.promote_leaves_recovery_early => {
                if let Some(f) = &mut self.world.local {
                    f.in_recovery = false;
                    f.timeline += 1;
                }
                (self.world.lag.job, Due::Job(a.clone()))
            }
            Action::Promote { .. }
            | Action::Follow { .. }
            | Action::Fence { .. }
            | Action::Unfence { .. }
            | Action::Rejoin { .. } => (self.world.lag.job, Due::Job(a.clone())),
            // primary_conninfo cleared: the receiver is gone.
            Action::EndStream { .. } => {
                if let Some(f) = &mut self.world.local {
                    f.receiver = None;
                }
                return;
            }
            _ => return,
        };
        self.due.push_back((self.now + lag, due));
    }

    /// The first answer due by now, as an input (answers that bring
    /// nothing, such as a heartbeat nobody answers, are dropped).
    fn take_due(&mut self) -> Option<Input> {
        loop {
            let k = self.due.iter().position(|(t, _)| *t <= self.now)?;
            let (_, d) = self.due.remove(k)?;
            if let Some(i) = self.answer(d) {
                return Some(i);
            }
        }
    }

    fn answer(&mut self, d: Due) -> Option<Input> {
        let w = &mut self.world;
        Some(match d {
            Due::Check { node, seq } => {
                let answer = w.checks.get(&node).copied();
                Input::UpstreamCheck {
                    node,
                    ok: answer.is_some(),
                    in_recovery: answer.flatten(),
                    seq,
                }
            }
            Due::Gather => Input::Cluster(w.cluster.clone()),
            Due::Votes { request, to } => {
                let book = if request.pre { &w.pre_votes } else { &w.votes };
                Input::Votes {
                    term: request.term,
                    replies: to
                        .iter()
                        .map(|id| (*id, book.get(id).copied().unwrap_or(VoteReply::Silent)))
                        .collect(),
                }
            }
            Due::Heartbeat { from, sent } => Input::Heartbeat {
                from,
                sent,
                reply: *w.hb.get(&from)?,
            },
            Due::Job(a) => Input::Done(match a {
                Action::ReadLocal => return Some(Input::Local(w.local.clone())),
                Action::Promote { .. } => {
                    if w.promote.is_ok() && !w.promote_leaves_recovery_early {
                        if let Some(f) = &mut w.local {
                            f.in_recovery = false;
                            f.timeline += 1;
                        }
                    }
                    Done::Promoted {
                        ok: w.promote.clone(),
                    }
                }
                Action::Follow { target } => Done::Followed {
                    target,
                    ok: w.follow.clone(),
                    streams_anyway: w.streams_anyway,
                },
                Action::Fence { how } => {
                    if w.fence.is_ok() {
                        match how {
                            FenceHow::ReadOnly => {
                                if let Some(f) = &mut w.local {
                                    f.read_only_fenced = true;
                                }
                            }
                            FenceHow::Stop => w.stopped = w.local.take().or(w.stopped.take()),
                            // A hung server killed: it stays down.
                            FenceHow::Kill => {}
                            // standby.signal, then a restart in recovery.
                            FenceHow::Demote { .. } => {
                                if let Some(f) = &mut w.local {
                                    f.in_recovery = true;
                                    f.read_only_fenced = false;
                                }
                            }
                        }
                    }
                    Done::Fenced {
                        how,
                        ok: w.fence.clone(),
                    }
                }
                Action::Unfence { start } => {
                    if start {
                        w.local = w.local.take().or(w.stopped.take());
                    }
                    if let Some(f) = &mut w.local {
                        f.read_only_fenced = false;
                    }
                    Done::Unfenced { ok: Ok(()) }
                }
                Action::Rejoin { target } => Done::Rejoined {
                    target,
                    ok: Ok(format!("rejoined node {target}")),
                },
                _ => return None,
            }),
        })
    }

    /// Runs the clock to `until`, ticking every 100 ms; with `stop`,
    /// only until that phase is entered. True when it was.
    pub fn run_to(&mut self, until: u64, stop: Option<&str>) -> bool {
        let from = self.phases.len();
        let entered = |r: &Run| stop.is_some_and(|p| r.phases[from..].iter().any(|(_, q)| q == p));
        while self.now < until && !entered(self) {
            self.now = (self.now + 100).min(until);
            self.feed(Input::Tick);
        }
        entered(self)
    }

    /// As [`Self::run_to`], but the clock jumps to the next time the core
    /// asked to be woken at (or an answer is due), as the real driver's.
    pub fn run_woken(&mut self, until: u64, stop: Option<&str>) -> bool {
        let from = self.phases.len();
        let entered = |r: &Run| stop.is_some_and(|p| r.phases[from..].iter().any(|(_, q)| q == p));
        while self.now < until && !entered(self) {
            let due = self.due.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            let wake = self.core.next_wakeup().0.min(due);
            self.now = wake.max(self.now + 1).min(until);
            self.feed(Input::Tick);
        }
        entered(self)
    }

    pub fn phase(&self) -> String {
        self.core.phase()
    }

    pub fn logs(&self) -> String {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Log(l, m) => Some(format!("{t:>6} {l:?} {m}")),
                Action::Event { name, .. } => Some(format!("{t:>6} event {name}")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn history(&self) -> String {
        self.phases
            .iter()
            .map(|(t, p)| format!("{t:>6} {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs every case of a table; a failure names the case and the beat, with
/// the phases entered and the log lines.
pub(super) fn run_table(cases: Vec<Case>) {
    for case in cases {
        let mut r = Run::new((case.setup)());
        // Where the latest clock run began, in the action log; where the
        // phases entered since the latest `Went` begin.
        let (mut window, mut went) = (0, 1);
        for (i, (ms, beat)) in case.beats.into_iter().enumerate() {
            let fail = |r: &Run, what: String| -> ! {
                panic!(
                    "{}: beat {i} at {} ms: {what}\nphases:\n{}\nlog:\n{}",
                    case.name,
                    r.now,
                    r.history(),
                    r.logs()
                )
            };
            // (The first beat's window begins at the start.)
            if i > 0 && (ms > 0 || matches!(beat, Beat::Reach(_))) {
                window = r.log.len();
            }
            let until = r.now + ms;
            match beat {
                Beat::Reach(p) => {
                    if !r.run_to(until, Some(p)) {
                        fail(&r, format!("{p} not reached within {ms} ms"));
                    }
                }
                _ => {
                    r.run_to(until, None);
                }
            }
            match beat {
                Beat::Set(f) => f(&mut r.world),
                Beat::Feed(input) => r.feed(input),
                Beat::Reach(_) => {}
                Beat::Is(p) => {
                    if r.phase() != p {
                        fail(&r, format!("phase is {}, expected {p}", r.phase()));
                    }
                }
                Beat::Went(path) => {
                    let got: Vec<&str> = r.phases[went..].iter().map(|(_, p)| p.as_str()).collect();
                    if got != path {
                        fail(&r, format!("went through {got:?}, expected {path:?}"));
                    }
                    went = r.phases.len();
                }
                Beat::Saw(what, f) => {
                    if !r.log[window..].iter().any(|(_, a)| f(a)) {
                        fail(&r, format!("no action: {what}"));
                    }
                }
                Beat::NotSaw(what, f) => {
                    if let Some((t, a)) = r.log[window..].iter().find(|(_, a)| f(a)) {
                        fail(&r, format!("unexpected action at {t} ms ({what}): {a:?}"));
                    }
                }
            }
        }
    }
}

/// A log line containing `text` (for `Saw`, through a closure).
pub(super) fn logged(a: &Action, text: &str) -> bool {
    matches!(a, Action::Log(_, m) if m.contains(text))
}

pub(super) fn event(a: &Action, name: &str) -> bool {
    matches!(a, Action::Event { name: n, .. } if *n == name)
}

// ------------------------------------------------------------ clusters

/// The durable state of a standby that heard primary 1 (term 1) say it
/// fences itself.
pub(super) fn heard_primary_1() -> Persisted {
    Persisted {
        known_term: 1,
        known_primary: Some(1),
        known_fences: true,
        ..Persisted::default()
    }
}

/// Node 2, a standby of primary 1, node 3 the other standby (less WAL:
/// node 2 wins an election). Every node answers: checks, rounds, votes
/// (2 s promises) and heartbeats. The primary is cut at 12 s in most
/// cases, after node 2's start-up quarantine (10 s).
pub(super) fn standby_2() -> Setup {
    let mut w = World::new(facts(true, three(true, true)));
    w.checks.insert(1, Some(false));
    w.cluster = vec![primary_obs(1, 1), standby_obs(2, 100), standby_obs(3, 50)];
    w.grants(3, 2_000);
    w.acks(1, 2_000);
    w.acks(3, 2_000);
    Setup {
        s: Settings {
            primary_notification_timeout_ms: 3_000,
            ..settings(2, Failover::Automatic)
        },
        durable: heard_primary_1(),
        world: w,
    }
}

/// The primary, node 1, stops answering anything.
pub(super) fn primary_fails(w: &mut World) {
    w.cut(1);
}

/// Node 3 answers as the primary of term 2 (it won an election).
pub(super) fn node_3_promoted(w: &mut World) {
    *w.obs(3) = primary_obs(3, 2);
    w.obs(3).timeline = 2;
    w.checks.insert(3, Some(false));
}

/// [`standby_2`] with node 2's local copy of the metadata edited (a
/// stale record, say).
pub(super) fn standby_2_with_nodes(edit: fn(&mut [NodeInfo])) -> Setup {
    let mut s = standby_2();
    let mut nodes = three(true, true);
    edit(&mut nodes);
    s.world.local = Some(facts(true, nodes));
    s
}

/// The primary fails and node 3 is cut off too: node 2 sees no majority.
pub(super) fn primary_and_3_fail(w: &mut World) {
    primary_fails(w);
    w.cut(3);
}

/// The failed primary, node 1, answers again as the primary of term 1.
pub(super) fn primary_1_back(w: &mut World) {
    w.checks.insert(1, Some(false));
    *w.obs(1) = primary_obs(1, 1);
}
