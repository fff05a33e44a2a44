//! The declarative table of every repmgr.conf parameter (repmgr 5.5,
//! `configdata.c`): name, value kind, default, minimum, whether repmgrd
//! applies it on SIGHUP, and a one-line description.
//!
//! The table drives `known_keys()`, `reloadable()`, error texts ("expected
//! ..."), unknown-key suggestions, the sample `repmgr.conf` and the man page;
//! unit tests check that it agrees with `Config::default()`. Adding a key is
//! one line here plus the typed field in `Config`.

/// What a parameter's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `node_id`: an integer >= 1, no default.
    NodeId,
    /// An integer with a minimum value.
    Int { min: i32 },
    /// on/off/true/false/yes/no/1/0, case-insensitive.
    Bool,
    /// Free text; empty means unset.
    Str,
    /// One of a fixed set of words, case-insensitive.
    Choice(&'static [&'static str]),
    /// A comma-separated list (`event_notifications`).
    List,
    /// `old=new`, repeatable: every occurrence is kept.
    TablespaceMapping,
    /// An integer with an optional time unit (`recovery_min_apply_delay`).
    Delay,
    /// A repmgr log level name.
    LogLevel,
}

impl Kind {
    /// What a value of this kind must be, for error messages.
    pub fn expected(self) -> String {
        match self {
            Kind::NodeId => "an integer >= 1".to_string(),
            Kind::Int { min } => format!("an integer >= {min}"),
            Kind::Bool => "a boolean: on, off, true, false, yes, no, 1 or 0".to_string(),
            Kind::Str => "a string".to_string(),
            Kind::Choice(words) => quoted_alternatives(words),
            Kind::List => "a comma-separated list".to_string(),
            Kind::TablespaceMapping => "'old_directory=new_directory'".to_string(),
            Kind::Delay => "an integer >= 0 with an optional unit: ms, s, min, h or d".to_string(),
            Kind::LogLevel => quoted_alternatives(&["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR"]),
        }
    }

    /// The type name shown in the man page.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::NodeId | Kind::Int { .. } => "integer",
            Kind::Bool => "boolean",
            Kind::Str => "string",
            Kind::Choice(_) => "enum",
            Kind::List => "list",
            Kind::TablespaceMapping => "mapping (repeatable)",
            Kind::Delay => "interval",
            Kind::LogLevel => "log level",
        }
    }
}

/// `"a", "b" or "c"`.
fn quoted_alternatives(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((only, _)) => only.clone(),
        None => String::new(),
    }
}

/// Groups, in the order of repmgr's `repmgr.conf.sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Node,
    Logging,
    Clone,
    Standby,
    NodeCheck,
    Witness,
    Repmgrd,
    Events,
    Service,
    Undocumented,
}

impl Group {
    pub const ALL: [Group; 10] = [
        Group::Node,
        Group::Logging,
        Group::Clone,
        Group::Standby,
        Group::NodeCheck,
        Group::Witness,
        Group::Repmgrd,
        Group::Events,
        Group::Service,
        Group::Undocumented,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Node => "Node information",
            Group::Logging => "Logging",
            Group::Clone => "Standby clone",
            Group::Standby => "Promote, follow, switchover and rejoin",
            Group::NodeCheck => "repmgr node check thresholds",
            Group::Witness => "Witness",
            Group::Repmgrd => "repmgrd: monitoring and failover",
            Group::Events => "Event notifications",
            Group::Service => "Service commands",
            Group::Undocumented => "Undocumented (testing aids)",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as it would be written in repmgr.conf ("" = unset).
    pub default: &'static str,
    /// repmgrd applies a new value on SIGHUP without a restart.
    pub reloadable: bool,
    pub group: Group,
    pub doc: &'static str,
}

const RELOAD: bool = true;
const FIXED: bool = false;

const fn param(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    reloadable: bool,
    group: Group,
    doc: &'static str,
) -> Param {
    Param {
        name,
        kind,
        default,
        reloadable,
        group,
        doc,
    }
}

const fn int(min: i32) -> Kind {
    Kind::Int { min }
}

pub const FAILOVER_MODES: &[&str] = &["manual", "automatic"];
pub const CONNECTION_CHECK_TYPES: &[&str] = &["ping", "connection", "query"];
pub const REPLICATION_TYPES: &[&str] = &["physical"];

use Group as G;
use Kind::{Bool, Str};

/// Every parameter repmgr 5.5 knows, grouped as in its sample file.
#[rustfmt::skip]
pub const PARAMS: &[Param] = &[
    // Node information
    param("node_id", Kind::NodeId, "", FIXED, G::Node, "Unique integer identifying this node (required)."),
    param("node_name", Str, "", FIXED, G::Node, "Unique name of this node, used as application_name in primary_conninfo (required)."),
    param("conninfo", Str, "", RELOAD, G::Node, "libpq connection string other nodes use to reach this node; include connect_timeout (required)."),
    param("data_directory", Str, "", FIXED, G::Node, "This node's PostgreSQL data directory (required)."),
    param("config_directory", Str, "", FIXED, G::Node, "Directory of postgresql.conf when it lives outside the data directory."),
    param("replication_user", Str, "", FIXED, G::Node, "User for replication connections; defaults to the conninfo user."),
    param("replication_type", Kind::Choice(REPLICATION_TYPES), "physical", FIXED, G::Node, "Replication type; only physical is supported."),
    param("location", Str, "default", FIXED, G::Node, "Arbitrary location name; repmgrd only promotes a standby in the primary's location."),
    param("priority", int(0), "100", FIXED, G::Node, "Promotion priority in an election; 0 means never promote."),
    param("pg_bindir", Str, "", FIXED, G::Node, "Directory of the PostgreSQL binaries when not in PATH."),
    param("repmgr_bindir", Str, "", FIXED, G::Node, "Directory of the repmgr binary on remote nodes when not in PATH."),
    param("passfile", Str, "", FIXED, G::Node, "Path of a .pgpass file, written into primary_conninfo."),
    param("use_primary_conninfo_password", Bool, "off", FIXED, G::Node, "Write PGPASSWORD into primary_conninfo."),
    // Logging
    param("log_level", Kind::LogLevel, "INFO", RELOAD, G::Logging, "Minimum level logged: DEBUG, INFO, NOTICE, WARNING or ERROR."),
    param("log_facility", Str, "STDERR", RELOAD, G::Logging, "STDERR, or a syslog facility (LOCAL0 to LOCAL7 or USER): repmgrd, and repmgr with --log-to-file, then log to syslog (with the program's name and pid), DETAIL and HINT lines still to stderr or log_file."),
    param("log_file", Str, "", RELOAD, G::Logging, "Log to this file instead of stderr (repmgrd, or repmgr with --log-to-file); a new file is created with mode 0600 (less if the umask says so)."),
    param("log_status_interval", int(0), "300", RELOAD, G::Logging, "Seconds between repmgrd status lines in the log; 0: none."),
    // Standby clone
    param("use_replication_slots", Bool, "off", FIXED, G::Clone, "Use physical replication slots for standbys."),
    param("pg_basebackup_options", Str, "", FIXED, G::Clone, "Extra options passed to pg_basebackup."),
    param("restore_command", Str, "", FIXED, G::Clone, "restore_command written into the standby's recovery configuration."),
    param("archive_cleanup_command", Str, "", FIXED, G::Clone, "archive_cleanup_command written into the standby's recovery configuration."),
    param("recovery_min_apply_delay", Kind::Delay, "", FIXED, G::Clone, "recovery_min_apply_delay for the standby, e.g. '5min'."),
    param("tablespace_mapping", Kind::TablespaceMapping, "", FIXED, G::Clone, "Relocate a tablespace when cloning: 'old=new'; may be given several times."),
    param("rsync_options", Str, "", FIXED, G::Clone, "Options passed to rsync."),
    param("ssh_options", Str, "-q -o ConnectTimeout=10", FIXED, G::Clone, "Options passed to ssh."),
    param("barman_host", Str, "", FIXED, G::Clone, "No effect here (loading warns): this repmgr cannot clone from Barman; a clone with barman_host set is refused unless --without-barman is given."),
    param("barman_server", Str, "", FIXED, G::Clone, "No effect here (loading warns); see barman_host."),
    param("barman_config", Str, "", FIXED, G::Clone, "No effect here (loading warns); see barman_host."),
    param("pg_backupapi_host", Str, "", FIXED, G::Clone, "No effect here (loading warns): this repmgr cannot restore through pg-backup-api; a clone with pg_backupapi_host set is refused."),
    param("pg_backupapi_node_name", Str, "", FIXED, G::Clone, "No effect here (loading warns); see pg_backupapi_host."),
    param("pg_backupapi_remote_ssh_command", Str, "", FIXED, G::Clone, "No effect here (loading warns); see pg_backupapi_host."),
    param("pg_backupapi_backup_id", Str, "", FIXED, G::Clone, "No effect here (loading warns); see pg_backupapi_host."),
    // Promote, follow, switchover and rejoin
    param("promote_check_timeout", int(1), "60", FIXED, G::Standby, "Seconds to wait for a promotion to finish."),
    param("promote_check_interval", int(1), "1", FIXED, G::Standby, "Accepted for compatibility, no effect (loading warns): promotion progress is checked every 10 ms; promote_check_timeout bounds the wait."),
    param("primary_follow_timeout", int(1), "60", FIXED, G::Standby, "Seconds to wait for a new primary before following it."),
    param("standby_follow_timeout", int(1), "30", FIXED, G::Standby, "Seconds to wait for a standby to connect to its new upstream."),
    param("standby_follow_restart", Bool, "off", FIXED, G::Standby, "Restart rather than reload PostgreSQL when following."),
    param("shutdown_check_timeout", int(1), "60", FIXED, G::Standby, "Seconds to wait for the demoted primary to shut down in a switchover."),
    param("standby_reconnect_timeout", int(1), "60", FIXED, G::Standby, "Seconds to wait for the demoted primary to reconnect as a standby."),
    param("wal_receive_check_timeout", int(1), "30", FIXED, G::Standby, "Seconds to wait for the demotion candidate's WAL to be received."),
    param("node_rejoin_timeout", int(1), "60", FIXED, G::Standby, "Seconds to wait for a rejoined node to connect to its upstream."),
    // Node check thresholds
    param("archive_ready_warning", int(1), "16", FIXED, G::NodeCheck, "Pending WAL files to archive that give a warning."),
    param("archive_ready_critical", int(1), "128", FIXED, G::NodeCheck, "Pending WAL files to archive that are critical."),
    param("replication_lag_warning", int(1), "300", FIXED, G::NodeCheck, "Seconds of replication lag that give a warning."),
    param("replication_lag_critical", int(1), "600", FIXED, G::NodeCheck, "Seconds of replication lag that are critical."),
    // Witness
    param("witness_sync_interval", int(1), "15", FIXED, G::Witness, "Seconds between copies of the node table to the witness."),
    // repmgrd
    param("failover", Kind::Choice(FAILOVER_MODES), "manual", RELOAD, G::Repmgrd, "Whether repmgrd promotes a standby when the primary fails."),
    param("promote_command", Str, "", RELOAD, G::Repmgrd, "Command repmgrd runs to promote this node (required with failover=automatic)."),
    param("follow_command", Str, "", RELOAD, G::Repmgrd, "Command repmgrd runs to follow a new primary, %n = its node id (required with failover=automatic)."),
    param("monitor_interval_secs", int(1), "2", RELOAD, G::Repmgrd, "Seconds between checks of the upstream node."),
    param("connection_check_type", Kind::Choice(CONNECTION_CHECK_TYPES), "ping", RELOAD, G::Repmgrd, "How the upstream is checked: ping, connection or query."),
    param("reconnect_attempts", int(0), "6", RELOAD, G::Repmgrd, "Reconnection attempts before the upstream is deemed failed."),
    param("reconnect_interval", int(0), "10", RELOAD, G::Repmgrd, "Seconds between reconnection attempts."),
    param("degraded_monitoring_timeout", int(-1), "-1", RELOAD, G::Repmgrd, "Seconds in degraded monitoring before repmgrd exits; -1 waits forever."),
    param("async_query_timeout", int(0), "60", RELOAD, G::Repmgrd, "Seconds any query of a repmgr command may wait for its answer (never less than the conninfo's connect_timeout), so a frozen server is given up on. repmgrd bounds its queries by the connect_timeout alone."),
    param("primary_notification_timeout", int(0), "60", RELOAD, G::Repmgrd, "Seconds a follower waits to learn the new primary."),
    param("repmgrd_standby_startup_timeout", int(-1), "-1", RELOAD, G::Repmgrd, "Seconds repmgrd waits, after following a new primary, for the local server to accept connections again (tried once a second); a server that never does fails the follow (degraded). -1: standby_reconnect_timeout. As in repmgr, repmgrd does not wait at its own start-up: without the local server it exits."),
    param("repmgrd_pid_file", Str, "", FIXED, G::Repmgrd, "repmgrd PID file (default: in the temporary directory)."),
    param("repmgrd_port", int(0), "0", FIXED, G::Repmgrd, "TCP port of the channel between repmgrds (votes, heartbeats); 0: chosen at first start and kept. Set a fixed port where a firewall filters."),
    param("repmgrd_state_file", Str, "", FIXED, G::Repmgrd, "repmgrd's durable state (votes, fence), fsynced (default: <data_directory>.repmgrd, beside the data directory)."),
    param("http_listen", Str, "", FIXED, G::Repmgrd, "ADDRESS:PORT of repmgrd's HTTP endpoint for load balancers and monitoring (/primary, /replica, /health, /metrics, ...); empty: off."),
    param("repmgrd_exit_on_inactive_node", Bool, "off", FIXED, G::Repmgrd, "At start-up, an inactive record of this node is set active when the node runs as the standby or witness it is registered as; with this on it is not, and with failover=automatic repmgrd refuses to start (exit 1; failover=manual: monitored passively). Unlike repmgr, an inactive primary record (a failed primary's) is never set active: standbys would follow it."),
    param("monitoring_history", Bool, "off", RELOAD, G::Repmgrd, "Record replication status in repmgr.monitoring_history."),
    param("standby_disconnect_on_failover", Bool, "off", RELOAD, G::Repmgrd, "Accepted for compatibility, no effect (loading warns): repmgrd never disconnects the WAL receivers; a receiver still streaming from the primary is the proof it lives that the election relies on (see repmgrd(8))."),
    param("sibling_nodes_disconnect_timeout", int(0), "30", RELOAD, G::Repmgrd, "Accepted for compatibility, no effect (loading warns): it only applies with standby_disconnect_on_failover, which has no effect."),
    param("primary_visibility_consensus", Bool, "off", RELOAD, G::Repmgrd, "Only fail over if no sibling can still see the primary."),
    param("always_promote", Bool, "off", RELOAD, G::Repmgrd, "A standby that won the election but whose own record names no upstream (metadata not updated since it became a standby) does not promote, as in repmgr, unless this is on. Nothing else changes: the votes, the lease and the look at the old primary still decide. The --always-promote option of standby switchover is separate."),
    param("failover_validation_command", Str, "", RELOAD, G::Repmgrd, "Command that must succeed before a promotion (%n %a %v %u %t)."),
    param("election_rerun_interval", int(1), "15", FIXED, G::Repmgrd, "Seconds before an election is rerun after failover validation failed."),
        param("failover_quorum", Kind::Choice(&["majority", "repmgr"]), "majority", RELOAD, G::Repmgrd, "Promote only when a strict majority of all voters (failed primary included) is visible; \"repmgr\" restores repmgr's weaker rule."),
    param("primary_isolation_timeout", int(-1), "-1", RELOAD, G::Repmgrd, "Seconds without a renewed lease before an isolated primary goes read-only (at most half its lease); -1: half the lease. It is stopped before the lease ends in any case (see repmgrd(8))."),
    param("fence_mode", Kind::Choice(&["read-only", "stop"]), "read-only", RELOAD, G::Repmgrd, "How a superseded primary is fenced: read-only (demoted: restarted in recovery) or stop. An isolated primary goes read-only, then is stopped before its lease ends."),
    param("fence_command", Str, "", RELOAD, G::Repmgrd, "Command run when this node is fenced or unfenced (%n %a %e)."),
    param("auto_rejoin", Bool, "off", RELOAD, G::Repmgrd, "A superseded old primary rejoins the new primary as a standby by itself."),
    param("child_nodes_check_interval", int(0), "5", RELOAD, G::Repmgrd, "Seconds between checks of the primary's child nodes; 0 disables."),
    param("child_nodes_disconnect_min_count", int(-1), "-1", RELOAD, G::Repmgrd, "Disconnected children that trigger child_nodes_disconnect_command; -1 disables."),
    param("child_nodes_connected_min_count", int(-1), "-1", RELOAD, G::Repmgrd, "Fewer connected children than this triggers the command; -1 disables."),
    param("child_nodes_connected_include_witness", Bool, "off", RELOAD, G::Repmgrd, "Count the witness as a child node."),
    param("child_nodes_disconnect_timeout", int(0), "30", RELOAD, G::Repmgrd, "Seconds children must stay disconnected before the command runs."),
    param("child_nodes_disconnect_command", Str, "", RELOAD, G::Repmgrd, "Command run on the primary when children disconnect; %p = node id."),
    // Event notifications
    param("event_notification_command", Str, "", RELOAD, G::Events, "Command run on each event (%n %e %s %t %d %p %c %a)."),
    param("event_notifications", Kind::List, "", RELOAD, G::Events, "Comma-separated events that run the command; empty means all."),
    // Service commands
    param("pg_ctl_options", Str, "", FIXED, G::Service, "Extra options passed to pg_ctl."),
    param("service_start_command", Str, "", FIXED, G::Service, "Command to start PostgreSQL instead of pg_ctl."),
    param("service_stop_command", Str, "", FIXED, G::Service, "Command to stop PostgreSQL instead of pg_ctl."),
    param("service_restart_command", Str, "", FIXED, G::Service, "Command to restart PostgreSQL instead of pg_ctl."),
    param("service_reload_command", Str, "", FIXED, G::Service, "Command to reload PostgreSQL instead of pg_ctl."),
    param("service_promote_command", Str, "", FIXED, G::Service, "Package command to promote PostgreSQL (not a repmgr promote)."),
    param("repmgrd_service_start_command", Str, "", FIXED, G::Service, "Command to start repmgrd (repmgr service start)."),
    param("repmgrd_service_stop_command", Str, "", FIXED, G::Service, "Command to stop repmgrd (repmgr service stop)."),
    // Undocumented testing aids
    param("reconnect_loop_sync", Bool, "off", RELOAD, G::Undocumented, "Accepted for compatibility, no effect (loading warns): reconnection attempts are always scheduled on the clock from the first failed check, which is what repmgr's experimental option approximates."),
    param("promote_delay", int(0), "0", RELOAD, G::Undocumented, "Seconds a standby that won the election waits before asking for the votes (repmgr: before promoting; a testing aid); standby switchover waits as long before promoting. After the delay the election is decided again and every check before a promotion follows; the old primary answering during it cancels the failover. Adds to the failover time (repmgrd(8), TIMING)."),
    param("failover_delay", int(0), "0", FIXED, G::Undocumented, "Seconds a standby waits, once it has declared its primary failed, before the election starts (a testing aid in repmgr). The primary answering a check meanwhile cancels the failover. Adds to the failover time (repmgrd(8), TIMING)."),
    param("connection_check_query", Str, "SELECT 1", RELOAD, G::Undocumented, "Query that connection_check_type=query runs on the upstream, after connecting; the check fails when it fails."),
];

/// Old names still read: `(old, Some(new))` maps with a warning,
/// `(old, None)` is warned about and ignored.
pub const DEPRECATED: &[(&str, Option<&str>)] = &[
    ("node", Some("node_id")),
    ("loglevel", Some("log_level")),
    ("logfacility", Some("log_facility")),
    ("logfile", Some("log_file")),
    ("master_response_timeout", Some("async_query_timeout")),
    // A typo repmgr 3 shipped in its sample file.
    ("master_reponse_timeout", Some("async_query_timeout")),
    (
        "retry_promote_interval_secs",
        Some("primary_notification_timeout"),
    ),
    ("upstream_node", None),
    ("cluster", None),
];

pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

pub fn deprecated(name: &str) -> Option<Option<&'static str>> {
    DEPRECATED
        .iter()
        .find(|(old, _)| *old == name)
        .map(|(_, new)| *new)
}

/// Longer than every parameter name (the longest is 37 characters).
const LONGEST_NAME: usize = 40;

/// The known key closest to `unknown`, if it is close enough to be a typo.
pub fn suggest(unknown: &str) -> Option<&'static str> {
    // Far longer than any name: not a typo, and the distance table would
    // grow with the length of whatever junk was written.
    if unknown.len() > 2 * LONGEST_NAME {
        return None;
    }
    let (best, distance) = PARAMS
        .iter()
        .map(|p| (p.name, edit_distance(unknown, p.name)))
        .min_by_key(|&(_, d)| d)?;
    let tolerance = (unknown.chars().count() / 4).clamp(1, 3);
    (distance <= tolerance).then_some(best)
}

/// Optimal string alignment distance: Levenshtein plus adjacent swaps,
/// so `node_nmae` is one edit from `node_name`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase_identifiers() {
        let mut seen = std::collections::HashSet::new();
        for p in PARAMS {
            assert!(seen.insert(p.name), "duplicate {}", p.name);
            assert!(
                p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                p.name
            );
            assert!(!p.doc.is_empty(), "{} has no doc", p.name);
            assert!(p.name.len() <= LONGEST_NAME, "{}", p.name);
        }
    }

    #[test]
    fn deprecated_targets_exist_and_old_names_are_not_current() {
        for (old, new) in DEPRECATED {
            assert!(find(old).is_none(), "{old}");
            if let Some(new) = new {
                assert!(find(new).is_some(), "{new}");
            }
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("node_nmae"), Some("node_name"));
        assert_eq!(suggest("conninf"), Some("conninfo"));
        assert_eq!(suggest("priorty"), Some("priority"));
        assert_eq!(suggest("foo"), None);
        assert_eq!(suggest("completely_unrelated_words"), None);
        assert_eq!(suggest(""), None);
        assert_eq!(suggest(&"node_name".repeat(100_000)), None);
    }

    #[test]
    fn expected_texts_read_well() {
        assert_eq!(Kind::NodeId.expected(), "an integer >= 1");
        assert_eq!(
            Kind::Choice(FAILOVER_MODES).expected(),
            "\"manual\" or \"automatic\""
        );
        assert_eq!(
            Kind::Choice(CONNECTION_CHECK_TYPES).expected(),
            "\"ping\", \"connection\" or \"query\""
        );
        assert_eq!(Kind::Choice(REPLICATION_TYPES).expected(), "\"physical\"");
    }

    #[test]
    fn every_group_has_members() {
        for g in Group::ALL {
            assert!(PARAMS.iter().any(|p| p.group == g), "{g:?}");
        }
    }
}
