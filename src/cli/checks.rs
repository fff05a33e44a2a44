//! repmgr's checks of a command line beyond getopt, with its wording:
//! option values first ([`option_values`], repmgr's `repmgr_atoi` and the
//! like, run while the options are read), then, once repmgr.conf is read,
//! what the action needs, which options conflict and which the action
//! ignores ([`parameters`], repmgr's `check_cli_parameters`). Errors end
//! the command (exit 1); warnings are printed and it goes on.

use super::{Action, Opts};
use crate::config::Config;
use crate::conninfo::looks_like_conninfo;

/// C's `strtol` as repmgr uses it: leading blanks, an optional sign, then
/// digits; what follows the digits is ignored ("3x" is 3). None when there
/// are no digits or the value does not fit.
pub fn strtol(value: &str) -> Option<i64> {
    let t = value.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().ok()?;
    Some(if neg { -n } else { n })
}

/// repmgr's `repmgr_atoi`: the value as an int of at least `min`, or the
/// message repmgr lists ("\"--limit\": invalid value (provided: \"x\")").
/// An empty value is 0 without complaint, as there.
pub fn atoi(value: &str, item: &str, min: i32) -> Result<i32, String> {
    if value.is_empty() {
        return Ok(0);
    }
    let Some(n) = strtol(value) else {
        return Err(format!("\"{item}\": invalid value (provided: \"{value}\")"));
    };
    if n > i64::from(i32::MAX) {
        return Err(format!(
            "\"{item}\": must be a positive signed 32 bit integer, i.e. 2147483647 or less (provided: \"{value}\")"
        ));
    }
    if n < i64::from(min) {
        return Err(format!(
            "\"{item}\": must be {min} or greater (provided: \"{value}\")"
        ));
    }
    Ok(n as i32)
}

/// repmgr's node names fit in NAMEDATALEN (64) with the terminator.
const NODE_NAME_MAX: usize = 63;

/// The checks repmgr makes while reading the options; each bad value is
/// one message.
pub fn option_values(o: &Opts) -> Vec<String> {
    let mut errors = Vec::new();
    let ints: [(&Option<String>, &str, i32); 9] = [
        (&o.wait, "--wait", 0),
        (&o.port, "-p/--port", 1),
        (&o.node_id, "--node-id", 1),
        (&o.remote_node_id, "--remote-node-id", 1),
        (&o.upstream_node_id, "--upstream-node-id", 1),
        (&o.wait_start, "--wait-start", 0),
        (&o.wait_sync, "--wait-sync", 0),
        (&o.limit, "--limit", 1),
        (&o.keep_history, "-k/--keep-history", 0),
    ];
    for (value, item, min) in ints {
        if let Some(Err(e)) = value.as_deref().map(|v| atoi(v, item, min)) {
            errors.push(e);
        }
    }
    if o.node_name
        .as_ref()
        .is_some_and(|n| n.len() > NODE_NAME_MAX)
    {
        errors.push(format!(
            "value for \"--node-name\" must contain fewer than {} characters",
            NODE_NAME_MAX + 1
        ));
    }
    if let Some(v) = &o.copy_external_config_files {
        if !matches!(v.as_str(), "samepath" | "pgdata" | "data_directory") {
            errors.push(
                "value provided for \"--copy-external-config-files\" must be \"samepath\" or \"pgdata\""
                    .into(),
            );
        }
    }
    if let Some(l) = &o.log_level {
        if crate::logging::RepmgrLevel::parse(l).is_none() {
            errors.push(format!("invalid log level \"{l}\" provided"));
        }
    }
    if let Some(d) = o.dbname.as_deref().filter(|d| looks_like_conninfo(d)) {
        if let Err(e) = crate::conninfo::ConnInfo::parse(d) {
            errors.push(format!("error parsing conninfo:\n{e}"));
        }
    }
    errors
}

/// What [`parameters`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// repmgr's `check_cli_parameters` for `action`: `cfg` is repmgr.conf
/// when one was read, `arg` the HOST word. `--json`, which repmgr lacks,
/// is checked here too.
pub fn parameters(action: Action, o: &Opts, cfg: Option<&Config>, arg: Option<&str>) -> Checked {
    use Action::*;
    let mut c = Checked::default();
    let name = action.name().to_ascii_uppercase();
    let cfg_value = |f: fn(&Config) -> &str| cfg.map(f).unwrap_or("");
    let connection_given =
        o.host.is_some() || o.port.is_some() || o.username.is_some() || o.dbname.is_some();
    // Unlike repmgr 5, the HOST word alone is enough to clone from (the
    // seed's `standby clone node1`).
    let clone_source_given = connection_given || arg.is_some();
    // This repmgr's --replication-conf-only needs no source with
    // --no-upstream-connection (--upstream-conninfo says what to write).
    let no_source_needed = o.replication_conf_only && o.no_upstream_connection;
    let host_given = arg.is_some()
        || o.host.is_some()
        || o.dbname.as_deref().is_some_and(|d| {
            looks_like_conninfo(d)
                && crate::conninfo::ConnInfo::parse(d)
                    .is_ok_and(|ci| ci.get("host").is_some() || ci.get("hostaddr").is_some())
        });
    let barman = !cfg_value(|c| &c.barman_host).is_empty() && !o.without_barman;
    if o.remote_config_file.is_some() {
        // (repmgr adds this one while reading the options)
        c.warn("--remote-config-file is no longer required");
    }

    match action {
        StandbyClone if barman => {
            if o.copy_external_config_files.is_some() {
                c.warn("--copy-external-config-files ineffective in Barman mode");
            }
            if o.fast_checkpoint {
                c.warn("-c/--fast-checkpoint has no effect in Barman mode");
            }
        }
        StandbyClone => {
            if !host_given && !no_source_needed {
                c.error(format!("host name for the source node must be provided with -h/--host when executing {name}"));
            }
            if !clone_source_given && !no_source_needed {
                c.error(format!("database connection parameters for the source node must be provided when executing {name}"));
            }
            if o.pgdata.is_some() && !cfg_value(|c| &c.data_directory).is_empty() {
                c.warn("-D/--pgdata will be ignored if a repmgr configuration file is provided");
            }
            if o.upstream_conninfo.is_some() && o.replication_user.is_some() {
                c.warn("--replication-user ineffective when specifying --upstream-conninfo");
            }
            if o.no_upstream_connection && !o.replication_conf_only {
                c.warn("--no-upstream-connection only effective in Barman mode");
            }
        }
        WitnessRegister if !host_given => c.error(format!(
            "host name for the source node must be provided with -h/--host when executing {name}"
        )),
        NodeStatus => {
            if o.node_id.is_some() {
                c.warn("--node-id will be ignored; \"repmgr node status\" can only be executed on the local node");
            }
            if o.node_name.is_some() {
                c.warn("--node-name will be ignored; \"repmgr node status\" can only be executed on the local node");
            }
        }
        NodeRejoin if !connection_given => c.error(
            "database connection parameters for an available node must be provided when executing NODE REJOIN",
        ),
        _ => {}
    }
    if action == StandbyClone
        && !cfg_value(|c| &c.config_directory).is_empty()
        && o.copy_external_config_files.is_none()
    {
        c.warn("\"config_directory\" set in repmgr.conf, but --copy-external-config-files not provided");
    }
    ignored_options(action, o, connection_given, &name, &mut c);
    conflicts(action, o, &mut c);
    c
}

impl Checked {
    fn error(&mut self, m: impl Into<String>) {
        self.errors.push(m.into());
    }
    fn warn(&mut self, m: impl Into<String>) {
        self.warnings.push(m.into());
    }
}

/// Warnings about options an action ignores, in repmgr's words ("{}" is
/// the action's name).
struct Ignored<'a> {
    action: Action,
    name: &'a str,
    c: &'a mut Checked,
}

impl Ignored<'_> {
    fn unless(&mut self, given: bool, allowed: &[Action], msg: &str) {
        if given && !allowed.contains(&self.action) {
            self.c.warn(msg.replace("{}", self.name));
        }
    }
}

/// Options given to an action that does not use them: repmgr warns.
fn ignored_options(action: Action, o: &Opts, connection_given: bool, name: &str, c: &mut Checked) {
    use Action::*;
    let mut w = Ignored { action, name, c };
    w.unless(
        connection_given,
        &[
            StandbyClone,
            StandbyFollow,
            StandbyRegister,
            WitnessRegister,
            WitnessUnregister,
            ClusterShow,
            ClusterMatrix,
            ClusterCrosscheck,
            NodeRejoin,
        ],
        "database connection parameters not required when executing {}",
    );
    w.unless(
        o.pgdata.is_some(),
        &[StandbyClone, StandbyFollow, NodeService],
        "-D/--pgdata not required when executing {}",
    );
    w.unless(
        o.node_id.is_some(),
        &[
            PrimaryUnregister,
            StandbyUnregister,
            WitnessUnregister,
            ClusterCleanup,
            ClusterEvent,
            ClusterMatrix,
            ClusterCrosscheck,
        ],
        "--node-id not required when executing {}",
    );
    if o.node_name.is_some() {
        if matches!(action, StandbyUnregister | ClusterEvent) {
            if o.node_id.is_some() {
                w.c.warn("--node-id provided, ignoring --node-name");
            }
        } else {
            w.c.warn(format!("--node-name not required when executing {name}"));
        }
    }
    w.unless(
        o.upstream_node_id.is_some(),
        &[StandbyClone, StandbyRegister, StandbyFollow],
        "--upstream-node-id will be ignored when executing {}",
    );
    if o.replication_user.is_some() {
        match action {
            PrimaryRegister | StandbyRegister | StandbyClone => {}
            StandbyFollow => {
                w.c.warn(format!("--replication-user ignored when executing {name}"))
            }
            _ => w.c.warn(format!(
                "--replication-user not required when executing {name}"
            )),
        }
    }
    w.unless(
        o.superuser.is_some(),
        &[StandbyClone, StandbySwitchover, NodeCheck, NodeService],
        "--superuser ignored when executing {}",
    );
    w.unless(
        o.replication_conf_only,
        &[StandbyClone],
        "--create-recovery-conf will be ignored when executing {}",
    );
    w.unless(
        o.event.is_some(),
        &[ClusterEvent],
        "--event not required when executing {}",
    );
    w.unless(
        o.limit.is_some(),
        &[ClusterEvent],
        "--limit not required when executing {}",
    );
    w.unless(
        o.all && o.limit.is_none(),
        &[ClusterEvent],
        "--all not required when executing {}",
    );
    if o.all && o.limit.is_some() && action == ClusterEvent {
        w.c.warn("--limit provided, ignoring --all");
    }
    if !(o.wait.is_some() && o.no_wait) {
        w.unless(
            o.wait.is_some(),
            &[DaemonStart, DaemonStop, StandbyFollow],
            "--wait will be ignored when executing {}",
        );
        w.unless(
            o.wait.is_none() && o.no_wait,
            &[DaemonStart, DaemonStop, NodeRejoin],
            "--no-wait will be ignored when executing {}",
        );
    }
    w.unless(
        o.action.is_some(),
        &[NodeService],
        "--action will be ignored when executing {}",
    );
    w.unless(
        o.is_shutdown_cleanly,
        &[NodeStatus],
        "--is-shutdown-cleanly will be ignored when executing {}",
    );
    w.unless(
        o.always_promote,
        &[StandbySwitchover],
        "--always-promote will be ignored when executing {}",
    );
    w.unless(
        o.force_rewind.is_some(),
        &[StandbySwitchover, NodeRejoin],
        "--force-rewind will be ignored when executing {}",
    );
    w.unless(
        o.repmgrd_no_pause,
        &[StandbySwitchover],
        "--repmgrd-no-pause will be ignored when executing {}",
    );
    w.unless(
        o.repmgrd_force_unpause,
        &[StandbySwitchover],
        "--repmgrd-force-unpause will be ignored when executing {}",
    );
    w.unless(
        o.config_files.is_some(),
        &[NodeRejoin],
        "--config-files will be ignored when executing {}",
    );
    w.unless(
        o.dry_run,
        &[
            PrimaryRegister,
            PrimaryUnregister,
            StandbyClone,
            StandbyRegister,
            StandbyFollow,
            StandbySwitchover,
            StandbyPromote,
            WitnessRegister,
            WitnessUnregister,
            NodeRejoin,
            NodeService,
            ServicePause,
            ServiceUnpause,
            ServiceStatus,
            DaemonStart,
            DaemonStop,
        ],
        "--dry-run is not effective when executing {}",
    );
    w.unless(
        o.compact,
        &[ClusterShow, ClusterEvent, ServiceStatus],
        "--compact is not effective when executing {}",
    );
    w.unless(
        o.detail,
        &[ServiceStatus],
        "--detail is not effective when executing {}",
    );
    // (repmgr's message has the four dashes)
    w.unless(
        o.siblings_follow,
        &[StandbyPromote, StandbySwitchover],
        "----siblings-follow is not effective when executing {}",
    );
    w.unless(
        o.disable_wal_receiver || o.enable_wal_receiver,
        &[NodeControl],
        "--disable-wal-receiver / --enable-wal-receiver not effective when executing {}",
    );
}

/// Options that cannot go together: errors.
fn conflicts(action: Action, o: &Opts, c: &mut Checked) {
    if o.wait.is_some() && o.no_wait {
        c.error("both --wait and --no-wait options provided");
    }
    if action == Action::StandbySwitchover && o.repmgrd_force_unpause && o.repmgrd_no_pause {
        c.error("--repmgrd-force-unpause and --repmgrd-no-pause cannot be used together");
    }
    if action == Action::NodeControl && o.disable_wal_receiver && o.enable_wal_receiver {
        c.error("provide either --disable-wal-receiver or --enable-wal-receiver");
    }
    if [o.csv, o.nagios, o.optformat]
        .iter()
        .filter(|on| **on)
        .count()
        > 1
    {
        c.error("only one of --csv, --nagios and --optformat can be used");
    }
    // --json, this repmgr's: one output format of five actions, so that
    // stdout is never anything but the JSON document asked for.
    if o.json {
        let other = [
            (o.csv, "--csv"),
            (o.nagios, "--nagios"),
            (o.optformat, "--optformat"),
        ];
        if let Some((_, other)) = other.iter().find(|(on, _)| *on) {
            c.error(format!("--json and {other} cannot be used together"));
        } else if !action.has_json() {
            c.error(format!(
                "--json is not available for \"repmgr {}\"",
                action.name()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(f: impl FnOnce(&mut Opts)) -> Opts {
        let mut o = Opts::default();
        f(&mut o);
        o
    }

    #[test]
    fn atoi_is_repmgrs() {
        assert_eq!(atoi("3", "--node-id", 1), Ok(3));
        assert_eq!(atoi("3x", "--node-id", 1), Ok(3));
        assert_eq!(atoi("", "--limit", 1), Ok(0));
        assert_eq!(
            atoi("abc", "--node-id", 1).unwrap_err(),
            "\"--node-id\": invalid value (provided: \"abc\")"
        );
        assert_eq!(
            atoi("0", "--limit", 1).unwrap_err(),
            "\"--limit\": must be 1 or greater (provided: \"0\")"
        );
        assert!(atoi("4294967296", "-p/--port", 1)
            .unwrap_err()
            .contains("2147483647 or less"));
    }

    #[test]
    fn bad_values_are_listed_together() {
        let o = opts(|o| {
            o.node_id = Some("abc".into());
            o.limit = Some("0".into());
            o.log_level = Some("LOUD".into());
            o.copy_external_config_files = Some("elsewhere".into());
        });
        let e = option_values(&o);
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(e[0], "\"--node-id\": invalid value (provided: \"abc\")");
        assert_eq!(e[3], "invalid log level \"LOUD\" provided");
    }

    #[test]
    fn action_needs_and_conflicts() {
        let rejoin = parameters(Action::NodeRejoin, &Opts::default(), None, None);
        assert_eq!(
            rejoin.errors,
            ["database connection parameters for an available node must be provided when executing NODE REJOIN"]
        );
        let two = opts(|o| {
            o.csv = true;
            o.nagios = true;
        });
        assert_eq!(
            parameters(Action::NodeCheck, &two, None, None).errors,
            ["only one of --csv, --nagios and --optformat can be used"]
        );
        let clone = parameters(Action::StandbyClone, &Opts::default(), None, None);
        assert_eq!(clone.errors.len(), 2, "{clone:?}");
        let seed = parameters(Action::StandbyClone, &Opts::default(), None, Some("node1"));
        assert!(seed.errors.is_empty(), "{seed:?}");
        let json = opts(|o| o.json = true);
        assert!(parameters(Action::ClusterShow, &json, None, None)
            .errors
            .is_empty());
        assert_eq!(
            parameters(Action::StandbyClone, &json, None, None)
                .errors
                .last()
                .unwrap(),
            "--json is not available for \"repmgr standby clone\""
        );
    }

    #[test]
    fn ignored_options_warn_in_repmgrs_words() {
        let o = opts(|o| {
            o.dry_run = true;
            o.compact = true;
            o.host = Some("x".into());
        });
        let w = parameters(Action::NodeCheck, &o, None, None).warnings;
        assert_eq!(
            w,
            [
                "database connection parameters not required when executing NODE CHECK",
                "--dry-run is not effective when executing NODE CHECK",
                "--compact is not effective when executing NODE CHECK",
            ]
        );
        let o = opts(|o| o.node_id = Some("2".into()));
        assert_eq!(
            parameters(Action::NodeStatus, &o, None, None).warnings,
            [
                "--node-id will be ignored; \"repmgr node status\" can only be executed on the local node",
                "--node-id not required when executing NODE STATUS"
            ]
        );
        assert!(parameters(Action::ClusterEvent, &o, None, None)
            .warnings
            .is_empty());
    }
}
