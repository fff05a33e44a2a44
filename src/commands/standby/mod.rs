//! The `standby` family: register and unregister here; clone, promote and
//! follow in their own files.

mod clone;
pub mod follow;
pub mod promote;
mod switchover;

pub use clone::clone;
pub use follow::follow;
pub use promote::promote;
pub use switchover::switchover;

use std::time::Duration;

use crate::db::Session;

use super::{connect_node, find_primary, Ctx};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};

/// Default `--wait-sync` timeout when none is given (repmgr waits forever;
/// we never do).
const DEFAULT_WAIT_SYNC: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// The primary to write to: from -h/-p/-U/-d when given, else found from
/// the local node's copy of the metadata.
fn primary_connection(
    ctx: &Ctx,
    local: Option<&mut Session>,
) -> Result<(Option<NodeRecord>, Session)> {
    if let Some(ci) = ctx.conninfo_from_options()? {
        let mut c = connect_node(&ci, "", 0).map_err(|e| {
            let mut e = e;
            e.messages = vec!["unable to connect to the primary given with -h/-p/-U/-d".into()];
            e
        })?;
        if db::server::in_recovery(&mut c)? {
            return Err(
                Error::config("the server given with -h/-p/-U/-d is not a primary")
                    .hint("point -h/-d at the current primary"),
            );
        }
        return Ok((None, c));
    }
    let Some(local) = local else {
        return Err(
            Error::db_conn("unable to find the primary: the local node is not running")
                .hint("provide the primary's connection parameters with -h/-p/-U/-d"),
        );
    };
    if !db::schema::exists(local)? {
        return Err(Error::config("the repmgr metadata schema was not found on this node")
            .hint("register the primary first with \"repmgr primary register\"; if it is, check this standby replicates from it"));
    }
    match find_primary(local)? {
        Some((rec, c)) => Ok((Some(rec), c)),
        None => Err(Error::db_conn("unable to connect to the primary")
            .detail("no registered node is reachable and out of recovery")
            .hint("provide the primary's connection parameters with -h/-p/-U/-d")),
    }
}

/// `repmgr standby register`.
pub fn register(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let node_id = cfg.node_id.unwrap_or_default();
    // Options are checked before anything is written.
    let wait_sync = ctx
        .opts
        .wait_sync
        .as_deref()
        .map(wait_sync_limit)
        .transpose()?;
    let wait_start = crate::cli::parse_int_option("wait-start", &ctx.opts.wait_start)?;
    let mut local = local_standby(ctx, cfg, wait_start)?;

    crate::log_info!("connecting to primary database");
    let (primary_rec, mut primary) = registering_primary(ctx, local.as_mut())?;
    let upstream_id = checked_upstream(ctx, node_id, &primary_rec, &mut primary)?;
    crate::commands::check_registration(&mut primary, cfg, NodeType::Standby, ctx.opts.force)?;

    let record = standby_record(cfg, upstream_id, &mut primary)?;
    if ctx.opts.dry_run {
        crate::log_info!(
            "would register standby \"{}\" (ID: {node_id}) with upstream node {upstream_id}",
            cfg.node_name
        );
        crate::log_notice!("prerequisites for registering the standby are met");
        return Ok(());
    }
    write_registration(cfg, &mut primary, &record, &primary_rec, upstream_id)?;
    if let Some(limit) = wait_sync {
        wait_for_sync(ctx, cfg, &record, limit, &mut primary, &primary_rec)?;
    }
    Ok(())
}

/// The local node, which must be in recovery; with -F a standby that is
/// not running is registered all the same (None).
fn local_standby(ctx: &Ctx, cfg: &Config, wait_start: Option<i32>) -> Result<Option<Session>> {
    let node_id = cfg.node_id.unwrap_or_default();
    crate::log_info!(
        "connecting to local node \"{}\" (ID: {node_id})",
        cfg.node_name
    );
    let mut local = match connect_local_waiting(ctx, wait_start) {
        Ok(c) => Some(c),
        Err(e) if ctx.opts.force => {
            crate::log_warning!(
                "unable to connect to local node \"{}\" (ID: {node_id}); registering it anyway (-F/--force)",
                cfg.node_name
            );
            crate::log_detail!("{}", e.reason());
            None
        }
        Err(e) => {
            return Err(e.hint(
                "to register a standby which is not running, provide primary connection parameters and use option -F/--force",
            ))
        }
    };
    if let Some(c) = local.as_mut() {
        if !db::server::in_recovery(c)? {
            return Err(Error::config("this node should be a standby")
                .detail(format!(
                    "node \"{}\" (ID: {node_id}) is not in recovery",
                    cfg.node_name
                ))
                .hint("use \"repmgr primary register\" to register a primary"));
        }
    }
    Ok(local)
}

/// The primary to register with, its record, and a check that it has the
/// metadata and runs this standby's major version.
fn registering_primary(
    ctx: &Ctx,
    mut local: Option<&mut Session>,
) -> Result<(NodeRecord, Session)> {
    let (primary_rec, mut primary) = primary_connection(ctx, local.as_deref_mut())?;
    if !db::schema::exists(&mut primary)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on the primary")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let primary_rec = match primary_rec {
        Some(r) => r,
        None => registered_primary(&mut primary)?,
    };
    if let Some(c) = local {
        check_versions(c, &mut primary)?;
    }
    Ok((primary_rec, primary))
}

/// --upstream-node-id, else the primary: registered, not this node, and
/// active (unless -F).
fn checked_upstream(
    ctx: &Ctx,
    node_id: i32,
    primary_rec: &NodeRecord,
    primary: &mut Session,
) -> Result<i32> {
    let upstream_id = crate::cli::parse_int_option("upstream-node-id", &ctx.opts.upstream_node_id)?
        .unwrap_or(primary_rec.node_id);
    if upstream_id == node_id {
        return Err(
            Error::config("a node cannot be its own upstream").hint("check --upstream-node-id")
        );
    }
    let upstream = db::nodes::get(primary, upstream_id)?.ok_or_else(|| {
        Error::config(format!("upstream node {upstream_id} is not registered"))
            .hint("register the upstream node first, or check --upstream-node-id")
    })?;
    if !upstream.active && !ctx.opts.force {
        return Err(Error::config(format!(
            "upstream node \"{}\" (ID: {upstream_id}) is marked inactive",
            upstream.node_name
        ))
        .hint("use -F/--force to register this standby anyway"));
    }
    Ok(upstream_id)
}

/// The node record and the `standby_register` event, in one transaction
/// on the primary; the event hook runs once it is committed.
fn write_registration(
    cfg: &Config,
    primary: &mut Session,
    record: &NodeRecord,
    primary_rec: &NodeRecord,
    upstream_id: i32,
) -> Result<()> {
    let node_id = cfg.node_id.unwrap_or_default();
    let mut tx = primary
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::upsert(&mut tx, record)?;
    let details = format!("standby registration succeeded; upstream node ID is {upstream_id}");
    let ev = Event {
        primary_id: Some(primary_rec.node_id),
        conninfo: Some(primary_rec.conninfo.clone()),
        ..Event::for_node(cfg, "standby_register", details)
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the standby registration", &e))?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "standby node \"{}\" (ID: {node_id}) successfully registered",
        cfg.node_name
    );
    Ok(())
}

/// repmgr's `DEFAULT_WAIT_START`, what `--help` promises.
const DEFAULT_WAIT_START_SECS: i32 = 30;

/// `--wait-start=N`: give a standby that is starting up N seconds (default
/// 30) to accept connections before giving up. As repmgr, -F does not wait:
/// it is for registering a node that is not running.
fn connect_local_waiting(ctx: &Ctx, wait_start: Option<i32>) -> Result<Session> {
    if ctx.opts.force {
        return ctx.connect_local();
    }
    let secs = wait_start.unwrap_or(DEFAULT_WAIT_START_SECS).max(0) as u64;
    let mut last = None;
    let conn = crate::poll::until(Duration::from_secs(secs), POLL, || {
        match ctx.connect_local() {
            Ok(c) => Some(c),
            Err(e) => {
                last = Some(e);
                None
            }
        }
    });
    match (conn, last) {
        (Some(c), _) => Ok(c),
        (None, Some(e)) => Err(e),
        (None, None) => ctx.connect_local(),
    }
}

/// `--wait-sync` with no value waits [`DEFAULT_WAIT_SYNC`].
fn wait_sync_limit(value: &str) -> Result<Duration> {
    if value.trim().is_empty() {
        return Ok(DEFAULT_WAIT_SYNC);
    }
    let secs: u64 = value.trim().parse().map_err(|_| {
        Error::config(format!(
            "invalid value provided for option \"--wait-sync\": \"{value}\""
        ))
        .hint("provide a number of seconds, e.g. --wait-sync=30")
    })?;
    Ok(Duration::from_secs(secs))
}

/// The primary's own record, found when the primary was given with -h/-d.
pub(crate) fn registered_primary(primary: &mut Session) -> Result<NodeRecord> {
    let mut ps = db::nodes::active_primaries(primary)?;
    match ps.len() {
        1 => Ok(ps.remove(0)),
        0 => Err(Error::config("no active primary is registered")
            .hint("run \"repmgr primary register\" on the primary first")),
        _ => Err(Error::config("more than one active primary is registered")
            .hint("check \"repmgr cluster show\" and unregister or deactivate the stale primary")),
    }
}

/// Standby and primary must run the same PostgreSQL major version.
fn check_versions(local: &mut Session, primary: &mut Session) -> Result<()> {
    let l = db::server::version_num(local)?;
    let p = db::server::version_num(primary)?;
    if l / 10000 != p / 10000 {
        return Err(Error::config(format!(
            "PostgreSQL versions differ: this standby is {}, the primary is {}",
            l / 10000,
            p / 10000
        ))
        .hint("a standby must run the same PostgreSQL major version as its primary"));
    }
    Ok(())
}

fn standby_record(cfg: &Config, upstream_id: i32, primary: &mut Session) -> Result<NodeRecord> {
    let repluser = if cfg.replication_user.is_empty() {
        match crate::conninfo::ConnInfo::parse(&cfg.conninfo)
            .ok()
            .and_then(|ci| ci.get("user").map(str::to_string))
        {
            Some(u) => u,
            None => db::server::current_user(primary)?,
        }
    } else {
        cfg.replication_user.clone()
    };
    Ok(NodeRecord {
        node_id: cfg.node_id.unwrap_or_default(),
        upstream_node_id: Some(upstream_id),
        active: true,
        node_name: cfg.node_name.clone(),
        node_type: NodeType::Standby,
        location: cfg.location.clone(),
        priority: cfg.priority,
        conninfo: cfg.conninfo.clone(),
        repluser,
        slot_name: crate::ops::follow::slot_name(cfg),
        config_file: cfg.config_file.clone(),
    })
}

/// `--wait-sync[=secs]`: wait until the record written on the primary is
/// visible in this standby's copy of the metadata.
fn wait_for_sync(
    ctx: &Ctx,
    cfg: &Config,
    record: &NodeRecord,
    limit: Duration,
    primary: &mut Session,
    primary_rec: &NodeRecord,
) -> Result<()> {
    crate::log_info!(
        "waiting up to {} s for the node record to appear on the standby",
        limit.as_secs()
    );
    let synced = crate::poll::until(limit, POLL, || {
        let seen = ctx
            .connect_local()
            .ok()
            .and_then(|mut c| db::nodes::get(&mut c, record.node_id).ok().flatten());
        (seen.as_ref() == Some(record)).then_some(())
    })
    .is_some();
    let details = if synced {
        format!(
            "node record for node {} synchronised to the standby",
            record.node_id
        )
    } else {
        format!(
            "node record for node {} not synchronised to the standby within {} s",
            record.node_id,
            limit.as_secs()
        )
    };
    let ev = Event {
        successful: synced,
        primary_id: Some(primary_rec.node_id),
        conninfo: Some(primary_rec.conninfo.clone()),
        ..Event::for_node(cfg, "standby_register_sync", details)
    };
    events::record(Some(primary), cfg, &ev);
    if synced {
        crate::log_notice!("node record synchronised to the standby");
        Ok(())
    } else {
        Err(Error::new(
            ExitCode::RegistrationSync,
            format!(
                "node record was not synchronised to the standby within {} s",
                limit.as_secs()
            ),
        )
        .hint("check the standby is streaming from the primary (\"repmgr cluster show\")"))
    }
}

/// `repmgr standby unregister [--node-id]`.
pub fn unregister(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let target_id = crate::cli::parse_int_option("node-id", &ctx.opts.node_id)?
        .unwrap_or(cfg.node_id.unwrap_or_default());
    let mut local = ctx.connect_local().ok();
    let (_, mut primary) = primary_connection(ctx, local.as_mut())?;
    let target = db::nodes::get(&mut primary, target_id)?.ok_or_else(|| {
        Error::config(format!("node {target_id} is not registered"))
            .hint("check the node ID with \"repmgr cluster show\"")
    })?;
    if target.node_type != NodeType::Standby {
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) is a {}, not a standby",
            target.node_name, target.node_type
        ))
        .hint(format!("use \"repmgr {} unregister\"", target.node_type)));
    }
    let downstream = db::nodes::downstream_of(&mut primary, target_id)?;
    if !downstream.is_empty() && !ctx.opts.force {
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) has downstream nodes registered",
            target.node_name
        ))
        .hint("re-point them first, or use -F/--force"));
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "would unregister standby \"{}\" (ID: {target_id})",
            target.node_name
        );
        return Ok(());
    }
    let mut tx = primary
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::delete(&mut tx, target_id)?;
    let ev = Event {
        node_id: target_id,
        node_name: &target.node_name,
        ..Event::for_node(
            cfg,
            "standby_unregister",
            format!("node {target_id} unregistered"),
        )
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the unregistration", &e))?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "standby node \"{}\" (ID: {target_id}) unregistered",
        target.node_name
    );
    Ok(())
}
