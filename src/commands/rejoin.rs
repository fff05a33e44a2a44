//! `repmgr node rejoin`: make a stopped node (typically a former primary)
//! a standby of the current primary again.
//!
//! Everything is decided before anything is touched, and without starting
//! the local server (which, were it an old primary, would take writes): the
//! local position comes from `pg_controldata`, the primary's from SQL, and
//! the pure [`attach::can_follow`] says whether the local WAL is a prefix of
//! the primary's history. If it is not, the node is rewound with pg_rewind
//! only when `--force-rewind` allows it; otherwise nothing changes.
//!
//! [`check_rejoin`] and [`rejoin_node`] take a configuration and a
//! connection to the primary, not the command line, so repmgrd can rejoin a
//! returning old primary with the same code.

use std::path::PathBuf;

use crate::commands::{connect_node, find_primary, Ctx};
use crate::db::{self};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::ops::rejoin::{check_local_stopped, check_rejoin, rejoin_node, RejoinOptions};
use crate::pgtools::PgBin;

/// `repmgr node rejoin -d '<conninfo of any node>'`.
pub fn rejoin(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let node_id = cfg.node_id.unwrap_or_default();
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let opts = options(ctx, &bin);
    let control = check_local_stopped(cfg, &bin, opts.pg_rewind.is_some())?;

    let ci = ctx.conninfo_from_options()?.ok_or_else(|| {
        Error::config("database connection parameters for an available node must be provided")
            .hint("give the conninfo of any running node of the cluster with -d, e.g. -d 'host=node2 dbname=repmgr user=repmgr'")
    })?;
    let mut seed = connect_node(&ci, "", 0)?;
    if !db::schema::exists(&mut seed)? {
        return Err(Error::config(
            "the repmgr metadata schema was not found on the node given with -d",
        )
        .hint("point -d at a node of this repmgr cluster"));
    }
    let (primary, mut pconn) = find_primary(&mut seed)?.ok_or_else(|| {
        Error::new(ExitCode::RejoinFail, "no primary node is reachable")
            .detail("no registered node answers out of recovery")
            .hint("start or promote a primary first")
    })?;
    drop(seed);
    if primary.node_id == node_id {
        return Err(Error::new(
            ExitCode::RejoinFail,
            "this node is registered as the node running as primary",
        )
        .hint("check conninfo in repmgr.conf and the metadata with \"repmgr cluster show\""));
    }
    crate::log_info!("the current primary is node {}", primary);

    let plan = check_rejoin(cfg, &opts, control, &primary, &mut pconn)?;
    if ctx.opts.dry_run {
        match &plan.rewind {
            _ if plan.unclean => crate::log_info!(
                "pg_rewind would be executed with source node \"{}\" (unclean shutdown)",
                primary.node_name
            ),
            Some(_) => crate::log_info!(
                "pg_rewind would be executed with source node \"{}\"",
                primary.node_name
            ),
            None => crate::log_info!(
                "this node's WAL history is compatible with node \"{}\"; pg_rewind is not required",
                primary.node_name
            ),
        }
        crate::log_notice!("prerequisites for executing NODE REJOIN are met");
        return Ok(());
    }

    match rejoin_node(cfg, &bin, &opts, &plan, &primary, &mut pconn) {
        Ok((ev, ts)) => {
            events::notify(cfg, &ev, Some(&ts));
            crate::log_notice!("NODE REJOIN successful");
            crate::log_detail!("{}", ev.details);
            Ok(())
        }
        Err(e) => {
            let ev = Event {
                successful: false,
                primary_id: Some(primary.node_id),
                conninfo: Some(primary.conninfo.clone()),
                ..Event::for_node(cfg, "node_rejoin", e.message().to_string())
            };
            events::record(Some(&mut pconn), cfg, &ev);
            Err(e)
        }
    }
}

/// The command line's options, checked.
fn options(ctx: &Ctx, bin: &PgBin) -> RejoinOptions {
    let pg_rewind = ctx.opts.force_rewind.as_ref().map(|p| {
        if p.trim().is_empty() {
            bin.path("pg_rewind")
        } else {
            PathBuf::from(p.trim())
        }
    });
    let config_files = ctx
        .opts
        .config_files
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect::<Vec<_>>();
    if !config_files.is_empty() && pg_rewind.is_none() {
        crate::log_warning!("--config-files is only used with --force-rewind");
    }
    RejoinOptions {
        pg_rewind,
        config_files,
        config_archive_dir: PathBuf::from(
            ctx.opts
                .config_archive_dir
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or("/tmp"),
        ),
        wait: !ctx.opts.no_wait,
    }
}
