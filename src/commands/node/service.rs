//! `repmgr node service`: starts, stops, restarts, reloads or promotes
//! the local PostgreSQL with pg_ctl or the configured service commands.

use super::{connect_local, Ctx};
use crate::config::Config;
use crate::db;
use crate::error::{Error, Result};
use crate::pgtools::{self, PgBin, ServiceAction};

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
