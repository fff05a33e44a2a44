//! `repmgr daemon start|stop`: starts repmgrd (this binary, or
//! repmgrd_service_start_command) and stops it (SIGTERM to the pid its pid
//! file names, or repmgrd_service_stop_command), then waits to see it done.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::Session;

use super::service::{verbose, POLL};
use super::Ctx;
use crate::db::{self, daemon_status::DaemonStatus};
use crate::error::{Error, ExitCode, Result};

/// How long `daemon start|stop` waits by default (repmgr's
/// REPMGR_DAEMON_STOP_START_WAIT).
pub const DEFAULT_WAIT_SECS: u64 = 15;

/// Deadline for a configured repmgrd_service_start/stop_command.
const SERVICE_COMMAND_LIMIT: Duration = Duration::from_secs(60);

const START_HINT: &str =
    "use \"repmgr service status\" to confirm that repmgrd was successfully started";
const STOP_HINT: &str =
    "use \"repmgr service status\" to confirm that repmgrd was successfully stopped";

/// The `-w/--wait[=secs]` / `-W/--no-wait` choice: None = don't wait.
fn wait_limit(ctx: &Ctx) -> Result<Option<Duration>> {
    if ctx.opts.no_wait {
        return Ok(None);
    }
    let secs = match ctx.opts.wait.as_deref() {
        None | Some("") => DEFAULT_WAIT_SECS,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            Error::config(format!(
                "invalid value provided for option \"--wait\": \"{v}\" (expected a number of seconds)"
            ))
            .hint("Try \"repmgr --help\" for more information.")
        })?,
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// Whether `pid` is a live repmgrd: it exists, and where /proc can tell,
/// its argv[0] names repmgrd (a stale pid file may point at a reused pid).
pub(crate) fn repmgrd_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    if pid <= 0 {
        return false;
    }
    if matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    ) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let argv0 = raw.split(|b| *b == 0).next().unwrap_or_default();
            let argv0 = String::from_utf8_lossy(argv0);
            Path::new(argv0.as_ref())
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("repmgrd"))
        }
        // No /proc (or no access): trust kill(2).
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// The pid recorded in a pid file, if the file exists and holds a number.
fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What is known locally about this node's repmgrd.
struct LocalDaemon {
    pid_file: Option<PathBuf>,
    /// The pid from the pid file, when it names a live repmgrd.
    file_pid: Option<i32>,
    /// The pid file exists but names no live repmgrd.
    stale_file: bool,
    /// The pid the pid file holds, live or not.
    recorded: Option<i32>,
    /// This node's row, as the local node's copy of the table has it.
    row: Option<DaemonStatus>,
}

impl LocalDaemon {
    fn running_pid(&self) -> Option<i32> {
        // A fresh heartbeat from the very pid the pid file shows dead is
        // a repmgrd that just died: the process table is the better witness.
        self.file_pid.or_else(|| {
            self.row
                .as_ref()
                .filter(|r| r.is_running())
                .and_then(|r| r.pid)
                .filter(|p| Some(*p) != self.recorded)
        })
    }
}

fn local_daemon(ctx: &Ctx, conn: Option<&mut Session>) -> LocalDaemon {
    let cfg = ctx.config();
    let pid_file = crate::ops::pidfile::path(None, false, cfg);
    let recorded = pid_file.as_deref().and_then(read_pid_file);
    let file_pid = recorded.filter(|p| repmgrd_alive(*p));
    let stale_file = pid_file.as_deref().is_some_and(Path::exists) && file_pid.is_none();
    let node_id = cfg.node_id.unwrap_or_default();
    let row = conn.and_then(|c| {
        db::daemon_status::all(c)
            .ok()?
            .into_iter()
            .find(|r| r.node_id == node_id)
    });
    LocalDaemon {
        pid_file,
        file_pid,
        stale_file,
        recorded,
        row,
    }
}

/// Polls `done` every 200 ms until it holds or `limit` passes.
fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The command that starts repmgrd directly: this binary as `repmgrd`
/// (it is multi-call), with this configuration file; it daemonizes itself.
fn direct_start_command(ctx: &Ctx) -> Result<Command> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(
            ExitCode::RepmgrdService,
            "unable to determine the path of this program",
        )
        .detail(e.to_string())
    })?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let sibling = dir.join("repmgrd");
    let mut cmd = if sibling.exists() {
        Command::new(&sibling)
    } else {
        let mut c = Command::new(&exe);
        c.arg0(sibling.as_os_str());
        c
    };
    let conf = ctx
        .loaded
        .as_ref()
        .map(|l| l.path.clone())
        .ok_or_else(|| Error::config("no configuration file provided and none found"))?;
    let conf = std::fs::canonicalize(&conf).unwrap_or(conf);
    cmd.arg("-f").arg(conf);
    Ok(cmd)
}

/// Runs the direct start: waits (bounded) for the parent to exit after it
/// forked; the daemon keeps our stderr unless it logs to a file, as
/// repmgrd does when started by hand.
fn run_direct_start(mut cmd: Command) -> Result<()> {
    use wait_timeout::ChildExt;
    let shown = crate::process::display_command(&cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(ExitCode::RepmgrdService, "unable to start repmgrd")
            .detail(format!("{shown}: {e}"))
    })?;
    match child.wait_timeout(SERVICE_COMMAND_LIMIT) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(
            Error::new(ExitCode::RepmgrdService, "unable to start repmgrd")
                .detail(format!("{shown}: {}", crate::process::describe_status(&s))),
        ),
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(
                Error::new(ExitCode::RepmgrdService, "unable to start repmgrd").detail(format!(
                    "{shown} did not return within {} s",
                    SERVICE_COMMAND_LIMIT.as_secs()
                )),
            )
        }
    }
}

/// `repmgr daemon start`.
pub fn start(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let limit = wait_limit(ctx)?;
    verbose(ctx, "connecting to local node");
    let mut conn = ctx.connect_local().map_err(|e| {
        Error::db_conn("unable to connect to local node")
            .detail(format!(
                "PostgreSQL must be running before \"repmgrd\" can be started ({})",
                e.reason()
            ))
            .hint(e.hint.clone().unwrap_or_default())
    })?;
    let before = local_daemon(ctx, Some(&mut conn));
    drop(conn);
    if let Some(pid) = before.running_pid() {
        crate::log_notice!("repmgrd appears to be running already");
        crate::log_detail!("repmgrd PID is {pid}");
        return Ok(());
    }

    let custom = cfg.repmgrd_service_start_command.trim();
    let shown = if custom.is_empty() {
        crate::process::display_command(&direct_start_command(ctx)?)
    } else {
        custom.to_string()
    };
    if ctx.opts.dry_run {
        crate::log_info!("prerequisites for starting repmgrd met");
        crate::log_detail!("following command would be executed:\n  {shown}");
        return Ok(());
    }

    crate::log_notice!("executing: \"{shown}\"");
    if custom.is_empty() {
        run_direct_start(direct_start_command(ctx)?).map_err(|e| {
            if cfg.log_file.is_empty() {
                e
            } else {
                e.hint(format!("see the repmgrd log file \"{}\"", cfg.log_file))
            }
        })?;
    } else {
        run_service_command(custom, "repmgrd_service_start_command", "start")?;
    }

    let Some(limit) = limit else {
        crate::log_hint!("{START_HINT}");
        return Ok(());
    };
    let mut started = None;
    let ok = poll(limit, || {
        let mut c = ctx.connect_local().ok();
        let now = local_daemon(ctx, c.as_mut());
        started = now.running_pid();
        started.is_some()
    });
    if !ok {
        return Err(Error::new(
            ExitCode::RepmgrdService,
            format!(
                "repmgrd does not appear to have started after {} seconds",
                limit.as_secs()
            ),
        )
        .hint(START_HINT));
    }
    crate::log_notice!("repmgrd was successfully started");
    if let Some(pid) = started {
        crate::log_detail!("repmgrd PID is {pid}");
    }
    Ok(())
}

/// `repmgr daemon stop`.
pub fn stop(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let limit = wait_limit(ctx)?;
    verbose(ctx, "connecting to local node");
    let mut conn = match ctx.connect_local() {
        Ok(c) => Some(c),
        Err(_) => {
            // Not needed to stop repmgrd: the pid file is enough.
            crate::log_warning!("unable to connect to local node");
            None
        }
    };
    let before = local_daemon(ctx, conn.as_mut());
    drop(conn);
    let custom = cfg.repmgrd_service_stop_command.trim();
    let pid_file_text = before
        .pid_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();

    let Some(pid) = before.running_pid() else {
        crate::log_notice!("repmgrd appears to be stopped already");
        if before.stale_file {
            crate::log_detail!(
                "pid file \"{pid_file_text}\" does not name a running repmgrd process"
            );
        }
        return Ok(());
    };
    if custom.is_empty() && before.file_pid.is_none() {
        return Err(unknown_process(ctx, &before, &pid_file_text, pid));
    }

    let shown = if custom.is_empty() {
        format!("kill -TERM {pid}")
    } else {
        custom.to_string()
    };
    if ctx.opts.dry_run {
        crate::log_info!("prerequisites for stopping repmgrd met");
        crate::log_detail!("following command would be executed:\n  {shown}");
        return Ok(());
    }
    crate::log_notice!("executing: \"{shown}\"");
    if custom.is_empty() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| {
            Error::new(ExitCode::RepmgrdService, "unable to stop repmgrd")
                .detail(format!("sending SIGTERM to PID {pid}: {e}"))
        })?;
    } else {
        run_service_command(custom, "repmgrd_service_stop_command", "stop")?;
    }

    let Some(limit) = limit else {
        crate::log_hint!("{STOP_HINT}");
        return Ok(());
    };
    wait_stopped(ctx, limit, &before, pid)
}

/// The refusal to stop a repmgrd known by its heartbeat only: which
/// process it is cannot be told.
fn unknown_process(ctx: &Ctx, before: &LocalDaemon, pid_file_text: &str, pid: i32) -> Error {
    let what = if before.stale_file {
        format!("pid file \"{pid_file_text}\" does not name a running repmgrd process")
    } else {
        format!("PID file \"{pid_file_text}\" not found")
    };
    Error::new(ExitCode::RepmgrdService, "unable to stop repmgrd")
        .detail(format!(
            "{what}, but repmgrd on this node reports PID {pid} in the repmgr metadata"
        ))
        .hint(format!(
            "set \"repmgrd_pid_file\" in \"{}\" to the pid file repmgrd uses, or set \"repmgrd_service_stop_command\"",
            ctx.loaded.as_ref().map(|l| l.path.display().to_string()).unwrap_or_default()
        ))
}

/// Waits up to `limit` for repmgrd `pid` to be gone.
fn wait_stopped(ctx: &Ctx, limit: Duration, before: &LocalDaemon, pid: i32) -> Result<()> {
    let gone = poll(limit, || {
        if before.file_pid.is_some() || repmgrd_alive(pid) {
            return !repmgrd_alive(pid);
        }
        // A repmgrd on another host (by its heartbeat only): ask the metadata.
        let mut c = ctx.connect_local().ok();
        local_daemon(ctx, c.as_mut()).running_pid().is_none()
    });
    if !gone {
        return Err(Error::new(
            ExitCode::RepmgrdService,
            format!(
                "repmgrd does not appear to have stopped after {} seconds",
                limit.as_secs()
            ),
        )
        .hint(STOP_HINT));
    }
    crate::log_notice!("repmgrd was successfully stopped");
    Ok(())
}

/// Runs a configured `repmgrd_service_*_command` with a deadline; a
/// failure is exit 27 with the command's own error in the DETAIL.
fn run_service_command(command: &str, key: &str, verb: &str) -> Result<()> {
    crate::process::run_checked(
        crate::process::shell(command),
        SERVICE_COMMAND_LIMIT,
        key,
        ExitCode::RepmgrdService,
    )
    .map(|_| ())
    .map_err(|e| {
        let detail = match &e.detail {
            Some(d) => format!("{}\n{d}", e.message()),
            None => e.message().to_string(),
        };
        Error::new(
            ExitCode::RepmgrdService,
            format!("unable to {verb} repmgrd"),
        )
        .detail(detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_that_is_not_repmgrd_is_not_alive() {
        // This test process exists but is not called repmgrd.
        assert!(!repmgrd_alive(std::process::id() as i32));
        assert!(!repmgrd_alive(0));
        assert!(!repmgrd_alive(-5));
    }
}
