//! `repmgr standby switchover`: swap roles with the primary, as repmgr does
//! (§2.4): checks first, pause repmgrd, stop the primary cleanly, make sure
//! this standby has everything up to its shutdown checkpoint, promote, make
//! the old primary a standby of this node (`node rejoin` there), have the
//! siblings follow, unpause.
//!
//! Nothing is left half done. Any failure before the primary is stopped
//! changes nothing. After that, the cluster is left with exactly one
//! primary — the old one restarted if this node could not take over
//! safely, or this node — and the message says what to run next (exit 18
//! when the switchover did not happen, 22 when it happened but something
//! after the promotion did not finish).
//!
//! Unlike repmgr, the ssh checks run in parallel and every remote command
//! shares one multiplexed connection per host, which keeps the
//! write-unavailable window to a few hundred milliseconds.

use std::time::{Duration, Instant};

use crate::db::Session;

use crate::commands::{find_primary, Ctx};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, connect::Ping, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::PgBin;
use crate::remote::{self, Ssh};

/// How often the old primary is pinged while it shuts down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);
const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);

fn fail(msg: impl Into<String>) -> Error {
    Error::new(ExitCode::SwitchoverFail, msg)
}

/// The nodes taking part, found and checked before anything changes.
struct Plan {
    primary: NodeRecord,
    primary_host: String,
    siblings: Vec<NodeRecord>,
    /// Nodes whose repmgrd was paused before we started.
    already_paused: Vec<i32>,
    all_ids: Vec<i32>,
}

pub fn switchover(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(true)?;
    let started = Instant::now();
    let mut local = ctx.connect_local()?;
    let (plan, mut pconn) = check_prerequisites(ctx, cfg, &mut local)?;
    let ssh = Ssh::new(cfg, ctx.opts.remote_user.as_deref()).multiplexed();
    check_remote(ctx, cfg, &ssh, &plan)?;

    let pause = !ctx.opts.repmgrd_no_pause;
    if ctx.opts.dry_run {
        print_plan(cfg, &plan, pause);
        return Ok(());
    }
    if pause {
        pause_repmgrd(&mut pconn, &plan.all_ids, true)?;
    }
    let result = run_switchover(ctx, cfg, &ssh, &plan, pconn, local, started);
    if pause {
        unpause_after(ctx, cfg, &plan);
    }
    result
}

/// Everything checked before anything is touched.
fn check_prerequisites(ctx: &Ctx, cfg: &Config, local: &mut Session) -> Result<(Plan, Session)> {
    let me = cfg.node_id.unwrap_or_default();
    if !db::server::in_recovery(local)? {
        return Err(
            fail("switchover must be executed from the standby node to be promoted")
                .detail(format!(
                    "node \"{}\" (ID: {me}) is the primary",
                    cfg.node_name
                ))
                .hint(
                    "run \"repmgr standby switchover\" on the standby that should become primary",
                ),
        );
    }
    if db::server::wal_replay_paused(local)? {
        return Err(fail("WAL replay is paused on this node")
            .hint("resume replay with \"SELECT pg_wal_replay_resume()\" and retry"));
    }
    if !db::schema::exists(local)? {
        return Err(Error::config(
            "the repmgr metadata schema was not found on this node",
        ));
    }
    let (primary, mut pconn) = find_primary(local)?.ok_or_else(|| {
        fail("unable to find a reachable primary")
            .hint("a switchover needs a running primary; to replace a failed one, use \"repmgr standby promote\"")
    })?;
    let nodes = db::nodes::all(local)?;
    let my_rec = nodes.iter().find(|n| n.node_id == me).ok_or_else(|| {
        Error::config("this node is not registered").hint("run \"repmgr standby register\" first")
    })?;
    if my_rec.upstream_node_id != Some(primary.node_id) {
        return Err(fail(format!(
            "this node is not a direct standby of the primary \"{}\" (ID: {})",
            primary.node_name, primary.node_id
        ))
        .hint(format!(
            "run \"repmgr standby follow --upstream-node-id={}\" first",
            primary.node_id
        )));
    }
    if !db::timeline::is_streaming_to(&mut pconn, &cfg.node_name)? {
        return Err(fail(format!(
            "this node is not streaming from the primary \"{}\" (ID: {})",
            primary.node_name, primary.node_id
        ))
        .hint("check replication with \"repmgr cluster show\" and the PostgreSQL logs"));
    }
    if ctx.opts.force_rewind.is_some() && !db::server::rewind_possible(&mut pconn)? {
        return Err(fail("pg_rewind cannot be used on the current primary")
            .detail("neither \"wal_log_hints\" nor data checksums are enabled there")
            .hint("set wal_log_hints = on on the primary (needs a restart), or leave out --force-rewind"));
    }
    let siblings: Vec<NodeRecord> = nodes
        .iter()
        .filter(|n| n.active && n.node_id != me && n.upstream_node_id == Some(primary.node_id))
        .filter(|n| n.node_type == NodeType::Standby)
        .cloned()
        .collect();
    let already_paused = db::daemon_status::all(&mut pconn)?
        .into_iter()
        .filter(|s| s.paused)
        .map(|s| s.node_id)
        .collect();
    let plan = Plan {
        primary_host: remote::node_host(&primary)?,
        primary,
        siblings,
        already_paused,
        all_ids: nodes.iter().map(|n| n.node_id).collect(),
    };
    Ok((plan, pconn))
}

/// ssh to the primary (and siblings with --siblings-follow), the remote
/// repmgr's version and configuration file — all hosts at once.
fn check_remote(ctx: &Ctx, cfg: &Config, ssh: &Ssh, plan: &Plan) -> Result<()> {
    let mut targets = vec![plan.primary.clone()];
    if ctx.opts.siblings_follow {
        targets.extend(plan.siblings.iter().cloned());
    }
    let ours = env!("CARGO_PKG_VERSION");
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|rec| {
                s.spawn(move || -> Result<()> {
                    let host = remote::node_host(rec)?;
                    let repmgr = remote::remote_repmgr(cfg, rec);
                    let out = ssh.run(&host, &format!("{repmgr} --version"), REMOTE_TIMEOUT)?;
                    let theirs = out.stdout.trim();
                    if !out.success() || !theirs.ends_with(ours) {
                        return Err(fail(format!(
                            "repmgr on node \"{}\" is missing or of another version",
                            rec.node_name
                        ))
                        .detail(format!(
                            "\"{repmgr} --version\" printed \"{theirs}\"; this is repmgr {ours}"
                        ))
                        .hint("install the same repmgr on every node, or set repmgr_bindir"));
                    }
                    let conf = crate::process::shell_quote(&rec.config_file);
                    let out = ssh.run(&host, &format!("test -r {conf}"), REMOTE_TIMEOUT)?;
                    if !out.success() {
                        return Err(fail(format!(
                            "the configuration file of node \"{}\" is not readable on {host}",
                            rec.node_name
                        ))
                        .detail(format!(
                            "expected at \"{}\" (repmgr.nodes.config_file)",
                            rec.config_file
                        ))
                        .hint("re-register that node with the right -f path"));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("check thread failed")))
            })
            .collect()
    });
    for r in results {
        r.map_err(|e| {
            if e.code == ExitCode::BadSsh {
                e
            } else {
                e.with_code(ExitCode::SwitchoverFail)
            }
        })?;
    }
    Ok(())
}

fn print_plan(cfg: &Config, plan: &Plan, pause: bool) {
    let p = &plan.primary;
    crate::log_notice!("prerequisites for a switchover are met (--dry-run: nothing changed)");
    if pause {
        crate::log_info!("would pause repmgrd on {} node(s)", plan.all_ids.len());
    }
    crate::log_info!(
        "would stop primary \"{}\" (ID: {}) with \"{} node service --action=stop --checkpoint\" on {}",
        p.node_name,
        p.node_id,
        remote::remote_repmgr(cfg, p),
        plan.primary_host
    );
    crate::log_info!("would promote this node \"{}\"", cfg.node_name);
    crate::log_info!("would rejoin \"{}\" as a standby of this node", p.node_name);
    for s in &plan.siblings {
        crate::log_info!(
            "sibling \"{}\" (ID: {}) would need to follow this node",
            s.node_name,
            s.node_id
        );
    }
}

fn pause_repmgrd(pconn: &mut Session, ids: &[i32], paused: bool) -> Result<()> {
    if !db::daemon_status::table_exists(pconn)? {
        return Ok(());
    }
    db::daemon_status::set_paused(pconn, ids, paused).map_err(|e| {
        e.with_code(ExitCode::SwitchoverFail)
            .hint("use --repmgrd-no-pause to go ahead without pausing repmgrd")
    })?;
    crate::log_info!(
        "repmgrd {} on {} node(s)",
        if paused { "paused" } else { "unpaused" },
        ids.len()
    );
    Ok(())
}

/// Unpauses on whichever node is primary now; nodes paused before we
/// started stay paused unless --repmgrd-force-unpause.
fn unpause_after(ctx: &Ctx, _cfg: &Config, plan: &Plan) {
    let ids: Vec<i32> = plan
        .all_ids
        .iter()
        .copied()
        .filter(|id| ctx.opts.repmgrd_force_unpause || !plan.already_paused.contains(id))
        .collect();
    let primary = ctx
        .connect_local()
        .ok()
        .and_then(|mut l| find_primary(&mut l).ok().flatten());
    match primary {
        Some((_, mut c)) => {
            if let Err(e) = pause_repmgrd(&mut c, &ids, false) {
                crate::log_warning!("unable to unpause repmgrd: {}", e.message());
                crate::log_hint!("run \"repmgr service unpause\"");
            }
        }
        None => {
            crate::log_warning!("no primary reachable to unpause repmgrd");
            crate::log_hint!("run \"repmgr service unpause\" once the cluster has a primary");
        }
    }
}

/// The switchover proper: stop the old primary, check this node has all
/// its WAL, promote, then rejoin the old primary and have the siblings
/// follow.
fn run_switchover(
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

    crate::log_notice!(
        "stopping current primary node \"{}\" (ID: {})",
        p.node_name,
        p.node_id
    );
    let window = Instant::now();
    let restart = stop_primary(cfg, ssh, plan, &old_repmgr, &pci)?;
    check_promotion_safe(ctx, cfg, ssh, plan, &old_repmgr, &mut local)?;
    let mut newp = promote(ctx, cfg, local)?;
    // This node is the primary now: the old one must stay down.
    restart.disarm();
    let (_term, ev, ts) = crate::ops::promote::record_promotion(cfg, &mut newp)?;
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
    pci: &ConnInfo,
) -> Result<RestartOldPrimary<'a>> {
    let p = &plan.primary;
    let host = &plan.primary_host;
    let out = ssh.run(
        host,
        &format!("{old_repmgr} node service --action=stop --checkpoint"),
        REMOTE_TIMEOUT,
    )?;
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
    let deadline = Instant::now() + timeout;
    // Until nothing answers at all: "shutting down" (Reject) is not down yet.
    while db::connect::ping(pci, crate::commands::APP_NAME) != Ping::NoResponse {
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "the primary \"{}\" did not shut down within {} seconds",
                p.node_name,
                timeout.as_secs()
            ))
            .hint("nothing was changed on this node; a start of the old primary was requested in case it stops later"));
        }
        std::thread::sleep(SHUTDOWN_POLL);
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
    if state != "DOWN" && !ctx.opts.force {
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
        "node \"{}\" (ID: {me}) promoted to primary, node \"{}\" (ID: {}) demoted to standby",
        cfg.node_name, p.node_name, p.node_id
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
    let deadline =
        Instant::now() + Duration::from_secs(cfg.wal_receive_check_timeout.max(1) as u64);
    loop {
        let pos = db::timeline::position(local)?;
        if pos.lsn > checkpoint {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(SHUTDOWN_POLL);
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

/// After the promotion: the old primary rejoins, the siblings follow.
/// Returns what did not complete (empty: all done).
fn finish(
    ctx: &Ctx,
    cfg: &Config,
    ssh: &Ssh,
    plan: &Plan,
    old_repmgr: &str,
    newp: &mut Session,
) -> Vec<String> {
    let mut incomplete = Vec::new();
    incomplete.extend(rejoin_old_primary(ctx, cfg, ssh, plan, old_repmgr, newp));
    if ctx.opts.siblings_follow {
        incomplete.extend(siblings_follow(cfg, ssh, plan));
    } else if !plan.siblings.is_empty() {
        crate::log_warning!(
            "{} sibling node(s) still stream from \"{}\", now a standby (cascading)",
            plan.siblings.len(),
            plan.primary.node_name
        );
        crate::log_hint!(
            "run \"repmgr standby follow\" on them, or use --siblings-follow next time"
        );
    }
    incomplete
}

/// `node rejoin` on the old primary's host, then a wait until it streams
/// from this node; what did not complete, if anything.
fn rejoin_old_primary(
    ctx: &Ctx,
    cfg: &Config,
    ssh: &Ssh,
    plan: &Plan,
    old_repmgr: &str,
    newp: &mut Session,
) -> Option<String> {
    let p = &plan.primary;
    let rejoin = rejoin_command(ctx, cfg, old_repmgr);
    crate::log_notice!("rejoining \"{}\" as a standby of this node", p.node_name);
    let limit = Duration::from_secs(cfg.node_rejoin_timeout.max(1) as u64) + REMOTE_TIMEOUT;
    match ssh.run(&plan.primary_host, &rejoin, limit) {
        Ok(o) if o.success() => wait_streaming(cfg, newp, p),
        Ok(o) => Some(format!(
            "node \"{}\" could not rejoin: {} — run \"repmgr node rejoin -d '<this node's conninfo>' --force-rewind\" on it",
            p.node_name,
            last_error_line(&format!("{}{}", o.stdout, o.stderr))
        )),
        Err(e) => Some(format!("node \"{}\" could not rejoin: {}", p.node_name, e.message())),
    }
}

/// `repmgr -d <this node> node rejoin --no-wait`, with --force-rewind as given.
fn rejoin_command(ctx: &Ctx, cfg: &Config, old_repmgr: &str) -> String {
    let mut rejoin = format!(
        "{old_repmgr} -d {} node rejoin --no-wait",
        crate::process::shell_quote(&cfg.conninfo)
    );
    match &ctx.opts.force_rewind {
        Some(path) if path.is_empty() => rejoin.push_str(" --force-rewind"),
        Some(path) => rejoin.push_str(&format!(
            " --force-rewind={}",
            crate::process::shell_quote(path)
        )),
        None => {}
    }
    rejoin
}

/// Waits up to standby_reconnect_timeout for the old primary to stream
/// from this node.
fn wait_streaming(cfg: &Config, newp: &mut Session, p: &NodeRecord) -> Option<String> {
    let timeout = Duration::from_secs(cfg.standby_reconnect_timeout.max(1) as u64);
    let deadline = Instant::now() + timeout;
    loop {
        if db::timeline::is_streaming_to(newp, &p.node_name).unwrap_or(false) {
            crate::log_notice!("node \"{}\" is now a standby of this node", p.node_name);
            return None;
        }
        if Instant::now() >= deadline {
            return Some(format!(
                "node \"{}\" did not start streaming from this node within {} seconds; check it with \"repmgr node check\" there",
                p.node_name,
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--siblings-follow`: `standby follow` on every sibling at once; the
/// siblings that could not.
fn siblings_follow(cfg: &Config, ssh: &Ssh, plan: &Plan) -> Vec<String> {
    let me = cfg.node_id.unwrap_or_default();
    std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .siblings
            .iter()
            .map(|sib| {
                s.spawn(move || -> Option<String> {
                    let host = remote::node_host(sib).ok()?;
                    let cmd = format!(
                        "{} standby follow --upstream-node-id={me}",
                        remote::remote_repmgr(cfg, sib)
                    );
                    match ssh.run(&host, &cmd, REMOTE_TIMEOUT) {
                        Ok(o) if o.success() => None,
                        Ok(o) => Some(format!(
                            "sibling \"{}\" could not follow: {}",
                            sib.node_name,
                            last_error_line(&format!("{}{}", o.stdout, o.stderr))
                        )),
                        Err(e) => Some(format!(
                            "sibling \"{}\" could not follow: {}",
                            sib.node_name,
                            e.message()
                        )),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

fn last_error_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.starts_with("ERROR") || l.starts_with("DETAIL"))
        .or(text.lines().last())
        .unwrap_or("no output")
        .to_string()
}
