//! `repmgr standby follow`: re-point this standby at the current primary
//! (or at `--upstream-node-id`).
//!
//! It refuses to follow a node whose history this node's WAL does not
//! belong to (different system, or a diverged timeline): that would either
//! fail inside PostgreSQL or, worse, silently mix two histories. The fix is
//! `repmgr node rejoin --force-rewind`, and the error says so.

use std::time::{Duration, Instant};

use crate::db::Session;

use crate::attach;
use crate::commands::{parse_conninfo, reach_all, Ctx, Reached};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::{self, PgBin, ServiceAction};
use crate::replconf::{self, ReplicationConfig};

const POLL: Duration = Duration::from_millis(50);

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
    crate::log_info!(
        "following node \"{}\" (ID: {})",
        target.node_name,
        target.node_id
    );

    check_can_follow(&mut local, &mut tconn, &target)?;

    if ctx.opts.dry_run {
        crate::log_info!(
            "this node's WAL history is compatible with node \"{}\"",
            target.node_name
        );
        crate::log_notice!(
            "prerequisites for following node \"{}\" (ID: {}) are met",
            target.node_name,
            target.node_id
        );
        return Ok(());
    }

    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let (ev, ts) = follow_node(cfg, &bin, local, &target, &mut tconn)?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!("STANDBY FOLLOW successful");
    crate::log_detail!(
        "standby attached to upstream node \"{}\" (ID: {})",
        target.node_name,
        target.node_id
    );
    Ok(())
}

/// Re-points the local standby at `target` (already checked with
/// [`check_can_follow`]): slot on the target, replication configuration,
/// reload (or restart), wait until streaming, record. Shared by `standby
/// follow` and repmgrd. Returns the event to notify.
pub fn follow_node<'a>(
    cfg: &'a Config,
    bin: &PgBin,
    mut local: Session,
    target: &NodeRecord,
    tconn: &mut Session,
) -> Result<(Event<'a>, String)> {
    let node_id = cfg.node_id.unwrap_or_default();
    let slot = crate::commands::primary::slot_name(cfg);
    let old_upstream = current_upstream(&mut local, node_id)?;
    if let Some(s) = &slot {
        if db::timeline::create_slot_if_missing(tconn, s)? {
            crate::log_info!(
                "replication slot \"{s}\" created on node \"{}\"",
                target.node_name
            );
        }
    }
    let version = db::server::version_num(&mut local)?;
    write_replication_config(cfg, target, slot.clone(), version)?;
    apply_config(bin, cfg, &mut local, version)?;
    drop(local);

    let timeout = Duration::from_secs(cfg.standby_follow_timeout.max(1) as u64);
    wait_attached(tconn, &cfg.node_name, timeout).map_err(|e| {
        e.hint(format!(
            "check the PostgreSQL log of this node and that node \"{}\" accepts replication connections",
            target.node_name
        ))
    })?;

    if let (Some(s), Some(old)) = (&slot, &old_upstream) {
        if old.node_id != target.node_id {
            drop_stale_slot(old, s);
        }
    }
    record_follow(cfg, target, tconn)
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
                    .map(|r| format!("\"{}\" (ID: {})", r.node.node_name, r.node.node_id))
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

/// repmgr's check_node_can_attach: same system, history compatible.
pub fn check_can_follow(local: &mut Session, target: &mut Session, rec: &NodeRecord) -> Result<()> {
    let mine = db::timeline::position(local)?;
    let theirs = db::timeline::position(target)?;
    let history = if theirs.timeline > mine.timeline {
        db::timeline::history_file(target, theirs.timeline)?
            .map(|text| db::timeline::parse_history(&text))
    } else {
        Some(Vec::new())
    };
    attach::can_follow(&mine, &theirs, history.as_deref()).map_err(|why| {
        let hint = match why {
            attach::Refusal::HistoryUnavailable { .. } => {
                "grant pg_read_server_files to the repmgr user (or use a superuser), so the target's timeline history can be checked"
            }
            attach::Refusal::DifferentSystem { .. } => "clone this node again from the target with \"repmgr standby clone\"",
            _ => "use \"repmgr node rejoin --force-rewind\" to rewind this node onto the target's timeline",
        };
        Error::new(
            ExitCode::FollowFail,
            format!(
                "this node cannot follow node \"{}\" (ID: {})",
                rec.node_name, rec.node_id
            ),
        )
        .detail(why.to_string())
        .hint(hint)
    })
}

fn current_upstream(local: &mut Session, node_id: i32) -> Result<Option<NodeRecord>> {
    let me = db::nodes::get(local, node_id)?;
    match me.and_then(|m| m.upstream_node_id) {
        Some(up) => db::nodes::get(local, up),
        None => Ok(None),
    }
}

/// Writes the replication configuration pointing at `target` into the
/// local data directory (exit 23 on failure; callers may re-code it).
pub fn write_replication_config(
    cfg: &Config,
    target: &NodeRecord,
    slot: Option<String>,
    version: i32,
) -> Result<()> {
    let upstream = parse_conninfo(
        &target.conninfo,
        &format!("conninfo of node \"{}\"", target.node_name),
    )?;
    let repl_user = (!cfg.replication_user.is_empty())
        .then_some(cfg.replication_user.as_str())
        .or((!target.repluser.is_empty()).then_some(target.repluser.as_str()));
    let pci = replconf::primary_conninfo(
        &upstream,
        &cfg.node_name,
        repl_user,
        &cfg.passfile,
        cfg.use_primary_conninfo_password,
    );
    let rc = ReplicationConfig {
        primary_conninfo: pci.to_string(),
        primary_slot_name: slot,
        restore_command: cfg.restore_command.clone(),
        archive_cleanup_command: cfg.archive_cleanup_command.clone(),
        recovery_min_apply_delay: cfg.recovery_min_apply_delay.clone(),
    };
    let datadir = std::path::Path::new(&cfg.data_directory);
    crate::log_info!(
        "writing the replication configuration in \"{}\"",
        datadir.display()
    );
    replconf::write(datadir, version, &rc).map_err(|e| e.with_code(ExitCode::FollowFail))
}

/// PostgreSQL 13+ re-reads primary_conninfo on reload; older servers, and
/// `standby_follow_restart`, need a restart.
fn apply_config(bin: &PgBin, cfg: &Config, local: &mut Session, version: i32) -> Result<()> {
    let fail = |e: Error| e.with_code(ExitCode::FollowFail);
    if version < 130000 || cfg.standby_follow_restart {
        crate::log_notice!("restarting server to apply the new upstream");
        return pgtools::run_service_action(ServiceAction::Restart, cfg, bin, &cfg.data_directory)
            .map_err(fail);
    }
    if !cfg.service_reload_command.trim().is_empty() {
        return pgtools::run_service_action(ServiceAction::Reload, cfg, bin, &cfg.data_directory)
            .map_err(fail);
    }
    match db::server::reload_conf(local) {
        Ok(()) => Ok(()),
        Err(e) => {
            crate::log_info!(
                "pg_reload_conf() not available ({}); using pg_ctl",
                db::pg_error_text(&e)
            );
            pgtools::run_service_action(ServiceAction::Reload, cfg, bin, &cfg.data_directory)
                .map_err(fail)
        }
    }
}

/// How long the same walsender must stay `streaming` to count: a standby
/// on an incompatible timeline shows `streaming` for a few milliseconds
/// before each disconnect.
const STABLE_STREAMING: Duration = Duration::from_millis(500);

/// Waits until the target lists this node as a streaming standby, with the
/// same walsender still streaming [`STABLE_STREAMING`] later.
pub fn wait_attached(target: &mut Session, node_name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut seen: Option<(i32, Instant)> = None;
    loop {
        match (db::timeline::streaming_pid(target, node_name)?, seen) {
            (Some(pid), Some((p, since))) if pid == p => {
                if since.elapsed() >= STABLE_STREAMING {
                    return Ok(());
                }
            }
            (Some(pid), _) => seen = Some((pid, Instant::now())),
            (None, _) => seen = None,
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ExitCode::FollowFail,
                format!(
                    "this node did not start streaming from the new upstream within {} seconds",
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn drop_stale_slot(old: &NodeRecord, slot: &str) {
    match crate::commands::connect_record(old) {
        Ok(mut c) => match db::timeline::drop_slot_if_inactive(&mut c, slot) {
            Ok(true) => crate::log_info!(
                "dropped replication slot \"{slot}\" on node \"{}\"",
                old.node_name
            ),
            Ok(false) => {}
            Err(e) => crate::log_warning!(
                "unable to drop replication slot \"{slot}\" on node \"{}\": {}",
                old.node_name,
                e
            ),
        },
        Err(_) => crate::log_warning!(
            "node \"{}\" is unreachable; replication slot \"{slot}\" may be left there",
            old.node_name
        ),
    }
}

/// The record says where this node streams from; the event tells it.
fn record_follow<'a>(
    cfg: &'a Config,
    target: &NodeRecord,
    tconn: &mut Session,
) -> Result<(Event<'a>, String)> {
    let node_id = cfg.node_id.unwrap_or_default();
    let (mut primary_rec, mut pconn) = if db::server::in_recovery(tconn)? {
        match crate::commands::find_primary(tconn)? {
            Some(p) => (Some(p.0), Some(p.1)),
            None => (None, None),
        }
    } else {
        (Some(target.clone()), None)
    };
    let conn: &mut Session = match pconn.as_mut() {
        Some(c) => c,
        None => tconn,
    };
    let mut tx = conn
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::set_upstream(&mut tx, node_id, target.node_id)?;
    let ev = Event {
        primary_id: primary_rec.as_ref().map(|p| p.node_id),
        conninfo: primary_rec.take().map(|p| p.conninfo),
        ..Event::for_node(
            cfg,
            "standby_follow",
            format!(
                "standby attached to upstream node \"{}\" (ID: {})",
                target.node_name, target.node_id
            ),
        )
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the follow metadata", &e))?;
    Ok((ev, ts))
}
