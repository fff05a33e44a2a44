//! repmgr's command grammar: `repmgr [OPTIONS] FAMILY ACTION [ARG]`.
//!
//! One flat option set, as repmgr's own `getopt_long` table: every option is
//! accepted before, between and after the action words (the pre-pass in
//! `getopt.rs` makes that possible), argh does the typed conversion, and the
//! words are resolved to an [`Action`].

pub mod getopt;
pub mod help;

use argh::FromArgs;

use crate::error::{Error, ExitCode, Result};
use getopt::{opt, Arg, OptSpec};

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

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PrimaryRegister,
    PrimaryUnregister,
    StandbyClone,
    StandbyRegister,
    StandbyUnregister,
    StandbyPromote,
    StandbyFollow,
    StandbySwitchover,
    WitnessRegister,
    WitnessUnregister,
    NodeStatus,
    NodeCheck,
    NodeRejoin,
    NodeService,
    NodeControl,
    ClusterShow,
    ClusterEvent,
    ClusterMatrix,
    ClusterCrosscheck,
    ClusterCleanup,
    ServiceStatus,
    ServicePause,
    ServiceUnpause,
    DaemonStart,
    DaemonStop,
}

impl Action {
    /// `family action` as repmgr spells it, for messages and help.
    pub fn name(self) -> &'static str {
        use Action::*;
        match self {
            PrimaryRegister => "primary register",
            PrimaryUnregister => "primary unregister",
            StandbyClone => "standby clone",
            StandbyRegister => "standby register",
            StandbyUnregister => "standby unregister",
            StandbyPromote => "standby promote",
            StandbyFollow => "standby follow",
            StandbySwitchover => "standby switchover",
            WitnessRegister => "witness register",
            WitnessUnregister => "witness unregister",
            NodeStatus => "node status",
            NodeCheck => "node check",
            NodeRejoin => "node rejoin",
            NodeService => "node service",
            NodeControl => "node control",
            ClusterShow => "cluster show",
            ClusterEvent => "cluster event",
            ClusterMatrix => "cluster matrix",
            ClusterCrosscheck => "cluster crosscheck",
            ClusterCleanup => "cluster cleanup",
            ServiceStatus => "service status",
            ServicePause => "service pause",
            ServiceUnpause => "service unpause",
            DaemonStart => "daemon start",
            DaemonStop => "daemon stop",
        }
    }

    /// Actions that take an optional positional argument (a host name).
    fn takes_host_argument(self) -> bool {
        matches!(self, Action::StandbyClone | Action::StandbyFollow)
    }
}

/// Families and their actions, for resolving words and for hints.
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("primary", &["register", "unregister", "check", "status"]),
    (
        "standby",
        &[
            "clone",
            "register",
            "unregister",
            "promote",
            "follow",
            "switchover",
            "check",
            "status",
        ],
    ),
    ("witness", &["register", "unregister"]),
    ("node", &["status", "check", "rejoin", "service", "control"]),
    (
        "cluster",
        &["show", "event", "matrix", "crosscheck", "cleanup"],
    ),
    ("service", &["status", "pause", "unpause"]),
    ("daemon", &["start", "stop", "status", "pause", "unpause"]),
];

/// Resolves the action words (case-insensitive, with repmgr's aliases).
pub fn resolve_action(family: &str, action: &str) -> Option<Action> {
    use Action::*;
    let f = family.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let f = if f == "master" {
        "primary".to_string()
    } else {
        f
    };
    Some(match (f.as_str(), a.as_str()) {
        ("primary", "register") => PrimaryRegister,
        ("primary", "unregister") => PrimaryUnregister,
        ("primary" | "standby", "check") => NodeCheck,
        ("primary" | "standby", "status") => NodeStatus,
        ("standby", "clone") => StandbyClone,
        ("standby", "register") => StandbyRegister,
        ("standby", "unregister") => StandbyUnregister,
        ("standby", "promote") => StandbyPromote,
        ("standby", "follow") => StandbyFollow,
        ("standby", "switchover") => StandbySwitchover,
        ("witness", "register") => WitnessRegister,
        ("witness", "unregister") => WitnessUnregister,
        ("node", "status") => NodeStatus,
        ("node", "check") => NodeCheck,
        ("node", "rejoin") => NodeRejoin,
        ("node", "service") => NodeService,
        ("node", "control") => NodeControl,
        ("cluster", "show") => ClusterShow,
        ("cluster", "event" | "events") => ClusterEvent,
        ("cluster", "matrix") => ClusterMatrix,
        ("cluster", "crosscheck") => ClusterCrosscheck,
        ("cluster", "cleanup") => ClusterCleanup,
        ("service" | "daemon", "status") => ServiceStatus,
        ("service" | "daemon", "pause") => ServicePause,
        ("service" | "daemon", "unpause") => ServiceUnpause,
        ("daemon", "start") => DaemonStart,
        ("daemon", "stop") => DaemonStop,
        _ => return None,
    })
}

/// What `main` should do.
#[derive(Debug)]
pub enum Command {
    Help(Option<HelpTopic>),
    Version,
    VersionNumber,
    Run(Action, Box<Opts>, Option<String>),
}

/// Help for everything, a family, or one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpTopic {
    Family(String),
    Action(Action),
}

/// A one-line usage error: exit 1 with a hint, as repmgr.
fn usage_error(msg: String) -> Error {
    Error::new(ExitCode::BadConfig, msg).hint("Try \"repmgr --help\" for more information.")
}

/// Parses repmgr's command line (without argv[0]).
pub fn parse(args: &[String]) -> Result<Command> {
    let args: Vec<String> = args.iter().map(|a| apply_long_alias(a)).collect();
    let norm = getopt::prepass(OPTIONS, &args).map_err(usage_error)?;
    let strs: Vec<&str> = norm.args.iter().map(String::as_str).collect();
    let opts = Opts::from_args(&["repmgr"], &strs).map_err(|e| {
        let first = e
            .output
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .to_string();
        usage_error(first)
    })?;

    if opts.version {
        return Ok(Command::Version);
    }
    if opts.version_number {
        return Ok(Command::VersionNumber);
    }

    let words = &norm.words;
    if norm.help
        || words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("help"))
    {
        let rest: &[String] = if norm.help { words } else { &words[1..] };
        return Ok(Command::Help(help_topic(rest)));
    }

    match words.as_slice() {
        [] => Err(usage_error("no command provided".into())),
        [family] => Err(missing_action(family)),
        [family, action, rest @ ..] => {
            let act =
                resolve_action(family, action).ok_or_else(|| unknown_command(family, action))?;
            let max_extra = usize::from(act.takes_host_argument());
            if rest.len() > max_extra {
                return Err(usage_error(format!(
                    "too many command-line arguments (first extra is \"{}\")",
                    rest[max_extra]
                )));
            }
            Ok(Command::Run(act, Box::new(opts), rest.first().cloned()))
        }
    }
}

fn apply_long_alias(a: &str) -> String {
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

fn family_actions(family: &str) -> Option<&'static [&'static str]> {
    let f = family.to_ascii_lowercase();
    let f = if f == "master" { "primary" } else { f.as_str() };
    FAMILIES.iter().find(|(n, _)| *n == f).map(|(_, a)| *a)
}

fn missing_action(family: &str) -> Error {
    match family_actions(family) {
        Some(actions) => Error::new(
            ExitCode::BadConfig,
            format!("no action provided for \"{family}\""),
        )
        .hint(format!(
            "valid actions are: {}; try \"repmgr {family} --help\"",
            actions.join(", ")
        )),
        None => unknown_command(family, ""),
    }
}

fn unknown_command(family: &str, action: &str) -> Error {
    let cmd = format!("{family} {action}").trim().to_string();
    let hint = match family_actions(family) {
        Some(actions) => format!("valid actions for \"{family}\" are: {}", actions.join(", ")),
        None => format!(
            "valid command families are: {}; try \"repmgr --help\"",
            FAMILIES
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Error::new(ExitCode::BadConfig, format!("unknown command \"{cmd}\"")).hint(hint)
}

fn help_topic(words: &[String]) -> Option<HelpTopic> {
    match words {
        [] => None,
        [family] => Some(HelpTopic::Family(family.to_ascii_lowercase())),
        [family, action, ..] => match resolve_action(family, action) {
            Some(a) => Some(HelpTopic::Action(a)),
            None => Some(HelpTopic::Family(family.to_ascii_lowercase())),
        },
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

/// Parses a numeric option value, naming the option on error.
pub fn parse_int_option(name: &str, value: &Option<String>) -> Result<Option<i32>> {
    match value {
        None => Ok(None),
        Some(v) => v.trim().parse::<i32>().map(Some).map_err(|_| {
            usage_error(format!(
                "invalid value provided for option \"--{name}\": \"{v}\" (expected an integer)"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v)
    }

    fn run(s: &str) -> (Action, Opts, Option<String>) {
        match parse_str(s).unwrap() {
            Command::Run(a, o, h) => (a, *o, h),
            other => panic!("{s}: expected Run, got {other:?}"),
        }
    }

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
    fn master_is_primary_and_options_anywhere() {
        let (a, o, _) = run("--host=node1 -p5432 -vF master register");
        assert_eq!(a, Action::PrimaryRegister);
        assert_eq!(o.host.as_deref(), Some("node1"));
        assert_eq!(o.port.as_deref(), Some("5432"));
        assert!(o.verbose && o.force);
        let (a, o, _) = run("primary -f /x.conf register --dry-run");
        assert_eq!(a, Action::PrimaryRegister);
        assert_eq!(o.config_file.as_deref(), Some("/x.conf"));
        assert!(o.dry_run);
    }

    #[test]
    fn clone_takes_a_host_word() {
        let (a, o, host) = run("-D /data standby clone node1 --fast-checkpoint");
        assert_eq!(a, Action::StandbyClone);
        assert_eq!(host.as_deref(), Some("node1"));
        assert_eq!(o.pgdata.as_deref(), Some("/data"));
        assert!(o.fast_checkpoint);
    }

    #[test]
    fn case_insensitive_and_aliases() {
        assert_eq!(run("CLUSTER Show").0, Action::ClusterShow);
        assert_eq!(run("cluster events").0, Action::ClusterEvent);
        assert_eq!(run("primary check").0, Action::NodeCheck);
        assert_eq!(run("daemon status").0, Action::ServiceStatus);
        let (_, o, _) = run("standby clone --recovery-conf-only");
        assert!(o.replication_conf_only);
    }

    #[test]
    fn last_occurrence_wins() {
        let (_, o, _) = run("-L DEBUG cluster show --log-level=ERROR");
        assert_eq!(o.log_level.as_deref(), Some("ERROR"));
    }

    #[test]
    fn optional_values() {
        let (_, o, _) = run("standby register --wait-sync");
        assert_eq!(o.wait_sync.as_deref(), Some(""));
        let (_, o, _) = run("standby register --wait-sync=15");
        assert_eq!(o.wait_sync.as_deref(), Some("15"));
        let (_, o, _) = run("standby clone --copy-external-config-files");
        assert_eq!(o.copy_external_config_files.as_deref(), Some("samepath"));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse_str("--help").unwrap(), Command::Help(None)));
        assert!(matches!(
            parse_str("standby clone --help").unwrap(),
            Command::Help(Some(HelpTopic::Action(Action::StandbyClone)))
        ));
        assert!(matches!(
            parse_str("standby -?").unwrap(),
            Command::Help(Some(HelpTopic::Family(_)))
        ));
        assert!(matches!(parse_str("-V").unwrap(), Command::Version));
        assert!(matches!(
            parse_str("--version-number").unwrap(),
            Command::VersionNumber
        ));
    }

    #[test]
    fn usage_errors_exit_1_with_hint() {
        for bad in [
            "",
            "primary",
            "primary frobnicate",
            "frob nicate",
            "cluster show extra",
            "standby clone a b",
            "--bogus cluster show",
            "-x cluster show",
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.code, ExitCode::BadConfig, "{bad}");
            assert!(e.hint.is_some(), "{bad}: no hint");
            assert_eq!(e.messages.len(), 1, "{bad}");
        }
        let e = parse_str("cluster show extra").unwrap_err();
        assert!(e.messages[0].contains("first extra is \"extra\""));
        let e = parse_str("primary frobnicate").unwrap_err();
        assert!(e.messages[0].contains("unknown command \"primary frobnicate\""));
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

    #[test]
    fn int_options() {
        assert_eq!(
            parse_int_option("node-id", &Some("3".into())).unwrap(),
            Some(3)
        );
        assert!(parse_int_option("node-id", &Some("x".into())).is_err());
    }
}
