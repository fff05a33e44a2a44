//! What `standby clone` finds out before it changes anything: the checked
//! options, the target's state, the connected source, the slot, the
//! tablespaces and the replication configuration to write. The dry run is
//! a report of this plan.

use std::path::PathBuf;

use super::basebackup;
use super::checks::{self, check_tablespaces, SlotState, TargetState};
use super::external::{external_mode, External};
use super::replication_config::{apply_delay, replication_config};
use super::shared::Method;
use super::source::{source_conninfo, with_replication_user, Source};
use crate::commands::Ctx;
use crate::config::Config;
use crate::db::{replication as repl, Session};
use crate::error::{Error, Result};
use crate::pgtools::PgBin;
use crate::process;
use crate::replconf::ReplicationConfig;

/// A clone with every check passed; nothing has been changed yet.
pub struct ClonePlan {
    pub target: PathBuf,
    pub state: TargetState,
    pub method: Method,
    pub external: Option<External>,
    pub bin: PgBin,
    pub source: Source,
    /// repmgr_slot_<node_id> with use_replication_slots.
    pub slot: Option<String>,
    pub slot_state: SlotState,
    pub tablespaces: Vec<repl::Tablespace>,
    pub rc: ReplicationConfig,
}

impl ClonePlan {
    /// Runs the checks and look-ups in repmgr's order: the options, the
    /// target, then the source and what it must allow.
    pub fn gather(ctx: &Ctx, target: PathBuf) -> Result<ClonePlan> {
        let cfg = ctx.config();
        let (method, external, apply_delay) = options(ctx)?;
        let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
        if method == Method::Rsync {
            checks::rsync_available()?;
        }

        // The target first: nothing is worth connecting for if it is unusable.
        let state = checks::target(&target, ctx.opts.force, method)?;

        let ci = source_conninfo(ctx)?;
        crate::log_notice!("destination directory \"{}\" provided", target.display());
        crate::log_info!("connecting to source node");
        let superuser = ctx.opts.superuser.as_deref().filter(|s| !s.is_empty());
        let mut source = Source::connect(ci, &target, superuser)?;
        let (slot, slot_state) = slot(cfg, &mut source.conn)?;
        check_replication(ctx, &bin, &mut source, method, slot_state)?;
        let tablespaces = tablespaces(cfg, &mut source, method)?;
        let rc = replication_config(
            ctx,
            &mut source.conn,
            &source.ci,
            slot.as_deref(),
            apply_delay,
        )?;
        Ok(ClonePlan {
            target,
            state,
            method,
            external,
            bin,
            source,
            slot,
            slot_state,
            tablespaces,
            rc,
        })
    }

    /// `--dry-run`: what the clone would do, step by step.
    pub fn report_dry_run(&self, ctx: &Ctx) {
        let cfg = ctx.config();
        let o = &ctx.opts;
        let target = &self.target;
        crate::log_info!("all prerequisites for \"standby clone\" are met");
        match self.state {
            TargetState::Missing => {
                crate::log_info!("would create data directory \"{}\"", target.display())
            }
            TargetState::Empty => {
                crate::log_info!("would use empty directory \"{}\"", target.display())
            }
            TargetState::NonEmpty if self.method == Method::Basebackup => crate::log_info!(
                "would remove the contents of \"{}\" (-F/--force) before cloning",
                target.display()
            ),
            TargetState::NonEmpty => crate::log_info!(
                "would bring \"{}\" up to date with rsync --delete (-F/--force)",
                target.display()
            ),
        }
        if self.slot_state == SlotState::Missing {
            crate::log_info!(
                "would create replication slot \"{}\" on the upstream",
                self.slot.as_deref().unwrap_or("")
            );
        }
        match self.method {
            Method::Basebackup => crate::log_info!(
                "would execute: {}",
                process::display_command(&basebackup::command(
                    &self.bin,
                    cfg,
                    &with_replication_user(ctx, &self.source.ci),
                    target,
                    o.fast_checkpoint,
                    self.slot.as_deref(),
                    false
                ))
            ),
            Method::Rsync => crate::log_info!(
                "would copy \"{}\" with rsync inside a backup started on the upstream",
                self.source.datadir.as_deref().unwrap_or("")
            ),
        }
        crate::log_info!(
            "would write primary_conninfo = '{}'",
            self.rc.primary_conninfo
        );
        crate::log_notice!("dry run complete: nothing was changed");
    }
}

/// The copy method, `--copy-external-config-files` and the apply delay,
/// with the option combinations a clone refuses.
fn options(ctx: &Ctx) -> Result<(Method, Option<External>, String)> {
    let o = &ctx.opts;
    refuse_barman_modes(ctx)?;
    if o.no_upstream_connection {
        return Err(Error::config(
            "--no-upstream-connection can only be used with --replication-conf-only",
        )
        .detail("cloning from Barman is not supported; a clone always reads from the upstream")
        .hint(
            "drop --no-upstream-connection, or add --replication-conf-only --upstream-conninfo=...",
        ));
    }
    let method = if o.rsync_only {
        Method::Rsync
    } else {
        Method::Basebackup
    };
    let external = external_mode(ctx)?;
    if o.verify_backup && method == Method::Rsync {
        return Err(
            Error::config("--verify-backup needs pg_basebackup's manifest")
                .hint("drop --verify-backup or -r/--rsync-only"),
        );
    }
    Ok((method, external, apply_delay(ctx)?))
}

/// repmgr 5 clones from Barman when barman_host is set (unless
/// --without-barman), and through pg-backup-api when pg_backupapi_host is;
/// this build has neither, and silently taking pg_basebackup instead would
/// copy from somewhere the operator did not choose.
fn refuse_barman_modes(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.config();
    if !cfg.barman_host.is_empty() && !ctx.opts.without_barman {
        return Err(Error::config("cloning from Barman is not supported by this repmgr")
            .detail(format!(
                "barman_host is set (\"{}\"), so repmgr 5 would clone from Barman",
                cfg.barman_host
            ))
            .hint("add --without-barman to clone from the upstream with pg_basebackup, or remove barman_host from repmgr.conf"));
    }
    if !cfg.pg_backupapi_host.is_empty() {
        return Err(Error::config("cloning through pg-backup-api is not supported by this repmgr")
            .detail(format!(
                "pg_backupapi_host is set (\"{}\"), so repmgr 5 would restore through pg-backup-api",
                cfg.pg_backupapi_host
            ))
            .hint("remove pg_backupapi_host from repmgr.conf to clone from the upstream with pg_basebackup"));
    }
    Ok(())
}

/// The slot this standby will use and whether the upstream has it; a slot
/// another server is using is refused.
fn slot(cfg: &Config, conn: &mut Session) -> Result<(Option<String>, SlotState)> {
    let slot = crate::ops::follow::slot_name(cfg);
    if cfg.use_replication_slots && cfg.node_id.is_none() {
        return Err(Error::config("use_replication_slots needs node_id")
            .detail("the slot is named repmgr_slot_<node_id>")
            .hint("set node_id in this node's repmgr.conf"));
    }
    let slot_state = match &slot {
        None => SlotState::NotUsed,
        Some(s) => match repl::slot_active(conn, s)? {
            Some(true) => return Err(Error::config(format!(
                "replication slot \"{s}\" on the upstream is in use by another server"
            ))
            .hint(
                "check node_id is unique in the cluster; drop the slot once its standby is gone",
            )),
            Some(false) => SlotState::Exists,
            None => SlotState::Missing,
        },
    };
    Ok((slot, slot_state))
}

/// The upstream's settings allow a standby, and a replication connection
/// as the replication user works.
fn check_replication(
    ctx: &Ctx,
    bin: &PgBin,
    source: &mut Source,
    method: Method,
    slot_state: SlotState,
) -> Result<()> {
    let settings = repl::settings(&mut source.conn, source.version)?;
    checks::upstream(&settings, ctx.config(), method, slot_state)?;
    let ident = checks::replication_connection(bin, &with_replication_user(ctx, &source.ci))?;
    crate::log_info!("replication connection works (IDENTIFY_SYSTEM: {ident})");
    Ok(())
}

/// The source's tablespaces, checked against tablespace_mapping; an rsync
/// clone also needs the source's data_directory.
fn tablespaces(cfg: &Config, source: &mut Source, method: Method) -> Result<Vec<repl::Tablespace>> {
    let tablespaces = repl::tablespaces(&mut source.conn)?;
    check_tablespaces(&tablespaces, &cfg.tablespace_mapping, source.local)?;
    if method == Method::Rsync && source.datadir.is_none() {
        return Err(Error::config("unable to read the upstream's data_directory")
            .detail("an rsync clone copies that directory; reading it needs superuser or pg_read_all_settings")
            .hint("provide a superuser with -S/--superuser, or grant pg_read_all_settings to the user"));
    }
    Ok(tablespaces)
}
