//! What must hold before anything is copied: the target directory, the
//! upstream's replication settings, and a working replication connection.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::rsync;
use super::shared::Method;
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::replication::{Tablespace, UpstreamSettings};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::{self, PgBin};
use crate::process;

/// What the target data directory looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Missing,
    Empty,
    /// Has contents; only usable with -F.
    NonEmpty,
}

/// How long the replication connection test may take.
const REPLICATION_TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks the target: a running server's directory is always refused; a
/// non-empty one only with -F, and only when it is a data directory.
pub fn target(dir: &Path, force: bool, method: Method) -> Result<TargetState> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TargetState::Missing),
        Err(e) => {
            return Err(
                Error::config(format!("unable to access \"{}\"", dir.display()))
                    .detail(e.to_string()),
            )
        }
    };
    if !dir.is_dir() {
        return Err(Error::config(format!(
            "target data directory \"{}\" exists but is not a directory",
            dir.display()
        ))
        .detail(format!("file type: {:?}", meta.file_type()))
        .hint("choose another directory with -D/--pgdata"));
    }
    if let Some(pid) = pgtools::running_postmaster(dir) {
        return Err(Error::config(format!(
            "target data directory \"{}\" belongs to a running PostgreSQL server (PID {pid})",
            dir.display()
        ))
        .detail("a running server's data directory is never overwritten, not even with -F/--force")
        .hint("stop that server first if you mean to replace it, or choose another directory with -D/--pgdata"));
    }
    let entries: Vec<String> = fs::read_dir(dir)
        .map_err(|e| {
            Error::config(format!("unable to read directory \"{}\"", dir.display()))
                .detail(e.to_string())
                .hint("check the directory belongs to the user running repmgr")
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(TargetState::Empty);
    }
    let shown = listing(&entries);
    let is_pgdata = dir.join("PG_VERSION").is_file();
    if !force {
        let what = if method == Method::Rsync {
            "-F/--force to bring it up to date with rsync"
        } else {
            "-F/--force to replace its contents"
        };
        return Err(Error::config(format!(
            "target data directory \"{}\" exists and is not empty",
            dir.display()
        ))
        .detail(format!("it contains: {shown}"))
        .hint(format!(
            "use {what}, or choose another directory with -D/--pgdata"
        )));
    }
    if !is_pgdata {
        return Err(Error::config(format!(
            "target directory \"{}\" is not empty and is not a PostgreSQL data directory",
            dir.display()
        ))
        .detail(format!("no PG_VERSION file; it contains: {shown}"))
        .hint("-F/--force only replaces an existing data directory; empty this directory yourself or choose another with -D/--pgdata"));
    }
    Ok(TargetState::NonEmpty)
}

/// A few entry names, for messages.
pub fn listing(entries: &[String]) -> String {
    let mut sorted = entries.to_vec();
    sorted.sort();
    let n = sorted.len();
    let mut s = sorted.into_iter().take(8).collect::<Vec<_>>().join(", ");
    if n > 8 {
        s.push_str(&format!(", … ({n} entries)"));
    }
    s
}

/// The slot state this clone will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// use_replication_slots is off.
    NotUsed,
    Exists,
    Missing,
}

/// Checks the upstream's settings; every problem is reported at once.
pub fn upstream(s: &UpstreamSettings, cfg: &Config, method: Method, slot: SlotState) -> Result<()> {
    let mut found = Problems::default();
    wal_level(s, &mut found);
    wal_senders(s, method, &mut found);
    hot_standby(s, &mut found);
    replication_slots(s, method, slot, &mut found);
    wal_retention(s, cfg, slot, &mut found);
    if s.archive_mode != "off" && s.archive_command.trim().is_empty() {
        crate::log_warning!(
            "archive_mode is \"{}\" on the upstream but archive_command is empty",
            s.archive_mode
        );
    }
    if found.problems.is_empty() {
        return Ok(());
    }
    Err(Error::many(ExitCode::BadConfig, found.problems)
        .detail("the upstream's configuration does not allow cloning a standby from it")
        .hint(found.hints.join("; ")))
}

/// What [`upstream`] found wrong, each with how to fix it.
#[derive(Default)]
struct Problems {
    problems: Vec<String>,
    hints: Vec<String>,
}

impl Problems {
    fn add(&mut self, problem: String, hint: String) {
        self.problems.push(problem);
        self.hints.push(hint);
    }
}

fn wal_level(s: &UpstreamSettings, found: &mut Problems) {
    if s.wal_level != "replica" && s.wal_level != "logical" {
        found.add(
            format!(
                "parameter \"wal_level\" on the upstream is \"{}\", it must be \"replica\" or \"logical\"",
                s.wal_level
            ),
            "set wal_level = replica on the upstream and restart it".to_string(),
        );
    }
}

fn wal_senders(s: &UpstreamSettings, method: Method, found: &mut Problems) {
    let needed = method.wal_senders_needed();
    let free = s.max_wal_senders - s.wal_senders_in_use;
    if free < needed {
        found.add(
            format!(
                "not enough free WAL senders on the upstream: {free} free (max_wal_senders = {}, {} in use), {needed} needed for {}",
                s.max_wal_senders,
                s.wal_senders_in_use,
                method.describe_wal_use()
            ),
            format!(
                "set max_wal_senders to at least {} on the upstream and restart it",
                s.wal_senders_in_use + needed + 1
            ),
        );
    }
}

fn hot_standby(s: &UpstreamSettings, found: &mut Problems) {
    if !s.hot_standby {
        found.add(
            "parameter \"hot_standby\" is off on the upstream; its configuration is copied to the standby, which would not accept queries"
                .to_string(),
            "set hot_standby = on on the upstream".to_string(),
        );
    }
}

/// A free slot for this standby's slot, or for pg_basebackup's temporary one.
fn replication_slots(s: &UpstreamSettings, method: Method, slot: SlotState, found: &mut Problems) {
    match slot {
        SlotState::Missing if s.max_replication_slots - s.slots_in_use < 1 => found.add(
            format!(
                "no free replication slot on the upstream for this standby's slot (max_replication_slots = {}, {} in use)",
                s.max_replication_slots, s.slots_in_use
            ),
            format!(
                "set max_replication_slots to at least {} on the upstream and restart it",
                s.slots_in_use + 2
            ),
        ),
        SlotState::NotUsed
            if method == Method::Basebackup && s.max_replication_slots - s.slots_in_use < 1 =>
        {
            found.add(
                format!(
                    "no free replication slot on the upstream for pg_basebackup's temporary slot (max_replication_slots = {}, {} in use)",
                    s.max_replication_slots, s.slots_in_use
                ),
                format!(
                    "set max_replication_slots to at least {} on the upstream and restart it",
                    s.slots_in_use + 1
                ),
            )
        }
        _ => {}
    }
}

/// Without a slot, the upstream must keep WAL (or the standby restore it).
fn wal_retention(s: &UpstreamSettings, cfg: &Config, slot: SlotState, found: &mut Problems) {
    if slot == SlotState::NotUsed && s.wal_keep <= 0 && cfg.restore_command.trim().is_empty() {
        found.add(
            format!(
                "the upstream does not retain WAL for the standby: \"{}\" is 0, use_replication_slots is off and no restore_command is configured",
                s.wal_keep_name
            ),
            format!(
                "set {} on the upstream (e.g. {}), or set use_replication_slots=true or a restore_command in this node's repmgr.conf",
                s.wal_keep_name,
                if s.wal_keep_name == "wal_keep_size" {
                    "wal_keep_size = '1GB'"
                } else {
                    "wal_keep_segments = 64"
                }
            ),
        );
    }
}

/// Opens a replication connection (`IDENTIFY_SYSTEM` through psql, which
/// speaks the replication protocol) to prove pg_hba.conf and the role allow
/// it before anything is copied.
pub fn replication_connection(bin: &PgBin, ci: &ConnInfo) -> Result<String> {
    let (rci, password) = super::shared::replication_conninfo(ci);
    let mut cmd = bin.command("psql");
    cmd.args(["-X", "-w", "-A", "-t", "-d"])
        .arg(rci.to_string())
        .args(["-c", "IDENTIFY_SYSTEM"]);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let user = rci.user().map(str::to_string).unwrap_or_default();
    let out = process::run(cmd, REPLICATION_TEST_TIMEOUT, "replication connection test")
        .map_err(|e| e.with_code(ExitCode::DbConn))?;
    if !out.success() {
        return Err(Error::db_conn(
            "unable to establish a replication connection to the upstream",
        )
        .detail(format!("{}\n{}", rci, out.stderr.trim()))
        .hint(format!(
            "check pg_hba.conf on the upstream has a \"replication\" line for user \"{user}\" from this host, and that the role has the REPLICATION attribute (or use --replication-user)"
        )));
    }
    Ok(out.stdout.trim().to_string())
}

/// A local clone must put every tablespace somewhere else than the source's
/// own directory; mappings naming no tablespace are reported.
pub fn check_tablespaces(
    ts: &[Tablespace],
    mapping: &[(String, String)],
    local: bool,
) -> Result<()> {
    for (old, _) in mapping {
        if !ts
            .iter()
            .any(|t| t.location.trim_end_matches('/') == old.trim_end_matches('/'))
        {
            crate::log_warning!(
                "tablespace_mapping: no tablespace on the upstream is at \"{old}\""
            );
        }
    }
    for t in ts {
        let dest = rsync::mapped(&t.location, mapping);
        if local && dest == t.location {
            return Err(Error::config(format!(
                "tablespace \"{}\" at \"{}\" would be cloned onto itself",
                t.name, t.location
            ))
            .detail("the upstream runs on this host and the tablespace has no mapping")
            .hint(format!(
                "add tablespace_mapping='{}=/new/path' to this node's repmgr.conf",
                t.location
            )));
        }
        let dest = Path::new(&dest);
        if dest.is_dir() && fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) && !local {
            crate::log_info!(
                "tablespace directory \"{}\" exists and is not empty",
                dest.display()
            );
        }
    }
    Ok(())
}

/// rsync must be installed for --rsync-only.
pub fn rsync_available() -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("rsync").is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::config("rsync was not found in PATH")
            .detail("--rsync-only copies the data directory with rsync")
            .hint("install rsync (e.g. \"apt-get install rsync\") or clone with pg_basebackup (without -r/--rsync-only)"))
    }
}
