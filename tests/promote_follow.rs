//! standby promote and standby follow on real PostgreSQL.

use std::time::Duration;

use crate::fixture::registered_cluster;
use crate::harness::poll_until;
use crate::harness::ExitCode;

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
    nodes[1]
        .repmgr(&["node", "control", "--enable-wal-receiver"])
        .assert_success();
    poll_until(Duration::from_secs(60), "receiver back", streaming);
}
