//! Running the repmgr binary under test, as the run user, with a deadline.

use super::exit::{describe_status, ExitCode, Status};
use super::net::Host;
use super::{
    chmod, chown_to_user, make_owned_dir, run_as_user_maybe_on, user_tempdir, PG_ENV_VARS,
};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wait_timeout::ChildExt;

/// Default deadline for one run of the binary: only against a hang, so
/// generous (a switchover on a loaded machine may take tens of seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long to wait for stdout/stderr to close after the process exited
/// (a daemon it started may still hold them).
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// Dir (once per test process) holding a copy of the binary under test,
/// readable by the run user, and a `repmgrd` symlink to it.
fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = make_owned_dir("rt-bin-");
        let src = Path::new(env!("CARGO_BIN_EXE_repmgr"));
        let dst = dir.join("repmgr");
        fs::copy(src, &dst)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", src.display(), dst.display()));
        chmod(&dst, 0o755);
        chown_to_user(&dst);
        let link = dir.join("repmgrd");
        std::os::unix::fs::symlink("repmgr", &link)
            .unwrap_or_else(|e| panic!("symlinking {}: {e}", link.display()));
        dir
    })
}

/// Path of the copied `repmgr` binary.
pub fn repmgr_bin() -> PathBuf {
    bin_dir().join("repmgr")
}

/// Path of the `repmgrd` symlink next to the copied binary.
pub fn repmgrd_bin() -> PathBuf {
    bin_dir().join("repmgrd")
}

fn base_command(program: &Path, host: Option<&Host>) -> Command {
    let mut cmd = Command::new(program);
    for v in PG_ENV_VARS {
        cmd.env_remove(v);
    }
    cmd.env("LC_ALL", "C").env("LANG", "C").stdin(Stdio::null());
    run_as_user_maybe_on(&mut cmd, host);
    cmd
}

/// A Command for the daemon personality (program = the `repmgrd` symlink),
/// run as the user, PG* variables removed, stdin null, cwd `/`, in its own
/// process group. The caller spawns it and owns the child (kill it at the
/// end of the test).
pub fn repmgrd_cmd() -> Command {
    repmgrd_cmd_on(None)
}

/// [`repmgrd_cmd`], run inside the network namespace of `host` when given.
pub fn repmgrd_cmd_on(host: Option<&Host>) -> Command {
    let mut cmd = base_command(&repmgrd_bin(), host);
    // A test run under systemd must not have its repmgrds talk to the
    // runner's own unit (tests that want it set it again).
    cmd.current_dir("/")
        .process_group(0)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    cmd
}

/// Run `repmgr ARGS` as the user in a fresh user-owned temp cwd, with the
/// [`DEFAULT_TIMEOUT`] deadline.
#[track_caller]
pub fn repmgr(args: &[&str]) -> RunResult {
    Repmgr::new(args).run()
}

/// One run of the binary under test: `Repmgr::new(&["node", "status"])
/// .cwd(&dir).env("K", "V").timeout(d).run()`.
#[derive(Debug, Clone)]
pub struct Repmgr {
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    timeout: Duration,
    daemon: bool,
    host: Option<Host>,
}

impl Repmgr {
    pub fn new(args: &[&str]) -> Self {
        Repmgr {
            args: args.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            daemon: false,
            host: None,
        }
    }

    /// Append an argument.
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }

    /// Working directory (must be accessible to the run user).
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Set an environment variable (after the harness's own).
    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.env.push((key.to_string(), value.as_ref().to_string()));
        self
    }

    /// Hard deadline; on expiry the process group is killed and the test fails.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Run as `repmgrd` (argv[0] is the symlink) instead of `repmgr`.
    pub fn daemon(mut self) -> Self {
        self.daemon = true;
        self
    }

    /// Run inside the network namespace of `host` (still as the run user),
    /// so its connections to other hosts cross the bridge.
    pub fn on_host(mut self, host: &Host) -> Self {
        self.host = Some(host.clone());
        self
    }

    /// [`on_host`](Self::on_host) when `host` is given.
    pub fn on_host_opt(self, host: Option<&Host>) -> Self {
        match host {
            Some(h) => self.on_host(h),
            None => self,
        }
    }

    /// Run to completion (or deadline) and collect stdout, stderr, status.
    #[track_caller]
    pub fn run(self) -> RunResult {
        let tmp;
        let cwd = match &self.cwd {
            Some(c) => c.clone(),
            None => {
                tmp = user_tempdir();
                tmp.path().to_path_buf()
            }
        };
        let program = if self.daemon {
            repmgrd_bin()
        } else {
            repmgr_bin()
        };
        let mut cmd = base_command(&program, self.host.as_ref());
        cmd.args(&self.args).current_dir(&cwd);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let command = format!(
            "{}{} (cwd {}{})",
            if self.daemon { "repmgrd" } else { "repmgr" },
            self.args
                .iter()
                .map(|a| format!(" {a}"))
                .collect::<String>(),
            cwd.display(),
            self.host
                .as_ref()
                .map(|h| format!(", on host {} {}", h.name, h.ip))
                .unwrap_or_default()
        );
        run_with_deadline(cmd, command, self.timeout)
    }
}

/// Run a prepared command (stdout/stderr are piped here, stdin null, own
/// process group) until it exits or `timeout` passes; on expiry kill its
/// process group and panic, showing what it printed. `label` names it in
/// messages.
#[track_caller]
pub fn run_with_deadline(mut cmd: Command, label: String, timeout: Duration) -> RunResult {
    let command = label;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = super::spawn_retrying(&mut cmd)
        .unwrap_or_else(|e| panic!("could not start {command}: {e}"));
    let out = collect(child.stdout.take().expect("piped stdout"));
    let err = collect(child.stderr.take().expect("piped stderr"));
    let waited = child
        .wait_timeout(timeout)
        .unwrap_or_else(|e| panic!("waiting for {command}: {e}"));
    let status = match waited {
        Some(s) => s,
        None => {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            let (so, _) = out.finish(PIPE_GRACE);
            let (se, _) = err.finish(PIPE_GRACE);
            panic!(
                    "{command} did not finish within {:?}; killed it\n--- stdout ---\n{so}\n--- stderr ---\n{se}",
                    timeout
                );
        }
    };
    let (stdout, out_closed) = out.finish(PIPE_GRACE);
    let (mut stderr, err_closed) = err.finish(PIPE_GRACE);
    if !out_closed || !err_closed {
        stderr.push_str(
            "\n[harness] note: stdout/stderr still held open by a descendant after exit\n",
        );
    }
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    RunResult {
        command,
        status: code,
        stdout,
        stderr,
    }
}

/// A pipe being read on a thread.
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

fn collect(mut r: impl Read + Send + 'static) -> Collector {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
        let _ = tx.send(());
    });
    Collector { buf, done: rx }
}

impl Collector {
    /// Wait up to `grace` for EOF; return what was read and whether EOF came.
    fn finish(self, grace: Duration) -> (String, bool) {
        let closed = self.done.recv_timeout(grace).is_ok();
        let bytes = self.buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (String::from_utf8_lossy(&bytes).into_owned(), closed)
    }
}

/// Outcome of one run of the binary: exit code (128+signal when killed by a
/// signal), stdout, stderr, and the command line for messages.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub command: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nexit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            describe_status(self.status),
            self.stdout,
            self.stderr
        )
    }
}

impl RunResult {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Did it exit with `code` ([`ExitCode`] or [`Nagios`](super::exit::Nagios))?
    pub fn exited(&self, code: impl Status) -> bool {
        self.status == code.code()
    }

    /// Assert the exit status, by name: `assert_code(ExitCode::NodeStatus)`.
    #[track_caller]
    pub fn assert_code(&self, code: impl Status) -> &Self {
        if !self.exited(code) {
            panic!(
                "expected exit status {} ({code:?}), got {}\n{self}",
                code.code(),
                describe_status(self.status)
            );
        }
        self
    }

    /// Assert [`ExitCode::Success`].
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(ExitCode::Success)
    }

    /// Assert a non-zero exit code.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        if self.status == 0 {
            panic!("expected a non-zero exit status, got 0\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, s: &str) -> &Self {
        if !self.stdout.contains(s) {
            panic!("expected stdout to contain {s:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, s: &str) -> &Self {
        if !self.stderr.contains(s) {
            panic!("expected stderr to contain {s:?}\n{self}");
        }
        self
    }

    /// Assert stdout or stderr contains `s`.
    #[track_caller]
    pub fn assert_output_contains(&self, s: &str) -> &Self {
        if !self.stdout.contains(s) && !self.stderr.contains(s) {
            panic!("expected stdout or stderr to contain {s:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout_not_contains(&self, s: &str) -> &Self {
        if self.stdout.contains(s) {
            panic!("expected stdout not to contain {s:?}\n{self}");
        }
        self
    }
}
