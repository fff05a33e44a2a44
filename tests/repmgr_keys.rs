//! repmgr 5 keys with an effect on repmgrd (issue 12, item 4):
//! `failover_delay`, `repmgrd_exit_on_inactive_node`,
//! `repmgrd_standby_startup_timeout`, on real servers. (`promote_delay` and
//! `always_promote` are decided in the core: src/daemon/core/tests/keys.rs.)

use std::time::{Duration, Instant};

use crate::fixture::{registered_cluster_with, wait_replayed, writable};
use crate::harness::{poll_until, Daemon, ExitCode};

/// The upstream is declared failed ~2 s after it goes; node2 has priority
/// 0, so node3 is the candidate.
fn fast(id: i32) -> String {
    let priority = if id == 2 { 0 } else { 100 };
    format!(
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\npriority={priority}\nlog_level=INFO"
    )
}

/// The time of the first line of `log` containing `needle`, in seconds of
/// the day (repmgrd's `[YYYY-MM-DD HH:MM:SS]` prefix).
fn logged_at(log: &str, needle: &str) -> Option<u32> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let stamp = line.strip_prefix('[')?.get(11..19)?;
    let mut parts = stamp.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(h * 3600 + m * 60 + s)
}

#[test]
fn failover_delay_holds_the_election_back() {
    let nodes = registered_cluster_with(2, |id| {
        let delay = if id == 1 { "" } else { "\nfailover_delay=3" };
        format!("{}{delay}", fast(id))
    });
    let (n1, n3) = (&nodes[0], &nodes[2]);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    // Past the start-up quarantine (10 s), the primary's lease established.
    std::thread::sleep(Duration::from_secs(11));
    let killed = Instant::now();
    n1.pg.kill9();
    poll_until(Duration::from_secs(40), "node3 promoted", || writable(n3));
    let took = killed.elapsed();
    let log = daemons[2].output();
    // Declared failed after the attempts (~2 s), then the 3 s delay.
    assert!(
        took >= Duration::from_secs(3),
        "promoted {took:?} after the kill\n{}",
        daemons[2].output_tail(40)
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    let waiting = logged_at(&log, "(\"failover_delay\") before starting the election")
        .unwrap_or_else(|| panic!("no failover_delay line\n{log}"));
    let election =
        logged_at(&log, "election: ").unwrap_or_else(|| panic!("no election line\n{log}"));
    let winner = logged_at(&log, "this node is the winner")
        .unwrap_or_else(|| panic!("no winner line\n{log}"));
    // Whole seconds, truncated: 3 s apart or more.
    assert!(
        election >= waiting + 3,
        "election at {election}, delay logged at {waiting}\n{log}"
    );
    assert!(winner >= waiting + 3, "{log}");
    drop(daemons);
}

#[test]
fn an_inactive_record_with_exit_on_inactive_node_stops_repmgrd_at_start() {
    let nodes = registered_cluster_with(1, fast);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.pg
        .execute("UPDATE repmgr.nodes SET active = false WHERE node_id = 2");
    wait_replayed(n1, n2);
    n2.append_conf("repmgrd_exit_on_inactive_node=true");
    let mut d = Daemon::repmgrd("repmgrd-node2", &["-f", &n2.conf, "--daemonize=false"]);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)),
        ExitCode::BadConfig.code(),
        "{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.contains("this node is marked as inactive and cannot be used as a failover target"),
        "{out}"
    );
    assert!(out.contains("repmgrd_exit_on_inactive_node"), "{out}");
    assert!(!out.contains("starting monitoring"), "{out}");
    assert_eq!(
        n1.query("SELECT active::text FROM repmgr.nodes WHERE node_id = 2"),
        "false"
    );

    // Without it (repmgr's default), the record is set active and
    // monitoring starts.
    n2.append_conf("repmgrd_exit_on_inactive_node=false");
    let d = n2.repmgrd();
    assert!(
        d.output()
            .contains("setting node record for node \"node2\" (ID: 2) to \"active\""),
        "{}",
        d.output()
    );
    poll_until(Duration::from_secs(30), "node2's record active", || {
        n1.query("SELECT active::text FROM repmgr.nodes WHERE node_id = 2") == "true"
    });
}

#[test]
fn after_a_follow_repmgrd_waits_standby_startup_timeout_for_the_local_server() {
    let nodes = registered_cluster_with(2, fast);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    // node2 follows with a command that leaves its server down.
    let stop = format!(
        "{}/pg_ctl -D {} -m fast -w stop",
        crate::harness::pg_bindir().display(),
        n2.pg.datadir.display()
    );
    n2.append_conf(&format!(
        "follow_command='{stop}'\nrepmgrd_standby_startup_timeout=3"
    ));
    let daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    std::thread::sleep(Duration::from_secs(11));
    let killed = Instant::now();
    n1.pg.kill9();
    poll_until(Duration::from_secs(40), "node3 promoted", || writable(n3));
    let needle = "unable to reconnect to local node \"node2\" (ID: 2) within 3 seconds";
    poll_until(
        Duration::from_secs(40),
        "node2 gives up on its server",
        || daemons[1].output().contains(needle),
    );
    assert!(killed.elapsed() < Duration::from_secs(60));
    let log = daemons[1].output();
    let follow = logged_at(&log, "attempting to follow new primary")
        .unwrap_or_else(|| panic!("no follow line\n{log}"));
    let gave_up = logged_at(&log, needle).expect("polled for above");
    assert!(
        gave_up >= follow + 3,
        "follow at {follow}, gave up at {gave_up}\n{log}"
    );
    assert!(gave_up <= follow + 30, "{log}");
    assert!(!n2.pg.is_running());
    drop(daemons);
}
