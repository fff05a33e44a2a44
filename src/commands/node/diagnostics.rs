//! The diagnostics `standby switchover` runs on a node through
//! `repmgr node check` (--db-connection, --replication-connection,
//! --replication-config-owner) and `repmgr node status`
//! (--is-shutdown-cleanly): each answers one question with a line or an
//! exit status, not a report.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::check_json::{render, DB_CONNECTION};
use super::checks::{Check, CheckStatus, Mode};
use super::{connect_local, is_pg_dir, local_conninfo};
use crate::commands::{parse_conninfo, Ctx, APP_NAME};
use crate::db;
use crate::error::{Error, Result};
use crate::pgtools::{self, PgBin};
use crate::process;

/// `--db-connection`: can this node's database be reached with the
/// configured conninfo? Exit 0 or 2.
pub(super) fn db_connection(ctx: &Ctx, mode: Mode) -> Result<()> {
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
                if k != "password" && k != "sslpassword" && !v.is_empty() {
                    d.push_str(&format!(" {k}={v}"));
                }
            }
            (CheckStatus::Critical, d)
        }
    };
    if ctx.opts.json {
        let cfg = ctx.config();
        let chk = Check {
            item: DB_CONNECTION,
            status,
            details,
            line: None,
        };
        let one = std::slice::from_ref(&chk);
        print!("{}", render(&cfg.node_name, cfg.node_id.unwrap_or(0), one));
    } else if mode == Mode::Optformat {
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
pub(super) fn replication_connection(ctx: &Ctx) -> Result<&'static str> {
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
    // the password through the environment, never on psql's command line
    let password = ci.remove("password");
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), ctx.config());
    let mut cmd = bin.command("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-c", "IDENTIFY_SYSTEM", "-d"])
        .arg(ci.to_string());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let ok = process::run(cmd, Duration::from_secs(10), "psql").is_ok_and(|o| o.success());
    Ok(if ok { "OK" } else { "BAD" })
}

/// The replication configuration file must belong to the data directory's
/// owner, or the server cannot rewrite it (repmgr's
/// check_replication_config_owner).
pub(super) fn replication_config_owner_ok(data_directory: &str) -> bool {
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

/// `--is-shutdown-cleanly`: UP, SHUTDOWN (with the shutdown checkpoint),
/// SHUTTING_DOWN, UNCLEAN_SHUTDOWN or UNKNOWN, from a ping and pg_control.
/// Works with the server down (`standby switchover` runs it remotely).
pub(super) fn shutdown_state(ctx: &Ctx) -> Result<String> {
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
        // repmgr 5's word for a clean shutdown, which its switchover parses.
        return format!("SHUTDOWN --last-checkpoint-lsn={checkpoint_lsn}");
    }
    state.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_states() {
        assert_eq!(
            shutdown_state_from(true, "in production", "0/3000060"),
            "UP"
        );
        assert_eq!(
            shutdown_state_from(false, "shut down", "0/3000060"),
            "SHUTDOWN --last-checkpoint-lsn=0/3000060"
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
