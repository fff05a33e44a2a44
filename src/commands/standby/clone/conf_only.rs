//! `standby clone --replication-conf-only`: the replication configuration
//! alone, written into a data directory that is there already.

use std::fs;
use std::path::Path;

use super::replication_config::{application_name, apply_delay, replication_config};
use super::source::{connect_source, source_conninfo};
use crate::commands::{parse_conninfo, Ctx};
use crate::db::{self, replication as repl, Session};
use crate::error::{Error, Result};
use crate::pgtools::{self, PgBin};
use crate::replconf::{self, ReplicationConfig};

/// `--replication-conf-only` (`--recovery-conf-only`): write the replication
/// configuration into an existing, stopped data directory.
pub fn conf_only(ctx: &Ctx, target: &Path) -> Result<()> {
    let cfg = ctx.config();
    let major = data_directory_major(target)?;
    let local_version = if major >= 10 { major * 10000 } else { 0 };
    pgtools::ensure_not_running(target, "writing its replication configuration")?;
    let slot = crate::ops::follow::slot_name(cfg);
    let apply_delay = apply_delay(ctx)?;
    let rc = if ctx.opts.no_upstream_connection {
        as_given(ctx, slot, apply_delay)?
    } else {
        from_upstream(ctx, target, major, slot, apply_delay)?
    };
    if ctx.opts.dry_run {
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

/// The major version in the data directory's PG_VERSION (0 if unreadable
/// as a number); no PG_VERSION, no data directory.
fn data_directory_major(target: &Path) -> Result<i32> {
    let pg_version = fs::read_to_string(target.join("PG_VERSION")).map_err(|e| {
        Error::config(format!("\"{}\" is not a PostgreSQL data directory", target.display()))
            .detail(format!("PG_VERSION: {e}"))
            .hint("--replication-conf-only writes into an existing data directory; give it with -D/--pgdata")
    })?;
    Ok(pg_version.trim().parse().unwrap_or(0))
}

/// `--no-upstream-connection`: primary_conninfo is `--upstream-conninfo`
/// as given (application_name added if missing).
fn as_given(ctx: &Ctx, slot: Option<String>, apply_delay: String) -> Result<ReplicationConfig> {
    let cfg = ctx.config();
    let Some(given) = ctx.opts.upstream_conninfo.as_deref() else {
        return Err(
            Error::config("--no-upstream-connection needs --upstream-conninfo")
                .hint("give the primary_conninfo to write with --upstream-conninfo"),
        );
    };
    let mut ci = parse_conninfo(given, "--upstream-conninfo")?;
    ci.set_if_absent("application_name", &application_name(cfg));
    Ok(ReplicationConfig {
        primary_conninfo: ci.to_string(),
        primary_slot_name: slot,
        restore_command: cfg.restore_command.clone(),
        archive_cleanup_command: cfg.archive_cleanup_command.clone(),
        recovery_min_apply_delay: apply_delay,
    })
}

/// Checks the data directory is a copy of the upstream (same major
/// version, same system), creates the slot if missing, and returns the
/// configuration a clone from it would write.
fn from_upstream(
    ctx: &Ctx,
    target: &Path,
    major: i32,
    slot: Option<String>,
    apply_delay: String,
) -> Result<ReplicationConfig> {
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
    check_same_system(ctx, target, &mut conn)?;
    let rc = replication_config(ctx, &mut conn, &source, slot.as_deref(), apply_delay)?;
    if let Some(s) = &slot {
        ensure_slot(ctx, &mut conn, s)?;
    }
    Ok(rc)
}

/// When pg_controldata can read the data directory, its system identifier
/// must be the upstream's.
fn check_same_system(ctx: &Ctx, target: &Path, conn: &mut Session) -> Result<()> {
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), ctx.config());
    if let Ok(cd) = pgtools::control_data(&bin, target) {
        let sysid = repl::system_identifier(conn)?;
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
    Ok(())
}

/// Creates the standby's slot on the upstream if it is not there (with
/// --dry-run, says it would).
fn ensure_slot(ctx: &Ctx, conn: &mut Session, s: &str) -> Result<()> {
    if repl::slot_active(conn, s)?.is_none() {
        if ctx.opts.dry_run {
            crate::log_info!("would create replication slot \"{s}\" on the upstream");
        } else {
            repl::create_physical_slot(conn, s)?;
            crate::log_notice!("replication slot \"{s}\" created on the upstream");
        }
    }
    Ok(())
}
