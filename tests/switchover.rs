//! standby switchover through a real sshd on loopback.

use std::time::Duration;

use crate::fixture::{registered_cluster_with, Node};
use crate::harness::{poll_until, Sshd};

fn streams_from(upstream: &Node, standby: &str) -> bool {
    upstream
        .pg
        .try_query_one_string(&format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{standby}' AND state = 'streaming'"
        ))
        .ok()
        .flatten()
        .as_deref()
        == Some("1")
}

fn count(n: &Node) -> Option<String> {
    n.pg.try_query_one_string("SELECT count(*) FROM t")
        .ok()
        .flatten()
}

#[test]
fn switchover_swaps_roles_and_siblings_follow() {
    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(2, |_| format!("ssh_options='{opts}'"));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.execute("CREATE TABLE t (id int primary key)");
    n1.pg.execute("INSERT INTO t SELECT generate_series(1, 10)");
    for s in [n2, n3] {
        poll_until(Duration::from_secs(20), "rows replicated", || {
            count(s).as_deref() == Some("10")
        });
    }

    // Run on the primary: refused, exit 18.
    n1.repmgr(&["standby", "switchover"])
        .assert_code(18)
        .assert_stderr_contains("must be executed from the standby");
    // --dry-run changes nothing.
    n2.repmgr(&["standby", "switchover", "--dry-run", "--siblings-follow"])
        .assert_success()
        .assert_stderr_contains("prerequisites for a switchover are met");
    assert!(n2.pg.is_in_recovery());
    assert!(!n1.pg.is_in_recovery());

    let r = n2.repmgr(&["standby", "switchover", "--siblings-follow"]);
    r.assert_success()
        .assert_stderr_contains("STANDBY SWITCHOVER has completed successfully");
    assert!(!n2.pg.is_in_recovery(), "node2 is the primary");
    poll_until(Duration::from_secs(30), "node1 streams from node2", || {
        streams_from(n2, "node1")
    });
    poll_until(Duration::from_secs(30), "node3 streams from node2", || {
        streams_from(n2, "node3")
    });
    assert!(n1.pg.is_in_recovery());

    n2.pg
        .execute("INSERT INTO t SELECT generate_series(11, 20)");
    for s in [n1, n3] {
        poll_until(Duration::from_secs(20), "rows after the switchover", || {
            count(s).as_deref() == Some("20")
        });
    }
    assert_eq!(
        n2.query("SELECT string_agg(node_id||':'||type||':'||coalesce(upstream_node_id::text,'-')||':'||active, ',' ORDER BY node_id) FROM repmgr.nodes"),
        "1:standby:2:true,2:primary:-:true,3:standby:2:true"
    );
    assert_eq!(
        n2.count(
            "SELECT count(*) FROM repmgr.events WHERE event = 'standby_switchover' AND successful"
        ),
        1
    );
    // repmgrd is unpaused afterwards.
    assert_eq!(
        n2.count("SELECT count(*) FROM repmgr.repmgrd_status WHERE paused"),
        0
    );
}

#[test]
fn switchover_without_ssh_access_changes_nothing() {
    let nodes = registered_cluster_with(1, |_| {
        "ssh_options='-q -o ConnectTimeout=2 -p 1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'".to_string()
    });
    let r = nodes[1].repmgr(&["standby", "switchover"]);
    r.assert_code(12).assert_stderr_contains("over ssh");
    assert!(nodes[1].pg.is_in_recovery());
    assert!(!nodes[0].pg.is_in_recovery());
}

#[test]
fn promote_with_siblings_follow_repoints_the_other_standbys() {
    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(2, |_| format!("ssh_options='{opts}'"));
    nodes[0].pg.stop();
    nodes[1]
        .repmgr(&["standby", "promote", "--siblings-follow"])
        .assert_success()
        .assert_stderr_contains("sibling \"node3\" now follows this node");
    poll_until(Duration::from_secs(30), "node3 streams from node2", || {
        streams_from(&nodes[1], "node3")
    });
}
