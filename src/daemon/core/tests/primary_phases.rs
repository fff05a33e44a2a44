//! A primary's phases: the lease held, the isolation fence (read-only,
//! then stopped), the fence lifted only when a majority answers again,
//! supersession by a newer term or timeline, and the local server going
//! away; one row per transition.

use super::world::{Beat::*, *};
use super::*;

/// Node 1, the primary, with 6 attempts 1 s apart: its voters (2, 3)
/// promise 5 s; read-only once less than 2.5 s of that is left, stopped
/// once 1.25 s is.
fn primary_1() -> Setup {
    let mut w = World::new(facts(false, three(true, true)));
    w.acks(2, 5_000);
    w.acks(3, 5_000);
    w.cluster = vec![primary_obs(1, 1), standby_obs(2, 100), standby_obs(3, 100)];
    Setup {
        s: Settings {
            reconnect_attempts: 6,
            ..settings(1, Failover::Automatic)
        },
        durable: Persisted::default(),
        world: w,
    }
}

/// The same with four standbys: two promises are needed of the four.
fn primary_of_five() -> Setup {
    let mut s = primary_1();
    let mut nodes = three(true, true);
    nodes.push(node(4, NodeKind::Standby, 100, true));
    nodes.push(node(5, NodeKind::Standby, 100, true));
    s.world.local = Some(facts(false, nodes));
    for id in [4, 5] {
        s.world.acks(id, 5_000);
    }
    s
}

fn isolated(w: &mut World) {
    w.hb.clear();
}

fn voters_back(w: &mut World) {
    w.acks(2, 5_000);
    w.acks(3, 5_000);
}

/// Node 2 runs as the primary of term 5, and says so to node 1's voters.
fn node_2_promoted(w: &mut World) {
    w.hb.insert(
        3,
        HeartbeatReply::Superseded {
            term: 5,
            by: Some(2),
        },
    );
    *w.obs(2) = primary_obs(2, 5);
    w.obs(2).timeline = 2;
}

fn fenced(a: &Action) -> bool {
    matches!(a, Action::Fence { .. })
}

fn unfenced(a: &Action) -> bool {
    matches!(a, Action::Unfence { .. })
}

fn heartbeat_from_2(term: Term) -> Input {
    Input::Peer {
        token: 9,
        request: PeerRequest::Heartbeat {
            from: 2,
            term,
            timeline: 2,
            promoted: true,
            fences: true,
        },
    }
}

#[test]
fn primary_transitions() {
    run_table(vec![
        Case {
            name: "primary: a lease its voters renew holds; no fence",
            setup: primary_1,
            beats: vec![
                (30_000, Went(&["primary"])),
                (0, NotSaw("a fence", fenced)),
                (0, Saw("heartbeats saying it fences", |a| {
                    matches!(a, Action::SendHeartbeats { fences: true, promoted: true, .. })
                })),
            ],
        },
        Case {
            name: "primary → read-only → stopped → primary: isolated, then a majority answers again",
            setup: primary_1,
            beats: vec![
                (5_000, Set(isolated)),
                (3_000, Reach("primary/read-only")),
                (0, Saw("why", |a| logged(a, "fencing this primary"))),
                // The count given is of the voters that still hold its
                // lease (it once said "3 of 3" here).
                (0, Saw("the count", |a| logged(a, "this primary sees only 1 of 3 voters"))),
                (0, Saw("the fence event", |a| event(a, "repmgrd_fence"))),
                (2_000, Reach("primary/stopped")),
                (0, Went(&["primary", "primary/read-only", "primary/stopped"])),
                // Stopped, it goes on asking: a majority's answers are the
                // evidence that no other node can have been promoted.
                (5_000, Is("primary/stopped")),
                (0, NotSaw("an unfence", unfenced)),
                (0, Set(voters_back)),
                (2_000, Reach("primary")),
                (0, Saw("the server started again", |a| {
                    matches!(a, Action::Unfence { start: true })
                })),
                (0, Saw("the unfence event", |a| event(a, "repmgrd_unfence"))),
                (0, Saw("the count", |a| logged(a, "voters again"))),
                (5_000, Went(&["primary"])),
            ],
        },
        Case {
            name: "stopped: a voter's server answering without its repmgrd holds no evidence; no unfence until a voter's repmgrd acknowledges (a partial heal to a witness whose repmgrd is down unfenced it beside the new primary)",
            setup: primary_1,
            beats: vec![
                (5_000, Set(isolated)),
                (5_000, Reach("primary/stopped")),
                // Only the link to node 3 heals, and node 3's repmgrd is
                // down: its server answers (it may have voted before).
                (0, Set(|w| {
                    w.hb.insert(3, HeartbeatReply::NoDaemon);
                })),
                (10_000, Is("primary/stopped")),
                (0, NotSaw("an unfence", unfenced)),
                // Its repmgrd back, it acknowledges: that is evidence.
                (0, Set(|w| w.acks(3, 5_000))),
                (2_000, Reach("primary")),
            ],
        },
        Case {
            name: "read-only → primary: the voters answer before the stop is due",
            setup: primary_1,
            beats: vec![
                (5_000, Set(isolated)),
                (3_000, Reach("primary/read-only")),
                (0, Set(voters_back)),
                (1_000, Went(&["primary", "primary/read-only", "primary"])),
                (0, Saw("the fence lifted", |a| matches!(a, Action::Unfence { start: false }))),
                (5_000, NotSaw("a stop", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Stop })
                })),
            ],
        },
        Case {
            name: "stopped: one voter of four is no majority, two are",
            setup: primary_of_five,
            beats: vec![
                (5_000, Set(isolated)),
                (5_000, Reach("primary/stopped")),
                (0, Set(|w| w.acks(2, 5_000))),
                (6_000, Is("primary/stopped")),
                (0, NotSaw("an unfence", unfenced)),
                (0, Set(|w| w.acks(4, 5_000))),
                (2_000, Reach("primary")),
            ],
        },
        Case {
            name: "stopped → primary → stopped: started by hand while still isolated",
            setup: primary_1,
            beats: vec![
                (5_000, Set(isolated)),
                (5_000, Reach("primary/stopped")),
                (0, Went(&["primary", "primary/read-only", "primary/stopped"])),
                (1_000, Set(|w| w.local = Some(facts(false, three(true, true))))),
                (1_500, Went(&["primary", "primary/stopped"])),
                (0, Saw("stopped again", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Stop })
                })),
            ],
        },
        Case {
            name: "primary → superseded → demoted → standby: a voter knows term 5",
            setup: primary_1,
            beats: vec![
                (5_000, Set(node_2_promoted)),
                (2_000, Reach("standby/healthy")),
                (0, Went(&["primary", "primary/superseded", "primary/superseded+demoted", "standby/attaching", "standby/healthy"])),
                (0, Saw("demoted towards node 2", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Demote { to: Some(2) } })
                })),
                (0, Saw("the fence event, on node 2", |a| {
                    matches!(a, Action::Event { name: "repmgrd_fence", on: Some(2), .. })
                })),
                (0, Saw("now monitoring node 2", |a| logged(a, "monitoring upstream node \"node2\""))),
            ],
        },
        Case {
            name: "superseded → stopped, for good: fence_read_only=false; no lease asked, no unfence",
            setup: || {
                let mut s = primary_1();
                s.s.fence_read_only = false;
                s
            },
            beats: vec![
                (5_000, Set(node_2_promoted)),
                (2_000, Reach("primary/superseded+stopped")),
                (0, Went(&["primary", "primary/superseded", "primary/superseded+stopped"])),
                (0, Set(voters_back)),
                (10_000, Went(&[])),
                (0, NotSaw("an unfence", unfenced)),
                (0, NotSaw("a heartbeat", |a| matches!(a, Action::SendHeartbeats { .. }))),
                (0, NotSaw("a rejoin", |a| matches!(a, Action::Rejoin { .. }))),
            ],
        },
        Case {
            name: "superseded → stopped → rejoin: auto_rejoin makes it a standby of the new primary",
            setup: || {
                let mut s = primary_1();
                s.s.fence_read_only = false;
                s.s.auto_rejoin = true;
                s
            },
            beats: vec![
                (5_000, Set(node_2_promoted)),
                (2_000, Reach("primary/superseded+stopped")),
                (0, Saw("a rejoin", |a| matches!(a, Action::Rejoin { target: 2 }))),
            ],
        },
        Case {
            name: "primary → superseded: the heartbeat of a primary of a newer term",
            setup: primary_1,
            beats: vec![
                (5_000, Feed(heartbeat_from_2(5))),
                (0, Went(&["primary", "primary/superseded", "primary/superseded+demoted"])),
            ],
        },
        Case {
            name: "primary: the heartbeat of a node claiming its own term changes nothing",
            setup: primary_1,
            beats: vec![
                (5_000, Feed(heartbeat_from_2(1))),
                (10_000, Went(&["primary"])),
                (0, NotSaw("a fence", fenced)),
            ],
        },
        Case {
            name: "a voter that names this node as the holder of a newer term does not fence it",
            setup: primary_1,
            beats: vec![
                (5_000, Set(|w| {
                    w.hb.insert(3, HeartbeatReply::Superseded { term: 5, by: Some(1) });
                })),
                (5_000, Is("primary")),
                (0, NotSaw("a fence", fenced)),
            ],
        },
        Case {
            name: "superseded at start: restarted with a durable record of term 5, it is demoted at once",
            setup: || Setup {
                durable: Persisted {
                    fence: Some(FenceState::Superseded {
                        term: 5,
                        by: Some(2),
                    }),
                    ..Persisted::default()
                },
                ..primary_1()
            },
            beats: vec![(0, Went(&["primary/superseded", "primary/superseded+demoted"]))],
        },
        Case {
            name: "primary → down → prepared: crashed, and node 2 promoted on a newer timeline meanwhile; back as its standby",
            setup: primary_1,
            beats: vec![
                (5_000, Set(|w| w.local = None)),
                (1_500, Went(&["primary", "primary/down"])),
                (0, Saw("the disconnect event", |a| event(a, "repmgrd_local_disconnect"))),
                (0, Set(|w| {
                    // Same term (its repmgrd may not have run): the newer
                    // timeline alone shows the promotion.
                    *w.obs(2) = primary_obs(2, 1);
                    w.obs(2).timeline = 2;
                })),
                (1_500, Saw("standby.signal for node 2", |a| {
                    matches!(a, Action::PrepareAsStandby { target: 2 })
                })),
                (0, NotSaw("a fence", fenced)),
                (0, Set(|w| {
                    let mut f = facts(true, three(true, true));
                    f.receiver = Some(Receiver {
                        sender: Some(2),
                        streaming: true,
                        last_msg_age: 100,
                    });
                    w.local = Some(f);
                })),
                (1_500, Went(&["standby/attaching", "standby/healthy"])),
                (0, Saw("its record follows", |a| {
                    matches!(a, Action::RecordUpstream { upstream: 2 })
                })),
            ],
        },
        Case {
            name: "primary → down → killed: the server answers nothing as the lease runs out (hung, or crashed: the driver kills only a hung one)",
            setup: primary_1,
            beats: vec![
                (5_000, Set(|w| w.local = None)),
                (2_000, NotSaw("a kill while the lease holds", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Kill })
                })),
                (4_000, Saw("the kill", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Kill })
                })),
                (1_000, Went(&["primary", "primary/down", "primary/killed+down"])),
                (0, NotSaw("a heartbeat after the kill", |a| {
                    matches!(a, Action::SendHeartbeats { .. })
                })),
                // Started again by hand: without a lease it is stopped
                // until its voters renew one, then started (as any primary
                // back after its lease ran out).
                (0, Set(|w| w.local = Some(facts(false, three(true, true))))),
                (1_500, Went(&["primary", "primary/stopped", "primary"])),
            ],
        },
        Case {
            name: "primary → down → killed: the server hangs as its read-only fence is due, and every retry fails (before, it was never seen down, so never killed)",
            setup: || {
                let mut s = primary_1();
                // Each try takes time, as it does against a hung server.
                s.world.lag.job = 300;
                s
            },
            beats: vec![
                (5_000, Set(isolated)),
                // It hangs as the read-only fence is due (at 7.5 s): that
                // fence and every retry fail for want of an answer, back
                // to back, and so does every local read.
                (2_400, Set(|w| w.fence = Err("the server does not answer".into()))),
                (150, Set(|w| w.local = None)),
                (3_000, Saw("the kill", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Kill })
                })),
                (0, Went(&["primary", "primary/down"])),
            ],
        },
        Case {
            name: "down → primary: the local server answers again",
            setup: primary_1,
            beats: vec![
                (5_000, Set(|w| w.local = None)),
                (1_000, Set(|w| w.local = Some(facts(false, three(true, true))))),
                (1_500, Went(&["primary", "primary/down", "primary"])),
                (0, Saw("the reconnect event", |a| event(a, "repmgrd_local_reconnect"))),
                (10_000, NotSaw("a fence", fenced)),
            ],
        },
        Case {
            name: "a fence that fails is recorded as failed and retried (the retries logged at debug level); no fence counts as applied",
            setup: || {
                let mut s = primary_1();
                s.world.fence = Err("permission denied".into());
                // (A failed fence is retried at once: each try takes time.)
                s.world.lag.job = 200;
                s
            },
            beats: vec![
                (5_000, Set(isolated)),
                (4_000, Saw("the failed fence event", |a| {
                    matches!(a, Action::Event { name: "repmgrd_fence", ok: false, .. })
                })),
                (0, Saw("retried", |a| logged(a, "fencing failed again"))),
                (0, Went(&["primary"])),
            ],
        },
        Case {
            name: "failover_quorum=repmgr: no lease, never fenced",
            setup: || {
                let mut s = primary_1();
                s.s.quorum = Quorum::Repmgr;
                s.world.hb.clear();
                s
            },
            beats: vec![
                (30_000, Went(&["primary"])),
                (0, NotSaw("a fence", fenced)),
            ],
        },
    ]);
}

#[test]
fn a_primary_woken_only_when_it_asks_stops_before_its_lease_ends() {
    // repmgr's monitoring interval (2 s) and 4 s promises: read-only 2 s
    // before the lease ends, stopped 1 s before. The driver wakes the core
    // only at `next_wakeup`: the read-only time, once passed, must not
    // hide the stop time behind the next monitoring tick.
    let mut s = Script::new(
        Settings {
            reconnect_attempts: 5,
            monitor_interval_ms: 2_000,
            ..settings(1, Failover::Automatic)
        },
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    let mut last_ack = 0;
    while s.now < 10_000 {
        s.now = s.core.next_wakeup().0.max(s.now + 1);
        let before = s.seen.len();
        s.feed(Input::Tick);
        if s.seen[before..]
            .iter()
            .any(|a| matches!(a, Action::SendHeartbeats { .. }))
        {
            last_ack = s.now;
        }
    }
    s.acks.clear();
    let stop_by = last_ack + timing::discount(4_000) - 1_000;
    while s.now <= stop_by + 2_000 && !s.fences().contains(&FenceHow::Stop) {
        s.now = s.core.next_wakeup().0.max(s.now + 1);
        s.feed(Input::Tick);
    }
    assert_eq!(s.fences().first(), Some(&FenceHow::ReadOnly));
    assert!(s.fences().contains(&FenceHow::Stop), "{:?}", s.fences());
    assert!(
        s.now <= stop_by,
        "stopped at {} ms, due by {stop_by}",
        s.now
    );
}
