//! A promotion that failed or did not complete in time is never left in
//! doubt (issue 11, "re-check before acting"): a server that left recovery
//! all the same is the promotion done, recorded and followed; one still in
//! recovery is restarted as a standby.

use std::time::Duration;

use crate::fixture::{registered_cluster_with, streams_from, writable, Node};
use crate::harness::{holds_for, poll_until, Daemon};

const PG_CTL: &str = "/usr/lib/postgresql/15/bin/pg_ctl";

/// Fast timing; node2 the only candidate (node3 has priority 0).
fn fast(id: i32) -> String {
    let priority = if id == 2 { 100 } else { 0 };
    format!(
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\npriority={priority}\nlog_level=INFO"
    )
}

fn tails(d: &[Daemon]) -> String {
    d.iter()
        .map(|x| x.output_tail(30))
        .collect::<Vec<_>>()
        .join("\n----\n")
}

fn start_all(nodes: &[Node]) -> Vec<Daemon> {
    nodes.iter().map(|n| n.repmgrd()).collect()
}

/// promote_command promotes the server, then exits non-zero: the server
/// is a primary, so the promotion stands; it is recorded, and node3
/// follows node2. (Before, the failure was taken at its word: node2 ran as
/// an unrecorded primary that nobody followed.)
#[test]
fn a_promotion_that_completes_but_reports_failure_stands_and_the_other_standby_follows() {
    let nodes = registered_cluster_with(2, fast);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n2.append_conf(&format!(
        "promote_command='{PG_CTL} -D {} -w promote >/dev/null 2>&1; exit 3'",
        n2.pg.datadir.display()
    ));
    let d = start_all(&nodes);
    for x in &d {
        x.wait_for_output("starting monitoring", Duration::from_secs(60));
    }
    // Past the voters' start-up quarantine.
    std::thread::sleep(Duration::from_secs(11));
    n1.pg.kill9();
    d[1].wait_for_output("the promotion stands", Duration::from_secs(60));
    assert!(writable(n2), "node2 is not a primary\n{}", tails(&d));
    poll_until(Duration::from_secs(60), "node3 streams from node2", || {
        streams_from(n2, "node3")
    });
    let kind = n2
        .pg
        .try_query_one_string("SELECT type FROM repmgr.nodes WHERE node_id = 2")
        .ok()
        .flatten();
    assert_eq!(kind.as_deref(), Some("primary"), "{}", tails(&d));
    assert!(!writable(n3));
}

/// promote_command does nothing: the server stays in recovery past
/// promote_check_timeout; the promotion is undone (node2 restarted as a
/// standby) and no node takes writes.
#[test]
fn a_promotion_that_does_not_complete_in_time_is_undone() {
    let nodes = registered_cluster_with(2, fast);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n2.append_conf("promote_command='/bin/true'\npromote_check_timeout=1");
    let d = start_all(&nodes);
    for x in &d {
        x.wait_for_output("starting monitoring", Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(11));
    n1.pg.kill9();
    d[1].wait_for_output(
        "undoing the promotion: restarting the server as a standby",
        Duration::from_secs(60),
    );
    d[1].wait_for_output("promotion failed", Duration::from_secs(60));
    poll_until(Duration::from_secs(60), "node2 answers again", || {
        n2.pg.try_query_one_string("SELECT 1").is_ok()
    });
    if let Err(e) = holds_for(Duration::from_secs(4), Duration::from_millis(100), || {
        !writable(n2) && !writable(n3)
    }) {
        panic!(
            "a node takes writes after the undone promotion ({e})\n{}",
            tails(&d)
        );
    }
    assert!(n2.pg.datadir.join("standby.signal").exists());
}
