//! The option set: every repmgr option as an argh field, the pre-pass's
//! table of the same options, and repmgr's alternative long spellings.

use argh::FromArgs;

use super::getopt::{opt, Arg, OptSpec};

/// Every option of repmgr 5.5 (`repmgr-client.h` long_options), including
/// those whose actions come in later releases of this project.
#[derive(FromArgs, Debug, Default, Clone)]
/// repmgr: replication management tool for PostgreSQL
#[argh(help_triggers("--argh-help"))]
pub struct Opts {
    /// path to the repmgr configuration file
    #[argh(option, short = 'f')]
    pub config_file: Option<String>,
    /// force potentially dangerous operations to happen
    #[argh(switch, short = 'F')]
    pub force: bool,
    /// path to PostgreSQL binaries (repmgr spells it --pg_bindir)
    #[argh(option, short = 'b')]
    pub pg_bindir: Option<String>,
    /// check prerequisites but don't make any changes
    #[argh(switch)]
    pub dry_run: bool,
    /// wait (optionally for N seconds)
    #[argh(option, short = 'w')]
    pub wait: Option<String>,
    /// don't wait
    #[argh(switch, short = 'W')]
    pub no_wait: bool,
    /// database to connect to (or a conninfo string)
    #[argh(option, short = 'd')]
    pub dbname: Option<String>,
    /// database server host
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port
    #[argh(option, short = 'p')]
    pub port: Option<String>,
    /// database user name to connect as
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// superuser to use, if repmgr user is not superuser
    #[argh(option, short = 'S')]
    pub superuser: Option<String>,
    /// remote system user name (ssh, rsync)
    #[argh(option, short = 'R')]
    pub remote_user: Option<String>,
    /// data directory
    #[argh(option, short = 'D')]
    pub pgdata: Option<String>,
    /// node ID
    #[argh(option)]
    pub node_id: Option<String>,
    /// node name
    #[argh(option)]
    pub node_name: Option<String>,
    /// remote node ID
    #[argh(option)]
    pub remote_node_id: Option<String>,
    /// log level (DEBUG, INFO, NOTICE, WARNING, ERROR)
    #[argh(option, short = 'L')]
    pub log_level: Option<String>,
    /// log to the file configured in repmgr.conf
    #[argh(switch)]
    pub log_to_file: bool,
    /// suppress all log output apart from errors
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// don't display detail, hints and other non-critical output
    #[argh(switch, short = 't')]
    pub terse: bool,
    /// display additional log output
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// output in CSV mode
    #[argh(switch)]
    pub csv: bool,
    /// output in Nagios format
    #[argh(switch)]
    pub nagios: bool,
    /// output as one JSON document
    #[argh(switch)]
    pub json: bool,
    /// output as --name=value pairs (internal use)
    #[argh(switch)]
    pub optformat: bool,
    /// display less detail
    #[argh(switch)]
    pub compact: bool,
    /// display more detail
    #[argh(switch)]
    pub detail: bool,
    /// print version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// print version number and exit
    #[argh(switch)]
    pub version_number: bool,
    /// dump the parsed configuration
    #[argh(switch)]
    pub dump_config: bool,
    /// path of the configuration file on the remote node
    #[argh(option, short = 'C')]
    pub remote_config_file: Option<String>,
    // standby clone
    /// copy configuration files located outside the data directory
    #[argh(option)]
    pub copy_external_config_files: Option<String>,
    /// force fast checkpoint
    #[argh(switch, short = 'c')]
    pub fast_checkpoint: bool,
    /// don't connect to the upstream node
    #[argh(switch)]
    pub no_upstream_connection: bool,
    /// set recovery_min_apply_delay
    #[argh(option)]
    pub recovery_min_apply_delay: Option<String>,
    /// only write the replication configuration
    #[argh(switch)]
    pub replication_conf_only: bool,
    /// user for the replication connection
    #[argh(option)]
    pub replication_user: Option<String>,
    /// primary_conninfo to write
    #[argh(option)]
    pub upstream_conninfo: Option<String>,
    /// ID of the upstream node
    #[argh(option)]
    pub upstream_node_id: Option<String>,
    /// don't clone from Barman
    #[argh(switch)]
    pub without_barman: bool,
    /// verify the cloned backup with pg_verifybackup
    #[argh(switch)]
    pub verify_backup: bool,
    /// clone with rsync instead of pg_basebackup (repmgr 3's option)
    #[argh(switch, short = 'r')]
    pub rsync_only: bool,
    // standby register
    /// wait N seconds for the standby to start
    #[argh(option)]
    pub wait_start: Option<String>,
    /// wait for the node record to be synchronised (optionally N seconds)
    #[argh(option)]
    pub wait_sync: Option<String>,
    // standby switchover / promote
    /// promote even if the standby is behind
    #[argh(switch)]
    pub always_promote: bool,
    /// use pg_rewind (optionally at the given path)
    #[argh(option)]
    pub force_rewind: Option<String>,
    /// have other standbys follow the new primary
    #[argh(switch)]
    pub siblings_follow: bool,
    /// don't pause repmgrd during switchover
    #[argh(switch)]
    pub repmgrd_no_pause: bool,
    /// unpause repmgrd even if paused before switchover
    #[argh(switch)]
    pub repmgrd_force_unpause: bool,
    // node status / check
    /// check whether the node was shut down cleanly
    #[argh(switch)]
    pub is_shutdown_cleanly: bool,
    /// check WAL files waiting to be archived
    #[argh(switch)]
    pub archive_ready: bool,
    /// check downstream nodes are attached
    #[argh(switch)]
    pub downstream: bool,
    /// check the node is attached to its upstream
    #[argh(switch)]
    pub upstream: bool,
    /// check replication lag
    #[argh(switch)]
    pub replication_lag: bool,
    /// check the node has the expected role
    #[argh(switch)]
    pub role: bool,
    /// check for inactive replication slots
    #[argh(switch)]
    pub slots: bool,
    /// check for missing replication slots
    #[argh(switch)]
    pub missing_slots: bool,
    /// check the node has a password file
    #[argh(switch)]
    pub has_passfile: bool,
    /// check a replication connection can be made
    #[argh(switch)]
    pub replication_connection: bool,
    /// check the configured data directory
    #[argh(switch)]
    pub data_directory_config: bool,
    /// check the owner of the replication configuration file
    #[argh(switch)]
    pub replication_config_owner: bool,
    /// check a database connection can be made
    #[argh(switch)]
    pub db_connection: bool,
    /// check repmgrd is running
    #[argh(switch)]
    pub repmgrd: bool,
    // node rejoin
    /// configuration files to preserve during pg_rewind
    #[argh(option)]
    pub config_files: Option<String>,
    /// directory to temporarily store configuration files
    #[argh(option)]
    pub config_archive_dir: Option<String>,
    // node service
    /// action to perform (start, stop, restart, reload, promote)
    #[argh(option)]
    pub action: Option<String>,
    /// only check the service action
    #[argh(switch)]
    pub check: bool,
    /// list the commands for each action
    #[argh(switch)]
    pub list_actions: bool,
    /// issue a CHECKPOINT before stopping
    #[argh(switch)]
    pub checkpoint: bool,
    // node control (undocumented in repmgr)
    /// disable the WAL receiver
    #[argh(switch)]
    pub disable_wal_receiver: bool,
    /// enable the WAL receiver
    #[argh(switch)]
    pub enable_wal_receiver: bool,
    // cluster event / cleanup
    /// show all events
    #[argh(switch)]
    pub all: bool,
    /// filter on an event type
    #[argh(option)]
    pub event: Option<String>,
    /// maximum number of events to display
    #[argh(option)]
    pub limit: Option<String>,
    /// retain N days of monitoring history
    #[argh(option, short = 'k')]
    pub keep_history: Option<String>,
    /// deprecated switchover mode (ignored)
    #[argh(option, short = 'm')]
    pub mode: Option<String>,
    /// action words, e.g. `standby clone [HOST]`
    #[argh(positional, greedy)]
    pub words: Vec<String>,
}

/// The option table for the pre-pass; `table_matches_struct` keeps it honest.
pub const OPTIONS: &[OptSpec] = &[
    opt(Some('f'), "config-file", Arg::Req),
    opt(Some('F'), "force", Arg::No),
    opt(Some('b'), "pg-bindir", Arg::Req),
    opt(None, "dry-run", Arg::No),
    opt(Some('w'), "wait", Arg::Opt("")),
    opt(Some('W'), "no-wait", Arg::No),
    opt(Some('d'), "dbname", Arg::Req),
    opt(Some('h'), "host", Arg::Req),
    opt(Some('p'), "port", Arg::Req),
    opt(Some('U'), "username", Arg::Req),
    opt(Some('S'), "superuser", Arg::Req),
    opt(Some('R'), "remote-user", Arg::Req),
    opt(Some('D'), "pgdata", Arg::Req),
    opt(None, "node-id", Arg::Req),
    opt(None, "node-name", Arg::Req),
    opt(None, "remote-node-id", Arg::Req),
    opt(Some('L'), "log-level", Arg::Req),
    opt(None, "log-to-file", Arg::No),
    opt(Some('q'), "quiet", Arg::No),
    opt(Some('t'), "terse", Arg::No),
    opt(Some('v'), "verbose", Arg::No),
    opt(None, "csv", Arg::No),
    opt(None, "nagios", Arg::No),
    opt(None, "json", Arg::No),
    opt(None, "optformat", Arg::No),
    opt(None, "compact", Arg::No),
    opt(None, "detail", Arg::No),
    opt(Some('V'), "version", Arg::No),
    opt(None, "version-number", Arg::No),
    opt(None, "dump-config", Arg::No),
    opt(Some('C'), "remote-config-file", Arg::Req),
    opt(None, "copy-external-config-files", Arg::Opt("samepath")),
    opt(Some('c'), "fast-checkpoint", Arg::No),
    opt(None, "no-upstream-connection", Arg::No),
    opt(None, "recovery-min-apply-delay", Arg::Req),
    opt(None, "replication-conf-only", Arg::No),
    opt(None, "replication-user", Arg::Req),
    opt(None, "upstream-conninfo", Arg::Req),
    opt(None, "upstream-node-id", Arg::Req),
    opt(None, "without-barman", Arg::No),
    opt(None, "verify-backup", Arg::No),
    opt(Some('r'), "rsync-only", Arg::No),
    opt(None, "wait-start", Arg::Req),
    opt(None, "wait-sync", Arg::Opt("")),
    opt(None, "always-promote", Arg::No),
    opt(None, "force-rewind", Arg::Opt("")),
    opt(None, "siblings-follow", Arg::No),
    opt(None, "repmgrd-no-pause", Arg::No),
    opt(None, "repmgrd-force-unpause", Arg::No),
    opt(None, "is-shutdown-cleanly", Arg::No),
    opt(None, "archive-ready", Arg::No),
    opt(None, "downstream", Arg::No),
    opt(None, "upstream", Arg::No),
    opt(None, "replication-lag", Arg::No),
    opt(None, "role", Arg::No),
    opt(None, "slots", Arg::No),
    opt(None, "missing-slots", Arg::No),
    opt(None, "has-passfile", Arg::No),
    opt(None, "replication-connection", Arg::No),
    opt(None, "data-directory-config", Arg::No),
    opt(None, "replication-config-owner", Arg::No),
    opt(None, "db-connection", Arg::No),
    opt(None, "repmgrd", Arg::No),
    opt(None, "config-files", Arg::Req),
    opt(None, "config-archive-dir", Arg::Req),
    opt(None, "action", Arg::Req),
    opt(None, "check", Arg::No),
    opt(None, "list-actions", Arg::No),
    opt(None, "checkpoint", Arg::No),
    opt(None, "disable-wal-receiver", Arg::No),
    opt(None, "enable-wal-receiver", Arg::No),
    opt(None, "all", Arg::No),
    opt(None, "event", Arg::Req),
    opt(None, "limit", Arg::Req),
    opt(Some('k'), "keep-history", Arg::Req),
    opt(Some('m'), "mode", Arg::Req),
];

/// Long spellings repmgr accepts besides the table's names.
const LONG_ALIASES: &[(&str, &str)] = &[
    ("recovery-conf-only", "replication-conf-only"),
    ("details", "detail"),
    ("data-dir", "pgdata"),
    ("dest-dir", "pgdata"),
];

pub(super) fn apply_long_alias(a: &str) -> String {
    let Some(body) = a.strip_prefix("--") else {
        return a.to_string();
    };
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    match LONG_ALIASES.iter().find(|(alias, _)| *alias == name) {
        Some((_, real)) => match inline {
            Some(v) => format!("--{real}={v}"),
            None => format!("--{real}"),
        },
        None => a.to_string(),
    }
}

/// Whether `-t/--terse` was given, read without a full parse, so that even
/// a usage error is reported tersely.
pub fn wants_terse(args: &[String]) -> bool {
    for a in args {
        if a == "--" {
            break;
        }
        if a == "--terse" {
            return true;
        }
        if let Some(bundle) = a.strip_prefix('-').filter(|b| !b.starts_with('-')) {
            for c in bundle.chars() {
                if c == 't' {
                    return true;
                }
                match OPTIONS.iter().find(|o| o.short == Some(c)) {
                    Some(o) if o.arg == Arg::No => continue,
                    _ => break, // the rest of the word is this option's value
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_struct() {
        // Every table row must be accepted by argh, and every argh option
        // must have a table row (or the pre-pass would reject it).
        for spec in OPTIONS {
            let mut args = vec![format!("--{}", spec.long)];
            if spec.arg != Arg::No {
                args.push("1".into());
            }
            let strs: Vec<&str> = args.iter().map(String::as_str).collect();
            assert!(
                Opts::from_args(&["repmgr"], &strs).is_ok(),
                "argh rejects --{}",
                spec.long
            );
        }
        let help = Opts::from_args(&["repmgr"], &["--argh-help"])
            .unwrap_err()
            .output;
        let mut seen = 0;
        for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
            if let Some(pos) = line.find("--") {
                let name: String = line[pos + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if name.is_empty() || name == "argh-help" {
                    continue;
                }
                assert!(
                    OPTIONS.iter().any(|o| o.long == name),
                    "--{name} missing from OPTIONS"
                );
                seen += 1;
            }
        }
        assert_eq!(
            seen,
            OPTIONS.len(),
            "argh help lists a different option count"
        );
    }

    #[test]
    fn short_options_agree_with_struct() {
        for spec in OPTIONS.iter().filter(|o| o.short.is_some()) {
            let c = spec.short.unwrap();
            let mut args = vec![format!("-{c}")];
            if spec.arg != Arg::No {
                args.push("1".into());
            }
            let strs: Vec<&str> = args.iter().map(String::as_str).collect();
            assert!(
                Opts::from_args(&["repmgr"], &strs).is_ok(),
                "argh rejects -{c}"
            );
        }
    }

    #[test]
    fn terse_detected_before_parsing() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(wants_terse(&v("-t frob")));
        assert!(wants_terse(&v("-vt frob")));
        assert!(wants_terse(&v("--terse")));
        assert!(!wants_terse(&v("-Lt frob")));
        assert!(!wants_terse(&v("-hterse x")));
    }
}
