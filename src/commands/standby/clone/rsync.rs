//! Cloning with rsync (`-r/--rsync-only`, the seed's method): a
//! non-exclusive backup held open on one session while rsync copies the
//! data directory and the tablespaces, then `backup_label` and
//! `tablespace_map` as the server returns them.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::db::Session;

use super::shared::{progress_logger, COPY_TIMEOUT, TICK};
use crate::db::replication::{self as repl, BackupStop, Tablespace};
use crate::error::{Error, ExitCode, Result};
use crate::process;

/// Left out of the copy (the directories themselves are kept).
pub const EXCLUDES: &[&str] = &[
    "pg_wal/*",
    "pg_xlog/*",
    "postmaster.pid",
    "postmaster.opts",
    "pg_replslot/*",
    "pg_dynshmem/*",
    "pg_notify/*",
    "pg_serial/*",
    "pg_snapshots/*",
    "pg_stat_tmp/*",
    "pg_subtrans/*",
    "pgsql_tmp*",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "standby.signal",
    "recovery.signal",
    "recovery.conf",
    "recovery.done",
];

/// rsync's "some files vanished before they could be transferred": normal
/// when copying a running server's files.
const RSYNC_VANISHED: i32 = 24;

/// Where rsync reads from.
pub struct RsyncSource {
    /// None: this host (a local path).
    pub remote_host: Option<String>,
    pub remote_user: Option<String>,
    pub ssh_options: String,
    pub rsync_options: String,
}

impl RsyncSource {
    fn spec(&self, path: &str) -> String {
        let path = format!("{}/", path.trim_end_matches('/'));
        match &self.remote_host {
            None => path,
            Some(h) => {
                let h = if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.clone()
                };
                match &self.remote_user {
                    Some(u) => format!("{u}@{h}:{path}"),
                    None => format!("{h}:{path}"),
                }
            }
        }
    }

    pub fn command(
        &self,
        from: &str,
        to: &Path,
        delete: bool,
        progress: bool,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new("rsync");
        cmd.args(["--archive", "--checksum"]);
        if delete {
            cmd.arg("--delete");
        }
        for x in EXCLUDES {
            cmd.arg(format!("--exclude={x}"));
        }
        if progress {
            cmd.arg("--info=progress2");
        }
        if self.remote_host.is_some() {
            let ssh = format!("ssh {}", self.ssh_options.trim());
            cmd.args(["-e", ssh.trim()]);
        }
        cmd.args(self.rsync_options.split_whitespace());
        // `--`: a host (or path) beginning with "-" is no option
        cmd.arg("--").arg(self.spec(from)).arg(format!(
            "{}/",
            to.display().to_string().trim_end_matches('/')
        ));
        cmd
    }

    /// Runs one rsync; exit 2 on failure.
    fn run(&self, from: &str, to: &Path, delete: bool, progress: bool) -> Result<()> {
        let cmd = self.command(from, to, delete, progress);
        let shown = process::display_command(&cmd);
        crate::log_info!("executing: {shown}");
        let mut tick = progress_logger("rsync", to, progress);
        let out = process::run_logged(
            cmd,
            COPY_TIMEOUT,
            "rsync",
            ExitCode::BadRsync,
            progress,
            TICK,
            &mut tick,
        )?;
        match out.code() {
            0 => Ok(()),
            RSYNC_VANISHED => {
                crate::log_info!("rsync: some files vanished during the copy (normal for a running server)");
                Ok(())
            }
            _ => Err(process::failure(&out, &shown, "rsync", ExitCode::BadRsync).hint(
                "check rsync (and ssh, for a remote source) works between the hosts as this user; see the output above",
            )),
        }
    }
}

/// Ends the backup on every path out, even on failure.
struct BackupGuard<'a> {
    conn: &'a mut Session,
    version: i32,
    active: bool,
}

impl<'a> BackupGuard<'a> {
    fn start(conn: &'a mut Session, version: i32, fast: bool) -> Result<Self> {
        repl::prepare_backup_session(conn, version)?;
        let label = format!(
            "repmgr standby clone {}",
            chrono::Local::now().format("%Y%m%d%H%M%S")
        );
        crate::log_notice!(
            "starting backup on the upstream{}...",
            if fast {
                " (fast checkpoint)"
            } else {
                " (this waits for the next checkpoint; use -c/--fast-checkpoint to force one)"
            }
        );
        let lsn = repl::backup_start(conn, version, &label, fast)?;
        crate::log_info!("backup started at {lsn}");
        Ok(BackupGuard {
            conn,
            version,
            active: true,
        })
    }

    fn stop(mut self) -> Result<BackupStop> {
        self.active = false;
        let r = repl::backup_stop(self.conn, self.version)?;
        crate::log_info!("backup stopped at {}", r.lsn);
        Ok(r)
    }
}

impl Drop for BackupGuard<'_> {
    fn drop(&mut self) {
        if self.active {
            match repl::backup_stop(self.conn, self.version) {
                Ok(_) => crate::log_info!("backup on the upstream stopped after the failure"),
                Err(e) => crate::log_warning!(
                    "unable to stop the backup on the upstream ({}); it ends when this session closes",
                    e.reason()
                ),
            }
        }
    }
}

/// A tablespace's directory on the standby: its mapping, else the same path.
pub fn mapped(location: &str, mapping: &[(String, String)]) -> String {
    let trimmed = location.trim_end_matches('/');
    mapping
        .iter()
        .find(|(old, _)| old.trim_end_matches('/') == trimmed)
        .map(|(_, new)| new.clone())
        .unwrap_or_else(|| location.to_string())
}

/// The server's tablespace_map with each path replaced by its mapping.
pub fn map_tablespace_map(text: &str, mapping: &[(String, String)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some((oid, path)) => out.push_str(&format!("{oid} {}\n", mapped(path, mapping))),
            None if line.is_empty() => {}
            None => {
                out.push_str(line);
                out.push('\n')
            }
        }
    }
    out
}

pub struct RsyncJob<'a> {
    pub source: RsyncSource,
    pub source_datadir: String,
    pub target: &'a Path,
    pub tablespaces: &'a [Tablespace],
    pub mapping: &'a [(String, String)],
    pub force: bool,
    pub fast: bool,
    pub progress: bool,
}

/// The whole copy. The backup is started and stopped on `conn`.
pub fn run(conn: &mut Session, version: i32, job: &RsyncJob<'_>) -> Result<BackupStop> {
    let guard = BackupGuard::start(conn, version, job.fast)?;
    crate::log_notice!(
        "copying data directory \"{}\" with rsync{}",
        job.source_datadir,
        if job.force {
            " (--delete: bringing the existing copy up to date)"
        } else {
            ""
        }
    );
    job.source
        .run(&job.source_datadir, job.target, job.force, job.progress)?;
    for ts in job.tablespaces {
        let dest = PathBuf::from(mapped(&ts.location, job.mapping));
        crate::log_notice!(
            "copying tablespace \"{}\" ({}) to \"{}\"",
            ts.name,
            ts.location,
            dest.display()
        );
        if !dest.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dest)
                .map_err(|e| dir_error(&dest, &e))?;
        }
        job.source
            .run(&ts.location, &dest, job.force, job.progress)?;
        let link = job.target.join("pg_tblspc").join(ts.oid.to_string());
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dest, &link).map_err(|e| {
            Error::new(
                ExitCode::BadRsync,
                format!("unable to create tablespace link \"{}\"", link.display()),
            )
            .detail(e.to_string())
        })?;
    }
    let stop = guard.stop()?;
    clean_excluded(job.target)?;
    write_label(job.target, "backup_label", &stop.backup_label)?;
    if !stop.tablespace_map.trim().is_empty() {
        write_label(
            job.target,
            "tablespace_map",
            &map_tablespace_map(&stop.tablespace_map, job.mapping),
        )?;
    }
    Ok(stop)
}

/// Empties what was left out of the copy but may linger in an old copy
/// (-F): old WAL, slots, pid and signal files. pg_wal becomes a plain
/// directory (a symlink copied from the source would point at its WAL).
fn clean_excluded(target: &Path) -> Result<()> {
    for f in [
        "postmaster.pid",
        "postmaster.opts",
        "backup_label",
        "backup_label.old",
        "tablespace_map",
        "standby.signal",
        "recovery.signal",
        "recovery.conf",
        "recovery.done",
    ] {
        let p = target.join(f);
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p).map_err(|e| dir_error(&p, &e))?;
        }
    }
    let wal = target.join("pg_wal");
    if fs::symlink_metadata(&wal).is_ok_and(|m| m.file_type().is_symlink()) {
        crate::log_warning!(
            "pg_wal on the source is a symbolic link; the standby gets a plain pg_wal directory"
        );
        fs::remove_file(&wal).map_err(|e| dir_error(&wal, &e))?;
    }
    for d in [
        "pg_wal",
        "pg_replslot",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_stat_tmp",
        "pg_subtrans",
    ] {
        let p = target.join(d);
        if p.is_dir() {
            for e in fs::read_dir(&p).map_err(|e| dir_error(&p, &e))?.flatten() {
                super::shared::remove_entry(&e.path())?;
            }
        } else {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&p)
                .map_err(|e| dir_error(&p, &e))?;
        }
    }
    let status = wal.join("archive_status");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&status)
        .map_err(|e| dir_error(&status, &e))?;
    Ok(())
}

fn write_label(target: &Path, name: &str, text: &str) -> Result<()> {
    let p = target.join(name);
    fs::write(&p, text)
        .and_then(|_| fs::set_permissions(&p, fs::Permissions::from_mode(0o600)))
        .map_err(|e| {
            Error::new(
                ExitCode::BadBackupLabel,
                format!("unable to write \"{}\"", p.display()),
            )
            .detail(e.to_string())
        })
}

fn dir_error(p: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ExitCode::BadRsync,
        format!("unable to prepare \"{}\"", p.display()),
    )
    .detail(e.to_string())
    .hint("check the directory belongs to the user running repmgr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablespace_paths_are_mapped() {
        let m = vec![("/old/ts".to_string(), "/new/ts".to_string())];
        assert_eq!(mapped("/old/ts", &m), "/new/ts");
        assert_eq!(mapped("/other", &m), "/other");
        assert_eq!(
            map_tablespace_map("16384 /old/ts\n16385 /x y\n", &m),
            "16384 /new/ts\n16385 /x y\n"
        );
    }

    #[test]
    fn rsync_command_lines() {
        let local = RsyncSource {
            remote_host: None,
            remote_user: None,
            ssh_options: String::new(),
            rsync_options: "--bwlimit=1000".into(),
        };
        let shown =
            process::display_command(&local.command("/src/", Path::new("/dst"), true, false));
        assert!(
            shown.starts_with("rsync --archive --checksum --delete '--exclude=pg_wal/*'"),
            "{shown}"
        );
        assert!(shown.ends_with("--bwlimit=1000 -- /src/ /dst/"), "{shown}");
        let remote = RsyncSource {
            remote_host: Some("node1".into()),
            remote_user: Some("postgres".into()),
            ssh_options: "-q -o ConnectTimeout=10".into(),
            rsync_options: String::new(),
        };
        let shown =
            process::display_command(&remote.command("/var/lib/pg", Path::new("/d"), false, false));
        assert!(!shown.contains("--delete"), "{shown}");
        assert!(
            shown.contains("-e 'ssh -q -o ConnectTimeout=10'"),
            "{shown}"
        );
        assert!(
            shown.ends_with("postgres@node1:/var/lib/pg/ /d/"),
            "{shown}"
        );
    }
}
