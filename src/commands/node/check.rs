//! `repmgr node check`: one single check, or the full run in repmgr's
//! order; and the probes `standby switchover` runs on a node
//! (--has-passfile, --db-connection, --replication-connection).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use postgres::Client;

use super::checks::{
    check_archive_ready, check_data_directory, check_downstream, check_missing_slots,
    check_replication_lag, check_role_or_fenced, check_slots, repmgrd_text, Check, CheckStatus,
    Mode,
};
use super::{connect_local, local_conninfo, ready_archive_files};
use crate::commands::{parse_conninfo, Ctx, APP_NAME};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::PgBin;
use crate::process;

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
    fn downstream(&mut self, c: &mut Client) -> Result<&[Downstream]> {
        if self.downstream.is_none() {
            self.downstream = Some(db::checks::downstream(c, self.node.node_id)?);
        }
        Ok(self.downstream.as_deref().unwrap_or(&[]))
    }
}

fn check_repmgrd(c: &mut Client, node_id: i32, mode: Mode) -> Result<Check> {
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
fn check_upstream(ctx: &Ctx, c: &mut Client, env: &Env, mode: Mode) -> Result<Check> {
    let node = &env.node;
    let mut status = CheckStatus::Ok;
    let upstream = match node.upstream_node_id {
        Some(id) if node.node_type != NodeType::Witness => db::nodes::get(c, id)?,
        _ => None,
    };
    let details = if node.node_type == NodeType::Witness {
        "N/A - node is a witness".to_string()
    } else if let Some(up) = upstream {
        let attached = match crate::commands::connect_record(&up) {
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

/// Warnings (on stderr, so the report's format is unchanged) about how this
/// cluster is protected from split brain.
fn warn_split_brain_risks(cfg: &Config, c: &mut Client) {
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

/// `repmgr node check`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::node::checks::check_role;
    use crate::commands::node::checks::tests::node;

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
}
