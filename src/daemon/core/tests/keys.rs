//! repmgr 5's `failover_delay`, `promote_delay` and `always_promote`, one
//! row per transition: a delay holds the election (or the votes) back, the
//! failed primary answering during it cancels it, and a winner whose own
//! record names no upstream promotes only with `always_promote`.

use super::world::{Beat::*, *};
use super::*;

fn promoted(a: &Action) -> bool {
    matches!(a, Action::Promote { .. })
}

fn gathered(a: &Action) -> bool {
    matches!(a, Action::GatherCluster { .. })
}

fn requested_votes(a: &Action) -> bool {
    matches!(a, Action::RequestVotes { .. })
}

/// Node 2 (the winner) with `failover_delay` and `promote_delay` in ms.
fn delayed(failover_ms: u64, promote_ms: u64) -> Setup {
    let mut s = standby_2();
    s.s.failover_delay_ms = failover_ms;
    s.s.promote_delay_ms = promote_ms;
    s
}

/// The primary fails at 12 s; node 2's 3 attempts, 1 s apart, end at
/// 15 s (the third attempt fails at once).
const DECLARED_FAILED_AT: u64 = 15_000;

#[test]
fn failover_delay_transitions() {
    run_table(vec![
        Case {
            name: "retrying → failover-delay → gathering → … → primary: no round before the delay has passed",
            setup: || delayed(3_000, 0),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/failover-delay")),
                (0, Saw("the delay logged", |a| logged(a, "waiting 3 seconds (\"failover_delay\") before starting the election"))),
                // 2.9 s later: still waiting, nothing asked of the cluster.
                (2_900, Is("standby/failover-delay")),
                (0, NotSaw("a cluster round", gathered)),
                (0, NotSaw("a vote request", requested_votes)),
                (5_000, Reach("primary")),
                (0, Went(&[
                    "standby/healthy",
                    "standby/retrying",
                    "standby/failover-delay",
                    "standby/gathering",
                    "standby/pre-voting",
                    "standby/voting",
                    "standby/confirming",
                    "standby/promoting",
                    "primary",
                ])),
            ],
        },
        Case {
            name: "failover-delay → healthy: the primary answers during the delay, no election",
            setup: || delayed(3_000, 0),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/failover-delay")),
                (1_000, Set(primary_1_back)),
                (2_000, Is("standby/healthy")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/failover-delay", "standby/healthy"])),
                (0, Saw("the cancellation", |a| logged(a, "has recovered during the delay; failover cancelled"))),
                (0, Saw("the reconnect event", |a| event(a, "repmgrd_upstream_reconnect"))),
                (5_000, Is("standby/healthy")),
                (0, NotSaw("a cluster round", gathered)),
                (0, NotSaw("a promotion", promoted)),
            ],
        },
        Case {
            name: "failover-delay: an answer as a standby (demoted) does not cancel it",
            setup: || delayed(3_000, 0),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/failover-delay")),
                (0, Set(|w| {
                    w.checks.insert(1, Some(true));
                })),
                (2_900, Is("standby/failover-delay")),
                (200, Reach("standby/gathering")),
            ],
        },
    ]);
}

#[test]
fn promote_delay_transitions() {
    run_table(vec![
        Case {
            name: "gathering → promote-delay → gathering → … → primary: no votes, no promotion before the delay",
            setup: || delayed(0, 3_000),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/promote-delay")),
                (0, Saw("the delay logged", |a| logged(a, "waiting 3 seconds (\"promote_delay\") before promoting"))),
                (2_900, Is("standby/promote-delay")),
                (0, NotSaw("a vote request", requested_votes)),
                (0, NotSaw("a promotion", promoted)),
                (5_000, Reach("primary")),
                (0, Went(&[
                    "standby/healthy",
                    "standby/retrying",
                    "standby/gathering",
                    "standby/promote-delay",
                    "standby/gathering",
                    "standby/pre-voting",
                    "standby/voting",
                    "standby/confirming",
                    "standby/promoting",
                    "primary",
                ])),
            ],
        },
        Case {
            name: "promote-delay → healthy: the primary answers during the delay, no votes asked",
            setup: || delayed(0, 3_000),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/promote-delay")),
                (1_000, Set(primary_1_back)),
                (2_000, Is("standby/healthy")),
                (0, Went(&["standby/healthy", "standby/retrying", "standby/gathering", "standby/promote-delay", "standby/healthy"])),
                (5_000, Is("standby/healthy")),
                (0, NotSaw("a vote request", requested_votes)),
                (0, NotSaw("a promotion", promoted)),
            ],
        },
        Case {
            // The decision is taken again after the delay: node 3, with more
            // WAL now, is the candidate.
            name: "promote-delay → gathering → waiting: a better candidate appeared during the delay",
            setup: || delayed(0, 3_000),
            beats: vec![
                (12_000, Set(primary_fails)),
                (DECLARED_FAILED_AT - 12_000, Reach("standby/promote-delay")),
                (0, Set(|w| w.obs(3).lsn = 500)),
                (4_000, Reach("standby/waiting")),
                (0, NotSaw("a vote request", requested_votes)),
            ],
        },
        Case {
            name: "both delays: the election waits for one, the votes for the other",
            setup: || delayed(2_000, 2_000),
            beats: vec![
                (12_000, Set(primary_fails)),
                (8_000, Reach("primary")),
                (0, Went(&[
                    "standby/healthy",
                    "standby/retrying",
                    "standby/failover-delay",
                    "standby/gathering",
                    "standby/promote-delay",
                    "standby/gathering",
                    "standby/pre-voting",
                    "standby/voting",
                    "standby/confirming",
                    "standby/promoting",
                    "primary",
                ])),
            ],
        },
    ]);
}

/// The promotion comes no sooner than both delays after the primary was
/// declared failed (the clock jumps to each wake-up, as the driver's).
#[test]
fn delays_bound_the_promotion_from_below() {
    let mut r = Run::new(delayed(3_000, 2_000));
    r.run_woken(12_000, None);
    primary_fails(&mut r.world);
    assert!(r.run_woken(40_000, Some("primary")), "{}", r.history());
    let at = r
        .log
        .iter()
        .find(|(_, a)| promoted(a))
        .map(|(t, _)| *t)
        .expect("a promotion");
    assert!(
        at >= DECLARED_FAILED_AT + 5_000,
        "promoted at {at} ms\n{}",
        r.history()
    );
    assert!(at < DECLARED_FAILED_AT + 8_000, "promoted at {at} ms");
}

#[test]
fn always_promote_transitions() {
    /// Node 2's own record names no upstream (stale metadata).
    fn stale() -> Setup {
        standby_2_with_nodes(|n| n[1].upstream = None)
    }
    run_table(vec![
        Case {
            name: "gathering → degraded: the winner's record names no upstream, always_promote off",
            setup: stale,
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("standby/degraded")),
                (
                    0,
                    Saw("repmgr's refusal", |a| {
                        logged(a, "does not have its upstream_node_id set, not promoting")
                    }),
                ),
                (
                    0,
                    Saw("the promote error event", |a| {
                        event(a, "repmgrd_promote_error")
                    }),
                ),
                (0, NotSaw("a vote request", requested_votes)),
                (0, NotSaw("a promotion", promoted)),
            ],
        },
        Case {
            name: "gathering → … → primary: the same with always_promote on, and said so",
            setup: || {
                let mut s = stale();
                s.s.always_promote = true;
                s
            },
            beats: vec![
                (12_000, Set(primary_fails)),
                (5_000, Reach("primary")),
                (
                    0,
                    Saw("the warning", |a| {
                        logged(
                            a,
                            "does not have its upstream_node_id set, promoting anyway",
                        )
                    }),
                ),
            ],
        },
        Case {
            // always_promote only skips repmgr's metadata check: the votes
            // are still needed.
            name: "always_promote on, no quorum: no promotion",
            setup: || {
                let mut s = stale();
                s.s.always_promote = true;
                s
            },
            beats: vec![
                (12_000, Set(primary_and_3_fail)),
                (5_000, Reach("standby/degraded")),
                (10_000, NotSaw("a promotion", promoted)),
            ],
        },
    ]);
}
