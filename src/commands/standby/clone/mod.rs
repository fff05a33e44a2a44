//! `repmgr standby clone [HOST]`: copy an upstream's data directory (with
//! pg_basebackup, or rsync with `-r/--rsync-only`) and write the standby's
//! replication configuration. The server is not started.
//!
//! Runs with or without a repmgr.conf (the seed's way:
//! `repmgr -D /data standby clone node1`). Without one, `application_name`
//! in `primary_conninfo` is this host's short name (so each host's standby
//! is told apart in `pg_stat_replication`), or "repmgr" if that is unknown.
//!
//! The steps: the target directory, then a [`plan::ClonePlan`] gathered by
//! every check and look-up, then either its dry-run report or
//! [`execute::execute`].

mod basebackup;
mod checks;
mod conf_only;
mod execute;
mod external;
mod plan;
mod replication_config;
mod rsync;
mod shared;
mod source;
mod target;

use crate::commands::Ctx;
use crate::error::Result;

/// `repmgr standby clone`.
pub fn clone(ctx: &Ctx) -> Result<()> {
    let target = target::target_dir(ctx)?;
    if ctx.opts.replication_conf_only {
        return conf_only::conf_only(ctx, &target);
    }
    let plan = plan::ClonePlan::gather(ctx, target)?;
    if ctx.opts.dry_run {
        plan.report_dry_run(ctx);
        return Ok(());
    }
    execute::execute(ctx, plan)
}
