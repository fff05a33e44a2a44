//! Making a stopped node (typically a former primary) a standby of the
//! current primary again.
//!
//! Everything is decided before anything is touched, and without starting
//! the local server (which, were it an old primary, would take writes): the
//! local position comes from `pg_controldata`, the primary's from SQL, and
//! the pure [`attach::can_follow`] says whether the local WAL is a prefix of
//! the primary's history. If it is not, the node is rewound with pg_rewind
//! only when the options allow it; otherwise nothing changes.
//!
//! [`check_rejoin`] and [`rejoin_node`] take a configuration and a
//! connection to the primary, not the command line: `repmgr node rejoin`
//! and repmgrd's auto_rejoin run the same code. Running pg_rewind itself,
//! and the files it must not replace, is in `rewind`.

mod rewind;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::types::PgLsn;

use crate::attach::{self, Refusal};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord, timeline::Position, Session};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::ops::follow;
use crate::pgtools::{self, ControlData, PgBin, ServiceAction};
use rewind::{list_replication_slots, remove_replication_slots};

pub use rewind::{DEFAULT_KEPT_FILES, PG_REWIND_TIMEOUT};

/// How a rejoin may proceed.
#[derive(Debug, Clone)]
pub struct RejoinOptions {
    /// The pg_rewind to run when the node diverged; None: never rewind.
    pub pg_rewind: Option<PathBuf>,
    /// More files (relative to the data directory) to keep across pg_rewind.
    pub config_files: Vec<String>,
    /// Where kept files wait while pg_rewind runs.
    pub config_archive_dir: PathBuf,
    /// Wait up to `node_rejoin_timeout` for the node to stream.
    pub wait: bool,
}

/// What the checks found.
#[derive(Debug, Clone)]
pub struct RejoinPlan {
    pub control: ControlData,
    pub local: Position,
    pub primary: Position,
    /// Some: the node diverged from the primary and pg_rewind will run.
    pub rewind: Option<Refusal>,
    /// The node was not shut down cleanly: its WAL may go past the last
    /// checkpoint pg_control knows of, so the comparison above cannot be
    /// trusted and pg_rewind (allowed, or the checks had refused) runs.
    pub unclean: bool,
    /// The local server's version (from PG_VERSION), server_version_num style.
    pub version_num: i32,
}

/// The local server must be stopped: no postmaster, and pg_control says it
/// shut down cleanly. With pg_rewind allowed, an unclean state is accepted
/// on PostgreSQL 13 and later (pg_rewind runs crash recovery itself).
pub fn check_local_stopped(cfg: &Config, bin: &PgBin, rewind_allowed: bool) -> Result<ControlData> {
    let datadir = Path::new(&cfg.data_directory);
    let control = pgtools::control_data(bin, datadir).map_err(|e| {
        e.with_code(ExitCode::RejoinFail)
            .hint("check data_directory in repmgr.conf and that pg_controldata is installed (pg_bindir / -b)")
    })?;
    if let Some(pid) = pgtools::running_postmaster(datadir) {
        return Err(Error::new(
            ExitCode::RejoinFail,
            format!("database is still running in state \"{}\"", control.state),
        )
        .detail(format!(
            "a PostgreSQL server (PID {pid}) is running on data directory \"{}\"",
            datadir.display()
        ))
        .hint(
            "\"repmgr node rejoin\" cannot be executed on a running node: stop it cleanly first",
        ));
    }
    if !control.shut_down_cleanly() {
        let version = pgtools::data_directory_version(datadir)?;
        if rewind_allowed && version >= 130000 {
            crate::log_warning!(
                "database was not shut down cleanly (state \"{}\"); pg_rewind will run crash recovery if it is needed",
                control.state
            );
        } else {
            let mut e = Error::new(ExitCode::RejoinFail, "database is not shut down cleanly")
                .hint("start the server, let crash recovery complete, then shut it down cleanly (it must not take writes meanwhile)");
            e = e.detail(if rewind_allowed {
                format!(
                    "pg_control reports state \"{}\"; pg_rewind before PostgreSQL 13 cannot rewind such a data directory",
                    control.state
                )
            } else {
                format!("pg_control reports state \"{}\"", control.state)
            });
            return Err(e);
        }
    }
    Ok(control)
}

/// Where the local node stands, from pg_control: the later of the last
/// checkpoint and the minimum recovery point (a standby's replay position).
pub fn local_position(cd: &ControlData) -> Result<Position> {
    let sysid: u64 = cd.system_identifier.parse().map_err(|_| {
        Error::new(
            ExitCode::RejoinFail,
            "unable to read the system identifier from pg_controldata",
        )
        .detail(format!("got \"{}\"", cd.system_identifier))
    })?;
    let lsn = |s: &str| s.parse::<PgLsn>().map(u64::from).unwrap_or(0);
    let checkpoint = (cd.timeline, lsn(&cd.checkpoint_lsn));
    let min_recovery = (cd.min_recovery_timeline, lsn(&cd.min_recovery_lsn));
    let (timeline, at) = if min_recovery.1 > 0 && min_recovery > checkpoint {
        min_recovery
    } else {
        checkpoint
    };
    Ok(Position {
        system_identifier: sysid as i64,
        in_recovery: cd.state == "shut down in recovery",
        timeline,
        lsn: at,
    })
}

/// Everything checked, nothing changed: the node is registered, its
/// history fits the primary's (or pg_rewind is allowed, and can run).
pub fn check_rejoin(
    cfg: &Config,
    opts: &RejoinOptions,
    control: ControlData,
    primary: &NodeRecord,
    pconn: &mut Session,
) -> Result<RejoinPlan> {
    let node_id = cfg.node_id.unwrap_or_default();
    let datadir = Path::new(&cfg.data_directory);
    if db::nodes::get(pconn, node_id)?.is_none() {
        return Err(Error::config(format!(
            "node {node_id} has no record on the primary \"{}\"",
            primary.node_name
        ))
        .hint("register this node first (\"repmgr standby register -F\" with the primary's connection parameters)"));
    }
    let version_num = pgtools::data_directory_version(datadir)?;
    let local = local_position(&control)?;
    let theirs = db::timeline::position(pconn)?;
    if version_num / 100 != db::server::version_num(pconn)? / 100 {
        return Err(Error::new(
            ExitCode::RejoinFail,
            "this node and the primary run different PostgreSQL major versions",
        )
        .hint("a standby must run the same PostgreSQL major version as its primary"));
    }
    let history = primary_history(pconn, &local, &theirs)?;
    crate::log_info!(
        "local node: timeline {}, WAL up to {}; primary: timeline {}, WAL at {}",
        local.timeline,
        db::timeline::format_lsn(local.lsn),
        theirs.timeline,
        db::timeline::format_lsn(theirs.lsn)
    );
    let unclean = !control.shut_down_cleanly();
    let rewind = match attach::can_follow(&local, &theirs, history.as_deref()) {
        Ok(()) => {
            if unclean {
                crate::log_notice!(
                    "this node was not shut down cleanly: pg_rewind will check and repair its history"
                );
                if let Some(pg_rewind) = opts.pg_rewind.as_ref() {
                    check_rewind_prerequisites(&control, pg_rewind, opts)?;
                }
            }
            None
        }
        Err(why) => Some(rewind_needed(opts, &control, primary, why)?),
    };
    Ok(RejoinPlan {
        control,
        local,
        primary: theirs,
        rewind,
        unclean,
        version_num,
    })
}

/// The primary's timeline history when it is on a later timeline than
/// this node (None: unreadable); empty when it is not.
fn primary_history(
    pconn: &mut Session,
    local: &Position,
    theirs: &Position,
) -> Result<Option<Vec<db::timeline::HistoryEntry>>> {
    Ok(if theirs.timeline > local.timeline {
        db::timeline::history_file(pconn, theirs.timeline)?
            .map(|text| db::timeline::parse_history(&text))
    } else {
        Some(Vec::new())
    })
}

/// The node cannot follow the primary as it is: pg_rewind may bring it
/// onto the primary's timeline, when the options allow it and it can help.
fn rewind_needed(
    opts: &RejoinOptions,
    control: &ControlData,
    primary: &NodeRecord,
    why: Refusal,
) -> Result<Refusal> {
    let cannot = |why: &Refusal| {
        Error::new(
            ExitCode::RejoinFail,
            format!("this node cannot attach to node {}", primary),
        )
        .detail(why.to_string())
    };
    // pg_rewind finds the common ancestor itself; it cannot help a node of
    // another cluster, or one ahead of the primary on the same timeline.
    if matches!(
        why,
        Refusal::DifferentSystem { .. } | Refusal::AheadOnSameTimeline { .. }
    ) {
        return Err(cannot(&why)
            .hint("clone this node again from the primary with \"repmgr standby clone --force\""));
    }
    let Some(pg_rewind) = opts.pg_rewind.as_ref() else {
        let hint = if matches!(why, Refusal::HistoryUnavailable { .. }) {
            "grant pg_read_server_files to the repmgr user so the primary's timeline history can be read, or use --force-rewind"
        } else {
            "use --force-rewind to rewind this node onto the primary's timeline with pg_rewind (the diverged changes are discarded)"
        };
        return Err(cannot(&why).hint(hint));
    };
    crate::log_notice!("this node diverged from the primary: pg_rewind is required");
    crate::log_detail!("{why}");
    check_rewind_prerequisites(control, pg_rewind, opts)?;
    Ok(why)
}

/// pg_rewind needs wal_log_hints or data checksums on this node, and must
/// be installed; the archive directory must be usable.
fn check_rewind_prerequisites(
    control: &ControlData,
    pg_rewind: &Path,
    opts: &RejoinOptions,
) -> Result<()> {
    if !control.wal_log_hints && control.data_checksum_version == 0 {
        return Err(Error::new(
            ExitCode::RejoinFail,
            "pg_rewind cannot be used on this node",
        )
        .detail("pg_controldata reports \"wal_log_hints\" off and data checksums disabled; pg_rewind needs one of them")
        .hint("set wal_log_hints = on (it takes effect at the next server start) or clone this node again with \"repmgr standby clone --force\""));
    }
    if !pgtools::program_exists(pg_rewind) {
        return Err(Error::new(
            ExitCode::RejoinFail,
            format!("pg_rewind not found at \"{}\"", pg_rewind.display()),
        )
        .hint("install pg_rewind, set pg_bindir (or -b), or give its path with --force-rewind=/path/to/pg_rewind"));
    }
    for f in &opts.config_files {
        if Path::new(f).is_absolute() || f.split('/').any(|c| c == "..") {
            return Err(Error::config(format!(
                "invalid file \"{f}\" in --config-files"
            ))
            .hint("give paths relative to the data directory; files outside it are not touched by pg_rewind"));
        }
    }
    let dir = &opts.config_archive_dir;
    if !dir.is_dir() {
        return Err(Error::config(format!(
            "configuration archive directory \"{}\" does not exist",
            dir.display()
        ))
        .hint("create it or choose another with --config-archive-dir"));
    }
    crate::log_info!("prerequisites for pg_rewind are met");
    Ok(())
}

/// Rewinds (when planned), writes the replication configuration, starts
/// the server, waits for it to stream (unless told not to) and records the
/// node as a standby of `primary`. Returns the `node_rejoin` event, written
/// on the primary, for the caller to notify.
pub fn rejoin_node<'a>(
    cfg: &'a Config,
    bin: &PgBin,
    opts: &RejoinOptions,
    plan: &RejoinPlan,
    primary: &NodeRecord,
    pconn: &mut Session,
) -> Result<(Event<'a>, String)> {
    let datadir = Path::new(&cfg.data_directory);
    let rewound = plan.rewind.is_some() || plan.unclean;
    if rewound {
        rewind_data_directory(cfg, opts, plan, primary, pconn, datadir)?;
    } else {
        let left = list_replication_slots(datadir);
        if !left.is_empty() {
            crate::log_warning!(
                "replication slot(s) {} remain on this node and will retain WAL; drop them once it runs if they are unused",
                left.join(", ")
            );
        }
    }
    configure_standby(cfg, plan, primary, pconn)?;
    start_standby(cfg, bin, opts, primary, pconn)?;

    let details = format!(
        "node {} is now attached to node {}",
        cfg.node_id.unwrap_or_default(),
        primary.node_id
    );
    let details = if rewound {
        format!("{details} (after pg_rewind)")
    } else {
        details
    };
    record_rejoin(cfg, primary, pconn, details)
}

fn fail(e: Error) -> Error {
    e.with_code(ExitCode::RejoinFail)
}

/// pg_rewind onto the primary's timeline; the slots it copied from the
/// primary are removed.
fn rewind_data_directory(
    cfg: &Config,
    opts: &RejoinOptions,
    plan: &RejoinPlan,
    primary: &NodeRecord,
    pconn: &mut Session,
    datadir: &Path,
) -> Result<()> {
    let pg_rewind = opts
        .pg_rewind
        .as_ref()
        .ok_or_else(|| Error::internal("pg_rewind planned without --force-rewind"))?;
    ensure_source_checkpoint(primary, pconn)?;
    let said = rewind::rewind(
        cfg,
        pg_rewind,
        &opts.config_files,
        &opts.config_archive_dir,
        primary,
        datadir,
    )?;
    if said.contains("no rewind required") && matches!(plan.rewind, Some(Refusal::Diverged { .. }))
    {
        return Err(Error::new(
            ExitCode::RejoinFail,
            "pg_rewind found nothing to rewind, but this node diverged from the primary",
        )
        .detail(said.trim().to_string())
        .hint("run CHECKPOINT on the primary and retry; the data directory was not changed"));
    }
    for s in remove_replication_slots(datadir)? {
        crate::log_info!("removed replication slot \"{s}\" copied by pg_rewind");
    }
    Ok(())
}

/// The node's slot on the primary (use_replication_slots), and its
/// replication configuration pointing at the primary.
fn configure_standby(
    cfg: &Config,
    plan: &RejoinPlan,
    primary: &NodeRecord,
    pconn: &mut Session,
) -> Result<()> {
    let slot = crate::ops::follow::slot_name(cfg);
    if let Some(s) = &slot {
        if db::timeline::create_slot_if_missing(pconn, s).map_err(fail)? {
            crate::log_info!(
                "replication slot \"{s}\" created on node \"{}\"",
                primary.node_name
            );
        }
    }
    follow::write_replication_config(cfg, primary, slot, plan.version_num).map_err(fail)
}

/// Starts the server as a standby and, unless -W/--no-wait, waits up to
/// node_rejoin_timeout for it to stream from the primary.
fn start_standby(
    cfg: &Config,
    bin: &PgBin,
    opts: &RejoinOptions,
    primary: &NodeRecord,
    pconn: &mut Session,
) -> Result<()> {
    crate::log_notice!("starting server using configured service_start_command or pg_ctl");
    pgtools::run_service_action(ServiceAction::Start, cfg, bin, &cfg.data_directory).map_err(
        |e| {
            fail(e).hint(
                "check the PostgreSQL log of this node; it is configured as a standby and can be started again",
            )
        },
    )?;
    if opts.wait {
        let timeout = Duration::from_secs(cfg.node_rejoin_timeout.max(1) as u64);
        follow::wait_attached(pconn, &cfg.node_name, timeout).map_err(|e| {
            fail(e).hint(format!(
                "check the PostgreSQL log of this node and that node \"{}\" accepts its replication connections",
                primary.node_name
            ))
        })?;
    } else {
        crate::log_info!("not waiting for the node to attach (-W/--no-wait)");
    }
    Ok(())
}

/// pg_rewind reads the source's timeline from its last checkpoint: right
/// after a promotion that is still the old timeline, pg_rewind would find
/// "no rewind required" and the node would stay diverged. A CHECKPOINT on
/// the primary settles it.
fn ensure_source_checkpoint(primary: &NodeRecord, pconn: &mut Session) -> Result<()> {
    let current = db::timeline::position(pconn)?.timeline;
    if db::timeline::checkpoint_timeline(pconn)? >= current {
        return Ok(());
    }
    crate::log_notice!(
        "issuing CHECKPOINT on node {} so that pg_rewind sees its timeline {current}",
        primary
    );
    db::timeline::checkpoint(pconn).map_err(|e| {
        e.with_code(ExitCode::RejoinFail).hint(
            "the user in the primary's conninfo needs superuser or pg_checkpoint; or run CHECKPOINT on the primary and retry",
        )
    })
}

/// The node record says standby of `primary`; the event tells it.
fn record_rejoin<'a>(
    cfg: &'a Config,
    primary: &NodeRecord,
    pconn: &mut Session,
    details: String,
) -> Result<(Event<'a>, String)> {
    let node_id = cfg.node_id.unwrap_or_default();
    let mut tx = pconn
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::set_upstream(&mut tx, node_id, primary.node_id)?;
    let ev = Event {
        primary_id: Some(primary.node_id),
        conninfo: Some(primary.conninfo.clone()),
        ..Event::for_node(cfg, "node_rejoin", details)
    };
    let ts = events::write(&mut tx, &ev)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the rejoin metadata", &e))?;
    Ok((ev, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd(state: &str, ck: &str, tli: u32, mr: &str, mrtli: u32) -> ControlData {
        ControlData {
            system_identifier: "7312345678901234567".into(),
            state: state.into(),
            timeline: tli,
            checkpoint_lsn: ck.into(),
            min_recovery_lsn: mr.into(),
            min_recovery_timeline: mrtli,
            wal_log_hints: true,
            data_checksum_version: 0,
        }
    }

    #[test]
    fn position_from_control_data() {
        let p = local_position(&cd("shut down", "0/3000060", 1, "0/0", 0)).unwrap();
        assert_eq!((p.timeline, p.lsn), (1, 0x3000060));
        assert!(!p.in_recovery);
        let p =
            local_position(&cd("shut down in recovery", "0/3000060", 1, "0/5000000", 2)).unwrap();
        assert_eq!((p.timeline, p.lsn), (2, 0x5000000));
        assert!(p.in_recovery);
        assert_eq!(p.system_identifier, 7312345678901234567);
        let mut bad = cd("shut down", "0/1", 1, "0/0", 0);
        bad.system_identifier = "x".into();
        assert!(local_position(&bad).is_err());
    }

    #[test]
    fn rewind_prerequisites_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RejoinOptions {
            pg_rewind: Some("sh".into()),
            config_files: vec![],
            config_archive_dir: dir.path().to_path_buf(),
            wait: true,
        };
        let mut c = cd("shut down", "0/1", 1, "0/0", 0);
        assert!(check_rewind_prerequisites(&c, Path::new("sh"), &opts).is_ok());
        c.wal_log_hints = false;
        let e = check_rewind_prerequisites(&c, Path::new("sh"), &opts).unwrap_err();
        assert_eq!(e.code, ExitCode::RejoinFail);
        assert!(e.detail.unwrap().contains("wal_log_hints"));
        c.data_checksum_version = 1;
        assert!(check_rewind_prerequisites(&c, Path::new("sh"), &opts).is_ok());
        let e =
            check_rewind_prerequisites(&c, Path::new("/nonexistent/pg_rewind"), &opts).unwrap_err();
        assert!(e.message().contains("not found"));
        let bad = RejoinOptions {
            config_files: vec!["../x".into()],
            ..opts
        };
        assert!(check_rewind_prerequisites(&c, Path::new("sh"), &bad).is_err());
    }
}
