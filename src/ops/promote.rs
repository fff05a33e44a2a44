//! Promoting the local standby: request it the way repmgr does, wait until
//! it accepts writes, record the new roles and the next voting term.
//! Shared by `repmgr standby promote` and repmgrd.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::{self, Session};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::{self, PgBin, ServiceAction};

/// How often promotion progress is checked: the server is usually writable
/// within ~100 ms of the request.
const PROMOTE_POLL: Duration = Duration::from_millis(10);

/// Promotes the local standby and waits until it accepts writes (at most
/// `promote_check_timeout`). Shared by `standby promote` and repmgrd.
/// `reconnect` opens a new local connection (a promote command may restart
/// the server). Returns a connection to the new primary.
pub fn promote_local(
    cfg: &Config,
    bin: &PgBin,
    mut local: Session,
    reconnect: &dyn Fn() -> Result<Session>,
) -> Result<Session> {
    crate::log_notice!("promoting standby to primary");
    let started = Instant::now();
    request_promotion(cfg, bin, &mut local)?;
    let timeout = Duration::from_secs(cfg.promote_check_timeout.max(1) as u64);
    crate::log_notice!(
        "waiting up to {} seconds for promotion to complete",
        timeout.as_secs()
    );
    let local = wait_until_primary(local, reconnect, timeout).map_err(|e| {
        e.hint("check the PostgreSQL log of this node; the promotion may still complete later")
    })?;
    crate::log_info!(
        "promotion completed after {} ms",
        started.elapsed().as_millis()
    );
    Ok(local)
}

/// service_promote_command > pg_promote() > pg_ctl promote, as repmgr.
fn request_promotion(cfg: &Config, bin: &PgBin, local: &mut Session) -> Result<()> {
    let fail = |e: Error| e.with_code(ExitCode::PromotionFail);
    if !cfg.service_promote_command.trim().is_empty() {
        return pgtools::run_service_action(ServiceAction::Promote, cfg, bin, &cfg.data_directory)
            .map_err(fail);
    }
    match db::server::promote(local) {
        Ok(()) => Ok(()),
        Err(e) => {
            crate::log_info!(
                "pg_promote() not available ({}); using pg_ctl",
                db::pg_error_text(&e)
            );
            if cfg.data_directory.is_empty() {
                return Err(Error::new(
                    ExitCode::PromotionFail,
                    "unable to promote: pg_promote() failed and data_directory is not set",
                )
                .detail(db::pg_error_text(&e))
                .hint("set data_directory in repmgr.conf, or grant EXECUTE on pg_promote to the repmgr user"));
            }
            pgtools::run_service_action(ServiceAction::Promote, cfg, bin, &cfg.data_directory)
                .map_err(fail)
        }
    }
}

/// Polls until the server leaves recovery, reconnecting if the promote
/// command restarted it. Returns a usable connection to the new primary.
fn wait_until_primary(
    conn: Session,
    reconnect: &dyn Fn() -> Result<Session>,
    timeout: Duration,
) -> Result<Session> {
    let mut conn = Some(conn);
    let done = crate::poll::until(timeout, PROMOTE_POLL, || {
        let mut c = match conn.take() {
            Some(c) => c,
            None => reconnect().ok()?,
        };
        match db::server::in_recovery(&mut c) {
            Ok(false) => Some(c),
            Ok(true) => {
                conn = Some(c);
                None
            }
            // The promote command may have restarted the server: a new
            // connection is opened at the next step.
            Err(_) => None,
        }
    });
    done.ok_or_else(|| {
        Error::new(
            ExitCode::PromotionFail,
            format!(
                "promotion did not complete within {} seconds",
                timeout.as_secs()
            ),
        )
    })
}

/// In one transaction on the new primary: roles, voting term, event.
/// `term`: the one repmgrd's votes were granted in; None (a promotion by
/// hand): the next one.
pub fn record_promotion<'a>(
    cfg: &'a Config,
    conn: &mut Session,
    term: Option<i32>,
) -> Result<(i32, Event<'a>, String)> {
    let node_id = cfg.node_id.unwrap_or_default();
    let mut tx = conn
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    let former = db::nodes::active_primaries(&mut tx)?
        .into_iter()
        .find(|p| p.node_id != node_id);
    db::nodes::set_primary(&mut tx, node_id)?;
    let term = match term {
        Some(t) => db::nodes::set_voting_term(&mut tx, t)?,
        None => db::nodes::increment_voting_term(&mut tx)?,
    };
    let ev = Event {
        primary_id: former.as_ref().map(|p| p.node_id),
        conninfo: Some(cfg.conninfo.clone()),
        ..Event::for_node(
            cfg,
            "standby_promote",
            format!(
                "server \"{}\" (ID: {node_id}) was successfully promoted to primary",
                cfg.node_name
            ),
        )
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the promotion metadata", &e))
        .map_err(|e| e.with_code(ExitCode::PromotionFail))?;
    Ok((term, ev, ts))
}
