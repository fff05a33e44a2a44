//! `repmgr standby promote`: make this standby the primary.
//!
//! Refuses while another registered node runs as primary (unless -F), since
//! two writable primaries lose data. Promotes with `service_promote_command`
//! if set, else `pg_promote()`, else `pg_ctl promote`, then polls finely
//! (not repmgr's fixed 1 s) until the server leaves recovery, and records the
//! new roles and the next voting term in one transaction.

use crate::db::Session;

use crate::commands::{reach_all, Ctx};
use crate::config::Config;
use crate::db;
use crate::error::{Error, ExitCode, Result};
use crate::events::{self};
use crate::ops::promote::{promote_local, record_promotion};
use crate::pgtools::{self, PgBin, ServiceAction};

pub fn promote(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let node_id = cfg.node_id.unwrap_or_default();
    let mut local = ctx.connect_local()?;

    if !db::server::in_recovery(&mut local)? {
        return Err(Error::new(
            ExitCode::PromotionFail,
            "STANDBY PROMOTE can only be executed on a standby node",
        )
        .detail(format!(
            "node \"{}\" (ID: {node_id}) is not in recovery",
            cfg.node_name
        )));
    }
    if db::server::wal_replay_paused(&mut local)? {
        return Err(
            Error::new(ExitCode::PromotionFail, "WAL replay is paused on this node")
                .detail("promoting now would discard the WAL received but not yet replayed")
                .hint("resume replay with \"SELECT pg_wal_replay_resume()\" and retry"),
        );
    }
    refuse_if_primary_reachable(cfg, &mut local)?;
    // The siblings as this node's metadata knows them before the promotion:
    // active standbys that shared its upstream.
    let siblings = if ctx.opts.siblings_follow {
        siblings_of(cfg, &mut local)?
    } else {
        Vec::new()
    };

    if ctx.opts.dry_run {
        crate::log_info!("node is a standby and no other primary is reachable");
        crate::log_notice!(
            "prerequisites for promoting node \"{}\" (ID: {node_id}) are met",
            cfg.node_name
        );
        crate::log_info!("would promote with: {}", promote_method(ctx, cfg));
        return Ok(());
    }

    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let reconnect = || ctx.connect_local();
    let mut local = promote_local(cfg, &bin, local, &reconnect)?;

    if db::schema::exists(&mut local)? {
        let (term, ev, ts) = record_promotion(cfg, &mut local, None)?;
        events::notify(cfg, &ev, Some(&ts));
        crate::log_info!("voting term is now {term}");
    } else {
        crate::log_warning!("no repmgr metadata on this node: roles not recorded");
    }
    crate::log_notice!("STANDBY PROMOTE successful");
    crate::log_detail!(
        "server \"{}\" (ID: {node_id}) was successfully promoted to primary",
        cfg.node_name
    );
    if !siblings.is_empty() {
        siblings_follow(ctx, cfg, &siblings);
    }
    Ok(())
}

fn siblings_of(cfg: &Config, local: &mut Session) -> Result<Vec<crate::db::nodes::NodeRecord>> {
    let id = cfg.node_id.unwrap_or_default();
    if !db::schema::exists(local)? {
        return Ok(Vec::new());
    }
    let nodes = db::nodes::all(local)?;
    let upstream = nodes
        .iter()
        .find(|n| n.node_id == id)
        .and_then(|n| n.upstream_node_id);
    Ok(nodes
        .into_iter()
        .filter(|n| n.active && n.node_id != id && n.node_type == db::nodes::NodeType::Standby)
        .filter(|n| upstream.is_some() && n.upstream_node_id == upstream)
        .collect())
}

/// `--siblings-follow`: `repmgr standby follow` on every sibling over ssh
/// (as switchover does), all at once. A sibling that fails is reported;
/// the promotion itself stands.
fn siblings_follow(ctx: &Ctx, cfg: &Config, siblings: &[crate::db::nodes::NodeRecord]) {
    use crate::remote::{self, Ssh};
    let me = cfg.node_id.unwrap_or_default();
    let ssh = Ssh::new(cfg, ctx.opts.remote_user.as_deref()).multiplexed();
    let ssh = &ssh;
    let results: Vec<(String, std::result::Result<(), String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = siblings
            .iter()
            .map(|sib| {
                s.spawn(move || {
                    let outcome = (|| -> std::result::Result<(), String> {
                        let host = remote::node_host(sib).map_err(|e| e.message().to_string())?;
                        let cmd = format!(
                            "{} standby follow --upstream-node-id={me}",
                            remote::remote_repmgr(cfg, sib)
                        );
                        let out = ssh
                            .run(&host, &cmd, std::time::Duration::from_secs(120))
                            .map_err(|e| e.message().to_string())?;
                        if out.success() {
                            Ok(())
                        } else {
                            Err(format!("{}{}", out.stdout, out.stderr).trim().to_string())
                        }
                    })();
                    (sib.node_name.clone(), outcome)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (name, r) in results {
        match r {
            Ok(()) => crate::log_notice!("sibling \"{name}\" now follows this node"),
            Err(why) => {
                crate::log_warning!("sibling \"{name}\" could not follow this node");
                crate::log_detail!("{why}");
                crate::log_hint!("run \"repmgr standby follow\" on it");
            }
        }
    }
}

/// Refuses when any other registered node answers as a primary: promoting
/// now would make two writable primaries. As in repmgr, -F does not
/// override this.
fn refuse_if_primary_reachable(cfg: &Config, local: &mut Session) -> Result<()> {
    if !db::schema::exists(local)? {
        crate::log_warning!(
            "no repmgr metadata found on this node; cannot check for another primary"
        );
        return Ok(());
    }
    let node_id = cfg.node_id.unwrap_or_default();
    let others: Vec<_> = db::nodes::all(local)?
        .into_iter()
        .filter(|n| n.node_id != node_id && n.node_type != db::nodes::NodeType::Witness)
        .collect();
    let primary = reach_all(&others)
        .into_iter()
        .find(|r| r.in_recovery == Some(false))
        .map(|r| r.node);
    match primary {
        Some(p) => Err(Error::new(
            ExitCode::PromotionFail,
            "this replication cluster already has an active primary server",
        )
        .detail(format!(
            "current primary is {p}, which is reachable and not in recovery"
        ))
        .hint("promoting now would leave two writable primaries; use \"repmgr standby switchover\", or stop that server first")),
        None => Ok(()),
    }
}

fn promote_method(ctx: &Ctx, cfg: &Config) -> String {
    if !cfg.service_promote_command.trim().is_empty() {
        return format!(
            "service_promote_command \"{}\"",
            cfg.service_promote_command
        );
    }
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    format!(
        "pg_promote(), or if not permitted: {}",
        pgtools::service_command_line(ServiceAction::Promote, cfg, &bin, &cfg.data_directory)
    )
}
