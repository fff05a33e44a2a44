//! repmgrd control: service status / pause / unpause, daemon start / stop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::fixture::{registered_cluster, Node};
use crate::harness::ExitCode;
use crate::harness::{pid_alive, poll_until, try_poll_until, user_tempdir, Daemon};

/// A foreground repmgrd for `node`, with its own pid file in `dir`.
fn start_repmgrd(node: &Node, name: &str, dir: &Path) -> Daemon {
    let pid_file = dir.join(format!("{name}.pid"));
    Daemon::repmgrd(
        &format!("repmgrd-{name}"),
        &[
            "-f",
            &node.conf,
            "--daemonize=false",
            "-p",
            pid_file.to_str().unwrap(),
        ],
    )
}

/// `service status --csv` lines, split into fields.
fn status_csv(node: &Node) -> Vec<Vec<String>> {
    let r = node.repmgr(&["service", "status", "--csv"]);
    r.assert_success();
    r.stdout
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

/// The standby's own copy of its pause flag ("t"/"f").
fn local_paused(node: &Node, id: i32) -> String {
    node.pg
        .try_query_one_string(&format!(
            "SELECT paused FROM repmgr.repmgrd_status WHERE node_id = {id}"
        ))
        .ok()
        .flatten()
        .unwrap_or_default()
}

#[test]
fn service_status_pause_unpause_with_running_daemons() {
    let nodes = registered_cluster(1);
    let dir = user_tempdir();
    let d1 = start_repmgrd(&nodes[0], "node1", dir.path());
    let mut d2 = start_repmgrd(&nodes[1], "node2", dir.path());

    // Heartbeats reach the primary's table and the standby's copy.
    let mut csv = Vec::new();
    let ok = try_poll_until(Duration::from_secs(60), || {
        csv = status_csv(&nodes[1]);
        csv.len() == 2 && csv.iter().all(|f| f[4] == "1")
    });
    assert!(ok, "repmgrd never showed as running: {csv:?}");
    assert_eq!(
        csv[0],
        [
            "1",
            "node1",
            "primary",
            "1",
            "1",
            &d1.pid().to_string(),
            "0",
            "100",
            "-1",
            "default"
        ]
    );
    assert_eq!(
        csv[1][..8],
        [
            "2",
            "node2",
            "standby",
            "1",
            "1",
            &d2.pid().to_string(),
            "0",
            "100"
        ]
    );
    assert_eq!(csv[1][9], "default");

    let r = nodes[0].repmgr(&["service", "status"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            " ID | Name  | Role    | Status    | Upstream | repmgrd | PID{} | Paused? | Upstream last seen",
            " ".repeat(d1.pid().to_string().len().max(d2.pid().to_string().len()).max(3) - 3)
        ),
        "{r}"
    );
    assert!(
        lines[1].starts_with("----+-------+---------+-----------+----------+---------+-"),
        "{r}"
    );
    assert!(
        lines[2].starts_with(&format!(
            " 1  | node1 | primary | * running |          | running | {}",
            d1.pid()
        )),
        "{r}"
    );
    assert!(lines[2].contains("| no      | n/a"), "{r}");
    assert!(
        lines[3].starts_with(&format!(
            " 2  | node2 | standby |   running | node1    | running | {}",
            d2.pid()
        )),
        "{r}"
    );
    assert!(lines[3].contains("| no      |"), "{r}");
    assert!(
        lines[3].trim_end().ends_with("second(s) ago") || lines[3].trim_end().ends_with("n/a"),
        "{r}"
    );

    // --detail adds Location and Priority.
    let r = nodes[0].repmgr(&["service", "status", "--detail"]);
    r.assert_success();
    assert!(
        r.stdout.lines().next().unwrap().starts_with(
            " ID | Name  | Role    | Status    | Upstream | Location | Priority | repmgrd |"
        ),
        "{r}"
    );

    // Pause: every node, and the standby's own copy.
    let r = nodes[1].repmgr(&["service", "pause"]);
    r.assert_success();
    r.assert_stderr_contains("NOTICE: node 1 (node1) paused");
    r.assert_stderr_contains("NOTICE: node 2 (node2) paused");
    poll_until(Duration::from_secs(60), "standby copy paused", || {
        local_paused(&nodes[1], 2) == "t"
    });
    let csv = status_csv(&nodes[0]);
    assert_eq!(csv[0][6], "1", "{csv:?}");
    assert_eq!(csv[1][6], "1", "{csv:?}");
    let r = nodes[0].repmgr(&["service", "status"]);
    r.assert_success();
    assert!(
        r.stdout.lines().nth(2).unwrap().contains("| yes     |"),
        "{r}"
    );
    assert!(
        r.stdout.lines().nth(3).unwrap().contains("| yes     |"),
        "{r}"
    );

    // Unpause.
    let r = nodes[0].repmgr(&["service", "unpause"]);
    r.assert_success();
    r.assert_stderr_contains("NOTICE: node 2 (node2) unpaused");
    poll_until(Duration::from_secs(60), "standby copy unpaused", || {
        local_paused(&nodes[1], 2) == "f"
    });
    let csv = status_csv(&nodes[0]);
    assert_eq!((csv[0][6].as_str(), csv[1][6].as_str()), ("0", "0"));

    // A stopped repmgrd shows as not running; status still exits 0.
    d2.signal(Signal::SIGTERM);
    assert_eq!(
        d2.wait_exit(Duration::from_secs(30)),
        ExitCode::Success.code(),
        "{}",
        d2.output()
    );
    let mut csv = Vec::new();
    let ok = try_poll_until(Duration::from_secs(60), || {
        csv = status_csv(&nodes[0]);
        csv[1][4] == "0"
    });
    assert!(ok, "node2 still running: {csv:?}");
    assert_eq!(csv[0][4], "1", "{csv:?}");
    let r = nodes[0].repmgr(&["service", "status"]);
    r.assert_success();
    assert!(
        r.stdout.lines().nth(3).unwrap().contains("| not running |"),
        "{r}"
    );
    r.assert_stderr_contains("repmgrd is not running on node \"node2\" (ID: 2)");
    drop(d1);
}

#[test]
fn service_status_and_pause_without_daemons() {
    let nodes = registered_cluster(1);

    // Nothing has ever run: not running, nothing known.
    let r = nodes[0].repmgr(&["service", "status", "--csv"]);
    r.assert_success();
    assert_eq!(
        r.stdout,
        "1,node1,primary,1,0,-1,0,100,-1,default\n2,node2,standby,1,0,-1,0,100,-1,default\n"
    );
    let r = nodes[0].repmgr(&["service", "status"]);
    r.assert_success();
    assert_eq!(
        r.stdout.lines().nth(2).unwrap(),
        " 1  | node1 | primary | * running |          | not running | n/a | n/a     | n/a                "
    );

    // --dry-run changes nothing.
    let r = nodes[1].repmgr(&["service", "pause", "--dry-run"]);
    r.assert_success();
    r.assert_stderr_contains("would pause node 1 (node1)");
    r.assert_stderr_contains("would pause node 2 (node2)");
    assert_eq!(
        nodes[0].count("SELECT count(*) FROM repmgr.repmgrd_status"),
        0
    );

    // Pausing needs no running repmgrd; the flag replicates.
    let r = nodes[1].repmgr(&["service", "pause"]);
    r.assert_success();
    r.assert_stderr_contains("NOTICE: node 1 (node1) paused");
    poll_until(Duration::from_secs(60), "standby copy paused", || {
        local_paused(&nodes[1], 2) == "t"
    });

    // An unreachable node: n/a everywhere, exit 0.
    nodes[1].pg.stop();
    let r = nodes[0].repmgr(&["service", "status", "--csv"]);
    r.assert_success();
    assert_eq!(
        r.stdout.lines().nth(1).unwrap(),
        "2,node2,standby,0,-1,-1,-1,100,-1,default"
    );
    let r = nodes[0].repmgr(&["service", "status"]);
    r.assert_success();
    assert!(
        r.stdout
            .lines()
            .nth(3)
            .unwrap()
            .contains("| ? unreachable | ? node1  | n/a"),
        "{r}"
    );
    r.assert_stderr_contains("unable to connect to node \"node2\" (ID: 2)");
    r.assert_stderr_contains("HINT: execute with --verbose option");
}

#[test]
fn service_pause_upgrades_a_version_1_schema() {
    let nodes = registered_cluster(1);
    nodes[0]
        .pg
        .execute("DROP TABLE repmgr.repmgrd_status; DROP TABLE repmgr.schema_version;");
    let r = nodes[0].repmgr(&["service", "pause", "--dry-run"]);
    r.assert_success();
    r.assert_stderr_contains(
        "would upgrade the repmgr metadata schema on the primary from version 1 to 4",
    );
    let r = nodes[0].repmgr(&["service", "pause"]);
    r.assert_success();
    r.assert_stderr_contains(
        "upgrading the repmgr metadata schema on the primary from version 1 to 4",
    );
    assert_eq!(
        nodes[0].count("SELECT count(*) FROM repmgr.repmgrd_status WHERE paused"),
        2
    );
}

#[test]
fn service_pause_without_a_primary_exits_26() {
    let nodes = registered_cluster(1);
    nodes[0].pg.stop();
    let r = nodes[1].repmgr(&["service", "pause"]);
    r.assert_code(ExitCode::RepmgrdPause);
    r.assert_stderr_contains("unable to pause 2 node(s)");
    let r = nodes[1].repmgr(&["service", "unpause"]);
    r.assert_code(ExitCode::RepmgrdPause);
}

/// Kills a forked repmgrd at the end of the test, whatever happened.
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.0) {
            if pid_alive(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Appends lines to a node's repmgr.conf.
fn append_conf(node: &Node, extra: &str) {
    let text = std::fs::read_to_string(&node.conf).unwrap();
    crate::harness::write_user_file(Path::new(&node.conf), &format!("{text}{extra}\n"));
}

#[test]
fn daemon_start_and_stop_a_forked_repmgrd() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    let pid_file = dir.path().join("repmgrd.pid");
    let log = dir.path().join("repmgrd.log");
    append_conf(
        &p,
        &format!(
            "repmgrd_pid_file='{}'\nlog_file='{}'",
            pid_file.display(),
            log.display()
        ),
    );
    let _guard = KillOnDrop(pid_file.clone());

    let r = p.repmgr(&["daemon", "start", "--dry-run"]);
    r.assert_success();
    r.assert_stderr_contains("prerequisites for starting repmgrd met");
    r.assert_stderr_contains("repmgrd -f");
    assert!(!pid_file.exists());

    let r = p.repmgr(&["daemon", "start"]);
    r.assert_success();
    r.assert_stderr_contains("repmgrd was successfully started");
    let pid = read_pid(&pid_file).expect("pid file written");
    assert!(pid_alive(pid));
    poll_until(Duration::from_secs(60), "monitoring started", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("starting monitoring")
    });

    // Already running: a NOTICE, exit 0, nothing started.
    let r = p.repmgr(&["daemon", "start"]);
    r.assert_success();
    r.assert_stderr_contains("repmgrd appears to be running already");
    assert_eq!(read_pid(&pid_file), Some(pid));

    let r = p.repmgr(&["daemon", "stop", "--dry-run"]);
    r.assert_success();
    r.assert_stderr_contains(&format!("kill -TERM {pid}"));
    assert!(pid_alive(pid));

    let r = p.repmgr(&["daemon", "stop"]);
    r.assert_success();
    r.assert_stderr_contains("repmgrd was successfully stopped");
    assert!(!pid_alive(pid));
    poll_until(Duration::from_secs(60), "pid file removed", || {
        !pid_file.exists()
    });

    let r = p.repmgr(&["daemon", "stop"]);
    assert!(
        r.status == 0,
        "second stop failed: {}\nrepmgrd log:\n{}",
        r.stderr,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    r.assert_stderr_contains("repmgrd appears to be stopped already");
}

#[test]
fn daemon_start_with_a_failing_start_command_exits_27() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    append_conf(
        &p,
        &format!(
            "repmgrd_pid_file='{}'\nrepmgrd_service_start_command='echo no such service >&2; exit 3'",
            dir.path().join("r.pid").display()
        ),
    );
    let r = p.repmgr(&["daemon", "start"]);
    r.assert_code(ExitCode::RepmgrdService);
    r.assert_stderr_contains("unable to start repmgrd");
    r.assert_stderr_contains("no such service");

    // A start command that succeeds but starts nothing: the wait times out.
    append_conf(&p, "repmgrd_service_start_command='true'");
    let r = p.repmgr(&["daemon", "start", "--wait=2"]);
    r.assert_code(ExitCode::RepmgrdService);
    r.assert_stderr_contains("repmgrd does not appear to have started after 2 seconds");
}

#[test]
fn daemon_start_after_a_killed_repmgrd() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    let pid_file = dir.path().join("repmgrd.pid");
    let log = dir.path().join("repmgrd.log");
    append_conf(
        &p,
        &format!(
            "repmgrd_pid_file='{}'\nlog_file='{}'",
            pid_file.display(),
            log.display()
        ),
    );
    let _guard = KillOnDrop(pid_file.clone());

    // A foreground repmgrd (reaped by this test) killed without a clean
    // stop: its heartbeat is still fresh, its pid file names a dead pid.
    let mut d = Daemon::repmgrd("repmgrd-killed", &["-f", &p.conf, "--daemonize=false"]);
    poll_until(Duration::from_secs(60), "heartbeat", || {
        p.count("SELECT count(*) FROM repmgr.repmgrd_status WHERE pid IS NOT NULL") == 1
    });
    assert_eq!(read_pid(&pid_file), Some(d.pid()));
    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(30));

    let r = p.repmgr(&["daemon", "start"]);
    r.assert_success();
    r.assert_stderr_contains("repmgrd was successfully started");
    let pid = read_pid(&pid_file).expect("pid file rewritten");
    assert_ne!(pid, d.pid());
    assert!(pid_alive(pid));
    let r = p.repmgr(&["daemon", "stop"]);
    r.assert_success();
    assert!(!pid_alive(pid));
}
