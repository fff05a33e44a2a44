//! The core's rules, one scenario each, through `Core::step` only: a tiny
//! scripted driver answers the actions, time is a number. (The simulation
//! in tests/sim checks the same rules against random schedules.)

use super::*;

fn node(id: NodeId, kind: NodeKind, priority: i32, automatic: bool) -> NodeInfo {
    NodeInfo {
        id,
        name: format!("node{id}"),
        kind,
        active: true,
        priority,
        location: "default".into(),
        upstream: (kind != NodeKind::Primary).then_some(1),
        automatic,
        fences: false,
        published: true,
    }
}

/// Node 1 primary, nodes 2 and 3 standbys (automatic as given).
fn three(auto2: bool, auto3: bool) -> Vec<NodeInfo> {
    vec![
        node(1, NodeKind::Primary, 100, true),
        node(2, NodeKind::Standby, 100, auto2),
        node(3, NodeKind::Standby, 100, auto3),
    ]
}

fn facts(in_recovery: bool, nodes: Vec<NodeInfo>) -> LocalFacts {
    LocalFacts {
        in_recovery,
        timeline: 1,
        lsn: 100,
        receiver: None,
        paused: false,
        nodes,
        voting_term: 1,
        read_only_fenced: false,
        sync_standby_names: String::new(),
        attached: Vec::new(),
    }
}

/// Fast settings: 3 attempts 1 s apart (a 2 s lease), monitoring every
/// second.
fn settings(id: NodeId, failover: Failover) -> Settings {
    Settings {
        node_id: id,
        node_name: format!("node{id}"),
        failover,
        monitor_interval_ms: 1_000,
        reconnect_attempts: 3,
        reconnect_interval_ms: 1_000,
        election_rerun_interval_ms: 5_000,
        child_nodes_check_interval_ms: None,
        ..Settings::default()
    }
}

/// A core and the answers its driver gives.
struct Script {
    core: Core,
    now: u64,
    /// What the local server says at each ReadLocal.
    local: Option<LocalFacts>,
    /// The voters that acknowledge heartbeats, with what they promise.
    acks: Vec<NodeId>,
    promise_ms: u64,
    /// The voters whose repmgrd is not running yet: their servers answer.
    daemonless: Vec<NodeId>,
    /// Every action seen, in order.
    seen: Vec<Action>,
}

impl Script {
    fn new(s: Settings, durable: Persisted, local: LocalFacts) -> Script {
        let promise_ms = s.lease_ms();
        Script {
            promise_ms,
            core: Core::new(s, durable, Time(0)),
            now: 0,
            local: Some(local),
            acks: Vec::new(),
            daemonless: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Steps with `input`, then answers what the script knows how to
    /// answer at once (local reads, jobs succeed), recording everything.
    fn feed(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(i) = queue.pop() {
            let actions = self.core.step(Time(self.now), i);
            for a in actions {
                match &a {
                    Action::ReadLocal => queue.push(Input::Local(self.local.clone())),
                    Action::Fence { how } => {
                        if *how != FenceHow::ReadOnly {
                            self.local = None; // stopped, or restarting
                        }
                        queue.push(Input::Done(Done::Fenced {
                            how: *how,
                            ok: Ok(()),
                        }))
                    }
                    Action::SendHeartbeats { to, .. } => {
                        for from in to.iter().filter(|t| self.daemonless.contains(t)) {
                            queue.push(Input::Heartbeat {
                                from: *from,
                                sent: Time(self.now),
                                reply: HeartbeatReply::NoDaemon,
                            });
                        }
                        for from in to.iter().filter(|t| self.acks.contains(t)) {
                            queue.push(Input::Heartbeat {
                                from: *from,
                                sent: Time(self.now),
                                reply: HeartbeatReply::Ack {
                                    promise_ms: self.promise_ms,
                                    known_term: 1,
                                },
                            });
                        }
                    }
                    _ => {}
                }
                self.seen.push(a);
            }
        }
    }

    /// Ticks every 100 ms until `until_ms`.
    fn run_to(&mut self, until_ms: u64) {
        while self.now < until_ms {
            self.now += 100;
            self.feed(Input::Tick);
        }
    }

    fn any(&self, f: impl Fn(&Action) -> bool) -> bool {
        self.seen.iter().any(f)
    }

    fn fences(&self) -> Vec<FenceHow> {
        self.seen
            .iter()
            .filter_map(|a| match a {
                Action::Fence { how } => Some(*how),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn an_isolated_primary_with_an_automatic_candidate_fences_itself() {
    // 6 attempts 1 s apart: a 5 s lease, read-only after 2.5 s without a
    // renewal, stopped 1.25 s before it ends.
    let mut s = Script::new(
        Settings {
            reconnect_attempts: 6,
            ..settings(1, Failover::Automatic)
        },
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    s.run_to(3_000);
    assert!(s.fences().is_empty(), "{:?}", s.fences());
    s.acks.clear();
    s.run_to(10_000);
    // Heartbeats say it fences; nobody answers them now.
    assert!(s.any(|a| matches!(a, Action::SendHeartbeats { fences: true, .. })));
    assert_eq!(s.fences(), vec![FenceHow::ReadOnly, FenceHow::Stop]);
}

#[test]
fn a_primary_whose_voters_start_after_it_does_not_fence() {
    // The standbys' repmgrds start a moment after the primary's: their
    // servers answer first (a 10 s promise each, their start-up
    // quarantine), then their repmgrds acknowledge with 2 s promises. The
    // thresholds follow the 2 s the voters promise now, not the 10 s kept
    // from before (that stretched them: read-only at 5 s, then a stop and
    // restart every second).
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.daemonless = vec![2, 3];
    s.run_to(1_500);
    s.daemonless.clear();
    s.acks = vec![2, 3];
    s.run_to(20_000);
    assert!(s.fences().is_empty(), "{:?}", s.fences());
}

#[test]
fn a_primary_with_no_automatic_candidate_never_fences() {
    // repmgr's default, failover=manual everywhere: repmgrd must never
    // stop a primary.
    let mut s = Script::new(
        settings(1, Failover::Manual),
        Persisted::default(),
        facts(false, three(false, false)),
    );
    s.run_to(30_000);
    assert!(s.fences().is_empty(), "{:?}", s.fences());
    assert!(s.any(|a| matches!(a, Action::SendHeartbeats { fences: false, .. })));
}

#[test]
fn a_primary_that_fenced_before_stops_only_once_enough_voters_heard_otherwise() {
    // It fenced itself before (durable), the candidates are gone now: it
    // keeps the fence rule until a voter acknowledged "no fence" (one of
    // two others blocks any majority of three).
    let durable = Persisted {
        fencing: true,
        ..Persisted::default()
    };
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        durable,
        facts(false, three(false, false)),
    );
    s.run_to(1_000);
    let sent = s
        .seen
        .iter()
        .find_map(|a| match a {
            Action::SendHeartbeats { fences: false, .. } => Some(Time(s.now)),
            _ => None,
        })
        .expect("a heartbeat saying it does not fence");
    s.feed(Input::Heartbeat {
        from: 2,
        sent,
        reply: HeartbeatReply::Ack {
            promise_ms: 2_000,
            known_term: 1,
        },
    });
    assert!(s.any(|a| matches!(a, Action::PublishFencing { fences: false })));
    s.run_to(30_000);
    assert!(s.fences().is_empty(), "{:?}", s.fences());
}

#[test]
fn two_voters_never_fence_the_primary() {
    // The standby cannot win without the primary's vote, which it never
    // gives while it is one: no lease is needed.
    let nodes = vec![
        node(1, NodeKind::Primary, 100, true),
        node(2, NodeKind::Standby, 100, true),
    ];
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, nodes),
    );
    s.run_to(30_000);
    assert!(s.fences().is_empty(), "{:?}", s.fences());
}

#[test]
fn a_superseded_primary_is_demoted_but_a_stopped_one_only_prepared() {
    let superseded = HeartbeatReply::Superseded {
        term: 5,
        by: Some(2),
    };
    // Running: demoted at once.
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    s.run_to(1_500);
    s.acks.clear();
    s.feed(Input::Heartbeat {
        from: 3,
        sent: Time(100),
        reply: superseded,
    });
    assert_eq!(s.fences(), vec![FenceHow::Demote { to: Some(2) }]);
    // Down (kill -9): not started to be fenced; standby.signal is written
    // so whoever starts it gets a standby.
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    s.run_to(1_500);
    s.local = None;
    s.run_to(2_500);
    s.feed(Input::Peer {
        token: 1,
        request: PeerRequest::Heartbeat {
            from: 2,
            term: 5,
            timeline: 2,
            promoted: true,
            fences: true,
        },
    });
    assert!(s.fences().is_empty(), "{:?}", s.fences());
    assert!(s.any(|a| matches!(a, Action::PrepareAsStandby { target: 2 })));
}

/// A standby whose upstream stops answering, until `until_ms`; every
/// cluster round shows only itself and the other standby (`other`).
fn lose_upstream(s: &mut Script, until_ms: u64, other: NodeObs) {
    while s.now < until_ms {
        s.now += 100;
        s.feed(Input::Tick);
        let asks: Vec<Action> = std::mem::take(&mut s.seen);
        for a in &asks {
            match a {
                Action::CheckUpstream { node, seq, .. } => s.feed(Input::UpstreamCheck {
                    node: *node,
                    ok: false,
                    in_recovery: None,
                    seq: *seq,
                }),
                Action::GatherCluster { .. } => {
                    let me = NodeObs {
                        id: 2,
                        reachable: true,
                        in_recovery: Some(true),
                        timeline: 1,
                        lsn: 100,
                        daemon_session: Some(true),
                        ..NodeObs::unreachable(2)
                    };
                    s.feed(Input::Cluster(vec![
                        NodeObs::unreachable(1),
                        me,
                        other.clone(),
                    ]))
                }
                _ => {}
            }
        }
        s.seen.splice(0..0, asks);
    }
}

fn standby_obs(id: NodeId, lsn: Lsn) -> NodeObs {
    NodeObs {
        id,
        reachable: true,
        in_recovery: Some(true),
        timeline: 1,
        lsn,
        daemon_session: Some(true),
        ..NodeObs::unreachable(id)
    }
}

#[test]
fn a_manual_standby_never_asks_for_votes() {
    let mut s = Script::new(
        settings(2, Failover::Manual),
        Persisted::default(),
        facts(true, three(false, false)),
    );
    lose_upstream(&mut s, 20_000, standby_obs(3, 100));
    assert!(!s.any(|a| matches!(a, Action::RequestVotes { .. } | Action::Promote { .. })));
}

#[test]
fn a_candidate_that_never_heard_the_primary_fence_does_not_stand() {
    // No heartbeat heard, and the primary's published word is "no fence".
    let mut s = Script::new(
        settings(2, Failover::Automatic),
        Persisted::default(),
        facts(true, three(true, false)),
    );
    lose_upstream(&mut s, 20_000, standby_obs(3, 100));
    assert!(!s.any(|a| matches!(a, Action::RequestVotes { .. })));
    assert!(s.any(|a| matches!(a, Action::Log(_, m) if m.contains("never heard primary"))));
}

#[test]
fn a_manual_standby_with_more_wal_does_not_hold_a_failover_up() {
    // node3 (manual) has more WAL; node2 is the only candidate and stands
    // (its quarantine over, the primary heard saying it fences).
    let durable = Persisted {
        known_term: 1,
        known_primary: Some(1),
        known_fences: true,
        ..Persisted::default()
    };
    let mut s = Script::new(
        settings(2, Failover::Automatic),
        durable,
        facts(true, three(true, false)),
    );
    let mut other = standby_obs(3, 500);
    other.daemon = Some(DaemonStatus {
        automatic: false,
        ..DaemonStatus::default()
    });
    lose_upstream(&mut s, 20_000, other);
    assert!(s.any(|a| matches!(a, Action::RequestVotes { .. })));
}

/// How the upstream answers each check in a retry-schedule case.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Fails after this many ms (a hung server costs its deadline).
    FailsAfter(u64),
    /// The n-th check (from 1) and every later one succeed at once.
    BackFrom(u32),
}

/// A standby whose upstream starts failing at 10 s: when each check goes
/// out, and when the election starts (None: it does not).
fn retry_schedule(attempts: u32, interval_ms: u64, answer: Answer) -> (Vec<u64>, Option<u64>) {
    let s = Settings {
        reconnect_attempts: attempts,
        reconnect_interval_ms: interval_ms,
        ..settings(2, Failover::Automatic)
    };
    let mut sc = Script::new(s, Persisted::default(), facts(true, three(true, true)));
    let mut out: Vec<(u64, u64, bool)> = Vec::new(); // (due, seq, ok)
    let (mut sent, mut election) = (Vec::new(), None);
    let mut failing = 0u32;
    while sc.now < 60_000 && election.is_none() {
        sc.now += 50;
        sc.seen.clear();
        sc.feed(Input::Tick);
        // Answers due by now, and those their actions bring at once.
        loop {
            for a in std::mem::take(&mut sc.seen) {
                match a {
                    Action::CheckUpstream { seq, .. } => {
                        if sc.now < 10_000 {
                            out.push((sc.now, seq, true));
                            continue;
                        }
                        failing += 1;
                        sent.push(sc.now - 10_000);
                        let (after, ok) = match answer {
                            Answer::FailsAfter(ms) => (ms, false),
                            Answer::BackFrom(n) => (0, failing >= n),
                        };
                        out.push((sc.now + after, seq, ok));
                    }
                    Action::GatherCluster { down: Some(1) } => {
                        election = election.or(Some(sc.now - 10_000))
                    }
                    _ => {}
                }
            }
            let Some(k) = out.iter().position(|o| o.0 <= sc.now) else {
                break;
            };
            let (_, seq, ok) = out.remove(k);
            sc.feed(Input::UpstreamCheck {
                node: 1,
                ok,
                in_recovery: None,
                seq,
            });
        }
    }
    (sent, election)
}

#[test]
fn retry_attempts_are_reconnect_interval_apart_however_long_each_waits() {
    use Answer::*;
    // (attempts, interval, answer) -> checks sent (ms after the upstream
    // failed, the first check counts as attempt 1), election start.
    type Case = ((u32, u64, Answer), &'static [u64], Option<u64>);
    let table: &[Case] = &[
        // Refused at once: one attempt a second, failed after the third.
        ((3, 1_000, FailsAfter(0)), &[0, 1_000, 2_000], Some(2_000)),
        // Hung (each attempt waits out a 2 s deadline): the attempts due
        // while the first check waited go out when it fails, and do not
        // wait for each other: the last one, sent at 2 s, fails at 4 s.
        (
            (3, 1_000, FailsAfter(2_000)),
            &[0, 2_000, 2_000],
            Some(4_000),
        ),
        (
            (4, 1_000, FailsAfter(2_000)),
            &[0, 2_000, 2_000, 3_000],
            Some(5_000),
        ),
        (
            (3, 10_000, FailsAfter(2_000)),
            &[0, 10_000, 20_000],
            Some(22_000),
        ),
        ((1, 1_000, FailsAfter(2_000)), &[0], Some(2_000)),
        // Back on the second attempt: no election.
        ((3, 1_000, BackFrom(2)), &[0, 1_000], None),
        // An interval of 0: the other attempts at once after the first.
        ((3, 0, FailsAfter(500)), &[0, 500, 500], Some(1_000)),
    ];
    for &((attempts, interval, answer), checks, election) in table {
        let (sent, got) = retry_schedule(attempts, interval, answer);
        let case = format!("{attempts} attempts {interval} ms apart, {answer:?}");
        // The first check after the failure starts at a tick (every
        // second): shift to it.
        let base = sent.first().copied().unwrap_or(0);
        let rel: Vec<u64> = sent.iter().map(|t| t - base).collect();
        assert_eq!(
            &rel[..checks.len().min(rel.len())],
            checks,
            "{case}: checks sent"
        );
        assert_eq!(got.map(|g| g - base), election, "{case}: election start");
    }
}

#[test]
fn log_status_interval_zero_logs_no_status_lines() {
    let status_lines = |interval_ms: u64| {
        let mut s = Script::new(
            Settings {
                log_status_interval_ms: interval_ms,
                ..settings(1, Failover::Manual)
            },
            Persisted::default(),
            facts(false, three(false, false)),
        );
        s.acks = vec![2, 3];
        s.run_to(10_000);
        s.seen
            .iter()
            .filter(|a| matches!(a, Action::Log(_, m) if m.contains("in normal state")))
            .count()
    };
    assert_eq!(status_lines(0), 0, "0 is off, as in repmgr");
    assert_eq!(status_lines(2_000), 5, "at 2, 4, 6, 8 and 10 s");
}

/// What a standby does once its primary failed, by what the cluster round
/// shows of the other standby (node 3): one row per outcome of the
/// candidacy.
#[test]
fn a_standby_whose_primary_failed_acts_on_what_the_cluster_round_shows() {
    let fenced_primary_heard = Persisted {
        known_term: 1,
        known_primary: Some(1),
        known_fences: true,
        ..Persisted::default()
    };
    let mut newer = standby_obs(3, 100);
    newer.in_recovery = Some(false);
    newer.term = 2;
    let mut newer_fenced = newer.clone();
    newer_fenced.fenced = true;
    newer_fenced.timeline = 2;
    type Expect = fn(&Script) -> bool;
    let table: Vec<(&str, NodeObs, Expect)> = vec![
        (
            "node 3 has more WAL: it is the candidate, this one waits",
            standby_obs(3, 500),
            |s| {
                !s.any(|a| matches!(a, Action::RequestVotes { .. }))
                    && s.any(|a| matches!(a, Action::Log(_, m) if m.contains("node 3 is the promotion candidate")))
            },
        ),
        (
            "this one has the most WAL: it asks for votes",
            standby_obs(3, 50),
            |s| {
                s.any(|a| matches!(a, Action::RequestVotes { request, .. } if request.candidate == 2 && request.failed == 1))
            },
        ),
        (
            "equal WAL: the lower node ID stands",
            standby_obs(3, 100),
            |s| s.any(|a| matches!(a, Action::RequestVotes { .. })),
        ),
        (
            "node 3 already runs as the new primary: follow it",
            newer,
            |s| {
                s.any(|a| matches!(a, Action::Follow { target: 3 }))
                    && !s.any(|a| matches!(a, Action::RequestVotes { .. }))
            },
        ),
        (
            "node 3 is a fenced primary of a newer history: no second promotion",
            newer_fenced,
            |s| {
                !s.any(|a| matches!(a, Action::RequestVotes { .. } | Action::Promote { .. }))
                    && s.any(|a| matches!(a, Action::Log(_, m) if m.contains("failover cancelled")))
            },
        ),
    ];
    for (case, other, expect) in table {
        let mut s = Script::new(
            settings(2, Failover::Automatic),
            fenced_primary_heard,
            facts(true, three(true, true)),
        );
        lose_upstream(&mut s, 20_000, other);
        assert!(
            expect(&s),
            "{case}: {:#?}",
            s.seen
                .iter()
                .filter(|a| matches!(a, Action::Log(..)))
                .collect::<Vec<_>>()
        );
    }
}

mod election_phases;
mod health;
mod keys;
mod local_reads;
mod primary_phases;
mod rejoin_phases;
mod standby_phases;
mod witness_phases;
mod world;
