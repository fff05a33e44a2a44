//! `standby clone --replication-conf-only`: the replication configuration
//! alone, written into a data directory that is there already.

use std::fs;
use std::path::Path;

use super::replication_config::{application_name, apply_delay, replication_config};
use super::source::{connect_source, source_conninfo};
use crate::commands::{parse_conninfo, Ctx};
use crate::db::{self, replication as repl};
use crate::error::{Error, Result};
use crate::pgtools::{self, PgBin};
use crate::replconf::{self, ReplicationConfig};

/// `--replication-conf-only` (`--recovery-conf-only`): write the replication
/// configuration into an existing, stopped data directory.
pub fn conf_only(ctx: &Ctx, target: &Path) -> Result<()> {
    let cfg = ctx.config();
    let o = &ctx.opts;
    let pg_version = fs::read_to_string(target.join("PG_VERSION")).map_err(|e| {
        Error::config(format!("\"{}\" is not a PostgreSQL data directory", target.display()))
            .detail(format!("PG_VERSION: {e}"))
            .hint("--replication-conf-only writes into an existing data directory; give it with -D/--pgdata")
    })?;
    let major: i32 = pg_version.trim().parse().unwrap_or(0);
    let local_version = if major >= 10 { major * 10000 } else { 0 };
    pgtools::ensure_not_running(target, "writing its replication configuration")?;
    let slot = crate::ops::follow::slot_name(cfg);
    let apply_delay = apply_delay(ctx)?;
    let rc = if o.no_upstream_connection {
        let Some(given) = o.upstream_conninfo.as_deref() else {
            return Err(
                Error::config("--no-upstream-connection needs --upstream-conninfo")
                    .hint("give the primary_conninfo to write with --upstream-conninfo"),
            );
        };
        let mut ci = parse_conninfo(given, "--upstream-conninfo")?;
        ci.set_if_absent("application_name", &application_name(cfg));
        ReplicationConfig {
            primary_conninfo: ci.to_string(),
            primary_slot_name: slot.clone(),
            restore_command: cfg.restore_command.clone(),
            archive_cleanup_command: cfg.archive_cleanup_command.clone(),
            recovery_min_apply_delay: apply_delay,
        }
    } else {
        let source = source_conninfo(ctx)?;
        let mut conn = connect_source(&source)?;
        let version = db::server::version_num(&mut conn)?;
        if version / 10000 != major {
            return Err(Error::config(format!(
                "the upstream runs PostgreSQL {}, the data directory is for {major}",
                version / 10000
            ))
            .hint("a standby must run the same PostgreSQL major version as its upstream"));
        }
        let bin = PgBin::new(o.pg_bindir.as_deref(), cfg);
        if let Ok(cd) = pgtools::control_data(&bin, target) {
            let sysid = repl::system_identifier(&mut conn)?;
            if !cd.system_identifier.is_empty() && cd.system_identifier != sysid {
                return Err(
                    Error::config("the data directory is not a copy of the upstream")
                        .detail(format!(
                            "system identifier {} here, {sysid} on the upstream",
                            cd.system_identifier
                        ))
                        .hint("clone the standby again (-F) instead"),
                );
            }
        }
        let rc = replication_config(ctx, &mut conn, &source, slot.as_deref(), apply_delay)?;
        if let Some(s) = &slot {
            if repl::slot_active(&mut conn, s)?.is_none() {
                if o.dry_run {
                    crate::log_info!("would create replication slot \"{s}\" on the upstream");
                } else {
                    repl::create_physical_slot(&mut conn, s)?;
                    crate::log_notice!("replication slot \"{s}\" created on the upstream");
                }
            }
        }
        rc
    };
    if o.dry_run {
        crate::log_info!(
            "would write primary_conninfo = '{}' into \"{}\"",
            rc.primary_conninfo,
            target.display()
        );
        crate::log_notice!("dry run complete: nothing was changed");
        return Ok(());
    }
    replconf::write(target, local_version, &rc)?;
    crate::log_notice!(
        "replication configuration written to \"{}\"",
        target.display()
    );
    Ok(())
}
