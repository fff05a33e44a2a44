//! Bad input gets a clear error, repmgr's exit code, no panic, and loses nothing.

use std::net::TcpListener;
use std::time::Duration;

use crate::fixture::{write_conf, Node};
use crate::harness::pg::free_port;
use crate::harness::ExitCode;
use crate::harness::{repmgr, user_tempdir, write_user_file, PgNode, RunResult};

fn with_conf(text: &str, args: &[&str]) -> RunResult {
    let dir = user_tempdir();
    let conf = write_user_file(&dir.path().join("repmgr.conf"), text);
    let mut all = vec!["-f", conf.to_str().unwrap()];
    all.extend_from_slice(args);
    repmgr(&all)
}

#[track_caller]
fn assert_clean_failure(r: &RunResult, code: ExitCode) {
    r.assert_code(code);
    assert!(!r.stderr.contains("panicked"), "{r}");
    assert!(r.stdout.is_empty(), "stdout must stay clean on errors: {r}");
}

#[test]
fn missing_unreadable_empty_and_garbage_config() {
    let r = repmgr(&["-f", "/nonexistent/repmgr.conf", "cluster", "show"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("/nonexistent/repmgr.conf");

    let dir = user_tempdir();
    let unreadable = dir.path().join("secret.conf");
    std::fs::write(&unreadable, "node_id=1\n").unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    if !nix::unistd::Uid::effective().is_root() || crate::harness::run_user().switch {
        let r = repmgr(&["-f", unreadable.to_str().unwrap(), "cluster", "show"]);
        assert_clean_failure(&r, ExitCode::BadConfig);
        r.assert_stderr_contains("secret.conf");
    }

    // Empty: every missing required key, reported at once.
    let r = with_conf("", &["cluster", "show"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
    for key in ["node_id", "node_name", "conninfo"] {
        r.assert_stderr_contains(&format!("\"{key}\""));
    }

    let garbage: String = (0..400u32)
        .map(|i| char::from_u32(1 + (i * 7919) % 0x2FF).unwrap())
        .collect();
    let r = with_conf(&garbage, &["cluster", "show"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("repmgr.conf:");
}

#[test]
fn all_config_errors_reported_at_once_with_file_and_line() {
    let r = with_conf(
        "node_id=abc\nnode_name='x\nfailover=sometimes\nconninfo='host=x'\ndata_directory='/d'\n",
        &["cluster", "show"],
    );
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("repmgr.conf:1")
        .assert_stderr_contains("node_id")
        .assert_stderr_contains("repmgr.conf:2")
        .assert_stderr_contains("unterminated")
        .assert_stderr_contains("repmgr.conf:3")
        .assert_stderr_contains("sometimes");
}

#[test]
fn unknown_key_warns_with_suggestion() {
    let r = with_conf(
        "node_id=1\nnode_nmae='x'\nnode_name='x'\nconninfo='host=127.0.0.1 port=1 connect_timeout=2'\ndata_directory='/d'\n",
        &["cluster", "show"],
    );
    r.assert_stderr_contains("node_nmae")
        .assert_stderr_contains("did you mean \"node_name\"");
}

#[test]
fn conninfo_with_a_bad_key_is_a_config_error() {
    let r = with_conf(
        "node_id=1\nnode_name='x'\nconninfo='host=127.0.0.1 bogus_key=1'\ndata_directory='/d'\n",
        &["cluster", "show"],
    );
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("bogus_key");
}

// How long giving up takes is measured by bench/unreachable; these tests
// check that each kind of unreachable node fails the right way.

#[test]
fn closed_port_is_refused_with_db_conn_exit_code() {
    // A port handed out by the harness and never listened on.
    let port = free_port();
    let r = with_conf(
        &format!("node_id=1\nnode_name='x'\nconninfo='host=127.0.0.1 port={port} user=postgres connect_timeout=2'\ndata_directory='/d'\n"),
        &["primary", "register"],
    );
    assert_clean_failure(&r, ExitCode::DbConn);
    r.assert_stderr_contains("unable to connect to node \"x\" (ID: 1)")
        .assert_stderr_contains("Connection refused");
}

#[test]
fn hung_server_fails_at_the_connect_timeout() {
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    for args in [
        &["primary", "register"][..],
        &["cluster", "show"],
        // without the 30 s of --wait-start's default
        &["standby", "register", "--wait-start=0"],
    ] {
        let r = with_conf(
            &format!("node_id=1\nnode_name='x'\nconninfo='host=127.0.0.1 port={port} user=postgres connect_timeout=2'\ndata_directory='/d'\n"),
            args,
        );
        assert_clean_failure(&r, ExitCode::DbConn);
        // Given up on at the deadline the conninfo sets, not hung.
        r.assert_stderr_contains(&format!(
            "timeout expired after 2 s connecting to server at \"127.0.0.1:{port}\""
        ));
    }
    drop(hung);
}

/// A loopback port whose SYNs are dropped, as a blackholed host's are: a
/// listener with a zero backlog whose one queue slot is already taken.
struct Blackhole {
    _listener: std::os::fd::OwnedFd,
    _filler: Option<std::net::TcpStream>,
    port: u16,
}

fn blackhole() -> Blackhole {
    use nix::sys::socket::{
        bind, getsockname, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let port = getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok();
    // Now nothing more is accepted into the queue: a new SYN goes unanswered.
    let probe = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300));
    assert!(probe.is_err(), "the blackhole answered");
    Blackhole {
        _listener: fd,
        _filler: filler,
        port,
    }
}

#[test]
fn blackholed_host_fails_at_the_connect_timeout() {
    let hole = blackhole();
    let r = with_conf(
        &format!(
            "node_id=1\nnode_name='x'\nconninfo='host=127.0.0.1 port={} user=postgres connect_timeout=2'\ndata_directory='/d'\n",
            hole.port
        ),
        &["primary", "register"],
    );
    assert_clean_failure(&r, ExitCode::DbConn);
    r.assert_stderr_contains("timeout");
}

#[test]
fn missing_data_directory_is_named() {
    let r = with_conf(
        "node_id=1\nnode_name='x'\nconninfo='host=127.0.0.1 port=1'\n",
        &["primary", "register"],
    );
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("\"data_directory\"");
}

#[test]
fn failed_registration_leaves_no_partial_row() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let before = p.query(
        "SELECT count(*)::text || '/' || (SELECT count(*) FROM repmgr.events) FROM repmgr.nodes",
    );
    // Standby register on the primary: refused, nothing written.
    let conf = write_conf(&p.pg, 5, "node5", &p.pg.conninfo(), "");
    repmgr(&["-f", &conf, "standby", "register"]).assert_code(ExitCode::BadConfig);
    // A standby with an unknown upstream: refused, nothing written.
    let s = PgNode::standby_of(&p.pg, "node2");
    let sconf = write_conf(&s, 2, "node2", &s.conninfo(), "");
    repmgr(&["-f", &sconf, "standby", "register", "--upstream-node-id=42"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("upstream node 42 is not registered");
    let after = p.query(
        "SELECT count(*)::text || '/' || (SELECT count(*) FROM repmgr.events) FROM repmgr.nodes",
    );
    assert_eq!(before, after);
}

#[test]
fn non_numeric_node_id_and_unknown_action_codes() {
    let r = with_conf("node_id=one\n", &["primary", "register"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
    r.assert_stderr_contains("node_id");
    let r = with_conf("node_id=1\n", &["primary", "fly"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
    let r = with_conf("node_id=1\n", &["primary", "register", "now"]);
    assert_clean_failure(&r, ExitCode::BadConfig);
}
