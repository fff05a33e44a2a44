//! standby promote and standby follow on real PostgreSQL.

use std::time::Duration;

use crate::fixture::{registered_cluster, registered_cluster_with};
use crate::harness::ExitCode;
use crate::harness::{holds_for, poll_until};

#[test]
fn promote_then_follow_the_new_primary() {
    let nodes = registered_cluster(2);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.execute("CREATE TABLE t (id int primary key, v text)");
    n1.pg.execute("INSERT INTO t VALUES (1, 'before')");
    for s in [n2, n3] {
        poll_until(Duration::from_secs(60), "row replicated", || {
            s.pg.try_query_one_string("SELECT count(*) FROM t")
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        });
    }
    n1.pg.stop();

    n2.repmgr(&["standby", "promote", "--dry-run"])
        .assert_success();
    assert!(n2.pg.is_in_recovery(), "dry run must not promote");
    n2.repmgr(&["standby", "promote"])
        .assert_success()
        .assert_stderr_contains("STANDBY PROMOTE successful");
    assert!(!n2.pg.is_in_recovery());
    n2.pg.execute("INSERT INTO t VALUES (2, 'after promote')");
    assert_eq!(
        n2.query("SELECT string_agg(node_id||':'||type||':'||active, ',' ORDER BY node_id) FROM repmgr.nodes"),
        "1:primary:false,2:primary:true,3:standby:true"
    );
    assert_eq!(n2.query("SELECT term::text FROM repmgr.voting_term"), "2");
    assert_eq!(
        n2.query("SELECT details FROM repmgr.events WHERE event = 'standby_promote'"),
        "server \"node2\" (ID: 2) was successfully promoted to primary"
    );

    n3.repmgr(&["standby", "follow", "--dry-run"])
        .assert_success();
    n3.repmgr(&["standby", "follow"])
        .assert_success()
        .assert_stderr_contains("STANDBY FOLLOW successful");
    poll_until(Duration::from_secs(60), "node3 has node2's new row", || {
        n3.pg
            .try_query_one_string("SELECT count(*) FROM t")
            .ok()
            .flatten()
            .as_deref()
            == Some("2")
    });
    assert_eq!(
        n2.query("SELECT upstream_node_id::text FROM repmgr.nodes WHERE node_id = 3"),
        "2"
    );
    assert_eq!(
        n2.count("SELECT count(*) FROM repmgr.events WHERE event = 'standby_follow'"),
        1
    );
    let r = n2.repmgr(&["cluster", "show"]);
    r.assert_success();
    assert!(r.stdout.contains("| node1 | primary | - failed "), "{r}");
    assert!(r.stdout.contains("| node2 | primary | * running "), "{r}");
    assert!(
        r.stdout.contains("| node3 | standby |   running | node2 "),
        "{r}"
    );
}

#[test]
fn promote_refusals() {
    let nodes = registered_cluster(1);
    // On the primary: exit 8, as repmgr.
    nodes[0]
        .repmgr(&["standby", "promote"])
        .assert_code(ExitCode::PromotionFail)
        .assert_stderr_contains("can only be executed on a standby");
    // While the primary is reachable: refused, nothing changes.
    nodes[1]
        .repmgr(&["standby", "promote"])
        .assert_code(ExitCode::PromotionFail)
        .assert_stderr_contains("already has an active primary");
    assert!(nodes[1].pg.is_in_recovery());
    // -F does not override it, as in repmgr: two writable primaries lose data
    nodes[1]
        .repmgr(&["standby", "promote", "-F"])
        .assert_code(ExitCode::PromotionFail)
        .assert_stderr_contains("already has an active primary");
    assert!(nodes[1].pg.is_in_recovery());
}

#[test]
fn follow_refusals() {
    let nodes = registered_cluster(1);
    nodes[0]
        .repmgr(&["standby", "follow"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("not a standby");
    nodes[1]
        .repmgr(&["standby", "follow", "--upstream-node-id=9"])
        .assert_code(ExitCode::FollowFail)
        .assert_stderr_contains("not registered");
}

#[test]
fn follow_refuses_a_diverged_timeline_and_changes_nothing() {
    let nodes = registered_cluster(1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.pg.stop();
    n2.repmgr(&["standby", "promote"]).assert_success();
    // The old primary comes back as a primary and takes writes: its
    // timeline 1 now goes past the point where node2's timeline 2 began.
    n1.pg.start();
    n1.pg
        .execute("CREATE TABLE diverged AS SELECT generate_series(1, 1000) AS x");
    n1.pg.stop();
    // Restarted as a standby (no upstream yet), it is asked to follow node2.
    n1.pg.write_file("data/standby.signal", "");
    n1.pg.start();
    assert!(n1.pg.is_in_recovery());
    let auto_conf = n1.pg.path("data/postgresql.auto.conf");
    let before = std::fs::read_to_string(&auto_conf).unwrap();
    let r = n1.repmgr(&["standby", "follow", "--upstream-node-id=2"]);
    r.assert_code(ExitCode::FollowFail)
        .assert_stderr_contains("cannot follow node \"node2\"")
        .assert_stderr_contains("forked off timeline 1")
        .assert_stderr_contains("node rejoin --force-rewind");
    assert_eq!(
        std::fs::read_to_string(&auto_conf).unwrap(),
        before,
        "nothing changed on disk"
    );
    assert_eq!(
        nodes[1].count("SELECT count(*) FROM repmgr.events WHERE event = 'standby_follow'"),
        0,
        "not reported as following"
    );
}

/// A standby promoted on its own and then turned back into a standby is on
/// the same timeline number as the real new primary, and not ahead of it:
/// the history check cannot tell the two timelines 2 apart. The standby
/// then receives the primary's WAL but cannot replay it where its own WAL
/// ended, and the follow must not be reported as done.
#[test]
fn follow_refuses_a_standby_promoted_on_its_own() {
    let nodes = registered_cluster_with(2, |id| {
        if id == 3 {
            "standby_follow_timeout=3".into()
        } else {
            String::new()
        }
    });
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.stop();
    // node3 goes its own way on a timeline 2 and writes a little.
    n3.pg.execute("SELECT pg_catalog.pg_promote(true, 60)");
    n3.pg.execute("CREATE TABLE only_on_node3 AS SELECT 1 AS x");
    n3.pg.stop();
    // node2 is promoted properly (its own timeline 2) and writes more, so
    // that node3 is not ahead of it.
    n2.repmgr(&["standby", "promote"]).assert_success();
    n2.pg
        .execute("CREATE TABLE on_node2 AS SELECT generate_series(1, 20000) AS x");
    n3.pg.write_file("data/standby.signal", "");
    // Its startup process drops each connection to node2 within a
    // millisecond (its WAL cannot continue node2's); retrying every 20 ms
    // instead of 5 s gives many such moments of "streaming" to be fooled by.
    let conf = std::fs::read_to_string(n3.pg.path("data/postgresql.conf")).unwrap();
    n3.pg.write_file(
        "data/postgresql.conf",
        &format!("{conf}\nwal_retrieve_retry_interval = 20ms\n"),
    );
    n3.pg.start();
    assert!(n3.pg.is_in_recovery());

    let r = n3.repmgr(&["standby", "follow", "--upstream-node-id=2"]);
    r.assert_code(ExitCode::FollowFail)
        .assert_stderr_contains("did not start streaming from the new upstream");
    assert_eq!(
        n2.query(
            "SELECT COALESCE(upstream_node_id::text, '-') FROM repmgr.nodes WHERE node_id = 3"
        ),
        "1",
        "not recorded as following node2"
    );
    assert_eq!(
        n2.count("SELECT count(*) FROM repmgr.events WHERE event = 'standby_follow'"),
        0
    );
}

/// When `standby follow` returns, everything the new primary had is
/// already replayed on the standby and the metadata names the new
/// upstream: no "? node1" window for `cluster show`. With a restart
/// (standby_follow_restart), so the confirmation reconnects.
#[test]
fn follow_is_recorded_and_replayed_when_it_returns() {
    let nodes = registered_cluster_with(2, |id| {
        if id == 3 {
            "standby_follow_restart=true".into()
        } else {
            String::new()
        }
    });
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.stop();
    n2.repmgr(&["standby", "promote"]).assert_success();
    n2.pg
        .execute("CREATE TABLE before_follow AS SELECT 42 AS x");

    n3.repmgr(&["standby", "follow"])
        .assert_success()
        .assert_stderr_contains("STANDBY FOLLOW successful");
    // No polling below: each of these holds at the moment it returns.
    assert_eq!(n3.query("SELECT x::text FROM before_follow"), "42");
    assert_eq!(
        n3.query("SELECT status || ':' || received_tli FROM pg_stat_wal_receiver"),
        "streaming:2"
    );
    assert_eq!(
        n2.query("SELECT upstream_node_id::text FROM repmgr.nodes WHERE node_id = 3"),
        "2"
    );
    let r = n2.repmgr(&["cluster", "show"]);
    r.assert_success();
    assert!(
        r.stdout.contains("| node3 | standby |   running | node2 "),
        "{r}"
    );
}

#[test]
fn node_control_disables_and_enables_the_wal_receiver() {
    let nodes = registered_cluster(1);
    let streaming = || {
        nodes[0]
            .pg
            .try_query_one_string(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node2'",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
    };
    nodes[0]
        .repmgr(&["node", "control", "--disable-wal-receiver"])
        .assert_code(ExitCode::BadConfig);
    nodes[1]
        .repmgr(&["node", "control", "--disable-wal-receiver"])
        .assert_success();
    poll_until(Duration::from_secs(60), "receiver gone", || !streaming());
    // It stays gone, also while new sessions wake the standby's postmaster
    // (a receiver start the startup process asked for and the postmaster
    // deferred would begin then; once it did, after the command's own
    // session ended).
    if let Err(e) = holds_for(Duration::from_secs(3), Duration::from_millis(100), || {
        let _ = nodes[1].pg.try_query_one_string("SELECT 1");
        !streaming()
    }) {
        panic!("the WAL receiver came back after --disable-wal-receiver: {e}");
    }
    nodes[1]
        .repmgr(&["node", "control", "--enable-wal-receiver"])
        .assert_success();
    poll_until(Duration::from_secs(60), "receiver back", streaming);
}
