//! cluster show and cluster event on real PostgreSQL.

use std::net::TcpListener;
use std::time::Duration;

use crate::fixture::registered_cluster;
use crate::harness::ExitCode;

#[test]
fn cluster_show_text_csv_compact() {
    let nodes = registered_cluster(2);
    let r = nodes[1].repmgr(&["cluster", "show"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with(" ID | Name  | Role    | Status    | Upstream | Location | Priority | Timeline | Connection string"),
        "{r}"
    );
    assert!(
        lines[1].starts_with("----+-------+---------+-----------+----------+"),
        "{r}"
    );
    assert!(lines[2].starts_with(" 1  | node1 | primary | * running |          | default  | 100      | 1        | host=127.0.0.1"), "{r}");
    assert!(lines[3].starts_with(" 2  | node2 | standby |   running | node1    | default  | 100      | 1        | host=127.0.0.1"), "{r}");
    assert!(
        lines[4].starts_with(
            " 3  | node3 | standby |   running | node1    | default  | 100      | 1        |"
        ),
        "{r}"
    );
    assert_eq!(lines.len(), 5, "{r}");

    let r = nodes[0].repmgr(&["cluster", "show", "--csv"]);
    r.assert_success();
    assert_eq!(r.stdout, "1,0,0\n2,0,1\n3,0,1\n");

    let r = nodes[0].repmgr(&["cluster", "show", "--compact"]);
    r.assert_success();
    assert!(
        r.stdout.lines().next().unwrap().ends_with("| Prio. | TLI"),
        "{r}"
    );
    assert!(!r.stdout.contains("host="), "{r}");
}

#[test]
fn cluster_show_marks_unreachable_node_and_exits_25() {
    let nodes = registered_cluster(2);
    nodes[2].pg.stop();
    let r = nodes[0].repmgr(&["cluster", "show"]);
    r.assert_code(ExitCode::NodeStatus);
    assert!(
        r.stdout
            .contains(" 3  | node3 | standby | ? unreachable | ? node1"),
        "{r}"
    );
    // The issues go to stderr, as repmgr 5.3's: stdout is the table.
    r.assert_stderr_contains(
        "node \"node3\" (ID: 3) is registered as an active standby but is unreachable",
    );
    r.assert_stderr_contains("WARNING: following issues were detected");
    r.assert_stderr_contains("HINT: execute with --verbose option");
    let r = nodes[0].repmgr(&["cluster", "show", "--csv"]);
    r.assert_code(ExitCode::NodeStatus);
    assert_eq!(r.stdout, "1,0,0\n2,0,1\n3,-1,-1\n", "{r}");
    // --verbose shows the connection error itself.
    let r = nodes[0].repmgr(&["cluster", "show", "--verbose"]);
    r.assert_code(ExitCode::NodeStatus)
        .assert_stderr_contains("following error encountered");
    // An inactive unreachable node is "- failed", not an issue.
    nodes[0]
        .pg
        .execute("UPDATE repmgr.nodes SET active = false WHERE node_id = 3");
    let r = nodes[0].repmgr(&["cluster", "show"]);
    r.assert_success().assert_stdout_contains("- failed");
}

#[test]
fn cluster_show_detects_a_standby_not_attached_and_a_stray_primary() {
    let nodes = registered_cluster(1);
    // Registered as standby, but promoted behind repmgr's back.
    nodes[1].pg.execute("SELECT pg_promote()");
    nodes[1]
        .pg
        .wait_until(Duration::from_secs(60), "promotion", |n| {
            !n.is_in_recovery()
        });
    let r = nodes[0].repmgr(&["cluster", "show"]);
    r.assert_code(ExitCode::NodeStatus)
        .assert_stdout_contains("! running as primary");
}

/// Hung nodes are shown as unreachable (bench/unreachable measures that
/// the two are probed in parallel: one connect_timeout, not two).
#[test]
fn cluster_show_reports_hung_nodes_as_unreachable() {
    let nodes = registered_cluster(1);
    // A "server" that accepts TCP connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    for id in [7, 8] {
        nodes[0].pg.execute(&format!(
            "INSERT INTO repmgr.nodes (node_id, upstream_node_id, node_name, type, conninfo, repluser, config_file)
             VALUES ({id}, 1, 'hung{id}', 'standby', 'host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2', 'postgres', '/x')"
        ));
    }
    let r = nodes[0].repmgr(&["cluster", "show", "--verbose"]);
    r.assert_code(ExitCode::NodeStatus);
    assert!(r.stdout.contains("hung7 | standby | ? unreachable"), "{r}");
    assert!(r.stdout.contains("hung8 | standby | ? unreachable"), "{r}");
    // Given up on at the conninfo's deadline, not left hanging.
    assert_eq!(
        r.stderr.matches("timeout expired after 2 s").count(),
        2,
        "{r}"
    );
    drop(hung);
}

#[test]
fn cluster_event_filters() {
    let nodes = registered_cluster(2);
    let p = &nodes[0];
    let r = p.repmgr(&["cluster", "event"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with(
            " Node ID | Name  | Event            | OK | Timestamp           | Details"
        ),
        "{r}"
    );
    // newest first: node3's registration
    assert!(
        lines[2].starts_with(" 3       | node3 | standby_register | t  |"),
        "{r}"
    );
    // repmgr ends the table with an empty line
    assert_eq!(lines.len(), 2 + 4 + 1, "{r}");
    assert_eq!(lines[6], "", "{r}");
    // as repmgr (each event its own transaction there): the registration
    // is newer than the schema's creation, equal timestamps or not
    assert!(lines[4].contains("| primary_register |"), "{r}");
    assert!(lines[5].contains("| cluster_created  |"), "{r}");

    let r = p.repmgr(&["cluster", "event", "--limit=1"]);
    assert_eq!(r.stdout.lines().count(), 4, "{r}");
    let r = p.repmgr(&["cluster", "event", "--event", "primary_register"]);
    assert_eq!(r.stdout.lines().count(), 4, "{r}");
    r.assert_stdout_contains("primary_register");
    let r = p.repmgr(&["cluster", "event", "--node-id=2"]);
    assert_eq!(r.stdout.lines().count(), 4, "{r}");
    let r = p.repmgr(&["cluster", "event", "--event", "no_such_event"]);
    r.assert_success();
    assert_eq!(r.stdout, "no matching events found\n", "{r}");
    // repmgr's --csv has no Details column
    let r = p.repmgr(&["cluster", "event", "--all", "--csv"]);
    let fields: Vec<usize> = r.stdout.lines().map(|l| l.split(',').count()).collect();
    assert_eq!(fields, vec![5; 4], "{r}");
    let r = p.repmgr(&["cluster", "event", "--node-name", "node3", "--csv"]);
    r.assert_success();
    assert!(r.stdout.starts_with("3,node3,standby_register,t,"), "{r}");
    assert_eq!(r.stdout.lines().count(), 1, "{r}");
    let r = p.repmgr(&["cluster", "events", "--all", "--compact"]);
    assert_eq!(r.stdout.lines().count(), 2 + 4 + 1, "{r}");
    assert!(!r.stdout.contains("Details"), "{r}");
    p.repmgr(&["cluster", "event", "--limit=0"])
        .assert_code(ExitCode::BadConfig);
    p.repmgr(&["cluster", "event", "--limit=x"])
        .assert_code(ExitCode::BadConfig);
}

#[test]
fn cluster_show_without_repmgr_conf_connects_with_the_options() {
    let nodes = registered_cluster(1);
    let dir = crate::harness::user_tempdir();
    let port = nodes[0].pg.port.to_string();
    // as repmgr: -h/-p/-U/-d stand in for repmgr.conf's conninfo
    let r = crate::harness::Repmgr::new(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        "postgres",
        "cluster",
        "show",
    ])
    .cwd(dir.path())
    .run();
    r.assert_success()
        .assert_stdout_contains("| node2 | standby |");
    // with nothing to connect to, still no configuration found
    crate::harness::Repmgr::new(&["cluster", "show"])
        .cwd(dir.path())
        .run()
        .assert_code(ExitCode::BadConfig);
}

#[test]
fn a_primary_fenced_in_its_configuration_shows_as_fenced_and_a_role_setting_does_not() {
    let nodes = registered_cluster(1);
    let p = &nodes[0];
    let role = |n: &crate::fixture::Node| {
        let r = n.repmgr(&["node", "check", "--role", "--nagios"]);
        (r.stdout.trim_end().to_string(), r.status)
    };
    // Read-only for the repmgr user only (a role setting, not the
    // configuration file): not the fence.
    p.pg.execute("ALTER ROLE postgres SET default_transaction_read_only = on");
    assert_eq!(
        role(p),
        (
            "REPMGR_SERVER_ROLE OK: node is primary".to_string(),
            crate::harness::Nagios::Ok.code()
        )
    );
    p.pg.execute(
        "BEGIN READ WRITE; ALTER ROLE postgres RESET default_transaction_read_only; COMMIT",
    );
    // The fence: the configured default, from postgresql.auto.conf.
    p.pg.execute("ALTER SYSTEM SET default_transaction_read_only = on");
    p.pg.execute("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        role(p),
        (
            "REPMGR_SERVER_ROLE CRITICAL: node is fenced: running as primary but read-only"
                .to_string(),
            crate::harness::Nagios::Critical.code()
        )
    );
    let r = nodes[1].repmgr(&["cluster", "show"]);
    r.assert_stdout_contains("| node1 | primary | ! fenced ");
    // A standby never counts as fenced, whatever its setting.
    assert_eq!(
        role(&nodes[1]),
        (
            "REPMGR_SERVER_ROLE OK: node is standby".to_string(),
            crate::harness::Nagios::Ok.code()
        )
    );
    p.pg.execute("ALTER SYSTEM RESET default_transaction_read_only");
    p.pg.execute("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    p.repmgr(&["cluster", "show"]).assert_success();

    // cluster show on a node without the metadata says so (one statement
    // now asks for the records and finds the table missing).
    p.pg.execute("DROP SCHEMA repmgr CASCADE");
    let r = p.repmgr(&["cluster", "show"]);
    r.assert_code(ExitCode::BadConfig);
    r.assert_stderr_contains("the repmgr metadata schema was not found on this node");
}
