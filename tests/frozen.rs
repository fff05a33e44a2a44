//! A frozen primary host and a server that goes silent mid-session
//! (issue 10): nothing repmgrd waits on may outlast its deadline.
//!
//! A frozen host (a paused VM, a hung kernel) still acknowledges TCP, so
//! no connection closes and no server-side timeout ever fires: only the
//! client's own deadlines (db::Session, db::connect) end the waits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::fixture::{registered_cluster_with, writable, Node};
use crate::harness::pg::Frozen;
use crate::harness::{holds_for, poll_until, try_poll_until, Daemon};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// reconnect_attempts (N), reconnect_interval (I), the conninfo's
/// connect_timeout (T).
const N: u64 = 3;
const I: u64 = 1;
const T: u64 = 2;

fn fast(_: i32) -> String {
    format!(
        "failover=automatic\nreconnect_attempts={N}\nreconnect_interval={I}\nmonitor_interval_secs=1\nlog_level=INFO"
    )
}

/// A repmgrd's whole process group stopped (SIGSTOP) until dropped.
pub(crate) struct FrozenDaemon(i32);

impl FrozenDaemon {
    pub(crate) fn new(d: &Daemon) -> FrozenDaemon {
        let _ = killpg(Pid::from_raw(d.pid()), Signal::SIGSTOP);
        FrozenDaemon(d.pid())
    }
}

impl Drop for FrozenDaemon {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

/// Waits until every repmgrd has a fresh heartbeat on the primary and the
/// start-up quarantine (10 s, in which no repmgrd grants a vote) is over.
fn settled(primary: &Node, daemons: usize, started: Instant) {
    let sql = "SELECT count(*) FROM repmgr.repmgrd_status
                WHERE pid IS NOT NULL AND last_updated > now() - interval '2 seconds'";
    poll_until(Duration::from_secs(60), "fresh heartbeats", || {
        primary
            .pg
            .try_query_one_string(sql)
            .ok()
            .flatten()
            .as_deref()
            == Some(daemons.to_string().as_str())
    });
    let quarantine = Duration::from_secs(11);
    std::thread::sleep(quarantine.saturating_sub(started.elapsed()));
}

fn tails(daemons: &[Daemon]) -> String {
    daemons
        .iter()
        .map(|d| {
            format!(
                "--- {} ---\n{}\n{}",
                d.name,
                d.output_tail(40),
                d.diagnostics()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Takes no write from a new session: in recovery, fenced read-only, or
/// not answering.
fn refuses_writes(n: &Node) -> bool {
    match n
        .pg
        .try_execute("CREATE TEMP TABLE frozen_probe (x int); INSERT INTO frozen_probe VALUES (1)")
    {
        Ok(()) => false,
        Err(_) => true,
    }
}

/// Every process of the primary's host (postmaster, backends, its
/// repmgrd) stopped for longer than the failover window: a standby is
/// promoted within the documented worst case; once the host resumes, the old
/// primary takes no write from a new session after about a monitoring
/// interval, and the session a client held before the freeze is ended.
#[test]
fn a_frozen_primary_host_is_replaced_and_takes_no_write_once_it_resumes() {
    // Each repmgrd's HTTP endpoint too: what a load balancer is told.
    let http: Vec<u16> = (0..3).map(|_| crate::harness::pg::free_port()).collect();
    let nodes = registered_cluster_with(2, |id| {
        format!(
            "{}\nhttp_listen='127.0.0.1:{}'",
            fast(id),
            http[id as usize - 1]
        )
    });
    let started = Instant::now();
    let d: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    settled(&nodes[0], 3, started);
    // A client's session opened before the freeze.
    let mut held = match nodes[0].pg.try_client() {
        Ok(c) => c,
        Err(e) => panic!(
            "connecting to node1: {e:?}\nsessions: {}",
            nodes[0].query(
                "SELECT string_agg(application_name || ':' || coalesce(state, '-'), ', ') FROM pg_stat_activity"
            )
        ),
    };
    held.batch_execute("CREATE TABLE held (x int)").unwrap();

    let frozen_at = Instant::now();
    let daemon = FrozenDaemon::new(&d[0]);
    let server = nodes[0].pg.freeze();
    let promoted = try_poll_until(Duration::from_secs(60), || {
        writable(&nodes[1]) || writable(&nodes[2])
    });
    let took = frozen_at.elapsed();
    // repmgrd.8, TIMING, "Worst case to fail over", hung primary:
    // M + max(W, T) + T + 2 × (R + 0.25 s) + the vote rounds and the
    // promotion, with W = (N − 1) × I (R, the vote rounds and the
    // promotion take milliseconds here: 0.1 s for them all).
    let m = 1;
    let w = (N - 1) * I;
    let documented = Duration::from_millis(1000 * (m + w.max(T) + T) + 2 * 250 + 100);
    // Issue 10's bound: (N − 1) × I + T + 2 s.
    let target = Duration::from_secs((N - 1) * I + T + 2);
    eprintln!(
        "frozen primary host: a standby was promoted {:.2} s after the freeze (documented worst case {:.1} s; issue 10's bound {} s)",
        took.as_secs_f64(),
        documented.as_secs_f64(),
        target.as_secs()
    );
    if !promoted {
        drop((server, daemon));
        panic!(
            "no standby promoted while node1's host was frozen\n{}",
            tails(&d)
        );
    }
    // A loaded test machine may add a scheduling delay on top of the
    // bound.
    assert!(
        took <= target + Duration::from_secs(2),
        "promotion took {took:?}, documented worst case {documented:?}, issue 10's bound {target:?}\n{}",
        tails(&d)
    );

    let new = if writable(&nodes[1]) { 1 } else { 2 };
    // Resumed: the old primary's repmgrd finds its lease long gone and
    // fences before it serves another write; its /primary never says 200
    // (from its first answer on), the new primary's does.
    drop(server);
    drop(daemon);
    let old_vouched = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (v, w, port) = (old_vouched.clone(), watching.clone(), http[0]);
        std::thread::spawn(move || {
            while w.load(Ordering::SeqCst) {
                if crate::http::status(port, "/primary") == 200 {
                    v.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let fenced = try_poll_until(Duration::from_secs(5), || refuses_writes(&nodes[0]));
    assert!(
        fenced,
        "the resumed old primary still takes writes\n{}",
        tails(&d)
    );
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || refuses_writes(&nodes[0])) {
        panic!(
            "the resumed old primary took a write again ({e})\n{}",
            tails(&d)
        );
    }
    assert!(
        held.batch_execute("INSERT INTO held VALUES (1)").is_err(),
        "a session held from before the freeze still writes on the old primary"
    );
    poll_until(
        Duration::from_secs(10),
        "/primary 200 on the new primary",
        || crate::http::status(http[new], "/primary") == 200,
    );
    // The old primary learns it was superseded (or is a standby already).
    poll_until(
        Duration::from_secs(10),
        "node1 reports itself superseded",
        || {
            let m = crate::http::request(http[0], "GET", "/metrics").map(|a| a.body);
            m.is_ok_and(|m| {
                let pm = crate::http::parse_prometheus(&m);
                pm.get("repmgr_superseded") == Some(&1.0)
                    || pm.get("repmgr_role{role=\"standby\"}") == Some(&1.0)
            })
        },
    );
    watching.store(false, Ordering::SeqCst);
    let _ = watcher.join();
    assert!(
        !old_vouched.load(Ordering::SeqCst),
        "the resumed old primary's /primary said 200\n{}",
        tails(&d)
    );
}

/// A forwarding proxy in front of a server that can be told to go silent:
/// from then on it passes nothing either way and closes nothing, so every
/// connection through it stays established and unanswered, as a frozen
/// server's are (new connections are accepted and left unanswered too).
struct SilentProxy {
    port: u16,
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl SilentProxy {
    fn new(target: u16) -> SilentProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (silent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if s.load(Ordering::SeqCst) {
                            held.push(client);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (s, st) = (s.clone(), st.clone());
                            std::thread::spawn(move || pump(from, to, &s, &st));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentProxy { port, silent, stop }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until told to go silent (then holds both open,
/// passing nothing) or to stop.
fn pump(mut from: TcpStream, mut to: TcpStream, silent: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 8192];
    while !stop.load(Ordering::SeqCst) {
        if silent.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The standby's repmgrd reaches its primary through a proxy that goes
/// silent mid-session: the established monitoring connection stops
/// answering. repmgrd gives up on it within its deadlines (it starts
/// reconnection attempts), and answers SIGTERM within about a second
/// while its checks still wait on the silent connection.
#[test]
fn a_primary_that_goes_silent_mid_session_costs_repmgrd_only_its_deadline() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=manual\nreconnect_attempts=30\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
            .to_string()
    });
    let proxy = SilentProxy::new(nodes[0].pg.port);
    // The standby's repmgrd finds its upstream by the metadata's conninfo.
    nodes[0].pg.execute(&format!(
        "UPDATE repmgr.nodes SET conninfo = 'host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout={T}' WHERE node_id = 1",
        proxy.port
    ));
    crate::fixture::wait_all_replayed(&nodes);
    let mut d = nodes[1].repmgrd();
    d.wait_for_output("monitoring upstream node", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));

    let silent_at = Instant::now();
    proxy.go_silent();
    // One monitoring interval to notice, then the query's deadline.
    let noticed = try_poll_until(Duration::from_secs(30), || {
        d.output()
            .contains("unable to connect to upstream node \"node1\"")
    });
    let took = silent_at.elapsed();
    eprintln!(
        "silent primary: repmgrd began reconnection attempts {:.2} s after the link went silent",
        took.as_secs_f64()
    );
    assert!(
        noticed,
        "repmgrd never noticed the silent primary\n{}",
        tails(&[d])
    );
    // Let the next checks start waiting on the silent proxy, then stop.
    std::thread::sleep(Duration::from_millis(1500));
    stops_on_sigterm_within_about_a_second(&mut d, "silent primary");
    drop(proxy);
}

/// SIGTERM: repmgrd exits 0 within about a second (0.1 s polls, then at
/// most 1 s of final writes), with an allowance for a loaded machine.
fn stops_on_sigterm_within_about_a_second(d: &mut Daemon, case: &str) {
    let term_at = Instant::now();
    d.signal(Signal::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(10));
    let exit = term_at.elapsed();
    eprintln!(
        "{case}: repmgrd exited {:.2} s after SIGTERM",
        exit.as_secs_f64()
    );
    assert_eq!(code, 0, "{}", d.output_tail(30));
    assert!(
        exit < Duration::from_secs(3),
        "SIGTERM took {exit:?}\n{}",
        d.output_tail(30)
    );
}

/// SIGTERM while the primary is frozen: the standby's repmgrd, waiting on
/// the frozen server, exits within about a second.
#[test]
fn repmgrd_answers_sigterm_within_a_second_while_its_primary_is_frozen() {
    let nodes = registered_cluster_with(1, |_| {
        "failover=manual\nreconnect_attempts=30\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
            .to_string()
    });
    let mut d = nodes[1].repmgrd();
    d.wait_for_output("monitoring upstream node", Duration::from_secs(60));
    let frozen = Frozen::pids(nodes[0].pg.server_pids());
    // Into the checks that wait on the frozen server.
    let waiting = try_poll_until(Duration::from_secs(30), || {
        d.output().contains("2 of 30 attempts")
    });
    assert!(
        waiting,
        "repmgrd never noticed the frozen primary\n{}",
        d.output_tail(30)
    );
    stops_on_sigterm_within_about_a_second(&mut d, "frozen primary");
    drop(frozen);
}
