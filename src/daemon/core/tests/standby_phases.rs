//! A standby's phases outside the election itself: attaching, healthy,
//! retrying, waiting for the winner, following, re-attaching and the
//! degraded state, one row per transition.

use super::world::{Beat::*, *};
use super::*;

fn followed(a: &Action) -> bool {
    matches!(a, Action::Follow { .. })
}

/// Node 2 loses the election to node 3 (more WAL) and waits for it.
fn loser() -> Setup {
    let mut s = standby_2();
    s.world.obs(3).lsn = 500;
    s
}

/// Node 3, a standby of standby 2 (cascaded), with node 1 the primary.
fn cascaded_3() -> Setup {
    let mut nodes = three(true, true);
    nodes[2].upstream = Some(2);
    let mut w = World::new(facts(true, nodes));
    w.checks.insert(1, Some(false));
    w.checks.insert(2, Some(true));
    w.cluster = vec![primary_obs(1, 1), standby_obs(2, 100), standby_obs(3, 50)];
    Setup {
        s: settings(3, Failover::Automatic),
        durable: heard_primary_1(),
        world: w,
    }
}

/// A heartbeat from node 3, as the primary of `term`.
fn heartbeat_from_3(term: Term) -> Input {
    Input::Peer {
        token: 7,
        request: PeerRequest::Heartbeat {
            from: 3,
            term,
            timeline: 2,
            promoted: true,
            fences: true,
        },
    }
}

/// Node 1 runs as the primary, its record says standby; node 2's record
/// names no upstream.
fn stale_primary_record(n: &mut [NodeInfo]) {
    n[0].kind = NodeKind::Standby;
    n[1].upstream = None;
}

/// Node 3 is promoted, and node 2's WAL diverged from its: every follow
/// fails.
fn node_3_promoted_diverged(w: &mut World) {
    node_3_promoted(w);
    w.follow = Err("this node cannot follow: its timeline diverged".into());
}

const WAITING: &[&str] = &[
    "standby/healthy",
    "standby/retrying",
    "standby/gathering",
    "standby/waiting",
];

#[test]
fn standby_transitions() {
    run_table(vec![
        Case {
            name: "attaching → healthy: no upstream in the metadata, a cluster round finds the primary",
            setup: || {
                // A stale record: node 1 runs as the primary, its record
                // says standby; node 2's record names no upstream.
                let mut s = standby_2_with_nodes(stale_primary_record);
                s.world.lag.gather = 500;
                s
            },
            beats: vec![
                (300, Is("standby/attaching")),
                (0, Saw("a cluster round", |a| matches!(a, Action::GatherCluster { .. }))),
                (1_000, Went(&["standby/attaching", "standby/healthy"])),
                (0, Saw("monitoring node 1", |a| logged(a, "monitoring upstream node \"node1\""))),
            ],
        },
        Case {
            // Found by a round, the primary was once kept with its record's
            // kind (standby): when it failed this node re-attached instead,
            // found no primary, and stayed degraded with no election.
            name: "attaching → healthy → retrying → gathering: the primary a round found (its record says standby) is elected against when it fails",
            setup: || {
                let mut s = standby_2_with_nodes(stale_primary_record);
                // Its own record names no upstream: repmgr promotes such a
                // node only with always_promote (see keys.rs).
                s.s.always_promote = true;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("primary")),
                (0, Went(&["standby/attaching", "standby/healthy", "standby/retrying", "standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "primary"])),
                (0, NotSaw("a re-attach", |a| logged(a, "re-attach"))),
            ],
        },
        Case {
            name: "attaching: no primary anywhere, it keeps looking",
            setup: || {
                let mut s = standby_2_with_nodes(|n| {
                    n[0].active = false;
                    n[1].upstream = None;
                });
                s.world.cut(1);
                s
            },
            beats: vec![
                (5_000, Went(&["standby/attaching"])),
                (1_000, Saw("a cluster round", |a| matches!(a, Action::GatherCluster { .. }))),
            ],
        },
        Case {
            name: "healthy → retrying → healthy: the primary answers before the last attempt",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_fails)),
                (2_000, Reach("standby/retrying")),
                (0, Set(|w| {
                    w.checks.insert(1, Some(false));
                })),
                (3_000, Went(&["standby/healthy", "standby/retrying", "standby/healthy"])),
                (0, Saw("the reconnect event", |a| event(a, "repmgrd_upstream_reconnect"))),
                (0, NotSaw("an election round", |a| {
                    matches!(a, Action::GatherCluster { down: Some(1) })
                })),
            ],
        },
        Case {
            name: "healthy → retrying: the watched connection closed; the primary answers the next attempt",
            setup: standby_2,
            beats: vec![
                (12_000, Feed(Input::UpstreamClosed { node: 1 })),
                (0, Saw("a check sent at once", |a| matches!(a, Action::CheckUpstream { node: 1, .. }))),
                (500, Went(&["standby/healthy", "standby/retrying", "standby/healthy"])),
            ],
        },
        Case {
            name: "healthy → retrying → gathering: the primary answers, but in recovery (demoted)",
            setup: standby_2,
            beats: vec![
                (12_000, Set(|w| {
                    w.checks.insert(1, Some(true));
                    w.obs(1).in_recovery = Some(true);
                })),
                (5_000, Reach("standby/gathering")),
                (0, Saw("why", |a| logged(a, "runs in recovery"))),
            ],
        },
        Case {
            name: "waiting → following → healthy: the winner shows up in a round",
            setup: loser,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Went(WAITING)),
                (1_000, Is("standby/waiting")),
                (0, Set(node_3_promoted)),
                (1_000, Went(&["standby/following", "standby/healthy"])),
                (0, Saw("follow node 3", |a| matches!(a, Action::Follow { target: 3 }))),
                (0, Saw("the follow event", |a| event(a, "repmgrd_failover_follow"))),
            ],
        },
        Case {
            name: "waiting → following: the winner's first heartbeat as primary",
            setup: || {
                let mut s = loser();
                s.world.lag.job = 300;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Set(node_3_promoted)),
                (0, Feed(heartbeat_from_3(2))),
                (0, Is("standby/following")),
                (1_000, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting", "standby/following", "standby/healthy"])),
            ],
        },
        Case {
            name: "waiting: a heartbeat of an older term is not followed",
            setup: loser,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Feed(heartbeat_from_3(0))),
                (0, Is("standby/waiting")),
                (0, NotSaw("a follow", followed)),
            ],
        },
        Case {
            name: "waiting → healthy: the old primary reappears",
            setup: loser,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Set(primary_1_back)),
                (1_000, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting", "standby/healthy"])),
                (0, Saw("the aborted failover", |a| event(a, "repmgrd_failover_aborted"))),
                (0, NotSaw("a follow", followed)),
            ],
        },
        Case {
            name: "waiting → degraded → re-election: nobody was promoted within primary_notification_timeout",
            setup: loser,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Went(WAITING)),
                // 3 s of waiting; meanwhile node 3 fell behind (say, its
                // WAL was replaced), so it will not promote itself.
                (2_800, Is("standby/waiting")),
                (0, Set(|w| w.obs(3).lsn = 50)),
                (500, Went(&["standby/degraded"])),
                (0, Saw("why", |a| logged(a, "no new primary appeared within 3 seconds"))),
                // The re-run 5 s later: node 3 now lags; node 2 wins.
                (4_500, Went(&[])),
                (1_000, Reach("primary")),
                (0, Went(&["standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "primary"])),
            ],
        },
        Case {
            name: "following → degraded → following → healthy: the first follow failed",
            setup: || {
                let mut s = loser();
                s.world.follow = Err("pg_rewind failed".into());
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Set(node_3_promoted)),
                (1_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting", "standby/following", "standby/degraded"])),
                (0, Set(|w| w.follow = Ok(()))),
                // The degraded state's next round finds node 3 again.
                (1_500, Went(&["standby/following", "standby/healthy"])),
            ],
        },
        Case {
            name: "following → healthy: the follow failed but the WAL receiver streams from node 3",
            setup: || {
                let mut s = loser();
                s.world.follow = Err("restart timed out".into());
                s.world.streams_anyway = true;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Set(node_3_promoted)),
                (1_000, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting", "standby/following", "standby/healthy"])),
                (0, Saw("why", |a| logged(a, "streams from node"))),
            ],
        },
        Case {
            name: "waiting → degraded: paused, so it does not follow the winner",
            setup: loser,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Set(|w| w.local.as_mut().expect("local").paused = true)),
                (1_000, Set(node_3_promoted)),
                (1_000, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting", "standby/degraded"])),
                (0, NotSaw("a follow", followed)),
                (0, Saw("why", |a| logged(a, "paused; not following"))),
            ],
        },
        Case {
            name: "degraded → healthy: the lost primary answers its check again",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(|w| {
                    w.checks.insert(1, Some(false));
                })),
                (1_500, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded", "standby/healthy"])),
                (0, Saw("reconnected", |a| logged(a, "reconnected to upstream node"))),
            ],
        },
        Case {
            name: "degraded: the lost primary answers again after a newer primary was heard: no reconnect to it",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted_diverged)),
                (0, Feed(heartbeat_from_3(2))),
                (1_000, Reach("standby/degraded")),
                // node 1, superseded, runs again as a primary (no repmgrd).
                (0, Set(|w| {
                    w.checks.insert(1, Some(false));
                })),
                (3_000, NotSaw("a reconnect", |a| logged(a, "reconnected to upstream node"))),
            ],
        },
        Case {
            name: "degraded → following: a round shows a new primary",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (1_000, Set(node_3_promoted)),
                (1_500, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded", "standby/following", "standby/healthy"])),
                (0, Saw("found", |a| logged(a, "found new primary"))),
            ],
        },
        Case {
            name: "degraded → following: the new primary's heartbeat",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted)),
                (0, Feed(heartbeat_from_3(2))),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded", "standby/following", "standby/healthy"])),
            ],
        },
        Case {
            name: "degraded: the election is re-run every election_rerun_interval while it cannot conclude",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (4_800, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                (400, Went(&["standby/gathering", "standby/degraded"])),
                (4_700, Went(&[])),
                (400, Went(&["standby/gathering", "standby/degraded"])),
                (0, NotSaw("a vote request", |a| matches!(a, Action::RequestVotes { .. }))),
            ],
        },
        Case {
            // Before the core, a degraded re-run promoted after one failed
            // ping: now the lost primary must have been unreachable for the
            // whole failure window (2 s here), counted from its last answer.
            name: "degraded: a re-run waits until the lost primary has not answered for a whole failure window (not one failed look)",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                // node 1 answers the cluster rounds (not the upstream check)
                // until 0.2 s before the re-run is due (at 20 s).
                (3_500, Set(|w| *w.obs(1) = primary_obs(1, 1))),
                (1_300, Set(primary_fails)),
                (1_700, Went(&[])),
                (0, NotSaw("a vote request", |a| matches!(a, Action::RequestVotes { .. }))),
                // The next re-run, 5 s later, finds it gone long enough.
                (4_000, Went(&["standby/gathering", "standby/degraded"])),
            ],
        },
        Case {
            name: "degraded → exit: degraded_monitoring_timeout",
            setup: || {
                let mut s = standby_2();
                s.s.degraded_monitoring_timeout_ms = Some(4_000);
                s
            },
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (3_500, NotSaw("an exit", |a| matches!(a, Action::Exit))),
                (1_000, Saw("an exit", |a| matches!(a, Action::Exit))),
            ],
        },
        Case {
            name: "retrying → reattaching → following → healthy: a cascaded standby's upstream standby died",
            setup: cascaded_3,
            beats: vec![
                (3_000, Set(|w| w.cut(2))),
                (5_000, Reach("standby/healthy")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/reattaching", "standby/following", "standby/healthy"])),
                (0, Saw("follow the primary", |a| matches!(a, Action::Follow { target: 1 }))),
                (0, Saw("pings of a standby upstream", |a| {
                    matches!(a, Action::CheckUpstream { node: 2, ping: true, .. })
                })),
                (0, NotSaw("an election", |a| matches!(a, Action::RequestVotes { .. }))),
            ],
        },
        Case {
            name: "reattaching → degraded → following: no primary to re-attach to, until one answers",
            setup: cascaded_3,
            beats: vec![
                (3_000, Set(|w| {
                    w.cut(2);
                    w.cut(1);
                })),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/reattaching", "standby/degraded"])),
                (0, Saw("why", |a| logged(a, "no primary found to re-attach to"))),
                (2_000, Set(|w| *w.obs(1) = primary_obs(1, 1))),
                (1_500, Went(&["standby/following", "standby/healthy"])),
            ],
        },
        Case {
            name: "retrying → degraded: a cascaded standby with failover=manual does not re-attach",
            setup: || Setup {
                s: settings(3, Failover::Manual),
                ..cascaded_3()
            },
            beats: vec![
                (3_000, Set(|w| w.cut(2))),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/degraded"])),
                (0, NotSaw("a follow", followed)),
            ],
        },
        Case {
            name: "standby → primary: the local server was promoted by hand",
            setup: standby_2,
            beats: vec![
                (3_000, Set(|w| w.local.as_mut().expect("local").in_recovery = false)),
                (1_500, Went(&["standby/healthy", "primary"])),
            ],
        },
        Case {
            name: "a standby whose local server goes away and comes back is marked inactive, then active",
            setup: standby_2,
            beats: vec![
                (3_000, Set(|w| w.local = None)),
                (1_500, Saw("inactive", |a| matches!(a, Action::SetActive { active: false }))),
                (0, Saw("the failure event", |a| event(a, "standby_failure"))),
                (0, Set(|w| w.local = Some(facts(true, three(true, true))))),
                (1_500, Saw("active", |a| matches!(a, Action::SetActive { active: true }))),
                (0, Saw("the recovery event", |a| event(a, "standby_recovery"))),
                (0, Went(&["standby/healthy"])),
            ],
        },
    ]);
}

fn ended(a: &Action) -> bool {
    matches!(a, Action::EndStream { .. })
}

/// The local WAL receiver streams from `from` (fresh), the local copy of
/// the metadata carrying `term`.
fn streams_from(w: &mut World, from: NodeId, term: Term) {
    let f = w.local.as_mut().expect("local");
    f.receiver = Some(Receiver {
        sender: Some(from),
        streaming: true,
        last_msg_age: 0,
    });
    f.voting_term = term;
}

#[test]
fn superseded_streams() {
    run_table(vec![
        Case {
            name: "degraded, the follow failed: the receiver streams from node 1, superseded in term 2: the stream is ended, with an event naming the rejoin",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted_diverged)),
                (0, Feed(heartbeat_from_3(2))),
                (1_000, Reach("standby/degraded")),
                // node 1 resumes without repmgrd; node 2's server, still
                // pointed at it, streams from it again (term 1).
                (0, Set(|w| {
                    w.checks.insert(1, Some(false));
                    streams_from(w, 1, 1);
                })),
                // Not before the receiver window (3 s): a term row may
                // still be on its way.
                (2_500, NotSaw("an early end", ended)),
                (2_000, Saw("the stream ended", |a| {
                    matches!(a, Action::EndStream { from: 1, term: 2 })
                })),
                (0, Saw("the event", |a| event(a, "repmgrd_superseded_stream_ended"))),
                (0, Saw("what to run", |a| logged(a, "repmgr node rejoin --force-rewind"))),
                // Ended (the receiver is gone): nothing more.
                (3_000, NotSaw("another end", ended)),
            ],
        },
        Case {
            name: "a receiver that comes back on the superseded node is ended again",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted_diverged)),
                (0, Feed(heartbeat_from_3(2))),
                (1_000, Set(|w| streams_from(w, 1, 1))),
                (5_000, Saw("the stream ended", ended)),
                (0, Set(|w| streams_from(w, 1, 1))),
                (5_000, Saw("ended again", ended)),
            ],
        },
        Case {
            name: "no end: the receiver streams from the primary of the known term",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted)),
                (0, Feed(heartbeat_from_3(2))),
                // Followed; the term row is not replayed yet.
                (0, Set(|w| streams_from(w, 3, 1))),
                (10_000, NotSaw("an end", ended)),
                (0, Is("standby/healthy")),
            ],
        },
        Case {
            name: "no end: a cascading upstream standby of the current term",
            setup: || {
                let mut s = cascaded_3();
                s.durable = Persisted {
                    known_term: 2,
                    known_primary: Some(1),
                    ..heard_primary_1()
                };
                // node 3 streams from standby 2, whose copy has term 2.
                streams_from(&mut s.world, 2, 2);
                s
            },
            beats: vec![(10_000, NotSaw("an end", ended)), (0, Is("standby/healthy"))],
        },
        Case {
            name: "switched off (the simulation's self-test only): the stream from the superseded node goes on",
            setup: || {
                let mut s = standby_2();
                s.s.safety.superseded_stream = false;
                s
            },
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (0, Set(node_3_promoted_diverged)),
                (0, Feed(heartbeat_from_3(2))),
                (1_000, Set(|w| streams_from(w, 1, 1))),
                (10_000, NotSaw("an end", ended)),
            ],
        },
    ]);
}
