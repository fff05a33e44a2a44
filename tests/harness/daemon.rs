//! A foreground `repmgrd` (or any long-running user command) owned by a
//! test: output goes to a log file, and drop stops its process group.

use super::net::Host;
use super::run::{repmgrd_cmd, repmgrd_cmd_on};
use super::{poll_until, try_poll_until, user_tempdir, write_user_file};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Lines of daemon output printed when a test panics.
const TAIL_ON_PANIC: usize = 80;

/// A spawned long-running process in its own process group. On drop: SIGTERM
/// to the group, up to 10 s to exit, then SIGKILL; when the test is
/// panicking, its output tail is printed first.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub child: Child,
    /// Combined stdout and stderr.
    pub logfile: PathBuf,
    _dir: tempfile::TempDir,
    /// The host it runs on (kept so the namespace outlives the process).
    pub host: Option<Host>,
}

impl Daemon {
    /// Spawn `repmgrd ARGS` (the daemon personality, as the run user). Run it
    /// in the foreground (not daemonized) so the guard keeps track of it.
    #[track_caller]
    pub fn repmgrd(name: &str, args: &[&str]) -> Daemon {
        let mut cmd = repmgrd_cmd();
        cmd.args(args);
        Self::spawn(name, cmd)
    }

    /// Spawn `repmgrd ARGS` inside the network namespace of `host`, as the
    /// run user: its connections to nodes on other hosts cross the bridge
    /// and are cut by [`Host::cut`].
    #[track_caller]
    pub fn repmgrd_on(host: &Host, name: &str, args: &[&str]) -> Daemon {
        let mut cmd = repmgrd_cmd_on(Some(host));
        cmd.args(args);
        Self::spawn_on(host, name, cmd)
    }

    /// [`spawn`](Self::spawn) a command prepared for `host` (with
    /// [`Host::command`] or [`run_as_user_on`](super::run_as_user_on)); the
    /// guard keeps the host alive until the process is stopped.
    #[track_caller]
    pub fn spawn_on(host: &Host, name: &str, cmd: Command) -> Daemon {
        let mut d = Self::spawn(name, cmd);
        d.host = Some(host.clone());
        d
    }

    /// Spawn a prepared command (already set up with
    /// [`run_as_user`](super::run_as_user) as needed; it is put in its own
    /// process group here), output to a log file.
    #[track_caller]
    pub fn spawn(name: &str, mut cmd: Command) -> Daemon {
        use std::os::unix::process::CommandExt;
        let dir = user_tempdir();
        let logfile = write_user_file(&dir.path().join("output.log"), "");
        let out = fs::OpenOptions::new()
            .append(true)
            .open(&logfile)
            .unwrap_or_else(|e| panic!("opening {}: {e}", logfile.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating log fd: {e}"));
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = super::spawn_retrying(&mut cmd)
            .unwrap_or_else(|e| panic!("could not start {name} ({:?}): {e}", cmd.get_program()));
        Daemon {
            name: name.to_string(),
            child,
            logfile,
            _dir: dir,
            host: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Has it not exited yet?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.logfile).unwrap_or_default()).into_owned()
    }

    /// Last `n` lines of its output.
    pub fn output_tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Wait (bounded) until its output contains `needle`. On timeout the
    /// panic shows the output's tail and [`diagnostics`](Self::diagnostics).
    #[track_caller]
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) {
        if !try_poll_until(timeout, || self.output().contains(needle)) {
            panic!(
                "timed out after {timeout:?} waiting for {} to print {needle:?}\n--- output (last 40 lines) ---\n{}\n{}",
                self.name,
                self.output_tail(40),
                self.diagnostics()
            );
        }
    }

    /// Where it is stuck, for failure messages: per thread its state, the
    /// kernel function it waits in and its kernel stack (as root), and its
    /// TCP sockets with their timers (`ss -tnpo`, inside its host). A
    /// daemon that prints nothing is usually blocked reading a socket whose
    /// peer went silent: an ESTAB socket with nothing queued and only a
    /// `keepalive` timer is waiting for an answer that is not coming.
    pub fn diagnostics(&self) -> String {
        let pid = self.pid();
        let mut out = format!("----- [harness] {} (pid {pid}): threads -----\n", self.name);
        let mut tasks: Vec<_> = fs::read_dir(format!("/proc/{pid}/task"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        tasks.sort();
        if tasks.is_empty() {
            out.push_str("(process gone)\n");
        }
        let read = |p: &std::path::Path, f: &str| fs::read_to_string(p.join(f)).unwrap_or_default();
        for t in &tasks {
            let stat = read(t, "stat");
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?")
                .to_string();
            out.push_str(&format!(
                "{} {:?} state {state} wchan {}\n",
                t.file_name().unwrap_or_default().to_string_lossy(),
                read(t, "comm").trim(),
                read(t, "wchan").trim()
            ));
            for line in read(t, "stack").lines().take(8) {
                out.push_str(&format!("    {line}\n"));
            }
        }
        out.push_str(&format!(
            "----- [harness] {} (pid {pid}): TCP sockets (ss -tnpo{}) -----\n",
            self.name,
            self.host
                .as_ref()
                .map(|h| format!(
                    ", in namespace {}; host {} {}",
                    h.ns,
                    h.name,
                    if h.is_cut() { "cut off" } else { "linked" }
                ))
                .unwrap_or_default()
        ));
        let ss = match &self.host {
            Some(h) => super::net::ip(&["netns", "exec", &h.ns, "ss", "-tnpo"]),
            None => quiet_output("ss", &["-tnpo"]),
        };
        match ss {
            Ok(text) => {
                let mine = format!("pid={pid},");
                for line in text.lines().filter(|l| l.contains(&mine)) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("({e})\n")),
        }
        out
    }

    /// Send a signal to its process group.
    pub fn signal(&self, sig: Signal) {
        let _ = killpg(Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM and wait (bounded) for exit; returns the exit code
    /// (128+signal when killed by one).
    #[track_caller]
    pub fn stop(&mut self, timeout: Duration) -> i32 {
        self.signal(Signal::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Wait (bounded) for it to exit by itself; returns the exit code.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let mut status = None;
        poll_until(timeout, &format!("{} to exit", self.name), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        let s = status.expect("exit status after poll");
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    }
}

/// stdout of `program ARGS` (10 s deadline); never panics (runs from Drop).
fn quiet_output(program: &str, args: &[&str]) -> Result<String, String> {
    use std::io::Read;
    use wait_timeout::ChildExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    match child.wait_timeout(Duration::from_secs(10)) {
        Ok(Some(_)) => Ok(reader.join().unwrap_or_default()),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{program} did not finish within 10 s"))
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let diagnostics = if matches!(self.child.try_wait(), Ok(None)) {
                self.diagnostics()
            } else {
                String::new()
            };
            eprintln!(
                "===== [harness] {} output, last {TAIL_ON_PANIC} lines =====\n{}\n{diagnostics}===== end of {} output =====",
                self.name,
                self.output_tail(TAIL_ON_PANIC),
                self.name
            );
        }
        if !matches!(self.child.try_wait(), Ok(None)) {
            // Exited; still kill leftovers in its group.
            self.signal(Signal::SIGKILL);
            return;
        }
        self.signal(Signal::SIGTERM);
        let exited = try_poll_until(Duration::from_secs(10), || {
            !matches!(self.child.try_wait(), Ok(None))
        });
        if !exited {
            eprintln!(
                "[harness] {} ignored SIGTERM for 10 s; killing it",
                self.name
            );
        }
        self.signal(Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
