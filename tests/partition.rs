//! No split brain under real network partitions (issue 6, "Tests"): every
//! node (its PostgreSQL and its repmgrd) on its own host (network
//! namespace), links cut and healed with [`Host::cut`]/[`Host::heal`].
//!
//! Every scenario runs a [`Checker`] beside it: every ~50 ms it tries a
//! write on every node over the node's unix socket (sockets work across
//! namespaces, so a cut node is still observed) and records a violation
//! when two nodes accept a write in the same round.
//!
//! Timings ([`safe`]): a standby declares its primary failed after
//! (7 − 1) × 1 s at the earliest (in practice later: each attempt against a
//! cut host waits out the 2 s connect timeout); an isolated primary notices
//! within 3 × 1 s + 2 s and fences at once (isolation timeout 0). So the
//! isolated primary must stop taking writes before any promotion.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fixture::streams_from;
use crate::fixture::{HostCluster, Node};
use crate::harness::{holds_for, poll_until, try_poll_until, Daemon, PgNode};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// repmgr.conf lines under which fencing is guaranteed to come first.
pub(crate) fn safe(_: i32) -> String {
    "failover=automatic\nreconnect_attempts=7\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
        .to_string()
}

fn answer(n: &Node, sql: &str) -> Option<String> {
    n.pg.try_query_one_string(sql).ok().flatten()
}

/// Runs as a primary (not in recovery); says nothing about fencing.
pub(crate) fn is_primary(n: &Node) -> bool {
    answer(n, "SELECT NOT pg_is_in_recovery()").as_deref() == Some("t")
}

/// Takes no writes: fenced read-only (the configured default), demoted
/// (in recovery), or not answering at all.
pub(crate) fn fenced_or_down(n: &Node) -> bool {
    match n.pg.try_query_one_string(
        "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only')::bool",
    ) {
        Ok(v) => v.as_deref() == Some("t"),
        Err(_) => !n.pg.is_running(),
    }
}

/// Waits until every node's repmgrd has a fresh heartbeat on the primary,
/// so a cut starts from a settled cluster.
pub(crate) fn wait_heartbeats(primary: &Node, n: usize) {
    let sql = "SELECT count(*) FROM repmgr.repmgrd_status
                WHERE pid IS NOT NULL AND last_updated > now() - interval '2 seconds'";
    poll_until(
        Duration::from_secs(60),
        &format!("fresh heartbeats of {n} repmgrd on {}", primary.pg.name),
        || answer(primary, sql).and_then(|s| s.parse::<usize>().ok()) == Some(n),
    );
}

/// Promotions that repmgrd logged, over every daemon's output.
pub(crate) fn promotions_logged(daemons: &[Daemon]) -> Vec<String> {
    daemons
        .iter()
        .flat_map(|d| {
            d.output()
                .lines()
                .filter(|l| l.contains("promoted to primary;"))
                .map(|l| format!("{}: {l}", d.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The tails of every daemon's output, for assertion messages.
pub(crate) fn tails(daemons: &[Daemon]) -> String {
    daemons
        .iter()
        .map(|d| format!("----- {} -----\n{}", d.name, d.output_tail(30)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Asserts that the daemons logged exactly one promotion and that the
/// write checker saw `old` accept no write after `new`'s first; returns
/// `old`'s last and `new`'s first accepted write.
pub(crate) fn assert_one_handover(
    daemons: &[Daemon],
    r: &CheckerReport,
    old: &str,
    new: &str,
) -> (Option<Instant>, Instant) {
    let promotions = promotions_logged(daemons);
    assert_eq!(
        promotions.len(),
        1,
        "promotions: {promotions:?}\n{}",
        tails(daemons)
    );
    let first_new = *r
        .first_accepted
        .get(new)
        .unwrap_or_else(|| panic!("the checker never saw {new} accept a write"));
    let last_old = r.last_accepted.get(old).copied();
    assert!(
        last_old.is_none_or(|t| t < first_new),
        "{old} accepted a write after {new} did\n{}",
        tails(daemons)
    );
    (last_old, first_new)
}

// ---------------------------------------------------------------- checker

/// Where a node's unix socket is, for threads that outlive no node.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    sockdir: PathBuf,
    port: u16,
}

impl Target {
    fn of(n: &Node) -> Target {
        Target {
            name: n.pg.name.clone(),
            sockdir: n.pg.sockdir.clone(),
            port: n.pg.port,
        }
    }

    fn connect(&self) -> Option<postgres::Client> {
        let mut c = postgres::Config::new()
            .host_path(&self.sockdir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(1))
            .connect(postgres::NoTls)
            .ok()?;
        c.batch_execute("SET statement_timeout = '2s'").ok()?;
        Some(c)
    }
}

/// Runs `sql` (a write) on a kept connection, reconnecting when it was
/// closed (a fence ends client sessions). Ok(()) means the write committed.
fn try_write(t: &Target, conn: &mut Option<postgres::Client>, sql: &str) -> Result<(), String> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = t.connect();
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let res = c.batch_execute(sql).map_err(|e| e.to_string());
    if res.is_err() {
        if c.is_closed() {
            *conn = None;
        } else {
            // A failed write inside BEGIN leaves the transaction aborted.
            let _ = c.batch_execute("ROLLBACK");
        }
    }
    res
}

#[derive(Debug, Default)]
pub(crate) struct CheckerReport {
    rounds: u64,
    /// Rounds in which two or more nodes accepted a write.
    violations: Vec<String>,
    /// When each node (by name) first and last accepted a write.
    pub(crate) first_accepted: HashMap<String, Instant>,
    pub(crate) last_accepted: HashMap<String, Instant>,
}

/// A write that overrides every read-only default a client can override:
/// the session's and the transaction's.
const BYPASSING_WRITE: &str = "SET default_transaction_read_only = off;
     BEGIN READ WRITE;
     INSERT INTO split_brain_probe DEFAULT VALUES;
     COMMIT";

/// Every ~50 ms, tries a write (INSERT into `split_brain_probe`) on every
/// node, overriding the read-only fence as a client can; two acceptances
/// in one round are a split brain.
pub(crate) struct Checker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<CheckerReport>>,
    started: Instant,
}

impl Checker {
    /// `primary` gets the probe table (it replicates to the others).
    pub(crate) fn start(primary: &Node, nodes: &[&Node]) -> Checker {
        primary
            .pg
            .execute("CREATE TABLE IF NOT EXISTS split_brain_probe (at timestamptz DEFAULT clock_timestamp(),
                                                                   port int DEFAULT current_setting('port')::int)");
        let targets: Vec<Target> = nodes.iter().map(|n| Target::of(n)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut conns: Vec<Option<postgres::Client>> = targets.iter().map(|_| None).collect();
            let mut r = CheckerReport::default();
            while !flag.load(Ordering::Relaxed) {
                let round = Instant::now();
                let mut accepted = Vec::new();
                for (t, c) in targets.iter().zip(conns.iter_mut()) {
                    // Written as a client that overrides the read-only
                    // default would (issue 11): only a stop or a demotion
                    // ends its writes.
                    if try_write(t, c, BYPASSING_WRITE).is_ok() {
                        let now = Instant::now();
                        r.first_accepted.entry(t.name.clone()).or_insert(now);
                        r.last_accepted.insert(t.name.clone(), now);
                        accepted.push(t.name.clone());
                    }
                }
                r.rounds += 1;
                if accepted.len() > 1 && r.violations.len() < 20 {
                    r.violations.push(format!(
                        "round {} at +{}: {} all accepted a write",
                        r.rounds,
                        secs(round.duration_since(started)),
                        accepted.join(", ")
                    ));
                }
                let left = Duration::from_millis(50).saturating_sub(round.elapsed());
                std::thread::sleep(left);
            }
            r
        });
        Checker {
            stop,
            handle: Some(handle),
            started,
        }
    }

    /// Stops the checker and fails the test if two nodes ever accepted a
    /// write in the same round.
    #[track_caller]
    pub(crate) fn finish(mut self) -> CheckerReport {
        self.stop.store(true, Ordering::Relaxed);
        let r = self
            .handle
            .take()
            .expect("checker running")
            .join()
            .expect("checker thread");
        assert!(r.rounds >= 10, "the checker ran only {} rounds", r.rounds);
        assert!(
            r.violations.is_empty(),
            "split brain: two nodes accepted writes at the same time (checker started at +0):\n{}",
            r.violations.join("\n")
        );
        eprintln!(
            "[partition] checker: {} rounds over {}, never two writable nodes",
            r.rounds,
            secs(self.started.elapsed())
        );
        r
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ----------------------------------------------------------------- writer

#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    pub(crate) commits: u64,
    pub(crate) last_commit: Option<Instant>,
    pub(crate) last_error: Option<String>,
}

/// A client that keeps trying INSERTs on one node over its unix socket and
/// records when its last one committed.
pub(crate) struct Writer {
    stop: Arc<AtomicBool>,
    /// Commits so far, readable while it runs.
    committed: Arc<AtomicU64>,
    handle: Option<JoinHandle<WriterReport>>,
}

impl Writer {
    pub(crate) fn start(n: &Node) -> Writer {
        let t = Target::of(n);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let committed = Arc::new(AtomicU64::new(0));
        let count = committed.clone();
        let handle = std::thread::spawn(move || {
            let mut conn = None;
            let mut r = WriterReport::default();
            while !flag.load(Ordering::Relaxed) {
                match try_write(
                    &t,
                    &mut conn,
                    "INSERT INTO t (at) VALUES (clock_timestamp())",
                ) {
                    Ok(()) => {
                        r.commits += 1;
                        r.last_commit = Some(Instant::now());
                        count.store(r.commits, Ordering::Relaxed);
                    }
                    Err(e) => r.last_error = Some(e),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            r
        });
        Writer {
            stop,
            committed,
            handle: Some(handle),
        }
    }

    /// Commits so far.
    pub(crate) fn commits(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    pub(crate) fn finish(mut self) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("writer running")
            .join()
            .expect("writer thread")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A cluster of a primary and `standbys` standbys on their own hosts, table
/// `t` created, repmgrd on every node (started after the cluster, so they
/// stop first), heartbeats settled.
pub(crate) fn cluster(
    standbys: usize,
    extra: impl Fn(i32) -> String,
) -> (HostCluster, Vec<Daemon>) {
    cluster_with(standbys, &[], extra)
}

/// [`cluster`] with extra postgresql.conf lines on every node.
pub(crate) fn cluster_with(
    standbys: usize,
    pg_conf: &[&str],
    extra: impl Fn(i32) -> String,
) -> (HostCluster, Vec<Daemon>) {
    let (c, daemons, _) = cluster_since_with(standbys, pg_conf, extra);
    (c, daemons)
}

/// [`cluster`], and when its first repmgrd was started.
pub(crate) fn cluster_since(
    standbys: usize,
    extra: impl Fn(i32) -> String,
) -> (HostCluster, Vec<Daemon>, Instant) {
    cluster_since_with(standbys, &[], extra)
}

fn cluster_since_with(
    standbys: usize,
    pg_conf: &[&str],
    extra: impl Fn(i32) -> String,
) -> (HostCluster, Vec<Daemon>, Instant) {
    let c = crate::fixture::registered_cluster_on_hosts_with(standbys, pg_conf, extra);
    c.nodes[0]
        .pg
        .execute("CREATE TABLE t (id bigserial PRIMARY KEY, at timestamptz)");
    let started = Instant::now();
    let daemons: Vec<Daemon> = c.nodes.iter().map(|n| n.repmgrd()).collect();
    wait_heartbeats(&c.nodes[0], c.nodes.len());
    (c, daemons, started)
}

// ------------------------------------------------------------------ tests

/// Test 1: the primary's host is cut from both standbys.
#[test]
fn an_isolated_primary_stops_writing_before_a_standby_is_promoted_and_stays_fenced() {
    let (c, daemons) = cluster(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    let writer = Writer::start(n1);
    poll_until(
        Duration::from_secs(60),
        "the writer commits on node1",
        || answer(n1, "SELECT count(*) > 0 FROM t").as_deref() == Some("t"),
    );

    let cut = Instant::now();
    n1.host().cut();

    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let (new, other) = if is_primary(n2) { (n2, n3) } else { (n3, n2) };
    let other_name = other.pg.name.clone();
    poll_until(
        Duration::from_secs(60),
        &format!("{other_name} follows {}", new.pg.name),
        || streams_from(new, &other_name),
    );
    assert!(
        other.pg.is_in_recovery(),
        "only one standby may be promoted\n{}",
        tails(&daemons)
    );
    assert!(
        fenced_or_down(n1),
        "the isolated primary node1 is neither fenced nor stopped after the promotion of {}\n{}",
        new.pg.name,
        tails(&daemons)
    );
    let w = writer.finish();

    n1.host().heal();
    // After healing, node1 learns of the promotion and stays fenced; the
    // event is recorded on the new primary.
    poll_until(
        Duration::from_secs(60),
        "node1's repmgrd records that it was superseded (repmgrd_fence on the new primary)",
        || {
            answer(
                new,
                "SELECT count(*) > 0 FROM repmgr.events WHERE event = 'repmgrd_fence' AND node_id = 1 AND details LIKE '%newer timeline%'",
            )
            .as_deref()
                == Some("t")
        },
    );
    // A few more monitoring cycles with the link up: nothing unfences it.
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || fenced_or_down(n1)) {
        panic!(
            "node1 is writable again after the heal ({e}), although {} was promoted\n{}",
            new.pg.name,
            tails(&daemons)
        );
    }
    let r = new.repmgr(&["cluster", "show"]);
    assert!(
        r.stdout.contains("| node1 | primary | ! fenced ") || !n1.pg.is_running(),
        "cluster show on the new primary does not mark node1 as fenced:\n{r}"
    );
    let report = checker.finish();

    // The order that matters: node1's last accepted write came before the
    // new primary first accepted one.
    let last_old = w
        .last_commit
        .expect("the writer never committed on node1 before the cut");
    let first_new = *report
        .first_accepted
        .get(&new.pg.name)
        .unwrap_or_else(|| panic!("the checker never saw {} accept a write", new.pg.name));
    let probe_old = report.last_accepted.get("node1").copied();
    eprintln!(
        "[partition] cut at +0: node1's last write committed at +{} (checker: +{}), {} first writable at +{} ({} commits by the writer, last error: {:?})",
        secs(last_old.saturating_duration_since(cut)),
        probe_old.map_or("-".into(), |t| secs(t.saturating_duration_since(cut))),
        new.pg.name,
        secs(first_new.saturating_duration_since(cut)),
        w.commits,
        w.last_error
    );
    assert!(
        last_old < first_new,
        "node1 accepted a write {} after {} became writable (cut at +0: node1 last +{}, {} first +{})\n{}",
        secs(last_old.duration_since(first_new)),
        new.pg.name,
        secs(last_old.saturating_duration_since(cut)),
        new.pg.name,
        secs(first_new.saturating_duration_since(cut)),
        tails(&daemons)
    );
    assert!(
        probe_old.is_none_or(|t| t < first_new),
        "the checker saw node1 accept a write after {} became writable",
        new.pg.name
    );
    assert!(
        daemons[0].output().contains("fenced: read-only"),
        "node1 stopped taking writes, but not by its repmgrd's fence:\n{}",
        daemons[0].output_tail(40)
    );
    drop(daemons);
}

/// Test 1, second half: with `auto_rejoin`, the old primary rejoins the new
/// primary as a standby after the heal (pg_rewind when it diverged), with
/// no fence setting left: promoted later, it takes writes.
#[test]
fn an_isolated_primary_rejoins_the_new_primary_after_the_heal_with_auto_rejoin() {
    let (c, daemons) = cluster(2, |id| format!("{}\nauto_rejoin=true", safe(id)));
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.host().cut();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let new = if is_primary(n2) { n2 } else { n3 };
    n1.host().heal();
    poll_until(
        Duration::from_secs(60),
        &format!("node1 streams from {} as a standby", new.pg.name),
        || streams_from(new, "node1"),
    );
    assert!(n1.pg.is_in_recovery());
    checker.finish();
    // Its read-only fence (applied before the stop) is not left behind: a
    // later promotion of node1 gives a writable primary (issue 11).
    assert!(
        daemons[0].output().contains("fenced: read-only"),
        "node1 was never fenced read-only: nothing to check\n{}",
        daemons[0].output_tail(40)
    );
    assert_eq!(
        crate::fixture::auto_conf_fence(n1),
        None,
        "auto_rejoin left the fence setting in node1's postgresql.auto.conf"
    );
    drop(daemons);
    n1.pg.execute("SELECT pg_promote()");
    n1.pg.execute("INSERT INTO t (at) VALUES (now())");
}

/// Test 1 with `fence_mode=stop`: the isolated primary's server is shut
/// down before a standby is promoted; once the link is back its repmgrd
/// prepares the data directory, so a restart by hand gives a standby.
#[test]
fn an_isolated_primary_with_fence_mode_stop_is_stopped_and_restarts_as_a_standby() {
    let (c, daemons) = cluster(2, |id| format!("{}\nfence_mode=stop", safe(id)));
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.host().cut();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let new = if is_primary(n2) { n2 } else { n3 };
    assert!(
        !n1.pg.is_running(),
        "fence_mode=stop: node1's server still runs after the promotion of {}\n{}",
        new.pg.name,
        tails(&daemons)
    );
    n1.host().heal();
    poll_until(
        Duration::from_secs(60),
        "node1's repmgrd prepares the data directory (standby.signal) once it sees the new primary",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    n1.pg.start();
    assert!(
        n1.pg.is_in_recovery(),
        "node1 restarted by hand as a primary\n{}",
        tails(&daemons)
    );
    // Whether it can stream depends on how far its WAL got past the fork
    // (that is node rejoin's business); it must only never take a write.
    assert!(
        n1.pg
            .try_execute("INSERT INTO t (at) VALUES (now())")
            .is_err(),
        "node1 restarted as a standby but accepted a write"
    );
    checker.finish();
    drop(daemons);
}

/// As the test above, but node1's repmgrd is restarted (a host reboot, an
/// operator) after the promotion, while node1 is still cut off and its
/// server stopped by its fence. The new repmgrd must not exit for want of
/// its server: from the state file (the fence) and the cached node list it
/// goes on, and once the link is back it prepares the data directory, so
/// a start by hand still gives a standby. (Before, it exited at once, and
/// that start gave a second writable primary.)
#[test]
fn a_fenced_primary_s_repmgrd_restarted_while_its_server_is_stopped_still_prepares_a_standby() {
    let (c, mut daemons) = cluster(2, |id| format!("{}\nfence_mode=stop", safe(id)));
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.host().cut();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    assert!(
        !n1.pg.is_running(),
        "fence_mode=stop: node1's server still runs after the promotion\n{}",
        tails(&daemons)
    );
    daemons[0].stop(Duration::from_secs(30));
    daemons[0] = n1.repmgrd();
    daemons[0].wait_for_output(
        "monitoring from the cached node list",
        Duration::from_secs(10),
    );
    if let Err(e) = holds_for(Duration::from_secs(5), STEP, || daemons[0].is_running()) {
        panic!(
            "node1's restarted repmgrd exited ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(!n1.pg.is_running(), "node1's server started by its repmgrd");
    n1.host().heal();
    poll_until(
        Duration::from_secs(60),
        "node1's restarted repmgrd prepares the data directory (standby.signal) once it sees the new primary",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    n1.pg.start();
    assert!(
        n1.pg.is_in_recovery(),
        "node1 restarted by hand as a primary\n{}",
        tails(&daemons)
    );
    assert!(
        n1.pg
            .try_execute("INSERT INTO t (at) VALUES (now())")
            .is_err(),
        "node1 restarted as a standby but accepted a write"
    );
    checker.finish();
    drop(daemons);
}

/// Test 2: one standby's host is cut: the others still form a majority, the
/// lone standby cannot; nobody is promoted or fenced.
#[test]
fn an_isolated_standby_causes_no_failover_and_streams_again_after_the_heal() {
    let (c, daemons) = cluster(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);

    n3.host().cut();
    // The cut took: node1 loses node3's WAL receiver.
    poll_until(
        Duration::from_secs(60),
        "node1 no longer streams to node3",
        || !streams_from(n1, "node3"),
    );
    // node3's repmgrd gives up on node1 and holds an election it cannot win.
    daemons[2].wait_for_output("failover cancelled", Duration::from_secs(60));
    if let Err(e) = holds_for(Duration::from_secs(4), STEP, || {
        !is_primary(n2) && !is_primary(n3)
    }) {
        panic!(
            "a standby was promoted while only node3 was cut off ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        !fenced_or_down(n1) && is_primary(n1),
        "node1 still sees node2 (2 of 3 voters) and must not be fenced\n{}",
        tails(&daemons)
    );
    n1.pg.execute("INSERT INTO t (at) VALUES (now())");

    n3.host().heal();
    poll_until(
        Duration::from_secs(60),
        "node3 streams from node1 again",
        || streams_from(n1, "node3"),
    );
    poll_until(
        Duration::from_secs(60),
        "node3 replays node1's writes",
        || answer(n3, "SELECT count(*) FROM t") == answer(n1, "SELECT count(*) FROM t"),
    );
    assert!(n2.pg.is_in_recovery() && n3.pg.is_in_recovery());
    assert!(promotions_logged(&daemons).is_empty());
    checker.finish();
    drop(daemons);
}

/// Test 2 at the worst moment: node3's repmgrd has a query in flight on
/// the primary when the link is cut (its heartbeat, made to wait on a row
/// lock there). The primary acknowledged the request; its answer is lost
/// in the partition. Nothing is unacknowledged on node3's side, so the
/// connection's tcp_user_timeout never fires, and keepalives (default idle
/// 2 h) start too late: only a deadline of repmgrd's own can end the wait.
/// node3's repmgrd must still give up on node1 and cancel the failover.
/// (Before queries had client-side deadlines, repmgrd blocked in that
/// heartbeat: the cause of the test above failing now and then.)
#[test]
fn an_isolated_standby_gives_up_on_its_primary_even_with_a_query_in_flight_at_the_cut() {
    let (c, daemons) = cluster(2, safe);
    let (n1, n3) = (&c.nodes[0], &c.nodes[2]);
    let mut lock = n1.pg.try_socket_client().expect("a session on node1");
    lock.batch_execute("BEGIN; SELECT 1 FROM repmgr.repmgrd_status WHERE node_id = 3 FOR UPDATE")
        .expect("locking node3's heartbeat row");
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
            AND client_addr = '{}' AND query LIKE '%repmgrd_status%'",
        n3.host().ip
    );
    poll_until(
        Duration::from_secs(60),
        "node3's heartbeat waiting on the lock on node1",
        || answer(n1, &waiting).as_deref() == Some("1"),
    );
    n3.host().cut();
    // Now node1 answers, into the partition.
    lock.batch_execute("COMMIT").expect("releasing the lock");
    daemons[2].wait_for_output("failover cancelled", Duration::from_secs(60));
    n3.host().heal();
    drop(daemons);
}

/// Test 3, default rule: two nodes and no witness. The lone standby can
/// never see a majority of the two voters, so nothing is promoted; the
/// primary (which could not be outvoted either) keeps taking writes.
#[test]
fn two_nodes_without_a_witness_never_fail_over_on_a_partition() {
    let (c, daemons) = cluster(1, safe);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    daemons[1].wait_for_output(
        "automatic failover needs a majority",
        Duration::from_secs(60),
    );
    let checker = Checker::start(n1, &[n1, n2]);

    n1.host().cut();
    daemons[1].wait_for_output("failover cancelled", Duration::from_secs(60));
    let cancelled = Instant::now();
    // The primary keeps writing through the partition.
    let writer = Writer::start(n1);
    let no_promotion = holds_for(Duration::from_secs(4), STEP, || !is_primary(n2));
    let w = writer.finish();
    if let Err(e) = no_promotion {
        panic!(
            "node2 was promoted without a majority ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        w.last_commit.is_some_and(|t| t > cancelled),
        "node1 (by design never fenced in a two-voter cluster) stopped taking writes: {w:?}\n{}",
        tails(&daemons)
    );
    assert!(!fenced_or_down(n1));

    n1.host().heal();
    poll_until(
        Duration::from_secs(60),
        "node2 streams from node1 again",
        || streams_from(n1, "node2"),
    );
    assert!(n2.pg.is_in_recovery());
    checker.finish();
    drop(daemons);
}

/// Test 3, `failover_quorum=repmgr` (repmgr's old rule, opted into): the
/// standby is promoted across the partition, and when the link returns the
/// old primary is fenced as superseded.
#[test]
fn two_nodes_with_the_repmgr_rule_fail_over_and_the_old_primary_is_fenced_when_the_link_returns() {
    let (c, daemons) = cluster(1, |id| format!("{}\nfailover_quorum=repmgr", safe(id)));
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);

    n1.host().cut();
    poll_until(Duration::from_secs(60), "node2 promoted", || is_primary(n2));
    // Under repmgr's rule this is a split brain until the link returns:
    // node1 still takes writes (no checker here; that is the accepted risk).
    n1.host().heal();
    let healed = Instant::now();
    let fenced = try_poll_until(Duration::from_secs(60), || fenced_or_down(n1));
    assert!(
        fenced,
        "node1 still accepts writes {} after the link returned, although node2 was promoted (timeline {:?} vs {:?})\n{}",
        secs(healed.elapsed()),
        answer(n1, "SELECT timeline_id FROM pg_control_checkpoint()"),
        answer(n2, "SELECT timeline_id FROM pg_control_checkpoint()"),
        tails(&daemons)
    );
    poll_until(
        Duration::from_secs(60),
        "repmgrd_fence recorded on node2",
        || {
            answer(
                n2,
                "SELECT count(*) > 0 FROM repmgr.events WHERE event = 'repmgrd_fence' AND node_id = 1",
            )
            .as_deref()
                == Some("t")
        },
    );
    drop(daemons);
}

/// A witness on its own host, registered with the primary, with repmgrd.
pub(crate) fn add_witness(c: &HostCluster, extra: &str) -> (Node, Daemon) {
    let host = c.net.host("witness");
    let pg = PgNode::builder("witness").on_host(&host).start();
    let id = c.nodes.len() as i32 + 1;
    let w = Node::configure(pg, id, extra);
    let primary = &c.nodes[0];
    let port = primary.pg.port.to_string();
    w.cmd(&["witness", "register", "-h", &primary.host().ip, "-p", &port])
        .run()
        .assert_success();
    let d = w.repmgrd();
    d.wait_for_output("running as witness", Duration::from_secs(60));
    (w, d)
}

/// Test 4a: primary, standby and witness; the primary is cut off: the
/// standby wins with its own vote and the witness's (2 of 3).
#[test]
fn with_a_witness_an_isolated_primary_is_replaced_with_the_witness_vote() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    wait_heartbeats(n1, 3);
    let checker = Checker::start(n1, &[n1, n2]);

    n1.host().cut();
    poll_until(Duration::from_secs(60), "node2 promoted", || is_primary(n2));
    let out = daemons[1].output();
    assert!(
        out.contains("election: 2 of 3 voter(s) visible") && out.contains("2 of 3 voters granted"),
        "node2 was not promoted on the witness's vote:\n{}",
        daemons[1].output_tail(40)
    );
    assert!(
        fenced_or_down(n1),
        "the isolated primary node1 is not fenced\n{}",
        tails(&daemons)
    );
    n1.host().heal();
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || fenced_or_down(n1)) {
        panic!("node1 unfenced after the heal ({e})\n{}", tails(&daemons));
    }
    checker.finish();
    drop(daemons);
    drop(w);
}

/// Test 4b: primary, standby and witness; the standby is cut off: it sees
/// 1 of 3 voters and cannot promote; the primary sees the witness (2 of 3)
/// and is not fenced.
#[test]
fn with_a_witness_an_isolated_standby_changes_nothing() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    wait_heartbeats(n1, 3);
    let checker = Checker::start(n1, &[n1, n2]);

    n2.host().cut();
    poll_until(
        Duration::from_secs(60),
        "node1 no longer streams to node2",
        || !streams_from(n1, "node2"),
    );
    daemons[1].wait_for_output("failover cancelled", Duration::from_secs(60));
    if let Err(e) = holds_for(Duration::from_secs(4), STEP, || {
        !is_primary(n2) && !fenced_or_down(n1)
    }) {
        panic!(
            "cutting the standby off changed something ({e}): node2 primary: {}, node1 fenced: {}\n{}",
            is_primary(n2),
            fenced_or_down(n1),
            tails(&daemons)
        );
    }
    n1.pg.execute("INSERT INTO t (at) VALUES (now())");
    n2.host().heal();
    poll_until(
        Duration::from_secs(60),
        "node2 streams from node1 again",
        || streams_from(n1, "node2"),
    );
    checker.finish();
    drop(daemons);
    drop(w);
}

/// Test 5: the old primary's postmaster is killed (its repmgrd keeps
/// running), the standbys fail over, and the old primary is started by
/// hand: it comes up as a standby or fenced, never as a writable primary.
#[test]
fn an_old_primary_started_by_hand_after_a_failover_accepts_no_write() {
    let (c, daemons) = cluster(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.pg.kill9();
    let killed = Instant::now();
    // A client that keeps trying to write on node1 from now on.
    let writer = Writer::start(n1);
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let new = if is_primary(n2) { n2 } else { n3 };
    // node1's repmgrd outlived its server: it prepares the data directory
    // (standby.signal + primary_conninfo) for whoever restarts it.
    poll_until(
        Duration::from_secs(60),
        "node1's repmgrd prepares the data directory (standby.signal)",
        || n1.pg.datadir.join("standby.signal").exists(),
    );

    n1.pg.start();
    let started = Instant::now();
    // A standby (standby.signal) or fenced: either way read-only. The
    // writer, trying all along, must never have committed (below).
    let safe =
        || answer(n1, "SELECT pg_is_in_recovery()").as_deref() == Some("t") || fenced_or_down(n1);
    poll_until(
        Duration::from_secs(60),
        "node1 restarted read-only (a standby, or fenced)",
        safe,
    );
    // While node1's repmgrd sees its server back: it stays read-only and
    // the writer gets nothing in.
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || {
        writer.commits() == 0 && safe()
    }) {
        panic!(
            "node1 did not stay read-only after its restart ({e}; {} commits)\n{}",
            writer.commits(),
            tails(&daemons)
        );
    }
    let w = writer.finish();
    assert_eq!(
        w.commits,
        0,
        "the old primary accepted {} client write(s) after its crash (last at +{} after the kill; started by hand at +{})\n{}",
        w.commits,
        w.last_commit
            .map_or("-".into(), |t| secs(t.saturating_duration_since(killed))),
        secs(started.duration_since(killed)),
        tails(&daemons)
    );
    poll_until(
        Duration::from_secs(60),
        &format!("repmgrd_fence for node1 recorded on {}", new.pg.name),
        || {
            answer(
                new,
                "SELECT count(*) > 0 FROM repmgr.events WHERE event = 'repmgrd_fence' AND node_id = 1",
            )
            .as_deref()
                == Some("t")
        },
    );
    checker.finish();
    drop(daemons);
}

/// Test 6: the primary's link flaps (cut 1 s, up 1 s) for 20 s: at most
/// one failover, and exactly one writable primary at the end.
#[test]
fn a_flapping_link_causes_at_most_one_failover() {
    flapping(Duration::from_secs(1), Duration::from_secs(1));
}

/// Test 6, harsher: cut 4 s (long enough for the primary to fence itself),
/// up 1 s, for 20 s.
#[test]
fn a_slowly_flapping_link_causes_at_most_one_failover() {
    flapping(Duration::from_secs(4), Duration::from_secs(1));
}

fn flapping(down: Duration, up: Duration) {
    let (c, daemons) = cluster(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    let h = n1.host().clone();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        h.cut();
        std::thread::sleep(down);
        h.heal();
        std::thread::sleep(up);
    }
    assert!(!h.is_cut());
    // Settle: exactly one node accepts writes (a fenced node refuses them).
    let writable = |n: &Node| is_primary(n) && !fenced_or_down(n);
    let settled = try_poll_until(Duration::from_secs(60), || {
        c.nodes.iter().filter(|n| writable(n)).count() == 1
    });
    let names: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| writable(n))
        .map(|n| n.pg.name.clone())
        .collect();
    assert!(
        settled,
        "after the flapping, writable primaries: {names:?} (want exactly one)\n{}",
        tails(&daemons)
    );
    let promotions = promotions_logged(&daemons);
    let mut events = BTreeSet::new();
    for n in &c.nodes {
        if let Ok(rows) = n.pg.try_socket_client().and_then(|mut cl| {
            cl.query(
                "SELECT node_id, event_timestamp::text FROM repmgr.events WHERE event = 'repmgrd_failover_promote'",
                &[],
            )
        }) {
            for r in rows {
                events.insert((r.get::<_, i32>(0), r.get::<_, String>(1)));
            }
        }
    }
    let fences = |what: &str| daemons[0].output().matches(what).count();
    eprintln!(
        "[partition] flapping ({down:?} down, {up:?} up): {} promotion(s) logged, {} promote event(s), node1 fenced {} / unfenced {} time(s), writable at the end: {names:?}",
        promotions.len(),
        events.len(),
        fences(") fenced: "),
        fences(") unfenced: ")
    );
    assert!(
        promotions.len() <= 1 && events.len() <= 1,
        "more than one failover during the flapping:\n{}\nevents: {events:?}",
        promotions.join("\n")
    );
    checker.finish();
    drop(daemons);
}
