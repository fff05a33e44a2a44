//! `witness register` and `witness unregister`.
//!
//! A witness is a small PostgreSQL instance of its own (not a replica) that
//! holds a copy of the primary's `repmgr.nodes`, so its repmgrd can vote in
//! elections and find the new primary after a failover. Its record lives on
//! the primary like every other node's.

use crate::db::Session;

use super::{connect_node, find_primary, Ctx};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, schema::SchemaChange};
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::ops::witness::copy_node_records;

/// The primary given with -h/-p/-U/-d: reachable, not in recovery, with
/// the metadata installed.
fn given_primary(ctx: &Ctx) -> Result<Option<Session>> {
    let Some(ci) = ctx.conninfo_from_options()? else {
        return Ok(None);
    };
    let mut c = connect_node(&ci, "", 0).map_err(|mut e| {
        e.messages = vec!["unable to connect to the primary node given with -h/-p/-U/-d".into()];
        e
    })?;
    if db::server::in_recovery(&mut c)? {
        return Err(
            Error::config("the node given with -h/-p/-U/-d is a standby, not the primary")
                .hint("point -h at the current primary"),
        );
    }
    if !db::schema::exists(&mut c)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on the primary")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    Ok(Some(c))
}

/// `repmgr witness register -h <primary>`.
pub fn register(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let node_id = cfg.node_id.unwrap_or_default();
    crate::log_info!(
        "connecting to witness node \"{}\" (ID: {node_id})",
        cfg.node_name
    );
    let mut local = ctx.connect_local()?;
    if db::server::in_recovery(&mut local)? {
        return Err(Error::config("this node is a standby and cannot be a witness")
            .detail(format!(
                "node \"{}\" (ID: {node_id}) is in recovery",
                cfg.node_name
            ))
            .hint("a witness is a separate PostgreSQL instance running as a primary, outside the replication cluster"));
    }
    let mut primary = given_primary(ctx)?.ok_or_else(|| {
        Error::config("host name for the primary node must be provided with -h/--host")
            .hint("e.g. repmgr witness register -h node1 (-p, -U and -d as needed)")
    })?;
    let primary_rec = super::standby::registered_primary(&mut primary)?;
    check_outside_cluster(&mut local, &mut primary)?;

    crate::commands::check_registration(&mut primary, cfg, NodeType::Witness, ctx.opts.force)?;
    let record = witness_record(cfg, primary_rec.node_id, &mut local)?;

    if ctx.opts.dry_run {
        match db::schema::installed_version(&mut local)? {
            None => crate::log_info!("would create the \"repmgr\" metadata schema on the witness"),
            Some(_) => crate::log_info!("the \"repmgr\" metadata schema is present on the witness"),
        }
        crate::log_info!(
            "would register witness \"{}\" (ID: {node_id}) with upstream node {} and copy the node records",
            cfg.node_name,
            primary_rec);
        crate::log_notice!("prerequisites for registering the witness are met");
        return Ok(());
    }

    ensure_witness_schema(&mut local)?;
    let (ev, ts) = write_registration(cfg, &mut primary, &record, &primary_rec)?;
    let copied = copy_node_records(&mut primary, &mut local).map_err(|e| {
        e.hint("the witness is registered on the primary; its repmgrd copies the node records when it starts, or run this command again with -F")
    })?;
    crate::log_info!("copied {copied} node record(s) from the primary to the witness");
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "witness node \"{}\" (ID: {node_id}) successfully registered",
        cfg.node_name
    );
    Ok(())
}

/// A witness runs its own PostgreSQL instance: one with the primary's
/// system identifier is a member of its replication cluster.
fn check_outside_cluster(local: &mut Session, primary: &mut Session) -> Result<()> {
    let mine = db::timeline::position(local)?;
    let theirs = db::timeline::position(primary)?;
    if mine.system_identifier == theirs.system_identifier {
        return Err(Error::config(
            "the witness node cannot be part of the primary's replication cluster",
        )
        .detail(format!(
            "both nodes have system identifier {}",
            mine.system_identifier
        ))
        .hint("a witness runs on its own PostgreSQL instance, created with initdb, not cloned"));
    }
    Ok(())
}

/// The witness keeps its copy of `repmgr.nodes` in its own schema.
fn ensure_witness_schema(local: &mut Session) -> Result<()> {
    match db::schema::ensure_schema(local)? {
        SchemaChange::Created => {
            crate::log_notice!("\"repmgr\" metadata schema created on the witness")
        }
        SchemaChange::Upgraded { from } => crate::log_notice!(
            "\"repmgr\" metadata schema on the witness upgraded from version {from}"
        ),
        SchemaChange::UpToDate => {}
    }
    Ok(())
}

/// The witness's record and the `witness_register` event, in one
/// transaction on the primary; the event is returned for the caller to
/// notify once the node records are copied.
fn write_registration<'a>(
    cfg: &'a Config,
    primary: &mut Session,
    record: &NodeRecord,
    primary_rec: &NodeRecord,
) -> Result<(Event<'a>, String)> {
    let mut tx = primary
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::upsert(&mut tx, record)?;
    let ev = Event {
        primary_id: Some(primary_rec.node_id),
        conninfo: Some(primary_rec.conninfo.clone()),
        ..Event::for_node(
            cfg,
            "witness_register",
            format!(
                "witness registration succeeded; upstream node ID is {}",
                primary_rec.node_id
            ),
        )
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the witness registration", &e))?;
    Ok((ev, ts))
}

fn witness_record(cfg: &Config, upstream: i32, local: &mut Session) -> Result<NodeRecord> {
    let repluser = if cfg.replication_user.is_empty() {
        db::server::current_user(local)?
    } else {
        cfg.replication_user.clone()
    };
    Ok(NodeRecord {
        node_id: cfg.node_id.unwrap_or_default(),
        upstream_node_id: Some(upstream),
        active: true,
        node_name: cfg.node_name.clone(),
        node_type: NodeType::Witness,
        location: cfg.location.clone(),
        priority: cfg.priority,
        conninfo: cfg.conninfo.clone(),
        repluser,
        slot_name: None,
        config_file: cfg.config_file.clone(),
    })
}

/// `repmgr witness unregister [--node-id=N] [-h <primary>]`: removes the
/// witness's record on the primary; works with the witness down given -h.
pub fn unregister(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let target_id = crate::cli::parse_int_option("node-id", &ctx.opts.node_id)?
        .unwrap_or(cfg.node_id.unwrap_or_default());
    let mut local = ctx.connect_local().ok();
    let mut primary = match given_primary(ctx)? {
        Some(c) => c,
        None => primary_from_witness(local.as_mut())?,
    };
    let rec = db::nodes::get(&mut primary, target_id)?.ok_or_else(|| {
        Error::config(format!("node {target_id} is not registered"))
            .hint("check --node-id against \"repmgr cluster show\"")
    })?;
    if rec.node_type != NodeType::Witness {
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) is a {}, not a witness",
            rec.node_name, rec.node_type
        ))
        .hint(format!("use \"repmgr {} unregister\"", rec.node_type)));
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "would unregister witness node \"{}\" (ID: {target_id})",
            rec.node_name
        );
        crate::log_notice!("prerequisites for unregistering the witness are met");
        return Ok(());
    }
    let (ev, ts) = delete_registration(cfg, &mut primary, &rec)?;
    // The witness's own copy follows, when it is this node and reachable.
    if target_id == cfg.node_id.unwrap_or_default() {
        if let Some(l) = local.as_mut() {
            delete_local_copy(l, target_id);
        }
    }
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "witness node \"{}\" (ID: {target_id}) successfully unregistered",
        rec.node_name
    );
    Ok(())
}

/// Without -h: the primary, found from the witness's copy of the metadata.
fn primary_from_witness(local: Option<&mut Session>) -> Result<Session> {
    let Some(l) = local else {
        return Err(
            Error::db_conn("unable to connect to the witness node to find the primary")
                .hint("provide the primary's connection parameters with -h/-p/-U/-d"),
        );
    };
    if !db::schema::exists(l)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("provide the primary's connection parameters with -h/-p/-U/-d"),
        );
    }
    find_primary(l)?.map(|(_, c)| c).ok_or_else(|| {
        Error::db_conn("unable to connect to the primary")
            .detail("no registered node is reachable and out of recovery")
            .hint("provide the primary's connection parameters with -h/-p/-U/-d")
    })
}

/// Deletes the witness's record and writes `witness_unregister`, in one
/// transaction on the primary.
fn delete_registration<'a>(
    cfg: &'a Config,
    primary: &mut Session,
    rec: &NodeRecord,
) -> Result<(Event<'a>, String)> {
    let target_id = rec.node_id;
    let mut tx = primary
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::delete(&mut tx, target_id)?;
    let ev = Event::for_node(
        cfg,
        "witness_unregister",
        format!(
            "witness node \"{}\" (ID: {target_id}) unregistered",
            rec.node_name
        ),
    );
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the witness unregistration", &e))?;
    Ok((ev, ts))
}

/// The record in the witness's own copy; a failure is only a warning (the
/// primary's record, the one that counts, is gone).
fn delete_local_copy(local: &mut Session, target_id: i32) {
    if db::schema::exists(local).unwrap_or(false) {
        if let Err(e) = db::nodes::delete(local, target_id) {
            crate::log_warning!(
                "unable to remove the record from the witness's copy: {}",
                e.reason()
            );
        }
    }
}
