//! The text, CSV and JSON renderings of `node status`, from fixed facts.

use super::*;

fn record(id: i32, node_type: NodeType, upstream: Option<i32>) -> NodeRecord {
    NodeRecord {
        node_id: id,
        upstream_node_id: upstream,
        active: true,
        node_name: format!("node{id}"),
        node_type,
        location: "default".into(),
        priority: 100,
        conninfo: format!("host=n{id} dbname=repmgr"),
        repluser: "repmgr".into(),
        slot_name: None,
        config_file: String::new(),
    }
}

fn primary_facts() -> StatusFacts {
    StatusFacts {
        node: record(1, NodeType::Primary, None),
        stats: NodeStats {
            server_version: "16.2".into(),
            max_wal_senders: 10,
            attached_wal_receivers: 1,
            max_replication_slots: 10,
            total_slots: 2,
            active_slots: 1,
            inactive_slots: 1,
            archive_mode: "off".into(),
            ..NodeStats::default()
        },
        size: Some("30 MB".into()),
        system_identifier: None,
        ready_files: Some(0),
        downstream: vec![
            Downstream {
                node_id: 2,
                node_name: "node2".into(),
                is_witness: false,
                attached: true,
                slot_missing: false,
                slot_name: Some("repmgr_slot_2".into()),
            },
            Downstream {
                node_id: 3,
                node_name: "node3".into(),
                is_witness: false,
                attached: false,
                slot_missing: true,
                slot_name: Some("repmgr_slot_3".into()),
            },
        ],
        inactive_slot_names: vec!["repmgr_slot_4".into()],
        upstream: None,
    }
}

#[test]
fn primary_text_and_issues() {
    let r = report(&primary_facts());
    assert_eq!(
        render_text(&r),
        "Node \"node1\":\n\
         \tPostgreSQL version: 16.2\n\
         \tTotal data size: 30 MB\n\
         \tConninfo: host=n1 dbname=repmgr\n\
         \tRole: primary\n\
         \tWAL archiving: off\n\
         \tArchive command: (none)\n\
         \tReplication connections: 1 (of maximal 10)\n\
         \tReplication slots: 2 physical (of maximal 10; 1 missing); 1 inactive\n\
         \tReplication lag: n/a\n\
         \n"
    );
    assert_eq!(
        render_issues(&r.warnings),
        "  - 1 of 2 downstream nodes not attached:\n\
         \x20   - node3 (ID: 3)\n\n\
         \x20 - replication slots missing for following 1 node(s):\n\
         \x20   - node3 (ID: 3, slot name: \"repmgr_slot_3\")\n\
         \x20 - node has 1 inactive physical replication slots\n\
         \x20   - repmgr_slot_4\n"
    );
}

#[test]
fn primary_csv() {
    assert_eq!(
        render_csv(&report(&primary_facts())),
        "\"Node name\",\"node1\"\n\
         \"Node ID\",\"1\"\n\
         \"PostgreSQL version\",\"16.2\"\n\
         \"Total data size\",\"30 MB\"\n\
         \"Conninfo\",\"host=n1 dbname=repmgr\"\n\
         \"Role\",\"primary\"\n\
         \"WAL archiving\",\"off\"\n\
         \"Archive command\",\"(none)\"\n\
         \"WALs pending archiving\",\"0\"\n\
         \"Replication connections\",\"1 (of maximal 10)\"\n\
         \"Replication slots\",\"2 physical (of maximal 10; 1 missing); 1 inactive\"\n\
         \"Upstream node\",\"(none)\"\n\
         \"Replication lag\",\"n/a\"\n\
         \"Last received LSN\",\"(none)\"\n\
         \"Last replayed LSN\",\"(none)\"\n\
         \"max_wal_senders\",10\n\
         \"occupied_wal_senders\",1\n\
         \"max_replication_slots\",10\n\
         \"active_replication_slots\",1\n\
         \"inactive_replication_slots\",1,\"repmgr_slot_4\"\n\
         \"missing_replication_slots\",1,\"repmgr_slot_3\"\n"
    );
}

#[test]
fn primary_json() {
    let v: serde_json::Value =
        serde_json::from_str(&render_json(&report(&primary_facts()))).unwrap();
    // The document's own order (serde_json's map sorts its keys).
    let text = render_json(&report(&primary_facts()));
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "node_name",
            "node_id",
            "postgresql_version",
            "total_data_size",
            "conninfo",
            "system_identifier",
            "role",
            "wal_archiving",
            "archive_command",
            "wals_pending_archiving",
            "replication_connections",
            "replication_slots",
            "upstream_node",
            "replication_lag",
            "last_received_lsn",
            "last_replayed_lsn",
            "warnings"
        ]
    );
    assert_eq!(v["node_id"], 1);
    assert_eq!(v["role"], "primary");
    assert!(v["system_identifier"].is_null());
    assert_eq!(v["wal_archiving"], "off");
    assert!(v["archive_command"].is_null());
    assert_eq!(v["wals_pending_archiving"], 0);
    assert_eq!(
        v["replication_connections"],
        serde_json::json!({"attached": 1, "max": 10})
    );
    assert_eq!(
        v["replication_slots"],
        serde_json::json!({"physical": 2, "max": 10, "missing": 1, "inactive": 1,
            "inactive_names": ["repmgr_slot_4"], "missing_names": ["repmgr_slot_3"]})
    );
    for k in [
        "upstream_node",
        "replication_lag",
        "last_received_lsn",
        "last_replayed_lsn",
    ] {
        assert!(v[k].is_null(), "{k}");
    }
    assert_eq!(v["warnings"][0], "1 of 2 downstream nodes not attached:");
    assert_eq!(v["warnings"][1], "  - node3 (ID: 3)");
}

#[test]
fn standby_text() {
    let f = StatusFacts {
        node: record(2, NodeType::Standby, Some(1)),
        stats: NodeStats {
            in_recovery: true,
            server_version: "16.2".into(),
            max_wal_senders: 10,
            archive_mode: "on".into(),
            archive_command: "cp %p /a/%f".into(),
            receive_lsn: Some("0/3000148".into()),
            status_lag_seconds: 2,
            ..NodeStats::default()
        },
        size: Some("30 MB".into()),
        system_identifier: Some(String::new()),
        ready_files: None,
        downstream: Vec::new(),
        inactive_slot_names: Vec::new(),
        upstream: Some(record(1, NodeType::Primary, None)),
    };
    let r = report(&f);
    assert_eq!(
        render_text(&r),
        "Node \"node2\":\n\
         \tPostgreSQL version: 16.2\n\
         \tTotal data size: 30 MB\n\
         \tConninfo: host=n2 dbname=repmgr\n\
         \tSystem identifier: unknown\n\
         \tRole: standby\n\
         \tWAL archiving: disabled (on standbys \"archive_mode\" must be set to \"always\" to be effective)\n\
         \tArchive command: cp %p /a/%f\n\
         \tReplication connections: 0 (of maximal 10)\n\
         \tReplication slots: disabled\n\
         \tUpstream node: node1 (ID: 1)\n\
         \tReplication lag: 2 seconds\n\
         \tLast received LSN: 0/3000148\n\
         \tLast replayed LSN: 0/0\n\
         \n"
    );
    let v: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(
        v["upstream_node"],
        serde_json::json!({"node_id": 1, "node_name": "node1"})
    );
    assert_eq!(v["replication_lag"], 2);
    assert_eq!(v["last_received_lsn"], "0/3000148");
    assert!(v["last_replayed_lsn"].is_null());
    assert!(v["system_identifier"].is_null());
    assert!(v["wals_pending_archiving"].is_null());
    assert!(v["replication_slots"].is_null());
    assert_eq!(v["wal_archiving"], "disabled");
    assert_eq!(v["archive_command"], "cp %p /a/%f");
    assert_eq!(v["warnings"][1], "unable to check archive_status directory");
    assert_eq!(
        r.warnings,
        [
            "unable to retrieve system identifier from pg_control",
            "- unable to check archive_status directory\n"
        ]
    );
}
