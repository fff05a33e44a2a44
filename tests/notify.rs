//! repmgrd under systemd (issue 13): with NOTIFY_SOCKET set it stays in
//! the foreground and speaks sd_notify's protocol on a datagram socket of
//! the test's own.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::Node;
use crate::harness::{chmod, repmgrd_cmd, user_tempdir, Daemon};

/// The notifications received until one contains `want` (or the time is
/// up), in order.
fn until(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l == want);
                got.push(msg);
                if done {
                    return got;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no \"{want}\" within {limit:?}; received: {got:?}");
}

#[test]
fn under_systemd_repmgrd_stays_in_the_foreground_and_notifies_ready_reload_watchdog_and_stop() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let dir = user_tempdir();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // repmgrd runs as the unprivileged test user.
    chmod(&path, 0o777);
    let mut cmd = repmgrd_cmd();
    // No --daemonize=false: NOTIFY_SOCKET alone keeps it in the foreground.
    cmd.args(["-f", &p.conf, "--no-pid-file"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000");
    let mut d = Daemon::spawn("repmgrd-node1", cmd);

    let ready = until(&sock, "READY=1", Duration::from_secs(30));
    let last = ready.last().unwrap();
    assert!(
        last.lines().any(|l| l == format!("MAINPID={}", d.pid())),
        "READY=1 does not come from the process systemd started (it forked?): {last:?}\n{}",
        d.output()
    );
    assert!(last.contains("STATUS=primary"), "{last:?}");
    assert!(d.is_running(), "repmgrd exited:\n{}", d.output());

    // Watchdog pings every half WATCHDOG_USEC (0.5 s), from the
    // monitoring loop: after the first, each next one comes about that
    // much later (a loaded machine may delay one).
    until(&sock, "WATCHDOG=1", Duration::from_secs(5));
    for _ in 0..3 {
        let t = Instant::now();
        until(&sock, "WATCHDOG=1", Duration::from_secs(5));
        let gap = t.elapsed();
        assert!(
            gap >= Duration::from_millis(300) && gap < Duration::from_secs(3),
            "a watchdog ping {gap:?} after the one before"
        );
    }
    // The loop stopped (SIGSTOP): no ping; resumed, they come again.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid()), Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 256];
    sock.set_nonblocking(true).unwrap();
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1_500)))
        .unwrap();
    let silent = sock.recv(&mut buf).is_err();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid()), Signal::SIGCONT).unwrap();
    assert!(silent, "a stopped repmgrd sent a notification");
    until(&sock, "WATCHDOG=1", Duration::from_secs(5));

    // SIGHUP: RELOADING=1, then READY=1 once the configuration is read.
    d.signal(Signal::SIGHUP);
    let got = until(&sock, "RELOADING=1", Duration::from_secs(10));
    assert!(got.last().unwrap().contains("MONOTONIC_USEC="), "{got:?}");
    until(&sock, "READY=1", Duration::from_secs(10));

    // SIGTERM: STOPPING=1, and a clean exit.
    d.signal(Signal::SIGTERM);
    until(&sock, "STOPPING=1", Duration::from_secs(10));
    assert_eq!(d.wait_exit(Duration::from_secs(30)), 0, "{}", d.output());
}
