//! node check, node status, node service and cluster cleanup on real
//! PostgreSQL: every output form and exit code, healthy and failing.

use crate::fixture::registered_cluster;
use crate::harness::write_user_file;
use crate::harness::{ExitCode, Nagios};

fn line(r: &crate::harness::RunResult) -> String {
    r.stdout.trim_end_matches('\n').to_string()
}

#[test]
fn node_check_outputs_and_exit_codes() {
    let nodes = registered_cluster(1);
    let (p, s) = (&nodes[0], &nodes[1]);
    let pdir = p.pg.datadir.display().to_string();

    // Full run, primary: text and CSV.
    let r = p.repmgr(&["node", "check"]);
    r.assert_success();
    assert_eq!(
        r.stdout,
        format!(
            "Node \"node1\":\n\
             \tServer role: OK (node is primary)\n\
             \tReplication lag: OK (N/A - node is primary)\n\
             \tWAL archiving: OK (0 pending archive ready files)\n\
             \tUpstream connection: OK (N/A - node is primary)\n\
             \tDownstream servers: OK (1 of 1 downstream nodes attached)\n\
             \tReplication slots: OK (node has no physical replication slots)\n\
             \tMissing physical replication slots: OK (node has no missing physical replication slots)\n\
             \tConfigured data directory: OK (configured \"data_directory\" is \"{pdir}\")\n"
        ),
        "{r}"
    );
    let r = p.repmgr(&["node", "check", "--csv"]);
    r.assert_success();
    assert_eq!(
        r.stdout,
        format!(
            "\"Node name\",\"node1\"\n\"Node ID\",\"1\"\n\
             \"Server role\",\"OK\",\"node is primary\"\n\
             \"Replication lag\",\"OK\"\n\
             \"WAL archiving\",\"OK\"\n\
             \"Downstream servers\",\"OK\",\"1 of 1 downstream nodes attached\"\n\
             \"Replication slots\",\"OK\",\"node has no physical replication slots\"\n\
             \"Missing physical replication slots\",\"OK\",\"node has no missing physical replication slots\"\n\
             \"Configured data directory\",\"OK\",\"configured \"data_directory\" is \"{pdir}\"\"\n"
        ),
        "{r}"
    );

    // Full run, standby.
    let r = s.repmgr(&["node", "check"]);
    r.assert_success();
    r.assert_stdout_contains("\tServer role: OK (node is standby)\n");
    r.assert_stdout_contains("\tReplication lag: OK (0 seconds)\n");
    r.assert_stdout_contains(
        "\tUpstream connection: OK (node \"node2\" (ID: 2) is attached to expected upstream node \"node1\" (ID: 1))\n",
    );
    r.assert_stdout_contains("\tDownstream servers: OK (this node has no downstream nodes)\n");

    // Every single check with --nagios, primary.
    let nagios = |n: &crate::fixture::Node, check: &str| {
        let r = n.repmgr(&["node", "check", check, "--nagios"]);
        (line(&r), r.status)
    };
    assert_eq!(
        nagios(p, "--role"),
        (
            "REPMGR_SERVER_ROLE OK: node is primary".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--replication-lag"),
        (
            "REPMGR_REPLICATION_LAG OK: 0 seconds | lag=0;300;600".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--archive-ready"),
        (
            "REPMGR_ARCHIVE_READY OK: 0 pending archive ready files | files=0;16;128".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--upstream"),
        (
            "REPMGR_UPSTREAM_SERVER OK: N/A - node is primary".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--downstream"),
        (
            "REPMGR_DOWNSTREAM_SERVERS OK: 1 of 1 downstream nodes attached | attached=1, missing=0"
                .into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--slots"),
        (
            "REPMGR_INACTIVE_SLOTS OK: node has no physical replication slots | slots=0;0".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--missing-slots"),
        (
            "REPMGR_MISSING_SLOTS OK: node has no missing physical replication slots | missing_slots=0"
                .into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(p, "--data-directory-config"),
        (
            format!("REPMGR_DATA_DIRECTORY OK: {pdir}"),
            Nagios::Ok.code()
        )
    );
    // repmgrd is not running here.
    assert_eq!(
        nagios(p, "--repmgrd"),
        (
            "REPMGRD CRITICAL: repmgrd not running".into(),
            Nagios::Critical.code()
        )
    );
    // Standby.
    assert_eq!(
        nagios(s, "--role"),
        (
            "REPMGR_SERVER_ROLE OK: node is standby".into(),
            Nagios::Ok.code()
        )
    );
    assert_eq!(
        nagios(s, "--upstream"),
        ("REPMGR_UPSTREAM_SERVER OK: node \"node2\" (ID: 2) is attached to expected upstream node \"node1\" (ID: 1)".into(), Nagios::Ok.code())
    );
    let (l, code) = nagios(s, "--replication-lag");
    assert!(l.starts_with("REPMGR_REPLICATION_LAG OK: "), "{l}");
    assert!(l.ends_with(";300;600"), "{l}");
    assert_eq!(code, Nagios::Ok.code());

    // A single check without --nagios still exits Nagios-style.
    let r = p.repmgr(&["node", "check", "--role"]);
    r.assert_success();
    assert_eq!(r.stdout, "OK (node is primary)\n");

    // --optformat diagnostics (switchover).
    let opt = |n: &crate::fixture::Node, args: &[&str]| {
        let mut a = vec!["node", "check"];
        a.extend_from_slice(args);
        a.push("--optformat");
        let r = n.repmgr(&a);
        (line(&r), r.status)
    };
    assert_eq!(
        opt(p, &["--archive-ready"]),
        ("--status=OK --files=0".into(), Nagios::Ok.code())
    );
    assert_eq!(
        opt(p, &["--replication-lag"]),
        ("--status=OK --lag=0".into(), Nagios::Ok.code())
    );
    assert_eq!(
        opt(p, &["--data-directory-config"]),
        ("--configured-data-directory=OK".into(), Nagios::Ok.code())
    );
    assert_eq!(
        opt(p, &["--db-connection"]),
        ("--db-connection=OK".into(), Nagios::Ok.code())
    );
    assert_eq!(
        opt(p, &["--replication-config-owner"]),
        ("--replication-config-owner=OK".into(), Nagios::Ok.code())
    );
    let r = s.repmgr(&[
        "node",
        "check",
        "--replication-connection",
        "--remote-node-id=1",
    ]);
    r.assert_success();
    assert_eq!(r.stdout, "--connection=OK\n", "{r}");
    let r = s.repmgr(&["node", "check", "--replication-connection"]);
    assert_eq!(r.stdout, "--connection=UNKNOWN\n", "{r}");
    // repmgr's: whether libpq knows the passfile keyword, so always 0
    let r = p.repmgr(&["node", "check", "--has-passfile"]);
    r.assert_success();
    assert_eq!(r.stdout, "");

    // Refusals.
    p.repmgr(&["node", "check", "--nagios"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("--nagios can only be used with a specific check");
    p.repmgr(&["node", "check", "--role", "--csv"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("--csv output not provided with --role option");

    // WAL archiving: WARNING and CRITICAL from the thresholds.
    let status_dir = p.pg.datadir.join("pg_wal/archive_status");
    for seg in ["0000000100000000000000F1", "0000000100000000000000F2"] {
        write_user_file(&status_dir.join(format!("{seg}.ready")), "");
    }
    p.append_conf("archive_ready_warning=1\narchive_ready_critical=5");
    assert_eq!(
        nagios(p, "--archive-ready"),
        (
            "REPMGR_ARCHIVE_READY WARNING: 2 pending archive ready files | files=2;1;5".into(),
            Nagios::Warning.code()
        )
    );
    assert_eq!(
        opt(p, &["--archive-ready"]),
        (
            "--status=WARNING --files=2 --threshold=1".into(),
            Nagios::Warning.code()
        )
    );
    write_user_file(&status_dir.join("0000000100000000000000F3.ready"), "");
    p.append_conf("archive_ready_critical=2");
    assert_eq!(
        nagios(p, "--archive-ready"),
        (
            "REPMGR_ARCHIVE_READY CRITICAL: 3 pending archive ready files | files=3;1;2".into(),
            Nagios::Critical.code()
        )
    );
    let r = p.repmgr(&["node", "check"]);
    r.assert_code(ExitCode::NodeStatus).assert_stdout_contains(
        "\tWAL archiving: CRITICAL (3 pending archive ready files, critical threshold: 2)\n",
    );
    for seg in [
        "0000000100000000000000F1",
        "0000000100000000000000F2",
        "0000000100000000000000F3",
    ] {
        std::fs::remove_file(status_dir.join(format!("{seg}.ready"))).unwrap();
    }

    // An inactive slot: CRITICAL.
    p.pg.execute("SELECT pg_create_physical_replication_slot('dangling')");
    assert_eq!(
        nagios(p, "--slots"),
        (
            "REPMGR_INACTIVE_SLOTS CRITICAL: 1 of 1 physical replication slots are inactive | slots=1;1"
                .into(),
            Nagios::Critical.code()
        )
    );
    p.repmgr(&["node", "check"])
        .assert_code(ExitCode::NodeStatus);
    p.pg.execute("SELECT pg_drop_replication_slot('dangling')");

    // A standby registered with a slot that does not exist: CRITICAL.
    p.pg.execute("UPDATE repmgr.nodes SET slot_name = 'repmgr_slot_2' WHERE node_id = 2");
    assert_eq!(
        nagios(p, "--missing-slots"),
        ("REPMGR_MISSING_SLOTS CRITICAL: 1 physical replication slots are missing: repmgr_slot_2 | missing_slots=1;repmgr_slot_2".into(), Nagios::Critical.code())
    );
    p.pg.execute("UPDATE repmgr.nodes SET slot_name = NULL WHERE node_id = 2");

    // The standby promoted behind repmgr's back: --role CRITICAL.
    s.pg.execute("SELECT pg_promote()");
    crate::harness::poll_until(
        std::time::Duration::from_secs(60),
        "standby to leave recovery",
        || !s.pg.is_in_recovery(),
    );
    assert_eq!(
        nagios(s, "--role"),
        (
            "REPMGR_SERVER_ROLE CRITICAL: node is registered as standby but running as primary"
                .into(),
            Nagios::Critical.code()
        )
    );

    // The standby stopped: the primary's downstream check is CRITICAL ...
    s.pg.stop();
    assert_eq!(
        nagios(p, "--downstream"),
        ("REPMGR_DOWNSTREAM_SERVERS CRITICAL: 1 of 1 downstream nodes not attached (missing: node2 (ID: 2)) | attached=0, missing=1".into(), Nagios::Critical.code())
    );
    p.repmgr(&["node", "check"])
        .assert_code(ExitCode::NodeStatus)
        .assert_stdout_contains(
            "\tDownstream servers: CRITICAL (1 of 1 downstream nodes not attached; missing: node2 (ID: 2))\n",
        );
    // ... and on the stopped node itself, Nagios gets a CRITICAL line.
    assert_eq!(
        nagios(s, "--role"),
        (
            "REPMGR_SERVER_ROLE CRITICAL: unable to connect to node \"node2\" (ID: 2)".into(),
            Nagios::Critical.code()
        )
    );
    s.repmgr(&["node", "check", "--role"])
        .assert_code(ExitCode::DbConn);
    assert_eq!(
        opt(s, &["--archive-ready"]),
        ("--error=DB_CONNECTION".into(), ExitCode::DbConn.code())
    );
    assert_eq!(opt(s, &["--db-connection"]).0, "--db-connection=CRITICAL");
}

#[test]
fn node_status_service_and_cleanup() {
    let nodes = registered_cluster(1);
    let (p, s) = (&nodes[0], &nodes[1]);

    // node status, primary, text.
    let r = p.repmgr(&["node", "status"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "Node \"node1\":", "{r}");
    assert!(lines[1].starts_with("\tPostgreSQL version: "), "{r}");
    assert!(lines[2].starts_with("\tTotal data size: "), "{r}");
    assert_eq!(lines[3], format!("\tConninfo: {}", p.pg.conninfo()), "{r}");
    assert_eq!(lines[4], "\tRole: primary", "{r}");
    assert_eq!(lines[5], "\tWAL archiving: off", "{r}");
    assert_eq!(lines[6], "\tArchive command: (none)", "{r}");
    assert!(
        lines[7].starts_with("\tReplication connections: 1 (of maximal "),
        "{r}"
    );
    assert!(
        lines[8].starts_with("\tReplication slots: 0 physical (of maximal "),
        "{r}"
    );
    assert!(lines[8].ends_with("; 0 missing)"), "{r}");
    assert_eq!(lines[9], "\tReplication lag: n/a", "{r}");
    assert!(r.stdout.ends_with("n/a\n\n"), "{r}");

    // Standby, text and CSV.
    let r = s.repmgr(&["node", "status"]);
    r.assert_success();
    r.assert_stdout_contains("\tRole: standby\n");
    r.assert_stdout_contains("\tUpstream node: node1 (ID: 1)\n");
    r.assert_stdout_contains("\tReplication lag: 0 seconds\n");
    r.assert_stdout_contains("\tLast received LSN: ");
    r.assert_stdout_contains("\tLast replayed LSN: ");
    let r = p.repmgr(&["node", "status", "--csv"]);
    r.assert_success();
    let l: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(l[0], "\"Node name\",\"node1\"", "{r}");
    assert_eq!(l[1], "\"Node ID\",\"1\"", "{r}");
    r.assert_stdout_contains("\"Role\",\"primary\"\n");
    r.assert_stdout_contains("\"WALs pending archiving\",\"0\"\n");
    r.assert_stdout_contains("\"Upstream node\",\"(none)\"\n");
    r.assert_stdout_contains("\"occupied_wal_senders\",1\n");
    r.assert_stdout_contains("\"inactive_replication_slots\",0\n\"missing_replication_slots\",0\n");

    // An issue (an inactive slot) makes node status exit 25.
    p.pg.execute("SELECT pg_create_physical_replication_slot('dangling')");
    let r = p.repmgr(&["node", "status"]);
    r.assert_code(ExitCode::NodeStatus)
        .assert_stdout_contains("; 1 inactive\n")
        .assert_stderr_contains("following issue(s) were detected:")
        .assert_stdout_contains("  - node has 1 inactive physical replication slots\n");
    p.repmgr(&["node", "status", "--csv"])
        .assert_code(ExitCode::NodeStatus)
        .assert_stdout_contains("\"inactive_replication_slots\",1,\"dangling\"\n");
    p.pg.execute("SELECT pg_drop_replication_slot('dangling')");

    // node service.
    let r = s.repmgr(&["node", "service", "--list-actions"]);
    r.assert_success();
    let l: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        l[0],
        "Following commands would be executed for each action:"
    );
    assert_eq!(l[1], "");
    assert!(l[2].starts_with("    start: \""), "{r}");
    assert!(l[3].starts_with("     stop: \""), "{r}");
    assert!(l[4].starts_with("  restart: \""), "{r}");
    assert!(l[5].starts_with("   reload: \""), "{r}");
    assert!(l[6].starts_with("  promote: \""), "{r}");
    // repmgr's layout: no pg_ctl_options (two spaces), the directory quoted
    let promote = format!(
        "  promote: \"{}/pg_ctl  -w -D '{}' promote\"",
        crate::harness::pg_bindir().display(),
        s.pg.datadir.display()
    );
    assert_eq!(l[6], promote, "{r}");
    let r = s.repmgr(&["node", "service", "--list-actions", "--action=stop"]);
    assert!(r.stdout.contains("stop"), "{r}");
    assert_eq!(r.stdout.lines().count(), 1, "{r}");
    let r = s.repmgr(&[
        "node",
        "service",
        "--action=stop",
        "--checkpoint",
        "--dry-run",
    ]);
    r.assert_success()
        .assert_stderr_contains("a CHECKPOINT would be issued here")
        .assert_stderr_contains("would execute server command");
    assert!(s.pg.is_running());
    s.repmgr(&["node", "service", "--action=reload"])
        .assert_success();
    s.repmgr(&["node", "service", "--action=bogus"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("unknown value \"bogus\" provided for parameter --action");

    // --is-shutdown-cleanly: UP, SHUTDOWN after a clean stop, UNCLEAN after kill -9.
    let r = s.repmgr(&["node", "status", "--is-shutdown-cleanly"]);
    assert_eq!(r.stdout, "--state=UP\n", "{r}");
    s.repmgr(&["node", "service", "--action=stop", "--checkpoint"])
        .assert_success();
    // repmgr's pg_ctl stop does not wait (-W): switchover polls, so do we.
    crate::harness::poll_until(
        std::time::Duration::from_secs(60),
        "standby to stop",
        || !s.pg.is_running(),
    );
    let r = s.repmgr(&["node", "status", "--is-shutdown-cleanly"]);
    r.assert_success();
    assert!(
        r.stdout
            .starts_with("--state=SHUTDOWN --last-checkpoint-lsn=")
            && r.stdout.contains('/'),
        "{r}"
    );
    s.repmgr(&["node", "service", "--action=start"])
        .assert_success();
    assert!(s.pg.is_running());
    s.pg.kill9();
    let r = s.repmgr(&["node", "status", "--is-shutdown-cleanly"]);
    assert_eq!(r.stdout, "--state=UNCLEAN_SHUTDOWN\n", "{r}");
    // A failing service command exits 5.
    s.append_conf("service_reload_command='/bin/false'");
    s.repmgr(&["node", "service", "--action=reload"])
        .assert_code(ExitCode::LocalCommand);

    // cluster cleanup.
    p.pg.execute(
        "INSERT INTO repmgr.monitoring_history
            (primary_node_id, standby_node_id, last_monitor_time, last_apply_time,
             last_wal_primary_location, last_wal_standby_location, replication_lag, apply_lag)
         SELECT 1, 2, now() - (d || ' days')::interval, NULL, '0/0', '0/0', 0, 0
           FROM generate_series(0, 9) d",
    );
    p.repmgr(&["cluster", "cleanup", "-k", "5"])
        .assert_success()
        .assert_stderr_contains("monitoring records deleted; records newer than 5 day(s) retained");
    assert_eq!(p.count("SELECT count(*) FROM repmgr.monitoring_history"), 5);
    assert_eq!(
        p.query(
            "SELECT details FROM repmgr.events WHERE event = 'cluster_cleanup' ORDER BY event_timestamp DESC LIMIT 1"
        ),
        "monitoring records deleted; records newer than 5 day(s) retained"
    );
    p.repmgr(&["cluster", "cleanup", "--keep-history=0", "--node-id=2"])
        .assert_success();
    assert_eq!(p.count("SELECT count(*) FROM repmgr.monitoring_history"), 0);
    assert_eq!(
        p.query(
            "SELECT details FROM repmgr.events WHERE event = 'cluster_cleanup' ORDER BY event_timestamp DESC LIMIT 1"
        ),
        "all monitoring records deleted for node 2"
    );
    // Nothing left: no event, exit 0.
    p.repmgr(&["cluster", "cleanup"]).assert_success();
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.events WHERE event = 'cluster_cleanup'"),
        2
    );
}

/// target_session_attrs primary, standby and prefer-standby (libpq 14),
/// which the driver does not know: each host is tried in turn and its
/// recovery state checked.
#[test]
fn target_session_attrs_picks_the_server_by_role() {
    use crate::harness::PgNode;
    let primary = PgNode::builder("node1")
        .conf("log_connections = on")
        .start();
    let standby = PgNode::standby_of_builder("node2")
        .conf("log_connections = on")
        .standby_of(&primary);
    let sessions = |pg: &PgNode| {
        std::fs::read_to_string(&pg.logfile)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("connection authorized") && l.contains("application_name=repmgr")
            })
            .count()
    };
    for (attrs, to_standby) in [
        ("standby", true),
        ("primary", false),
        ("prefer-standby", true),
    ] {
        let ci = format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres connect_timeout=2 \
             target_session_attrs={attrs}",
            primary.port, standby.port
        );
        let conf = crate::fixture::write_conf(&primary, 1, "node1", &ci, "");
        let before = (sessions(&primary), sessions(&standby));
        crate::harness::repmgr(&["-f", &conf, "node", "check", "--db-connection"]).assert_success();
        let after = (sessions(&primary), sessions(&standby));
        let (p, s) = (after.0 - before.0, after.1 - before.1);
        assert_eq!(
            s > 0,
            to_standby,
            "{attrs}: {p} on the primary, {s} on the standby"
        );
        // The primary is tried first, so a standby-only session may pass
        // by it (and leave a session that was closed at once) but never stay.
        if !to_standby {
            assert_eq!(s, 0, "{attrs}");
        }
    }
    // Only a primary, asked for a standby: refused, in libpq's words.
    let ci = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres target_session_attrs=standby",
        primary.port
    );
    let conf = crate::fixture::write_conf(&primary, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "cluster", "show"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("server is not in hot standby mode");
    drop(standby);
}
