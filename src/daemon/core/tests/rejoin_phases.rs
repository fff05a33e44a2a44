//! A primary that its own fence keeps stopped finding its way back as a
//! standby (primary/rejoin.rs): auto_rejoin goes to the writable primary
//! of the newest term a cluster round shows, not to the node that
//! superseded it (which may have failed since), and waits while there is
//! none; a repmgrd restarted while the fence keeps the server stopped
//! looks for a newer primary, and never unfences.

use super::world::{Beat::*, *};
use super::*;

/// Node 1, the primary (`fence_mode=stop`, auto_rejoin), voters 2 and 3
/// acknowledging.
fn stopping_primary() -> Setup {
    let mut w = World::new(facts(false, three(true, true)));
    w.acks(2, 5_000);
    w.acks(3, 5_000);
    w.cluster = vec![primary_obs(1, 1), standby_obs(2, 100), standby_obs(3, 100)];
    Setup {
        s: Settings {
            reconnect_attempts: 6,
            fence_read_only: false,
            auto_rejoin: true,
            ..settings(1, Failover::Automatic)
        },
        durable: Persisted::default(),
        world: w,
    }
}

/// Node 3 says node 2 was promoted in term 5; node 2 has failed since.
fn superseded_by_dead_2(w: &mut World) {
    w.hb.insert(
        3,
        HeartbeatReply::Superseded {
            term: 5,
            by: Some(2),
        },
    );
    w.cut(2);
}

/// Node 3 runs as the primary of term `t` (6: promoted after node 2).
fn node_3_primary(w: &mut World, t: Term) {
    *w.obs(3) = primary_obs(3, t);
    w.obs(3).timeline = 3;
}

/// Node 1 restarted while its fence kept its server stopped: the state
/// file records the fence and its own term 1; the server does not answer.
fn restarted_stopped(fence: FenceState, auto_rejoin: bool) -> Setup {
    let mut s = stopping_primary();
    s.s.auto_rejoin = auto_rejoin;
    s.world.local = None;
    s.durable = Persisted {
        known_term: 1,
        known_primary: Some(1),
        fencing: true,
        fence: Some(fence),
        ..Persisted::default()
    };
    s
}

fn rejoin_to(a: &Action, target: NodeId) -> bool {
    matches!(a, Action::Rejoin { target: t } if *t == target)
}

fn any_rejoin(a: &Action) -> bool {
    matches!(a, Action::Rejoin { .. })
}

fn unfence(a: &Action) -> bool {
    matches!(a, Action::Unfence { .. })
}

#[test]
fn stopped_primary_rejoins() {
    run_table(vec![
        Case {
            name: "superseded → stopped: node 2, which superseded it, failed since; it rejoins node 3, the primary of term 6",
            setup: || {
                let mut s = stopping_primary();
                node_3_primary(&mut s.world, 6);
                s
            },
            beats: vec![
                (5_000, Set(superseded_by_dead_2)),
                // The round and the rejoin come at the moment it stopped.
                (2_000, Reach("primary/superseded+stopped")),
                (0, Saw("a rejoin to node 3", |a| rejoin_to(a, 3))),
                (0, NotSaw("standby.signal once rejoined", |a| {
                    matches!(a, Action::PrepareAsStandby { target: 3 })
                })),
                (0, NotSaw("a rejoin to node 2", |a| rejoin_to(a, 2))),
            ],
        },
        Case {
            name: "superseded → stopped: no writable primary of term 5 or later in sight; it waits, then rejoins the one promoted",
            setup: stopping_primary,
            beats: vec![
                (5_000, Set(superseded_by_dead_2)),
                (2_000, Reach("primary/superseded+stopped")),
                // node 3 a primary of an older term (4): no target either.
                (0, Set(|w| node_3_primary(w, 4))),
                (20_000, NotSaw("a rejoin", any_rejoin)),
                (0, Set(|w| node_3_primary(w, 6))),
                (10_000, Saw("a rejoin to node 3", |a| rejoin_to(a, 3))),
                (0, NotSaw("a rejoin to node 2", |a| rejoin_to(a, 2))),
            ],
        },
        Case {
            name: "restarted, stopped by its isolation fence: node 2 runs as the primary of term 2; superseded, it rejoins node 2",
            setup: || {
                let mut s = restarted_stopped(FenceState::Isolated, true);
                *s.world.obs(2) = primary_obs(2, 2);
                s.world.obs(1).reachable = false;
                s
            },
            beats: vec![
                (10_000, Saw("a rejoin to node 2", |a| rejoin_to(a, 2))),
                (0, Went(&["primary/stopped", "primary/superseded+stopped"])),
                (0, NotSaw("an unfence", unfence)),
            ],
        },
        Case {
            name: "restarted, stopped by its isolation fence, no newer primary: it stays stopped (no voters known: no lease to unfence on)",
            setup: || {
                let mut s = restarted_stopped(FenceState::Isolated, true);
                s.world.obs(1).reachable = false;
                s
            },
            beats: vec![
                (30_000, Went(&["primary/stopped"])),
                (0, NotSaw("an unfence", unfence)),
                (0, NotSaw("a rejoin", any_rejoin)),
                (0, Saw("a cluster round", |a| matches!(a, Action::GatherCluster { .. }))),
            ],
        },
        Case {
            name: "restarted, stopped by its isolation fence, without auto_rejoin: superseded by node 2 of term 2, it stays stopped",
            setup: || {
                let mut s = restarted_stopped(FenceState::Isolated, false);
                *s.world.obs(2) = primary_obs(2, 2);
                s.world.obs(1).reachable = false;
                s
            },
            beats: vec![
                (10_000, Went(&["primary/stopped", "primary/superseded+stopped"])),
                (0, Saw("standby.signal for node 2, without a node list", |a| {
                    matches!(a, Action::PrepareAsStandby { target: 2 })
                })),
                (0, NotSaw("an unfence", unfence)),
                (0, NotSaw("a rejoin", any_rejoin)),
            ],
        },
        Case {
            name: "restarted, superseded (term 5, node 2) and stopped: node 2 failed, node 3 is the primary of term 6; it rejoins node 3",
            setup: || {
                let mut s = restarted_stopped(
                    FenceState::Superseded {
                        term: 5,
                        by: Some(2),
                    },
                    true,
                );
                s.world.obs(1).reachable = false;
                node_3_primary(&mut s.world, 6);
                s
            },
            beats: vec![
                (10_000, Saw("a rejoin to node 3", |a| rejoin_to(a, 3))),
                (0, NotSaw("a rejoin to node 2", |a| rejoin_to(a, 2))),
                (0, Went(&["primary/superseded+stopped"])),
            ],
        },
    ]);
}
