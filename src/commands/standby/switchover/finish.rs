//! After the promotion: the old primary rejoins as a standby of this node,
//! and with --siblings-follow the siblings follow it. Nothing here fails
//! the switchover; what does not complete is reported (exit 22).

use std::time::Duration;

use crate::db::Session;

use super::plan::{Plan, REMOTE_TIMEOUT};
use crate::commands::Ctx;
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord};
use crate::remote::{self, Ssh};

/// After the promotion: the old primary rejoins, the siblings follow.
/// Returns what did not complete (empty: all done).
pub fn finish(
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

/// `repmgr -d <this node> node rejoin --no-wait`, with --force-rewind as
/// given. A password in this node's conninfo is left out: it would be on the
/// remote command line (and in its process list); the old primary's own
/// passfile or .pgpass supplies it.
fn rejoin_command(ctx: &Ctx, cfg: &Config, old_repmgr: &str) -> String {
    let conninfo = crate::conninfo::ConnInfo::parse(&cfg.conninfo)
        .map(|ci| ci.to_string_without_password())
        .unwrap_or_else(|_| cfg.conninfo.clone());
    let mut rejoin = format!(
        "{old_repmgr} -d {} node rejoin --no-wait",
        crate::process::shell_quote(&conninfo)
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
    let streams = crate::poll::until(timeout, Duration::from_millis(50), || {
        db::timeline::is_streaming_to(newp, &p.node_name)
            .unwrap_or(false)
            .then_some(())
    });
    match streams {
        Some(()) => {
            crate::log_notice!("node \"{}\" is now a standby of this node", p.node_name);
            None
        }
        None => Some(format!(
            "node \"{}\" did not start streaming from this node within {} seconds; check it with \"repmgr node check\" there",
            p.node_name,
            timeout.as_secs()
        )),
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
