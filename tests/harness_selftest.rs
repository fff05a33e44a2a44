//! Tests of the test harness itself: if these fail, nothing else can be trusted.

use crate::harness::ExitCode;
use crate::harness::{holds_for, poll_until, repmgr, run_as_user, run_user, PgNode, Repmgr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn primary_starts_and_answers_select_1() {
    let p = PgNode::primary("p1");
    assert_eq!(p.query_one_string("select 1"), "1");
    assert!(p.is_running());
    assert!(!p.is_in_recovery());
    // TCP client, as the binary under test would connect.
    let mut c = p.client();
    let row = c.query_one("select 40 + 2", &[]).expect("select over TCP");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert!(p.conninfo().contains(&format!("port={}", p.port)));
    assert!(p.sockdir.join(format!(".s.PGSQL.{}", p.port)).exists());
    // The data dir belongs to the run user, not root.
    let md = std::fs::metadata(&p.datadir).expect("stat datadir");
    assert_eq!(md.uid(), run_user().uid);
}

#[test]
fn standby_streams_and_sees_primary_table() {
    let p = PgNode::primary("primary");
    let s = PgNode::standby_of(&p, "standby");
    assert!(s.is_in_recovery());
    assert_ne!(s.port, p.port);
    p.execute("create table t(i int); insert into t values (1), (2), (3)");
    s.wait_until(Duration::from_secs(30), "table t replicated", |n| {
        n.try_query_one_string("select count(*) from t")
            .ok()
            .flatten()
            == Some("3".into())
    });
    // The primary sees its standby.
    assert_eq!(
        p.query_one_string("select count(*) from pg_stat_replication where state = 'streaming'"),
        "1"
    );
}

#[test]
fn two_primaries_in_parallel_do_not_collide() {
    let a = std::thread::spawn(|| PgNode::primary("par-a"));
    let b = std::thread::spawn(|| PgNode::primary("par-b"));
    let a = a.join().expect("starting primary par-a");
    let b = b.join().expect("starting primary par-b");
    assert_ne!(a.port, b.port);
    assert_ne!(a.dir, b.dir);
    a.execute("create table only_a(i int)");
    assert_eq!(
        b.query_one_string("select count(*) from pg_class where relname = 'only_a'"),
        "0"
    );
}

#[test]
fn drop_stops_server_and_removes_dir() {
    let p = PgNode::primary("dropme");
    let dir = p.dir.clone();
    let pid = p
        .postmaster_pid()
        .expect("postmaster.pid of a running node");
    assert!(dir.exists());
    drop(p);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    poll_until(
        Duration::from_secs(10),
        "postmaster gone after drop",
        || !crate::harness::pid_alive(pid),
    );
}

#[test]
fn kill9_makes_server_unreachable_and_it_restarts() {
    let p = PgNode::primary("crash");
    p.execute("create table survivor(i int); insert into survivor values (7)");
    p.kill9();
    assert!(!p.is_running());
    assert!(p.try_client().is_err());
    assert!(p.try_query_one_string("select 1").is_err());
    // Crash recovery on restart.
    p.start();
    assert_eq!(p.query_one_string("select i from survivor"), "7");
}

#[test]
fn stop_and_start() {
    let p = PgNode::primary("stopstart");
    p.stop();
    assert!(!p.is_running());
    assert!(p.try_client().is_err());
    p.start();
    assert_eq!(p.query_one_string("select 2"), "2");
}

#[test]
fn builder_applies_conf_and_hba_lines() {
    let p = PgNode::builder("pw")
        .conf("work_mem = '7MB'")
        .hba("host all pwuser 127.0.0.1/32 scram-sha-256")
        .start();
    assert_eq!(p.query_one_string("show work_mem"), "7MB");
    p.execute("create role pwuser login password 'secret'");
    let base = postgres::Config::new()
        .host("127.0.0.1")
        .port(p.port)
        .user("pwuser")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2))
        .clone();
    // Without a password the server asks for one (the client gives up).
    assert!(
        base.clone().connect(postgres::NoTls).is_err(),
        "connecting without a password must fail under scram"
    );
    // Other users still get the harness's trust lines.
    p.client();
    base.clone()
        .password("secret")
        .connect(postgres::NoTls)
        .expect("connecting with the password");
}

#[test]
fn empty_node_then_basebackup_by_hand() {
    // Shape of a test where the binary under test creates the data dir.
    let p = PgNode::primary("src");
    let s = PgNode::empty("clone");
    assert!(!s.datadir.exists());
    let mut cmd = crate::harness::pg_tool("pg_basebackup", &s.dir);
    cmd.arg("-D")
        .arg(&s.datadir)
        .arg("-d")
        .arg(p.socket_conninfo())
        .args(["-R", "-X", "stream", "-c", "fast", "-N"]);
    crate::harness::run_checked(&mut cmd, "pg_basebackup by hand");
    s.apply_harness_conf();
    s.start();
    s.wait_streaming(Duration::from_secs(60));
}

#[test]
#[should_panic(expected = "waiting for: something that never happens")]
fn poll_until_panics_with_what() {
    poll_until(
        Duration::from_millis(200),
        "something that never happens",
        || false,
    );
}

#[test]
fn free_ports_are_outside_the_ephemeral_range() {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let r: Vec<u16> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    for _ in 0..20 {
        let p = crate::harness::pg::free_port();
        assert!(
            p < r[0] || p > r[1],
            "port {p} in the ephemeral range {r:?}"
        );
    }
}

#[test]
fn holds_for_checks_to_the_end_and_fails_at_the_first_false() {
    let step = Duration::from_millis(20);
    let mut checks = 0;
    let start = std::time::Instant::now();
    assert_eq!(
        holds_for(Duration::from_millis(200), step, || {
            checks += 1;
            true
        }),
        Ok(())
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    // At least at once and at the end (more when the machine keeps up).
    assert!(checks >= 2, "{checks} checks");
    let mut n = 0;
    let e = holds_for(Duration::from_secs(60), step, || {
        n += 1;
        n < 3
    })
    .unwrap_err();
    assert_eq!(n, 3, "stopped at the first false");
    assert!(e.contains("(check 3)"), "{e}");
}

#[test]
fn binary_runs_as_unprivileged_user() {
    let r = repmgr(&["--version"]);
    r.assert_success();
    let r = Repmgr::new(&["--version"]).daemon().env("X", "1").run();
    r.assert_success();

    let out = run_as_user(Command::new("id").arg("-u"))
        .current_dir("/")
        .output()
        .expect("running id -u");
    assert!(out.status.success());
    let uid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("id -u prints a number");
    assert_eq!(uid, run_user().uid);
    if nix::unistd::geteuid().is_root() {
        assert_ne!(uid, 0, "run_as_user must drop root");
    }
}

#[test]
fn write_file_is_owned_by_user() {
    let p = PgNode::primary("files");
    let path = p.write_file("repmgr.conf", "node_id=1\n");
    assert_eq!(path, p.dir.join("repmgr.conf"));
    let md = std::fs::metadata(&path).expect("stat repmgr.conf");
    assert_eq!(md.uid(), run_user().uid);
    let d = crate::harness::user_tempdir();
    assert_eq!(
        std::fs::metadata(d.path())
            .expect("stat user tempdir")
            .uid(),
        run_user().uid
    );
    assert!(Path::new(&crate::harness::pg_bindir())
        .join("pg_ctl")
        .exists());
}

#[test]
fn psql_runs_as_user() {
    let p = PgNode::primary("psql");
    p.psql("select current_user, 1 + 1")
        .assert_success()
        .assert_stdout_contains("postgres|2");
    p.psql("select * from no_such_table")
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("no_such_table");
}

#[test]
#[should_panic(expected = "did not finish within")]
fn run_with_deadline_kills_on_expiry() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30").current_dir("/");
    run_as_user(&mut cmd);
    crate::harness::run_with_deadline(cmd, "sleep 30".into(), Duration::from_millis(300));
}

#[test]
fn daemon_guard_captures_output_and_stops_process_group() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo started; id -u; sleep 300 & wait"])
        .current_dir("/");
    run_as_user(&mut cmd);
    let mut d = crate::harness::Daemon::spawn("sleeper", cmd);
    // Wait for the uid line too: "started" alone may come before `id` ran.
    d.wait_for_output("started", Duration::from_secs(10));
    d.wait_for_output(&format!("\n{}\n", run_user().uid), Duration::from_secs(10));
    assert!(d.is_running());
    let pid = d.pid();
    // SIGTERM goes to the whole group: the shell and its sleep.
    let code = d.stop(Duration::from_secs(10));
    assert_eq!(
        code,
        128 + nix::sys::signal::Signal::SIGTERM as i32,
        "{}",
        d.output()
    );
    assert!(d.output().contains(&run_user().uid.to_string()));
    drop(d);
    assert!(!crate::harness::pid_alive(pid));
}

#[test]
fn repmgrd_personality_runs() {
    let mut d = crate::harness::Daemon::repmgrd("repmgrd", &["--version"]);
    // The stub exits at once; the real daemon prints its version and exits.
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)),
        ExitCode::Success.code(),
        "{}",
        d.output()
    );
}
