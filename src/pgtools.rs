//! PostgreSQL's own tools and the local data directory: where the binaries
//! are (`-b/--pg_bindir`, `pg_bindir`, else PATH), the service actions
//! (`service_*_command` or the pg_ctl fallback repmgr documents), what
//! `pg_controldata` says, and whether a server runs on a data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::Config;
use crate::error::{Error, ExitCode, Result};
use crate::process;

/// How long a pg_ctl action may take before it is given up on.
pub const PG_CTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where PostgreSQL's binaries are, from -b (wins) or `pg_bindir`.
#[derive(Debug, Clone, Default)]
pub struct PgBin {
    dir: Option<PathBuf>,
}

impl PgBin {
    pub fn new(cli_bindir: Option<&str>, cfg: &Config) -> PgBin {
        let dir = cli_bindir
            .filter(|d| !d.is_empty())
            .or((!cfg.pg_bindir.is_empty()).then_some(cfg.pg_bindir.as_str()))
            .map(PathBuf::from);
        PgBin { dir }
    }

    /// The path of a tool (`pg_ctl`, `pg_basebackup`, …): in the configured
    /// directory, else the bare name for a PATH lookup.
    pub fn path(&self, tool: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.join(tool),
            None => PathBuf::from(tool),
        }
    }

    pub fn command(&self, tool: &str) -> Command {
        Command::new(self.path(tool))
    }
}

/// The actions of `node service` and the commands behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    Start,
    Stop,
    Restart,
    Reload,
    Promote,
}

impl ServiceAction {
    pub fn name(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Reload => "reload",
            ServiceAction::Promote => "promote",
        }
    }

    fn configured(self, cfg: &Config) -> &str {
        match self {
            ServiceAction::Start => &cfg.service_start_command,
            ServiceAction::Stop => &cfg.service_stop_command,
            ServiceAction::Restart => &cfg.service_restart_command,
            ServiceAction::Reload => &cfg.service_reload_command,
            ServiceAction::Promote => &cfg.service_promote_command,
        }
    }
}

/// The command line an action runs: the configured `service_*_command`, or
/// repmgr's pg_ctl fallback (`pg_ctl <pg_ctl_options> -w -D '<datadir>' …`).
pub fn service_command_line(
    action: ServiceAction,
    cfg: &Config,
    bin: &PgBin,
    datadir: &str,
) -> String {
    let configured = action.configured(cfg).trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    let pg_ctl = process::shell_quote(&bin.path("pg_ctl").to_string_lossy());
    // repmgr's layout to the byte: "<pg_ctl> <pg_ctl_options> -w -D '<dir>'"
    // (two spaces when there are no options; the directory always quoted).
    let opts = cfg.pg_ctl_options.trim();
    let dir = always_quote(datadir);
    let log = always_quote(&format!("{datadir}/log/repmgr-start.log"));
    match action {
        // Deliberately unlike repmgr: pg_ctl start keeps the server's stdout,
        // which would hold our pipe open, so it goes to a log file inside the
        // data directory.
        ServiceAction::Start => format!("{pg_ctl} {opts} -w -D {dir} -l {log} start"),
        ServiceAction::Stop => format!("{pg_ctl} {opts} -D {dir} -W -m fast stop"),
        ServiceAction::Restart => format!("{pg_ctl} {opts} -w -D {dir} -l {log} restart"),
        ServiceAction::Reload => format!("{pg_ctl} {opts} -w -D {dir} reload"),
        ServiceAction::Promote => format!("{pg_ctl} {opts} -w -D {dir} promote"),
    }
}

/// PostgreSQL's `appendShellString`: always in single quotes.
fn always_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// Runs a service action with a deadline; exit 5 (ERR_LOCAL_COMMAND) on
/// failure, carrying the command's output.
pub fn run_service_action(
    action: ServiceAction,
    cfg: &Config,
    bin: &PgBin,
    datadir: &str,
) -> Result<()> {
    if matches!(action, ServiceAction::Start | ServiceAction::Restart)
        && action.configured(cfg).trim().is_empty()
    {
        // pg_ctl's -l needs the directory to exist.
        let _ = fs::create_dir_all(Path::new(datadir).join("log"));
    }
    let line = service_command_line(action, cfg, bin, datadir);
    crate::log_info!("executing: \"{line}\"");
    process::run_checked(
        process::shell(&line),
        PG_CTL_TIMEOUT,
        &format!("{} command", action.name()),
        ExitCode::LocalCommand,
    )?;
    Ok(())
}

/// The pid of the postmaster running on `datadir`, if any: postmaster.pid
/// names it and the process exists.
pub fn running_postmaster(datadir: &Path) -> Option<i32> {
    let text = fs::read_to_string(datadir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    match kill(Pid::from_raw(pid), None) {
        Err(Errno::ESRCH) => None,
        // Killed (see kill_server) and not reaped yet by its parent.
        _ if is_zombie(pid) => None,
        _ => Some(pid),
    }
}

/// Kills (SIGKILL) postmaster `pid` and every process it started, which
/// a hung postmaster could not stop itself, and waits up to `limit` for
/// the postmaster to be gone. A SIGKILL needs no cooperation: it ends a
/// stopped (SIGSTOP) process too. Returns how many other processes were
/// signalled.
pub fn kill_server(pid: i32, limit: std::time::Duration) -> Result<usize> {
    let postmaster = Pid::from_raw(pid);
    // The children first looked up, then all killed: the postmaster
    // cannot start new ones once it is killed.
    let children = children_of(pid);
    let _ = kill(postmaster, Signal::SIGKILL);
    for c in &children {
        let _ = kill(Pid::from_raw(*c), Signal::SIGKILL);
    }
    // Started between the look and the kill: looked up again.
    let late: Vec<i32> = children_of(pid)
        .into_iter()
        .filter(|c| !children.contains(c))
        .collect();
    for c in &late {
        let _ = kill(Pid::from_raw(*c), Signal::SIGKILL);
    }
    let gone = crate::poll::until(limit, std::time::Duration::from_millis(20), || {
        (matches!(kill(postmaster, None), Err(Errno::ESRCH)) || is_zombie(pid)).then_some(())
    });
    if gone.is_none() {
        return Err(Error::new(
            ExitCode::LocalCommand,
            format!(
                "postmaster {pid} was sent SIGKILL but is still there after {} s",
                limit.as_secs()
            ),
        ));
    }
    Ok(children.len() + late.len())
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| proc_stat_field(*pid, 1).as_deref() == Some(&parent.to_string()))
        .collect()
}

/// Field `n` after the command name of /proc/PID/stat (0: the state).
fn proc_stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n).map(str::to_string)
}

/// A process that has exited but was not reaped yet (its parent, when the
/// server was started by this process, reaps it later).
fn is_zombie(pid: i32) -> bool {
    proc_stat_field(pid, 0).as_deref() == Some("Z")
}

/// What `pg_controldata` reports that repmgr cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlData {
    pub system_identifier: String,
    /// "shut down", "shut down in recovery", "in production", …
    pub state: String,
    pub timeline: u32,
    pub checkpoint_lsn: String,
    /// "Minimum recovery ending location" and its timeline (standbys).
    pub min_recovery_lsn: String,
    pub min_recovery_timeline: u32,
    /// "wal_log_hints setting: on" (pg_rewind needs it or checksums).
    pub wal_log_hints: bool,
    /// "Data page checksum version": 0 when checksums are off.
    pub data_checksum_version: u32,
}

impl ControlData {
    /// Whether the server was shut down cleanly ("shut down", or "shut down
    /// in recovery" for a standby).
    pub fn shut_down_cleanly(&self) -> bool {
        self.state == "shut down" || self.state == "shut down in recovery"
    }
}

pub fn control_data(bin: &PgBin, datadir: &Path) -> Result<ControlData> {
    let mut cmd = bin.command("pg_controldata");
    cmd.arg("-D").arg(datadir).env("LC_ALL", "C");
    let out = process::run_checked(
        cmd,
        Duration::from_secs(30),
        "pg_controldata",
        ExitCode::LocalCommand,
    )?;
    Ok(parse_control_data(&out.stdout))
}

fn parse_control_data(text: &str) -> ControlData {
    let mut cd = ControlData::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Database system identifier" => cd.system_identifier = v.to_string(),
            "Database cluster state" => cd.state = v.to_string(),
            "Latest checkpoint's TimeLineID" => cd.timeline = v.parse().unwrap_or(0),
            "Latest checkpoint location" => cd.checkpoint_lsn = v.to_string(),
            "Minimum recovery ending location" => cd.min_recovery_lsn = v.to_string(),
            "Min recovery ending loc's timeline" => {
                cd.min_recovery_timeline = v.parse().unwrap_or(0)
            }
            "wal_log_hints setting" => cd.wal_log_hints = v == "on",
            "Data page checksum version" => cd.data_checksum_version = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    cd
}

/// The PostgreSQL version of a data directory (its `PG_VERSION` file) as a
/// `server_version_num`-style number: "15" gives 150000, "9.6" 90600.
pub fn data_directory_version(datadir: &Path) -> Result<i32> {
    let path = datadir.join("PG_VERSION");
    let text = fs::read_to_string(&path).map_err(|e| {
        Error::config(format!("unable to read \"{}\"", path.display()))
            .detail(e.to_string())
            .hint("check data_directory in repmgr.conf names a PostgreSQL data directory")
    })?;
    parse_pg_version(text.trim()).ok_or_else(|| {
        Error::config(format!(
            "unexpected contents in \"{}\": \"{}\"",
            path.display(),
            text.trim()
        ))
    })
}

fn parse_pg_version(v: &str) -> Option<i32> {
    let mut parts = v.split('.');
    let major: i32 = parts.next()?.trim().parse().ok()?;
    if major >= 10 {
        return Some(major * 10000);
    }
    let minor: i32 = parts.next()?.trim().parse().ok()?;
    Some(major * 10000 + minor * 100)
}

/// Whether a program can be run: an existing file when a path is given,
/// else found in PATH.
pub fn program_exists(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| executable(&d.join(program))))
        .unwrap_or(false)
}

/// Refuses to go on when the data directory belongs to a running server.
pub fn ensure_not_running(datadir: &Path, what: &str) -> Result<()> {
    if let Some(pid) = running_postmaster(datadir) {
        return Err(Error::config(format!(
            "a PostgreSQL server (PID {pid}) is running on data directory \"{}\"",
            datadir.display()
        ))
        .hint(format!("stop that server before {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controldata_parsing() {
        let cd = parse_control_data(
            "pg_control version number:            1300\n\
             Database system identifier:           7312345678901234567\n\
             Database cluster state:               shut down in recovery\n\
             Latest checkpoint location:           0/3000060\n\
             Latest checkpoint's TimeLineID:       2\n\
             Minimum recovery ending location:     0/3000108\n\
             Min recovery ending loc's timeline:   2\n\
             wal_log_hints setting:                on\n\
             Data page checksum version:           0\n",
        );
        assert!(cd.wal_log_hints);
        assert_eq!(cd.data_checksum_version, 0);
        assert!(cd.shut_down_cleanly());
        assert_eq!(cd.system_identifier, "7312345678901234567");
        assert_eq!(cd.state, "shut down in recovery");
        assert_eq!(cd.timeline, 2);
        assert_eq!(cd.checkpoint_lsn, "0/3000060");
        assert_eq!(cd.min_recovery_timeline, 2);
    }

    #[test]
    fn pg_ctl_fallback_lines() {
        let cfg = Config::default();
        let bin = PgBin::new(Some("/usr/lib/postgresql/15/bin"), &cfg);
        assert_eq!(
            service_command_line(ServiceAction::Reload, &cfg, &bin, "/data/x"),
            "/usr/lib/postgresql/15/bin/pg_ctl  -w -D '/data/x' reload"
        );
        assert_eq!(
            service_command_line(ServiceAction::Stop, &cfg, &bin, "/it's"),
            "/usr/lib/postgresql/15/bin/pg_ctl  -D '/it'\"'\"'s' -W -m fast stop"
        );
        let cfg = Config {
            service_promote_command: "sudo systemctl promote".into(),
            ..Config::default()
        };
        assert_eq!(
            service_command_line(ServiceAction::Promote, &cfg, &bin, "/d"),
            "sudo systemctl promote"
        );
    }

    #[test]
    fn pg_version_numbers() {
        assert_eq!(parse_pg_version("15"), Some(150000));
        assert_eq!(parse_pg_version("9.6"), Some(90600));
        assert_eq!(parse_pg_version("x"), None);
        assert!(program_exists(Path::new("sh")));
        assert!(!program_exists(Path::new("/nonexistent/pg_rewind")));
    }

    #[test]
    fn no_server_on_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_postmaster(dir.path()), None);
        fs::write(dir.path().join("postmaster.pid"), "1\n/x\n").unwrap();
        assert_eq!(running_postmaster(dir.path()), Some(1));
    }
}
