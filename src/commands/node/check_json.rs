//! `node check --json`: the checks the text output lists (or the one an
//! individual check option asks for), rendered from the same [`Check`]s.

use super::checks::Check;
use crate::output::json::{snake_case, Json};

/// Each check's stable key, by the name the text output gives it: the
/// option that runs the check alone, without its dashes. Names change
/// with repmgr's wording; keys do not.
const KEYS: &[(&str, &str)] = &[
    ("Server role", "role"),
    ("Replication lag", "replication_lag"),
    ("WAL archiving", "archive_ready"),
    ("Upstream connection", "upstream"),
    ("Downstream servers", "downstream"),
    ("Replication slots", "slots"),
    ("Missing physical replication slots", "missing_slots"),
    ("Configured data directory", "data_directory_config"),
    ("repmgrd", "repmgrd"),
    (
        "Replication configuration file owner",
        "replication_config_owner",
    ),
    (DB_CONNECTION, "db_connection"),
];

/// The name of `--db-connection`'s check, which the text output does not
/// print (it prints the status alone).
pub(super) const DB_CONNECTION: &str = "Database connection";

fn key(item: &str) -> String {
    KEYS.iter()
        .find(|(name, _)| *name == item)
        .map_or_else(|| snake_case(item), |(_, k)| k.to_string())
}

/// The document: the node, and per check its key, its name as the text
/// output has it, its status and its details (`null` when it has none).
pub(super) fn render(node_name: &str, node_id: i32, checks: &[Check]) -> String {
    let list: Vec<Json> = checks
        .iter()
        .map(|c| {
            Json::object()
                .field("key", key(c.item))
                .field("name", c.item)
                .field("status", c.status.as_str())
                .field(
                    "details",
                    Some(c.details.as_str()).filter(|d| !d.is_empty()),
                )
        })
        .collect();
    Json::object()
        .field("node_name", node_name)
        .field("node_id", node_id)
        .field("checks", list)
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::node::checks::tests::node;
    use crate::commands::node::checks::*;
    use crate::config::Config;
    use crate::db::{checks::NodeStats, nodes::NodeType};

    #[test]
    fn every_check_has_a_listed_key() {
        let (cfg, p) = (Config::default(), node(NodeType::Primary));
        let m = Mode::Text;
        let checks = [
            check_role(&p, false, m),
            check_role_or_fenced(&p, false, true, m),
            check_replication_lag(&cfg, &p, false, None, m),
            check_archive_ready(&cfg, Some(0), m),
            check_upstream(&p, false, None, m),
            check_downstream(&p, &[], m),
            check_slots(&NodeStats::default(), m),
            check_missing_slots(&[], m),
            check_data_directory(&cfg, None, true, m),
            check_repmgrd(Repmgrd::Running, m),
            check_replication_config_owner(true),
        ];
        for c in &checks {
            assert!(KEYS.iter().any(|(n, _)| *n == c.item), "{}", c.item);
        }
    }

    #[test]
    fn document() {
        let p = node(NodeType::Primary);
        let checks = [
            check_role(&p, false, Mode::Text),
            check_repmgrd(Repmgrd::Paused, Mode::Text),
            Check {
                item: "Something new",
                status: CheckStatus::Unknown,
                details: String::new(),
                line: None,
            },
        ];
        let v: serde_json::Value = serde_json::from_str(&render("node1", 1, &checks)).unwrap();
        assert_eq!(v["node_name"], "node1");
        assert_eq!(v["node_id"], 1);
        assert_eq!(
            v["checks"][0],
            serde_json::json!({"key": "role", "name": "Server role",
                               "status": "OK", "details": "node is primary"})
        );
        assert_eq!(v["checks"][1]["status"], "WARNING");
        assert_eq!(v["checks"][2]["key"], "something_new");
        assert!(v["checks"][2]["details"].is_null());
    }
}
