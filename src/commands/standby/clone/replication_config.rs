//! What the standby's replication configuration says: primary_conninfo
//! (with its application_name), the slot, restore and cleanup commands,
//! and the apply delay.

use crate::commands::{parse_conninfo, Ctx};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, Session};
use crate::error::{Error, Result};
use crate::replconf::{self, ReplicationConfig};

use super::source::replication_user;

/// `--recovery-min-apply-delay` overrides the configured value.
pub fn apply_delay(ctx: &Ctx) -> Result<String> {
    let Some(v) = ctx.opts.recovery_min_apply_delay.as_deref() else {
        return Ok(ctx.config().recovery_min_apply_delay.clone());
    };
    let v = v.trim();
    let digits = v.chars().take_while(|c| c.is_ascii_digit()).count();
    let unit = v[digits..].trim();
    if digits == 0 || !["", "ms", "s", "min", "h", "d"].contains(&unit) {
        return Err(Error::config(format!(
            "invalid value \"{v}\" for --recovery-min-apply-delay"
        ))
        .hint("give a number with an optional unit: ms, s, min, h or d (e.g. 5min)"));
    }
    Ok(v.to_string())
}

/// application_name for primary_conninfo: node_name, else this host's name.
pub fn application_name(cfg: &Config) -> String {
    if !cfg.node_name.is_empty() {
        return cfg.node_name.clone();
    }
    nix::unistd::gethostname()
        .ok()
        .map(|h| {
            h.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "repmgr".into())
}

/// The replication configuration to write. primary_conninfo comes from
/// --upstream-conninfo (as given, application_name added if missing), the
/// upstream node's record (--upstream-node-id), or the source parameters.
pub fn replication_config(
    ctx: &Ctx,
    conn: &mut Session,
    source: &ConnInfo,
    slot: Option<&str>,
    apply_delay: String,
) -> Result<ReplicationConfig> {
    let cfg = ctx.config();
    let app = application_name(cfg);
    let conninfo = if let Some(given) = ctx.opts.upstream_conninfo.as_deref() {
        let mut ci = parse_conninfo(given, "--upstream-conninfo")?;
        ci.set_if_absent("application_name", &app);
        ci
    } else {
        let upstream = match upstream_record(ctx, conn)? {
            Some(rec) => {
                crate::log_info!("using the conninfo of upstream node {}", rec);
                parse_conninfo(
                    &rec.conninfo,
                    &format!("conninfo of node \"{}\"", rec.node_name),
                )?
            }
            None => source.clone(),
        };
        replconf::primary_conninfo(
            &upstream,
            &app,
            replication_user(ctx).as_deref(),
            &cfg.passfile,
            cfg.use_primary_conninfo_password,
        )
    };
    Ok(ReplicationConfig {
        primary_conninfo: conninfo.to_string(),
        primary_slot_name: slot.map(str::to_string),
        restore_command: cfg.restore_command.clone(),
        archive_cleanup_command: cfg.archive_cleanup_command.clone(),
        recovery_min_apply_delay: apply_delay,
    })
}

/// The node named by --upstream-node-id, from the source's metadata.
fn upstream_record(ctx: &Ctx, conn: &mut Session) -> Result<Option<db::nodes::NodeRecord>> {
    let Some(id) = crate::cli::parse_int_option("upstream-node-id", &ctx.opts.upstream_node_id)?
    else {
        return Ok(None);
    };
    if let Some(me) = ctx.config().node_id {
        if me == id {
            return Err(
                Error::config("a node cannot be its own upstream").hint("check --upstream-node-id")
            );
        }
    }
    if !db::schema::exists(conn)? {
        return Err(Error::config(format!(
            "--upstream-node-id={id} given but the source has no repmgr metadata"
        ))
        .hint("register the cluster first, or give the upstream with --upstream-conninfo"));
    }
    match db::nodes::get(conn, id)? {
        Some(r) => Ok(Some(r)),
        None => Err(
            Error::config(format!("upstream node {id} is not registered"))
                .hint("check the node ID with \"repmgr cluster show\""),
        ),
    }
}
