//! `--json` on real PostgreSQL: every document is parsed with a real JSON
//! parser and compared with the text output of the same command on the
//! same cluster, exit status included.

use serde_json::Value;

use crate::fixture::{registered_cluster, Node};
use crate::harness::{ExitCode, Nagios, RunResult};

/// Runs `repmgr ARGS --json` on `node`: stdout is one JSON document,
/// ending in a newline, and nothing else.
#[track_caller]
fn json(node: &Node, args: &[&str]) -> (Value, RunResult) {
    let mut all = args.to_vec();
    all.push("--json");
    let r = node.repmgr(&all);
    assert!(r.stdout.ends_with("}\n"), "not one document:\n{r}");
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{r}"));
    (v, r)
}

/// The cells of a psql-like table's body rows, trimmed.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(2)
        .take_while(|l| l.contains(" | "))
        .map(|l| l.split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

/// `node check`'s text lines (`\tName: STATUS (details)`) as (name, status).
fn check_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter_map(|l| l.split_once(": "))
        .map(|(name, rest)| {
            let status = rest.split(' ').next().unwrap_or("");
            (name.to_string(), status.to_string())
        })
        .collect()
}

/// A JSON string or null as the text's cell: null is an empty cell.
fn cell(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// `cluster show --json` against the table of the same cluster.
#[track_caller]
fn assert_cluster_show_agrees(node: &Node, code: ExitCode) -> Value {
    let text = node.repmgr(&["cluster", "show"]);
    text.assert_code(code);
    let (v, r) = json(node, &["cluster", "show"]);
    r.assert_code(code);
    let rows = table_rows(&text.stdout);
    let nodes = v["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), rows.len(), "{r}");
    for (n, row) in nodes.iter().zip(&rows) {
        assert_eq!(n["id"].to_string(), row[0], "{r}");
        assert_eq!(cell(&n["name"]), row[1], "{r}");
        assert_eq!(cell(&n["role"]), row[2], "{r}");
        assert_eq!(cell(&n["status"]), row[3], "{r}");
        assert_eq!(cell(&n["upstream"]), row[4], "{r}");
        assert_eq!(cell(&n["location"]), row[5], "{r}");
        assert_eq!(n["priority"].to_string(), row[6], "{r}");
        let tli = n["timeline"]
            .as_i64()
            .map_or(String::new(), |t| t.to_string());
        assert_eq!(tli, row[7], "{r}");
        assert_eq!(cell(&n["connection_string"]), row[8], "{r}");
    }
    // Each warning is listed after the table on stderr, as "  - warning".
    for w in v["warnings"].as_array().expect("warnings") {
        let w = w.as_str().expect("a string");
        assert!(text.stderr.contains(&format!("  - {w}")), "{w}\n{text}");
    }
    let listed = text
        .stderr
        .lines()
        .filter(|l| l.starts_with("  - "))
        .count();
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(listed));
    v
}

#[test]
fn json_documents_match_the_text_of_a_healthy_cluster() {
    let nodes = registered_cluster(1);
    let (primary, standby) = (&nodes[0], &nodes[1]);

    let v = assert_cluster_show_agrees(standby, ExitCode::Success);
    assert_eq!(v["nodes"][0]["upstream"], Value::Null);
    assert_eq!(v["nodes"][1]["upstream"], "node1");
    assert_eq!(v["nodes"][1]["timeline"], 1);
    assert_eq!(v["warnings"], serde_json::json!([]));

    // cluster event: the same events, newest first, with Details.
    let text = primary.repmgr(&["cluster", "event"]);
    text.assert_success();
    let (v, r) = json(primary, &["cluster", "event"]);
    r.assert_success();
    let rows = table_rows(&text.stdout);
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), rows.len(), "{r}");
    for (e, row) in events.iter().zip(&rows) {
        assert_eq!(e["node_id"].to_string(), row[0]);
        assert_eq!(cell(&e["name"]), row[1]);
        assert_eq!(cell(&e["event"]), row[2]);
        assert_eq!(e["ok"], Value::Bool(row[3] == "t"));
        assert_eq!(cell(&e["timestamp"]), row[4]);
        assert_eq!(cell(&e["details"]), row[5]);
    }
    assert_eq!(events[0]["event"], "standby_register");
    let (v, r) = json(primary, &["cluster", "event", "--limit=1"]);
    r.assert_success();
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1));
    let (v, r) = json(primary, &["cluster", "event", "--event", "no_such_event"]);
    r.assert_success();
    assert_eq!(v, serde_json::json!({"events": []}));

    // node status on the standby.
    let text = standby.repmgr(&["node", "status"]);
    text.assert_success();
    let (v, r) = json(standby, &["node", "status"]);
    r.assert_success();
    let line = |label: &str| {
        text.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("\t{label}: ")))
            .unwrap_or_else(|| panic!("no {label}:\n{text}"))
            .to_string()
    };
    assert_eq!(v["node_name"], "node2");
    assert_eq!(v["node_id"], 2);
    assert_eq!(cell(&v["role"]), line("Role"));
    assert_eq!(cell(&v["postgresql_version"]), line("PostgreSQL version"));
    assert_eq!(cell(&v["conninfo"]), line("Conninfo"));
    assert_eq!(
        v["upstream_node"],
        serde_json::json!({"node_id": 1, "node_name": "node1"})
    );
    assert!(line("Upstream node").starts_with("node1 (ID: 1)"));
    assert!(v["replication_lag"].is_i64(), "{r}");
    assert!(v["last_received_lsn"].is_string(), "{r}");
    assert_eq!(v["warnings"], serde_json::json!([]));
    // On the primary, the standby-only fields are null.
    let (v, r) = json(primary, &["node", "status"]);
    r.assert_success();
    assert_eq!(v["role"], "primary");
    assert_eq!(v["replication_connections"]["attached"], 1);
    for k in ["upstream_node", "replication_lag", "last_received_lsn"] {
        assert!(v[k].is_null(), "{k}: {r}");
    }

    // node check: the text's checks, in its order, with its statuses.
    let text = standby.repmgr(&["node", "check"]);
    text.assert_success();
    let (v, r) = json(standby, &["node", "check"]);
    r.assert_success();
    let checks: Vec<(String, String)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (cell(&c["name"]), cell(&c["status"])))
        .collect();
    assert_eq!(checks, check_lines(&text.stdout), "{r}");
    let keys: Vec<&str> = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert!(keys.contains(&"role") && keys.contains(&"upstream"), "{r}");
    // An individual check: that check only, with the same exit status.
    let text = standby.repmgr(&["node", "check", "--role"]);
    text.assert_code(Nagios::Ok);
    let (v, r) = json(standby, &["node", "check", "--role"]);
    r.assert_code(Nagios::Ok);
    assert_eq!(
        v["checks"],
        serde_json::json!([{"key": "role", "name": "Server role",
                            "status": "OK", "details": "node is standby"}])
    );
    assert_eq!(text.stdout, "OK (node is standby)\n");
    let (v, r) = json(standby, &["node", "check", "--replication-lag"]);
    r.assert_code(Nagios::Ok);
    assert_eq!(v["checks"][0]["key"], "replication_lag");
    assert_eq!(v["checks"].as_array().map(Vec::len), Some(1));

    // service status without daemons: PostgreSQL answers, repmgrd does not run.
    let text = primary.repmgr(&["service", "status"]);
    text.assert_success();
    let (v, r) = json(primary, &["daemon", "status"]);
    r.assert_success();
    let rows = table_rows(&text.stdout);
    let list = v["nodes"].as_array().expect("nodes");
    assert_eq!(list.len(), rows.len(), "{r}");
    for (n, row) in list.iter().zip(&rows) {
        assert_eq!(n["id"].to_string(), row[0]);
        assert_eq!(cell(&n["name"]), row[1]);
        assert_eq!(cell(&n["role"]), row[2]);
        assert_eq!(cell(&n["status"]), row[3]);
        assert_eq!(cell(&n["upstream"]), row[4]);
        assert_eq!(row[5], "not running");
        assert_eq!(n["repmgrd"], false);
        assert!(n["pid"].is_null() && n["paused"].is_null(), "{r}");
    }
    assert!(v["warnings"][0]
        .as_str()
        .is_some_and(|w| w.starts_with("repmgrd is not running on node")));

    // Conflicts are usage errors, with nothing on stdout.
    for bad in [
        &["cluster", "show", "--json", "--csv"][..],
        &["node", "check", "--role", "--json", "--nagios"],
        &["cluster", "matrix", "--json"],
        &["node", "check", "--has-passfile", "--json"],
    ] {
        let r = primary.repmgr(bad);
        r.assert_code(ExitCode::BadConfig);
        assert_eq!(r.stdout, "", "{r}");
    }
}

#[test]
fn json_documents_report_issues_with_the_texts_exit_statuses() {
    let nodes = registered_cluster(1);
    let (primary, standby) = (&nodes[0], &nodes[1]);
    standby.pg.stop();

    let v = assert_cluster_show_agrees(primary, ExitCode::NodeStatus);
    assert_eq!(v["nodes"][1]["status"], "? unreachable");
    assert_eq!(v["nodes"][1]["upstream"], "? node1");
    assert!(v["nodes"][1]["timeline"].is_null());
    // --verbose adds the connection error, a multi-line string.
    let (v, r) = json(primary, &["cluster", "show", "--verbose"]);
    r.assert_code(ExitCode::NodeStatus);
    assert!(
        v["warnings"].as_array().into_iter().flatten().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("following error encountered :\n"))),
        "{r}"
    );

    // node status on the primary: a downstream node is not attached.
    let text = primary.repmgr(&["node", "status"]);
    text.assert_code(ExitCode::NodeStatus);
    let (v, r) = json(primary, &["node", "status"]);
    r.assert_code(ExitCode::NodeStatus);
    assert_eq!(
        v["warnings"][0], "1 of 1 downstream nodes not attached:",
        "{r}"
    );
    assert!(text
        .stdout
        .contains("  - 1 of 1 downstream nodes not attached:"));

    // node check: the full run exits 25, the single check 2 (CRITICAL).
    let text = primary.repmgr(&["node", "check"]);
    text.assert_code(ExitCode::NodeStatus);
    let (v, r) = json(primary, &["node", "check"]);
    r.assert_code(ExitCode::NodeStatus);
    let checks: Vec<(String, String)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (cell(&c["name"]), cell(&c["status"])))
        .collect();
    assert_eq!(checks, check_lines(&text.stdout), "{r}");
    primary
        .repmgr(&["node", "check", "--downstream"])
        .assert_code(Nagios::Critical);
    let (v, r) = json(primary, &["node", "check", "--downstream"]);
    r.assert_code(Nagios::Critical);
    assert_eq!(v["checks"][0]["key"], "downstream");
    assert_eq!(v["checks"][0]["status"], "CRITICAL");
    assert!(cell(&v["checks"][0]["details"]).contains("node2 (ID: 2)"));

    // service status: the unreachable node's repmgrd state is unknown.
    let (v, r) = json(primary, &["service", "status"]);
    r.assert_success();
    let down = &v["nodes"][1];
    assert_eq!(down["status"], "? unreachable");
    for k in ["repmgrd", "pid", "paused", "upstream_last_seen"] {
        assert!(down[k].is_null(), "{k}: {r}");
    }
    assert!(v["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|w| w == "unable to connect to node \"node2\" (ID: 2)"));
}
