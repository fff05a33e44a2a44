//! A witness's phases: watching the primary, losing it, following the new
//! one (never an older term's), and its votes; one row per transition.

use super::world::{Beat::*, *};
use super::*;

/// Node 4, the witness of primary 1 with standbys 2 and 3.
fn witness_4() -> Setup {
    let mut nodes = three(true, true);
    nodes.push(node(4, NodeKind::Witness, 0, false));
    let mut w = World::new(facts(false, nodes));
    w.checks.insert(1, Some(false));
    w.cluster = vec![primary_obs(1, 1), standby_obs(2, 100), standby_obs(3, 100)];
    Setup {
        s: Settings {
            is_witness: true,
            ..settings(4, Failover::Automatic)
        },
        durable: Persisted::default(),
        world: w,
    }
}

fn node_2_promoted(w: &mut World) {
    w.cut(1);
    *w.obs(2) = primary_obs(2, 2);
    w.checks.insert(2, Some(false));
}

fn vote(token: u64, candidate: NodeId) -> Input {
    Input::Peer {
        token,
        request: PeerRequest::Vote(VoteRequest {
            term: 2,
            candidate,
            failed: 1,
            timeline: 1,
            lsn: 100,
            pre: false,
        }),
    }
}

fn heartbeat(from: NodeId, term: Term) -> Input {
    Input::Peer {
        token: 1,
        request: PeerRequest::Heartbeat {
            from,
            term,
            timeline: 1,
            promoted: true,
            fences: true,
        },
    }
}

fn voted(a: &Action, token: u64, f: fn(&VoteReply) -> bool) -> bool {
    matches!(a, Action::Reply { token: t, reply: PeerReply::Vote(r) } if *t == token && f(r))
}

fn promoted_or_followed(a: &Action) -> bool {
    matches!(a, Action::Promote { .. } | Action::Follow { .. })
}

#[test]
fn witness_transitions() {
    run_table(vec![
        Case {
            name: "watching: the primary its record names answers; its copy is synced",
            setup: witness_4,
            beats: vec![
                (3_000, Went(&["witness/watching 1"])),
                (0, Saw("a sync from node 1", |a| {
                    matches!(a, Action::WitnessSync { primary: 1, repoint: false })
                })),
                (0, Saw("its status on node 1", |a| {
                    matches!(a, Action::WriteStatus { upstream: Some(1) })
                })),
            ],
        },
        Case {
            name: "none → watching: its record names no primary, a round finds one",
            setup: || {
                let mut s = witness_4();
                if let Some(f) = &mut s.world.local {
                    f.nodes[3].upstream = None;
                }
                s.world.lag.gather = 500;
                s
            },
            beats: vec![
                (200, Is("witness/none")),
                (1_000, Went(&["witness/none", "witness/watching 1"])),
                (0, Saw("repointed at node 1", |a| {
                    matches!(a, Action::WitnessSync { primary: 1, repoint: true })
                })),
                // The first primary found is no failover.
                (0, NotSaw("a follow event", |a| event(a, "repmgrd_failover_follow"))),
            ],
        },
        Case {
            name: "watching 1 → lost → watching 1: the primary comes back",
            setup: witness_4,
            beats: vec![
                (5_000, Set(|w| w.cut(1))),
                (1_500, Went(&["witness/watching 1", "witness/lost"])),
                (0, Saw("the disconnect event", |a| event(a, "repmgrd_upstream_disconnect"))),
                (3_000, Is("witness/lost")),
                (0, Set(|w| {
                    *w.obs(1) = primary_obs(1, 1);
                    w.checks.insert(1, Some(false));
                })),
                (1_500, Went(&["witness/watching 1"])),
                (0, Saw("the reconnect event", |a| event(a, "repmgrd_upstream_reconnect"))),
            ],
        },
        Case {
            name: "watching 1 → lost: the primary answers in recovery (demoted)",
            setup: witness_4,
            beats: vec![
                (5_000, Set(|w| {
                    w.checks.insert(1, Some(true));
                    w.obs(1).in_recovery = Some(true);
                })),
                (1_500, Went(&["witness/watching 1", "witness/lost"])),
            ],
        },
        Case {
            name: "watching 1 → lost → watching 2: node 2 was promoted; an older term's primary is never followed back",
            setup: witness_4,
            beats: vec![
                (5_000, Set(node_2_promoted)),
                (1_500, Went(&["witness/watching 1", "witness/lost", "witness/watching 2"])),
                (0, Saw("repointed at node 2", |a| {
                    matches!(a, Action::WitnessSync { primary: 2, repoint: true })
                })),
                (0, Saw("the follow event", |a| event(a, "repmgrd_failover_follow"))),
                (0, NotSaw("a promotion or a follow", promoted_or_followed)),
                // Node 2's heartbeat: the witness knows term 2.
                (1_000, Feed(heartbeat(2, 2))),
                // Node 2 goes; node 1 comes back as a writable primary
                // of term 1, superseded.
                (1_000, Set(|w| {
                    w.cut(2);
                    *w.obs(1) = primary_obs(1, 1);
                    w.checks.insert(1, Some(false));
                })),
                (5_000, Went(&["witness/lost"])),
                (0, NotSaw("a sync from node 1", |a| {
                    matches!(a, Action::WitnessSync { primary: 1, .. })
                })),
            ],
        },
        Case {
            name: "votes: refused while it sees the primary, granted once it has not for the failure window, once per term",
            setup: witness_4,
            beats: vec![
                (12_000, Feed(vote(10, 2))),
                (0, Saw("refused: it sees the primary", |a| {
                    voted(a, 10, |r| matches!(r, VoteReply::Refused(Refusal::PrimaryVisible)))
                })),
                (0, Set(|w| w.cut(1))),
                (2_500, Feed(vote(11, 2))),
                (0, Saw("granted", |a| voted(a, 11, |r| matches!(r, VoteReply::Granted { .. })))),
                (0, Saw("the grant written first", |a| {
                    matches!(a, Action::Persist(p) if p.granted_term == 2 && p.granted_to == Some(2))
                })),
                (0, Feed(vote(12, 3))),
                (0, Saw("term 2 taken", |a| {
                    voted(a, 12, |r| matches!(r, VoteReply::Refused(Refusal::TermTaken { granted: 2, to: Some(2) })))
                })),
            ],
        },
        Case {
            name: "votes: refused during its start-up quarantine and while a primary's heartbeat promise holds",
            setup: witness_4,
            beats: vec![
                (0, Set(|w| w.cut(1))),
                (5_000, Feed(vote(20, 2))),
                (0, Saw("refused: quarantine", |a| {
                    voted(a, 20, |r| matches!(r, VoteReply::Refused(Refusal::LeaseHeld { .. })))
                })),
                (7_000, Feed(heartbeat(1, 1))),
                (500, Feed(vote(21, 2))),
                (0, Saw("refused: the promise to node 1", |a| {
                    voted(a, 21, |r| matches!(r, VoteReply::Refused(Refusal::LeaseHeld { .. })))
                })),
            ],
        },
    ]);
}
