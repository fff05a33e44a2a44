//! `repmgr standby clone [HOST]`: copy an upstream's data directory (with
//! pg_basebackup, or rsync with `-r/--rsync-only`) and write the standby's
//! replication configuration. The server is not started.
//!
//! Runs with or without a repmgr.conf (the seed's way:
//! `repmgr -D /data standby clone node1`). Without one, `application_name`
//! in `primary_conninfo` is this host's short name (so each host's standby
//! is told apart in `pg_stat_replication`), or "repmgr" if that is unknown.

mod basebackup;
mod checks;
mod conf_only;
mod external;
mod replication_config;
mod rsync;
mod shared;
mod source;
mod target;

use std::io::IsTerminal;
use std::path::Path;

use checks::{check_tablespaces, SlotState, TargetState};
use conf_only::conf_only;
use external::{copy_external_files, external_mode};
use replication_config::{apply_delay, replication_config};
use shared::Method;
use source::{
    connect_source, is_local_source, same_dir, shown_host_port, source_conninfo,
    with_replication_user,
};
use target::{prepare_target, target_dir};

use crate::commands::Ctx;
use crate::conninfo::ConnInfo;
use crate::db::{self, replication as repl, Session};
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::pgtools::PgBin;
use crate::process;
use crate::replconf;

/// `repmgr standby clone`.
pub fn clone(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.config();
    let o = &ctx.opts;
    let target = target_dir(ctx)?;
    if o.replication_conf_only {
        return conf_only(ctx, &target);
    }
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
    let apply_delay = apply_delay(ctx)?;
    let bin = PgBin::new(o.pg_bindir.as_deref(), cfg);
    if method == Method::Rsync {
        checks::rsync_available()?;
    }

    // The target first: nothing is worth connecting for if it is unusable.
    let state = checks::target(&target, o.force, method)?;

    let source_ci = source_conninfo(ctx)?;
    let (host_shown, port_shown) = shown_host_port(&source_ci);
    crate::log_notice!("destination directory \"{}\" provided", target.display());
    crate::log_info!("connecting to source node");
    let mut conn = connect_source(&source_ci)?;
    let version = db::server::version_num(&mut conn)?;
    if version < 100000 {
        return Err(Error::config(format!(
            "the upstream runs PostgreSQL {}; cloning needs PostgreSQL 10 or later",
            version / 10000
        )));
    }
    let files = repl::file_settings(&mut conn)?;
    let source_datadir = files.get("data_directory").cloned();
    let local = is_local_source(&source_ci);
    if local {
        if let Some(sd) = &source_datadir {
            if same_dir(Path::new(sd), &target) {
                return Err(Error::config(format!(
                    "target data directory \"{}\" is the source server's own data directory",
                    target.display()
                ))
                .hint("choose another directory with -D/--pgdata"));
            }
        }
    }

    let slot = crate::ops::follow::slot_name(cfg);
    if cfg.use_replication_slots && cfg.node_id.is_none() {
        return Err(Error::config("use_replication_slots needs node_id")
            .detail("the slot is named repmgr_slot_<node_id>")
            .hint("set node_id in this node's repmgr.conf"));
    }
    let slot_state = match &slot {
        None => SlotState::NotUsed,
        Some(s) => match repl::slot_active(&mut conn, s)? {
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
    let settings = repl::settings(&mut conn, version)?;
    checks::upstream(&settings, cfg, method, slot_state)?;
    let ident = checks::replication_connection(&bin, &with_replication_user(ctx, &source_ci))?;
    crate::log_info!("replication connection works (IDENTIFY_SYSTEM: {ident})");

    let tablespaces = repl::tablespaces(&mut conn)?;
    check_tablespaces(&tablespaces, &cfg.tablespace_mapping, local)?;
    if method == Method::Rsync && source_datadir.is_none() {
        return Err(Error::config("unable to read the upstream's data_directory")
            .detail("an rsync clone copies that directory; reading it needs superuser or pg_read_all_settings")
            .hint("connect as a superuser with -U, or grant pg_read_all_settings to the user"));
    }
    let rc = replication_config(ctx, &mut conn, &source_ci, slot.as_deref(), apply_delay)?;

    if o.dry_run {
        crate::log_info!("all prerequisites for \"standby clone\" are met");
        match state {
            TargetState::Missing => {
                crate::log_info!("would create data directory \"{}\"", target.display())
            }
            TargetState::Empty => {
                crate::log_info!("would use empty directory \"{}\"", target.display())
            }
            TargetState::NonEmpty if method == Method::Basebackup => crate::log_info!(
                "would remove the contents of \"{}\" (-F/--force) before cloning",
                target.display()
            ),
            TargetState::NonEmpty => crate::log_info!(
                "would bring \"{}\" up to date with rsync --delete (-F/--force)",
                target.display()
            ),
        }
        if slot_state == SlotState::Missing {
            crate::log_info!(
                "would create replication slot \"{}\" on the upstream",
                slot.as_deref().unwrap_or("")
            );
        }
        match method {
            Method::Basebackup => crate::log_info!(
                "would execute: {}",
                process::display_command(&basebackup::command(
                    &bin,
                    cfg,
                    &with_replication_user(ctx, &source_ci),
                    &target,
                    o.fast_checkpoint,
                    slot.as_deref(),
                    false
                ))
            ),
            Method::Rsync => crate::log_info!(
                "would copy \"{}\" with rsync inside a backup started on the upstream",
                source_datadir.as_deref().unwrap_or("")
            ),
        }
        crate::log_info!("would write primary_conninfo = '{}'", rc.primary_conninfo);
        crate::log_notice!("dry run complete: nothing was changed");
        return Ok(());
    }

    let created_slot = if slot_state == SlotState::Missing {
        let s = slot.as_deref().unwrap_or_default();
        repl::create_physical_slot(&mut conn, s)?;
        crate::log_notice!("replication slot \"{s}\" created on the upstream");
        true
    } else {
        false
    };
    let progress = std::io::stderr().is_terminal();
    let prepared = match prepare_target(&target, state, method) {
        Ok(p) => p,
        Err(e) => {
            drop_slot_after_failure(&mut conn, created_slot, slot.as_deref());
            return Err(e);
        }
    };
    let copied = match method {
        Method::Basebackup => {
            let cmd = basebackup::command(
                &bin,
                cfg,
                &with_replication_user(ctx, &source_ci),
                &target,
                o.fast_checkpoint,
                slot.as_deref(),
                progress,
            );
            basebackup::run(cmd, &target, progress).and_then(|_| {
                if o.verify_backup {
                    basebackup::verify(&bin, &target)
                } else {
                    Ok(())
                }
            })
        }
        Method::Rsync => {
            let job = rsync::RsyncJob {
                source: rsync::RsyncSource {
                    remote_host: (!local).then(|| host_shown.clone()),
                    remote_user: o.remote_user.clone(),
                    ssh_options: cfg.ssh_options.clone(),
                    rsync_options: cfg.rsync_options.clone(),
                },
                source_datadir: source_datadir.clone().unwrap_or_default(),
                target: &target,
                tablespaces: &tablespaces,
                mapping: &cfg.tablespace_mapping,
                force: state == TargetState::NonEmpty,
                fast: o.fast_checkpoint,
                progress,
            };
            rsync::run(&mut conn, version, &job).map(|stop| {
                crate::log_info!("backup ended at {}", stop.lsn);
            })
        }
    };
    if let Err(e) = copied {
        prepared.undo(&target);
        drop_slot_after_failure(&mut conn, created_slot, slot.as_deref());
        return Err(e);
    }
    drop(conn);

    if let Some(mode) = external {
        copy_external_files(ctx, &files, &target, mode, local, &host_shown)?;
    }
    replconf::write(&target, version, &rc)?;
    crate::log_info!(
        "replication configuration written to \"{}\"",
        target.display()
    );

    record_event(ctx, &source_ci, &host_shown, &port_shown, method);
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
    Ok(())
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
            e.detail.as_deref().unwrap_or(e.message())
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
