//! repmgrd control: `service status|pause|unpause` (also spelt `daemon …`).
//! `service status` is `service/status.rs`; starting and stopping repmgrd
//! is `daemon.rs`.
//!
//! repmgr keeps repmgrd's state in the C extension's shared memory on each
//! node; this implementation keeps it in `repmgr.repmgrd_status` (see
//! `db::daemon_status`): every repmgrd stamps its row on the primary, and
//! each node's replicated copy carries the pause flag its repmgrd obeys.

mod status;

use std::time::{Duration, Instant};

use crate::db::Session;

use super::Ctx;
use crate::db::{self, nodes::NodeRecord};
use crate::error::{Error, ExitCode, Result};

pub use status::status;

/// How long `service pause` waits for reachable standbys to replay the flag.
const PAUSE_CONFIRM_LIMIT: Duration = Duration::from_secs(10);

pub(super) const POLL: Duration = Duration::from_millis(200);

/// repmgr's `log_verbose(LOG_INFO, …)`: shown with -v/--verbose only.
pub(super) fn verbose(ctx: &Ctx, msg: &str) {
    if ctx.opts.verbose {
        crate::log_info!("{msg}");
    }
}

/// The local node's metadata: the node records, or repmgr's refusals.
fn read_nodes(conn: &mut Session) -> Result<Vec<NodeRecord>> {
    if !db::schema::exists(conn)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let nodes = db::nodes::all(conn)?;
    if nodes.is_empty() {
        return Err(Error::config("no node records were found")
            .hint("ensure at least one node is registered"));
    }
    Ok(nodes)
}

/// `repmgr service pause` / `unpause`: sets the flag for every registered
/// node in one statement on the primary; each repmgrd reads its own node's
/// replicated copy.
pub fn pause(ctx: &Ctx, pause: bool) -> Result<()> {
    let verb = if pause { "pause" } else { "unpause" };
    let done = if pause { "paused" } else { "unpaused" };

    verbose(ctx, "connecting to database");
    let mut local = ctx.connect_local()?;
    let nodes = read_nodes(&mut local)?;
    let fail = || {
        Error::new(
            ExitCode::RepmgrdPause,
            format!("unable to {verb} {} node(s)", nodes.len()),
        )
    };
    let Some((primary, mut pconn)) = super::find_primary(&mut local)? else {
        return Err(fail()
            .detail("no reachable primary was found; the pause flag is written on the primary")
            .hint("execute \"repmgr service status\" to view current status"));
    };
    drop(local);
    crate::log_info!("primary is node {}", primary);
    let reached = reach_for_pause(&nodes);

    let version = db::schema::installed_version(&mut pconn)?.unwrap_or(0);
    let needs_upgrade = version < db::schema::SCHEMA_VERSION;
    if ctx.opts.dry_run {
        if needs_upgrade {
            crate::log_info!(
                "would upgrade the repmgr metadata schema on the primary from version {version} to {}",
                db::schema::SCHEMA_VERSION
            );
        }
        for n in &nodes {
            crate::log_info!("would {verb} node {} ({})", n.node_id, n.node_name);
        }
        return Ok(());
    }
    if needs_upgrade {
        upgrade_schema(&mut pconn, version).map_err(|e| {
            let detail = e.reason().to_string();
            fail()
                .detail(format!(
                    "upgrading the repmgr metadata schema failed: {detail}"
                ))
                .hint(e.hint.clone().unwrap_or_default())
        })?;
    }

    let ids: Vec<i32> = nodes.iter().map(|n| n.node_id).collect();
    if let Err(e) = db::daemon_status::set_paused(&mut pconn, &ids, pause) {
        for n in &nodes {
            crate::log_notice!("node {} ({}) not {done}", n.node_id, n.node_name);
        }
        return Err(fail()
            .detail(e.detail.unwrap_or_else(|| e.messages.join("; ")))
            .hint("execute \"repmgr service status\" to view current status"));
    }
    for n in &nodes {
        crate::log_notice!("node {} ({}) {done}", n.node_id, n.node_name);
    }
    let mut reached = reached;
    pause_legacy(&mut reached, pause);
    confirm_replayed(reached, primary.node_id, pause);
    Ok(())
}

/// Connects to every node, for the confirmation; the nodes it cannot
/// reach are warned about now.
fn reach_for_pause(nodes: &[NodeRecord]) -> Vec<super::Reached> {
    let reached = super::reach_all(nodes);
    for r in &reached {
        if r.conn.is_none() {
            crate::log_warning!(
                "unable to connect to node {} ({}); its repmgrd will see the change once the node has replayed it",
                r.node.node_id,
                r.node.node_name
            );
        }
    }
    reached
}

/// Nodes still monitored by repmgr 5's repmgrd (a cluster taken over node
/// by node) get its flag too, in their extension's shared memory, as its
/// own `service pause` sets it.
fn pause_legacy(reached: &mut [super::Reached], pause: bool) {
    let done = if pause { "paused" } else { "unpaused" };
    for r in reached.iter_mut() {
        let Some(c) = r.conn.as_mut() else { continue };
        if !matches!(db::takeover::legacy_daemon(c), Ok(Some(_))) {
            continue;
        }
        match db::takeover::legacy_pause(c, pause) {
            Ok(true) => crate::log_notice!(
                "repmgr 5's repmgrd on node {} ({}) {done}",
                r.node.node_id,
                r.node.node_name
            ),
            Ok(false) => {}
            Err(e) => crate::log_warning!(
                "unable to set repmgr 5's pause flag on node {} ({}): {}",
                r.node.node_id,
                r.node.node_name,
                e.reason()
            ),
        }
    }
}

/// Brings the primary's metadata schema up from `version`, so that it has
/// the pause flag.
fn upgrade_schema(pconn: &mut Session, version: i32) -> Result<()> {
    crate::log_notice!(
        "upgrading the repmgr metadata schema on the primary from version {version} to {}",
        db::schema::SCHEMA_VERSION
    );
    db::schema::ensure_schema(pconn).map(|_| ())
}

/// Waits (bounded) for the reachable standbys to replay the flag, which
/// they should within moments, and warns about those that did not.
fn confirm_replayed(reached: Vec<super::Reached>, primary_id: i32, pause: bool) {
    let mut pending: Vec<(NodeRecord, Session)> = reached
        .into_iter()
        .filter(|r| r.node.node_id != primary_id)
        .filter_map(|r| r.conn.map(|c| (r.node, c)))
        .collect();
    let start = Instant::now();
    loop {
        pending.retain_mut(
            |(n, c)| !matches!(db::daemon_status::is_paused(c, n.node_id), Ok(v) if v == pause),
        );
        if pending.is_empty() || start.elapsed() >= PAUSE_CONFIRM_LIMIT {
            break;
        }
        std::thread::sleep(POLL);
    }
    for (n, _) in &pending {
        crate::log_warning!(
            "node {} ({}) has not yet replayed the change after {} seconds",
            n.node_id,
            n.node_name,
            PAUSE_CONFIRM_LIMIT.as_secs()
        );
        crate::log_detail!("its repmgrd obeys the flag once the node has replayed it");
    }
}
