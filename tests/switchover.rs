//! standby switchover through a real sshd on loopback.

use std::time::Duration;

use crate::fixture::streams_from;
use crate::fixture::{registered_cluster_with, Node};
use crate::harness::ExitCode;
use crate::harness::{poll_until, Sshd};

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
        poll_until(Duration::from_secs(60), "rows replicated", || {
            count(s).as_deref() == Some("10")
        });
    }

    // Run on the primary: refused, exit 18.
    n1.repmgr(&["standby", "switchover"])
        .assert_code(ExitCode::SwitchoverFail)
        .assert_stderr_contains("must be executed from the standby");
    // --dry-run changes nothing; -S is checked here and passed on to the
    // old primary's stop, as repmgr does.
    n2.repmgr(&[
        "standby",
        "switchover",
        "--dry-run",
        "--siblings-follow",
        "-S",
        "postgres",
    ])
    .assert_success()
    .assert_stderr_contains("prerequisites for a switchover are met")
    .assert_stderr_contains("validating connection to local database for superuser \"postgres\"")
    .assert_stderr_contains("node service --action=stop --checkpoint --superuser=postgres");
    n1.pg.execute("CREATE ROLE plain LOGIN");
    poll_until(Duration::from_secs(60), "role replicated", || {
        n2.pg
            .try_query_one_string("SELECT count(*) FROM pg_roles WHERE rolname = 'plain'")
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
    });
    n2.repmgr(&["standby", "switchover", "--dry-run", "-S", "plain"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("for provided superuser \"plain\" is not a superuser connection");
    assert!(n2.pg.is_in_recovery());
    assert!(!n1.pg.is_in_recovery());

    let r = n2.repmgr(&[
        "standby",
        "switchover",
        "--siblings-follow",
        "-S",
        "postgres",
    ]);
    r.assert_success()
        .assert_stderr_contains("STANDBY SWITCHOVER has completed successfully");
    assert!(!n2.pg.is_in_recovery(), "node2 is the primary");
    poll_until(Duration::from_secs(60), "node1 streams from node2", || {
        streams_from(n2, "node1")
    });
    poll_until(Duration::from_secs(60), "node3 streams from node2", || {
        streams_from(n2, "node3")
    });
    assert!(n1.pg.is_in_recovery());

    n2.pg
        .execute("INSERT INTO t SELECT generate_series(11, 20)");
    for s in [n1, n3] {
        poll_until(Duration::from_secs(60), "rows after the switchover", || {
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
    r.assert_code(ExitCode::BadSsh)
        .assert_stderr_contains("over ssh");
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
    poll_until(Duration::from_secs(60), "node3 streams from node2", || {
        streams_from(&nodes[1], "node3")
    });
}

/// One row per transaction into `w` on the old primary over TCP while the
/// switchover runs; every id whose COMMIT was acknowledged must be on the
/// new primary afterwards.
#[test]
fn switchover_under_write_load_loses_no_acknowledged_commit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(1, |_| format!("ssh_options='{opts}'"));
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.pg
        .execute("CREATE TABLE w (id bigint primary key, at timestamptz default now())");

    let stop = Arc::new(AtomicBool::new(false));
    let conninfo = n1.pg.conninfo();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut c = postgres::Client::connect(&conninfo, postgres::NoTls)
                .expect("writer connects to the old primary");
            let mut id: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                // Autocommit: Ok means the COMMIT was acknowledged.
                match c.execute("INSERT INTO w (id) VALUES ($1)", &[&id]) {
                    Ok(_) => acked.push(id),
                    Err(_) => break,
                }
            }
            acked
        })
    };
    // The switchover starts under load: the writer is committing.
    poll_until(Duration::from_secs(60), "the writer commits", || {
        n1.pg
            .try_query_one_string("SELECT count(*) > 10 FROM w")
            .ok()
            .flatten()
            .as_deref()
            == Some("t")
    });
    let r = n2.repmgr(&["standby", "switchover"]);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("writer thread");
    r.assert_success();
    assert!(!n2.pg.is_in_recovery(), "node2 is the primary");
    assert!(acked.len() > 10, "the writer wrote ({} rows)", acked.len());
    eprintln!(
        "writer: {} commits acknowledged by the old primary",
        acked.len()
    );

    let present: std::collections::HashSet<i64> = n2
        .pg
        .client()
        .query("SELECT id FROM w", &[])
        .expect("reading w on the new primary")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits missing on the new primary (of {}): {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(20)]
    );
    // And the old primary, now a standby, has them too.
    poll_until(Duration::from_secs(60), "node1 streams from node2", || {
        streams_from(n2, "node1")
    });
    let max = acked.last().copied().unwrap_or(0);
    poll_until(Duration::from_secs(60), "rows on node1", || {
        n1.pg
            .try_query_one_string(&format!("SELECT count(*) FROM w WHERE id <= {max}"))
            .ok()
            .flatten()
            == Some(acked.len().to_string())
    });
}

/// The standby to promote does not stream from the primary: refused with 18
/// before anything changes.
#[test]
fn switchover_of_a_detached_standby_is_refused() {
    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(1, |_| format!("ssh_options='{opts}'"));
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let before = n1.query(
        "SELECT string_agg(node_id||':'||type||':'||coalesce(upstream_node_id::text,'-')||':'||active, ',' ORDER BY node_id) FROM repmgr.nodes",
    );
    n2.pg.execute(
        "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1 user=postgres connect_timeout=2'",
    );
    n2.pg.execute("SELECT pg_reload_conf()");
    poll_until(Duration::from_secs(60), "node2 detached", || {
        n1.pg
            .try_query_one_string(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node2'",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("0")
    });

    n2.repmgr(&["standby", "switchover"])
        .assert_code(ExitCode::SwitchoverFail)
        .assert_stderr_contains("not streaming from the primary");
    assert!(!n1.pg.is_in_recovery(), "node1 is still the primary");
    assert!(n2.pg.is_in_recovery(), "node2 is still a standby");
    assert_eq!(
        n1.query("SELECT string_agg(node_id||':'||type||':'||coalesce(upstream_node_id::text,'-')||':'||active, ',' ORDER BY node_id) FROM repmgr.nodes"),
        before
    );
    assert_eq!(
        n1.count("SELECT count(*) FROM repmgr.events WHERE event = 'standby_switchover'"),
        0
    );
    assert_eq!(
        n1.count("SELECT count(*) FROM repmgr.repmgrd_status WHERE paused"),
        0
    );
}
