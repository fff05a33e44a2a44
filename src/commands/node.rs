//! `node status`, `node check` and `node service` (repmgr-action-node.c).
//!
//! Cron jobs, Nagios and `standby switchover` parse these outputs, so every
//! line, including repmgr's oddities (the stray ")" in the lag thresholds,
//! the blank line after `node status`, no "Upstream connection" row in the
//! CSV of a full check), is kept as repmgr prints it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::db::Session;

use super::{connect_node, parse_conninfo, Ctx, APP_NAME};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::{self, PgBin, ServiceAction};
use crate::process;

// ---------------------------------------------------------------------------
// node check

/// Nagios's states; a single check exits with the state's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "OK",
            CheckStatus::Warning => "WARNING",
            CheckStatus::Critical => "CRITICAL",
            CheckStatus::Unknown => "UNKNOWN",
        }
    }

    /// The process result of a single check: 0/1/2/3 as Nagios expects.
    /// (ExitCode's 1, 2 and 3 are numerically WARNING, CRITICAL, UNKNOWN.)
    fn exit(self) -> Result<()> {
        match self {
            CheckStatus::Ok => Ok(()),
            CheckStatus::Warning => Err(Error::silent(ExitCode::BadConfig)),
            CheckStatus::Critical => Err(Error::silent(ExitCode::BadRsync)),
            CheckStatus::Unknown => Err(Error::silent(ExitCode::BadPidfile)),
        }
    }
}

/// repmgr's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Text,
    Csv,
    Nagios,
    Optformat,
}

impl Mode {
    fn of(ctx: &Ctx) -> Mode {
        if ctx.opts.nagios {
            Mode::Nagios
        } else if ctx.opts.optformat {
            Mode::Optformat
        } else if ctx.opts.csv {
            Mode::Csv
        } else {
            Mode::Text
        }
    }
}

/// One check's result: the row of a full run, and the line a single check
/// prints (None when repmgr prints nothing in that mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub item: &'static str,
    pub status: CheckStatus,
    pub details: String,
    pub line: Option<String>,
}

impl Check {
    /// A check whose text line is "STATUS (details)" and whose Nagios and
    /// optformat lines are given.
    fn new(
        item: &'static str,
        status: CheckStatus,
        details: String,
        mode: Mode,
        nagios: impl FnOnce(&str) -> String,
        optformat: Option<String>,
    ) -> Check {
        let line = match mode {
            Mode::Text | Mode::Csv => Some(format!("{} ({details})", status.as_str())),
            Mode::Nagios => Some(nagios(&details)),
            Mode::Optformat => optformat,
        };
        Check {
            item,
            status,
            details,
            line,
        }
    }
}

/// The single checks, in the order repmgr tries them when several are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Single {
    ArchiveReady,
    Upstream,
    Downstream,
    ReplicationLag,
    Role,
    Slots,
    MissingSlots,
    DataDirectory,
    Repmgrd,
    ReplicationConfigOwner,
}

impl Single {
    fn chosen(ctx: &Ctx) -> Option<Single> {
        let o = &ctx.opts;
        [
            (o.archive_ready, Single::ArchiveReady),
            (o.upstream, Single::Upstream),
            (o.downstream, Single::Downstream),
            (o.replication_lag, Single::ReplicationLag),
            (o.role, Single::Role),
            (o.slots, Single::Slots),
            (o.missing_slots, Single::MissingSlots),
            (o.data_directory_config, Single::DataDirectory),
            (o.repmgrd, Single::Repmgrd),
            (o.replication_config_owner, Single::ReplicationConfigOwner),
        ]
        .into_iter()
        .find(|(on, _)| *on)
        .map(|(_, s)| s)
    }

    fn option(self) -> &'static str {
        match self {
            Single::ArchiveReady => "--archive-ready",
            Single::Upstream => "--upstream",
            Single::Downstream => "--downstream",
            Single::ReplicationLag => "--replication-lag",
            Single::Role => "--role",
            Single::Slots => "--slots",
            Single::MissingSlots => "--missing-slots",
            Single::DataDirectory => "--data-directory-config",
            Single::Repmgrd => "--repmgrd",
            Single::ReplicationConfigOwner => "--replication-config-owner",
        }
    }

    /// The Nagios service name of the check.
    fn nagios_name(self) -> &'static str {
        match self {
            Single::ArchiveReady => "REPMGR_ARCHIVE_READY",
            Single::Upstream => "REPMGR_UPSTREAM_SERVER",
            Single::Downstream => "REPMGR_DOWNSTREAM_SERVERS",
            Single::ReplicationLag => "REPMGR_REPLICATION_LAG",
            Single::Role => "REPMGR_SERVER_ROLE",
            Single::Slots => "REPMGR_INACTIVE_SLOTS",
            Single::MissingSlots => "REPMGR_MISSING_SLOTS",
            Single::DataDirectory => "REPMGR_DATA_DIRECTORY",
            Single::Repmgrd => "REPMGRD",
            Single::ReplicationConfigOwner => "REPMGR_REPLICATION_CONFIG_OWNER",
        }
    }
}

/// What the checks look at: the node's record and one snapshot of its state.
struct Env {
    node: NodeRecord,
    stats: NodeStats,
    downstream: Option<Vec<Downstream>>,
}

impl Env {
    fn downstream(&mut self, c: &mut Session) -> Result<&[Downstream]> {
        if self.downstream.is_none() {
            self.downstream = Some(db::checks::downstream(c, self.node.node_id)?);
        }
        Ok(self.downstream.as_deref().unwrap_or(&[]))
    }
}

pub fn check_role(node: &NodeRecord, in_recovery: bool, mode: Mode) -> Check {
    use CheckStatus::*;
    let (status, details) = match node.node_type {
        NodeType::Primary if in_recovery => (
            Critical,
            "node is registered as primary but running as standby",
        ),
        NodeType::Primary => (Ok, "node is primary"),
        NodeType::Standby if !in_recovery => (
            Critical,
            "node is registered as standby but running as primary",
        ),
        NodeType::Standby => (Ok, "node is standby"),
        NodeType::Witness if in_recovery => (
            Critical,
            "node is registered as witness but running as standby",
        ),
        NodeType::Witness => (Ok, "node is witness"),
        NodeType::Bdr => (Ok, ""),
    };
    Check::new(
        "Server role",
        status,
        details.to_string(),
        mode,
        |d| format!("REPMGR_SERVER_ROLE {}: {d}", status.as_str()),
        None,
    )
}

/// The role check, where a primary fenced by repmgrd (read-only: writes
/// are refused) is CRITICAL, plainly: monitoring must alert on it.
pub fn check_role_or_fenced(
    node: &NodeRecord,
    in_recovery: bool,
    fenced: bool,
    mode: Mode,
) -> Check {
    if !fenced || in_recovery {
        return check_role(node, in_recovery, mode);
    }
    let status = CheckStatus::Critical;
    Check::new(
        "Server role",
        status,
        "node is fenced: running as primary but read-only".to_string(),
        mode,
        |d| format!("REPMGR_SERVER_ROLE {}: {d}", status.as_str()),
        None,
    )
}

pub fn check_replication_lag(
    cfg: &Config,
    node: &NodeRecord,
    in_recovery: bool,
    lag: Option<i32>,
    mode: Mode,
) -> Check {
    use CheckStatus::*;
    let (warn, crit) = (cfg.replication_lag_warning, cfg.replication_lag_critical);
    let perf = |l: i32| format!("{l} seconds | lag={l};{warn};{crit}");
    let (status, details) = if !in_recovery {
        let d = match mode {
            Mode::Optformat => "--lag=0".to_string(),
            Mode::Nagios => perf(0),
            Mode::Text if node.node_type == NodeType::Witness => "N/A - node is witness".into(),
            Mode::Text => "N/A - node is primary".into(),
            Mode::Csv => String::new(),
        };
        (Ok, d)
    } else {
        match lag {
            Some(l) if l >= crit => (
                Critical,
                match mode {
                    Mode::Optformat => format!("--lag={l} --threshold={crit}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds, critical threshold: {crit})"),
                    Mode::Csv => String::new(),
                },
            ),
            Some(l) if l > warn => (
                Warning,
                match mode {
                    Mode::Optformat => format!("--lag={l} --threshold={warn}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds, warning threshold: {warn})"),
                    Mode::Csv => String::new(),
                },
            ),
            None => (
                Unknown,
                match mode {
                    Mode::Nagios | Mode::Text => "unable to query replication lag".into(),
                    _ => String::new(),
                },
            ),
            Some(l) => (
                Ok,
                match mode {
                    Mode::Optformat => format!("--lag={l}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds"),
                    Mode::Csv => String::new(),
                },
            ),
        }
    };
    let opt = format!("--status={} {details}", status.as_str());
    Check::new(
        "Replication lag",
        status,
        details,
        mode,
        |d| format!("REPMGR_REPLICATION_LAG {}: {d}", status.as_str()),
        Some(opt),
    )
}

/// `.ready` files in the archive_status directory; None when unreadable.
pub fn ready_archive_files(data_directory: &str) -> Option<i32> {
    let dir = Path::new(data_directory)
        .join("pg_wal")
        .join("archive_status");
    let entries = fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
            .count() as i32,
    )
}

pub fn check_archive_ready(cfg: &Config, ready: Option<i32>, mode: Mode) -> Check {
    use CheckStatus::*;
    let (warn, crit) = (cfg.archive_ready_warning, cfg.archive_ready_critical);
    let perf = |n: i32| format!("{n} pending archive ready files | files={n};{warn};{crit}");
    let (status, details) = match ready {
        Some(n) if n > crit => (
            Critical,
            match mode {
                Mode::Optformat => format!("--files={n} --threshold={crit}"),
                Mode::Nagios => perf(n),
                Mode::Text => {
                    format!("{n} pending archive ready files, critical threshold: {crit}")
                }
                Mode::Csv => String::new(),
            },
        ),
        Some(n) if n > warn => (
            Warning,
            match mode {
                Mode::Optformat => format!("--files={n} --threshold={warn}"),
                Mode::Nagios => perf(n),
                Mode::Text => format!("{n} pending archive ready files (threshold: {warn})"),
                Mode::Csv => String::new(),
            },
        ),
        None => (
            Unknown,
            match mode {
                Mode::Nagios | Mode::Text => "unable to check archive_status directory".into(),
                _ => String::new(),
            },
        ),
        Some(n) => (
            Ok,
            match mode {
                Mode::Optformat => format!("--files={n}"),
                Mode::Nagios => perf(n),
                Mode::Text => format!("{n} pending archive ready files"),
                Mode::Csv => String::new(),
            },
        ),
    };
    let opt = format!("--status={} {details}", status.as_str());
    Check::new(
        "WAL archiving",
        status,
        details,
        mode,
        |d| format!("REPMGR_ARCHIVE_READY {}: {d}", status.as_str()),
        Some(opt),
    )
}

pub fn check_downstream(node: &NodeRecord, ds: &[Downstream], mode: Mode) -> Check {
    let expected: Vec<&Downstream> = ds.iter().filter(|d| !d.is_witness).collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|d| !d.attached)
        .map(|d| format!("{} (ID: {})", d.node_name, d.node_id))
        .collect();
    let (n_exp, n_miss) = (expected.len(), missing.len());
    let mut status = CheckStatus::Ok;
    let details = if node.node_type == NodeType::Witness {
        "N/A - node is a witness".to_string()
    } else if n_miss == 0 {
        if n_exp == 0 {
            "this node has no downstream nodes".to_string()
        } else {
            format!("{n_exp} of {n_exp} downstream nodes attached")
        }
    } else {
        status = CheckStatus::Critical;
        let mut d = format!("{n_miss} of {n_exp} downstream nodes not attached");
        if mode != Mode::Nagios {
            d.push_str("; missing: ");
            d.push_str(&missing.join(", "));
        }
        d
    };
    let nagios = |d: &str| {
        let mut d = d.to_string();
        if n_miss > 0 {
            d.push_str(&format!(" (missing: {})", missing.join(", ")));
        }
        format!(
            "REPMGR_DOWNSTREAM_SERVERS {}: {d} | attached={}, missing={n_miss}",
            status.as_str(),
            n_exp - n_miss
        )
    };
    Check::new("Downstream servers", status, details, mode, nagios, None)
}

pub fn check_slots(st: &NodeStats, mode: Mode) -> Check {
    let (total, inactive) = (st.total_slots, st.inactive_slots);
    let (status, details) = if total == 0 {
        (
            CheckStatus::Ok,
            "node has no physical replication slots".to_string(),
        )
    } else if inactive == 0 {
        (
            CheckStatus::Ok,
            format!("{total} of {total} physical replication slots are active"),
        )
    } else {
        (
            CheckStatus::Critical,
            format!("{inactive} of {total} physical replication slots are inactive"),
        )
    };
    Check::new(
        "Replication slots",
        status,
        details,
        mode,
        |d| {
            format!(
                "REPMGR_INACTIVE_SLOTS {}: {d} | slots={total};{inactive}",
                status.as_str()
            )
        },
        None,
    )
}

pub fn check_missing_slots(ds: &[Downstream], mode: Mode) -> Check {
    let names: Vec<&str> = ds
        .iter()
        .filter(|d| d.slot_missing)
        .map(|d| d.slot_name.as_deref().unwrap_or(""))
        .collect();
    let (status, details) = if names.is_empty() {
        (
            CheckStatus::Ok,
            "node has no missing physical replication slots".to_string(),
        )
    } else {
        (
            CheckStatus::Critical,
            format!(
                "{} physical replication slots are missing: {}",
                names.len(),
                names.join(", ")
            ),
        )
    };
    let nagios = |d: &str| {
        let mut l = format!(
            "REPMGR_MISSING_SLOTS {}: {d} | missing_slots={}",
            status.as_str(),
            names.len()
        );
        if !names.is_empty() {
            l.push(';');
            l.push_str(&names.join(","));
        }
        l
    };
    Check::new(
        "Missing physical replication slots",
        status,
        details,
        mode,
        nagios,
        None,
    )
}

/// repmgr's is_pg_dir: a directory holding PG_VERSION.
fn is_pg_dir(dir: &str) -> bool {
    !dir.is_empty() && Path::new(dir).join("PG_VERSION").is_file()
}

pub fn check_data_directory(cfg: &Config, actual: Option<&str>, mode: Mode) -> Check {
    let configured = cfg.data_directory.as_str();
    let mut status = CheckStatus::Ok;
    let details = match actual {
        Some(actual) if actual != configured => {
            status = CheckStatus::Critical;
            let mut d = String::new();
            if mode != Mode::Nagios {
                d.push_str(&format!(
                    "configured \"data_directory\" is \"{configured}\"; "
                ));
            }
            d.push_str(&format!("actual data directory is \"{actual}\""));
            d
        }
        Some(_) => format!("configured \"data_directory\" is \"{configured}\""),
        None => {
            if mode == Mode::Text {
                crate::log_info!(
                    "connection is not a superuser connection, falling back to simple check"
                );
            }
            if !is_pg_dir(configured) {
                status = CheckStatus::Critical;
                if mode == Mode::Nagios {
                    "configured \"data_directory\" is not a PostgreSQL data directory".to_string()
                } else {
                    // repmgr prints the (unknown, empty) actual directory here.
                    "configured \"data_directory\" \"\" is not a PostgreSQL data directory"
                        .to_string()
                }
            } else {
                format!("configured \"data_directory\" is \"{configured}\"")
            }
        }
    };
    let nagios = |d: &str| {
        let mut l = format!("REPMGR_DATA_DIRECTORY {}: {configured}", status.as_str());
        if status == CheckStatus::Critical {
            l.push_str(&format!(" | {d}"));
        }
        l
    };
    let opt = format!("--configured-data-directory={}", status.as_str());
    Check::new(
        "Configured data directory",
        status,
        details,
        mode,
        nagios,
        Some(opt),
    )
}

fn repmgrd_text(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Ok => "repmgrd running",
        CheckStatus::Warning => "repmgrd running but paused",
        CheckStatus::Critical => "repmgrd not running",
        CheckStatus::Unknown => "repmgrd status unknown",
    }
}

fn check_repmgrd(c: &mut Session, node_id: i32, mode: Mode) -> Result<Check> {
    let status = if !db::daemon_status::table_exists(c)? {
        CheckStatus::Unknown
    } else {
        let rows = db::daemon_status::all(c)?;
        let running = rows
            .iter()
            .find(|r| r.node_id == node_id)
            .is_some_and(|r| r.is_running());
        if !running {
            CheckStatus::Critical
        } else if db::daemon_status::is_paused(c, node_id)? {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        }
    };
    Ok(Check::new(
        "repmgrd",
        status,
        repmgrd_text(status).to_string(),
        mode,
        |d| format!("REPMGRD {}: {d}", status.as_str()),
        Some(format!("--repmgrd={}", status.as_str())),
    ))
}

/// The upstream check: this node must stream from its registered upstream.
/// Connecting to the upstream fails the command (exit 6) as in repmgr,
/// except under --nagios, where it is a CRITICAL line.
fn check_upstream(ctx: &Ctx, c: &mut Session, env: &Env, mode: Mode) -> Result<Check> {
    let node = &env.node;
    let mut status = CheckStatus::Ok;
    let upstream = match node.upstream_node_id {
        Some(id) if node.node_type != NodeType::Witness => db::nodes::get(c, id)?,
        _ => None,
    };
    let details = if node.node_type == NodeType::Witness {
        "N/A - node is a witness".to_string()
    } else if let Some(up) = upstream {
        let attached = match super::connect_record(&up) {
            Ok(mut uc) => db::timeline::is_streaming_to(&mut uc, &ctx.config().node_name)?,
            Err(e) if mode == Mode::Nagios => {
                crate::log_debug!("{}", e.detail.clone().unwrap_or_default());
                false
            }
            Err(e) => return Err(e),
        };
        let verb = if attached { "is" } else { "is not" };
        if !attached {
            status = CheckStatus::Critical;
        }
        format!(
            "node \"{}\" (ID: {}) {verb} attached to expected upstream node \"{}\" (ID: {})",
            node.node_name, node.node_id, up.node_name, up.node_id
        )
    } else if env.stats.in_recovery {
        status = CheckStatus::Critical;
        format!(
            "node \"{}\" (ID: {}) is a standby but no upstream record found",
            node.node_name, node.node_id
        )
    } else {
        "N/A - node is primary".to_string()
    };
    Ok(Check::new(
        "Upstream connection",
        status,
        details,
        mode,
        |d| format!("REPMGR_UPSTREAM_SERVER {}: {d}", status.as_str()),
        None,
    ))
}

/// The local connection for `node check`/`node service`: the configured
/// conninfo, with -S/--superuser as the user if given.
fn local_conninfo(ctx: &Ctx) -> Result<ConnInfo> {
    let mut ci = match ctx.conninfo_from_options()? {
        Some(ci) if ctx.config().conninfo.is_empty() => ci,
        _ => ctx.local_conninfo()?,
    };
    if let Some(su) = ctx.opts.superuser.as_deref().filter(|s| !s.is_empty()) {
        ci.set("user", su);
    }
    Ok(ci)
}

fn connect_local(ctx: &Ctx) -> Result<Session> {
    let ci = local_conninfo(ctx)?;
    let cfg = ctx.config();
    connect_node(&ci, &cfg.node_name, cfg.node_id.unwrap_or(0))
}

/// `repmgr node check`.
/// Warnings (on stderr, so the report's format is unchanged) about how this
/// cluster is protected from split brain.
fn warn_split_brain_risks(cfg: &Config, c: &mut Session) {
    use crate::config::{Failover, FailoverQuorum};
    if cfg.failover != Failover::Automatic {
        return;
    }
    if cfg.failover_quorum == FailoverQuorum::Repmgr {
        crate::log_warning!("failover_quorum=repmgr: a network partition can leave two primaries");
        return;
    }
    let voters = db::nodes::all(c)
        .map(|n| {
            n.iter()
                .filter(|n| n.active && n.node_type != NodeType::Bdr)
                .count()
        })
        .unwrap_or(0);
    if voters == 2 {
        crate::log_warning!(
            "this cluster has two voters and no witness: automatic failover will not happen"
        );
        crate::log_hint!(
            "register a witness, or set failover_quorum=repmgr to accept the split-brain risk"
        );
    }
}

pub fn check(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let mode = Mode::of(ctx);

    if ctx.opts.has_passfile {
        return if has_passfile(cfg) {
            Ok(())
        } else {
            Err(Error::silent(ExitCode::BadConfig))
        };
    }
    if ctx.opts.replication_connection {
        println!("--connection={}", replication_connection(ctx)?);
        return Ok(());
    }
    if ctx.opts.db_connection {
        return db_connection(ctx, mode);
    }
    let single = Single::chosen(ctx);
    if let Some(s) = single {
        if mode == Mode::Csv {
            return Err(Error::config(format!(
                "--csv output not provided with {} option",
                s.option()
            )));
        }
        if s == Single::ReplicationConfigOwner && mode != Mode::Optformat {
            return Err(Error::config(
                "--replication-config-owner option can only be used with --optformat",
            ));
        }
    } else if mode == Mode::Nagios {
        return Err(
            Error::config("--nagios can only be used with a specific check")
                .hint("execute \"repmgr node --help\" for details"),
        );
    }

    let mut c = match connect_local(ctx) {
        Ok(c) => c,
        Err(e) => {
            return match (mode, single) {
                (Mode::Optformat, _) => {
                    println!("--error=DB_CONNECTION");
                    Err(Error::silent(ExitCode::DbConn))
                }
                // Better than repmgr: Nagios gets a CRITICAL line, not a log.
                (Mode::Nagios, Some(s)) => {
                    crate::log_debug!("{}", e.detail.clone().unwrap_or_default());
                    println!(
                        "{} CRITICAL: unable to connect to node \"{}\" (ID: {})",
                        s.nagios_name(),
                        cfg.node_name,
                        cfg.node_id.unwrap_or(0)
                    );
                    CheckStatus::Critical.exit()
                }
                _ => Err(e),
            };
        }
    };

    let node_id = cfg.node_id.unwrap_or(0);
    let node = db::nodes::get(&mut c, node_id)?
        .ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;
    // --role needs only the recovery state: skip the snapshot's planning.
    let stats = if single == Some(Single::Role) {
        NodeStats {
            in_recovery: db::checks::in_recovery(&mut c)?,
            ..NodeStats::default()
        }
    } else {
        db::checks::stats(&mut c)?
    };
    let mut env = Env {
        node,
        stats,
        downstream: None,
    };

    if let Some(s) = single {
        let chk = match s {
            Single::ArchiveReady => {
                check_archive_ready(cfg, ready_archive_files(&cfg.data_directory), mode)
            }
            Single::Upstream => check_upstream(ctx, &mut c, &env, mode)?,
            Single::Downstream => {
                let ds = env.downstream(&mut c)?.to_vec();
                check_downstream(&env.node, &ds, mode)
            }
            Single::ReplicationLag => check_replication_lag(
                cfg,
                &env.node,
                env.stats.in_recovery,
                env.stats.lag_seconds,
                mode,
            ),
            Single::Role => {
                let fenced = db::fence::is_fenced(&mut c).unwrap_or(false);
                check_role_or_fenced(&env.node, env.stats.in_recovery, fenced, mode)
            }
            Single::Slots => check_slots(&env.stats, mode),
            Single::MissingSlots => {
                let ds = env.downstream(&mut c)?.to_vec();
                check_missing_slots(&ds, mode)
            }
            Single::DataDirectory => {
                let chk = check_data_directory(cfg, env.stats.data_directory.as_deref(), mode);
                superuser_hint(ctx, &env, mode);
                chk
            }
            Single::Repmgrd => check_repmgrd(&mut c, node_id, mode)?,
            Single::ReplicationConfigOwner => {
                let ok = replication_config_owner_ok(&cfg.data_directory);
                let status = if ok {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Critical
                };
                println!("--replication-config-owner={}", status.as_str());
                return status.exit();
            }
        };
        if let Some(l) = &chk.line {
            println!("{l}");
        }
        return chk.status.exit();
    }

    // The full run, in repmgr's order.
    let ds = env.downstream(&mut c)?.to_vec();
    let upstream = check_upstream(ctx, &mut c, &env, mode)?;
    let fenced = db::fence::is_fenced(&mut c).unwrap_or(false);
    let mut rows = vec![
        check_role_or_fenced(&env.node, env.stats.in_recovery, fenced, mode),
        check_replication_lag(
            cfg,
            &env.node,
            env.stats.in_recovery,
            env.stats.lag_seconds,
            mode,
        ),
        check_archive_ready(cfg, ready_archive_files(&cfg.data_directory), mode),
    ];
    let issue_upstream = upstream.status != CheckStatus::Ok;
    // repmgr lists the upstream row in text output only.
    if mode == Mode::Text {
        rows.push(upstream);
    }
    rows.push(check_downstream(&env.node, &ds, mode));
    rows.push(check_slots(&env.stats, mode));
    rows.push(check_missing_slots(&ds, mode));
    rows.push(check_data_directory(
        cfg,
        env.stats.data_directory.as_deref(),
        mode,
    ));
    superuser_hint(ctx, &env, mode);
    print!("{}", full_report(&env.node, &rows, mode));
    warn_split_brain_risks(cfg, &mut c);
    if issue_upstream || rows.iter().any(|r| r.status != CheckStatus::Ok) {
        return Err(Error::silent(ExitCode::NodeStatus));
    }
    Ok(())
}

fn superuser_hint(ctx: &Ctx, env: &Env, mode: Mode) {
    if env.stats.data_directory.is_none() && mode == Mode::Text {
        let user = local_conninfo(ctx)
            .ok()
            .and_then(|ci| ci.get("user").map(str::to_string))
            .unwrap_or_default();
        crate::log_hint!(
            "provide a superuser with -S/--superuser, or add the \"{user}\" user to role \"pg_read_all_settings\" or \"pg_monitor\""
        );
    }
}

/// The full run's text block or CSV lines.
pub fn full_report(node: &NodeRecord, rows: &[Check], mode: Mode) -> String {
    let mut out = String::new();
    if mode == Mode::Csv {
        out.push_str(&format!("\"Node name\",\"{}\"\n", node.node_name));
        out.push_str(&format!("\"Node ID\",\"{}\"\n", node.node_id));
        for r in rows {
            out.push_str(&format!("\"{}\",\"{}\"", r.item, r.status.as_str()));
            if !r.details.is_empty() {
                out.push_str(&format!(",\"{}\"", r.details));
            }
            out.push('\n');
        }
    } else {
        out.push_str(&format!("Node \"{}\":\n", node.node_name));
        for r in rows {
            out.push_str(&format!("\t{}: {}", r.item, r.status.as_str()));
            if !r.details.is_empty() {
                out.push_str(&format!(" ({})", r.details));
            }
            out.push('\n');
        }
    }
    out
}

/// `--db-connection`: can this node's database be reached with the
/// configured conninfo? Exit 0 or 2.
fn db_connection(ctx: &Ctx, mode: Mode) -> Result<()> {
    match mode {
        Mode::Csv => {
            return Err(Error::config(
                "--csv output not provided with --db-connection option",
            ))
        }
        Mode::Nagios => {
            return Err(Error::config(
                "--nagios output not provided with --db-connection option",
            ))
        }
        _ => {}
    }
    let ci = local_conninfo(ctx)?;
    let (status, details) = match db::connect::connect(&ci, APP_NAME) {
        Ok(_) => (CheckStatus::Ok, String::new()),
        Err(_) => {
            let mut d = "connection parameters used:".to_string();
            for (k, v) in ci.iter() {
                if k != "password" && !v.is_empty() {
                    d.push_str(&format!(" {k}={v}"));
                }
            }
            (CheckStatus::Critical, d)
        }
    };
    if mode == Mode::Optformat {
        println!("--db-connection={}", status.as_str());
    } else {
        println!("{} ({details})", status.as_str());
    }
    status.exit()
}

/// `--replication-connection --remote-node-id=N`: can this node open a
/// replication connection to node N as its replication user? (Run on the
/// demotion candidate by `standby switchover`.) Tested with psql, as this
/// client library does not speak the replication protocol.
fn replication_connection(ctx: &Ctx) -> Result<&'static str> {
    let Some(remote_id) = crate::cli::parse_int_option("remote-node-id", &ctx.opts.remote_node_id)?
    else {
        return Ok("UNKNOWN");
    };
    let Ok(mut c) = connect_local(ctx) else {
        return Ok("CONNECTION_ERROR");
    };
    let Some(rec) = db::nodes::get(&mut c, remote_id)? else {
        return Ok("UNKNOWN");
    };
    drop(c);
    let mut ci = parse_conninfo(&rec.conninfo, "conninfo of the remote node")?;
    if !rec.repluser.is_empty() && ci.get("user") != Some(rec.repluser.as_str()) {
        ci.set("user", &rec.repluser);
        ci.set("dbname", "replication");
    }
    ci.set("replication", "1");
    if ci.get("connect_timeout").is_none() {
        ci.set("connect_timeout", "2");
    }
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), ctx.config());
    let mut cmd = bin.command("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-c", "IDENTIFY_SYSTEM", "-d"])
        .arg(ci.to_string());
    let ok = process::run(cmd, Duration::from_secs(10), "psql").is_ok_and(|o| o.success());
    Ok(if ok { "OK" } else { "BAD" })
}

/// `--has-passfile`: a password file libpq would use exists.
fn has_passfile(cfg: &Config) -> bool {
    let from_conninfo = ConnInfo::parse(&cfg.conninfo)
        .ok()
        .and_then(|ci| ci.get("passfile").map(str::to_string));
    let path = from_conninfo
        .or_else(|| std::env::var("PGPASSFILE").ok())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pgpass")));
    path.is_some_and(|p| Path::new(&p).is_file())
}

/// The replication configuration file must belong to the data directory's
/// owner, or the server cannot rewrite it (repmgr's
/// check_replication_config_owner).
fn replication_config_owner_ok(data_directory: &str) -> bool {
    let dir = Path::new(data_directory);
    let Ok(dir_meta) = fs::metadata(dir) else {
        return false;
    };
    let file = if dir.join("recovery.conf").exists() && !dir.join("standby.signal").exists() {
        dir.join("recovery.conf")
    } else {
        dir.join("postgresql.auto.conf")
    };
    match fs::metadata(file) {
        Ok(m) => m.uid() == dir_meta.uid(),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------
// node status

/// `repmgr node status`.
pub fn status(ctx: &Ctx) -> Result<()> {
    if ctx.opts.is_shutdown_cleanly {
        println!("--state={}", shutdown_state(ctx)?);
        return Ok(());
    }
    let cfg = ctx.node_config(false)?;
    let csv = ctx.opts.csv;
    let mut c = ctx.connect_local()?;
    let node_id = cfg.node_id.unwrap_or(0);
    let node = db::nodes::get(&mut c, node_id)?
        .ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;
    let st = db::checks::stats(&mut c)?;
    let size = db::checks::cluster_size(&mut c).unwrap_or_else(|_| "unknown".into());

    // (key, value, shown in text mode)
    let mut kv: Vec<(&str, String, bool)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    kv.push(("PostgreSQL version", st.server_version.clone(), true));
    kv.push(("Total data size", size, true));
    kv.push(("Conninfo", node.conninfo.clone(), true));
    if ctx.opts.verbose {
        let sysid = db::replication::system_identifier(&mut c).unwrap_or_default();
        if sysid.is_empty() {
            kv.push(("System identifier", "unknown".into(), true));
            warnings.push("unable to retrieve system identifier from pg_control".into());
        } else {
            kv.push(("System identifier", sysid, true));
        }
    }
    kv.push(("Role", node.node_type.to_string(), true));
    match node.node_type {
        NodeType::Primary if st.in_recovery => {
            warnings.push("- node is registered as primary but running as standby".into())
        }
        NodeType::Standby if !st.in_recovery => {
            warnings.push("- node is registered as standby but running as primary".into())
        }
        _ => {}
    }
    let archiving_off = st.archive_mode == "off";
    if archiving_off {
        kv.push(("WAL archiving", "off".into(), true));
        kv.push(("Archive command", "(none)".into(), true));
    } else {
        let enabled = !(st.in_recovery && st.archive_mode == "on");
        let mut s = if enabled { "enabled" } else { "disabled" }.to_string();
        if !enabled {
            s.push_str(" (on standbys \"archive_mode\" must be set to \"always\" to be effective)");
        }
        kv.push(("WAL archiving", s, true));
        kv.push(("Archive command", st.archive_command.clone(), true));
    }
    match ready_archive_files(&cfg.data_directory) {
        None => warnings.push("- unable to check archive_status directory\n".into()),
        Some(n) => {
            let v = if csv {
                n.to_string()
            } else {
                format!("{n} pending files")
            };
            kv.push(("WALs pending archiving", v, !archiving_off));
        }
    }
    kv.push((
        "Replication connections",
        format!(
            "{} (of maximal {})",
            st.attached_wal_receivers, st.max_wal_senders
        ),
        true,
    ));

    let ds = db::checks::downstream(&mut c, node_id)?;
    let expected: Vec<&Downstream> = ds.iter().filter(|d| !d.is_witness).collect();
    let missing: Vec<&&Downstream> = expected.iter().filter(|d| !d.attached).collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "- {} of {} downstream nodes not attached:",
            missing.len(),
            expected.len()
        ));
        for m in &missing {
            warnings.push(format!("  - {} (ID: {})\n", m.node_name, m.node_id));
        }
    }

    let missing_slots: Vec<&Downstream> = ds.iter().filter(|d| d.slot_missing).collect();
    let mut inactive_names = Vec::new();
    if st.max_replication_slots == 0 {
        kv.push(("Replication slots", "disabled".into(), true));
    } else {
        if !missing_slots.is_empty() {
            warnings.push(format!(
                "- replication slots missing for following {} node(s):",
                missing_slots.len()
            ));
            for m in &missing_slots {
                warnings.push(format!(
                    "  - {} (ID: {}, slot name: \"{}\")",
                    m.node_name,
                    m.node_id,
                    m.slot_name.as_deref().unwrap_or("")
                ));
            }
        }
        let mut s = format!(
            "{} physical (of maximal {}; {} missing)",
            st.active_slots + st.inactive_slots,
            st.max_replication_slots,
            missing_slots.len()
        );
        if st.inactive_slots > 0 {
            inactive_names = db::checks::inactive_slots(&mut c)?;
            s.push_str(&format!("; {} inactive", st.inactive_slots));
            warnings.push(format!(
                "- node has {} inactive physical replication slots",
                st.inactive_slots
            ));
            for n in &inactive_names {
                warnings.push(format!("  - {n}"));
            }
        }
        kv.push(("Replication slots", s, true));
    }

    if node.node_type == NodeType::Standby {
        let up = match node.upstream_node_id {
            Some(id) => db::nodes::get(&mut c, id)?,
            None => None,
        };
        kv.push((
            "Upstream node",
            format!(
                "{} (ID: {})",
                up.as_ref().map(|u| u.node_name.as_str()).unwrap_or(""),
                node.upstream_node_id.unwrap_or(0)
            ),
            true,
        ));
        kv.push((
            "Replication lag",
            format!("{} seconds", st.status_lag_seconds),
            true,
        ));
        let lsn = |l: &Option<String>| l.clone().unwrap_or_else(|| "0/0".into());
        kv.push(("Last received LSN", lsn(&st.receive_lsn), true));
        kv.push(("Last replayed LSN", lsn(&st.replay_lsn), true));
    } else {
        kv.push(("Upstream node", "(none)".into(), false));
        kv.push(("Replication lag", "n/a".into(), true));
        kv.push(("Last received LSN", "(none)".into(), false));
        kv.push(("Last replayed LSN", "(none)".into(), false));
    }

    let mut out = String::new();
    if csv {
        out.push_str(&format!("\"Node name\",\"{}\"\n", node.node_name));
        out.push_str(&format!("\"Node ID\",\"{}\"\n", node.node_id));
        for (k, v, _) in &kv {
            out.push_str(&format!("\"{k}\",\"{v}\"\n"));
        }
        out.push_str(&format!("\"max_wal_senders\",{}\n", st.max_wal_senders));
        out.push_str(&format!(
            "\"occupied_wal_senders\",{}\n",
            st.attached_wal_receivers
        ));
        out.push_str(&format!(
            "\"max_replication_slots\",{}\n",
            st.max_replication_slots
        ));
        out.push_str(&format!(
            "\"active_replication_slots\",{}\n",
            st.active_slots
        ));
        out.push_str(&format!(
            "\"inactive_replication_slots\",{}",
            st.inactive_slots
        ));
        if st.inactive_slots > 0 && inactive_names.is_empty() {
            inactive_names = db::checks::inactive_slots(&mut c)?;
        }
        for n in &inactive_names {
            out.push_str(&format!(",\"{n}\""));
        }
        out.push('\n');
        out.push_str(&format!(
            "\"missing_replication_slots\",{}",
            missing_slots.len()
        ));
        for m in &missing_slots {
            out.push_str(&format!(",\"{}\"", m.slot_name.as_deref().unwrap_or("")));
        }
    } else {
        out.push_str(&format!("Node \"{}\":\n", node.node_name));
        for (k, v, shown) in &kv {
            if *shown {
                out.push_str(&format!("\t{k}: {v}\n"));
            }
        }
    }
    // repmgr puts() the buffer: one more newline.
    println!("{out}");

    if warnings.is_empty() {
        return Ok(());
    }
    if !ctx.opts.terse && !csv {
        crate::log_warning!("following issue(s) were detected:");
        let mut list = String::new();
        for w in &warnings {
            list.push_str(&format!("  {w}\n"));
        }
        print!("{list}");
        crate::log_hint!("execute \"repmgr node check\" for more details");
    }
    Err(Error::silent(ExitCode::NodeStatus))
}

/// `--is-shutdown-cleanly`: UP, DOWN (with the shutdown checkpoint),
/// SHUTTING_DOWN, UNCLEAN_SHUTDOWN or UNKNOWN, from a ping and pg_control.
/// Works with the server down (`standby switchover` runs it remotely).
fn shutdown_state(ctx: &Ctx) -> Result<String> {
    let cfg = ctx.node_config(true)?;
    if !is_pg_dir(&cfg.data_directory) {
        return Ok("UNKNOWN".into());
    }
    let ci = ctx.local_conninfo()?;
    let up = matches!(
        db::connect::ping(&ci, APP_NAME),
        db::connect::Ping::Ok | db::connect::Ping::Reject
    );
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let cd = match pgtools::control_data(&bin, Path::new(&cfg.data_directory)) {
        Ok(cd) if !cd.state.is_empty() => cd,
        _ => {
            crate::log_debug!("unable to determine db state");
            return Ok("UNKNOWN".into());
        }
    };
    Ok(shutdown_state_from(up, &cd.state, &cd.checkpoint_lsn))
}

/// The decision of [`shutdown_state`], from its three facts.
pub fn shutdown_state_from(up: bool, db_state: &str, checkpoint_lsn: &str) -> String {
    let shut_down = db_state == "shut down" || db_state == "shut down in recovery";
    let mut state = if up { "UP" } else { "" };
    if !shut_down {
        if !up {
            state = "UNCLEAN_SHUTDOWN";
        } else if db_state == "shutting down" {
            state = "SHUTTING_DOWN";
        }
    }
    if checkpoint_lsn.is_empty() || checkpoint_lsn == "0/0" {
        return "UNKNOWN".into();
    }
    if state.is_empty() {
        return format!("DOWN --last-checkpoint-lsn={checkpoint_lsn}");
    }
    state.to_string()
}

// ---------------------------------------------------------------------------
// node service

fn parse_action(s: &str) -> Option<ServiceAction> {
    Some(match s.to_ascii_lowercase().as_str() {
        "start" => ServiceAction::Start,
        "stop" => ServiceAction::Stop,
        "restart" => ServiceAction::Restart,
        "reload" => ServiceAction::Reload,
        "promote" => ServiceAction::Promote,
        _ => return None,
    })
}

/// The directory pg_ctl gets: `config_directory` if set (Debian layouts),
/// else the data directory.
fn service_dir(cfg: &Config) -> &str {
    if cfg.config_directory.is_empty() {
        &cfg.data_directory
    } else {
        &cfg.config_directory
    }
}

/// `repmgr node service`.
pub fn service(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let given = ctx.opts.action.as_deref().unwrap_or("");
    let action = if given.is_empty() {
        None
    } else {
        Some(parse_action(given).ok_or_else(|| {
            Error::config(format!(
                "unknown value \"{given}\" provided for parameter --action"
            ))
            .hint("valid values are \"start\", \"stop\", \"restart\", \"reload\" and \"promote\"")
        })?)
    };
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let dir = service_dir(cfg);
    let line = |a| pgtools::service_command_line(a, cfg, &bin, dir);

    if ctx.opts.list_actions {
        if let Some(a) = action {
            println!("{}", line(a));
            return Ok(());
        }
        let mut out = String::from("Following commands would be executed for each action:\n\n");
        for (label, a) in [
            ("    start", ServiceAction::Start),
            ("     stop", ServiceAction::Stop),
            ("  restart", ServiceAction::Restart),
            ("   reload", ServiceAction::Reload),
            ("  promote", ServiceAction::Promote),
        ] {
            out.push_str(&format!("{label}: \"{}\"\n", line(a)));
        }
        println!("{out}");
        return Ok(());
    }
    let Some(action) = action else {
        return Err(Error::config("no action provided")
            .hint("provide --action=start|stop|restart|reload|promote, or --list-actions"));
    };

    if matches!(action, ServiceAction::Stop | ServiceAction::Restart) && ctx.opts.checkpoint {
        let mut c = connect_local(ctx)?;
        if !db::checks::is_superuser(&mut c)? {
            if ctx.opts.dry_run {
                crate::log_warning!(
                    "a CHECKPOINT would be issued here but no superuser connection is available"
                );
            } else {
                crate::log_warning!("a superuser connection is required to issue a CHECKPOINT");
            }
            crate::log_hint!("provide a superuser with -S/--superuser");
        } else if ctx.opts.dry_run {
            crate::log_info!("a CHECKPOINT would be issued here");
        } else {
            crate::log_notice!(
                "issuing CHECKPOINT on node \"{}\" (ID: {}) ",
                cfg.node_name,
                cfg.node_id.unwrap_or(0)
            );
            db::checks::checkpoint(&mut c)?;
        }
    }

    if ctx.opts.dry_run {
        crate::log_info!("would execute server command \"{}\"", line(action));
        return Ok(());
    }
    pgtools::run_service_action(action, cfg, &bin, dir)
}

/// `repmgr node control --disable-wal-receiver | --enable-wal-receiver`
/// (undocumented in repmgr 5, used around failovers): on a standby, stops
/// its WAL receiver from streaming, or lets it stream again.
pub fn control(ctx: &Ctx) -> Result<()> {
    let enable = ctx.opts.enable_wal_receiver;
    if enable == ctx.opts.disable_wal_receiver {
        return Err(Error::config(
            "give exactly one of --disable-wal-receiver and --enable-wal-receiver",
        ));
    }
    let mut c = connect_local(ctx)?;
    if !db::server::in_recovery(&mut c)? {
        return Err(
            Error::config("node control is only meaningful on a standby")
                .detail("this node is not in recovery"),
        );
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "would {} the WAL receiver",
            if enable { "enable" } else { "disable" }
        );
        return Ok(());
    }
    db::server::set_wal_receiver_enabled(&mut c, enable)?;
    if !enable {
        // The startup process may restart the receiver before it has read
        // the reloaded retry interval: end it until it stays gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut quiet = 0;
        while quiet < 30 && std::time::Instant::now() < deadline {
            if let Some(pid) = db::server::wal_receiver_pid(&mut c)? {
                quiet = 0;
                // An auxiliary process: pg_terminate_backend refuses it, but
                // this command runs on the standby's host as its user.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            } else {
                quiet += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if enable {
        crate::log_notice!("WAL receiver enabled");
    } else {
        crate::log_notice!("WAL receiver disabled");
    }
    // Not an error either way: report what the receiver does now.
    match db::server::wal_receiver_pid(&mut c)? {
        Some(pid) => crate::log_info!("WAL receiver PID: {pid}"),
        None => crate::log_info!("no WAL receiver is running"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(t: NodeType) -> NodeRecord {
        NodeRecord {
            node_id: 1,
            upstream_node_id: None,
            active: true,
            node_name: "node1".into(),
            node_type: t,
            location: "default".into(),
            priority: 100,
            conninfo: "host=x".into(),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn ds(id: i32, attached: bool, slot_missing: bool) -> Downstream {
        Downstream {
            node_id: id,
            node_name: format!("node{id}"),
            is_witness: false,
            attached,
            slot_missing,
            slot_name: Some(format!("repmgr_slot_{id}")),
        }
    }

    #[test]
    fn role_lines() {
        let c = check_role(&node(NodeType::Primary), false, Mode::Nagios);
        assert_eq!(c.line.unwrap(), "REPMGR_SERVER_ROLE OK: node is primary");
        let c = check_role(&node(NodeType::Standby), false, Mode::Text);
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(
            c.line.unwrap(),
            "CRITICAL (node is registered as standby but running as primary)"
        );
    }

    #[test]
    fn lag_lines() {
        let cfg = Config::default();
        let p = node(NodeType::Primary);
        let c = check_replication_lag(&cfg, &p, false, None, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_REPLICATION_LAG OK: 0 seconds | lag=0;300;600"
        );
        let s = node(NodeType::Standby);
        let c = check_replication_lag(&cfg, &s, true, Some(400), Mode::Text);
        assert_eq!(c.status, CheckStatus::Warning);
        assert_eq!(c.details, "400 seconds, warning threshold: 300)");
        let c = check_replication_lag(&cfg, &s, true, Some(700), Mode::Optformat);
        assert_eq!(
            c.line.unwrap(),
            "--status=CRITICAL --lag=700 --threshold=600"
        );
        let c = check_replication_lag(&cfg, &s, true, None, Mode::Optformat);
        assert_eq!(c.line.unwrap(), "--status=UNKNOWN ");
        let c = check_replication_lag(&cfg, &p, false, None, Mode::Csv);
        assert_eq!(c.details, "");
    }

    #[test]
    fn archive_lines() {
        let cfg = Config::default();
        let c = check_archive_ready(&cfg, Some(0), Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_ARCHIVE_READY OK: 0 pending archive ready files | files=0;16;128"
        );
        let c = check_archive_ready(&cfg, Some(17), Mode::Optformat);
        assert_eq!(
            c.line.unwrap(),
            "--status=WARNING --files=17 --threshold=16"
        );
        let c = check_archive_ready(&cfg, Some(200), Mode::Text);
        assert_eq!(
            c.details,
            "200 pending archive ready files, critical threshold: 128"
        );
        assert_eq!(
            check_archive_ready(&cfg, None, Mode::Text).status,
            CheckStatus::Unknown
        );
    }

    #[test]
    fn downstream_and_slot_lines() {
        let p = node(NodeType::Primary);
        let all = [ds(2, true, false), ds(3, true, false)];
        let c = check_downstream(&p, &all, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DOWNSTREAM_SERVERS OK: 2 of 2 downstream nodes attached | attached=2, missing=0"
        );
        let some = [ds(2, true, false), ds(3, false, true)];
        let c = check_downstream(&p, &some, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DOWNSTREAM_SERVERS CRITICAL: 1 of 2 downstream nodes not attached (missing: node3 (ID: 3)) | attached=1, missing=1"
        );
        let c = check_downstream(&p, &some, Mode::Text);
        assert_eq!(
            c.details,
            "1 of 2 downstream nodes not attached; missing: node3 (ID: 3)"
        );
        let c = check_missing_slots(&some, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_MISSING_SLOTS CRITICAL: 1 physical replication slots are missing: repmgr_slot_3 | missing_slots=1;repmgr_slot_3"
        );
        let st = NodeStats {
            total_slots: 2,
            inactive_slots: 1,
            ..NodeStats::default()
        };
        let c = check_slots(&st, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_INACTIVE_SLOTS CRITICAL: 1 of 2 physical replication slots are inactive | slots=2;1"
        );
    }

    #[test]
    fn data_directory_lines() {
        let cfg = Config {
            data_directory: "/d".into(),
            ..Config::default()
        };
        let c = check_data_directory(&cfg, Some("/d"), Mode::Nagios);
        assert_eq!(c.line.unwrap(), "REPMGR_DATA_DIRECTORY OK: /d");
        let c = check_data_directory(&cfg, Some("/e"), Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DATA_DIRECTORY CRITICAL: /d | actual data directory is \"/e\""
        );
        let c = check_data_directory(&cfg, Some("/e"), Mode::Optformat);
        assert_eq!(c.line.unwrap(), "--configured-data-directory=CRITICAL");
    }

    #[test]
    fn full_report_formats() {
        let p = node(NodeType::Primary);
        let rows = vec![
            check_role(&p, false, Mode::Csv),
            check_replication_lag(&Config::default(), &p, false, None, Mode::Csv),
        ];
        assert_eq!(
            full_report(&p, &rows, Mode::Csv),
            "\"Node name\",\"node1\"\n\"Node ID\",\"1\"\n\"Server role\",\"OK\",\"node is primary\"\n\"Replication lag\",\"OK\"\n"
        );
        let rows = vec![check_role(&p, false, Mode::Text)];
        assert_eq!(
            full_report(&p, &rows, Mode::Text),
            "Node \"node1\":\n\tServer role: OK (node is primary)\n"
        );
    }

    #[test]
    fn shutdown_states() {
        assert_eq!(
            shutdown_state_from(true, "in production", "0/3000060"),
            "UP"
        );
        assert_eq!(
            shutdown_state_from(false, "shut down", "0/3000060"),
            "DOWN --last-checkpoint-lsn=0/3000060"
        );
        assert_eq!(
            shutdown_state_from(false, "in production", "0/3000060"),
            "UNCLEAN_SHUTDOWN"
        );
        assert_eq!(
            shutdown_state_from(true, "shutting down", "0/3000060"),
            "SHUTTING_DOWN"
        );
        assert_eq!(shutdown_state_from(false, "shut down", ""), "UNKNOWN");
    }
}
