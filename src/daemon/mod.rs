//! repmgrd: the daemon personality of the binary.
//!
//! This release covers the lifecycle: options, configuration, daemonizing,
//! the pid file, logging, connecting to the local node and stopping cleanly
//! on SIGINT/SIGTERM (SIGHUP reloads the log settings and reopens the log
//! file). Monitoring and failover build on this loop.

pub mod core;
mod driver;
pub mod http;
mod notify;
pub mod signals;
mod trim;
mod watch;
mod workers;

use std::path::PathBuf;

use argh::FromArgs;

use crate::cli::getopt::{self, opt, Arg, OptSpec};
use crate::cli::help;
use crate::config::{self, Config, Loaded};
use crate::conninfo::ConnInfo;

use crate::error::{Error, ExitCode, Result};
use crate::logging::{self, RepmgrLevel};
use crate::ops::pidfile;

pub use crate::db::reach::DAEMON_APP_NAME as APP_NAME;

/// repmgrd's options (repmgrd.c long_options).
#[derive(FromArgs, Debug, Default)]
/// repmgrd: replication management daemon for PostgreSQL
#[argh(help_triggers("--argh-help"))]
pub struct DaemonOpts {
    /// path to the configuration file
    #[argh(option, short = 'f')]
    pub config_file: Option<String>,
    /// detach from the terminal (true or false)
    #[argh(option, short = 'd')]
    pub daemonize: Option<String>,
    /// pid file to write
    #[argh(option, short = 'p')]
    pub pid_file: Option<String>,
    /// show the pid file which would be used, then exit
    #[argh(switch, short = 's')]
    pub show_pid_file: bool,
    /// don't write a pid file
    #[argh(switch)]
    pub no_pid_file: bool,
    /// verbose output
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log level (overrides the configuration file)
    #[argh(option, short = 'L')]
    pub log_level: Option<String>,
    /// print version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// print version number and exit
    #[argh(switch)]
    pub version_number: bool,
    /// no positional arguments are accepted
    #[argh(positional, greedy)]
    pub words: Vec<String>,
}

pub const OPTIONS: &[OptSpec] = &[
    opt(Some('f'), "config-file", Arg::Req),
    opt(Some('d'), "daemonize", Arg::Opt("true")),
    opt(Some('p'), "pid-file", Arg::Req),
    opt(Some('s'), "show-pid-file", Arg::No),
    opt(None, "no-pid-file", Arg::No),
    opt(Some('v'), "verbose", Arg::No),
    opt(Some('L'), "log-level", Arg::Req),
    opt(Some('V'), "version", Arg::No),
    opt(None, "version-number", Arg::No),
];

fn usage_error(msg: impl Into<String>) -> Error {
    Error::config(msg).hint("Try \"repmgrd --help\" for more information.")
}

/// What the command line asks repmgrd to do.
enum Plan {
    Print(String),
    Run(Box<DaemonOpts>, bool),
}

fn parse(args: &[String]) -> Result<Plan> {
    let norm = getopt::prepass(OPTIONS, args).map_err(usage_error)?;
    if norm.help {
        return Ok(Plan::Print(help::REPMGRD.to_string()));
    }
    let strs: Vec<&str> = norm.args.iter().map(String::as_str).collect();
    let opts = DaemonOpts::from_args(&["repmgrd"], &strs).map_err(|e| {
        usage_error(
            e.output
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .to_string(),
        )
    })?;
    if opts.version {
        return Ok(Plan::Print(format!("repmgrd {}\n", help::VERSION)));
    }
    if opts.version_number {
        return Ok(Plan::Print(format!("{}\n", help::version_number())));
    }
    if let Some(w) = opts.words.first() {
        return Err(usage_error(format!(
            "too many command-line arguments (first extra is \"{w}\")"
        )));
    }
    let daemonize = match opts.daemonize.as_deref() {
        None => true,
        Some(v) => config::parse_bool(v).ok_or_else(|| {
            usage_error(format!(
                "invalid value for -d/--daemonize: \"{v}\" (expected true or false)"
            ))
        })?,
    };
    Ok(Plan::Run(Box::new(opts), daemonize))
}

/// The pid file repmgrd uses (see [`pidfile::path`]).
pub fn pid_file_path(opts: &DaemonOpts, cfg: &Config) -> Option<PathBuf> {
    pidfile::path(opts.pid_file.as_deref(), opts.no_pid_file, cfg)
}

/// Entry point for `repmgrd` (argv without argv[0]).
pub fn main(args: &[String]) -> Result<()> {
    let (opts, daemonize) = match parse(args)? {
        Plan::Print(text) => {
            print!("{text}");
            return Ok(());
        }
        Plan::Run(o, d) => (*o, d),
    };
    let cli_level = match &opts.log_level {
        Some(l) => Some(
            RepmgrLevel::parse(l)
                .ok_or_else(|| usage_error(format!("invalid log level \"{l}\" provided")))?,
        ),
        None => None,
    };
    logging::init(cli_level.unwrap_or(RepmgrLevel::Info), true);

    let loaded = load_config(&opts)?;
    let cfg = &loaded.config;
    cfg.check_required(false)?;
    let level = cli_level.unwrap_or(cfg.log_level);
    logging::set_level(if opts.verbose {
        level.min(RepmgrLevel::Info)
    } else {
        level
    });
    for w in &loaded.warnings {
        crate::log_warning!("{w}");
    }
    let conninfo = ConnInfo::parse(&cfg.conninfo).map_err(|e| {
        Error::config(format!("invalid conninfo in \"{}\"", loaded.path.display())).detail(e)
    })?;

    let pid_path = pid_file_path(&opts, cfg);
    if opts.show_pid_file {
        match &pid_path {
            Some(p) => println!("{}", p.display()),
            None => println!("(no pid file)"),
        }
        return Ok(());
    }
    logging::set_facility(&cfg.log_facility, c"repmgrd");
    if !cfg.log_file.is_empty() {
        logging::sink().open(&cfg.log_file).map_err(|e| {
            Error::config(format!("unable to open log file \"{}\"", cfg.log_file))
                .detail(e.to_string())
        })?;
    }
    // Check before forking, so a refusal reaches the terminal.
    if let Some(p) = &pid_path {
        pidfile::check_not_running(p)?;
    }
    crate::log_notice!("repmgrd ({}) starting up", help::VERSION);

    // One malloc arena: the daemon's short-lived helper threads (connection
    // deadlines) would otherwise each grow an arena of their own and keep
    // its memory. SAFETY: called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
    // Under systemd (Type=notify) repmgrd stays in the foreground: systemd
    // follows the process it started, and is told when monitoring runs.
    let notifier = notify::Notifier::from_env();
    let daemonize = daemonize && notifier.is_none();
    // Fork before any thread exists (signal handlers, connection deadlines).
    if daemonize && daemonize_process()? == Forked::Parent {
        return Ok(());
    }
    let _pid_guard = match &pid_path {
        Some(p) => Some(pidfile::PidFile::create(p)?),
        None => None,
    };
    let channel = signals::install()?;
    let bin = crate::pgtools::PgBin::new(None, &loaded.config);
    let pid_file = pid_path.as_ref().map(|p| p.display().to_string());
    driver::Driver::start(loaded, conninfo, bin, pid_file, channel, notifier)
}

fn load_config(opts: &DaemonOpts) -> Result<Loaded> {
    match config::locate(opts.config_file.as_deref())? {
        Some(p) => config::load_file(&p),
        None => Err(
            Error::config("no configuration file provided and none found").hint(
                "provide one with -f/--config-file, or create ./repmgr.conf or /etc/repmgr.conf",
            ),
        ),
    }
}

#[derive(PartialEq, Eq)]
enum Forked {
    Parent,
    Child,
}

/// Detaches: fork, the parent returns, the child starts a new session.
fn daemonize_process() -> Result<Forked> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: no other thread exists yet (see `main`), so the child inherits
    // a consistent process; it only continues with ordinary Rust code.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => Ok(Forked::Parent),
        Ok(ForkResult::Child) => {
            setsid()
                .map_err(|e| Error::new(ExitCode::SysFailure, format!("setsid failed: {e}")))?;
            redirect_stdio();
            Ok(Forked::Child)
        }
        Err(e) => Err(Error::new(
            ExitCode::SysFailure,
            format!("unable to fork the repmgrd process: {e}"),
        )),
    }
}

/// A detached daemon keeps no terminal: stdin and stdout go to /dev/null;
/// stderr too when logging goes to a file.
fn redirect_stdio() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    if logging::sink().is_file() {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
