//! Taking over a cluster built by repmgr 5.3 (its C extension, its
//! repmgrd) without re-registering (issue 12): our repmgrd refuses to run
//! beside repmgr 5's, completes the schema beside the extension's objects,
//! leaves no ERROR in the server logs, fails over, and repmgr 5.3 still
//! reads the metadata afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixture::{wait_all_replayed, wait_attached, writable, Node};
use crate::harness::{
    poll_until, run_as_user, run_with_deadline, Daemon, ExitCode, PgNode, RunResult,
};

/// Debian's repmgr 5.3 for PostgreSQL 15.
const REPMGR5_BIN: &str = "/usr/lib/postgresql/15/bin";

fn repmgr5(tool: &str) -> PathBuf {
    let p = Path::new(REPMGR5_BIN).join(tool);
    assert!(
        p.is_file() && Path::new("/usr/share/postgresql/15/extension/repmgr.control").is_file(),
        "{} is missing: this test needs Debian's repmgr 5.3; .ci/run should install \
         postgresql-15-repmgr (apt-get install postgresql-15-repmgr)",
        p.display()
    );
    p
}

/// `repmgr ARGS` of repmgr 5.3, as the run user.
fn run5(node: &Node, args: &[&str]) -> RunResult {
    let mut cmd = Command::new(repmgr5("repmgr"));
    cmd.arg("-f").arg(&node.conf).args(args);
    cmd.env("LC_ALL", "C").current_dir(&node.pg.dir);
    run_as_user(&mut cmd);
    run_with_deadline(cmd, format!("repmgr 5.3 {args:?}"), Duration::from_secs(60))
}

/// repmgr 5.3's repmgrd for `node`, in the foreground.
fn repmgrd5(node: &Node) -> Daemon {
    let mut cmd = Command::new(repmgr5("repmgrd"));
    let pid_file = node.pg.dir.join("repmgrd5.pid");
    cmd.arg("-f")
        .arg(&node.conf)
        .arg("--daemonize=false")
        .arg("-p")
        .arg(&pid_file)
        .current_dir("/");
    run_as_user(&mut cmd);
    let d = Daemon::spawn(&format!("repmgrd5-{}", node.pg.name), cmd);
    d.wait_for_output("starting monitoring", Duration::from_secs(60));
    d
}

/// The server log lines from byte `from` on that say ERROR.
fn errors_since(node: &Node, from: usize) -> Vec<String> {
    let text = std::fs::read(&node.pg.logfile).unwrap_or_default();
    String::from_utf8_lossy(&text[from.min(text.len())..])
        .lines()
        .filter(|l| l.contains("ERROR:"))
        .map(String::from)
        .collect()
}

fn log_len(node: &Node) -> usize {
    std::fs::metadata(&node.pg.logfile).map_or(0, |m| m.len() as usize)
}

/// Our `service status --csv` fields per node: (running, pid).
fn status_running(node: &Node) -> Vec<(String, String)> {
    let r = node.repmgr(&["service", "status", "--csv"]);
    r.assert_success();
    r.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[4].to_string(), f[5].to_string())
        })
        .collect()
}

/// Ours on the primary as a user with only USAGE on the extension's
/// schema (and DML on its tables, as repmgr 5 grants): it cannot create
/// what it lacks, says so once, and records nothing it cannot.
fn unprivileged_run(primary: &Node) {
    primary.pg.execute(
        "CREATE ROLE rmuser LOGIN;
         GRANT USAGE ON SCHEMA repmgr TO rmuser;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA repmgr TO rmuser",
    );
    let text = std::fs::read_to_string(&primary.conf).unwrap_or_default();
    let conf = primary.pg.dir.join("repmgr-rmuser.conf");
    crate::harness::write_user_file(&conf, &text.replace("user=postgres", "user=rmuser"));
    let pid_file = primary.pg.dir.join("rmuser.pid");
    let args = [
        "-f",
        conf.to_str().unwrap_or(""),
        "--daemonize=false",
        "-p",
        pid_file.to_str().unwrap_or(""),
    ];
    let mut d = Daemon::repmgrd("repmgrd-rmuser", &args);
    d.wait_for_output("starting monitoring", Duration::from_secs(30));
    d.wait_for_output("lacks repmgr.repmgrd_status", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(4));
    d.stop(Duration::from_secs(20));
    let out = d.output();
    assert_eq!(
        out.matches("lacks repmgr.repmgrd_status").count(),
        1,
        "{out}"
    );
    assert!(!out.contains("[ERROR]"), "{out}");
    assert_eq!(
        primary.query("SELECT pg_catalog.to_regclass('repmgr.repmgrd_status') IS NULL"),
        "t"
    );
}

#[test]
fn a_repmgr5_cluster_is_taken_over_node_by_node_and_fails_over() {
    repmgr5("repmgr");
    // repmgr 5's cluster: its library preloaded, registered by its binary.
    let conf = "monitor_interval_secs=1\nreconnect_attempts=3\nreconnect_interval=1\nlog_level=INFO\nfailover=manual";
    let preload = "shared_preload_libraries = 'repmgr'";
    let primary = Node::configure(PgNode::builder("node1").conf(preload).start(), 1, conf);
    run5(&primary, &["primary", "register"]).assert_success();
    let mut nodes = vec![primary];
    for id in 2..=3 {
        let pg = PgNode::standby_of_builder(&format!("node{id}"))
            .conf(preload)
            .standby_of(&nodes[0].pg);
        let s = Node::configure(pg, id, conf);
        run5(&s, &["standby", "register"]).assert_success();
        wait_attached(&nodes[0], &s);
        nodes.push(s);
    }
    wait_all_replayed(&nodes);
    assert_eq!(
        nodes[0].query("SELECT count(*) FROM pg_extension WHERE extname = 'repmgr'"),
        "1"
    );
    let mut old: Vec<Daemon> = nodes.iter().map(repmgrd5).collect();

    // Ours sees repmgr 5's repmgrds, and refuses to run beside one.
    poll_until(Duration::from_secs(30), "repmgr 5's repmgrds shown", || {
        status_running(&nodes[1]).iter().all(|(r, _)| r == "1")
    });
    let r = nodes[0].repmgr(&["node", "check", "--repmgrd"]);
    r.assert_stdout_contains("OK");
    let pid_file = nodes[0].pg.dir.join("ours.pid");
    let mut refused = Daemon::repmgrd(
        "repmgrd-refused",
        &[
            "-f",
            &nodes[0].conf,
            "--daemonize=false",
            "-p",
            pid_file.to_str().unwrap_or(""),
        ],
    );
    let code = refused.wait_exit(Duration::from_secs(30));
    assert_ne!(code, 0, "started beside repmgr 5's repmgrd");
    let out = refused.output();
    assert!(
        out.contains("repmgr 5's repmgrd") && out.contains("HINT") && out.contains("daemon stop"),
        "{out}"
    );

    // Node by node: stop repmgr 5's repmgrd, start ours (automatic
    // failover from now on).
    let logs: Vec<usize> = nodes.iter().map(log_len).collect();
    old[0].stop(Duration::from_secs(20));
    unprivileged_run(&nodes[0]);
    old[0] = repmgrd5(&nodes[0]);
    // The standbys first: a primary whose standbys all run repmgr 5 has
    // no voters, and fences itself once one of them announces automatic
    // failover (see the README's migration section).
    let mut ours: Vec<Option<Daemon>> = vec![None, None, None];
    for i in [2, 1, 0] {
        let n = &nodes[i];
        old[i].stop(Duration::from_secs(20));
        n.append_conf("failover=automatic\nrepmgrd_port=0");
        let d = n.repmgrd();
        if i == 2 {
            d.wait_for_output("beside the repmgr extension", Duration::from_secs(30));
        }
        // As an operator would: the next node once this one shows.
        let pid = d.pid().to_string();
        poll_until(Duration::from_secs(30), "our repmgrd shown", || {
            status_running(&nodes[0]).get(i) == Some(&("1".to_string(), pid.clone()))
        });
        std::thread::sleep(Duration::from_secs(2));
        ours[i] = Some(d);
    }
    old.clear();
    let ours: Vec<Daemon> = ours.into_iter().flatten().collect();
    let created = ours
        .iter()
        .map(|d| d.output().matches("beside the repmgr extension").count())
        .sum::<usize>();
    assert_eq!(created, 1, "the NOTICE is said once");
    // Several monitoring cycles, then: every repmgrd recorded, no ERROR.
    poll_until(Duration::from_secs(30), "our repmgrds shown", || {
        let st = status_running(&nodes[0]);
        st.len() == 3
            && st
                .iter()
                .enumerate()
                .all(|(i, (r, pid))| r == "1" && *pid == ours[i].pid().to_string())
    });
    std::thread::sleep(Duration::from_secs(6));
    for (n, from) in nodes.iter().zip(&logs) {
        let errors = errors_since(n, *from);
        assert!(errors.is_empty(), "{}: {errors:?}", n.pg.name);
    }
    for n in &nodes {
        n.repmgr(&["node", "check", "--repmgrd"])
            .assert_stdout_contains("repmgrd running");
    }
    // The extension's objects are untouched; ours sit beside them.
    assert_eq!(
        nodes[0].query(
            "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
              WHERE e.extname = 'repmgr' AND d.classid = 'pg_class'::regclass
                AND d.objid = 'repmgr.repmgrd_status'::regclass"
        ),
        "0"
    );

    // A failover by ours.
    std::thread::sleep(Duration::from_secs(5));
    nodes[0].pg.kill9();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        writable(&nodes[1]) || writable(&nodes[2])
    });
    let new_primary = if writable(&nodes[1]) {
        &nodes[1]
    } else {
        &nodes[2]
    };
    assert!(
        ours[1].output().contains("promot") || ours[2].output().contains("promot"),
        "promoted by our repmgrd"
    );

    // repmgr 5.3 still reads the metadata (a node is down: exit 25).
    let shown = run5(new_primary, &["cluster", "show"]);
    assert!(
        shown.success() || shown.exited(ExitCode::NodeStatus),
        "repmgr 5.3 cluster show: {shown}"
    );
    for name in ["node1", "node2", "node3"] {
        assert!(shown.stdout.contains(name), "{}", shown.stdout);
    }
    assert!(shown.stdout.contains("* running"), "{}", shown.stdout);
}

#[test]
fn repmgr5s_functions_answer_on_a_schema_we_created() {
    repmgr5("repmgr");
    let nodes = crate::fixture::registered_cluster(1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let fns = "SELECT repmgr.repmgrd_is_running()::text || ',' || \
               COALESCE(repmgr.get_repmgrd_pid()::text, '-') || ',' || \
               repmgr.repmgrd_is_paused()::text || ',' || \
               COALESCE(repmgr.get_local_node_id()::text, '-')";
    assert_eq!(n2.query(fns), "false,-,false,-");
    let d1 = n1.repmgrd();
    let d2 = n2.repmgrd();
    for (n, d, id) in [(n1, &d1, 1), (n2, &d2, 2)] {
        let want = format!("true,{},false,{id}", d.pid());
        poll_until(Duration::from_secs(30), "the functions see repmgrd", || {
            n.pg.try_query_one_string(fns).ok().flatten() == Some(want.clone())
        });
    }
    poll_until(Duration::from_secs(30), "the upstream seen", || {
        n2.pg
            .try_query_one_string("SELECT repmgr.get_upstream_last_seen() >= 0")
            .ok()
            .flatten()
            .as_deref()
            == Some("t")
    });
    n1.repmgr(&["service", "pause"]).assert_success();
    poll_until(Duration::from_secs(30), "paused on the standby", || {
        n2.pg
            .try_query_one_string("SELECT repmgr.repmgrd_is_paused()::text")
            .ok()
            .flatten()
            .as_deref()
            == Some("true")
    });
    assert_eq!(n1.query("SELECT repmgr.get_upstream_last_seen()"), "-1");
    // repmgr 5.3 reads a schema it did not make.
    let shown = run5(n2, &["cluster", "show"]);
    shown.assert_success();
    assert!(
        shown.stdout.contains("node1") && shown.stdout.contains("node2"),
        "{shown}"
    );
}

/// Our switchover on a cluster still monitored by repmgr 5's repmgrd on a
/// standby: that repmgrd gets its own pause flag (its extension's shared
/// memory) for the switchover, as repmgr 5's switchover sets it, and it is
/// lifted afterwards. (Before, only our flag was set: a repmgr 5 repmgrd
/// with automatic failover saw the primary stop and could promote beside
/// the switchover.)
#[test]
fn our_switchover_pauses_repmgr5s_repmgrd_for_its_duration() {
    repmgr5("repmgr");
    let sshd = crate::harness::Sshd::start();
    let conf = format!(
        "monitor_interval_secs=1\nreconnect_attempts=3\nreconnect_interval=1\nlog_level=INFO\nfailover=manual\nssh_options='{}'",
        sshd.ssh_options()
    );
    let preload = "shared_preload_libraries = 'repmgr'";
    let primary = Node::configure(PgNode::builder("node1").conf(preload).start(), 1, &conf);
    run5(&primary, &["primary", "register"]).assert_success();
    let mut nodes = vec![primary];
    for id in 2..=3 {
        let pg = PgNode::standby_of_builder(&format!("node{id}"))
            .conf(preload)
            .standby_of(&nodes[0].pg);
        let s = Node::configure(pg, id, &conf);
        run5(&s, &["standby", "register"]).assert_success();
        wait_attached(&nodes[0], &s);
        nodes.push(s);
    }
    wait_all_replayed(&nodes);
    let _old = repmgrd5(&nodes[2]);
    let paused = "SELECT repmgr.repmgrd_is_paused()::text";
    poll_until(Duration::from_secs(30), "repmgr 5's repmgrd seen", || {
        nodes[2]
            .pg
            .try_query_one_string("SELECT repmgr.repmgrd_is_running()::text")
            .ok()
            .flatten()
            .as_deref()
            == Some("true")
    });
    // Watches node3's flag while the switchover runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let (sockdir, port) = (nodes[2].pg.sockdir.clone(), nodes[2].pg.port);
    let watcher = std::thread::spawn(move || {
        let mut seen = false;
        let mut conn = None;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if conn.is_none() {
                conn = postgres::Config::new()
                    .host_path(&sockdir)
                    .port(port)
                    .user("postgres")
                    .dbname("postgres")
                    .connect_timeout(Duration::from_secs(1))
                    .connect(postgres::NoTls)
                    .ok();
            }
            if let Some(c) = conn.as_mut() {
                match c.query_one(paused, &[]) {
                    Ok(row) => seen |= row.get::<_, String>(0) == "true",
                    Err(_) => conn = None,
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    });
    let r = nodes[1].repmgr(&["standby", "switchover", "--siblings-follow"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap_or(false);
    r.assert_success()
        .assert_stderr_contains("repmgr 5's repmgrd on node \"node3\" (ID: 3) paused")
        .assert_stderr_contains("repmgr 5's repmgrd on node \"node3\" (ID: 3) unpaused");
    assert!(
        seen,
        "node3's repmgr 5 flag was never seen set\n{}",
        r.stderr
    );
    assert_eq!(nodes[2].query(paused), "false", "left paused");
    assert!(!nodes[1].pg.is_in_recovery(), "node2 is the primary");
}
