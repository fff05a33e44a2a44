//! A standby's election, phase by phase (Gathering, pre-vote, vote,
//! Confirming, Promoting): one table, one row per transition, driven
//! through `Core::step` by the scripted world.

use super::world::{Beat::*, *};
use super::*;

fn requested_votes(a: &Action) -> bool {
    matches!(a, Action::RequestVotes { .. })
}

fn promoted(a: &Action) -> bool {
    matches!(a, Action::Promote { .. })
}

/// The whole way from a healthy standby to the primary, every step of the
/// election entered once.
const WON: &[&str] = &[
    "standby/healthy",
    "standby/retrying",
    "standby/gathering",
    "standby/pre-voting",
    "standby/voting",
    "standby/confirming",
    "standby/promoting",
    "primary",
];

#[test]
fn election_transitions() {
    run_table(vec![
        Case {
            name: "gathering → pre-voting → voting → confirming → promoting → primary",
            setup: standby_2,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("primary")),
                (0, Went(WON)),
                (0, Saw("the promotion, in term 2", |a| {
                    matches!(a, Action::Promote { term: 2, failed: 1, .. })
                })),
                (0, Saw("the failover event", |a| event(a, "repmgrd_failover_promote"))),
                // The new primary renews its lease with node 3: no fence.
                (5_000, Is("primary")),
                (0, NotSaw("a fence", |a| matches!(a, Action::Fence { .. }))),
            ],
        },
        Case {
            // Seen on a real server: pg_promote returned, the next read of
            // the local server found it out of recovery before the job
            // reported, and the node fenced itself as superseded by its
            // own promotion.
            name: "promoting → primary when the server leaves recovery before the promotion reports",
            setup: || {
                let mut s = standby_2();
                s.world.promote_leaves_recovery_early = true;
                s.world.lag.job = 2_500;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (8_000, Reach("primary")),
                (0, Went(WON)),
                (0, Saw("the failover event", |a| event(a, "repmgrd_failover_promote"))),
                (5_000, Is("primary")),
                (0, Saw("heartbeats in the term it won", |a| {
                    matches!(a, Action::SendHeartbeats { term: 2, .. })
                })),
                (0, NotSaw("a fence", |a| matches!(a, Action::Fence { .. }))),
            ],
        },
        Case {
            name: "gathering → waiting: node 3 has more WAL",
            setup: || {
                let mut s = standby_2();
                s.world.obs(3).lsn = 500;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/waiting")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/waiting"])),
                (0, NotSaw("a vote request", requested_votes)),
            ],
        },
        Case {
            name: "gathering → following → healthy: node 3 already runs as the new primary",
            setup: standby_2,
            beats: vec![
                (12_000, Set(|w| {
                    primary_fails(w);
                    node_3_promoted(w);
                })),
                (5_000, Reach("standby/healthy")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/following", "standby/healthy"])),
                (0, Saw("follow node 3", |a| matches!(a, Action::Follow { target: 3 }))),
                (0, NotSaw("a vote request", requested_votes)),
                // Node 3 is the upstream now, checked as a primary.
                (2_000, Saw("a check of node 3", |a| {
                    matches!(a, Action::CheckUpstream { node: 3, ping: false, .. })
                })),
            ],
        },
        Case {
            name: "gathering → degraded: 1 of 3 voters visible (no quorum), re-run later",
            setup: standby_2,
            beats: vec![
                (12_000, Set(|w| {
                    primary_fails(w);
                    w.cut(3);
                })),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                (0, Saw("failover cancelled", |a| logged(a, "failover cancelled"))),
                // Node 3 back: the re-run (election_rerun_interval, 5 s)
                // wins.
                (0, Set(|w| {
                    *w.obs(3) = standby_obs(3, 50);
                    w.grants(3, 2_000);
                })),
                (4_500, Is("standby/degraded")),
                (2_000, Reach("primary")),
                (0, Went(&["standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "primary"])),
            ],
        },
        Case {
            name: "gathering → degraded for good: failover=manual",
            setup: || Setup {
                s: settings(2, Failover::Manual),
                ..standby_2()
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                (0, Saw("the manual-failover event", |a| event(a, "standby_disconnect_manual"))),
                (30_000, Went(&[])),
                (0, NotSaw("a vote request", requested_votes)),
            ],
        },
        Case {
            name: "gathering → degraded: the winner never heard the primary say it fences",
            setup: || Setup {
                durable: Persisted::default(),
                ..standby_2()
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                (0, Saw("why", |a| logged(a, "never heard primary"))),
                (0, NotSaw("a vote request", requested_votes)),
            ],
        },
        Case {
            name: "gathering → degraded: its own vote is refused during its start-up quarantine, re-run when that ends",
            setup: standby_2,
            // Cut at 3 s: elected at about 5 s, 5 s before the
            // quarantine ends.
            beats: vec![
                (3_000, Set(primary_fails)),
                (3_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/degraded"])),
                (0, Saw("why", |a| logged(a, "cannot vote for itself"))),
                (0, NotSaw("a vote request", requested_votes)),
                (7_000, Reach("primary")),
                (0, Went(&["standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "primary"])),
            ],
        },
        Case {
            name: "pre-voting → degraded: node 3 refuses (it promised the primary), re-run after election_rerun_interval",
            setup: || {
                let mut s = standby_2();
                let refused = VoteReply::Refused(Refusal::LeaseHeld { left_ms: 30_000 });
                s.world.pre_votes.insert(3, refused);
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/pre-voting", "standby/degraded"])),
                (0, Saw("why", |a| logged(a, "would grant term 2"))),
                (0, NotSaw("a real vote request", |a| {
                    matches!(a, Action::RequestVotes { request, .. } if !request.pre)
                })),
                (4_500, Went(&[])),
                (0, Set(|w| w.grants(3, 2_000))),
                (1_500, Reach("primary")),
                (0, Went(&["standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "primary"])),
            ],
        },
        Case {
            name: "pre-voting → degraded → re-run as soon as the promise that refused it runs out",
            setup: || {
                let mut s = standby_2();
                let refused = VoteReply::Refused(Refusal::LeaseHeld { left_ms: 1_500 });
                s.world.pre_votes.insert(3, refused);
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Set(|w| w.grants(3, 2_000))),
                // 1.5 s, 1 % and 100 ms: well before the 5 s interval.
                (1_500, Is("standby/degraded")),
                (500, Reach("primary")),
            ],
        },
        Case {
            name: "voting → degraded: the term was granted to node 3 meanwhile; the re-run claims a higher one",
            setup: || {
                let mut s = standby_2();
                let taken = Refusal::TermTaken {
                    granted: 4,
                    to: Some(3),
                };
                s.world.votes.insert(3, VoteReply::Refused(taken));
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/pre-voting", "standby/voting", "standby/degraded"])),
                (0, Saw("why", |a| logged(a, "could not claim the term"))),
                (0, NotSaw("a promotion", promoted)),
                (0, Set(|w| w.grants(3, 2_000))),
                (6_000, Reach("primary")),
                (0, Saw("term 5 asked for", |a| {
                    matches!(a, Action::RequestVotes { request, .. } if request.term == 5 && !request.pre)
                })),
            ],
        },
        Case {
            name: "voting: an answer for another term is not counted",
            setup: || {
                let mut s = standby_2();
                s.world.lag.votes = 400;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/voting")),
                (0, Feed(Input::Votes {
                    term: 9,
                    replies: vec![(3, VoteReply::Granted { promise_ms: 2_000 })],
                })),
                (0, Is("standby/voting")),
                (2_000, Reach("primary")),
            ],
        },
        Case {
            name: "confirming → degraded: the old primary answers again and still takes writes",
            setup: || {
                let mut s = standby_2();
                s.world.lag.gather = 300;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/confirming")),
                (0, Set(|w| {
                    *w.obs(1) = primary_obs(1, 1);
                    w.checks.insert(1, Some(false));
                })),
                (3_000, Saw("the aborted failover", |a| event(a, "repmgrd_failover_aborted"))),
                (0, NotSaw("a promotion", promoted)),
                // Degraded, then the old primary's check answers: healthy.
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/degraded", "standby/healthy"])),
            ],
        },
        Case {
            name: "confirming → promoting: the old primary answered again but fenced itself meanwhile",
            setup: || {
                let mut s = standby_2();
                s.world.lag.gather = 300;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/confirming")),
                (0, Set(|w| *w.obs(1) = primary_obs(1, 1))),
                (400, Is("standby/confirming")),
                (0, Set(|w| w.obs(1).fenced = true)),
                (1_000, Reach("primary")),
                (0, Went(WON)),
            ],
        },
        Case {
            name: "confirming → degraded: the votes run out before the round comes back",
            setup: || {
                let mut s = standby_2();
                s.world.lag.gather = 1_500;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (8_000, Reach("standby/confirming")),
                // Nobody renews the candidate's lease.
                (0, Set(|w| w.hb.clear())),
                (3_000, Saw("why", |a| logged(a, "votes no longer hold"))),
                (0, NotSaw("a promotion", promoted)),
                (0, Is("standby/degraded")),
            ],
        },
        Case {
            name: "confirming → degraded: a voter says a higher term was granted meanwhile",
            setup: || {
                let mut s = standby_2();
                s.world.lag.gather = 800;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (8_000, Reach("standby/confirming")),
                (0, Set(|w| {
                    let r = HeartbeatReply::Superseded { term: 5, by: Some(3) };
                    w.hb.insert(3, r);
                })),
                (2_000, Saw("why", |a| logged(a, "term 5 was granted to node 3"))),
                (0, NotSaw("a promotion", promoted)),
                (0, Is("standby/degraded")),
            ],
        },
        Case {
            name: "confirming → degraded: a standby with more WAL became visible",
            setup: || {
                let mut s = standby_2();
                s.world.lag.gather = 300;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/confirming")),
                (0, Set(|w| w.obs(3).lsn = 500)),
                (1_000, Saw("why", |a| logged(a, "has WAL this node lacks"))),
                (0, NotSaw("a promotion", promoted)),
                (0, Is("standby/degraded")),
            ],
        },
        Case {
            name: "confirming → degraded: repmgrd was paused meanwhile",
            setup: || {
                let mut s = standby_2();
                // Longer than a monitoring interval: the local read in between
                // sees the pause.
                s.world.lag.gather = 1_100;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/confirming")),
                (0, Set(|w| w.local.as_mut().expect("local").paused = true)),
                (2_000, Saw("why", |a| logged(a, "paused; not promoting"))),
                (0, NotSaw("a promotion", promoted)),
                (0, Is("standby/degraded")),
            ],
        },
        Case {
            name: "promoting → degraded: the promotion failed",
            setup: || {
                let mut s = standby_2();
                s.world.promote = Err("pg_promote() timed out".into());
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/pre-voting", "standby/voting", "standby/confirming", "standby/promoting", "standby/degraded"])),
                (0, Saw("the promote-error event", |a| event(a, "repmgrd_promote_error"))),
            ],
        },
        Case {
            name: "promoting → primary → superseded: a higher term granted during the promotion",
            setup: || {
                let mut s = standby_2();
                s.world.lag.job = 1_000;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/promoting")),
                (0, Set(|w| {
                    let r = HeartbeatReply::Superseded { term: 5, by: Some(3) };
                    w.hb.insert(3, r);
                })),
                // The promotion under way completes; the new primary's
                // first heartbeat learns of term 5 and demotes it.
                (3_000, Reach("primary/superseded+demoted")),
                (0, Saw("demoted towards node 3", |a| {
                    matches!(a, Action::Fence { how: FenceHow::Demote { to: Some(3) } })
                })),
            ],
        },
    ]);
}

#[test]
fn a_candidate_woken_only_when_it_asks_renews_its_lease_while_it_confirms() {
    // The confirming round takes 1.8 s (a node that does not answer costs
    // it its deadline) and node 3 promised 2 s: the candidate must renew
    // those promises every 500 ms, waking for it, or they run out before
    // the round ends ("the votes no longer hold").
    let mut setup = standby_2();
    setup.world.lag.gather = 1_800;
    let mut r = Run::new(setup);
    r.run_woken(12_000, None);
    primary_fails(&mut r.world);
    let reached = r.run_woken(30_000, Some("primary"));
    let at = |phase: &str| r.phases.iter().find(|(_, p)| p == phase).map(|(t, _)| *t);
    let (Some(from), Some(to)) = (at("standby/confirming"), at("standby/promoting")) else {
        panic!("no promotion:\n{}\n{}", r.history(), r.logs());
    };
    let beats: Vec<u64> = r
        .log
        .iter()
        .filter(|(t, a)| (from..=to).contains(t) && matches!(a, Action::SendHeartbeats { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        beats.windows(2).all(|w| w[1] - w[0] <= 500)
            && to - beats.last().copied().unwrap_or(0) <= 500,
        "renewals at {beats:?}, confirming {from}..{to} ms"
    );
    assert!(reached, "{}\n{}", r.history(), r.logs());
}

#[test]
fn a_candidate_measures_its_votes_by_what_its_voters_promise() {
    // This node's own settings promise 6 s (a 1.5 s stop margin); node 3
    // promises 2 s, so the primary it becomes stops 1 s before its lease
    // ends. A confirming round of 1.95 s leaves 1.43 s on the lease
    // renewed every 500 ms: enough by the 1 s margin, never by 1.5 s.
    let mut setup = standby_2();
    setup.s.reconnect_attempts = 7;
    setup.world.lag.gather = 1_950;
    let mut r = Run::new(setup);
    r.run_woken(12_000, None);
    primary_fails(&mut r.world);
    assert!(
        r.run_woken(40_000, Some("primary")),
        "{}\n{}",
        r.history(),
        r.logs()
    );
}
