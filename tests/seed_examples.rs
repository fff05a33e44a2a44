//! The seed README's EXAMPLES section, end to end on real PostgreSQL, as one
//! test with a data check after every step:
//!
//! node1 primary; node2 cloned with pg_basebackup, node3 with `--rsync-only`
//! (`repmgr -D DIR standby clone node1`); node1 lost; `standby promote` on
//! node2; `standby follow` on node3; node4 cloned from node2.

use std::time::Duration;

use crate::fixture::{write_conf, Node};
use crate::harness::{poll_until, PgNode, RunResult};

/// Bound of every wait in this test.
const WAIT: Duration = Duration::from_secs(30);

/// An empty node (no data directory yet) with a repmgr.conf naming it.
fn empty_node(name: &str, id: i32) -> Node {
    let pg = PgNode::empty(name);
    let conf = write_conf(&pg, id, name, &pg.conninfo(), "log_level=INFO");
    Node { pg, conf }
}

/// The seed's `repmgr -D <dir> standby clone <host>`, with the target's
/// repmgr.conf, from `source` (its port and user given as options).
fn seed_clone(target: &Node, source: &PgNode, extra: &[&str]) -> RunResult {
    let dir = target.pg.datadir.display().to_string();
    let port = source.port.to_string();
    let mut args = vec![
        "-D",
        dir.as_str(),
        "standby",
        "clone",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
    ];
    args.extend_from_slice(extra);
    target.repmgr(&args)
}

/// Starts a fresh clone on its own port and waits until it streams.
fn start_standby(n: &Node) {
    n.pg.apply_harness_conf();
    n.pg.start();
    n.pg.wait_streaming(WAIT);
    assert!(n.pg.is_in_recovery(), "{} must be a standby", n.pg.name);
}

/// Bounded poll until `SELECT count(*) FROM t` on `n` is `want`.
#[track_caller]
fn wait_rows(n: &Node, want: i64) {
    let want = want.to_string();
    n.pg.wait_until(WAIT, &format!("{want} rows in t"), |pg| {
        pg.try_query_one_string("SELECT count(*) FROM t")
            .ok()
            .flatten()
            .as_deref()
            == Some(want.as_str())
    });
}

/// Application names streaming from `upstream`, sorted, comma-separated.
fn streaming_from(upstream: &PgNode) -> String {
    upstream
        .try_query_one_string(
            "SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '')
               FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The cells of the `cluster show` row for `name`, trimmed.
fn row_cells(r: &RunResult, name: &str) -> Vec<String> {
    let line = r
        .stdout
        .lines()
        .find(|l| l.split('|').nth(1).map(str::trim) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in cluster show\n{r}"));
    line.split('|').map(|c| c.trim().to_string()).collect()
}

#[test]
fn seed_examples_clone_promote_follow_and_clone_from_the_new_primary() {
    // node1: the master, registered.
    let n1 = Node::configure(PgNode::primary("node1"), 1, "log_level=INFO");
    n1.repmgr(&["primary", "register"]).assert_success();
    n1.pg
        .execute("CREATE TABLE t (id int PRIMARY KEY, origin text)");
    n1.pg
        .execute("INSERT INTO t SELECT g, 'node1' FROM generate_series(1, 10) g");
    assert_eq!(
        n1.query("SELECT string_agg(node_name||':'||type, ',') FROM repmgr.nodes"),
        "node1:primary"
    );

    // node2: `repmgr -D DIR standby clone node1` (pg_basebackup).
    let n2 = empty_node("node2", 2);
    seed_clone(&n2, &n1.pg, &[])
        .assert_success()
        .assert_stderr_contains("standby clone (using pg_basebackup) complete");
    assert!(n2.pg.datadir.join("standby.signal").is_file());
    start_standby(&n2);
    wait_rows(&n2, 10);

    // node3: the same with rsync, the seed's method.
    let n3 = empty_node("node3", 3);
    seed_clone(&n3, &n1.pg, &["--rsync-only"])
        .assert_success()
        .assert_stderr_contains("standby clone (using rsync) complete");
    assert!(n3.pg.datadir.join("backup_label").is_file());
    start_standby(&n3);
    wait_rows(&n3, 10);

    // Both registered; both stream from node1.
    for n in [&n2, &n3] {
        n.repmgr(&["standby", "register"]).assert_success();
    }
    poll_until(WAIT, "node2 and node3 streaming from node1", || {
        streaming_from(&n1.pg) == "node2,node3"
    });
    assert_eq!(
        n1.query(
            "SELECT string_agg(node_name||':'||type||':'||coalesce(upstream_node_id::text, '-'), ',' ORDER BY node_id) FROM repmgr.nodes"
        ),
        "node1:primary:-,node2:standby:1,node3:standby:1"
    );

    // Rows written on node1 are read on node2 and node3.
    n1.pg
        .execute("INSERT INTO t SELECT g, 'node1' FROM generate_series(11, 20) g");
    wait_rows(&n2, 20);
    wait_rows(&n3, 20);
    for n in [&n2, &n3] {
        assert_eq!(n.query("SELECT max(id) FROM t"), "20");
        assert_eq!(
            n.query("SELECT count(*) FROM repmgr.nodes"),
            "3",
            "metadata replicated to {}",
            n.pg.name
        );
    }

    // We lose node1.
    n1.pg.stop();
    assert!(!n1.pg.is_running());
    assert!(n2.pg.is_in_recovery());

    // On node2: `repmgr -f repmgr.conf standby promote`.
    n2.repmgr(&["standby", "promote"])
        .assert_success()
        .assert_stderr_contains("STANDBY PROMOTE successful");
    assert!(!n2.pg.is_in_recovery());
    n2.pg
        .execute("INSERT INTO t SELECT g, 'node2' FROM generate_series(21, 30) g");
    assert_eq!(n2.query("SELECT count(*) FROM t"), "30");
    assert_eq!(
        n2.query("SELECT count(*) FROM t WHERE origin = 'node2'"),
        "10"
    );
    // node3 still has node1's rows only: it streams from nothing.
    assert_eq!(n3.query("SELECT count(*) FROM t"), "20");

    // On node3: `repmgr standby follow`; it receives node2's new rows.
    n3.repmgr(&["standby", "follow"])
        .assert_success()
        .assert_stderr_contains("STANDBY FOLLOW successful");
    poll_until(WAIT, "node3 streaming from node2", || {
        streaming_from(&n2.pg) == "node3"
    });
    wait_rows(&n3, 30);
    assert_eq!(
        n3.query("SELECT count(*) FROM t WHERE origin = 'node2'"),
        "10"
    );
    n2.pg
        .execute("INSERT INTO t SELECT g, 'node2' FROM generate_series(31, 40) g");
    wait_rows(&n3, 40);

    // A new node4: `repmgr -D DIR standby clone node2`, registered with
    // node2 as its upstream.
    let n4 = empty_node("node4", 4);
    seed_clone(&n4, &n2.pg, &[])
        .assert_success()
        .assert_stderr_contains("standby clone (using pg_basebackup) complete");
    start_standby(&n4);
    wait_rows(&n4, 40);
    n4.repmgr(&["standby", "register", "--upstream-node-id=2"])
        .assert_success();
    poll_until(WAIT, "node3 and node4 streaming from node2", || {
        streaming_from(&n2.pg) == "node3,node4"
    });
    n2.pg
        .execute("INSERT INTO t SELECT g, 'node2' FROM generate_series(41, 50) g");
    wait_rows(&n3, 50);
    wait_rows(&n4, 50);
    assert_eq!(
        n2.query(
            "SELECT string_agg(node_name||':'||type||':'||active||':'||coalesce(upstream_node_id::text, '-'), ',' ORDER BY node_id) FROM repmgr.nodes"
        ),
        "node1:primary:false:-,node2:primary:true:-,node3:standby:true:2,node4:standby:true:2"
    );

    // cluster show: node2 the primary, node3 and node4 following it, node1 failed.
    let r = n4.repmgr(&["cluster", "show"]);
    r.assert_success();
    let want: [(&str, [&str; 5]); 4] = [
        // Upstream "?": its own record cannot be read (repmgr 5.3 too).
        ("node1", ["1", "node1", "primary", "- failed", "?"]),
        ("node2", ["2", "node2", "primary", "* running", ""]),
        ("node3", ["3", "node3", "standby", "running", "node2"]),
        ("node4", ["4", "node4", "standby", "running", "node2"]),
    ];
    for (name, cells) in want {
        let got = row_cells(&r, name);
        assert_eq!(&got[..5], &cells[..], "row of {name}\n{r}");
    }
    let timelines: Vec<String> = ["node2", "node3", "node4"]
        .iter()
        .map(|n| row_cells(&r, n)[7].clone())
        .collect();
    assert_eq!(timelines, ["2", "2", "2"], "{r}");
    assert_eq!(r.stdout.lines().count(), 6, "header, rule, 4 nodes\n{r}");
}
