//! cluster matrix and cluster crosscheck through a real sshd on loopback.

use crate::fixture::registered_cluster_with;
use crate::harness::ExitCode;
use crate::harness::{write_user_file, RunResult, Sshd};

const ALL_UP: &str = " Name  | ID | 1 | 2 | 3\n\
                      -------+----+---+---+---\n \
                      node1 | 1  | * | * | * \n \
                      node2 | 2  | * | * | * \n \
                      node3 | 3  | * | * | * \n";

const NODE3_DOWN: &str = " Name  | ID | 1 | 2 | 3\n\
                          -------+----+---+---+---\n \
                          node1 | 1  | * | * | x \n \
                          node2 | 2  | * | * | x \n \
                          node3 | 3  | ? | ? | ? \n";

#[track_caller]
fn assert_stdout(r: &RunResult, expected: &str) {
    assert_eq!(
        r.stdout, expected,
        "stdout of {}\n--- stderr ---\n{}",
        r.command, r.stderr
    );
}

fn csv(rows: &[(i32, i32, i32)]) -> String {
    rows.iter()
        .map(|(a, b, c)| format!("{a},{b},{c}\n"))
        .collect()
}

#[test]
fn matrix_and_crosscheck_with_one_node_down() {
    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(2, |_| format!("ssh_options='{opts}'"));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);

    // All up: every cell `*`, exit 0, from a primary and from a standby.
    let r = n1.repmgr(&["cluster", "matrix"]);
    r.assert_success();
    assert_stdout(&r, ALL_UP);
    let r = n2.repmgr(&["cluster", "matrix", "--csv"]);
    r.assert_success();
    let all_ok: Vec<_> = (1..=3)
        .flat_map(|a| (1..=3).map(move |b| (a, b, 0)))
        .collect();
    assert_stdout(&r, &csv(&all_ok));
    let r = n3.repmgr(&["cluster", "crosscheck"]);
    r.assert_success();
    assert_stdout(&r, ALL_UP);
    let r = n1.repmgr(&["cluster", "crosscheck", "--csv"]);
    r.assert_success();
    assert_stdout(&r, &csv(&all_ok));

    // node3 stopped: its column `x` from the others, its row unknown.
    n3.pg.stop();
    let r = n1.repmgr(&["cluster", "matrix"]);
    r.assert_code(ExitCode::NodeStatus);
    assert_stdout(&r, NODE3_DOWN);
    let down = csv(&[
        (1, 1, 0),
        (1, 2, 0),
        (1, 3, -1),
        (2, 1, 0),
        (2, 2, 0),
        (2, 3, -1),
        (3, 1, -2),
        (3, 2, -2),
        (3, 3, -2),
    ]);
    let r = n2.repmgr(&["cluster", "matrix", "--csv"]);
    r.assert_code(ExitCode::NodeStatus);
    assert_stdout(&r, &down);

    // crosscheck: nobody can tell node3's outbound connections either; ssh
    // reaches node3's host but its repmgr answers nothing (its server is
    // down), which repmgr reports as an ssh problem; 25 overrides 12.
    let r = n2.repmgr(&["cluster", "crosscheck"]);
    r.assert_code(ExitCode::NodeStatus);
    assert!(
        r.stdout.starts_with(NODE3_DOWN),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    r.assert_stderr_contains("  node 3 inaccessible via SSH")
        .assert_stderr_contains("following problems detected");
    let r = n1.repmgr(&["cluster", "crosscheck", "--csv", "--terse"]);
    r.assert_code(ExitCode::NodeStatus);
    assert_stdout(&r, &down);
}

#[test]
fn matrix_without_ssh_exits_12() {
    let nodes = registered_cluster_with(2, |_| {
        "ssh_options='-q -o ConnectTimeout=2 -p 1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'".to_string()
    });
    let unknown_rows = " Name  | ID | 1 | 2 | 3\n\
                        -------+----+---+---+---\n \
                        node1 | 1  | * | * | * \n \
                        node2 | 2  | ? | ? | ? \n \
                        node3 | 3  | ? | ? | ? \n";
    let r = nodes[0].repmgr(&["cluster", "matrix"]);
    r.assert_code(ExitCode::BadSsh)
        .assert_stderr_contains("  node 2 inaccessible via SSH")
        .assert_stderr_contains("  node 3 inaccessible via SSH");
    assert!(r.stdout.starts_with(unknown_rows), "stdout: {}", r.stdout);
    // --terse: the grid only.
    let r = nodes[0].repmgr(&["cluster", "matrix", "--terse"]);
    r.assert_code(ExitCode::BadSsh);
    assert_stdout(&r, unknown_rows);
    // As repmgr: with --csv, unknown cells count as failures (25 wins).
    nodes[0]
        .repmgr(&["cluster", "matrix", "--csv"])
        .assert_code(ExitCode::NodeStatus)
        .assert_stdout_contains("2,1,-2\n");
    let r = nodes[1].repmgr(&["cluster", "crosscheck", "--terse"]);
    r.assert_code(ExitCode::BadSsh);
    assert_stdout(
        &r,
        &unknown_rows
            .replace("node1 | 1  | * | * | *", "node1 | 1  | ? | ? | ?")
            .replace("node2 | 2  | ? | ? | ?", "node2 | 2  | * | * | *"),
    );
}

/// node1 cannot ssh to node3's host but node2 can: node1's matrix has node3's
/// row unknown, the crosscheck fills it from node2's view.
#[test]
fn crosscheck_fills_unknown_rows_from_other_views() {
    let sshd = Sshd::start();
    let opts = sshd.ssh_options();
    let nodes = registered_cluster_with(2, |_| format!("ssh_options='{opts}'"));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    // ssh reaches node3 as "localhost"; PostgreSQL still at 127.0.0.1.
    let conninfo = n3
        .pg
        .conninfo()
        .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1");
    n1.pg.execute(&format!(
        "UPDATE repmgr.nodes SET conninfo = '{conninfo}' WHERE node_id = 3"
    ));
    crate::harness::poll_until(
        std::time::Duration::from_secs(60),
        "conninfo replicated",
        || {
            n2.pg
                .try_query_one_string("SELECT conninfo FROM repmgr.nodes WHERE node_id = 3")
                .ok()
                .flatten()
                .as_deref()
                == Some(conninfo.as_str())
        },
    );
    // node1's ssh sends "localhost" to a closed port.
    let ssh_config = write_user_file(
        &n1.pg.dir.join("ssh_config"),
        &format!("Host localhost\n  Port 1\nHost *\n  Port {}\n", sshd.port),
    );
    let n1_opts = opts.replace(&format!("-p {} ", sshd.port), "")
        + &format!(" -o ConnectTimeout=2 -F {}", ssh_config.display());
    crate::fixture::write_conf(
        &n1.pg,
        1,
        "node1",
        &n1.pg.conninfo(),
        &format!("ssh_options='{n1_opts}'"),
    );

    let r = n1.repmgr(&["cluster", "matrix", "--terse"]);
    r.assert_code(ExitCode::BadSsh);
    assert_stdout(
        &r,
        &ALL_UP.replace("node3 | 3  | * | * | *", "node3 | 3  | ? | ? | ?"),
    );
    let r = n1.repmgr(&["cluster", "crosscheck"]);
    r.assert_code(ExitCode::BadSsh)
        .assert_stderr_contains("  node 3 inaccessible via SSH");
    assert!(r.stdout.starts_with(ALL_UP), "stdout: {}", r.stdout);
}
