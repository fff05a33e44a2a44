//! `repmgr standby switchover`: swap roles with the primary, as repmgr does
//! (§2.4): checks first, pause repmgrd, stop the primary cleanly, make sure
//! this standby has everything up to its shutdown checkpoint, promote, make
//! the old primary a standby of this node (`node rejoin` there), have the
//! siblings follow, unpause.
//!
//! Nothing is left half done. Any failure before the primary is stopped
//! changes nothing. After that, the cluster is left with exactly one
//! primary — the old one restarted if this node could not take over
//! safely, or this node — and the message says what to run next (exit 18
//! when the switchover did not happen, 22 when it happened but something
//! after the promotion did not finish).
//!
//! Unlike repmgr, the ssh checks run in parallel and every remote command
//! shares one multiplexed connection per host, which keeps the
//! write-unavailable window to a few hundred milliseconds.
//!
//! Here: the steps, and pausing repmgrd around them. The checks are in
//! `plan`, the stop and the promotion in `swap`, the rejoin and the
//! siblings' follow in `finish`.

mod finish;
mod plan;
mod swap;

use std::time::Instant;

use crate::db::Session;

use crate::commands::{find_primary, Ctx};
use crate::config::Config;
use crate::db;
use crate::error::{Error, ExitCode, Result};
use crate::remote::Ssh;

use plan::{check_prerequisites, check_remote, print_plan, Plan};
use swap::run_switchover;

pub fn switchover(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let started = Instant::now();
    let mut local = ctx.connect_local()?;
    check_superuser(ctx, cfg, &mut local)?;
    let (plan, mut pconn) = check_prerequisites(ctx, cfg, &mut local)?;
    let ssh = Ssh::new(cfg, ctx.opts.remote_user.as_deref()).multiplexed();
    check_remote(ctx, cfg, &ssh, &plan)?;

    let pause = !ctx.opts.repmgrd_no_pause;
    if ctx.opts.dry_run {
        print_plan(ctx, cfg, &plan, pause);
        return Ok(());
    }
    let mut legacy = Vec::new();
    if pause {
        pause_repmgrd(&mut pconn, &plan.all_ids, true)?;
        legacy = pause_legacy(&mut pconn);
    }
    let result = run_switchover(ctx, cfg, &ssh, &plan, pconn, local, started);
    if pause {
        unpause_after(ctx, cfg, &plan);
        unpause_legacy(&legacy);
    }
    result
}

/// On a cluster taken over from repmgr 5 node by node, the nodes whose
/// repmgr 5 repmgrd still runs get its own pause flag (in its extension's
/// shared memory, on each node) for the switchover, as repmgr 5's
/// switchover sets it: that repmgrd would otherwise see the primary go
/// away and fail over beside ours. Only where the primary loads the
/// extension (nothing else can run such a repmgrd); a node already paused
/// is left as it is. Returns the nodes paused here.
fn pause_legacy(pconn: &mut Session) -> Vec<db::nodes::NodeRecord> {
    if !matches!(db::takeover::extension_loaded(pconn), Ok(true)) {
        return Vec::new();
    }
    let Ok(nodes) = db::nodes::all(pconn) else {
        return Vec::new();
    };
    let mut paused = Vec::new();
    for mut r in crate::commands::reach_all(&nodes) {
        let Some(c) = r.conn.as_mut() else { continue };
        match db::takeover::legacy_daemon(c) {
            Ok(Some(d)) if d.running && !d.paused => {}
            _ => continue,
        }
        match db::takeover::legacy_pause(c, true) {
            Ok(true) => {
                crate::log_notice!("repmgr 5's repmgrd on node {} paused", r.node);
                paused.push(r.node);
            }
            Ok(false) => {}
            Err(e) => crate::log_warning!(
                "unable to pause repmgr 5's repmgrd on node {}: {}",
                r.node,
                e.reason()
            ),
        }
    }
    paused
}

/// Lifts the pause [`pause_legacy`] set (a node restarted meanwhile has
/// lost it with its shared memory already).
fn unpause_legacy(nodes: &[db::nodes::NodeRecord]) {
    for n in nodes {
        let done = crate::commands::connect_record(n)
            .and_then(|mut c| db::takeover::legacy_pause(&mut c, false));
        match done {
            Ok(_) => crate::log_notice!("repmgr 5's repmgrd on node {n} unpaused"),
            Err(e) => {
                crate::log_warning!(
                    "unable to unpause repmgr 5's repmgrd on node {n}: {}",
                    e.reason()
                );
                crate::log_hint!("run \"repmgr service unpause\"");
            }
        }
    }
}

/// repmgr's -S/--superuser check: the superuser must connect to this node
/// and be one (exit 1 otherwise); without -S and without a superuser in the
/// conninfo, a warning. The old primary's stop then runs as it (`node
/// service --checkpoint --superuser`).
fn check_superuser(ctx: &Ctx, cfg: &Config, local: &mut Session) -> Result<()> {
    let Some(su) = plan::superuser(ctx) else {
        if !db::checks::is_superuser(local)? {
            crate::log_warning!("no superuser connection available");
            crate::log_detail!(
                "it is recommended to perform switchover operations with a database superuser"
            );
            crate::log_hint!("provide the name of a superuser with -S/--superuser");
        }
        return Ok(());
    };
    if ctx.opts.dry_run {
        crate::log_info!("validating connection to local database for superuser \"{su}\"");
    }
    let mut ci = ctx.local_conninfo()?;
    ci.set("user", su);
    let dbname = ci.get("dbname").unwrap_or_default().to_string();
    let mut c = crate::commands::connect_node(&ci, &cfg.node_name, cfg.node_id.unwrap_or(0))
        .map_err(|e| {
            Error::config(format!(
                "unable to connect to local database \"{dbname}\" as provided superuser \"{su}\""
            ))
            .detail(e.reason().to_string())
        })?;
    if !db::checks::is_superuser(&mut c)? {
        return Err(Error::config(format!(
            "connection established to local database \"{dbname}\" for provided superuser \"{su}\" is not a superuser connection"
        )));
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "successfully established connection to local database \"{dbname}\" for provided superuser \"{su}\""
        );
    }
    Ok(())
}

fn pause_repmgrd(pconn: &mut Session, ids: &[i32], paused: bool) -> Result<()> {
    // A schema made by repmgr 5's extension (or an older version) lacks
    // the pause flag: completed here when this user may.
    if paused && !db::daemon_status::table_exists(pconn)? {
        if let db::takeover::Completion::NotPermitted { why, .. } = db::takeover::complete(pconn)? {
            return Err(Error::new(
                ExitCode::SwitchoverFail,
                "unable to pause repmgrd: the repmgr metadata schema has no pause flag",
            )
            .detail(why)
            .hint("run \"repmgr service unpause\" once as a superuser (it creates it), or use --repmgrd-no-pause"));
        }
    }
    if !db::daemon_status::table_exists(pconn)? {
        return Ok(());
    }
    db::daemon_status::set_paused(pconn, ids, paused).map_err(|e| {
        e.with_code(ExitCode::SwitchoverFail)
            .hint("use --repmgrd-no-pause to go ahead without pausing repmgrd")
    })?;
    crate::log_info!(
        "repmgrd {} on {} node(s)",
        if paused { "paused" } else { "unpaused" },
        ids.len()
    );
    Ok(())
}

/// Unpauses on whichever node is primary now; nodes paused before we
/// started stay paused unless --repmgrd-force-unpause.
fn unpause_after(ctx: &Ctx, _cfg: &Config, plan: &Plan) {
    let ids: Vec<i32> = plan
        .all_ids
        .iter()
        .copied()
        .filter(|id| ctx.opts.repmgrd_force_unpause || !plan.already_paused.contains(id))
        .collect();
    let primary = ctx
        .connect_local()
        .ok()
        .and_then(|mut l| find_primary(&mut l).ok().flatten());
    match primary {
        Some((_, mut c)) => {
            if let Err(e) = pause_repmgrd(&mut c, &ids, false) {
                crate::log_warning!("unable to unpause repmgrd: {}", e.message());
                crate::log_hint!("run \"repmgr service unpause\"");
            }
        }
        None => {
            crate::log_warning!("no primary reachable to unpause repmgrd");
            crate::log_hint!("run \"repmgr service unpause\" once the cluster has a primary");
        }
    }
}
