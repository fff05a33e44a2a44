//! Logging in repmgr's formats on top of `log` + `env_logger`.
//!
//! repmgr has five levels, DEBUG < INFO < NOTICE < WARNING < ERROR, and `log`
//! has five too, so they are shifted by one (DEBUG→Trace … ERROR→Error) and
//! the label is printed back. The CLI prints `LEVEL: message` to stderr; the
//! daemon (and `--log-to-file`) prints `[YYYY-mm-dd HH:MM:SS] [LEVEL] message`.
//! DETAIL and HINT lines inherit the level of the line before them and are
//! hidden by `--terse`, as in repmgr.
//!
//! The logger is installed once, writing to a switchable sink: stderr until
//! the configuration names a `log_file`, then that file, reopened on SIGHUP.
//! When `log_facility` names a syslog facility (repmgrd, or a command with
//! `--log-to-file`), the lines go to syslog instead, and DETAIL and HINT
//! still to the sink, as repmgr does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use log::{Level, LevelFilter};
use nix::syslog::{Facility, Severity};

/// repmgr's log levels (`-L/--log-level`, `log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RepmgrLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl RepmgrLevel {
    /// Parses repmgr's level names; ALERT, CRIT and EMERG map to ERROR.
    pub fn parse(s: &str) -> Option<RepmgrLevel> {
        Some(match s.to_ascii_uppercase().as_str() {
            "DEBUG" => RepmgrLevel::Debug,
            "INFO" => RepmgrLevel::Info,
            "NOTICE" => RepmgrLevel::Notice,
            "WARNING" => RepmgrLevel::Warning,
            "ERROR" | "ALERT" | "CRIT" | "EMERG" => RepmgrLevel::Error,
            _ => return None,
        })
    }

    pub fn filter(self) -> LevelFilter {
        match self {
            RepmgrLevel::Debug => LevelFilter::Trace,
            RepmgrLevel::Info => LevelFilter::Debug,
            RepmgrLevel::Notice => LevelFilter::Info,
            RepmgrLevel::Warning => LevelFilter::Warn,
            RepmgrLevel::Error => LevelFilter::Error,
        }
    }
}

pub fn label(l: Level) -> &'static str {
    match l {
        Level::Trace => "DEBUG",
        Level::Debug => "INFO",
        Level::Info => "NOTICE",
        Level::Warn => "WARNING",
        Level::Error => "ERROR",
    }
}

/// Targets used for DETAIL and HINT lines so the formatter can label them.
pub const DETAIL_TARGET: &str = "repmgr::detail";
pub const HINT_TARGET: &str = "repmgr::hint";

static TERSE: AtomicBool = AtomicBool::new(false);
static SYSLOG: AtomicBool = AtomicBool::new(false);
static LAST_LEVEL: AtomicUsize = AtomicUsize::new(Level::Error as usize);
static SINK: OnceLock<LogSink> = OnceLock::new();

/// Where log lines go: stderr, or a file that can be reopened (logrotate).
#[derive(Clone, Default)]
pub struct LogSink(Arc<Mutex<Option<(PathBuf, File)>>>);

impl LogSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(PathBuf, File)>> {
        // A panic while holding the lock must not silence logging for good.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self, path: &str) -> io::Result<()> {
        let f = open_log(Path::new(path))?;
        *self.lock() = Some((PathBuf::from(path), f));
        Ok(())
    }

    pub fn reopen(&self) -> io::Result<()> {
        let mut g = self.lock();
        if let Some((p, f)) = g.as_mut() {
            *f = open_log(p)?;
        }
        Ok(())
    }

    pub fn to_stderr(&self) {
        *self.lock() = None;
    }

    pub fn is_file(&self) -> bool {
        self.lock().is_some()
    }
}

/// A log file, created 0600 (less if the umask says so): log lines name
/// nodes, hosts and commands, which other users have no business reading.
fn open_log(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Write for LogSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self.lock().as_mut() {
            Some((_, f)) => f.write(b),
            None => io::stderr().write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.lock().as_mut() {
            Some((_, f)) => f.flush(),
            None => io::stderr().flush(),
        }
    }
}

/// Installs the logger once. `daemon` selects the timestamped format even on
/// stderr (repmgrd's style); files always get timestamps.
pub fn init(level: RepmgrLevel, daemon: bool) {
    let sink = SINK.get_or_init(LogSink::default).clone();
    let writer = sink.clone();
    let res = env_logger::Builder::new()
        .filter_level(LevelFilter::Off)
        .filter_module("repmgr", LevelFilter::Trace)
        .format(move |buf, r| {
            let target = r.target();
            let lbl = if target == DETAIL_TARGET {
                if TERSE.load(Ordering::Relaxed) {
                    return Ok(());
                }
                "DETAIL"
            } else if target == HINT_TARGET {
                if TERSE.load(Ordering::Relaxed) {
                    return Ok(());
                }
                "HINT"
            } else {
                LAST_LEVEL.store(r.level() as usize, Ordering::Relaxed);
                if SYSLOG.load(Ordering::Relaxed) {
                    // severity alone: the facility is openlog's; a failed
                    // send has nowhere to go
                    let _ = nix::syslog::syslog(severity(r.level()), &r.args().to_string());
                    return Ok(());
                }
                label(r.level())
            };
            if daemon || sink.is_file() {
                writeln!(
                    buf,
                    "[{}] [{}] {}",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
                    lbl,
                    r.args()
                )
            } else {
                writeln!(buf, "{}: {}", lbl, r.args())
            }
        })
        .target(env_logger::Target::Pipe(Box::new(writer)))
        .try_init();
    if res.is_ok() {
        set_level(level);
    }
}

/// repmgr's `detect_log_facility`: LOCAL0 to LOCAL7 and USER are syslog
/// facilities, STDERR (or nothing) is none; anything else is unknown.
fn facility(name: &str) -> Result<Option<Facility>, ()> {
    use Facility::*;
    Ok(Some(match name {
        "" | "STDERR" => return Ok(None),
        "USER" => LOG_USER,
        "LOCAL0" => LOG_LOCAL0,
        "LOCAL1" => LOG_LOCAL1,
        "LOCAL2" => LOG_LOCAL2,
        "LOCAL3" => LOG_LOCAL3,
        "LOCAL4" => LOG_LOCAL4,
        "LOCAL5" => LOG_LOCAL5,
        "LOCAL6" => LOG_LOCAL6,
        "LOCAL7" => LOG_LOCAL7,
        _ => return Err(()),
    }))
}

/// The syslog severity of a line (repmgr's levels, shifted as above).
fn severity(l: Level) -> Severity {
    match l {
        Level::Trace => Severity::LOG_DEBUG,
        Level::Debug => Severity::LOG_INFO,
        Level::Info => Severity::LOG_NOTICE,
        Level::Warn => Severity::LOG_WARNING,
        Level::Error => Severity::LOG_ERR,
    }
}

/// Applies `log_facility` (at start and on reload): a syslog facility
/// sends the lines to syslog under `ident` (with the pid, as repmgr's
/// `openlog(ident, LOG_CONS | LOG_PID | LOG_NDELAY, facility)`); STDERR
/// sends them back to the sink; an unknown name warns and changes nothing.
pub fn set_facility(name: &str, ident: &'static std::ffi::CStr) {
    match facility(name) {
        Ok(Some(f)) => {
            use nix::syslog::LogFlags;
            let flags = LogFlags::LOG_CONS | LogFlags::LOG_PID | LogFlags::LOG_NDELAY;
            if nix::syslog::openlog(Some(ident), flags, f).is_ok() {
                SYSLOG.store(true, Ordering::Relaxed);
            }
        }
        Ok(None) => {
            if SYSLOG.swap(false, Ordering::Relaxed) {
                nix::syslog::closelog();
            }
        }
        Err(()) => crate::log_warning!(
            "cannot detect log facility {name} (use any of LOCAL0, LOCAL1, ..., LOCAL7, USER or STDERR)"
        ),
    }
}

/// Changes the level after start (config file value, SIGHUP).
pub fn set_level(level: RepmgrLevel) {
    log::set_max_level(level.filter());
}

pub fn set_terse(terse: bool) {
    TERSE.store(terse, Ordering::Relaxed);
}

/// The shared sink, to switch to `log_file` or reopen it.
pub fn sink() -> LogSink {
    SINK.get_or_init(LogSink::default).clone()
}

/// Level of the last ordinary line, which DETAIL and HINT lines inherit.
pub fn last_level() -> Level {
    match LAST_LEVEL.load(Ordering::Relaxed) {
        x if x == Level::Trace as usize => Level::Trace,
        x if x == Level::Debug as usize => Level::Debug,
        x if x == Level::Info as usize => Level::Info,
        x if x == Level::Warn as usize => Level::Warn,
        _ => Level::Error,
    }
}

/// Logs an [`crate::error::Error`] in repmgr's ERROR / DETAIL / HINT shape.
pub fn log_error_report(e: &crate::error::Error) {
    for m in &e.messages {
        log::error!("{m}");
    }
    if let Some(d) = &e.detail {
        log::log!(target: DETAIL_TARGET, Level::Error, "{d}");
    }
    if let Some(h) = &e.hint {
        log::log!(target: HINT_TARGET, Level::Error, "{h}");
    }
}

#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { log::trace!(target: "repmgr", $($t)*) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { log::debug!(target: "repmgr", $($t)*) } }
#[macro_export]
macro_rules! log_notice { ($($t:tt)*) => { log::info!(target: "repmgr", $($t)*) } }
#[macro_export]
macro_rules! log_warning { ($($t:tt)*) => { log::warn!(target: "repmgr", $($t)*) } }
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { log::error!(target: "repmgr", $($t)*) } }
#[macro_export]
macro_rules! log_detail {
    ($($t:tt)*) => { log::log!(target: $crate::logging::DETAIL_TARGET, $crate::logging::last_level(), $($t)*) }
}
#[macro_export]
macro_rules! log_hint {
    ($($t:tt)*) => { log::log!(target: $crate::logging::HINT_TARGET, $crate::logging::last_level(), $($t)*) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("repmgr.log");
        drop(open_log(&p).unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn facilities_are_repmgrs() {
        assert_eq!(facility("LOCAL0"), Ok(Some(Facility::LOG_LOCAL0)));
        assert_eq!(facility("LOCAL7"), Ok(Some(Facility::LOG_LOCAL7)));
        assert_eq!(facility("USER"), Ok(Some(Facility::LOG_USER)));
        assert_eq!(facility("STDERR"), Ok(None));
        assert_eq!(facility(""), Ok(None));
        assert_eq!(facility("LOCAL8"), Err(()));
        assert_eq!(facility("local0"), Err(()), "case matters, as in repmgr");
        assert_eq!(severity(Level::Info), Severity::LOG_NOTICE);
        assert_eq!(severity(Level::Error), Severity::LOG_ERR);
    }

    #[test]
    fn levels_map_to_repmgr_order() {
        assert_eq!(RepmgrLevel::parse("notice"), Some(RepmgrLevel::Notice));
        assert_eq!(RepmgrLevel::parse("EMERG"), Some(RepmgrLevel::Error));
        assert_eq!(RepmgrLevel::parse("loud"), None);
        assert!(RepmgrLevel::Debug.filter() > RepmgrLevel::Info.filter());
        assert!(RepmgrLevel::Notice.filter() < RepmgrLevel::Info.filter());
        assert_eq!(label(Level::Info), "NOTICE");
    }
}
