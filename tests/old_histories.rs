//! Nodes left behind by an earlier history (issue 11), on real servers:
//!
//! 1. An old primary back after a failover, fenced read-only and inactive
//!    in the metadata, with no repmgrd (the sim's ZombiePrimary): when the
//!    new primary fails too, the standby that loses the election follows
//!    the winner, never the old primary (the core's `NodeObs::may_follow`
//!    and the active check beside it, `Safety::follow_checks`).
//! 2. A standby left on an older timeline with more WAL than the one on
//!    the newest timeline (the sim's OlderFork): when the primary fails,
//!    the newest-timeline standby is promoted (the election's `best` and
//!    the voters' WAL comparison on the newest timeline only,
//!    `Safety::newest_timeline`).
//!
//! The partition tests' [`Checker`] runs beside each (no two nodes
//! acknowledge a write in one round; its writes override the read-only
//! default, as a client can). Nodes run on loopback: no link is cut, only
//! servers and daemons are killed.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::{
    registered_cluster_with, streams_from, wait_all_replayed, wait_replayed, Node,
};
use crate::harness::{holds_for, poll_until, run_checked, write_user_file, Daemon};
use crate::partition::{
    fenced_or_down, is_primary, promotions_logged, tails, wait_heartbeats, Checker,
};
use crate::races::{past_quarantine, writable};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// A killed server is declared failed after (3 − 1) × 1 s.
fn conf(_: i32) -> String {
    "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
        .to_string()
}

/// Appends lines to the node's postgresql.auto.conf (the server stopped).
fn append_auto_conf(n: &Node, lines: &str) {
    let path = n.pg.datadir.join("postgresql.auto.conf");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    write_user_file(&path, &format!("{old}{lines}\n"));
}

/// Standbys streaming from `n`.
fn streaming_standbys(n: &Node) -> Option<String> {
    n.pg.try_query_one_string("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        .ok()
        .flatten()
}

/// The timeline the node's server is on (a standby's from its replay).
fn timeline(n: &Node) -> String {
    n.query(
        "SELECT CASE WHEN pg_is_in_recovery()
                  THEN (SELECT timeline_id FROM pg_control_checkpoint())::text
                  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text
                END",
    )
}

/// 1. Four nodes; node1's repmgrd and then its server are killed (-9):
///    one of node2–node4 is promoted and the others follow it. node1 comes
///    back by hand, as a primary still, with the read-only fence set and no
///    repmgrd (one that died after fencing it): a primary no repmgrd runs,
///    of an old term, inactive in the metadata since the failover. Then the
///    new primary's server is killed: of the two standbys left, one is
///    promoted, and the other must follow it, not node1.
///
/// The loser of an election waits for the winner and meanwhile looks for
/// any primary to follow; node1 (lowest id, answers, not in recovery) is
/// the first it finds. Only skipping inactive, fenced and lower-term nodes
/// keeps it from trying node1. (With that rule switched off the loser
/// tries: only `standby follow`'s own history check, node1's timeline 1
/// being older than its own, then stops it, and it goes on to the winner;
/// a zombie it could attach to would take it.) node1 itself is left out
/// of the [`Checker`]: a fenced primary without its repmgrd accepts the
/// checker's fence-overriding writes by construction (repmgrd's one
/// limit), and is not what this test is about.
#[test]
fn a_fenced_inactive_old_primary_back_after_a_failover_is_never_followed() {
    let nodes = registered_cluster_with(3, conf);
    let n1 = &nodes[0];
    let started = Instant::now();
    let mut daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    wait_heartbeats(n1, nodes.len());
    let managed: Vec<&Node> = nodes[1..].iter().collect();
    let checker = Checker::start(n1, &managed);
    wait_all_replayed(&nodes);
    past_quarantine(started);

    // node1 loses its repmgrd first, so nothing prepares its data directory
    // as a standby: started again, it comes back as a primary.
    daemons[0].signal(Signal::SIGKILL);
    daemons[0].wait_exit(Duration::from_secs(10));
    n1.pg.kill9();
    let mut first = None;
    poll_until(
        Duration::from_secs(60),
        "a standby promoted and the other two streaming from it",
        || {
            first = (1..4).find(|&i| {
                writable(&nodes[i])
                    && (1..4)
                        .filter(|&j| j != i)
                        .all(|j| streams_from(&nodes[i], &nodes[j].pg.name))
            });
            first.is_some()
        },
    );
    let p1 = first.expect("a first new primary after the poll");
    let (new1, left) = (&nodes[p1], (1..4).filter(|&j| j != p1).collect::<Vec<_>>());
    poll_until(
        Duration::from_secs(30),
        "node1 inactive in the new primary's metadata",
        || {
            new1.pg
                .try_query_one_string("SELECT active::text FROM repmgr.nodes WHERE node_id = 1")
                .ok()
                .flatten()
                .as_deref()
                == Some("false")
        },
    );

    // The zombie: node1 started by hand with the read-only fence its
    // repmgrd would have left, no repmgrd to demote it.
    append_auto_conf(n1, "default_transaction_read_only = on");
    n1.pg.start();
    assert!(
        is_primary(n1) && fenced_or_down(n1),
        "node1 did not come back as a fenced primary"
    );

    new1.pg.kill9();
    let mut second = None;
    poll_until(
        Duration::from_secs(60),
        "one of the two standbys left promoted, the other streaming from it",
        || {
            if streaming_standbys(n1).is_some_and(|c| c != "0") {
                panic!(
                    "a standby streams from the fenced, inactive old primary node1\n{}",
                    tails(&daemons)
                );
            }
            second = left.iter().copied().find(|&i| {
                writable(&nodes[i])
                    && left
                        .iter()
                        .filter(|&&j| j != i)
                        .all(|&j| streams_from(&nodes[i], &nodes[j].pg.name))
            });
            second.is_some()
        },
    );
    let w = second.expect("a second new primary after the poll");
    let l = left.iter().copied().find(|&j| j != w).expect("a loser");
    let (winner, loser) = (&nodes[w], &nodes[l]);
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || {
        writable(winner)
            && streams_from(winner, &loser.pg.name)
            && streaming_standbys(n1).as_deref() == Some("0")
    }) {
        panic!(
            "after the second failover the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    for d in &daemons {
        let out = d.output();
        assert!(
            !out.contains("new primary \"node1\""),
            "{} tried to follow the old primary node1\n{}",
            d.name,
            d.output_tail(40)
        );
    }
    // node1 is as it was left: a fenced primary, nobody's upstream.
    assert!(is_primary(n1) && fenced_or_down(n1));
    let promotions = promotions_logged(&daemons);
    assert_eq!(
        promotions.len(),
        2,
        "promotions: {promotions:?}\n{}",
        tails(&daemons)
    );
    checker.finish();
    eprintln!(
        "[old_histories] {} promoted, then {}; {} followed it, never the fenced old primary node1",
        new1.pg.name, winner.pg.name, loser.pg.name
    );
    drop(daemons);
}

/// 2. Three nodes. node2 stops; a cold backup of node1 is taken; node1
///    takes a large batch, which node3 streams; node1 is then restored
///    from the backup (archive recovery to the backup's end: the batch
///    undone) and promoted to timeline 2, and node2, which stopped before the backup,
///    follows it. node3 stays on timeline 1, with the batch: more WAL than
///    anyone on timeline 2, which it cannot follow. repmgrd runs on all
///    three, node1 takes a commit node2 replays, and node1's server is
///    killed.
///
/// Both standbys elect against node1. Ranking (and voters comparing WAL)
/// on the newest timeline only promotes node2; ranking by LSN alone would
/// promote node3, without node1's commits of timeline 2. So would reading
/// node3's timeline from its newest history file alone: its WAL receiver
/// fetched timeline 2's history from node1 before it found it could not
/// follow it (`db::timeline::timeline_from` looks at the segment files).
#[test]
fn a_standby_left_on_an_older_timeline_is_not_promoted_over_the_newest() {
    let nodes = registered_cluster_with(2, conf);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg
        .execute("CREATE TABLE t (id int PRIMARY KEY, what text)");
    n1.pg
        .execute("INSERT INTO t VALUES (1, 'before the backup')");
    wait_all_replayed(&nodes);

    // node2 stops before the backup, so it can follow the restored node1.
    n2.pg.stop();
    // A cold backup of node1 (its pg_wal holds all that node2 lacks).
    n1.pg.stop();
    let backup = n1.pg.dir.join("backup");
    run_checked(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&n1.pg.datadir)
            .arg(&backup),
        "copying node1's data directory",
    );
    n1.pg.start();
    // The batch the restore undoes (about 10 MB of WAL): node3 has it all.
    n1.pg
        .execute("CREATE TABLE undone AS SELECT generate_series(1, 300000) AS x");
    wait_replayed(n1, n3);
    n1.pg.stop();
    std::fs::rename(&n1.pg.datadir, n1.pg.dir.join("data.undone"))
        .expect("moving node1's data directory aside");
    std::fs::rename(&backup, &n1.pg.datadir).expect("putting the backup in place");
    // Archive recovery with nothing to restore ends at the end of its
    // pg_wal, the backup's end, on a new timeline.
    append_auto_conf(n1, "restore_command = 'false'");
    write_user_file(&n1.pg.datadir.join("recovery.signal"), "");
    n1.pg.start();
    poll_until(
        Duration::from_secs(60),
        "node1 restored and promoted",
        || is_primary(n1),
    );
    n1.pg.execute("ALTER SYSTEM RESET restore_command");
    n2.pg.start();
    poll_until(Duration::from_secs(60), "node2 streams from node1", || {
        streams_from(n1, "node2")
    });

    let started = Instant::now();
    let daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    wait_heartbeats(n1, nodes.len());
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.pg.execute("INSERT INTO t VALUES (2, 'on timeline 2')");
    wait_replayed(n1, n2);
    // The shape under test: node3 on timeline 1 with more WAL than node2.
    let lsn = |n: &Node, sql: &str| n.query(&format!("SELECT ({sql})::text"));
    let (lsn2, lsn3) = (
        lsn(n2, "pg_last_wal_replay_lsn()"),
        lsn(n3, "pg_last_wal_replay_lsn()"),
    );
    assert_eq!(
        n3.query(&format!(
            "SELECT ('{lsn3}'::pg_lsn > '{lsn2}'::pg_lsn)::text"
        )),
        "true",
        "node3 ({lsn3}) has no more WAL than node2 ({lsn2})"
    );
    assert_eq!(
        (timeline(n1), timeline(n3)),
        ("2".to_string(), "1".to_string())
    );
    assert!(n3.pg.is_in_recovery() && !streams_from(n1, "node3"));
    past_quarantine(started);

    n1.pg.kill9();
    poll_until(Duration::from_secs(60), "node2 promoted", || {
        if is_primary(n3) {
            panic!(
                "node3, on the older timeline 1, was promoted\n{}",
                tails(&daemons)
            );
        }
        writable(n2)
    });
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || {
        writable(n2) && n3.pg.is_in_recovery()
    }) {
        panic!(
            "the roles changed after node2's promotion ({e})\n{}",
            tails(&daemons)
        );
    }
    assert_eq!(
        n2.query("SELECT what FROM t WHERE id = 2"),
        "on timeline 2",
        "node2 lacks node1's commit of timeline 2"
    );
    assert_eq!(timeline(n2), "3");
    let promotions = promotions_logged(&daemons);
    assert_eq!(
        promotions.len(),
        1,
        "promotions: {promotions:?}\n{}",
        tails(&daemons)
    );
    checker.finish();
    eprintln!(
        "[old_histories] node3 on timeline 1 at {lsn3}, node2 on timeline 2 at {lsn2}: node2 promoted"
    );
    drop(daemons);
}
