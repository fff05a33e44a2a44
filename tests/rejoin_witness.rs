//! node rejoin (with and without pg_rewind) and the witness (register,
//! repmgrd's copy of the node records, its vote, unregister).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::fixture::streams_from;
use crate::fixture::{registered_cluster, registered_cluster_with, Node};
use crate::harness::ExitCode;
use crate::harness::{poll_until, PgNode};

fn answer(n: &Node, sql: &str) -> Option<String> {
    n.pg.try_query_one_string(sql).ok().flatten()
}

/// Every file of a data directory with its size and mtime: "nothing
/// changed on disk" means this is identical before and after.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p.display().to_string(),
                (if m.is_dir() { 0 } else { m.len() }, m.modified().unwrap()),
            );
        }
    }
    out
}

/// Primary node1 with table t (row 1), standby node2 has it; node1 is
/// stopped cleanly and node2 promoted.
fn failed_over_cluster() -> Vec<Node> {
    let nodes = registered_cluster(1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.pg
        .execute("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'before')");
    poll_until(Duration::from_secs(60), "row replicated", || {
        answer(n2, "SELECT count(*) FROM t").as_deref() == Some("1")
    });
    n1.pg.stop();
    n2.repmgr(&["standby", "promote"]).assert_success();
    n2.pg.execute("INSERT INTO t VALUES (2, 'after promote')");
    nodes
}

#[test]
fn rejoin_without_divergence_needs_no_rewind() {
    let nodes = registered_cluster(1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let seed = n2.pg.conninfo();
    // (c) refused while the local server runs.
    n1.repmgr(&["node", "rejoin", "-d", &seed])
        .assert_code(ExitCode::RejoinFail)
        .assert_stderr_contains("still running")
        .assert_stderr_contains("cannot be executed on a running node");
    // Crashed: not shut down cleanly, refused without --force-rewind.
    n1.pg.kill9();
    n1.repmgr(&["node", "rejoin", "-d", &seed])
        .assert_code(ExitCode::RejoinFail)
        .assert_stderr_contains("not shut down cleanly")
        .assert_stderr_contains("in production");
    // No -d: refused before anything else.
    n2.pg.stop();
    n2.repmgr(&["node", "rejoin"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("must be provided");
    drop(nodes);

    let nodes = failed_over_cluster();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let seed = n2.pg.conninfo();
    // (d) dry run: everything checked, nothing changed.
    let before = snapshot(&n1.pg.datadir);
    n1.repmgr(&["node", "rejoin", "-d", &seed, "--dry-run"])
        .assert_success()
        .assert_stderr_contains("pg_rewind is not required")
        .assert_stderr_contains("prerequisites for executing NODE REJOIN are met");
    assert!(!n1.pg.is_running());
    assert_eq!(
        snapshot(&n1.pg.datadir),
        before,
        "dry run changed the data directory"
    );

    n1.repmgr(&["node", "rejoin", "-d", &seed])
        .assert_success()
        .assert_stderr_contains("NODE REJOIN successful");
    assert!(n1.pg.is_in_recovery());
    assert!(streams_from(n2, "node1"));
    poll_until(Duration::from_secs(60), "node1 has node2's row", || {
        answer(n1, "SELECT count(*) FROM t").as_deref() == Some("2")
    });
    assert_eq!(
        n2.query("SELECT type || ':' || upstream_node_id || ':' || active FROM repmgr.nodes WHERE node_id = 1"),
        "standby:2:true"
    );
    assert_eq!(
        n2.query("SELECT details FROM repmgr.events WHERE event = 'node_rejoin' AND successful"),
        "node 1 is now attached to node 2"
    );
    let r = n2.repmgr(&["cluster", "show"]);
    assert!(
        r.stdout.contains("| node1 | standby |   running | node2 "),
        "{r}"
    );
}

#[test]
fn a_diverged_old_primary_is_refused_then_rewound() {
    let nodes = failed_over_cluster();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    // The old primary comes back as a primary and takes writes node2 never
    // saw, and an operator setting in postgresql.auto.conf.
    n1.pg.start();
    n1.pg.execute(
        "INSERT INTO t VALUES (3, 'diverged'); CREATE TABLE diverged AS SELECT generate_series(1, 1000) AS x",
    );
    n1.pg.execute("ALTER SYSTEM SET work_mem = '7MB'");
    n1.pg.stop();
    let seed = n2.pg.conninfo();

    let before = snapshot(&n1.pg.datadir);
    n1.repmgr(&["node", "rejoin", "-d", &seed])
        .assert_code(ExitCode::RejoinFail)
        .assert_stderr_contains("cannot attach to node \"node2\"")
        .assert_stderr_contains("forked off timeline 1")
        .assert_stderr_contains("--force-rewind");
    assert_eq!(
        snapshot(&n1.pg.datadir),
        before,
        "a refusal changed the data directory"
    );
    let archive = n1.pg.path("archive");
    std::fs::create_dir(&archive).unwrap();
    crate::harness::chown_to_user(&archive);
    let archive_opt = format!("--config-archive-dir={}", archive.display());
    // (d) dry run with --force-rewind: checked, not done.
    n1.repmgr(&[
        "node",
        "rejoin",
        "-d",
        &seed,
        "--force-rewind",
        "--config-files=harness.conf",
        &archive_opt,
        "--dry-run",
    ])
    .assert_success()
    .assert_stderr_contains("pg_rewind would be executed");
    assert_eq!(
        snapshot(&n1.pg.datadir),
        before,
        "dry run changed the data directory"
    );
    assert!(!n1.pg.is_running());

    // harness.conf holds this node's port: pg_rewind would bring node2's.
    n1.repmgr(&[
        "node",
        "rejoin",
        "-d",
        &seed,
        "--force-rewind",
        "--config-files=harness.conf",
        &archive_opt,
        "-v",
    ])
    .assert_success()
    .assert_stderr_contains("pg_rewind completed")
    .assert_stderr_contains("NODE REJOIN successful");
    assert!(n1.pg.is_in_recovery());
    assert!(streams_from(n2, "node1"));
    n2.pg.execute("INSERT INTO t VALUES (4, 'after rejoin')");
    poll_until(Duration::from_secs(60), "node1 has node2's rows", || {
        answer(n1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t").as_deref()
            == Some("1,2,4")
    });
    assert_eq!(
        n1.query("SELECT to_regclass('diverged') IS NULL"),
        "t",
        "the diverged table must be gone"
    );
    assert_eq!(
        n1.query("SHOW work_mem"),
        "7MB",
        "postgresql.auto.conf kept"
    );
    assert!(
        std::fs::read_dir(&archive).unwrap().next().is_none(),
        "archive directory cleaned up"
    );
    assert_eq!(
        n1.query("SELECT count(*) FROM pg_replication_slots"),
        "0",
        "no slot copied from the source"
    );
    assert_eq!(
        n2.query("SELECT type || ':' || upstream_node_id FROM repmgr.nodes WHERE node_id = 1"),
        "standby:2"
    );
    assert_eq!(
        n2.query("SELECT details FROM repmgr.events WHERE event = 'node_rejoin' AND successful"),
        "node 1 is now attached to node 2 (after pg_rewind)"
    );
}

fn fast(_id: i32) -> String {
    "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nwitness_sync_interval=1\nlog_level=INFO".to_string()
}

#[test]
fn witness_registers_copies_records_votes_and_follows_the_new_primary() {
    let nodes = registered_cluster_with(1, fast);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let w = Node::configure(PgNode::primary("witness"), 3, &fast(3));
    let p1 = n1.pg.port.to_string();

    // Refusals: no primary given; a standby as witness.
    w.repmgr(&["witness", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("-h/--host");
    n2.repmgr(&["witness", "register", "-h", "127.0.0.1", "-p", &p1])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("standby");

    w.repmgr(&[
        "witness",
        "register",
        "-h",
        "127.0.0.1",
        "-p",
        &p1,
        "--dry-run",
    ])
    .assert_success();
    assert_eq!(w.query("SELECT to_regclass('repmgr.nodes') IS NULL"), "t");
    assert_eq!(
        n1.count("SELECT count(*) FROM repmgr.nodes WHERE node_id = 3"),
        0
    );

    w.repmgr(&["witness", "register", "-h", "127.0.0.1", "-p", &p1])
        .assert_success()
        .assert_stderr_contains("successfully registered");
    assert_eq!(
        n1.query("SELECT type || ':' || upstream_node_id FROM repmgr.nodes WHERE node_id = 3"),
        "witness:1"
    );
    assert_eq!(w.count("SELECT count(*) FROM repmgr.nodes"), 3);
    assert_eq!(
        n1.count("SELECT count(*) FROM repmgr.events WHERE event = 'witness_register'"),
        1
    );
    w.repmgr(&["witness", "register", "-h", "127.0.0.1", "-p", &p1])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already registered");
    w.repmgr(&["witness", "register", "-h", "127.0.0.1", "-p", &p1, "-F"])
        .assert_success();

    let d2 = n2.repmgrd();
    let dw = w.repmgrd();
    dw.wait_for_output("running as witness", Duration::from_secs(60));
    // repmgrd_start in repmgr's words, for a standby and a witness
    poll_until(
        Duration::from_secs(60),
        "repmgrd_start of node2 and the witness",
        || {
            answer(
                n1,
                "SELECT count(*) FROM repmgr.events WHERE event = 'repmgrd_start' AND node_id IN (2, 3)",
            )
            .as_deref()
                == Some("2")
        },
    );
    let primary = n1.query("SELECT node_name FROM repmgr.nodes WHERE node_id = 1");
    assert_eq!(
        n1.query(
            "SELECT string_agg(node_id || ': ' || details, ' / ' ORDER BY node_id) FROM repmgr.events WHERE event = 'repmgrd_start'"
        ),
        format!(
            "2: monitoring connection to upstream node \"{primary}\" (ID: 1) / \
             3: witness monitoring connection to primary node \"{primary}\" (ID: 1)"
        )
    );

    // A record added on the primary reaches the witness's copy.
    n1.pg.execute(
        "INSERT INTO repmgr.nodes (node_id, upstream_node_id, active, node_name, type, conninfo, repluser, config_file)
         VALUES (9, 1, false, 'ghost', 'standby', 'host=127.0.0.1 port=1 connect_timeout=1', 'postgres', '')",
    );
    poll_until(
        Duration::from_secs(60),
        "ghost copied to the witness",
        || {
            answer(&w, "SELECT count(*) FROM repmgr.nodes WHERE node_id = 9").as_deref()
                == Some("1")
        },
    );
    n1.pg.execute("DELETE FROM repmgr.nodes WHERE node_id = 9");
    poll_until(
        Duration::from_secs(60),
        "ghost removed from the copy",
        || {
            answer(&w, "SELECT count(*) FROM repmgr.nodes WHERE node_id = 9").as_deref()
                == Some("0")
        },
    );
    poll_until(
        Duration::from_secs(60),
        "deletion replicated to node2",
        || {
            answer(n2, "SELECT count(*) FROM repmgr.nodes WHERE node_id = 9").as_deref()
                == Some("0")
        },
    );

    n1.pg.kill9();
    poll_until(Duration::from_secs(60), "node2 promoted", || {
        answer(n2, "SELECT NOT pg_is_in_recovery()").as_deref() == Some("t")
    });
    // Primary, standby and witness: the witness's vote makes 2 of the 3 voters.
    d2.wait_for_output("election: 2 of 3 voter(s) visible", Duration::from_secs(60));
    poll_until(
        Duration::from_secs(60),
        "witness record points at node2",
        || {
            answer(
                n2,
                "SELECT upstream_node_id::text FROM repmgr.nodes WHERE node_id = 3",
            )
            .as_deref()
                == Some("2")
        },
    );
    poll_until(
        Duration::from_secs(60),
        "witness copy knows node2 is primary",
        || {
            answer(&w, "SELECT type FROM repmgr.nodes WHERE node_id = 2").as_deref()
                == Some("primary")
        },
    );
    dw.wait_for_output(
        "now monitoring new primary \"node2\"",
        Duration::from_secs(60),
    );
    // The event is written after the log line.
    poll_until(
        Duration::from_secs(60),
        "the witness's repmgrd_failover_follow recorded",
        || {
            answer(
                n2,
                "SELECT count(*) FROM repmgr.events WHERE node_id = 3 AND event = 'repmgrd_failover_follow'",
            )
            .as_deref()
                == Some("1")
        },
    );

    // Unregister with the witness down: the primary is named with -h.
    drop(dw);
    w.pg.stop();
    w.repmgr(&[
        "witness",
        "unregister",
        "-h",
        "127.0.0.1",
        "-p",
        &n2.pg.port.to_string(),
    ])
    .assert_success()
    .assert_stderr_contains("successfully unregistered");
    assert_eq!(
        n2.count("SELECT count(*) FROM repmgr.nodes WHERE node_id = 3"),
        0
    );
    assert_eq!(
        n2.count("SELECT count(*) FROM repmgr.events WHERE event = 'witness_unregister'"),
        1
    );
    drop(d2);
}

#[test]
fn a_crashed_diverged_old_primary_is_rewound() {
    let nodes = failed_over_cluster();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.pg.start();
    n1.pg.execute("INSERT INTO t VALUES (3, 'diverged')");
    n1.pg.kill9();
    let archive = n1.pg.path("archive");
    std::fs::create_dir(&archive).unwrap();
    crate::harness::chown_to_user(&archive);
    n1.repmgr(&[
        "node",
        "rejoin",
        "-d",
        &n2.pg.conninfo(),
        "--force-rewind",
        "--config-files=harness.conf",
        &format!("--config-archive-dir={}", archive.display()),
    ])
    .assert_success()
    .assert_stderr_contains("not shut down cleanly");
    assert!(n1.pg.is_in_recovery());
    poll_until(
        Duration::from_secs(60),
        "node1 has node2's rows only",
        || {
            answer(n1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t").as_deref()
                == Some("1,2")
        },
    );
}
