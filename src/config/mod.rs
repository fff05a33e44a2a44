//! repmgr.conf: typed configuration (see `params.rs`), loading and validation.
//!
//! Loading runs in three steps:
//! 1. `parse` reads the GUC-style text and its includes into entries that
//!    remember their file and line;
//! 2. names are resolved here: deprecated names are mapped with a warning,
//!    unknown ones are warned about (with a "did you mean");
//! 3. serde (via serde_ini) maps values into [`Config`]. Each entry is first
//!    deserialized on its own so every bad value is reported with its key
//!    and line; then the normalised, last-wins text is deserialized at once.
//!
//! serde_ini trims values, so leading or trailing blanks inside quotes are
//! not kept (repmgr keeps them; no parameter has a use for them).
//!
//! Every error of every file is returned together in one
//! `Error::many(ExitCode::BadConfig, ..)`.

pub mod params;
mod parse;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, Error as _, IntoDeserializer};
use serde::Deserialize;

use crate::error::{Error, ExitCode, Result};
use crate::logging::RepmgrLevel;
#[cfg(test)]
use params::Kind;
use parse::{Entry, Reading};

/// Beyond this many, errors are summarised as "and N more errors".
const MAX_REPORTED_ERRORS: usize = 50;

/// Longest excerpt of a value quoted back in an error.
const VALUE_EXCERPT_CHARS: usize = 60;

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

/// A loaded configuration, where it came from, and what looked odd in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Absolute path of the top-level file.
    pub path: PathBuf,
    /// Unknown or deprecated keys, each naming `file:line`.
    pub warnings: Vec<String>,
    /// The file uses the seed's (repmgr 1.x) names, `node` and `cluster`;
    /// such files have no `data_directory`.
    pub seed_format: bool,
}

impl Config {
    /// Checks the parameters every node needs: one error lists all missing.
    pub fn check_required(&self, need_data_directory: bool) -> Result<()> {
        let mut missing = Vec::new();
        if self.node_id.is_none() {
            missing.push("node_id");
        }
        for (key, value) in [("node_name", &self.node_name), ("conninfo", &self.conninfo)] {
            if value.is_empty() {
                missing.push(key);
            }
        }
        if need_data_directory && self.data_directory.is_empty() {
            missing.push("data_directory");
        }
        if missing.is_empty() {
            return Ok(());
        }
        let messages = missing
            .into_iter()
            .map(|key| {
                format!(
                    "required parameter \"{key}\" not set in \"{}\"",
                    self.config_file
                )
            })
            .collect();
        Err(Error::many(ExitCode::BadConfig, messages))
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

/// Finds the configuration file as repmgr does: `-f FILE` (which must
/// exist), else `./repmgr.conf`, else `/etc/repmgr.conf`.
pub fn locate(explicit: Option<&str>) -> Result<Option<PathBuf>> {
    let candidates = [
        PathBuf::from("repmgr.conf"),
        PathBuf::from("/etc/repmgr.conf"),
    ];
    locate_among(explicit, &candidates)
}

fn locate_among(explicit: Option<&str>, candidates: &[PathBuf]) -> Result<Option<PathBuf>> {
    if let Some(given) = explicit {
        return explicit_file(given).map(Some);
    }
    Ok(candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .map(|found| absolute(found)))
}

/// A file named with `-f` must exist and be readable: silently falling
/// back to another file would configure the wrong node.
fn explicit_file(given: &str) -> Result<PathBuf> {
    let path = absolute(Path::new(given));
    match fs::File::open(&path) {
        Ok(_) if path.is_file() => Ok(path),
        Ok(_) => Err(Error::config(format!(
            "configuration file \"{given}\" is not a regular file"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::config(format!(
            "configuration file \"{given}\" not found"
        ))),
        Err(e) => Err(Error::config(format!(
            "could not open configuration file \"{given}\": {e}"
        ))),
    }
}

/// Makes `path` absolute without resolving symlinks (like repmgr, which
/// keeps the name the operator gave).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Reads, checks and maps a configuration file and its includes.
pub fn load_file(path: &Path) -> Result<Loaded> {
    let path = absolute(path);
    let mut reading = Reading::default();
    parse::read_file(&path, &mut reading);
    build(reading, path)
}

/// Like [`load_file`] for text already in memory; `origin` names it in
/// messages and anchors relative includes.
pub fn parse_str(text: &str, origin: &Path) -> Result<Loaded> {
    let path = absolute(origin);
    let mut reading = Reading::default();
    parse::read_bytes(text.as_bytes(), &path, 0, &mut reading);
    build(reading, path)
}

/// Entries whose names are known, plus what resolving the names noticed.
struct Resolved {
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// The file uses repmgr 1.x names (`node`, `cluster`).
    seed_format: bool,
}

fn build(reading: Reading, path: PathBuf) -> Result<Loaded> {
    let mut errors = reading.errors;
    let mut resolved = resolve_names(reading.entries);
    let mut config = map_values(&resolved.entries, &mut errors);
    config.config_file = path.display().to_string();
    if resolved.seed_format {
        name_seed_node(&mut config, &mut resolved.warnings);
    }
    cross_check(&config, &resolved.entries, &mut errors);
    if !errors.is_empty() {
        return Err(config_error(errors));
    }
    Ok(Loaded {
        config,
        path,
        warnings: resolved.warnings,
        seed_format: resolved.seed_format,
    })
}

/// Maps deprecated names to current ones and drops unknown names, warning
/// about both.
fn resolve_names(entries: Vec<Entry>) -> Resolved {
    let mut resolved = Resolved {
        entries: Vec::with_capacity(entries.len()),
        warnings: Vec::new(),
        seed_format: false,
    };
    for mut entry in entries {
        if params::find(&entry.key).is_some() {
            resolved.entries.push(entry);
            continue;
        }
        let here = entry.location();
        match params::deprecated(&entry.key) {
            Some(Some(current)) => {
                resolved.warnings.push(format!(
                    "{here}: parameter \"{}\" is deprecated; use \"{current}\" instead",
                    entry.key
                ));
                resolved.seed_format |= entry.key == "node";
                entry.key = current.to_string();
                resolved.entries.push(entry);
            }
            Some(None) => {
                resolved.seed_format |= entry.key == "cluster";
                resolved.warnings.push(ignored_warning(&here, &entry.key));
            }
            None => resolved.warnings.push(unknown_warning(&here, &entry.key)),
        }
    }
    resolved
}

fn ignored_warning(here: &str, key: &str) -> String {
    let advice = if key == "upstream_node" {
        "; use --upstream-node-id when registering"
    } else {
        ""
    };
    format!("{here}: parameter \"{key}\" is deprecated and will be ignored{advice}")
}

fn unknown_warning(here: &str, key: &str) -> String {
    let suggestion = params::suggest(key);
    let key = shorten(key);
    match suggestion {
        Some(near) => format!("{here}: unknown parameter \"{key}\"; did you mean \"{near}\"?"),
        None => format!("{here}: unknown parameter \"{key}\"; ignoring"),
    }
}

/// Deserializes every entry on its own (to name the bad ones), then the
/// last value of each key together. `tablespace_mapping` accumulates.
fn map_values(entries: &[Entry], errors: &mut Vec<String>) -> Config {
    let mut mappings = Vec::new();
    let mut latest: Vec<&Entry> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        let single = match deserialize_ini::<Config>(&ini_line(entry)) {
            Ok(single) => single,
            Err(_) => {
                errors.push(invalid_value(entry));
                continue;
            }
        };
        if entry.key == "tablespace_mapping" {
            mappings.extend(single.tablespace_mapping);
            continue;
        }
        match position.get(entry.key.as_str()) {
            Some(&i) => latest[i] = entry,
            None => {
                position.insert(&entry.key, latest.len());
                latest.push(entry);
            }
        }
    }
    let normalised: String = latest.iter().map(|e| ini_line(e)).collect();
    let mut config = deserialize_ini::<Config>(&normalised).unwrap_or_else(|e| {
        // Unreachable in practice: every line deserialized on its own above.
        errors.push(format!("could not map configuration values: {e}"));
        Config::default()
    });
    config.tablespace_mapping = mappings;
    config
}

/// One normalised `key=value` line; values never hold a newline because
/// the reader splits on them.
fn ini_line(entry: &Entry) -> String {
    format!("{}={}\n", entry.key, entry.value)
}

fn deserialize_ini<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_ini::from_str(text).map_err(|e| match e {
        serde_ini::de::Error::Custom(message) => message,
        other => format!("{other:?}"),
    })
}

/// `file:line: invalid value for parameter "key": "value" (expected ...)`;
/// the expectation comes from the table so it is the same for every key of
/// a kind.
fn invalid_value(entry: &Entry) -> String {
    let expected = params::find(&entry.key)
        .map(|p| p.kind.expected())
        .unwrap_or_default();
    format!(
        "{}: invalid value for parameter \"{}\": \"{}\" (expected {expected})",
        entry.location(),
        entry.key,
        shorten(&entry.value)
    )
}

fn shorten(value: &str) -> String {
    let mut short: String = value.chars().take(VALUE_EXCERPT_CHARS).collect();
    if value.chars().count() > VALUE_EXCERPT_CHARS {
        short.push_str("...");
    }
    short
}

/// repmgr 1.x files have no node_name; name the node after its id so the
/// file still loads.
fn name_seed_node(config: &mut Config, warnings: &mut Vec<String>) {
    if let (Some(id), true) = (config.node_id, config.node_name.is_empty()) {
        config.node_name = format!("node{id}");
        warnings.push(format!(
            "{}: \"node_name\" not set in this repmgr 1.x style file; using \"{}\"",
            config.config_file, config.node_name
        ));
    }
}

/// Checks between parameters, as repmgr does after parsing. Each message
/// points at the line that last set one of the keys involved.
fn cross_check(config: &Config, entries: &[Entry], errors: &mut Vec<String>) {
    let at = |keys: &[&str]| where_set(entries, keys, &config.config_file);
    check_warning_below_critical(config, &at, errors);
    check_rejoin_fits_reconnect(config, &at, errors);
    check_barman_pair(config, &at, errors);
}

/// `node check` would never reach "warning" if it were not below "critical".
fn check_warning_below_critical(
    config: &Config,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    let thresholds = [
        (
            "archive_ready",
            config.archive_ready_warning,
            config.archive_ready_critical,
        ),
        (
            "replication_lag",
            config.replication_lag_warning,
            config.replication_lag_critical,
        ),
    ];
    for (prefix, warning, critical) in thresholds {
        if warning >= critical {
            let (low, high) = (format!("{prefix}_warning"), format!("{prefix}_critical"));
            errors.push(format!(
                "{}: \"{low}\" ({warning}) must be less than \"{high}\" ({critical})",
                at(&[&low, &high])
            ));
        }
    }
}

/// A switchover waits standby_reconnect_timeout for the demoted primary's
/// rejoin, which may itself take up to node_rejoin_timeout.
fn check_rejoin_fits_reconnect(
    config: &Config,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    if config.standby_reconnect_timeout < config.node_rejoin_timeout {
        errors.push(format!(
            "{}: \"standby_reconnect_timeout\" ({}) must be greater than or equal to \"node_rejoin_timeout\" ({})",
            at(&["standby_reconnect_timeout", "node_rejoin_timeout"]),
            config.standby_reconnect_timeout,
            config.node_rejoin_timeout
        ));
    }
}

/// Barman needs both the host to ssh to and the server name it knows.
fn check_barman_pair(config: &Config, at: &dyn Fn(&[&str]) -> String, errors: &mut Vec<String>) {
    let (host, server) = (&config.barman_host, &config.barman_server);
    let half_set = [
        ("barman_host", host, "barman_server", server),
        ("barman_server", server, "barman_host", host),
    ];
    for (set_key, set_value, unset_key, unset_value) in half_set {
        if !set_value.is_empty() && unset_value.is_empty() {
            errors.push(format!(
                "{}: \"{set_key}\" is set but \"{unset_key}\" is not; set both or neither",
                at(&[set_key])
            ));
        }
    }
}

/// The location of the last entry setting one of `keys`, or the file.
fn where_set(entries: &[Entry], keys: &[&str], file: &str) -> String {
    entries
        .iter()
        .rev()
        .find(|e| keys.contains(&e.key.as_str()))
        .map(Entry::location)
        .unwrap_or_else(|| file.to_string())
}

/// One error for everything, capped so a binary file does not flood the log.
fn config_error(mut errors: Vec<String>) -> Error {
    let syntax = errors.iter().any(|e| e.contains("syntax error near"));
    if errors.len() > MAX_REPORTED_ERRORS {
        let more = errors.len() - MAX_REPORTED_ERRORS;
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(format!("and {more} more errors"));
    }
    let error = Error::many(ExitCode::BadConfig, errors);
    if syntax {
        error.hint(
            "values containing spaces or special characters must be enclosed in single quotes",
        )
    } else {
        error
    }
}

// ---- serde helpers: every value arrives as a string from serde_ini ----

fn node_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    at_least::<1, D>(d).map(Some)
}

/// An integer no smaller than `MIN` (repmgr's per-key `intminval`).
fn at_least<'de, const MIN: i32, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().parse::<i32>() {
        Ok(n) if n >= MIN => Ok(n),
        _ => Err(D::Error::custom(format!("expected an integer >= {MIN}"))),
    }
}

/// PostgreSQL's `parse_bool` words, case-insensitive.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "off" | "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    parse_bool(&text).ok_or_else(|| D::Error::custom("expected a boolean"))
}

/// A unit enum written in any case (`failover = Automatic`).
fn word<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?.trim().to_ascii_lowercase();
    T::deserialize(text.into_deserializer())
}

fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<RepmgrLevel, D::Error> {
    let text = String::deserialize(d)?;
    RepmgrLevel::parse(text.trim()).ok_or_else(|| D::Error::custom("expected a log level"))
}

fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(String::deserialize(d)?
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect())
}

/// One `old=new` pair; `\=` keeps an `=` inside a directory name, as
/// pg_basebackup's `--tablespace-mapping` allows.
fn tablespace_mapping<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let text = String::deserialize(d)?;
    split_mapping(&text)
        .map(|pair| vec![pair])
        .ok_or_else(|| D::Error::custom("expected 'old_directory=new_directory'"))
}

fn split_mapping(text: &str) -> Option<(String, String)> {
    let mut old = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => old.push(chars.next().unwrap_or('\\')),
            '=' => {
                let new = chars.as_str().replace("\\=", "=");
                let old = old.trim().to_string();
                let new = new.trim().to_string();
                return (!old.is_empty() && !new.is_empty()).then_some((old, new));
            }
            other => old.push(other),
        }
    }
    None
}

/// `recovery_min_apply_delay`: an integer with an optional unit; kept as
/// written since it is copied into PostgreSQL's recovery configuration.
fn delay<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?.trim().to_string();
    if text.is_empty() || is_delay(&text) {
        Ok(text)
    } else {
        Err(D::Error::custom(
            "expected an integer with an optional unit",
        ))
    }
}

fn is_delay(text: &str) -> bool {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    !number.is_empty()
        && number.parse::<i64>().is_ok()
        && matches!(unit.trim_start(), "" | "ms" | "s" | "min" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded> {
        parse_str(text, Path::new("/x/repmgr.conf"))
    }

    fn messages(text: &str) -> Vec<String> {
        match load(text) {
            Ok(loaded) => panic!("loaded: {:?}", loaded.config),
            Err(e) => {
                assert_eq!(e.code, ExitCode::BadConfig);
                e.messages
            }
        }
    }

    /// `key = value` alone, mapped onto the defaults.
    fn only(key: &str, value: &str) -> Config {
        match load(&format!("{key} = {value}\n")) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{key} = {value}: {:?}", e.messages),
        }
    }

    fn default_with_file() -> Config {
        Config {
            config_file: "/x/repmgr.conf".into(),
            ..Config::default()
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let loaded = load("").unwrap();
        assert_eq!(loaded.config, default_with_file());
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.path, PathBuf::from("/x/repmgr.conf"));
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
    fn int_minimums_match_the_table() {
        for p in params::PARAMS {
            let min = match p.kind {
                Kind::Int { min } => min,
                Kind::NodeId => 1,
                _ => continue,
            };
            let below = format!("{} = {}\n", p.name, i64::from(min) - 1);
            let errors = messages(&below);
            assert_eq!(
                errors,
                vec![format!(
                    "/x/repmgr.conf:1: invalid value for parameter \"{}\": \"{}\" (expected an integer >= {min})",
                    p.name,
                    i64::from(min) - 1
                )]
            );
        }
    }

    #[test]
    fn typical_file() {
        let text = "\
node_id=1
node_name='node1'
conninfo='host=node1 user=repmgr dbname=repmgr connect_timeout=2'
data_directory='/var/lib/postgresql/15/main'
failover=automatic
connection_check_type = Query
use_replication_slots = yes
log_level = debug
event_notifications='standby_promote, standby_follow'
tablespace_mapping='/a=/b'
tablespace_mapping='/c=/d'
recovery_min_apply_delay = '5 min'
priority = 0
";
        let loaded = load(text).unwrap();
        let c = &loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(c.node_id, Some(1));
        assert_eq!(c.node_name, "node1");
        assert_eq!(
            c.conninfo,
            "host=node1 user=repmgr dbname=repmgr connect_timeout=2"
        );
        assert_eq!(c.failover, Failover::Automatic);
        assert_eq!(c.connection_check_type, ConnectionCheckType::Query);
        assert!(c.use_replication_slots);
        assert_eq!(c.log_level, RepmgrLevel::Debug);
        assert_eq!(c.event_notifications, ["standby_promote", "standby_follow"]);
        assert_eq!(
            c.tablespace_mapping,
            [("/a".into(), "/b".into()), ("/c".into(), "/d".into())]
        );
        assert_eq!(c.recovery_min_apply_delay, "5 min");
        assert_eq!(c.priority, 0);
        assert!(c.check_required(true).is_ok());
    }

    #[test]
    fn last_occurrence_wins() {
        let c = load("priority = 5\npriority = 7\n").unwrap().config;
        assert_eq!(c.priority, 7);
    }

    #[test]
    fn booleans() {
        for (word, value) in [
            ("on", true),
            ("ON", true),
            ("true", true),
            ("Yes", true),
            ("1", true),
            ("off", false),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(
                only("monitoring_history", word).monitoring_history,
                value,
                "{word}"
            );
        }
        assert_eq!(
            messages("monitoring_history = maybe\n"),
            ["/x/repmgr.conf:1: invalid value for parameter \"monitoring_history\": \"maybe\" (expected a boolean: on, off, true, false, yes, no, 1 or 0)"]
        );
    }

    #[test]
    fn documented_error_texts() {
        let text = "# header\n\n\nfailover = sometimes\n\n\nnode_id = abc\nnode_name = 'x\nconninfo = host=a junk\n";
        assert_eq!(
            messages(text),
            [
                "/x/repmgr.conf:8: unterminated quoted string",
                "/x/repmgr.conf:9: syntax error near \"junk\"",
                "/x/repmgr.conf:4: invalid value for parameter \"failover\": \"sometimes\" (expected \"manual\" or \"automatic\")",
                "/x/repmgr.conf:7: invalid value for parameter \"node_id\": \"abc\" (expected an integer >= 1)",
            ]
        );
        let error = load(text).unwrap_err();
        assert!(error.hint.is_some());
    }

    #[test]
    fn other_invalid_values() {
        for (line, expected) in [
            ("replication_type = logical", "\"physical\""),
            (
                "log_level = LOUD",
                "\"DEBUG\", \"INFO\", \"NOTICE\", \"WARNING\" or \"ERROR\"",
            ),
            (
                "recovery_min_apply_delay = '5 weeks'",
                "an integer >= 0 with an optional unit: ms, s, min, h or d",
            ),
            (
                "recovery_min_apply_delay = -5s",
                "an integer >= 0 with an optional unit: ms, s, min, h or d",
            ),
            ("tablespace_mapping = '/a'", "'old_directory=new_directory'"),
            (
                "tablespace_mapping = '=/b'",
                "'old_directory=new_directory'",
            ),
            ("priority = 99999999999", "an integer >= 0"),
            ("node_id = ''", "an integer >= 1"),
        ] {
            let errors = messages(&format!("{line}\n"));
            assert_eq!(errors.len(), 1, "{line}");
            assert!(
                errors[0].ends_with(&format!("(expected {expected})")),
                "{line}: {errors:?}"
            );
        }
    }

    #[test]
    fn delays_with_units() {
        for value in ["0", "500ms", "'5 s'", "5min", "2h", "1d"] {
            only("recovery_min_apply_delay", value);
        }
    }

    #[test]
    fn tablespace_mapping_escaped_equals() {
        let c = only("tablespace_mapping", r"'/a\\=b=/c'");
        assert_eq!(c.tablespace_mapping, [("/a=b".into(), "/c".into())]);
    }

    #[test]
    fn cross_checks() {
        let errors = messages(
            "archive_ready_warning = 200\nreplication_lag_critical = 100\nnode_rejoin_timeout = 90\nbarman_host = b\n",
        );
        assert_eq!(
            errors,
            [
                "/x/repmgr.conf:1: \"archive_ready_warning\" (200) must be less than \"archive_ready_critical\" (128)",
                "/x/repmgr.conf:2: \"replication_lag_warning\" (300) must be less than \"replication_lag_critical\" (100)",
                "/x/repmgr.conf:3: \"standby_reconnect_timeout\" (60) must be greater than or equal to \"node_rejoin_timeout\" (90)",
                "/x/repmgr.conf:4: \"barman_host\" is set but \"barman_server\" is not; set both or neither",
            ]
        );
        assert_eq!(
            messages("barman_server = s\n"),
            ["/x/repmgr.conf:1: \"barman_server\" is set but \"barman_host\" is not; set both or neither"]
        );
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() {
        let loaded = load("node_id = 1\n\n\nnode_nmae = 'a'\nfrobnicate = 1\n").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:4: unknown parameter \"node_nmae\"; did you mean \"node_name\"?",
                "/x/repmgr.conf:5: unknown parameter \"frobnicate\"; ignoring",
            ]
        );
        assert_eq!(loaded.config.node_name, "");
    }

    #[test]
    fn deprecated_names_map_with_a_warning() {
        let loaded = load(
            "loglevel = WARNING\nlogfacility = LOCAL0\nlogfile = '/tmp/r.log'\nmaster_response_timeout = 11\nretry_promote_interval_secs = 12\nupstream_node = 3\n",
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.log_level, RepmgrLevel::Warning);
        assert_eq!(c.log_facility, "LOCAL0");
        assert_eq!(c.log_file, "/tmp/r.log");
        assert_eq!(c.async_query_timeout, 11);
        assert_eq!(c.primary_notification_timeout, 12);
        assert_eq!(loaded.warnings.len(), 6);
        assert_eq!(
            loaded.warnings[0],
            "/x/repmgr.conf:1: parameter \"loglevel\" is deprecated; use \"log_level\" instead"
        );
        assert!(loaded.warnings[5].contains("\"upstream_node\" is deprecated and will be ignored"));
        assert_eq!(only("master_reponse_timeout", "9").async_query_timeout, 9);
    }

    #[test]
    fn seed_format_loads() {
        let loaded = load("cluster=test\nnode=2\nconninfo='host=192.168.204.104'\n").unwrap();
        let c = &loaded.config;
        assert_eq!(c.node_id, Some(2));
        assert_eq!(c.node_name, "node2");
        assert_eq!(c.conninfo, "host=192.168.204.104");
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:1: parameter \"cluster\" is deprecated and will be ignored",
                "/x/repmgr.conf:2: parameter \"node\" is deprecated; use \"node_id\" instead",
                "/x/repmgr.conf: \"node_name\" not set in this repmgr 1.x style file; using \"node2\"",
            ]
        );
        assert!(c.check_required(false).is_ok());
        // A modern file is never given an invented name.
        assert_eq!(only("node_id", "2").node_name, "");
    }

    #[test]
    fn check_required_lists_every_missing_key() {
        let error = Config {
            config_file: "/etc/repmgr.conf".into(),
            ..Config::default()
        }
        .check_required(true)
        .unwrap_err();
        assert_eq!(error.code, ExitCode::BadConfig);
        assert_eq!(
            error.messages,
            [
                "required parameter \"node_id\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"node_name\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"conninfo\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"data_directory\" not set in \"/etc/repmgr.conf\"",
            ]
        );
        let partial = Config {
            node_id: Some(1),
            node_name: "n".into(),
            conninfo: "host=x".into(),
            ..Config::default()
        };
        assert!(partial.check_required(false).is_ok());
        assert_eq!(partial.check_required(true).unwrap_err().messages.len(), 1);
    }

    #[test]
    fn errors_are_capped() {
        let text = "node_id = x\n".repeat(120);
        let errors = messages(&text);
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(
            errors.last().map(String::as_str),
            Some("and 70 more errors")
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        garbage.extend(std::iter::repeat_n(b'a', 1_000_000));
        let text = String::from_utf8_lossy(&garbage);
        assert!(load(&text).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.conf");
        fs::write(&path, &garbage).unwrap();
        assert!(load_file(&path).is_err());
        let huge_key = format!("{} = 1\n", "k".repeat(2_000_000));
        let loaded = load(&huge_key).unwrap();
        assert!(loaded.warnings[0].len() < 200);
        for odd in [
            "=",
            "'",
            "\\",
            "a",
            "a=",
            "a='",
            "[x]",
            "a=[x]",
            ";x=1",
            "a = '\\'",
            "\u{feff}node_id=1",
        ] {
            let _ = load(odd);
        }
    }

    #[test]
    fn load_file_with_include_and_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("common.conf"), "priority = 42\n").unwrap();
        let main = dir.path().join("repmgr.conf");
        fs::write(&main, "node_id = 3\ninclude 'common.conf'\n").unwrap();
        let loaded = load_file(&main).unwrap();
        assert_eq!(loaded.config.node_id, Some(3));
        assert_eq!(loaded.config.priority, 42);
        assert_eq!(loaded.path, main);
        assert_eq!(loaded.config.config_file, main.display().to_string());
    }

    #[test]
    fn errors_from_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.conf");
        fs::write(&extra, "\npriority = high\n").unwrap();
        let main = dir.path().join("repmgr.conf");
        fs::write(&main, "include 'extra.conf'\nnode_id = 0\n").unwrap();
        let error = load_file(&main).unwrap_err();
        assert_eq!(
            error.messages,
            [
                format!(
                    "{}:2: invalid value for parameter \"priority\": \"high\" (expected an integer >= 0)",
                    extra.display()
                ),
                format!(
                    "{}:2: invalid value for parameter \"node_id\": \"0\" (expected an integer >= 1)",
                    main.display()
                ),
            ]
        );
    }

    #[test]
    fn locate_search_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.conf");
        let second = dir.path().join("second.conf");
        fs::write(&second, "").unwrap();
        let candidates = [first.clone(), second.clone()];
        assert_eq!(
            locate_among(None, &candidates).unwrap(),
            Some(second.clone())
        );
        fs::write(&first, "").unwrap();
        assert_eq!(
            locate_among(None, &candidates).unwrap(),
            Some(first.clone())
        );
        assert_eq!(
            locate_among(None, &[dir.path().join("none")]).unwrap(),
            None
        );
        let given = second.display().to_string();
        assert_eq!(
            locate_among(Some(&given), &candidates).unwrap(),
            Some(second)
        );
    }

    #[test]
    fn locate_explicit_missing_is_an_error() {
        let error = locate(Some("/nonexistent/dir/repmgr.conf")).unwrap_err();
        assert_eq!(error.code, ExitCode::BadConfig);
        assert!(error.message().contains("/nonexistent/dir/repmgr.conf"));
        let dir = tempfile::tempdir().unwrap();
        let as_dir = dir.path().display().to_string();
        assert!(locate(Some(&as_dir)).is_err());
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
