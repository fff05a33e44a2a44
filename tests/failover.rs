//! repmgrd monitoring and automatic failover on real PostgreSQL.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fixture::{registered_cluster_with, set_sync_standbys, Node};
use crate::fixture::{streams_from, writable};
use crate::harness::ExitCode;
use crate::harness::{holds_for, poll_until, try_poll_until, Daemon};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// Fast settings: the upstream is declared failed ~2 s after it goes.
fn fast(id: i32) -> String {
    let priority = if id == 2 { 0 } else { 100 };
    format!(
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\npriority={priority}\nlog_level=INFO"
    )
}

fn start_all(nodes: &[Node]) -> Vec<Daemon> {
    nodes.iter().map(|n| n.repmgrd()).collect()
}

#[test]
fn kill_9_of_the_primary_promotes_the_best_standby_and_the_other_follows() {
    let nodes = registered_cluster_with(2, fast);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.execute("CREATE TABLE t (id int primary key)");
    n1.pg
        .execute("INSERT INTO t SELECT generate_series(1, 100)");
    for s in [n2, n3] {
        poll_until(Duration::from_secs(60), "rows replicated", || {
            s.pg.try_query_one_string("SELECT count(*) FROM t")
                .ok()
                .flatten()
                .as_deref()
                == Some("100")
        });
    }
    // Notification scripts see the events repmgr runs them for.
    let hooks = crate::harness::user_tempdir();
    let notified = hooks.path().join("events");
    for s in [n2, n3] {
        s.append_conf(&format!(
            "event_notification_command='echo %n:%e >> {}'",
            notified.display()
        ));
    }
    let daemons = start_all(&nodes);
    // A crash long after the daemons started (past the 10 s start-up
    // quarantine, with the primary's lease established): its own repmgrd
    // must see a crashed server, not fence it and restart it later.
    std::thread::sleep(Duration::from_secs(11));

    n1.pg.kill9();
    // node2 has priority 0: node3 must win. (How fast: bench/failover.)
    poll_until(Duration::from_secs(60), "node3 promoted", || writable(n3));
    poll_until(Duration::from_secs(60), "node2 follows node3", || {
        streams_from(n3, "node2")
    });
    assert!(n2.pg.is_in_recovery(), "priority 0 is never promoted");

    n3.pg.execute("INSERT INTO t VALUES (101)");
    poll_until(Duration::from_secs(60), "node2 has the new row", || {
        n2.pg
            .try_query_one_string("SELECT count(*) FROM t")
            .ok()
            .flatten()
            .as_deref()
            == Some("101")
    });
    // The story is in the metadata.
    poll_until(Duration::from_secs(60), "events recorded", || {
        n3.pg
            .try_query_one_string(
                "SELECT string_agg(DISTINCT event, ',' ORDER BY event) FROM repmgr.events
                  WHERE event IN ('repmgrd_failover_promote', 'repmgrd_failover_follow')",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("repmgrd_failover_follow,repmgrd_failover_promote")
    });
    let r = n3.repmgr(&["cluster", "show"]);
    assert!(r.stdout.contains("| node1 | primary | - failed "), "{r}");
    assert!(r.stdout.contains("| node3 | primary | * running "), "{r}");
    assert!(
        r.stdout.contains("| node2 | standby |   running | node3 "),
        "{r}"
    );
    let r = n3.repmgr(&["cluster", "event", "--event=repmgrd_failover_promote"]);
    r.assert_success().assert_stdout_contains("node3");
    assert!(
        !n1.pg.is_running(),
        "node1's repmgrd restarted the crashed server\n{}",
        daemons[0].output_tail(30)
    );
    assert!(
        !daemons[0].output().contains("unfenced"),
        "node1's repmgrd fenced and unfenced a crashed server\n{}",
        daemons[0].output_tail(30)
    );
    poll_until(Duration::from_secs(60), "notifications run", || {
        let text = std::fs::read_to_string(&notified).unwrap_or_default();
        [
            "3:standby_promote",
            "3:repmgrd_failover_promote",
            "2:standby_follow",
        ]
        .iter()
        .all(|e| text.lines().any(|l| l == *e))
    });
    drop(daemons);
}

#[test]
fn manual_failover_never_promotes() {
    let nodes = registered_cluster_with(1, |id| {
        fast(id)
            .replace("failover=automatic", "failover=manual")
            .replace("priority=0", "priority=100")
    });
    let d = start_all(&nodes);
    nodes[0].pg.kill9();
    // node2's repmgrd reaches the decision, and decides to do nothing...
    d[1].wait_for_output(
        "not taking action: failover is set to \"manual\"",
        Duration::from_secs(60),
    );
    // ...and nothing happens afterwards either.
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || !writable(&nodes[1])) {
        panic!("failover=manual promoted a standby ({e})");
    }
    assert!(nodes[1].pg.is_in_recovery());
}

#[test]
fn primary_back_within_the_window_means_no_failover() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nreconnect_attempts=30\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let d = start_all(&nodes);
    nodes[0].pg.stop();
    d[1].wait_for_output("checking state of node", Duration::from_secs(60));
    nodes[0].pg.start();
    d[1].wait_for_output("has recovered, reconnecting", Duration::from_secs(60));
    assert!(nodes[1].pg.is_in_recovery());
    assert_eq!(
        nodes[0].query("SELECT timeline_id::text FROM pg_control_checkpoint()"),
        "1"
    );
    poll_until(Duration::from_secs(60), "standby streams again", || {
        streams_from(&nodes[0], "node2")
    });
}

/// A primary that stops answering without closing anything (SIGSTOP) is
/// declared failed: every check has a deadline. (How fast, with FAULT=stop:
/// bench/failover.)
#[test]
fn a_hung_postmaster_with_live_backends_is_not_failed_over() {
    // The postmaster hangs but its backends live on: sessions opened
    // before can still write, and the walsender still streams. Promoting
    // the standby would leave two primaries taking writes (issue 11), so
    // the standby, whose WAL receiver still hears the primary, refuses.
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nfailover_quorum=repmgr\nreconnect_attempts=2\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let d = start_all(&nodes);
    nodes[0].pg.execute("CREATE TABLE t (id int)");
    let mut held = nodes[0].pg.client();
    let pm = nodes[0].pg.postmaster_pid().expect("postmaster pid");
    kill(Pid::from_raw(pm), Signal::SIGSTOP).unwrap();
    let refused = try_poll_until(Duration::from_secs(60), || {
        d[1].output().contains("this node still sees the primary")
    });
    let not_promoted = holds_for(Duration::from_secs(5), STEP, || !writable(&nodes[1]));
    let write = held.execute("INSERT INTO t VALUES (1)", &[]);
    kill(Pid::from_raw(pm), Signal::SIGCONT).unwrap();
    assert!(refused, "the standby did not refuse:\n{}", d[1].output());
    if let Err(e) = not_promoted {
        panic!("the standby was promoted while the primary's backends live: {e}");
    }
    assert!(write.is_ok(), "the held session could not write: {write:?}");
}

/// A primary whose every server process hangs (a paused VM, a stuck
/// disk): nothing answers and nothing closes. The standby is promoted.
///
/// The frozen server's kernel still acknowledges the standby's heartbeat,
/// so only the query's own client-side deadline (db::Session) ends the
/// wait; before it existed the standby's repmgrd blocked for good.
#[test]
fn a_frozen_primary_is_detected() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nfailover_quorum=repmgr\nreconnect_attempts=2\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
            .to_string()
    });
    let d = start_all(&nodes);
    // Heartbeats flow: the standby's repmgrd holds a connection to node1.
    poll_until(
        Duration::from_secs(60),
        "node2's heartbeat on node1",
        || {
            nodes[0]
            .pg
            .try_query_one_string(
                "SELECT count(*) FROM repmgr.repmgrd_status WHERE node_id = 2 AND pid IS NOT NULL",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
        },
    );
    let frozen = nodes[0].pg.freeze();
    let promoted = try_poll_until(Duration::from_secs(60), || writable(&nodes[1]));
    let diagnostics = d[1].diagnostics();
    drop(frozen);
    assert!(
        promoted,
        "no failover while every process of node1's server was stopped\n{}\n{diagnostics}",
        d[1].output_tail(30)
    );
}

#[test]
fn paused_repmgrd_does_not_fail_over_and_resumes_when_unpaused() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nreconnect_attempts=2\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let d = start_all(&nodes);
    // Both repmgrds' status rows first: a row written after the UPDATE
    // (its repmgrd registering late) would not be paused.
    poll_until(Duration::from_secs(60), "both repmgrd status rows", || {
        nodes[0]
            .pg
            .try_query_one_string(
                "SELECT count(*) FROM repmgr.repmgrd_status WHERE pid IS NOT NULL",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("2")
    });
    nodes[0]
        .pg
        .execute("UPDATE repmgr.repmgrd_status SET paused = true");
    poll_until(Duration::from_secs(60), "pause flag replicated", || {
        nodes[1]
            .pg
            .try_query_one_string(
                "SELECT (count(*) = 2 AND bool_and(paused))::text FROM repmgr.repmgrd_status",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("true")
    });
    nodes[0].pg.stop();
    d[1].wait_for_output("repmgrd is paused", Duration::from_secs(60));
    assert!(nodes[1].pg.is_in_recovery());
    nodes[0].pg.start();
    nodes[0]
        .pg
        .execute("UPDATE repmgr.repmgrd_status SET paused = false");
    d[1].wait_for_output("reconnected to upstream node", Duration::from_secs(60));
    assert!(nodes[1].pg.is_in_recovery());
}

#[test]
fn sighup_changes_reconnect_attempts() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nreconnect_attempts=1\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let d = start_all(&nodes);
    nodes[1].append_conf("reconnect_attempts=7");
    d[1].signal(Signal::SIGHUP);
    d[1].wait_for_output("configuration file reloaded", Duration::from_secs(60));
    nodes[0].pg.stop();
    // "1 of 7" when the watcher saw the connection close, "2 of 7" when a
    // failed check noticed it first (that check was attempt 1).
    d[1].wait_for_output(" of 7 attempts", Duration::from_secs(60));
    assert!(nodes[1].pg.is_in_recovery());
}

/// SIGHUP checks the new timing as the start does: the lease change, a
/// primary_isolation_timeout that defeats itself, and, once each has
/// published its own, the other repmgrds' differing timing (issue 11).
#[test]
fn sighup_checks_the_new_timing_and_names_nodes_whose_timing_differs() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
            .to_string()
    });
    let d = start_all(&nodes);
    let lease_of = |id: i32| {
        nodes[0]
            .pg
            .try_query_one_string(&format!(
                "SELECT lease_ms::text FROM repmgr.repmgrd_status WHERE node_id = {id} AND pid IS NOT NULL"
            ))
            .ok()
            .flatten()
    };
    poll_until(Duration::from_secs(60), "both leases published", || {
        lease_of(1).as_deref() == Some("2000") && lease_of(2).as_deref() == Some("2000")
    });
    for x in &d {
        x.wait_for_output(
            "promises a primary not to vote for 2000 ms",
            Duration::from_secs(60),
        );
    }
    assert!(
        !d[0].output().contains("runs with a lease"),
        "same timing everywhere, yet a difference was reported\n{}",
        d[0].output_tail(30)
    );
    nodes[1].append_conf("reconnect_attempts=7\nprimary_isolation_timeout=0");
    d[1].signal(Signal::SIGHUP);
    d[1].wait_for_output(
        "the lease changes from 2000 ms to 6000 ms",
        Duration::from_secs(60),
    );
    d[1].wait_for_output(
        "promises a primary not to vote for 6000 ms",
        Duration::from_secs(60),
    );
    d[1].wait_for_output(
        "primary_isolation_timeout (0 s) is not above a heartbeat interval",
        Duration::from_secs(60),
    );
    d[1].wait_for_output(
        "node \"node1\" (ID: 1) runs with a lease of 2000 ms (reconnect_attempts=3, reconnect_interval=1, monitor_interval_secs=1); this node with a lease of 6000 ms (reconnect_attempts=7",
        Duration::from_secs(60),
    );
    // The primary names node2 at its next SIGHUP, once node2's row says so.
    poll_until(
        Duration::from_secs(60),
        "node2's new lease published",
        || lease_of(2).as_deref() == Some("6000"),
    );
    d[0].signal(Signal::SIGHUP);
    d[0].wait_for_output(
        "node \"node2\" (ID: 2) runs with a lease of 6000 ms",
        Duration::from_secs(60),
    );
    assert!(nodes[0].pg.try_execute("SELECT 1").is_ok());
}

#[test]
fn a_second_repmgrd_for_the_same_node_is_refused() {
    let nodes = registered_cluster_with(0, |_| "monitor_interval_secs=1".to_string());
    let _d = nodes[0].repmgrd();
    // A different pid file: only the metadata tells them apart.
    let other_pid = nodes[0].pg.dir.join("other.pid");
    let r = crate::harness::Repmgr::new(&[
        "-f",
        &nodes[0].conf,
        "--daemonize=false",
        "-p",
        other_pid.to_str().unwrap(),
    ])
    .daemon()
    .run();
    r.assert_code(ExitCode::BadPidfile)
        .assert_stderr_contains("already running");
}

/// With monitoring_history, the standby's repmgrd adds a row per cycle:
/// the table keeps growing, one row per cycle (never two with one time).
#[test]
fn monitoring_history_grows_while_repmgrd_runs() {
    let nodes = registered_cluster_with(1, |_| {
        "monitoring_history=true\nmonitor_interval_secs=1".to_string()
    });
    let _d = start_all(&nodes);
    let count = || {
        nodes[0].count("SELECT count(*) FROM repmgr.monitoring_history WHERE standby_node_id = 2")
    };
    poll_until(Duration::from_secs(60), "first history row", || count() > 0);
    let c1 = count();
    poll_until(Duration::from_secs(60), "three more history rows", || {
        count() >= c1 + 3
    });
    assert_eq!(
        nodes[0].query(
            "SELECT (count(*) = count(DISTINCT last_monitor_time))::text FROM repmgr.monitoring_history"
        ),
        "true",
        "two history rows for one cycle"
    );
    assert_eq!(
        nodes[0].query("SELECT standby_name FROM repmgr.replication_status"),
        "node2"
    );
}

#[test]
fn a_cascaded_standby_reattaches_to_the_primary() {
    let extra =
        "failover=automatic\nreconnect_attempts=2\nreconnect_interval=1\nmonitor_interval_secs=1";
    let nodes = registered_cluster_with(1, |_| extra.to_string());
    let n3 = Node::configure(
        crate::harness::PgNode::standby_of(&nodes[1].pg, "node3"),
        3,
        extra,
    );
    n3.repmgr(&["standby", "register", "--upstream-node-id=2"])
        .assert_success();
    let _d1 = nodes[0].repmgrd();
    let _d3 = n3.repmgrd();
    nodes[1].pg.kill9();
    poll_until(Duration::from_secs(60), "node3 streams from node1", || {
        streams_from(&nodes[0], "node3")
    });
    poll_until(
        Duration::from_secs(60),
        "node3's record points at node1",
        || {
            nodes[0]
                .pg
                .try_query_one_string(
                    "SELECT upstream_node_id::text FROM repmgr.nodes WHERE node_id = 3",
                )
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        },
    );
}

#[test]
fn a_standby_that_followed_under_repmgrd_fails_over_again() {
    // All priority 100: node2 wins the first election (lowest id on a tie).
    // After it, only node2 and node3 are active voters: the second failover
    // needs repmgr's quorum rule (the majority rule would rightly refuse).
    let nodes = registered_cluster_with(2, |_| {
        "failover=automatic\nfailover_quorum=repmgr\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let _d = start_all(&nodes);
    n1.pg.kill9();
    poll_until(Duration::from_secs(60), "node2 promoted", || writable(n2));
    poll_until(Duration::from_secs(60), "node3 follows node2", || {
        streams_from(n2, "node3")
    });
    // node3's repmgrd now watches node2, the new primary: losing it is a
    // failover, not a lost upstream standby to re-attach from.
    n2.pg.kill9();
    // Normally ~2 s; if node3 had not confirmed following node2 yet, it
    // re-runs the election after election_rerun_interval (15 s).
    poll_until(Duration::from_secs(60), "node3 promoted", || writable(n3));
    // The roles are recorded right after the server leaves recovery.
    poll_until(
        Duration::from_secs(30),
        "node3's promotion recorded",
        || {
            n3.query("SELECT string_agg(node_id||':'||type||':'||active, ',' ORDER BY node_id) FROM repmgr.nodes")
            == "1:primary:false,2:primary:false,3:primary:true"
        },
    );
}

/// Issue 6, test 7: three failovers in a row. Five nodes: each failure
/// leaves a strict majority of the voters (the failed primary counted,
/// earlier failed nodes no longer active), so the survivors keep going.
#[test]
fn three_failovers_in_a_row() {
    let nodes = registered_cluster_with(4, |_| {
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let _d = start_all(&nodes);
    nodes[0].pg.execute("CREATE TABLE t (round int)");
    let mut primary = 0usize;
    for round in 1..=3 {
        let current = &nodes[primary];
        current
            .pg
            .execute(&format!("INSERT INTO t VALUES ({round})"));
        // Every survivor has the row before the primary goes.
        for (i, n) in nodes.iter().enumerate() {
            if i != primary && n.pg.is_running() {
                poll_until(Duration::from_secs(60), "row replicated", || {
                    n.pg.try_query_one_string(&format!(
                        "SELECT count(*) FROM t WHERE round = {round}"
                    ))
                    .ok()
                    .flatten()
                    .as_deref()
                        == Some("1")
                });
            }
        }
        current.pg.kill9();
        let mut next = None;
        poll_until(
            Duration::from_secs(60),
            &format!("promotion in round {round}"),
            || {
                next = nodes
                    .iter()
                    .enumerate()
                    .find(|(i, n)| *i != primary && n.pg.is_running() && writable(n))
                    .map(|(i, _)| i);
                next.is_some()
            },
        );
        primary = next.unwrap();
        // Every other survivor follows the new primary.
        for (i, n) in nodes.iter().enumerate() {
            if i != primary && n.pg.is_running() {
                poll_until(Duration::from_secs(60), "survivor follows", || {
                    streams_from(&nodes[primary], &n.pg.name)
                });
            }
        }
    }
    let last = &nodes[primary];
    last.pg.execute("INSERT INTO t VALUES (4)");
    assert_eq!(
        last.query("SELECT string_agg(round::text, ',' ORDER BY round) FROM t"),
        "1,2,3,4"
    );
    assert_eq!(
        last.count("SELECT count(*) FROM repmgr.events WHERE event = 'repmgrd_failover_promote'"),
        3
    );
    assert_eq!(
        last.count("SELECT count(*) FROM repmgr.nodes WHERE active AND type = 'primary'"),
        1
    );
}

/// Issue 6, test 9: synchronous replication, the primary killed under a
/// write load: every transaction whose COMMIT was acknowledged is on the
/// new primary.
#[test]
fn synchronous_commits_survive_a_failover() {
    let nodes = registered_cluster_with(2, |_| {
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1"
            .to_string()
    });
    let _d = start_all(&nodes);
    let p = &nodes[0];
    p.pg.execute("CREATE TABLE w (id int primary key)");
    set_sync_standbys(
        p,
        "ANY 1 (node2, node3)",
        &[("node2", "quorum"), ("node3", "quorum")],
    );
    // A writer: one row per transaction, recording each acknowledged id.
    let conninfo = p.pg.conninfo();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(mut c) = postgres::Client::connect(&conninfo, postgres::NoTls) else {
            return acked;
        };
        let mut id = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            id += 1;
            match c.execute("INSERT INTO w VALUES ($1)", &[&id]) {
                Ok(_) => acked.push(id),
                Err(_) => break,
            }
        }
        acked
    });
    poll_until(Duration::from_secs(60), "some commits", || {
        p.pg.try_query_one_string("SELECT count(*) > 100 FROM w")
            .ok()
            .flatten()
            .as_deref()
            == Some("t")
    });
    p.pg.kill9();
    let mut new = None;
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        new = nodes[1..].iter().find(|n| writable(n));
        new.is_some()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 100,
        "only {} commits acknowledged",
        acked.len()
    );
    let new = new.unwrap();
    let last = *acked.last().unwrap();
    let present = new.count(&format!("SELECT count(*) FROM w WHERE id <= {last}"));
    assert_eq!(
        present as usize,
        acked.len(),
        "acknowledged commits missing on the new primary (last acknowledged id {last})"
    );
}
