//! Re-pointing the local standby at another node: check that its history
//! allows it, write the replication configuration, apply it, wait until it
//! streams, record it. Shared by `repmgr standby follow`, `node rejoin`,
//! and repmgrd. How "it streams" is proven is in `confirm`.

mod confirm;

use std::time::{Duration, Instant};

use crate::attach;
use crate::config::Config;
use crate::conninfo::parse_described as parse_conninfo;
use crate::db::{self, nodes::NodeRecord, Session};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::{self, PgBin, ServiceAction};
use crate::replconf::{self, ReplicationConfig};

/// repmgr's slot naming: `repmgr_slot_<node_id>`, when slots are used.
pub fn slot_name(cfg: &Config) -> Option<String> {
    cfg.use_replication_slots
        .then(|| format!("repmgr_slot_{}", cfg.node_id.unwrap_or_default()))
}

const POLL: Duration = Duration::from_millis(50);

/// Runs the write of the replication configuration together with its
/// application (reload or restart; true when it restarted). The CLI runs
/// them as they are (`&|apply| apply()`); repmgrd runs them under the lock
/// it clears primary_conninfo under, so its clear never undoes them.
pub type Serialise<'s> = &'s dyn Fn(&mut dyn FnMut() -> Result<bool>) -> Result<bool>;

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
    serialise: Serialise<'_>,
) -> Result<(Event<'a>, String)> {
    let node_id = cfg.node_id.unwrap_or_default();
    let slot = slot_name(cfg);
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
    // Before re-pointing: the proof is receiving what was already there.
    let goal = confirm::goal(tconn)?;
    let restarted = serialise(&mut || {
        write_replication_config(cfg, target, slot.clone(), version)?;
        apply_config(bin, cfg, &mut local, version)
    })?;
    // A restart ended the session; confirm opens another.
    let local = (!restarted).then_some(local);

    let timeout = Duration::from_secs(cfg.standby_follow_timeout.max(1) as u64);
    confirm::wait_following(cfg, version, local, tconn, &goal, timeout).map_err(|e| {
        e.hint(format!(
            "check the PostgreSQL log of this node and that node \"{}\" accepts replication connections",
            target.node_name
        ))
    })?;

    // The record first: `cluster show` is right as soon as it can be, and
    // the old upstream may take a connect_timeout to answer (or not).
    let recorded = record_follow(cfg, target, tconn)?;
    if let (Some(s), Some(old)) = (&slot, &old_upstream) {
        if old.node_id != target.node_id {
            drop_stale_slot(old, s);
        }
    }
    Ok(recorded)
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
                "this node cannot follow node {}",
                rec),
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
/// `standby_follow_restart`, need a restart. True when it restarted.
fn apply_config(bin: &PgBin, cfg: &Config, local: &mut Session, version: i32) -> Result<bool> {
    let fail = |e: Error| e.with_code(ExitCode::FollowFail);
    if version < 130000 || cfg.standby_follow_restart {
        crate::log_notice!("restarting server to apply the new upstream");
        return pgtools::run_service_action(ServiceAction::Restart, cfg, bin, &cfg.data_directory)
            .map(|_| true)
            .map_err(fail);
    }
    if !cfg.service_reload_command.trim().is_empty() {
        return pgtools::run_service_action(ServiceAction::Reload, cfg, bin, &cfg.data_directory)
            .map(|_| false)
            .map_err(fail);
    }
    match db::server::reload_conf(local) {
        Ok(()) => Ok(false),
        Err(e) => {
            crate::log_info!(
                "pg_reload_conf() not available ({}); using pg_ctl",
                db::pg_error_text(&e)
            );
            pgtools::run_service_action(ServiceAction::Reload, cfg, bin, &cfg.data_directory)
                .map(|_| false)
                .map_err(fail)
        }
    }
}

/// How long the same walsender must stay `streaming` to count: a standby
/// on an incompatible timeline shows `streaming` for a few milliseconds
/// before each disconnect. Only for `node rejoin`, which watches from the
/// primary; a follow asks the standby itself (`confirm`).
const STABLE_STREAMING: Duration = Duration::from_millis(500);

/// Waits until the target lists this node as a streaming standby, with the
/// same walsender still streaming [`STABLE_STREAMING`] later.
pub fn wait_attached(target: &mut Session, node_name: &str, timeout: Duration) -> Result<()> {
    let mut seen: Option<(i32, Instant)> = None;
    let mut failure = None;
    let attached = crate::poll::until(timeout, POLL, || {
        let pid = match db::timeline::streaming_pid(target, node_name) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e);
                return Some(false);
            }
        };
        match (pid, seen) {
            (Some(pid), Some((p, since))) if pid == p => {
                (since.elapsed() >= STABLE_STREAMING).then_some(true)
            }
            (Some(pid), _) => {
                seen = Some((pid, Instant::now()));
                None
            }
            (None, _) => {
                seen = None;
                None
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match attached {
        Some(_) => Ok(()),
        None => Err(Error::new(
            ExitCode::FollowFail,
            format!(
                "this node did not start streaming from the new upstream within {} seconds",
                timeout.as_secs()
            ),
        )),
    }
}

fn drop_stale_slot(old: &NodeRecord, slot: &str) {
    match db::reach::connect_record(old) {
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
        match db::reach::find_primary(tconn)? {
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
            format!("standby attached to upstream node {}", target),
        )
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the follow metadata", &e))?;
    Ok((ev, ts))
}
