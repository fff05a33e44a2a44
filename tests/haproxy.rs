//! A real HAProxy (Debian's package) in front of three nodes, checking
//! repmgrd's `/primary` with the shipped examples/haproxy.cfg (issue 13):
//! after kill -9 of the primary, writes through HAProxy reach the new
//! primary soon after its promotion and none lands on the old primary,
//! also once that is started again by hand.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fixture::{registered_cluster_with, writable, Node};
use crate::harness::pg::free_port;
use crate::harness::{poll_until, run_as_user, user_tempdir, write_user_file, Daemon};

/// examples/haproxy.cfg with this test's addresses: the frontends on
/// loopback ports, each server's PostgreSQL and endpoint ports.
fn config(front: (u16, u16), servers: &[(u16, u16)]) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/haproxy.cfg"),
    )
    .expect("reading examples/haproxy.cfg");
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        let line = if t.starts_with("bind *:5000") {
            format!("    bind 127.0.0.1:{}", front.0)
        } else if t.starts_with("bind *:5001") {
            format!("    bind 127.0.0.1:{}", front.1)
        } else if let Some(rest) = t.strip_prefix("server node") {
            let i: usize = rest[..1].parse().unwrap();
            let (pg, http) = servers[i - 1];
            line.replace(&format!("node{i}:5432"), &format!("127.0.0.1:{pg}"))
                .replace("check port 8008", &format!("check port {http}"))
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
        // HAProxy's own account of each check, for a failing test's log.
        if line.trim() == "global" {
            out.push_str("    log stdout format rfc5424 local0\n");
        }
        if line.trim() == "defaults" {
            out.push_str("    log global\n    option log-health-checks\n");
        }
    }
    let live: Vec<&str> = out
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        live.iter()
            .all(|l| !l.contains("8008") && !l.contains("*:500")),
        "{out}"
    );
    out
}

/// One commit through HAProxy: when, and which server's port took it.
#[derive(Debug, Clone, Copy)]
struct Commit {
    at: Instant,
    port: u16,
}

/// A client that writes through HAProxy every 20 ms, reconnecting after
/// every error, as an application behind a load balancer does.
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<Mutex<Vec<Commit>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(port: u16) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(Mutex::new(Vec::new()));
        let (st, cs) = (stop.clone(), commits.clone());
        let thread = std::thread::spawn(move || {
            let mut conn: Option<postgres::Client> = None;
            while !st.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = postgres::Config::new()
                        .host("127.0.0.1")
                        .port(port)
                        .user("postgres")
                        .dbname("postgres")
                        .connect_timeout(Duration::from_secs(1))
                        .connect(postgres::NoTls)
                        .ok();
                }
                if let Some(c) = conn.as_mut() {
                    let r = c.query_one(
                        "INSERT INTO through_haproxy (port) VALUES (current_setting('port')::int) RETURNING port",
                        &[],
                    );
                    match r {
                        Ok(row) => cs.lock().unwrap().push(Commit {
                            at: Instant::now(),
                            port: u16::try_from(row.get::<_, i32>(0)).unwrap(),
                        }),
                        Err(_) => conn = None,
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            commits,
            thread: Some(thread),
        }
    }

    fn commits(&self) -> Vec<Commit> {
        self.commits.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn conf(http: &[u16], id: i32) -> String {
    format!(
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO\nhttp_listen='127.0.0.1:{}'",
        http[id as usize - 1]
    )
}

fn tails(daemons: &[Daemon]) -> String {
    daemons
        .iter()
        .map(|d| format!("--- {} ---\n{}", d.name, d.output_tail(30)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn writes_through_haproxy_follow_the_failover_and_never_reach_the_old_primary() {
    let http: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<Node> = registered_cluster_with(2, |id| conf(&http, id));
    nodes[0].pg.execute(
        "CREATE TABLE through_haproxy (at timestamptz DEFAULT clock_timestamp(), port int)",
    );
    let d: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    let front = (free_port(), free_port());
    let servers: Vec<(u16, u16)> = nodes
        .iter()
        .zip(&http)
        .map(|(n, h)| (n.pg.port, *h))
        .collect();
    let dir = user_tempdir();
    let cfg = write_user_file(&dir.path().join("haproxy.cfg"), &config(front, &servers));
    let mut cmd = Command::new("haproxy");
    run_as_user(&mut cmd);
    cmd.args(["-db", "-f"]).arg(&cfg);
    let proxy = Daemon::spawn("haproxy", cmd);
    let ports: Vec<u16> = nodes.iter().map(|n| n.pg.port).collect();

    let writer = Writer::start(front.0);
    poll_until(
        Duration::from_secs(60),
        "a write through HAProxy commits on node1",
        || writer.commits().iter().any(|c| c.port == ports[0]),
    );
    assert!(
        writer.commits().iter().all(|c| c.port == ports[0]),
        "HAProxy sent a write to a standby: {:?}",
        writer.commits()
    );
    // Let the standbys' start-up quarantine end (no vote before it).
    std::thread::sleep(Duration::from_secs(11));

    let killed = Instant::now();
    nodes[0].pg.kill9();
    // When each standby first took writes, seen directly.
    let mut promoted: Option<(Instant, usize)> = None;
    let limit = Instant::now() + Duration::from_secs(60);
    while promoted.is_none() && Instant::now() < limit {
        for (i, n) in nodes.iter().enumerate().skip(1) {
            if writable(n) {
                promoted = Some((Instant::now(), i));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some((promoted_at, new)) = promoted else {
        panic!(
            "no standby promoted\n{}\n{}",
            tails(&d),
            proxy.output_tail(20)
        );
    };
    poll_until(
        Duration::from_secs(30),
        "a write through HAProxy on the new primary",
        || writer.commits().iter().any(|c| c.port == ports[new]),
    );
    let first_new = writer
        .commits()
        .iter()
        .find(|c| c.port == ports[new])
        .map(|c| c.at)
        .unwrap();
    let gap = first_new.saturating_duration_since(promoted_at);
    eprintln!(
        "[haproxy] kill -9 at +0: {} writable at +{:.2} s, first write through HAProxy there at +{:.2} s ({:.2} s after the promotion)",
        nodes[new].pg.name,
        promoted_at.duration_since(killed).as_secs_f64(),
        first_new.duration_since(killed).as_secs_f64(),
        gap.as_secs_f64()
    );
    // Issue 13's bound is 1.5 s; a loaded test machine may add a
    // scheduling delay on top of it (the figure above is the measure).
    assert!(
        gap <= Duration::from_millis(2_500),
        "writes through HAProxy reached the new primary {gap:?} after its promotion\n{}\n{}",
        tails(&d),
        proxy.output_tail(30)
    );

    // The old primary started again by hand: HAProxy sends it nothing.
    nodes[0].pg.start();
    // HAProxy checks each node at least every second: several times here.
    std::thread::sleep(Duration::from_secs(4));
    let commits = writer.commits();
    drop(writer);
    // The one writer's commits are in the order they were acknowledged.
    // Once one reached the new primary, every later one must have (a
    // commit node1 acknowledged just as it was killed may be timed after
    // the kill call: its thread runs late on a loaded machine).
    let first = commits
        .iter()
        .position(|c| c.port == ports[new])
        .expect("a commit on the new primary was seen above");
    let stray: Vec<&Commit> = commits[first..]
        .iter()
        .filter(|c| c.port != ports[new])
        .collect();
    assert!(
        stray.is_empty(),
        "{} writes through HAProxy after the first on the new primary {} went elsewhere (ports {ports:?}): {stray:?}\n{}\n{}",
        stray.len(),
        nodes[new].pg.name,
        tails(&d),
        proxy.output_tail(30)
    );
    // The old server holds no write from after the kill (one commit in
    // flight at the kill may have reached its WAL unacknowledged).
    let acked_before = commits.iter().filter(|c| c.port == ports[0]).count() as i64;
    if let Ok(Some(rows)) = nodes[0].pg.try_query_one_string(&format!(
        "SELECT count(*) FROM through_haproxy WHERE port = {}",
        ports[0]
    )) {
        let rows: i64 = rows.parse().unwrap();
        assert!(
            rows <= acked_before + 1,
            "the old primary holds {rows} writes, {acked_before} were acknowledged before the kill"
        );
    }
    eprintln!(
        "[haproxy] {} commits through HAProxy, {} from the first on {} on, all there",
        commits.len(),
        commits.len() - first,
        nodes[new].pg.name
    );
    drop(proxy);
    drop(d);
}
