//! The switchover proper, from the old primary's shutdown to this node's
//! promotion and the `standby_switchover` event. Until the promotion, a
//! failure starts the old primary again.

use std::time::{Duration, Instant};

use crate::db::Session;

use super::finish::finish;
use super::plan::{fail, Plan, REMOTE_TIMEOUT};
use crate::commands::Ctx;
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, connect::Ping, nodes::NodeRecord};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::PgBin;
use crate::remote::{self, Ssh};

/// How often the old primary is pinged while it shuts down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// The switchover proper: stop the old primary, check this node has all
/// its WAL, promote, then rejoin the old primary and have the siblings
/// follow.
pub fn run_switchover(
    ctx: &Ctx,
    cfg: &Config,
    ssh: &Ssh,
    plan: &Plan,
    pconn: Session,
    mut local: Session,
    started: Instant,
) -> Result<()> {
    let p = &plan.primary;
    let old_repmgr = remote::remote_repmgr(cfg, p);
    let pci = ConnInfo::parse(&p.conninfo)
        .map_err(|e| Error::config(e).with_code(ExitCode::SwitchoverFail))?;
    checkpoint_primary(pconn);

    crate::log_notice!("stopping current primary node {}", p);
    let window = Instant::now();
    let stop = super::plan::stop_command(ctx, &old_repmgr);
    let restart = stop_primary(cfg, ssh, plan, &old_repmgr, &stop, &pci)?;
    check_promotion_safe(ctx, cfg, ssh, plan, &old_repmgr, &mut local)?;
    let mut newp = promote(ctx, cfg, local)?;
    // This node is the primary now: the old one must stay down.
    restart.disarm();
    let (_term, ev, ts) = crate::ops::promote::record_promotion(cfg, &mut newp, None)?;
    events::notify(cfg, &ev, Some(&ts));
    crate::log_notice!(
        "this node is now the primary; writes were unavailable for {} ms",
        window.elapsed().as_millis()
    );

    let incomplete = finish(ctx, cfg, ssh, plan, &old_repmgr, &mut newp);
    record_switchover(cfg, plan, &mut newp, incomplete, started)
}

/// A checkpoint now makes the shutdown checkpoint (inside the window) short.
fn checkpoint_primary(mut pconn: Session) {
    if let Err(e) = db::server::checkpoint(&mut pconn) {
        crate::log_info!(
            "CHECKPOINT on the primary not possible ({}); continuing",
            db::pg_error_text(&e)
        );
    }
}

/// Starts the old primary again when dropped armed. From its shutdown
/// until this node's promotion, every way out of the switchover (an error
/// returned, a panic) must leave the cluster its one primary.
struct RestartOldPrimary<'a> {
    ssh: &'a Ssh,
    host: &'a str,
    repmgr: &'a str,
    primary: &'a NodeRecord,
    armed: bool,
}

impl RestartOldPrimary<'_> {
    /// The promotion is done: leave the old primary down.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RestartOldPrimary<'_> {
    fn drop(&mut self) {
        if self.armed {
            restart_old_primary(self.ssh, self.host, self.repmgr, self.primary);
        }
    }
}

/// Stops the old primary with `node service --action=stop --checkpoint`
/// and waits until it answers no more. Once the stop was accepted, the
/// returned guard (or a failure here) starts it again.
fn stop_primary<'a>(
    cfg: &Config,
    ssh: &'a Ssh,
    plan: &'a Plan,
    old_repmgr: &'a str,
    stop: &str,
    pci: &ConnInfo,
) -> Result<RestartOldPrimary<'a>> {
    let p = &plan.primary;
    let host = &plan.primary_host;
    let out = ssh.run(host, stop, REMOTE_TIMEOUT)?;
    if !out.success() {
        return Err(
            fail(format!("unable to stop the primary \"{}\"", p.node_name))
                .detail(format!("{}{}", out.stdout, out.stderr).trim().to_string())
                .hint("nothing was changed; check the primary's service commands"),
        );
    }
    // It may still finish shutting down after a timeout below: the start
    // requested then keeps the cluster from being left without its primary.
    let restart = RestartOldPrimary {
        ssh,
        host,
        repmgr: old_repmgr,
        primary: p,
        armed: true,
    };
    let timeout = Duration::from_secs(cfg.shutdown_check_timeout.max(1) as u64);
    // Until nothing answers at all: "shutting down" (Reject) is not down yet.
    let down = crate::poll::until(timeout, SHUTDOWN_POLL, || {
        (db::connect::ping(pci, crate::commands::APP_NAME) == Ping::NoResponse).then_some(())
    });
    if down.is_none() {
        return Err(fail(format!(
            "the primary \"{}\" did not shut down within {} seconds",
            p.node_name,
            timeout.as_secs()
        ))
        .hint("nothing was changed on this node; a start of the old primary was requested in case it stops later"));
    }
    Ok(restart)
}

/// The old primary shut down cleanly (or -F) and this node received its
/// WAL up to the shutdown checkpoint (or --always-promote).
fn check_promotion_safe(
    ctx: &Ctx,
    cfg: &Config,
    ssh: &Ssh,
    plan: &Plan,
    old_repmgr: &str,
    local: &mut Session,
) -> Result<()> {
    let p = &plan.primary;
    let (state, checkpoint) =
        shutdown_state(ssh, &plan.primary_host, old_repmgr).map_err(aborted)?;
    // "DOWN" is what this repmgr said before it used repmgr 5's word: an
    // old primary may still run such a binary.
    if state != "SHUTDOWN" && state != "DOWN" && !ctx.opts.force {
        return Err(fail(format!(
            "the primary \"{}\" did not shut down cleanly (state {state})",
            p.node_name
        ))
        .detail("promoting now could lose transactions it committed")
        .hint("the old primary was started again; investigate, or use -F to switch over anyway"));
    }
    if let Some(lsn) = checkpoint {
        if !received_up_to(cfg, local, lsn).map_err(aborted)? && !ctx.opts.always_promote {
            return Err(fail("this standby has not received all WAL of the old primary")
                .detail(format!("its shutdown checkpoint is at {}", db::timeline::format_lsn(lsn)))
                .hint("the old primary was started again; retry, or use --always-promote to accept the loss"));
        }
    }
    Ok(())
}

/// A step between the old primary's shutdown and the promotion failed.
fn aborted(e: Error) -> Error {
    fail(format!("switchover aborted: {}", e.message()))
        .detail(e.detail.clone().unwrap_or_default())
        .hint("the old primary was started again; nothing else changed")
}

fn promote(ctx: &Ctx, cfg: &Config, local: Session) -> Result<Session> {
    // repmgr's testing aid, at the same place (after the WAL check).
    if cfg.promote_delay > 0 {
        crate::log_info!(
            "sleeping {} seconds (\"promote_delay\") before promoting standby",
            cfg.promote_delay
        );
        std::thread::sleep(Duration::from_secs(cfg.promote_delay as u64));
    }
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let reconnect = || ctx.connect_local();
    crate::ops::promote::promote_local(cfg, &bin, local, &reconnect).map_err(|e| {
        fail("promotion of this node failed; the old primary was started again")
            .detail(e.message().to_string())
    })
}

/// The `standby_switchover` event, and the outcome: done, or done with
/// the steps that did not complete (exit 22).
fn record_switchover(
    cfg: &Config,
    plan: &Plan,
    newp: &mut Session,
    incomplete: Vec<String>,
    started: Instant,
) -> Result<()> {
    let p = &plan.primary;
    let me = cfg.node_id.unwrap_or_default();
    let details = format!(
        "node \"{}\" (ID: {me}) promoted to primary, node {} demoted to standby",
        cfg.node_name, p
    );
    let ev = Event {
        successful: incomplete.is_empty(),
        primary_id: Some(p.node_id),
        ..Event::for_node(cfg, "standby_switchover", details)
    };
    events::record(Some(newp), cfg, &ev);
    if incomplete.is_empty() {
        crate::log_notice!(
            "STANDBY SWITCHOVER has completed successfully in {} ms",
            started.elapsed().as_millis()
        );
        Ok(())
    } else {
        Err(Error::many(ExitCode::SwitchoverIncomplete, incomplete)
            .detail(format!("node \"{}\" is the primary now", cfg.node_name))
            .hint("run the commands named above on those nodes"))
    }
}

/// `node status --is-shutdown-cleanly` on the old primary's host.
fn shutdown_state(ssh: &Ssh, host: &str, repmgr: &str) -> Result<(String, Option<u64>)> {
    let out = ssh.run(
        host,
        &format!("{repmgr} node status --is-shutdown-cleanly"),
        REMOTE_TIMEOUT,
    )?;
    let mut state = "UNKNOWN".to_string();
    let mut lsn = None;
    for word in out.stdout.split_whitespace() {
        if let Some(s) = word.strip_prefix("--state=") {
            state = s.to_string();
        }
        if let Some(l) = word.strip_prefix("--last-checkpoint-lsn=") {
            lsn = l
                .parse::<tokio_postgres::types::PgLsn>()
                .ok()
                .map(u64::from);
        }
    }
    crate::log_info!("old primary's shutdown state: {state}");
    Ok((state, lsn))
}

/// Waits up to wal_receive_check_timeout until this node has received
/// everything up to and including the old primary's shutdown checkpoint.
fn received_up_to(cfg: &Config, local: &mut Session, checkpoint: u64) -> Result<bool> {
    let limit = Duration::from_secs(cfg.wal_receive_check_timeout.max(1) as u64);
    let mut failure = None;
    let got = crate::poll::until(limit, SHUTDOWN_POLL, || {
        match db::timeline::position(local) {
            Ok(pos) => (pos.lsn > checkpoint).then_some(()),
            Err(e) => {
                failure = Some(e);
                Some(())
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(got.is_some()),
    }
}

fn restart_old_primary(ssh: &Ssh, host: &str, repmgr: &str, p: &NodeRecord) {
    crate::log_notice!("starting the old primary \"{}\" again", p.node_name);
    match ssh.run(
        host,
        &format!("{repmgr} node service --action=start"),
        REMOTE_TIMEOUT,
    ) {
        Ok(o) if o.success() => {}
        Ok(o) => crate::log_error!(
            "unable to start \"{}\" again: {}{}",
            p.node_name,
            o.stdout,
            o.stderr
        ),
        Err(e) => crate::log_error!("unable to start \"{}\" again: {}", p.node_name, e),
    }
}
