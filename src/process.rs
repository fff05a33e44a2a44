//! Child processes with deadlines and captured output.
//!
//! Everything repmgr runs (pg_ctl, pg_basebackup, rsync, ssh and the user's
//! `*_command` hooks) goes through here: an argument vector (or `sh -c` for
//! user-supplied command templates only), its own process group so a
//! deadline kills the whole tree, stdout and stderr drained concurrently so
//! a chatty child cannot block on a full pipe, and an error that names the
//! command, its status and what it printed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use crate::error::{Error, ExitCode, Result};

/// What a finished child left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Exit code, or 128 + signal number as a shell reports it.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }
}

/// How the outcome of a child is described in messages.
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("terminated by signal {s} ({sig})"),
            Err(_) => format!("terminated by signal {s}"),
        },
        _ => "unknown status".into(),
    }
}

/// Quotes a string for display (and for `sh`), only when needed.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A new directory `<parent>/<prefix>.XXXXXXXX` that only this user can
/// enter (0700), created atomically under a random name as mkdtemp(3) does:
/// a predictable name in a shared directory such as /tmp could be made
/// beforehand, or be a symlink, by another user.
pub fn private_dir(parent: &std::path::Path, prefix: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut last = std::io::Error::other("no name could be chosen");
    for _ in 0..16 {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        let suffix: String = b
            .iter()
            .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
            .collect();
        let dir = parent.join(format!("{prefix}.{suffix}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A command line as it would be typed, for logs and error messages.
pub fn display_command(cmd: &Command) -> String {
    let mut parts = vec![shell_quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// `sh -c TEMPLATE`, for user-supplied commands (hooks, service commands).
pub fn shell(command_line: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(command_line);
    c
}

/// A stream being read to its end by a thread, into a shared buffer.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Option<Drain> {
    r.map(|mut r| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Drain { buf, thread }
    })
}

/// How long, after the child exited, its streams may stay open: a process
/// it left running in the background (a daemon started by a service
/// command) can hold them forever, and must not hold us.
const STREAM_GRACE: Duration = Duration::from_secs(2);

/// What the child wrote, once its stream closed or the grace ran out.
fn join(d: Option<Drain>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let start = Instant::now();
    while !d.thread.is_finished() && start.elapsed() < STREAM_GRACE {
        std::thread::sleep(Duration::from_millis(10));
    }
    if d.thread.is_finished() {
        let _ = d.thread.join();
    }
    let bytes = d.buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Kills the child's whole process group: TERM, a short grace, then KILL.
fn kill_tree(child: &mut Child) {
    let pgid = Pid::from_raw(child.id() as i32);
    let _ = killpg(pgid, Signal::SIGTERM);
    if let Ok(Some(_)) = child.wait_timeout(Duration::from_millis(500)) {
        // Grandchildren may linger in the group; make sure they go too.
        let _ = killpg(pgid, Signal::SIGKILL);
        return;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` to completion within `limit`, capturing stdout and stderr.
/// `what` names the step for messages ("pg_basebackup", "event notification").
pub fn run(mut cmd: Command, limit: Duration, what: &str) -> Result<Output> {
    let shown = display_command(&cmd);
    crate::log_debug!("executing {what}: {shown}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(ExitCode::LocalCommand, format!("unable to execute {what}"))
            .detail(format!("{shown}: {e}"))
    })?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = match child.wait_timeout(limit) {
        Ok(Some(s)) => s,
        Ok(None) => {
            kill_tree(&mut child);
            let stderr = join(err);
            return Err(Error::new(
                ExitCode::LocalCommand,
                format!(
                    "{what} did not finish within {} s and was stopped",
                    limit.as_secs()
                ),
            )
            .detail(with_output(&shown, &stderr)));
        }
        Err(e) => {
            kill_tree(&mut child);
            return Err(
                Error::new(ExitCode::LocalCommand, format!("waiting for {what} failed"))
                    .detail(format!("{shown}: {e}")),
            );
        }
    };
    let output = Output {
        status,
        stdout: join(out),
        stderr: join(err),
        elapsed: start.elapsed(),
    };
    crate::log_debug!(
        "{what} finished with {} after {} ms",
        describe_status(&output.status),
        output.elapsed.as_millis()
    );
    Ok(output)
}

/// Runs `cmd` with no input or output at all (for a process that leaves a
/// background child behind, such as an ssh control master), within `limit`.
pub fn run_quiet(mut cmd: Command, limit: Duration, what: &str) -> Result<ExitStatus> {
    let shown = display_command(&cmd);
    crate::log_debug!("executing {what}: {shown}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(ExitCode::LocalCommand, format!("unable to execute {what}"))
            .detail(format!("{shown}: {e}"))
    })?;
    match child.wait_timeout(limit) {
        Ok(Some(s)) => Ok(s),
        _ => {
            kill_tree(&mut child);
            Err(Error::new(
                ExitCode::LocalCommand,
                format!(
                    "{what} did not finish within {} s and was stopped",
                    limit.as_secs()
                ),
            )
            .detail(shown))
        }
    }
}

/// Like [`run`], but a non-zero exit is an error carrying the child's output.
pub fn run_checked(cmd: Command, limit: Duration, what: &str, code: ExitCode) -> Result<Output> {
    let shown = display_command(&cmd);
    let out = run(cmd, limit, what)?;
    if out.success() {
        Ok(out)
    } else {
        let text = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        Err(Error::new(
            code,
            format!("{what} failed with {}", describe_status(&out.status)),
        )
        .detail(with_output(&shown, text)))
    }
}

/// How many of a long-running child's last output lines an error keeps.
const KEPT_LINES: usize = 40;

/// Runs a long copy (pg_basebackup, rsync) within `limit`. Every line the
/// child prints is logged at debug level as it comes (a `\r`-terminated
/// progress line included); with `echo` the raw output also goes to our
/// stderr, for progress on a terminal. `tick` is called about every
/// `tick_every` while the child runs, for plain progress log lines. A
/// non-zero exit is an error with `code` whose DETAIL holds the last lines.
pub fn run_logged(
    mut cmd: Command,
    limit: Duration,
    what: &str,
    code: ExitCode,
    echo: bool,
    tick_every: Duration,
    tick: &mut dyn FnMut(Duration),
) -> Result<Output> {
    let shown = display_command(&cmd);
    crate::log_debug!("executing {what}: {shown}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(code, format!("unable to execute {what}"))
            .detail(format!("{shown}: {e}"))
            .hint("check the program is installed and in PATH (or set pg_bindir / -b)")
    })?;
    let out = stream(child.stdout.take(), what.to_string(), echo);
    let err = stream(child.stderr.take(), what.to_string(), echo);
    let deadline = start + limit;
    let mut next_tick = start + tick_every;
    let status = loop {
        let now = Instant::now();
        if now >= deadline {
            kill_tree(&mut child);
            let text = format!("{}{}", join_stream(out), join_stream(err));
            return Err(Error::new(
                code,
                format!(
                    "{what} did not finish within {} s and was stopped",
                    limit.as_secs()
                ),
            )
            .detail(with_output(&shown, &text)));
        }
        let step = deadline
            .min(next_tick)
            .saturating_duration_since(now)
            .max(Duration::from_millis(10));
        match child.wait_timeout(step) {
            Ok(Some(s)) => break s,
            Ok(None) => {
                if Instant::now() >= next_tick {
                    tick(start.elapsed());
                    next_tick += tick_every;
                }
            }
            Err(e) => {
                kill_tree(&mut child);
                return Err(Error::new(code, format!("waiting for {what} failed"))
                    .detail(format!("{shown}: {e}")));
            }
        }
    };
    let output = Output {
        status,
        stdout: join_stream(out),
        stderr: join_stream(err),
        elapsed: start.elapsed(),
    };
    crate::log_debug!(
        "{what} finished with {} after {} ms",
        describe_status(&output.status),
        output.elapsed.as_millis()
    );
    Ok(output)
}

/// What a [`stream`] thread kept, once the stream closed.
fn join_stream(h: Option<JoinHandle<String>>) -> String {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// Reads a child's stream: logs each line (split at `\n` or `\r`), echoes
/// the raw bytes to stderr when asked, and keeps the last [`KEPT_LINES`].
fn stream<R: Read + Send + 'static>(
    r: Option<R>,
    what: String,
    echo: bool,
) -> Option<JoinHandle<String>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut kept: std::collections::VecDeque<String> = Default::default();
            let mut line = Vec::new();
            let mut buf = [0u8; 8192];
            let keep = |l: &[u8], kept: &mut std::collections::VecDeque<String>| {
                let text = String::from_utf8_lossy(l).trim_end().to_string();
                if text.is_empty() {
                    return;
                }
                crate::log_debug!("{what}: {text}");
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(text);
            };
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if echo {
                    let mut e = std::io::stderr().lock();
                    let _ = e.write_all(&buf[..n]);
                    let _ = e.flush();
                }
                for &b in &buf[..n] {
                    if b == b'\n' || b == b'\r' {
                        keep(&line, &mut kept);
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
            keep(&line, &mut kept);
            let mut s = kept.into_iter().collect::<Vec<_>>().join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            s
        })
    })
}

/// The error for a finished child that failed: its last output in the DETAIL.
pub fn failure(out: &Output, shown: &str, what: &str, code: ExitCode) -> Error {
    let text = format!("{}{}", out.stdout, out.stderr);
    Error::new(
        code,
        format!("{what} failed with {}", describe_status(&out.status)),
    )
    .detail(with_output(shown, &text))
}

fn with_output(shown: &str, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        shown.to_string()
    } else {
        format!("{shown}\n{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_fresh_and_0700() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let a = private_dir(parent.path(), "repmgr-x").unwrap();
        let b = private_dir(parent.path(), "repmgr-x").unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o700, 0, "{mode:o}");
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("repmgr-x."));
    }

    #[test]
    fn captures_both_streams_and_status() {
        let out = run(
            shell("echo out; echo err >&2; exit 3"),
            Duration::from_secs(5),
            "t",
        )
        .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.code(), 3);
    }

    #[test]
    fn deadline_kills_the_whole_group() {
        let start = Instant::now();
        // The sleep is a grandchild: killing only sh would leave it holding the pipe.
        let e = run(
            shell("sleep 30 & sleep 30; echo never"),
            Duration::from_millis(300),
            "sleeper",
        )
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(e.messages[0].contains("did not finish within"), "{e:?}");
        assert_eq!(e.code, ExitCode::LocalCommand);
    }

    #[test]
    fn checked_failure_carries_output() {
        let e = run_checked(
            shell("echo boom >&2; exit 2"),
            Duration::from_secs(5),
            "thing",
            ExitCode::BadBasebackup,
        )
        .unwrap_err();
        assert_eq!(e.code, ExitCode::BadBasebackup);
        assert!(e.detail.unwrap().contains("boom"));
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let e = run(
            Command::new("/nonexistent/prog"),
            Duration::from_secs(1),
            "prog",
        )
        .unwrap_err();
        assert!(e.messages[0].contains("unable to execute prog"));
    }

    #[test]
    fn logged_run_keeps_last_lines_and_ticks() {
        let mut ticks = 0;
        let out = run_logged(
            shell("printf 'a\\rb\\n'; echo err >&2; sleep 0.3; exit 4"),
            Duration::from_secs(5),
            "t",
            ExitCode::BadRsync,
            false,
            Duration::from_millis(100),
            &mut |_| ticks += 1,
        )
        .unwrap();
        assert_eq!(out.code(), 4);
        assert_eq!(out.stdout, "a\nb\n");
        assert_eq!(out.stderr, "err\n");
        assert!(ticks >= 1, "{ticks}");
        let e = run_logged(
            shell("sleep 30"),
            Duration::from_millis(200),
            "s",
            ExitCode::BadRsync,
            false,
            Duration::from_secs(10),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(e.code, ExitCode::BadRsync);
    }

    #[test]
    fn a_background_process_holding_the_pipes_does_not_block() {
        let start = Instant::now();
        let out = run(
            shell("echo started; sleep 6 & exit 0"),
            Duration::from_secs(10),
            "starter",
        )
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
