//! `repmgr --dump-config`: every parameter as `name|value`, one a line, in
//! repmgr 5.5's `configdata.c` order and with its value formatting
//! (booleans `true`/`false`, enums in lower case, lists comma-joined).

use super::params::{self, Kind};
use super::parse::Entry;
use super::values::parse_bool;

/// repmgr 5.5's `config_file_settings[]` order; our own keys follow it.
#[rustfmt::skip]
const REPMGR_ORDER: &[&str] = &[
    "node_id", "node_name", "conninfo", "replication_user", "data_directory",
    "config_directory", "pg_bindir", "repmgr_bindir", "replication_type", "log_level",
    "log_facility", "log_file", "log_status_interval", "use_replication_slots",
    "pg_basebackup_options", "restore_command", "tablespace_mapping",
    "recovery_min_apply_delay", "archive_cleanup_command", "use_primary_conninfo_password",
    "passfile", "promote_check_timeout", "promote_check_interval", "pg_backupapi_backup_id",
    "pg_backupapi_host", "pg_backupapi_node_name", "pg_backupapi_remote_ssh_command",
    "primary_follow_timeout", "standby_follow_timeout", "standby_follow_restart",
    "shutdown_check_timeout", "standby_reconnect_timeout", "wal_receive_check_timeout",
    "node_rejoin_timeout", "archive_ready_warning", "archive_ready_critical",
    "replication_lag_warning", "replication_lag_critical", "witness_sync_interval", "failover",
    "location", "priority", "promote_command", "follow_command", "monitor_interval_secs",
    "reconnect_attempts", "reconnect_interval", "monitoring_history",
    "degraded_monitoring_timeout", "async_query_timeout", "primary_notification_timeout",
    "repmgrd_standby_startup_timeout", "repmgrd_pid_file", "repmgrd_exit_on_inactive_node",
    "standby_disconnect_on_failover", "sibling_nodes_disconnect_timeout",
    "connection_check_type", "primary_visibility_consensus", "always_promote",
    "failover_validation_command", "election_rerun_interval", "child_nodes_check_interval",
    "child_nodes_disconnect_min_count", "child_nodes_connected_min_count",
    "child_nodes_connected_include_witness", "child_nodes_disconnect_timeout",
    "child_nodes_disconnect_command", "pg_ctl_options", "service_start_command",
    "service_stop_command", "service_restart_command", "service_reload_command",
    "service_promote_command", "repmgrd_service_start_command", "repmgrd_service_stop_command",
    "event_notification_command", "event_notifications", "barman_host", "barman_server",
    "barman_config", "rsync_options", "ssh_options", "reconnect_loop_sync", "promote_delay",
    "failover_delay", "connection_check_query",
];

/// The dump of a configuration read as `entries` (known keys, file order;
/// the last occurrence of a key wins, `tablespace_mapping` accumulates).
pub fn dump(entries: &[Entry]) -> String {
    let ours = params::PARAMS
        .iter()
        .map(|p| p.name)
        .filter(|n| !REPMGR_ORDER.contains(n));
    let mut out = String::new();
    for name in REPMGR_ORDER.iter().copied().chain(ours) {
        let Some(param) = params::find(name) else {
            continue;
        };
        let given: Vec<&str> = entries
            .iter()
            .filter(|e| e.key == name)
            .map(|e| e.value.as_str())
            .collect();
        let mut shown = value(param.kind, param.default, &given);
        if name == "repmgrd_standby_startup_timeout" && shown == "-1" {
            // repmgr resolves -1 to standby_reconnect_timeout when loading
            let reconnect = params::find("standby_reconnect_timeout").map_or("60", |p| p.default);
            let given: Vec<&str> = entries
                .iter()
                .filter(|e| e.key == "standby_reconnect_timeout")
                .map(|e| e.value.as_str())
                .collect();
            shown = value(Kind::Int { min: 1 }, reconnect, &given);
        }
        out.push_str(name);
        out.push('|');
        out.push_str(&shown);
        out.push('\n');
    }
    out
}

fn value(kind: Kind, default: &str, given: &[&str]) -> String {
    let last = given.last().copied();
    match kind {
        Kind::TablespaceMapping => given.join(","),
        // repmgr prints -1 for an unset node_id, and the log level and
        // facility only as set (their defaults live in its log.c).
        Kind::NodeId => last.map_or("-1".into(), |v| v.trim().to_string()),
        Kind::LogLevel => last.map_or(String::new(), |v| v.trim().to_ascii_uppercase()),
        _ if default == "STDERR" => last.map_or(String::new(), |v| v.trim().to_string()),
        Kind::Bool => {
            let v = parse_bool(last.unwrap_or(default)).unwrap_or(false);
            v.to_string()
        }
        Kind::Int { .. } => last.unwrap_or(default).trim().to_string(),
        Kind::Choice(_) => last.unwrap_or(default).trim().to_ascii_lowercase(),
        Kind::List => last
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(","),
        Kind::Str | Kind::Delay => last.unwrap_or(default).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn entry(key: &str, value: &str) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
            file: PathBuf::from("/r.conf"),
            line: 1,
        }
    }

    #[test]
    fn repmgrs_order_and_formatting() {
        let text = dump(&[
            entry("node_id", "1"),
            entry("use_replication_slots", "yes"),
            entry("failover", "AUTOMATIC"),
            entry("event_notifications", "a, b"),
            entry("tablespace_mapping", "/a=/b"),
            entry("tablespace_mapping", "/c=/d"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "node_id|1");
        assert_eq!(lines[9], "log_level|");
        assert_eq!(lines[10], "log_facility|");
        assert!(lines.contains(&"use_replication_slots|true"));
        assert!(lines.contains(&"use_primary_conninfo_password|false"));
        assert!(lines.contains(&"failover|automatic"));
        assert!(lines.contains(&"event_notifications|a,b"));
        assert!(lines.contains(&"tablespace_mapping|/a=/b,/c=/d"));
        assert!(lines.contains(&"ssh_options|-q -o ConnectTimeout=10"));
        assert_eq!(
            lines[REPMGR_ORDER.len() - 1],
            "connection_check_query|SELECT 1"
        );
        // every key once
        assert_eq!(lines.len(), params::PARAMS.len());
        assert!(dump(&[]).starts_with("node_id|-1\n"));
        assert!(dump(&[]).contains("\nrepmgrd_standby_startup_timeout|60\n"));
        let d = dump(&[entry("standby_reconnect_timeout", "7")]);
        assert!(d.contains("\nrepmgrd_standby_startup_timeout|7\n"));
    }
}
