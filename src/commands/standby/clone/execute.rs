//! Carrying out a [`ClonePlan`]: the slot, the target, the copy by the
//! chosen method, the external configuration files, the replication
//! configuration, the event and the closing hints. A failed copy undoes
//! what it did to the target and drops the slot it created.

use std::io::IsTerminal;

use super::basebackup;
use super::checks::{SlotState, TargetState};
use super::external::copy_external_files;
use super::plan::ClonePlan;
use super::rsync;
use super::shared::Method;
use super::source::{connect_source, with_replication_user};
use super::target::prepare_target;
use crate::commands::Ctx;
use crate::conninfo::ConnInfo;
use crate::db::{self, replication as repl, Session};
use crate::error::Result;
use crate::events::{self, Event};
use crate::pgtools::PgBin;
use crate::replconf;

/// Clones as planned; the server is not started.
pub fn execute(ctx: &Ctx, mut plan: ClonePlan) -> Result<()> {
    copy_data_directory(ctx, &mut plan)?;
    // Nothing more is read from the upstream over this session.
    drop(plan.source.conn);

    if let Some(mode) = plan.external {
        copy_external_files(
            ctx,
            &plan.source.files,
            &plan.target,
            mode,
            plan.source.local,
            &plan.source.host,
        )?;
    }
    replconf::write(&plan.target, plan.source.version, &plan.rc)?;
    crate::log_info!(
        "replication configuration written to \"{}\"",
        plan.target.display()
    );

    record_event(
        ctx,
        &plan.source.ci,
        &plan.source.host,
        &plan.source.port,
        plan.method,
    );
    closing_hints(ctx, &plan.bin, &plan.target, plan.method);
    Ok(())
}

/// Creates the slot, prepares the target and copies into it; on failure
/// the target and the slot are as they were.
fn copy_data_directory(ctx: &Ctx, plan: &mut ClonePlan) -> Result<()> {
    let created_slot = create_slot(plan)?;
    let progress = std::io::stderr().is_terminal();
    let prepared = match prepare_target(&plan.target, plan.state, plan.method) {
        Ok(p) => p,
        Err(e) => {
            drop_slot_after_failure(&mut plan.source.conn, created_slot, plan.slot.as_deref());
            return Err(e);
        }
    };
    if let Err(e) = copy(ctx, plan, progress) {
        prepared.undo(&plan.target);
        drop_slot_after_failure(&mut plan.source.conn, created_slot, plan.slot.as_deref());
        return Err(e);
    }
    Ok(())
}

/// The planned slot, when the upstream does not have it yet; whether it
/// was created here.
fn create_slot(plan: &mut ClonePlan) -> Result<bool> {
    if plan.slot_state != SlotState::Missing {
        return Ok(false);
    }
    let s = plan.slot.as_deref().unwrap_or_default();
    repl::create_physical_slot(&mut plan.source.conn, s)?;
    crate::log_notice!("replication slot \"{s}\" created on the upstream");
    Ok(true)
}

/// pg_basebackup (and its verification with --verify-backup), or rsync
/// inside a backup started on the upstream.
fn copy(ctx: &Ctx, plan: &mut ClonePlan, progress: bool) -> Result<()> {
    let cfg = ctx.config();
    let o = &ctx.opts;
    match plan.method {
        Method::Basebackup => {
            let ci = with_replication_user(ctx, &plan.source.ci);
            let mut cmd = basebackup::command(
                &plan.bin,
                cfg,
                &ci,
                &plan.target,
                o.fast_checkpoint,
                plan.slot.as_deref(),
                progress,
            );
            let _service_file = basebackup::hand_secrets(&ci, &mut cmd)?;
            basebackup::run(cmd, &plan.target, progress).and_then(|_| {
                if o.verify_backup {
                    basebackup::verify(&plan.bin, &plan.target)
                } else {
                    Ok(())
                }
            })
        }
        Method::Rsync => {
            let job = rsync::RsyncJob {
                source: rsync::RsyncSource {
                    remote_host: (!plan.source.local).then(|| plan.source.host.clone()),
                    remote_user: o.remote_user.clone(),
                    ssh_options: cfg.ssh_options.clone(),
                    rsync_options: cfg.rsync_options.clone(),
                },
                source_datadir: plan.source.datadir.clone().unwrap_or_default(),
                target: &plan.target,
                tablespaces: &plan.tablespaces,
                mapping: &cfg.tablespace_mapping,
                force: plan.state == TargetState::NonEmpty,
                fast: o.fast_checkpoint,
                progress,
            };
            rsync::run(&mut plan.source.conn, plan.source.version, &job).map(|stop| {
                crate::log_info!("backup ended at {}", stop.lsn);
            })
        }
    }
}

fn drop_slot_after_failure(conn: &mut Session, created: bool, slot: Option<&str>) {
    let (true, Some(s)) = (created, slot) else {
        return;
    };
    // A slot nobody uses keeps WAL on the upstream forever.
    match repl::drop_slot(conn, s) {
        Ok(()) => crate::log_notice!("replication slot \"{s}\" dropped again on the upstream"),
        Err(e) => crate::log_warning!(
            "unable to drop replication slot \"{s}\" on the upstream: {}",
            e.reason()
        ),
    }
}

/// `standby_clone` on the source when it is a primary with the repmgr
/// schema and this node has a node_id; otherwise only the hook runs.
fn record_event(ctx: &Ctx, source: &ConnInfo, host: &str, port: &str, method: Method) {
    let cfg = ctx.config();
    let details = format!(
        "cloned from host \"{host}\", port {port}; backup method: {}; --force: {}",
        method.name(),
        if ctx.opts.force { "Y" } else { "N" }
    );
    let ev = Event::for_node(cfg, "standby_clone", details);
    let mut conn = None;
    if ctx.loaded.is_some() && cfg.node_id.is_some() {
        if let Ok(mut c) = connect_source(source) {
            let writable = matches!(db::server::in_recovery(&mut c), Ok(false))
                && matches!(db::schema::exists(&mut c), Ok(true));
            if writable {
                conn = Some(c);
            }
        }
    }
    events::record(conn.as_mut(), cfg, &ev);
}

/// What to run next: start the server, then register it.
fn closing_hints(ctx: &Ctx, bin: &PgBin, target: &std::path::Path, method: Method) {
    let cfg = ctx.config();
    crate::log_notice!("standby clone (using {}) complete", method.name());
    crate::log_notice!("you can now start your PostgreSQL server");
    let start = if cfg.service_start_command.trim().is_empty() {
        format!(
            "{} -D '{}' start",
            bin.path("pg_ctl").display(),
            target.display()
        )
    } else {
        cfg.service_start_command.trim().to_string()
    };
    crate::log_hint!("for example: {start}");
    if ctx.loaded.is_some() {
        crate::log_hint!("after starting the server, you need to register this standby with \"repmgr standby register\"");
    } else {
        crate::log_hint!("after starting the server, register this standby with \"repmgr standby register\" (it needs a repmgr.conf for this node)");
    }
}
