//! `repmgr node …` (repmgr-action-node.c): one file per action, and the
//! few helpers they share.
//!
//! Cron jobs, Nagios and `standby switchover` parse these outputs, so every
//! line, including repmgr's oddities (the stray ")" in the lag thresholds,
//! the blank line after `node status`, no "Upstream connection" row in the
//! CSV of a full check), is kept as repmgr prints it.

mod check;
mod check_json;
mod checks;
mod control;
mod diagnostics;
mod service;
mod status;

use std::fs;
use std::path::Path;

use crate::db::Session;

use super::{connect_node, Ctx};
use crate::conninfo::ConnInfo;
use crate::error::Result;

pub use check::check;
pub use control::control;
pub use service::service;
pub use status::status;

/// `.ready` files in the archive_status directory; None when unreadable.
pub fn ready_archive_files(data_directory: &str) -> Option<i32> {
    let dir = Path::new(data_directory)
        .join("pg_wal")
        .join("archive_status");
    let entries = fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
            .count() as i32,
    )
}

/// Whether the data directory holds `standby.signal` (PostgreSQL 12+): a
/// hint only, for asking a standby's upstream record in the same round
/// trip as the rest; without it the record is asked afterwards.
pub(super) fn likely_standby(data_directory: &str) -> bool {
    !data_directory.is_empty() && Path::new(data_directory).join("standby.signal").exists()
}

/// repmgr's is_pg_dir: a directory holding PG_VERSION.
pub(super) fn is_pg_dir(dir: &str) -> bool {
    !dir.is_empty() && Path::new(dir).join("PG_VERSION").is_file()
}

/// The local connection for `node check`/`node service`: the configured
/// conninfo, with -S/--superuser as the user if given.
pub(super) fn local_conninfo(ctx: &Ctx) -> Result<ConnInfo> {
    let mut ci = match ctx.conninfo_from_options()? {
        Some(ci) if ctx.config().conninfo.is_empty() => ci,
        _ => ctx.local_conninfo()?,
    };
    if let Some(su) = ctx.opts.superuser.as_deref().filter(|s| !s.is_empty()) {
        ci.set("user", su);
    }
    Ok(ci)
}

pub(super) fn connect_local(ctx: &Ctx) -> Result<Session> {
    let ci = local_conninfo(ctx)?;
    let cfg = ctx.config();
    connect_node(&ci, &cfg.node_name, cfg.node_id.unwrap_or(0))
}
