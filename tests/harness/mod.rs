//! Integration-test harness: real PostgreSQL servers in temp dirs, and the
//! repmgr binary under test, both run as an unprivileged OS user.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: when the test
//! process is root, every server tool (initdb, pg_ctl, pg_basebackup, psql)
//! and the repmgr binary run as the OS user `postgres`. Otherwise they run as
//! the current user.
//!
//! Everything that waits does a bounded poll with a deadline ([`poll_until`]).

// Not every test module uses every helper.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod exit;
pub mod net;
pub mod pg;
pub mod run;
pub mod sshd;

pub use daemon::Daemon;
pub use exit::{ExitCode, Nagios};
pub use net::{Host, Net};
pub use pg::{PgNode, PgNodeBuilder};
pub use run::{repmgr, repmgr_bin, repmgrd_bin, repmgrd_cmd, run_with_deadline, Repmgr, RunResult};
pub use sshd::Sshd;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Name of the unprivileged OS user used when the test process is root.
pub const UNPRIVILEGED_USER: &str = "postgres";

/// Environment variables that would steer libpq or the server tools away from
/// the node a test means; removed from every command the harness starts.
pub const PG_ENV_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGOPTIONS",
    "PGDATA",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGTARGETSESSIONATTRS",
];

/// The OS user that runs servers and the binary under test.
#[derive(Debug, Clone)]
pub struct RunUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// True when the test process is root and must switch to this user.
    pub switch: bool,
}

/// The user servers and repmgr run as (computed once per test process).
pub fn run_user() -> &'static RunUser {
    static USER: OnceLock<RunUser> = OnceLock::new();
    USER.get_or_init(|| {
        let euid = nix::unistd::geteuid();
        if euid.is_root() {
            let u = nix::unistd::User::from_name(UNPRIVILEGED_USER)
                .unwrap_or_else(|e| panic!("looking up OS user {UNPRIVILEGED_USER}: {e}"))
                .unwrap_or_else(|| {
                    panic!(
                        "tests run as root, so they need the unprivileged OS user \
                         {UNPRIVILEGED_USER:?} to run PostgreSQL; create it (useradd -r {UNPRIVILEGED_USER})"
                    )
                });
            let home = if u.dir.is_dir() {
                u.dir.clone()
            } else {
                PathBuf::from("/tmp")
            };
            RunUser {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home,
                switch: true,
            }
        } else {
            let u = nix::unistd::User::from_uid(euid)
                .ok()
                .flatten()
                .expect("looking up the current OS user in the passwd database");
            RunUser {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home: u.dir,
                switch: false,
            }
        }
    })
}

/// Directory of the PostgreSQL server binaries: `pg_config --bindir` when it
/// holds `postgres`, else the highest `/usr/lib/postgresql/*/bin`.
pub fn pg_bindir() -> PathBuf {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR
        .get_or_init(|| {
            if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
                if out.status.success() {
                    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                    if p.join("postgres").is_file() && p.join("initdb").is_file() {
                        return p;
                    }
                }
            }
            let mut best: Option<(u32, PathBuf)> = None;
            if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
                for e in entries.flatten() {
                    let Some(ver) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    let bin = e.path().join("bin");
                    if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(v, _)| ver > *v)
                    {
                        best = Some((ver, bin));
                    }
                }
            }
            best.map(|(_, p)| p).expect(
                "no PostgreSQL server binaries: neither `pg_config --bindir` nor \
                 /usr/lib/postgresql/*/bin has `postgres` (install postgresql-15)",
            )
        })
        .clone()
}

/// PATH given to every command the harness runs: the PG bindir first.
pub fn harness_path() -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        pg_bindir().display()
    )
}

/// Make `cmd` run as the unprivileged user when the test process is root
/// (uid, gid, supplementary groups cleared by std), with HOME/USER/LOGNAME of
/// that user and a PATH starting with the PG bindir. When not root it only
/// sets PATH. It does not touch the working directory or other variables.
pub fn run_as_user(cmd: &mut Command) -> &mut Command {
    let u = run_user();
    cmd.env("PATH", harness_path());
    if u.switch {
        cmd.uid(u.uid)
            .gid(u.gid)
            .env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    cmd
}

/// Like [`run_as_user`], but the process also enters the network namespace
/// of `host` (a bind-mounted netns file, see [`net::Host`]). Needs root: the
/// child enters the namespace first and only then drops to the run user, so
/// this replaces `run_as_user` (do not call both on one command). Same
/// environment as `run_as_user`.
pub fn run_as_user_on<'a>(cmd: &'a mut Command, host: &net::Host) -> &'a mut Command {
    let u = run_user();
    assert!(
        u.switch,
        "running a command inside a network namespace needs the tests to run as root"
    );
    let path = host.netns_path();
    let fd: std::os::fd::OwnedFd = fs::File::open(&path)
        .unwrap_or_else(|e| panic!("opening network namespace {}: {e}", path.display()))
        .into();
    let (uid, gid) = (u.uid, u.gid);
    cmd.env("PATH", harness_path())
        .env("HOME", &u.home)
        .env("USER", &u.name)
        .env("LOGNAME", &u.name);
    // SAFETY: the closure only makes raw system calls (no allocation, no
    // locks), which is what may run between fork and exec. std applies its
    // own uid/gid before pre_exec closures, so the switch is done here,
    // after setns, which needs root.
    unsafe {
        cmd.pre_exec(move || {
            use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
            setgroups(&[])?;
            setgid(Gid::from_raw(gid))?;
            setuid(Uid::from_raw(uid))?;
            Ok(())
        });
    }
    cmd
}

/// [`run_as_user`], or [`run_as_user_on`] when `host` is given.
pub fn run_as_user_maybe_on<'a>(cmd: &'a mut Command, host: Option<&net::Host>) -> &'a mut Command {
    match host {
        Some(h) => run_as_user_on(cmd, h),
        None => run_as_user(cmd),
    }
}

/// [`pg_tool`], run inside the network namespace of `host` when given.
pub fn pg_tool_on(tool: &str, cwd: &Path, host: Option<&net::Host>) -> Command {
    let mut cmd = Command::new(pg_bindir().join(tool));
    for v in PG_ENV_VARS {
        cmd.env_remove(v);
    }
    cmd.env("LC_ALL", "C").env("LANG", "C").current_dir(cwd);
    run_as_user_maybe_on(&mut cmd, host);
    cmd
}

/// A command for one of the PostgreSQL tools (`initdb`, `pg_ctl`, `psql`,
/// ...) from [`pg_bindir`], run as the user, with the PG* variables removed,
/// a C locale and `cwd` as working directory.
pub fn pg_tool(tool: &str, cwd: &Path) -> Command {
    pg_tool_on(tool, cwd, None)
}

/// Run a prepared command to completion, panicking with its full output when
/// it fails to start or exits non-zero. Returns stdout.
#[track_caller]
pub fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start {:?}: {e}", cmd.get_program()));
    if !out.status.success() {
        panic!(
            "{what} failed ({})\ncommand: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            describe(cmd),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawn `cmd`, retrying (bounded, 10 s) while exec fails with ETXTBSY:
/// the copy of the binary under test is written once per test process, and
/// a child another thread forked meanwhile holds the written file open until
/// it execs (longer for children that enter a network namespace first).
pub fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Human-readable command line (program and args).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

fn shell_quote(a: &OsStr) -> String {
    let s = a.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Bounded poll: call `f` until it returns true, panicking with `what` when
/// `timeout` passes first. Polls every 50 ms at first, backing off to 250 ms.
#[track_caller]
pub fn poll_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    if !try_poll_until(timeout, &mut f) {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

/// Like [`poll_until`] but returns false on timeout instead of panicking.
pub fn try_poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(50);
    loop {
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

/// Checks that `f` stays true for the whole of `period`: at once, then every
/// `step`, and once more at the end. Err at the first false, saying after
/// how long it stopped holding. For "nothing happens" assertions, in place
/// of a sleep followed by one check.
pub fn holds_for(
    period: Duration,
    step: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    let end = start + period;
    let mut checks = 0u32;
    loop {
        checks += 1;
        if !f() {
            return Err(format!(
                "stopped holding after {:.2} s of {period:?} (check {checks})",
                start.elapsed().as_secs_f64()
            ));
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep(step.min(end - now));
    }
}

/// Give `path` to the run user (no-op when not root).
pub fn chown_to_user(path: &Path) {
    let u = run_user();
    if u.switch {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(u.uid)),
            Some(nix::unistd::Gid::from_raw(u.gid)),
        )
        .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), u.name));
    }
}

/// Set permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Write `contents` to `path` (creating parent dirs, which are also given to
/// the user when newly created) as a file owned by the run user, mode 0600.
pub fn write_user_file(path: &Path, contents: &str) -> PathBuf {
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating directory {}: {e}", parent.display()));
            chown_to_user(parent);
        }
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    chmod(path, 0o600);
    chown_to_user(path);
    path.to_path_buf()
}

/// A fresh temp dir under /tmp (short path), mode 0700, owned by the run
/// user; removed when dropped.
pub fn user_tempdir() -> tempfile::TempDir {
    cleanup_stale_once();
    let d = tempfile::Builder::new()
        .prefix("rt-u-")
        .tempdir_in("/tmp")
        .expect("creating a temp dir under /tmp");
    chmod(d.path(), 0o700);
    chown_to_user(d.path());
    d
}

/// Marker file in harness-owned dirs under /tmp holding the test process pid,
/// so a later run can clean up after a killed one.
pub const OWNER_MARKER: &str = ".rt-owner";

/// Create a dir `/tmp/<prefix>XXXXXX` that outlives its handle, owned by the
/// run user, marked with this process's pid.
pub fn make_owned_dir(prefix: &str) -> PathBuf {
    cleanup_stale_once();
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("creating a temp dir under /tmp")
        .keep();
    fs::write(d.join(OWNER_MARKER), std::process::id().to_string())
        .unwrap_or_else(|e| panic!("writing owner marker in {}: {e}", d.display()));
    chmod(&d, 0o700);
    chown_to_user(&d);
    d
}

/// Does a process `pid` exist at all (zombies included)?
pub fn pid_exists(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Is `pid` a live (not zombie) process?
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (state) follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Once per test process: stop servers and remove dirs left in /tmp by
/// harness runs whose process is gone (killed test runs).
fn cleanup_stale_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(entries) = fs::read_dir("/tmp") else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().starts_with("rt-") {
                continue;
            }
            let dir = e.path();
            let Ok(owner) = fs::read_to_string(dir.join(OWNER_MARKER)) else {
                continue;
            };
            let Ok(pid) = owner.trim().parse::<i32>() else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            let data = dir.join("data");
            if data.join("postmaster.pid").exists() {
                let _ = pg_tool("pg_ctl", Path::new("/"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                    .output();
            }
            let _ = fs::remove_dir_all(&dir);
        }
    });
}
