//! The nodes taking part in a switchover, found and checked (locally and
//! over ssh) before anything changes, and the dry run's report of them;
//! also what every step shares: the failure (exit 18) and the bound on a
//! remote command.

use std::time::Duration;

use crate::db::Session;

use crate::commands::{find_primary, Ctx};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::remote::{self, Ssh};

pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn fail(msg: impl Into<String>) -> Error {
    Error::new(ExitCode::SwitchoverFail, msg)
}

/// The nodes taking part, found and checked before anything changes.
pub struct Plan {
    pub primary: NodeRecord,
    pub primary_host: String,
    pub siblings: Vec<NodeRecord>,
    /// Nodes whose repmgrd was paused before we started.
    pub already_paused: Vec<i32>,
    pub all_ids: Vec<i32>,
}

/// Everything checked before anything is touched.
pub fn check_prerequisites(
    ctx: &Ctx,
    cfg: &Config,
    local: &mut Session,
) -> Result<(Plan, Session)> {
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
            "this node is not a direct standby of the primary {}",
            primary
        ))
        .hint(format!(
            "run \"repmgr standby follow --upstream-node-id={}\" first",
            primary.node_id
        )));
    }
    if !db::timeline::is_streaming_to(&mut pconn, &cfg.node_name)? {
        return Err(fail(format!(
            "this node is not streaming from the primary {}",
            primary
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
pub fn check_remote(ctx: &Ctx, cfg: &Config, ssh: &Ssh, plan: &Plan) -> Result<()> {
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

/// -S/--superuser, when given.
pub fn superuser(ctx: &Ctx) -> Option<&str> {
    ctx.opts.superuser.as_deref().filter(|s| !s.is_empty())
}

/// The old primary's stop, run over ssh; with -S/--superuser its CHECKPOINT
/// runs as that superuser, as repmgr passes it on.
pub fn stop_command(ctx: &Ctx, old_repmgr: &str) -> String {
    let mut cmd = format!("{old_repmgr} node service --action=stop --checkpoint");
    if let Some(su) = superuser(ctx) {
        cmd.push_str(&format!(" --superuser={}", crate::process::shell_quote(su)));
    }
    cmd
}

pub fn print_plan(ctx: &Ctx, cfg: &Config, plan: &Plan, pause: bool) {
    let p = &plan.primary;
    crate::log_notice!("prerequisites for a switchover are met (--dry-run: nothing changed)");
    if pause {
        crate::log_info!("would pause repmgrd on {} node(s)", plan.all_ids.len());
    }
    crate::log_info!(
        "would stop primary {} with \"{}\" on {}",
        p,
        stop_command(ctx, &remote::remote_repmgr(cfg, p)),
        plan.primary_host
    );
    crate::log_info!("would promote this node \"{}\"", cfg.node_name);
    crate::log_info!("would rejoin \"{}\" as a standby of this node", p.node_name);
    for s in &plan.siblings {
        crate::log_info!("sibling {} would need to follow this node", s);
    }
}
