//! repmgr.conf: typed configuration (see `params.rs`), loading and validation.
//!
//! [`Config`] and the types of its values live here. `locate.rs` finds the
//! file, `load.rs` reads it (text and includes in `parse.rs`) and maps it
//! onto a [`Config`], `values.rs` reads each kind of value, and `check.rs`
//! checks what every node needs and what one parameter implies for another.

mod check;
mod dump;
mod load;
mod locate;
pub mod params;
mod parse;
mod values;

use serde::Deserialize;

use crate::logging::RepmgrLevel;
use values::{at_least, boolean, comma_list, delay, log_level, node_id, tablespace_mapping, word};

pub use load::{load_file, parse_str, Loaded};
pub use locate::locate;

/// `--dump-config` without a configuration file: every default.
pub fn dump_defaults() -> String {
    dump::dump(&[])
}
pub use values::parse_bool;

/// What repmgrd does when the primary fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failover {
    #[default]
    Manual,
    Automatic,
}

/// How repmgrd checks that its upstream is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionCheckType {
    /// PQping-style: can a connection be started?
    #[default]
    Ping,
    /// Open (and close) a new connection.
    Connection,
    /// Run `connection_check_query` on the existing connection.
    Query,
}

/// Which nodes must be visible before repmgrd promotes (see repmgrd(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverQuorum {
    /// A strict majority of all registered voters, the failed primary
    /// included: no split brain, and no automatic failover in a two-node
    /// cluster without a witness.
    #[default]
    Majority,
    /// repmgr's rule: more than half of the failed primary's other
    /// followers (a two-node cluster always promotes).
    Repmgr,
}

/// How a primary that must not take writes is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum FenceMode {
    /// default_transaction_read_only on, client sessions ended: reversible.
    #[default]
    #[serde(rename = "read-only")]
    ReadOnly,
    /// Stop the server (immediate shutdown).
    #[serde(rename = "stop")]
    Stop,
}

/// Only physical replication exists in repmgr 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationType {
    #[default]
    Physical,
}

/// Every repmgr.conf parameter, named exactly like its key.
/// Empty strings mean "not set".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Absolute path of the file this was loaded from (not a parameter).
    #[serde(skip)]
    pub config_file: String,

    // Node information
    #[serde(deserialize_with = "node_id")]
    pub node_id: Option<i32>,
    pub node_name: String,
    pub conninfo: String,
    pub data_directory: String,
    pub config_directory: String,
    pub replication_user: String,
    #[serde(deserialize_with = "word")]
    pub replication_type: ReplicationType,
    pub location: String,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub priority: i32,
    pub pg_bindir: String,
    pub repmgr_bindir: String,
    pub passfile: String,
    #[serde(deserialize_with = "boolean")]
    pub use_primary_conninfo_password: bool,

    // Logging
    #[serde(deserialize_with = "log_level")]
    pub log_level: RepmgrLevel,
    pub log_facility: String,
    pub log_file: String,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub log_status_interval: i32,

    // Standby clone
    #[serde(deserialize_with = "boolean")]
    pub use_replication_slots: bool,
    pub pg_basebackup_options: String,
    pub restore_command: String,
    pub archive_cleanup_command: String,
    #[serde(deserialize_with = "delay")]
    pub recovery_min_apply_delay: String,
    #[serde(deserialize_with = "tablespace_mapping")]
    pub tablespace_mapping: Vec<(String, String)>,
    pub rsync_options: String,
    pub ssh_options: String,
    pub barman_host: String,
    pub barman_server: String,
    pub barman_config: String,
    pub pg_backupapi_host: String,
    pub pg_backupapi_node_name: String,
    pub pg_backupapi_remote_ssh_command: String,
    pub pg_backupapi_backup_id: String,

    // Promote, follow, switchover and rejoin
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub promote_check_timeout: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub promote_check_interval: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub primary_follow_timeout: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub standby_follow_timeout: i32,
    #[serde(deserialize_with = "boolean")]
    pub standby_follow_restart: bool,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub shutdown_check_timeout: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub standby_reconnect_timeout: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub wal_receive_check_timeout: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub node_rejoin_timeout: i32,

    // repmgr node check thresholds
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub archive_ready_warning: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub archive_ready_critical: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub replication_lag_warning: i32,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub replication_lag_critical: i32,

    // Witness
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub witness_sync_interval: i32,

    // repmgrd
    #[serde(deserialize_with = "word")]
    pub failover: Failover,
    pub promote_command: String,
    pub follow_command: String,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub monitor_interval_secs: i32,
    #[serde(deserialize_with = "word")]
    pub connection_check_type: ConnectionCheckType,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub reconnect_attempts: i32,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub reconnect_interval: i32,
    #[serde(deserialize_with = "at_least::<-1, _>")]
    pub degraded_monitoring_timeout: i32,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub async_query_timeout: i32,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub primary_notification_timeout: i32,
    #[serde(deserialize_with = "at_least::<-1, _>")]
    pub repmgrd_standby_startup_timeout: i32,
    pub repmgrd_pid_file: String,
    /// The repmgrd peer channel's TCP port (0: one chosen at first start,
    /// kept in the state file and published in the metadata).
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub repmgrd_port: i32,
    /// repmgrd's durable state (votes, fence); "" = beside the data
    /// directory.
    pub repmgrd_state_file: String,
    /// repmgrd's HTTP endpoint for load balancers and monitoring,
    /// `ADDRESS:PORT`; "" = off.
    pub http_listen: String,
    #[serde(deserialize_with = "boolean")]
    pub repmgrd_exit_on_inactive_node: bool,
    #[serde(deserialize_with = "boolean")]
    pub monitoring_history: bool,
    #[serde(deserialize_with = "boolean")]
    pub standby_disconnect_on_failover: bool,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub sibling_nodes_disconnect_timeout: i32,
    #[serde(deserialize_with = "boolean")]
    pub primary_visibility_consensus: bool,
    #[serde(deserialize_with = "boolean")]
    pub always_promote: bool,
    pub failover_validation_command: String,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub election_rerun_interval: i32,
    #[serde(deserialize_with = "word")]
    pub failover_quorum: FailoverQuorum,
    #[serde(deserialize_with = "at_least::<-1, _>")]
    pub primary_isolation_timeout: i32,
    #[serde(deserialize_with = "word")]
    pub fence_mode: FenceMode,
    pub fence_command: String,
    #[serde(deserialize_with = "boolean")]
    pub auto_rejoin: bool,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub child_nodes_check_interval: i32,
    #[serde(deserialize_with = "at_least::<-1, _>")]
    pub child_nodes_disconnect_min_count: i32,
    #[serde(deserialize_with = "at_least::<-1, _>")]
    pub child_nodes_connected_min_count: i32,
    #[serde(deserialize_with = "boolean")]
    pub child_nodes_connected_include_witness: bool,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub child_nodes_disconnect_timeout: i32,
    pub child_nodes_disconnect_command: String,

    // Event notifications
    pub event_notification_command: String,
    #[serde(deserialize_with = "comma_list")]
    pub event_notifications: Vec<String>,

    // Service commands
    pub pg_ctl_options: String,
    pub service_start_command: String,
    pub service_stop_command: String,
    pub service_restart_command: String,
    pub service_reload_command: String,
    pub service_promote_command: String,
    pub repmgrd_service_start_command: String,
    pub repmgrd_service_stop_command: String,

    // Undocumented testing aids
    #[serde(deserialize_with = "boolean")]
    pub reconnect_loop_sync: bool,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub promote_delay: i32,
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub failover_delay: i32,
    pub connection_check_query: String,
}

impl Default for Config {
    /// repmgr's defaults (`repmgr.h`); a unit test checks them against the
    /// defaults written in `params::PARAMS`.
    // A table (one line per setting), not a workflow: long by nature.
    // Long: one line per repmgr.conf key, the defaults repmgr documents.
    fn default() -> Self {
        Config {
            config_file: String::new(),
            node_id: None,
            node_name: String::new(),
            conninfo: String::new(),
            data_directory: String::new(),
            config_directory: String::new(),
            replication_user: String::new(),
            replication_type: ReplicationType::Physical,
            location: "default".into(),
            priority: 100,
            pg_bindir: String::new(),
            repmgr_bindir: String::new(),
            passfile: String::new(),
            use_primary_conninfo_password: false,
            log_level: RepmgrLevel::Info,
            log_facility: "STDERR".into(),
            log_file: String::new(),
            log_status_interval: 300,
            use_replication_slots: false,
            pg_basebackup_options: String::new(),
            restore_command: String::new(),
            archive_cleanup_command: String::new(),
            recovery_min_apply_delay: String::new(),
            tablespace_mapping: Vec::new(),
            rsync_options: String::new(),
            ssh_options: "-q -o ConnectTimeout=10".into(),
            barman_host: String::new(),
            barman_server: String::new(),
            barman_config: String::new(),
            pg_backupapi_host: String::new(),
            pg_backupapi_node_name: String::new(),
            pg_backupapi_remote_ssh_command: String::new(),
            pg_backupapi_backup_id: String::new(),
            promote_check_timeout: 60,
            promote_check_interval: 1,
            primary_follow_timeout: 60,
            standby_follow_timeout: 30,
            standby_follow_restart: false,
            shutdown_check_timeout: 60,
            standby_reconnect_timeout: 60,
            wal_receive_check_timeout: 30,
            node_rejoin_timeout: 60,
            archive_ready_warning: 16,
            archive_ready_critical: 128,
            replication_lag_warning: 300,
            replication_lag_critical: 600,
            witness_sync_interval: 15,
            failover: Failover::Manual,
            promote_command: String::new(),
            follow_command: String::new(),
            monitor_interval_secs: 2,
            connection_check_type: ConnectionCheckType::Ping,
            reconnect_attempts: 6,
            reconnect_interval: 10,
            degraded_monitoring_timeout: -1,
            async_query_timeout: 60,
            primary_notification_timeout: 60,
            repmgrd_standby_startup_timeout: -1,
            repmgrd_pid_file: String::new(),
            repmgrd_port: 0,
            repmgrd_state_file: String::new(),
            http_listen: String::new(),
            repmgrd_exit_on_inactive_node: false,
            monitoring_history: false,
            standby_disconnect_on_failover: false,
            sibling_nodes_disconnect_timeout: 30,
            primary_visibility_consensus: false,
            always_promote: false,
            failover_validation_command: String::new(),
            election_rerun_interval: 15,
            failover_quorum: FailoverQuorum::Majority,
            primary_isolation_timeout: -1,
            fence_mode: FenceMode::ReadOnly,
            fence_command: String::new(),
            auto_rejoin: false,
            child_nodes_check_interval: 5,
            child_nodes_disconnect_min_count: -1,
            child_nodes_connected_min_count: -1,
            child_nodes_connected_include_witness: false,
            child_nodes_disconnect_timeout: 30,
            child_nodes_disconnect_command: String::new(),
            event_notification_command: String::new(),
            event_notifications: Vec::new(),
            pg_ctl_options: String::new(),
            service_start_command: String::new(),
            service_stop_command: String::new(),
            service_restart_command: String::new(),
            service_reload_command: String::new(),
            service_promote_command: String::new(),
            repmgrd_service_start_command: String::new(),
            repmgrd_service_stop_command: String::new(),
            reconnect_loop_sync: false,
            promote_delay: 0,
            failover_delay: 0,
            connection_check_query: "SELECT 1".into(),
        }
    }
}

/// Every parameter name repmgr.conf accepts.
pub fn known_keys() -> Vec<&'static str> {
    params::PARAMS.iter().map(|p| p.name).collect()
}

/// Whether repmgrd applies a new value of `key` on SIGHUP.
pub fn reloadable(key: &str) -> bool {
    params::find(key).is_some_and(|p| p.reloadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitCode, Result};
    use params::Kind;
    use std::path::Path;

    pub(super) fn load(text: &str) -> Result<Loaded> {
        parse_str(text, Path::new("/x/repmgr.conf"))
    }

    pub(super) fn messages(text: &str) -> Vec<String> {
        match load(text) {
            Ok(loaded) => panic!("loaded: {:?}", loaded.config),
            Err(e) => {
                assert_eq!(e.code, ExitCode::BadConfig);
                e.messages
            }
        }
    }

    /// `key = value` alone, mapped onto the defaults.
    pub(super) fn only(key: &str, value: &str) -> Config {
        match load(&format!("{key} = {value}\n")) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{key} = {value}: {:?}", e.messages),
        }
    }

    pub(super) fn default_with_file() -> Config {
        Config {
            config_file: "/x/repmgr.conf".into(),
            ..Config::default()
        }
    }

    #[test]
    fn table_defaults_equal_config_default() {
        for p in params::PARAMS.iter().filter(|p| !p.default.is_empty()) {
            let quoted = format!("'{}'", p.default);
            assert_eq!(only(p.name, &quoted), default_with_file(), "{}", p.name);
        }
    }

    #[test]
    fn every_table_key_is_a_config_field() {
        // A value differing from the default must change the Config: proves
        // serde maps the key (a typo in a field name would be ignored).
        for p in params::PARAMS {
            let value = match p.kind {
                Kind::NodeId => "7".to_string(),
                Kind::Int { min } => (min.max(0) + 1000).to_string(),
                Kind::Bool => "on".into(),
                Kind::Str | Kind::List => "'something'".into(),
                Kind::Choice(words) => words.last().map(|w| w.to_string()).unwrap_or_default(),
                Kind::TablespaceMapping => "'/a=/b'".into(),
                Kind::Delay => "5min".into(),
                Kind::LogLevel => "DEBUG".into(),
            };
            let same_as_default =
                p.default == value || p.kind == Kind::Choice(params::REPLICATION_TYPES);
            // Some keys are cross-checked: widen their partners first, and
            // set the key under test last so it wins.
            let text = format!(
                "archive_ready_critical = 5000\nreplication_lag_critical = 5000\nstandby_reconnect_timeout = 5000\nbarman_host = h\nbarman_server = s\n{} = {value}\n",
                p.name
            );
            let mut base = default_with_file();
            base.archive_ready_critical = 5000;
            base.replication_lag_critical = 5000;
            base.standby_reconnect_timeout = 5000;
            base.barman_host = "h".into();
            base.barman_server = "s".into();
            let config = match load(&text) {
                Ok(l) => l.config,
                Err(e) => panic!("{}: {:?}", p.name, e.messages),
            };
            assert_eq!(config == base, same_as_default, "{}", p.name);
        }
    }

    #[test]
    fn reload_set() {
        for key in [
            "conninfo",
            "failover",
            "log_level",
            "monitor_interval_secs",
            "child_nodes_check_interval",
            "event_notifications",
        ] {
            assert!(reloadable(key), "{key}");
        }
        for key in [
            "node_id",
            "node_name",
            "data_directory",
            "use_replication_slots",
            "nonsense",
        ] {
            assert!(!reloadable(key), "{key}");
        }
    }

    #[test]
    fn known_keys_come_from_the_table() {
        let keys = known_keys();
        assert_eq!(keys.len(), params::PARAMS.len());
        for key in [
            "node_id",
            "barman_host",
            "pg_backupapi_backup_id",
            "connection_check_query",
            "failover_delay",
        ] {
            assert!(keys.contains(&key), "{key}");
        }
    }

    const SAMPLE: &str = include_str!("../../repmgr.conf");
    const MAN_PAGE: &str = include_str!("../../man/repmgr.conf.5");

    /// `(key, value)` of the sample's commented-out `#key = value` lines.
    fn sample_defaults() -> Vec<(&'static str, &'static str)> {
        SAMPLE
            .lines()
            .filter_map(|line| line.strip_prefix('#'))
            .filter_map(|rest| rest.split_once(" = "))
            .filter(|(key, _)| params::find(key).is_some())
            .collect()
    }

    #[test]
    fn sample_parses_without_warnings() {
        let loaded = parse_str(SAMPLE, Path::new("/etc/repmgr.conf")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = &loaded.config;
        assert_eq!(c.node_id, Some(1));
        assert_eq!(c.node_name, "node1");
        assert_eq!(
            c.conninfo,
            "host=node1 user=repmgr dbname=repmgr connect_timeout=2"
        );
        assert_eq!(c.data_directory, "/var/lib/postgresql/15/main");
        assert!(c.check_required(true).is_ok());
    }

    #[test]
    fn sample_lists_every_key() {
        for key in known_keys() {
            let listed = SAMPLE.lines().any(|line| {
                let line = line.strip_prefix('#').unwrap_or(line);
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with([' ', '=']))
            });
            assert!(listed, "{key} missing from the sample repmgr.conf");
        }
    }

    #[test]
    fn sample_defaults_are_the_real_defaults() {
        let shown = sample_defaults();
        for p in params::PARAMS.iter().filter(|p| !p.default.is_empty()) {
            let Some((_, value)) = shown.iter().find(|(key, _)| *key == p.name) else {
                panic!("the sample shows no default for {}", p.name);
            };
            assert_eq!(only(p.name, value), default_with_file(), "{}", p.name);
        }
    }

    #[test]
    fn man_page_documents_every_key() {
        for p in params::PARAMS {
            let entry = format!(".TP\n.B {}\n", p.name);
            assert!(
                MAN_PAGE.contains(&entry),
                "{} missing from repmgr.conf.5",
                p.name
            );
            let reload = if p.reloadable {
                "; reloadable)"
            } else {
                "; not reloadable)"
            };
            let after = MAN_PAGE.split(&entry).nth(1).unwrap_or_default();
            let first_line = after.lines().next().unwrap_or_default();
            assert!(first_line.ends_with(reload), "{}: {first_line}", p.name);
        }
    }
}
