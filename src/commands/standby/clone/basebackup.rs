//! Cloning with `pg_basebackup`, repmgr's default method.

use std::path::Path;

use super::shared::{progress_logger, replication_conninfo, COPY_TIMEOUT, TICK};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::error::{ExitCode, Result};
use crate::pgtools::PgBin;
use crate::process;

/// Keys pg_basebackup gets as -h/-p/-U; anything else goes in a -d conninfo.
const PLAIN_KEYS: &[&str] = &["host", "port", "user", "dbname", "password", "replication"];

/// The pg_basebackup command line repmgr runs:
/// `pg_basebackup -l "repmgr base backup" -D <dir> -h -p -U [-d conninfo]
/// -X stream [-c fast] [-S slot] [-T old=new] <pg_basebackup_options>`.
pub fn command(
    bin: &PgBin,
    cfg: &Config,
    ci: &ConnInfo,
    target: &Path,
    fast: bool,
    slot: Option<&str>,
    progress: bool,
) -> std::process::Command {
    let (rci, password) = replication_conninfo(ci);
    let mut cmd = bin.command("pg_basebackup");
    cmd.args(["-l", "repmgr base backup", "-D"]).arg(target);
    if let Some(h) = rci.host() {
        cmd.args(["-h", h]);
    }
    if let Some(p) = rci.port() {
        cmd.args(["-p", p]);
    }
    if let Some(u) = rci.user() {
        cmd.args(["-U", u]);
    }
    let mut extra = ConnInfo::default();
    for (k, v) in rci.iter() {
        // sslpassword never on the command line (every user of the
        // machine can read that): see [`hand_secrets`].
        if k != "sslpassword" && !PLAIN_KEYS.contains(&k) {
            extra.set(k, v);
        }
    }
    if !extra.is_empty() {
        cmd.arg("-d").arg(extra.to_string());
    }
    let user_opts: Vec<&str> = cfg.pg_basebackup_options.split_whitespace().collect();
    let has = |short: &str, long: &str| {
        user_opts
            .iter()
            .any(|o| o.starts_with(short) || o.starts_with(long))
    };
    if !has("-X", "--wal-method") {
        cmd.args(["-X", "stream"]);
    }
    if fast && !has("-c", "--checkpoint") {
        cmd.args(["-c", "fast"]);
    }
    if let Some(s) = slot {
        cmd.args(["-S", s]);
    }
    for (old, new) in &cfg.tablespace_mapping {
        cmd.arg("-T").arg(format!(
            "{}={}",
            old.replace('=', "\\="),
            new.replace('=', "\\=")
        ));
    }
    cmd.arg("-w");
    if progress && !has("-P", "--progress") {
        cmd.arg("-P");
    }
    cmd.args(&user_opts);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

/// Hands `ci`'s sslpassword to the [`command`] built from it, through a
/// service file of its own: keep the returned file until pg_basebackup has
/// run.
pub fn hand_secrets(
    ci: &ConnInfo,
    cmd: &mut std::process::Command,
) -> Result<Option<crate::tool_secrets::ServiceFile>> {
    let mut ci = ci.clone();
    crate::tool_secrets::hand_sslpassword(&mut ci, cmd, "pg_basebackup")
        .map_err(|e| e.with_code(ExitCode::BadBasebackup))
}

/// Runs pg_basebackup into `target` (which exists and is empty); exit 14
/// with its last output lines on failure.
pub fn run(cmd: std::process::Command, target: &Path, progress: bool) -> Result<()> {
    let shown = process::display_command(&cmd);
    crate::log_notice!("starting backup (using pg_basebackup)...");
    crate::log_info!("executing: {shown}");
    let mut tick = progress_logger("pg_basebackup", target, progress);
    let out = process::run_logged(
        cmd,
        COPY_TIMEOUT,
        "pg_basebackup",
        ExitCode::BadBasebackup,
        progress,
        TICK,
        &mut tick,
    )?;
    if !out.success() {
        return Err(
            process::failure(&out, &shown, "pg_basebackup", ExitCode::BadBasebackup).hint(
                "check the upstream's log and the output above; the target directory was cleaned up",
            ),
        );
    }
    Ok(())
}

/// `--verify-backup`: pg_verifybackup checks the copy against its manifest.
pub fn verify(bin: &PgBin, target: &Path) -> Result<()> {
    let mut cmd = bin.command("pg_verifybackup");
    cmd.arg(target);
    crate::log_notice!("verifying the backup with pg_verifybackup");
    process::run_checked(
        cmd,
        COPY_TIMEOUT,
        "pg_verifybackup",
        ExitCode::BadBasebackup,
    )?;
    crate::log_info!("backup verified");
    Ok(())
}
