//! `primary register` and `primary unregister`.

use crate::db::Session;

use super::{connect_record, Ctx};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, schema::SchemaChange};
use crate::error::{Error, Result};
use crate::events::{self, Event};

/// `repmgr primary register`: creates the metadata schema if needed and
/// registers this node as the primary, all in one transaction.
pub fn register(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let node_id = cfg.node_id.unwrap_or_default();
    crate::log_info!("connecting to primary database...");
    let mut conn = ctx.connect_local()?;

    if db::server::in_recovery(&mut conn)? {
        return Err(Error::config(
            "server is in standby mode and cannot be registered as a primary",
        )
        .detail(format!(
            "node \"{}\" (ID: {node_id}) is in recovery",
            cfg.node_name
        ))
        .hint("use \"repmgr standby register\" to register a standby"));
    }

    let schema_version = db::schema::installed_version(&mut conn)?;
    if schema_version.is_some() {
        check_registration_allowed(ctx, cfg, &mut conn)?;
    }

    let record = build_record(cfg, &mut conn)?;
    if ctx.opts.dry_run {
        match schema_version {
            None => crate::log_info!("would create the \"repmgr\" metadata schema"),
            Some(_) => crate::log_info!("the \"repmgr\" metadata schema is present"),
        }
        crate::log_info!(
            "would register node \"{}\" (ID: {node_id}) as primary",
            cfg.node_name
        );
        crate::log_notice!("prerequisites for registering the primary are met");
        return Ok(());
    }

    let change = ensure_schema(&mut conn)?;
    // The schema is committed; the checks run again now that it surely
    // exists (another node may have registered meanwhile).
    if change == SchemaChange::Created {
        check_registration_allowed(ctx, cfg, &mut conn)?;
    }
    write_registration(ctx, cfg, &mut conn, &record, change)
}

/// Creates or upgrades the metadata schema (committed on its own).
fn ensure_schema(conn: &mut Session) -> Result<SchemaChange> {
    let change = db::schema::ensure_schema(conn)?;
    match change {
        SchemaChange::Created => crate::log_notice!("\"repmgr\" metadata schema created"),
        SchemaChange::Upgraded { from } => crate::log_notice!(
            "\"repmgr\" metadata schema upgraded from version {from} to {}",
            db::schema::SCHEMA_VERSION
        ),
        SchemaChange::UpToDate => {}
    }
    Ok(change)
}

/// In one transaction: the voting term, -F's deactivation of a former
/// primary, this node's record, and the events (`cluster_created` for a
/// new schema, `primary_register`); their hooks run once committed.
fn write_registration(
    ctx: &Ctx,
    cfg: &Config,
    conn: &mut Session,
    record: &NodeRecord,
    change: SchemaChange,
) -> Result<()> {
    let node_id = cfg.node_id.unwrap_or_default();
    let existed = db::nodes::get(conn, node_id)?.is_some();
    let mut tx = conn
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::init_voting_term(&mut tx)?;
    if ctx.opts.force {
        // -F over an unreachable former primary: it is no longer active.
        for p in db::nodes::active_primaries(&mut tx)? {
            if p.node_id != node_id {
                db::nodes::set_active(&mut tx, p.node_id, false)?;
            }
        }
    }
    db::nodes::upsert(&mut tx, record)?;
    let mut written = Vec::new();
    if change == SchemaChange::Created {
        let ev = Event::for_node(cfg, "cluster_created", String::new());
        written.push((events::write(&mut tx, &ev)?, ev));
    }
    let verb = if existed { "updated" } else { "registered" };
    let ev = Event {
        primary_id: Some(node_id),
        conninfo: Some(cfg.conninfo.clone()),
        ..Event::for_node(cfg, "primary_register", String::new())
    };
    written.push((events::write(&mut tx, &ev)?, ev));
    tx.commit()
        .map_err(|e| db::query_error("committing the primary registration", &e))?;
    crate::log_notice!("primary node record (ID: {node_id}) {verb}");
    for (ts, ev) in &written {
        events::notify(cfg, ev, Some(ts));
    }
    Ok(())
}

/// repmgr's refusals: this node registered already (without -F), its name
/// taken by another node, or another active primary that is reachable.
fn check_registration_allowed(ctx: &Ctx, cfg: &Config, conn: &mut Session) -> Result<()> {
    let node_id = cfg.node_id.unwrap_or_default();
    super::check_registration(conn, cfg, NodeType::Primary, ctx.opts.force)?;
    for p in db::nodes::active_primaries(conn)? {
        if p.node_id == node_id {
            continue;
        }
        let reachable_primary = match connect_record(&p) {
            Ok(mut c) => !db::server::in_recovery(&mut c).unwrap_or(true),
            Err(_) => false,
        };
        if reachable_primary {
            return Err(Error::config(format!(
                "there is already an active registered primary (\"{}\", ID: {}) in this cluster",
                p.node_name, p.node_id
            ))
            .detail("a cluster has exactly one primary; that node is reachable and is not in recovery")
            .hint("if this node is meant to replace it, stop that server first; -F does not override this check"));
        }
        if !ctx.opts.force {
            return Err(Error::config(format!(
                "another node (\"{}\", ID: {}) is registered as the active primary",
                p.node_name, p.node_id
            ))
            .detail("that node is not reachable as a primary")
            .hint(
                "use -F/--force to register this node as primary and mark that record inactive",
            ));
        }
        crate::log_warning!(
            "node {} is registered as active primary but is not reachable; it will be marked inactive",
            p);
    }
    Ok(())
}

fn build_record(cfg: &Config, conn: &mut Session) -> Result<NodeRecord> {
    let repluser = if cfg.replication_user.is_empty() {
        db::server::current_user(conn)?
    } else {
        cfg.replication_user.clone()
    };
    let node_id = cfg.node_id.unwrap_or_default();
    Ok(NodeRecord {
        node_id,
        upstream_node_id: None,
        active: true,
        node_name: cfg.node_name.clone(),
        node_type: NodeType::Primary,
        location: cfg.location.clone(),
        priority: cfg.priority,
        conninfo: cfg.conninfo.clone(),
        repluser,
        slot_name: crate::ops::follow::slot_name(cfg),
        config_file: cfg.config_file.clone(),
    })
}

/// `repmgr primary unregister`: removes an inactive primary's record (or,
/// with -F, an active primary that has no standbys attached).
pub fn unregister(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let mut local = ctx.connect_local()?;
    let target_id = crate::cli::parse_int_option("node-id", &ctx.opts.node_id)?
        .unwrap_or(cfg.node_id.unwrap_or_default());

    if !db::schema::exists(&mut local)? {
        return Err(
            Error::config("the repmgr metadata schema is not installed on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let (primary, mut pconn) = super::find_primary(&mut local)?.ok_or_else(|| {
        Error::db_conn("unable to find a reachable primary to write the change to")
            .hint("the primary must be running to change the metadata")
    })?;

    let target = db::nodes::get(&mut pconn, target_id)?
        .ok_or_else(|| Error::config(format!("node {target_id} is not registered")))?;
    if target.node_type != NodeType::Primary {
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) is a {}, not a primary",
            target.node_name, target.node_type
        ))
        .hint(format!("use \"repmgr {} unregister\"", target.node_type)));
    }
    let downstream = db::nodes::downstream_of(&mut pconn, target_id)?;
    if !downstream.is_empty() {
        let names: Vec<String> = downstream.iter().map(|n| format!("{}", n)).collect();
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) has registered downstream nodes",
            target.node_name
        ))
        .detail(format!("downstream nodes: {}", names.join(", ")))
        .hint("unregister or re-point the downstream nodes first"));
    }
    let is_current_primary = target.node_id == primary.node_id;
    if (target.active || is_current_primary) && !ctx.opts.force {
        return Err(Error::config(format!(
            "node \"{}\" (ID: {target_id}) is an active primary",
            target.node_name
        ))
        .hint("use -F/--force to unregister an active primary without standbys"));
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "would unregister primary node \"{}\" (ID: {target_id})",
            target.node_name
        );
        return Ok(());
    }
    let mut tx = pconn
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::delete(&mut tx, target_id)?;
    let ev = Event::for_node(
        cfg,
        "primary_unregister",
        format!(
            "primary node \"{}\" (ID: {target_id}) unregistered",
            target.node_name
        ),
    );
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the unregistration", &e))?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "node \"{}\" (ID: {target_id}) was successfully unregistered",
        target.node_name
    );
    Ok(())
}
