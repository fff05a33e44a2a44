//! repmgrd lifecycle: options, config, connection, pid file, signals.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::fixture::Node;
use crate::harness::ExitCode;
use crate::harness::{pid_alive, poll_until, user_tempdir, Daemon, Repmgr};

#[test]
fn repmgrd_runs_in_foreground_and_stops_cleanly_on_sigterm() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    let pid_file = dir.path().join("repmgrd.pid");
    let pf = pid_file.to_str().unwrap();
    let mut d = Daemon::repmgrd(
        "repmgrd-node1",
        &["-f", &p.conf, "--daemonize=false", "-p", pf],
    );
    d.wait_for_output(
        "starting monitoring of node \"node1\" (ID: 1)",
        Duration::from_secs(60),
    );
    assert!(d.output().contains("[NOTICE]"), "{}", d.output());
    poll_until(Duration::from_secs(60), "pid file", || pid_file.exists());
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        d.pid().to_string()
    );

    // A second daemon with the same pid file is refused.
    let r = Repmgr::new(&["-f", &p.conf, "--daemonize=false", "-p", pf])
        .daemon()
        .run();
    r.assert_code(ExitCode::BadPidfile)
        .assert_stderr_contains("PID");

    // SIGHUP reloads, SIGTERM stops; the pid file goes away.
    d.signal(Signal::SIGHUP);
    d.wait_for_output("configuration file reloaded", Duration::from_secs(60));
    d.signal(Signal::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)),
        ExitCode::Success.code(),
        "{}",
        d.output()
    );
    assert!(
        d.output().contains("SIGTERM received: terminating"),
        "{}",
        d.output()
    );
    assert!(!pid_file.exists());
}

#[test]
fn repmgrd_daemonizes_by_default() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    let pid_file = dir.path().join("d.pid");
    let log = dir.path().join("repmgrd.log");
    std::fs::write(
        &p.conf,
        format!(
            "{}log_file='{}'\n",
            std::fs::read_to_string(&p.conf).unwrap(),
            log.display()
        ),
    )
    .unwrap();
    let r = Repmgr::new(&["-f", &p.conf, "-p", pid_file.to_str().unwrap()])
        .daemon()
        .run();
    r.assert_success();
    poll_until(Duration::from_secs(60), "daemon pid file", || {
        pid_file.exists()
    });
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    poll_until(Duration::from_secs(60), "monitoring started", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("starting monitoring")
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    poll_until(Duration::from_secs(60), "daemon exit", || !pid_alive(pid));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("terminating"));
}

#[test]
fn repmgrd_without_a_running_node_exits_with_db_conn() {
    let p = Node::primary("node1", 1);
    p.pg.stop();
    let r = Repmgr::new(&["-f", &p.conf, "--daemonize=false", "--no-pid-file"])
        .daemon()
        .run();
    r.assert_code(ExitCode::DbConn)
        .assert_stderr_contains("unable to connect to local node");
}

#[test]
fn repmgrd_config_errors_exit_1() {
    let dir = user_tempdir();
    let conf = crate::harness::write_user_file(&dir.path().join("r.conf"), "node_id=x\n");
    let r = Repmgr::new(&["-f", conf.to_str().unwrap(), "--daemonize=false"])
        .daemon()
        .run();
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("node_id");
}

#[test]
fn repmgrd_stops_on_sigint() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let mut d = Daemon::repmgrd(
        "repmgrd-int",
        &["-f", &p.conf, "--daemonize=false", "--no-pid-file"],
    );
    d.wait_for_output("starting monitoring", Duration::from_secs(60));
    d.signal(Signal::SIGINT);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)),
        ExitCode::Success.code(),
        "{}",
        d.output()
    );
    assert!(
        d.output().contains("SIGINT received: terminating"),
        "{}",
        d.output()
    );
}

#[test]
fn repmgrd_refuses_an_unregistered_node() {
    let p = Node::primary("node1", 1);
    let r = Repmgr::new(&["-f", &p.conf, "--daemonize=false", "--no-pid-file"])
        .daemon()
        .run();
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("no metadata record found for this node")
        .assert_stderr_contains("primary register");
}

#[test]
fn degraded_monitoring_timeout_exits_9_like_repmgr() {
    let nodes = crate::fixture::registered_cluster_with(1, |_| {
        "failover=manual\nmonitor_interval_secs=1\nreconnect_attempts=1\nreconnect_interval=1\ndegraded_monitoring_timeout=2\n".into()
    });
    let s = &nodes[1];
    let mut d = Daemon::repmgrd(
        "repmgrd-node2",
        &["-f", &s.conf, "--daemonize=false", "--no-pid-file"],
    );
    d.wait_for_output("starting monitoring of node", Duration::from_secs(60));
    nodes[0].pg.stop();
    // ERR_MONITORING_TIMEOUT, as repmgr's terminate(ERR_MONITORING_TIMEOUT)
    assert_eq!(
        d.wait_exit(Duration::from_secs(90)),
        ExitCode::MonitoringTimeout.code(),
        "{}",
        d.output()
    );
    assert!(
        d.output()
            .contains("degraded monitoring timeout (2 seconds) exceeded"),
        "{}",
        d.output()
    );
}

#[test]
fn connection_check_query_is_what_a_query_check_runs() {
    // A query that always fails: the upstream is deemed lost though its
    // server answers, so a manual-failover standby ends degraded (exit 9).
    let nodes = crate::fixture::registered_cluster_with(1, |_| {
        "failover=manual\nmonitor_interval_secs=1\nreconnect_attempts=1\nreconnect_interval=1\ndegraded_monitoring_timeout=2\nconnection_check_type=query\nconnection_check_query='SELECT 1/0'\n".into()
    });
    let mut d = Daemon::repmgrd(
        "repmgrd-node2",
        &["-f", &nodes[1].conf, "--daemonize=false", "--no-pid-file"],
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(90)),
        ExitCode::MonitoringTimeout.code(),
        "{}",
        d.output()
    );
}

/// A start while the local server is down goes on only when this node's
/// state file records a fence of its own and the node list cached beside
/// it is usable; else it exits as repmgr does (issue 11).
#[test]
fn repmgrd_with_the_server_down_exits_unless_its_fence_is_recorded_and_the_node_list_cached() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let datadir = p.pg.datadir.to_str().unwrap().trim_end_matches('/');
    let state = std::path::PathBuf::from(format!("{datadir}.repmgrd"));
    let cache = std::path::PathBuf::from(format!("{datadir}.repmgrd.nodes"));
    let mut d = p.repmgrd();
    poll_until(Duration::from_secs(60), "the state file", || state.exists());
    assert!(cache.exists(), "no node list cached at start");
    d.stop(Duration::from_secs(30));
    p.pg.stop();
    let start = || {
        Repmgr::new(&["-f", &p.conf, "--daemonize=false", "--no-pid-file"])
            .daemon()
            .timeout(Duration::from_secs(60))
            .run()
    };
    // No fence recorded: the old refusal, word for word.
    start()
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("unable to connect to local node \"node1\" (ID: 1)");
    // A fence recorded, but no usable node list: the same.
    let fenced = std::fs::read_to_string(&state)
        .unwrap()
        .replace("fence=none", "fence=isolated");
    assert!(fenced.contains("fence=isolated"), "{fenced}");
    crate::harness::write_user_file(&state, &fenced);
    let kept = std::fs::read_to_string(&cache).unwrap();
    crate::harness::write_user_file(&cache, &kept.replace("end=1", ""));
    start()
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("unable to connect to local node")
        .assert_stderr_contains("cached node list cannot be used");
    // Both: it monitors without the server (and keeps trying it).
    crate::harness::write_user_file(&cache, &kept);
    let mut d = p.repmgrd();
    d.wait_for_output(
        "local server is down and this node's fence keeps it stopped: monitoring from the cached node list",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.is_running(), "{}", d.output());
    assert_eq!(d.stop(Duration::from_secs(30)), 0, "{}", d.output());
}
