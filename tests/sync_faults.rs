//! Synchronous replication under faults (issue 11, "sync-aware
//! election"): a partition that leaves the synchronous standby on the
//! minority side with the primary, and a crash of the primary under
//! concurrent `pgbench` load. Either way no commit a client saw
//! acknowledged may be missing on the primary the cluster ends with.
//!
//! "Acknowledged" means the COMMIT returned without PostgreSQL's warning
//! that the wait for the synchronous standby was cancelled: such a commit
//! is only local (a statement timeout or a cancel ends the wait, and the
//! client still sees success), so no election can promise to keep it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fixture::{registered_cluster_with, set_sync_standbys, writable, Node};
use crate::harness::{holds_for, pg_tool, poll_until, spawn_retrying, Daemon};
use crate::partition::{
    add_witness, cluster, fenced_or_down, is_primary, safe, tails, wait_heartbeats, Checker,
};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// Waits until `standby`'s copy of the metadata has the primary's
/// published `synchronous_standby_names`: what its election will read
/// once the primary is out of sight.
fn wait_sync_published(standby: &Node, names: &str) {
    let sql = "SELECT s.sync_standby_names FROM repmgr.repmgrd_status s
                 JOIN repmgr.nodes n ON n.node_id = s.node_id
                WHERE n.type = 'primary' AND n.active";
    poll_until(
        Duration::from_secs(60),
        &format!("{} to see '{names}' published", standby.pg.name),
        || {
            standby
                .pg
                .try_query_one_string(sql)
                .ok()
                .flatten()
                .as_deref()
                == Some(names)
        },
    );
}

/// Every id in `acked` that `node` lacks (`SELECT <column> FROM <table>`).
fn missing_on(node: &Node, sql: &str, acked: &[i64]) -> Vec<i64> {
    let rows = node
        .pg
        .try_socket_client()
        .and_then(|mut c| c.query(sql, &[]))
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", node.pg.name));
    let present: BTreeSet<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
    acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect()
}

// ------------------------------------------------------------ ack writer

#[derive(Debug, Default)]
struct Acks {
    /// Ids whose INSERT (autocommit) came back committed.
    acked: Vec<i64>,
    /// Ids that came back committed with the "canceling wait for
    /// synchronous replication" warning: local only, not acknowledged.
    unsure: Vec<i64>,
    failed: u64,
    last_error: Option<String>,
}

/// A client inserting ids 1, 2, 3, … into `acked` on one node over its
/// unix socket (reconnecting after a fence ends its session), each id
/// tried once, recording which were acknowledged.
struct AckWriter {
    stop: Arc<AtomicBool>,
    /// The highest acknowledged id so far, readable while it runs.
    highest: Arc<AtomicI64>,
    handle: Option<JoinHandle<Acks>>,
}

fn ack_client(sockdir: &Path, port: u16, warned: &Arc<AtomicBool>) -> Option<postgres::Client> {
    let flag = warned.clone();
    let mut c = postgres::Config::new()
        .host_path(sockdir)
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(1))
        .notice_callback(move |n| {
            if n.message().contains("synchronous replication") {
                flag.store(true, Ordering::SeqCst);
            }
        })
        .connect(postgres::NoTls)
        .ok()?;
    // The deadline of every commit; one that runs out waiting for the
    // synchronous standby is caught by the notice above.
    c.batch_execute("SET statement_timeout = '5s'").ok()?;
    Some(c)
}

impl AckWriter {
    fn start(n: &Node) -> AckWriter {
        n.pg.execute("CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)");
        let (sockdir, port) = (n.pg.sockdir.clone(), n.pg.port);
        let stop = Arc::new(AtomicBool::new(false));
        let highest = Arc::new(AtomicI64::new(0));
        let (flag, top) = (stop.clone(), highest.clone());
        let handle = std::thread::spawn(move || {
            let warned = Arc::new(AtomicBool::new(false));
            let mut conn: Option<postgres::Client> = None;
            let mut r = Acks::default();
            let mut id: i64 = 0;
            while !flag.load(Ordering::Relaxed) {
                id += 1;
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    conn = ack_client(&sockdir, port, &warned);
                }
                let Some(c) = conn.as_mut() else {
                    r.failed += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                warned.store(false, Ordering::SeqCst);
                match c.execute("INSERT INTO acked (id) VALUES ($1)", &[&id]) {
                    Ok(_) if warned.load(Ordering::SeqCst) => r.unsure.push(id),
                    Ok(_) => {
                        r.acked.push(id);
                        top.store(id, Ordering::Relaxed);
                    }
                    Err(e) => {
                        r.failed += 1;
                        r.last_error = Some(e.to_string());
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            r
        });
        AckWriter {
            stop,
            highest,
            handle: Some(handle),
        }
    }

    fn highest(&self) -> i64 {
        self.highest.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> Acks {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("writer running")
            .join()
            .expect("writer thread")
    }
}

impl Drop for AckWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ------------------------------------------------------------ test 1

/// The highest id `n` holds in `acked` (0 when none).
fn highest_on(n: &Node) -> i64 {
    n.query("SELECT coalesce(max(id), 0) FROM acked")
        .parse()
        .unwrap_or(0)
}

/// Five voters: node1 (primary), node2 (its only synchronous standby,
/// `FIRST 1 (node2)`), node3, node4 and a witness, each on a host.
/// Partition {node1, node2} | {node3, node4, witness} under a write load.
/// The majority side cannot see the synchronous standby, so it cannot know
/// what was acknowledged (and really lacks acknowledged commits, checked
/// below): it promotes nobody and says why. The old primary, seeing 2 of
/// 5 voters, fences. After the heal exactly one writable primary remains
/// (node1 unfenced, or node2 promoted: both hold every acknowledged
/// commit), and it has every commit the writer saw acknowledged.
#[test]
fn five_voters_cut_off_from_the_synchronous_standby_promote_nobody_and_lose_no_commit() {
    let (c, mut daemons) = cluster(3, safe);
    let (w, dw) = add_witness(&c, &safe(5));
    daemons.push(dw);
    let (n1, n2, n3, n4) = (&c.nodes[0], &c.nodes[1], &c.nodes[2], &c.nodes[3]);
    let names = "FIRST 1 (node2)";
    set_sync_standbys(
        n1,
        names,
        &[("node2", "sync"), ("node3", "async"), ("node4", "async")],
    );
    for s in [n3, n4] {
        wait_sync_published(s, names);
    }
    wait_heartbeats(n1, 5);
    let checker = Checker::start(n1, &[n1, n2, n3, n4]);
    let writer = AckWriter::start(n1);
    poll_until(
        Duration::from_secs(60),
        "the writer commits on node1",
        || writer.highest() >= 50,
    );

    let minority = [n1.host(), n2.host()];
    let majority = [n3.host(), n4.host(), w.host()];
    for a in minority {
        for b in majority {
            a.drop_to(b);
            b.drop_to(a);
        }
    }
    let cut = Instant::now();

    poll_until(Duration::from_secs(60), "node1 fences itself", || {
        fenced_or_down(n1)
    });
    let fenced_at = cut.elapsed();
    assert!(
        daemons[0]
            .output()
            .contains("this primary sees only 2 of 5 voters"),
        "node1 fenced, but not for seeing 2 of 5 voters\n{}",
        daemons[0].output_tail(40)
    );
    // node3 or node4 wins the ranking, sees quorum (3 of 5), and stops at
    // the synchronous standby it cannot see.
    let why = "failover cancelled: synchronous replication: 1 synchronous standby(s) out of sight";
    poll_until(
        Duration::from_secs(60),
        "node3 or node4 cancels the failover for synchronous replication",
        || daemons[2..4].iter().any(|d| d.output().contains(why)),
    );
    let cancelled_at = cut.elapsed();
    // The refusal mattered: commits were acknowledged that neither node
    // of the majority holds.
    let top = writer.highest();
    for s in [n3, n4] {
        let has = highest_on(s);
        assert!(
            has < top,
            "{} holds every acknowledged commit ({has} of {top}): the test proves nothing",
            s.pg.name
        );
    }
    if let Err(e) = holds_for(Duration::from_secs(4), STEP, || {
        !is_primary(n2) && !is_primary(n3) && !is_primary(n4)
    }) {
        panic!(
            "a standby was promoted during the partition ({e})\n{}",
            tails(&daemons)
        );
    }

    for a in minority {
        for b in majority {
            a.undrop_to(b);
            b.undrop_to(a);
        }
    }
    let healed = Instant::now();
    let writable_now = |n: &Node| is_primary(n) && !fenced_or_down(n);
    let one = || c.nodes.iter().filter(|n| writable_now(n)).count() == 1;
    poll_until(
        Duration::from_secs(60),
        "exactly one writable primary after the heal",
        one,
    );
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, one) {
        panic!(
            "the cluster did not settle on one writable primary ({e})\n{}",
            tails(&daemons)
        );
    }
    let end = c
        .nodes
        .iter()
        .find(|n| writable_now(n))
        .expect("one writable primary");
    let settled_at = healed.elapsed();
    let acks = writer.finish();
    assert!(
        acks.acked.len() >= 50,
        "only {} commits acknowledged: {acks:?}",
        acks.acked.len()
    );
    let missing = missing_on(end, "SELECT id FROM acked", &acks.acked);
    assert!(
        missing.is_empty(),
        "{} acknowledged commit(s) missing on the final primary {}: {:?}…\n{}",
        missing.len(),
        end.pg.name,
        &missing[..missing.len().min(20)],
        tails(&daemons)
    );
    // The refusal is in the events too (recorded once a primary is found).
    poll_until(
        Duration::from_secs(60),
        &format!("repmgrd_failover_aborted (synchronous) on {}", end.pg.name),
        || {
            end.pg
                .try_query_one_string(
                    "SELECT count(*) > 0 FROM repmgr.events
                      WHERE event = 'repmgrd_failover_aborted' AND NOT successful
                        AND node_id IN (3, 4) AND details LIKE '%synchronous standby(s) out of sight%'",
                )
                .ok()
                .flatten()
                .as_deref()
                == Some("t")
        },
    );
    eprintln!(
        "[sync_faults] fenced {:.1} s and cancelled {:.1} s after the cut; settled on {} {:.1} s after the heal; {} acknowledged (highest {}), {} unsure, {} failed, none missing",
        fenced_at.as_secs_f64(),
        cancelled_at.as_secs_f64(),
        end.pg.name,
        settled_at.as_secs_f64(),
        acks.acked.len(),
        acks.acked.last().copied().unwrap_or(0),
        acks.unsure.len(),
        acks.failed
    );
    checker.finish();
    drop(daemons);
    drop(w);
}

// ------------------------------------------------------------ test 2

/// One pgbench transaction: the tpcb-like account update plus a row
/// naming the transaction, (client id, the client's transaction count).
/// Variables persist across a client's transactions, and `-D n=0` starts
/// the count, so transaction number k of client c (as pgbench's
/// per-transaction log numbers them, from 1) inserted (c, k).
const PGBENCH_SCRIPT: &str = "\\set n :n + 1
\\set aid random(1, 100000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
INSERT INTO pgbench_ack (client, n) VALUES (:client_id, :n);
END;
";

/// `pgbench -c 4` against a node, logging every transaction it got
/// acknowledged.
struct Pgbench {
    child: Child,
    dir: tempfile::TempDir,
}

impl Pgbench {
    fn start(n: &Node) -> Pgbench {
        let dir = crate::harness::user_tempdir();
        let script = crate::harness::write_user_file(&dir.path().join("ack.sql"), PGBENCH_SCRIPT);
        let out = std::fs::File::create(dir.path().join("pgbench.out")).expect("pgbench.out");
        let mut cmd = pg_tool("pgbench", dir.path());
        cmd.arg("-h")
            .arg(&n.pg.sockdir)
            .args(["-p", &n.pg.port.to_string(), "-U", "postgres", "-n"])
            // -T bounds the run should the kill never come.
            .args(["-c", "4", "-j", "2", "-T", "60", "-D", "n=0", "-l"])
            .arg(format!("--log-prefix={}", dir.path().join("tx").display()))
            .arg("-f")
            .arg(&script)
            .arg("postgres")
            .stdout(out.try_clone().expect("pgbench.out"))
            .stderr(out);
        let child = spawn_retrying(&mut cmd).expect("starting pgbench");
        Pgbench { child, dir }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbench.out")).unwrap_or_default()
    }

    /// Waits (bounded) for pgbench to end, then reads its logs: the
    /// acknowledged transactions as ids client × 10⁹ + number.
    fn finish(mut self, timeout: Duration) -> (Vec<i64>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("pgbench did not end within {timeout:?}:\n{}", self.output());
                }
            }
        }
        let mut acked = Vec::new();
        let logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("pgbench dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with("tx."))
            })
            .collect();
        for log in logs {
            let text = std::fs::read_to_string(&log).expect("pgbench log");
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                // client transaction_no latency_us script …; a failed or
                // skipped transaction has no latency.
                if let [client, no, latency, ..] = f[..] {
                    if let (Ok(c), Ok(k), Ok(_)) = (
                        client.parse::<i64>(),
                        no.parse::<i64>(),
                        latency.parse::<u64>(),
                    ) {
                        acked.push(c * 1_000_000_000 + k);
                    }
                }
            }
        }
        acked.sort_unstable();
        (acked, self.output())
    }
}

/// The received WAL position of a standby, as a number.
fn received_lsn(n: &Node) -> i64 {
    n.query("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")
        .parse()
        .unwrap_or_else(|e| panic!("{}: received LSN: {e}", n.pg.name))
}

/// Three nodes, `FIRST 1 (node2)` (node3 asynchronous), `pgbench -c 4`
/// writing one numbered row per transaction; the primary's postmaster is
/// killed under the load. The new primary is the synchronous standby or
/// one with at least its WAL, and it has every transaction pgbench got
/// acknowledged, each whole (the account updates add up to the rows).
/// Beside `failover::synchronous_commits_survive_a_failover` (one writer,
/// ANY 1): concurrent clients and a single synchronous standby, so the
/// asynchronous one may lack acknowledged commits.
#[test]
fn pgbench_load_with_synchronous_replication_survives_a_kill_9_of_the_primary() {
    let nodes = registered_cluster_with(2, |_| {
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
            .to_string()
    });
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let init = pg_tool("pgbench", &n1.pg.dir)
        .arg("-h")
        .arg(&n1.pg.sockdir)
        .args(["-p", &n1.pg.port.to_string(), "-U", "postgres"])
        .args(["-i", "-s", "1", "-q", "postgres"])
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    n1.pg
        .execute("CREATE TABLE pgbench_ack (client int, n int, PRIMARY KEY (client, n))");
    let names = "FIRST 1 (node2)";
    set_sync_standbys(n1, names, &[("node2", "sync"), ("node3", "async")]);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    let started = Instant::now();
    for s in [n2, n3] {
        wait_sync_published(s, names);
    }
    let bench = Pgbench::start(n1);
    // Load through the daemons' start-up quarantine (10 s), so the crash
    // meets a settled cluster with every client busy.
    poll_until(
        Duration::from_secs(60),
        "pgbench commits from all 4 clients, 11 s after repmgrd started",
        || {
            started.elapsed() > Duration::from_secs(11)
                && n1
                    .pg
                    .try_query_one_string(
                        "SELECT count(DISTINCT client) = 4 AND count(*) > 500 FROM pgbench_ack",
                    )
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some("t")
        },
    );
    let killed = Instant::now();
    n1.pg.kill9();
    // Nothing reaches the standbys any more: where each one stands (read
    // before any promotion or follow can move it).
    let (lsn2, lsn3) = (received_lsn(n2), received_lsn(n3));
    let (acked, out) = bench.finish(Duration::from_secs(30));
    let clients: BTreeSet<i64> = acked.iter().map(|id| id / 1_000_000_000).collect();
    assert!(
        acked.len() > 500 && clients.len() == 4,
        "pgbench got {} transactions acknowledged from clients {clients:?}:\n{out}",
        acked.len()
    );

    let mut new = None;
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        new = [n2, n3].into_iter().find(|n| writable(n));
        new.is_some()
    });
    let new = new.expect("a new primary");
    let promoted = killed.elapsed();
    assert!(
        new.pg.name == "node2" || received_lsn(new) >= lsn2,
        "{} was promoted with less WAL than the synchronous standby node2 ({lsn3} < {lsn2})\n{}",
        new.pg.name,
        tails(&daemons)
    );
    let missing = missing_on(
        new,
        "SELECT client::bigint * 1000000000 + n FROM pgbench_ack",
        &acked,
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged transactions missing on the new primary {} (as client × 10⁹ + number): {:?}…\n{}",
        missing.len(),
        acked.len(),
        new.pg.name,
        &missing[..missing.len().min(20)],
        tails(&daemons)
    );
    // Each transaction is there whole: one account update per row.
    assert_eq!(
        new.query("SELECT sum(abalance) FROM pgbench_accounts"),
        new.query("SELECT count(*) FROM pgbench_ack"),
        "the account updates and the rows of pgbench's transactions disagree on {}",
        new.pg.name
    );
    eprintln!(
        "[sync_faults] {} acknowledged from 4 clients; {} promoted {:.1} s after the kill (received LSN node2 {lsn2}, node3 {lsn3}); none missing",
        acked.len(),
        new.pg.name,
        promoted.as_secs_f64()
    );
    drop(daemons);
}
