//! `repmgr standby follow`: re-point this standby at the current primary
//! (or at `--upstream-node-id`).
//!
//! It refuses to follow a node whose history this node's WAL does not
//! belong to (different system, or a diverged timeline): that would either
//! fail inside PostgreSQL or, worse, silently mix two histories. The fix is
//! `repmgr node rejoin --force-rewind`, and the error says so.

use std::time::{Duration, Instant};

use crate::db::Session;

use crate::commands::{parse_conninfo, reach_all, Ctx, Reached};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self};
use crate::ops::follow::{check_can_follow, follow_node};
use crate::pgtools::PgBin;

pub fn follow(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let node_id = cfg.node_id.unwrap_or_default();
    let mut local = ctx.connect_local()?;
    if !db::server::in_recovery(&mut local)? {
        return Err(Error::config("this node is not a standby")
            .detail(format!(
                "node \"{}\" (ID: {node_id}) is running as a primary",
                cfg.node_name
            ))
            .hint("a primary cannot follow another node; to make it a standby of the new primary, stop it and run \"repmgr node rejoin\""));
    }
    if !db::schema::exists(&mut local)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("register the primary and this standby first"),
        );
    }

    let (target, mut tconn) = find_target(ctx, cfg, &mut local)?;
    if target.node_id == node_id {
        return Err(
            Error::new(ExitCode::FollowFail, "a node cannot follow itself")
                .hint("check --upstream-node-id"),
        );
    }
    crate::log_info!("following node {}", target);

    check_can_follow(&mut local, &mut tconn, &target)?;

    if ctx.opts.dry_run {
        crate::log_info!(
            "this node's WAL history is compatible with node \"{}\"",
            target.node_name
        );
        crate::log_notice!("prerequisites for following node {} are met", target);
        return Ok(());
    }

    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let (ev, ts) = follow_node(cfg, &bin, local, &target, &mut tconn, &|apply| apply())?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!("STANDBY FOLLOW successful");
    crate::log_detail!("standby attached to upstream node {}", target);
    Ok(())
}

/// The node to follow: `--upstream-node-id`, a host given with -h/-d or as
/// the positional word, else the one primary that answers.
fn find_target(ctx: &Ctx, cfg: &Config, local: &mut Session) -> Result<(NodeRecord, Session)> {
    let nodes = db::nodes::all(local)?;
    if let Some(id) = crate::cli::parse_int_option("upstream-node-id", &ctx.opts.upstream_node_id)?
    {
        let rec = nodes
            .iter()
            .find(|n| n.node_id == id)
            .cloned()
            .ok_or_else(|| {
                Error::new(ExitCode::FollowFail, format!("node {id} is not registered"))
                    .hint("check --upstream-node-id against \"repmgr cluster show\"")
            })?;
        let conn =
            crate::commands::connect_record(&rec).map_err(|e| e.with_code(ExitCode::DbConn))?;
        return Ok((rec, conn));
    }
    if let Some(conn_host) = explicit_target(ctx)? {
        return conn_host;
    }
    let limit = ctx.opts.wait.as_ref().map(|w| {
        w.trim()
            .parse::<u64>()
            .unwrap_or(cfg.primary_follow_timeout.max(1) as u64)
    });
    let deadline = Instant::now() + Duration::from_secs(limit.unwrap_or(0));
    loop {
        let candidates: Vec<NodeRecord> = nodes
            .iter()
            .filter(|n| {
                n.node_id != cfg.node_id.unwrap_or_default() && n.node_type != NodeType::Witness
            })
            .cloned()
            .collect();
        let mut primaries: Vec<Reached> = reach_all(&candidates)
            .into_iter()
            .filter(|r| r.in_recovery == Some(false) && r.conn.is_some())
            .collect();
        match primaries.len() {
            1 => {
                let r = primaries.remove(0);
                let conn = r.conn.ok_or_else(|| Error::internal("connection vanished"))?;
                return Ok((r.node, conn));
            }
            0 if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500).min(deadline - Instant::now()));
            }
            0 => {
                return Err(Error::new(ExitCode::FollowFail, "no primary node is reachable")
                    .hint("start or promote a primary first, use -w/--wait to wait for one, or name the node with --upstream-node-id"))
            }
            _ => {
                let names: Vec<String> = primaries
                    .iter()
                    .map(|r| format!("{}", r.node))
                    .collect();
                return Err(Error::new(
                    ExitCode::FollowFail,
                    "more than one node is running as primary",
                )
                .detail(format!("primaries: {}", names.join(", ")))
                .hint("fix the split first, or choose with --upstream-node-id"));
            }
        }
    }
}

/// `standby follow HOST` / `-h HOST` (the seed's form): the node whose
/// registered conninfo names that host and port.
fn explicit_target(ctx: &Ctx) -> Result<Option<Result<(NodeRecord, Session)>>> {
    let mut opts = ctx.opts.clone();
    if let Some(h) = &ctx.arg {
        opts.host = Some(h.clone());
    }
    if opts.host.is_none() && opts.dbname.is_none() {
        return Ok(None);
    }
    let Some(ci) = ctx.conninfo_for(&opts)? else {
        return Ok(None);
    };
    let mut conn =
        crate::commands::connect_node(&ci, "", 0).map_err(|e| e.with_code(ExitCode::DbConn))?;
    if db::server::in_recovery(&mut conn)? {
        crate::log_warning!("the node given is a standby: this node will cascade from it");
    }
    let nodes = db::nodes::all(&mut conn)?;
    let host = ci.host().unwrap_or("");
    let port = ci.port().unwrap_or("5432");
    let rec = nodes.into_iter().find(|n| {
        parse_conninfo(&n.conninfo, "conninfo")
            .map(|c| c.host().unwrap_or("") == host && c.port().unwrap_or("5432") == port)
            .unwrap_or(false)
    });
    let rec = rec.ok_or_else(|| {
        Error::new(
            ExitCode::FollowFail,
            format!("no registered node has host \"{host}\" and port {port}"),
        )
        .hint("use --upstream-node-id to name the node to follow")
    });
    Ok(Some(rec.map(|r| (r, conn))))
}
