//! primary/standby register and unregister on real PostgreSQL.

use crate::fixture::{registered_cluster, write_conf, Node};
use crate::harness::ExitCode;
use crate::harness::{user_tempdir, PgNode};

#[test]
fn primary_register_creates_schema_record_and_events() {
    let p = Node::primary("node1", 1);
    let r = p.repmgr(&["primary", "register"]);
    r.assert_success()
        .assert_stderr_contains("primary node record (ID: 1) registered");
    assert!(r.stdout.is_empty(), "logs belong on stderr: {r}");
    assert_eq!(
        p.query("SELECT node_id||'|'||node_name||'|'||type||'|'||active||'|'||coalesce(upstream_node_id::text,'NULL')||'|'||priority||'|'||location FROM repmgr.nodes"),
        "1|node1|primary|true|NULL|100|default"
    );
    assert_eq!(p.query("SELECT config_file FROM repmgr.nodes"), p.conf);
    assert_eq!(p.query("SELECT term::text FROM repmgr.voting_term"), "1");
    assert_eq!(
        p.query("SELECT string_agg(event, ',' ORDER BY event) FROM repmgr.events WHERE successful"),
        "cluster_created,primary_register"
    );
    // No extension needed or created; every repmgr 5 object exists.
    assert_eq!(
        p.count("SELECT count(*) FROM pg_extension WHERE extname = 'repmgr'"),
        0
    );
    for obj in [
        "repmgr.nodes",
        "repmgr.events",
        "repmgr.monitoring_history",
        "repmgr.voting_term",
        "repmgr.show_nodes",
        "repmgr.replication_status",
    ] {
        assert_eq!(
            p.query(&format!("SELECT (to_regclass('{obj}') IS NOT NULL)::text")),
            "true",
            "{obj}"
        );
    }
    assert_eq!(
        p.query("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema='repmgr' AND table_name='nodes'"),
        "node_id,upstream_node_id,active,node_name,type,location,priority,conninfo,repluser,slot_name,config_file"
    );
    assert_eq!(
        p.query("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema='repmgr' AND table_name='replication_status'"),
        "primary_node_id,standby_node_id,standby_name,node_type,active,last_monitor_time,last_wal_primary_location,last_wal_standby_location,replication_lag,replication_time_lag,apply_lag,communication_time_lag"
    );
    assert_eq!(
        p.query("SELECT version::text FROM repmgr.schema_version"),
        "4"
    );
}

#[test]
fn an_older_schema_is_upgraded_by_primary_register_force() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    // Back to version 1, as an older release left it.
    p.pg.execute("DROP TABLE repmgr.repmgrd_status");
    p.pg.execute("UPDATE repmgr.schema_version SET version = 1");
    p.repmgr(&["primary", "register", "-F"])
        .assert_success()
        .assert_stderr_contains("upgraded from version 1 to 4");
    assert_eq!(
        p.query("SELECT (to_regclass('repmgr.repmgrd_status') IS NOT NULL)::text"),
        "true"
    );
    assert_eq!(p.count("SELECT count(*) FROM repmgr.nodes"), 1);
}

#[test]
fn primary_register_twice_is_refused_without_force() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    p.repmgr(&["primary", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already registered")
        .assert_stderr_contains("-F/--force");
    p.repmgr(&["primary", "register", "-F"])
        .assert_success()
        .assert_stderr_contains("updated");
    assert_eq!(p.count("SELECT count(*) FROM repmgr.nodes"), 1);
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.events WHERE event='cluster_created'"),
        1
    );
}

#[test]
fn primary_register_dry_run_changes_nothing() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register", "--dry-run"])
        .assert_success()
        .assert_stderr_contains("would");
    assert_eq!(
        p.query("SELECT (to_regnamespace('repmgr') IS NULL)::text"),
        "true"
    );
}

#[test]
fn master_register_is_primary_register() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["master", "register"]).assert_success();
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.nodes WHERE type='primary'"),
        1
    );
}

#[test]
fn standby_register_finds_primary_from_local_metadata() {
    let nodes = registered_cluster(1);
    let (p, s) = (&nodes[0], &nodes[1]);
    assert_eq!(
        p.query("SELECT node_id||'|'||type||'|'||upstream_node_id||'|'||active FROM repmgr.nodes WHERE node_id=2"),
        "2|standby|1|true"
    );
    assert_eq!(
        p.query("SELECT details FROM repmgr.events WHERE event='standby_register'"),
        "standby registration succeeded; upstream node ID is 1"
    );
    // Registering again without -F is refused; with -F it overwrites.
    s.repmgr(&["standby", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already registered");
    s.repmgr(&["standby", "register", "-F"]).assert_success();
    // The show_nodes view names the upstream.
    assert_eq!(
        p.query("SELECT upstream_node_name FROM repmgr.show_nodes WHERE node_id=2"),
        "node1"
    );
}

#[test]
fn standby_register_with_wait_sync_and_explicit_primary() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let s = Node::standby(&p, "node2", 2);
    let port = p.pg.port.to_string();
    s.repmgr(&[
        "standby",
        "register",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--wait-sync=20",
    ])
    .assert_success()
    .assert_stderr_contains("synchronised");
    assert_eq!(
        s.count("SELECT count(*) FROM repmgr.nodes WHERE node_id=2"),
        1
    );
    assert_eq!(
        p.query("SELECT successful::text FROM repmgr.events WHERE event='standby_register_sync'"),
        "true"
    );
}

#[test]
fn standby_register_waits_for_a_starting_standby_by_default() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    let s = Node::standby(&p, "node2", 2);
    s.pg.stop();
    // -F does not wait (as repmgr): it goes on at once to look for the
    // primary (here it cannot: no -h was given)
    let t = std::time::Instant::now();
    s.repmgr(&["standby", "register", "-F"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("registering it anyway (-F/--force)");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "-F waited"
    );
    // repmgr's --wait-start default is 30 s: a standby that comes up a few
    // seconds later is registered without the option
    let starter = std::thread::scope(|scope| {
        let h = scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(3));
            s.pg.start();
        });
        let r = s.repmgr(&["standby", "register"]);
        h.join().unwrap();
        r
    });
    starter.assert_success();
}

#[test]
fn register_refuses_wrong_roles_and_duplicates() {
    let nodes = registered_cluster(1);
    let (p, s) = (&nodes[0], &nodes[1]);
    // primary register on a standby; standby register on a primary.
    s.repmgr(&["primary", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("standby");
    p.repmgr(&["standby", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("should be a standby");

    // A third node reusing node_id 2 or node name "node1".
    let third = PgNode::standby_of(&p.pg, "node3");
    let before = p.count("SELECT count(*) FROM repmgr.nodes");
    let dup_id = write_conf(&third, 2, "node3", &third.conninfo(), "");
    crate::harness::repmgr(&["-f", &dup_id, "standby", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already registered");
    let dup_name = write_conf(&third, 3, "node1", &third.conninfo(), "");
    crate::harness::repmgr(&["-f", &dup_name, "standby", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("node name \"node1\" is already in use");
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.nodes"),
        before,
        "no partial row"
    );
}

#[test]
fn second_primary_is_refused_while_first_is_reachable() {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    // A separate server claiming to be primary of the same cluster: write its
    // conf so that its metadata lives on node1 (conninfo of node1 in the
    // metadata, but we run it against node1's schema via its own conninfo).
    let other = Node::configure(PgNode::primary("other"), 2, "");
    // Copy node1's metadata into "other" by registering there first, then
    // add node1 as an active primary in other's metadata.
    other.repmgr(&["primary", "register"]).assert_success();
    other.pg.execute(&format!(
        "UPDATE repmgr.nodes SET node_id=9, node_name='node1x', conninfo='{}' WHERE node_id=2",
        p.pg.conninfo()
    ));
    other
        .repmgr(&["primary", "register"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already an active registered primary");
    other
        .repmgr(&["primary", "register", "-F"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("already an active registered primary");
}

#[test]
fn standby_unregister_and_primary_unregister_refusals() {
    let nodes = registered_cluster(1);
    let (p, s) = (&nodes[0], &nodes[1]);
    // The primary has a registered standby: refused even with -F.
    p.repmgr(&["primary", "unregister", "-F"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("downstream");
    // standby unregister of the primary node is refused.
    s.repmgr(&["standby", "unregister", "--node-id=1"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("not a standby");
    s.repmgr(&["standby", "unregister"]).assert_success();
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.nodes WHERE node_id=2"),
        0
    );
    assert_eq!(
        p.count("SELECT count(*) FROM repmgr.events WHERE event='standby_unregister'"),
        1
    );
    // An active primary without standbys: needs -F.
    p.repmgr(&["primary", "unregister"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("-F");
    p.repmgr(&["primary", "unregister", "-F"]).assert_success();
    assert_eq!(p.count("SELECT count(*) FROM repmgr.nodes"), 0);
}

#[test]
fn event_notification_command_gets_placeholders() {
    let dir = user_tempdir();
    let out = dir.path().join("events.txt");
    let extra = format!(
        "event_notification_command='echo \"%n|%a|%e|%s|%p|%d\" >> {}'\nevent_notifications='primary_register,standby_register'",
        out.display()
    );
    let p = Node::configure(PgNode::primary("node1"), 1, &extra);
    p.repmgr(&["primary", "register"]).assert_success();
    let s = Node::configure(PgNode::standby_of(&p.pg, "node2"), 2, &extra);
    s.repmgr(&["standby", "register"]).assert_success();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // cluster_created is filtered out by event_notifications.
    assert_eq!(
        lines,
        vec![
            "1|node1|primary_register|1|1|",
            "2|node2|standby_register|1|1|standby registration succeeded; upstream node ID is 1",
        ],
        "{text}"
    );
}

#[test]
fn seed_format_config_registers_with_a_deprecation_warning() {
    let pg = PgNode::primary("seed");
    let conf = crate::harness::write_user_file(
        &pg.dir.join("repmgr.conf"),
        &format!("cluster=test\nnode=1\nconninfo='{}'\n", pg.conninfo()),
    );
    let r = crate::harness::repmgr(&["-f", conf.to_str().unwrap(), "master", "register"]);
    r.assert_success().assert_stderr_contains("deprecated");
    assert_eq!(
        pg.query_one_string("SELECT node_name FROM repmgr.nodes"),
        "node1"
    );
}

#[test]
fn log_to_file_sends_logs_to_log_file() {
    let dir = user_tempdir();
    let log = dir.path().join("repmgr.log");
    let p = Node::configure(
        PgNode::primary("node1"),
        1,
        &format!("log_file='{}'", log.display()),
    );
    let r = p.repmgr(&["primary", "register", "--log-to-file"]);
    r.assert_success();
    assert!(!r.stderr.contains("registered"), "{r}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("] [NOTICE] primary node record (ID: 1) registered"),
        "{text}"
    );
}

#[test]
fn password_from_passfile() {
    let pg = PgNode::builder("node1")
        .hba("host all all 127.0.0.1/32 scram-sha-256")
        .start();
    pg.execute("ALTER USER postgres PASSWORD 'it''s:secret'");
    let p = Node::configure(pg, 1, "");
    // No password anywhere: a clear connection error.
    p.repmgr(&["primary", "register"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("password");
    let dir = user_tempdir();
    let passfile = crate::harness::write_user_file(
        &dir.path().join("pgpass"),
        &format!("127.0.0.1:{}:*:postgres:it's\\:secret\n", p.pg.port),
    );
    p.cmd(&["primary", "register"])
        .env("PGPASSFILE", passfile.to_str().unwrap())
        .run()
        .assert_success();
    p.cmd(&["cluster", "show"])
        .env("PGPASSWORD", "it's:secret")
        .run()
        .assert_success();
}
