//! No split brain: fencing of an isolated primary, and an old primary that
//! never comes back as a primary. (Partition tests on separate network
//! namespaces live in their own file.)

use std::time::Duration;

use crate::fixture::{registered_cluster_with, Node};
use crate::harness::pg::Frozen;
use crate::harness::Nagios;
use crate::harness::{poll_until, try_poll_until};

/// Timings under which fencing is guaranteed to come first: standbys need
/// (7 − 1) × 1 s, the primary notices within 3 × 1 s + a 2 s probe.
fn safe(_: i32) -> String {
    "failover=automatic\nreconnect_attempts=7\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO".to_string()
}

fn read_only(n: &Node) -> bool {
    n.pg.try_query_one_string("SHOW default_transaction_read_only")
        .ok()
        .flatten()
        .as_deref()
        == Some("on")
}

/// Running, with writes allowed by default (not fenced read-only).
fn writable_setting(n: &Node) -> bool {
    n.pg.try_query_one_string("SHOW default_transaction_read_only")
        .ok()
        .flatten()
        .as_deref()
        == Some("off")
}

/// A node frozen as a partition would make it look from the others: every
/// process of its server and its repmgrd stop answering, and no connection
/// closes. Thawed on drop, also on panic.
fn frozen(n: &Node, d: &crate::harness::Daemon) -> Frozen {
    let mut pids = n.pg.server_pids();
    pids.push(d.pid());
    Frozen::pids(pids)
}

#[test]
fn a_primary_that_sees_no_majority_fences_itself_and_unfences_when_it_returns() {
    let nodes = registered_cluster_with(2, safe);
    let daemons: Vec<_> = nodes.iter().map(|n| n.repmgrd()).collect();
    nodes[0].pg.execute("CREATE TABLE t (i int)");
    // Settled first: every repmgrd in its loop, and a heartbeat round the
    // standbys acknowledged (heartbeats every second here), so the primary
    // holds a lease and goes read-only before it stops. A primary that
    // never held one stops at once, which is another test's case.
    crate::partition::wait_heartbeats(&nodes[0], 3);
    std::thread::sleep(Duration::from_secs(2));
    // Both standbys stop answering, as behind a partition: the primary is 1
    // of 3 voters, and the two of them could elect a new primary.
    let frozen = [
        frozen(&nodes[1], &daemons[1]),
        frozen(&nodes[2], &daemons[2]),
    ];
    // (How soon, against the standbys' failover window, is what the
    // partition tests check as an order of events.)
    poll_until(Duration::from_secs(60), "primary fenced", || {
        read_only(&nodes[0])
    });
    daemons[0].wait_for_output("fenced: read-only", Duration::from_secs(60));
    // No client write is accepted now. (Read-only comes first; 1.5 s
    // later, as its lease runs out, the server is stopped: these settings
    // give L = 6 s, read-only at L/2, stopped at L − L/4.)
    assert!(nodes[0].pg.try_execute("INSERT INTO t VALUES (1)").is_err());
    nodes[0]
        .repmgr(&["node", "check", "--role", "--nagios"])
        .assert_code(Nagios::Critical)
        .assert_stdout_contains("REPMGR_SERVER_ROLE CRITICAL: node is fenced");
    // cluster show waits for the frozen standbys (connect_timeout): by
    // then the server may be stopped.
    let r = nodes[0].repmgr(&["cluster", "show"]);
    assert!(
        r.stdout.contains("| node1 | primary | ! fenced ") || !nodes[0].pg.is_running(),
        "{r}"
    );
    // They come back, nobody was promoted: the fence is lifted.
    drop(frozen);
    poll_until(
        Duration::from_secs(60),
        "primary running and unfenced",
        || writable_setting(&nodes[0]),
    );
    nodes[0].pg.execute("INSERT INTO t VALUES (2)");
    daemons[0].wait_for_output("unfenced", Duration::from_secs(60));
    // The event is written after the log line.
    poll_until(
        Duration::from_secs(60),
        "repmgrd_fence, then repmgrd_unfence recorded",
        || {
            nodes[0]
                .pg
                .try_query_one_string("SELECT string_agg(event, ',' ORDER BY event_timestamp) FROM repmgr.events WHERE event LIKE 'repmgrd_%fence'")
                .ok()
                .flatten()
                .is_some_and(|e| {
                    // read-only, perhaps the stop too, then lifted
                    e.starts_with("repmgrd_fence,") && e.ends_with(",repmgrd_unfence")
                        && e.matches("repmgrd_unfence").count() == 1
                })
        },
    );
}

#[test]
fn an_old_primary_restarted_after_a_failover_accepts_no_write() {
    let nodes = registered_cluster_with(2, safe);
    let _daemons: Vec<_> = nodes.iter().map(|n| n.repmgrd()).collect();
    nodes[0].pg.execute("CREATE TABLE t (i int)");
    nodes[0].pg.kill9();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        nodes[1..].iter().any(|n| !n.pg.is_in_recovery())
    });
    // node1's repmgrd outlived its server: it prepares the data directory.
    poll_until(Duration::from_secs(60), "data directory prepared", || {
        nodes[0].pg.path("data/standby.signal").exists()
    });
    // Restarted by hand: it comes up as a standby, not as a second primary.
    nodes[0].pg.start();
    assert!(
        nodes[0].pg.is_in_recovery(),
        "the old primary came back as a primary"
    );
    assert!(nodes[0].pg.try_execute("INSERT INTO t VALUES (1)").is_err());
    let promoted = if nodes[1].pg.is_in_recovery() {
        &nodes[2]
    } else {
        &nodes[1]
    };
    assert!(
        try_poll_until(Duration::from_secs(60), || {
            promoted
                .pg
                .try_query_one_string(
                    "SELECT count(*) FROM repmgr.events WHERE event = 'repmgrd_fence'",
                )
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        }),
        "the fence event is recorded on the new primary"
    );
}

#[test]
fn with_auto_rejoin_an_old_primary_comes_back_as_a_streaming_standby() {
    let nodes = registered_cluster_with(2, |id| format!("{}\nauto_rejoin=on", safe(id)));
    let _daemons: Vec<_> = nodes.iter().map(|n| n.repmgrd()).collect();
    nodes[0].pg.execute("CREATE TABLE t (i int)");
    nodes[0].pg.execute("INSERT INTO t VALUES (1)");
    nodes[0].pg.kill9();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        nodes[1..].iter().any(|n| !n.pg.is_in_recovery())
    });
    let new = if nodes[1].pg.is_in_recovery() {
        &nodes[2]
    } else {
        &nodes[1]
    };
    new.pg.execute("INSERT INTO t VALUES (2)");
    poll_until(Duration::from_secs(60), "data directory prepared", || {
        nodes[0].pg.path("data/standby.signal").exists()
    });
    nodes[0].pg.start();
    // repmgrd rejoins it (pg_rewind: it crashed, so its WAL may go past
    // the fork) and it streams from the new primary.
    poll_until(
        Duration::from_secs(60),
        "old primary streams from the new one",
        || {
            new.pg
            .try_query_one_string(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node1' AND state = 'streaming'",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
        },
    );
    poll_until(
        Duration::from_secs(60),
        "old primary has the new row",
        || {
            nodes[0]
                .pg
                .try_query_one_string("SELECT count(*) FROM t")
                .ok()
                .flatten()
                .as_deref()
                == Some("2")
        },
    );
    assert!(nodes[0].pg.is_in_recovery());
    poll_until(
        Duration::from_secs(60),
        "node1 recorded as a standby",
        || {
            new.pg
                .try_query_one_string(
                    "SELECT type || ':' || active FROM repmgr.nodes WHERE node_id = 1",
                )
                .ok()
                .flatten()
                .as_deref()
                == Some("standby:true")
        },
    );
}

#[test]
fn with_auto_rejoin_a_diverged_old_primary_is_rewound() {
    let nodes = registered_cluster_with(2, |id| format!("{}\nauto_rejoin=on", safe(id)));
    let mut daemons: Vec<_> = nodes.iter().map(|n| n.repmgrd()).collect();
    nodes[0].pg.execute("CREATE TABLE t (i int)");
    // The old primary's repmgrd is stopped, so nothing prepares its data
    // directory: it comes back as a primary and takes diverging writes.
    daemons.remove(0);
    nodes[0].pg.stop();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        nodes[1..].iter().any(|n| !n.pg.is_in_recovery())
    });
    let new = if nodes[1].pg.is_in_recovery() {
        &nodes[2]
    } else {
        &nodes[1]
    };
    new.pg.execute("INSERT INTO t VALUES (2)");
    nodes[0].pg.start();
    nodes[0]
        .pg
        .execute("CREATE TABLE diverged AS SELECT generate_series(1, 1000) AS x");
    // Its repmgrd starts, finds itself superseded, fences and rejoins it.
    let _d1 = nodes[0].repmgrd();
    poll_until(
        Duration::from_secs(60),
        "old primary streams from the new one",
        || {
            new.pg
            .try_query_one_string(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node1' AND state = 'streaming'",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
        },
    );
    assert!(nodes[0].pg.is_in_recovery());
    poll_until(
        Duration::from_secs(60),
        "the new primary's row arrived",
        || {
            nodes[0]
                .pg
                .try_query_one_string("SELECT count(*) FROM t")
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        },
    );
    assert_eq!(
        nodes[0].query("SELECT (to_regclass('diverged') IS NULL)::text"),
        "true",
        "the diverged writes were rewound away"
    );
}
