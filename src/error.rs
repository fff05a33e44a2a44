//! One error type carrying repmgr's exit codes (`errcode.h`), with the
//! ERROR / DETAIL / HINT shape operators know from PostgreSQL and repmgr.
//! Only `main` turns an [`Error`] into a process exit.

use std::fmt;

/// repmgr's exit codes. The numbers are part of the public interface:
/// scripts and cron jobs test them, so they are pinned by a unit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Success = 0,
    BadConfig = 1,
    BadRsync = 2,
    BadPidfile = 3,
    NoRestart = 4,
    LocalCommand = 5,
    DbConn = 6,
    DbQuery = 7,
    PromotionFail = 8,
    MonitoringTimeout = 9,
    StrOverflow = 10,
    FailoverFail = 11,
    BadSsh = 12,
    SysFailure = 13,
    BadBasebackup = 14,
    Internal = 15,
    MonitoringFail = 16,
    BadBackupLabel = 17,
    SwitchoverFail = 18,
    Barman = 19,
    RegistrationSync = 20,
    OutOfMemory = 21,
    SwitchoverIncomplete = 22,
    FollowFail = 23,
    RejoinFail = 24,
    NodeStatus = 25,
    RepmgrdPause = 26,
    RepmgrdService = 27,
    PgBackupApiService = 28,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error as repmgr reports it: what failed, why, and what to do next.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ExitCode,
    /// One or more ERROR lines (config checks report every problem at once).
    pub messages: Vec<String>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Output already printed to stdout (e.g. a Nagios line): nothing more to log.
    pub silent: bool,
    /// A command-line error, reported in repmgr's own shape instead of as
    /// ERROR lines (see [`Usage`]).
    pub usage: Option<Box<Usage>>,
}

/// How repmgr reports a bad command line: getopt's complaints first
/// (`<argv0>: unrecognized option '--x'`), then, when there are
/// `messages`, "The following command line errors were encountered:" and
/// one indented line each; the closing "Try ..." line names the family
/// when one was recognised. With getopt complaints only, that line goes to
/// stdout, as repmgr prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub getopt: Vec<String>,
    /// The command family as typed, when it is one repmgr knows.
    pub family: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ExitCode, msg: impl Into<String>) -> Self {
        Error {
            code,
            messages: vec![msg.into()],
            detail: None,
            hint: None,
            silent: false,
            usage: None,
        }
    }

    /// Several messages reported together (e.g. every config file error).
    pub fn many(code: ExitCode, messages: Vec<String>) -> Self {
        Error {
            code,
            messages,
            detail: None,
            hint: None,
            silent: false,
            usage: None,
        }
    }

    /// An exit status whose report has already been written (to stdout).
    pub fn silent(code: ExitCode) -> Self {
        Error {
            code,
            messages: Vec::new(),
            detail: None,
            hint: None,
            silent: true,
            usage: None,
        }
    }

    /// A bad command line (exit 1), reported as repmgr does: `messages`
    /// under "The following command line errors were encountered:",
    /// after getopt's complaints in `usage`.
    pub fn usage(messages: Vec<String>, usage: Usage) -> Self {
        Error {
            usage: Some(Box::new(usage)),
            ..Self::many(ExitCode::BadConfig, messages)
        }
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(ExitCode::BadConfig, msg)
    }
    pub fn db_conn(msg: impl Into<String>) -> Self {
        Self::new(ExitCode::DbConn, msg)
    }
    pub fn db_query(msg: impl Into<String>) -> Self {
        Self::new(ExitCode::DbQuery, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ExitCode::Internal, msg)
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    pub fn with_code(mut self, code: ExitCode) -> Self {
        self.code = code;
        self
    }

    /// The first message, for wrapping into another error's DETAIL.
    pub fn message(&self) -> &str {
        self.messages.first().map(String::as_str).unwrap_or("")
    }

    /// Why it failed, in one line for a log: the DETAIL when there is one
    /// (the server's or the tool's words), else the message. Never empty
    /// for an error that has either.
    pub fn reason(&self) -> &str {
        match self.detail.as_deref() {
            Some(d) if !d.trim().is_empty() => d,
            _ => self.message(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.messages.join("; "))?;
        if let Some(d) = &self.detail {
            write!(f, " (DETAIL: {d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Attach meaning at the call site: `.code(ExitCode::DbQuery)?`.
pub trait ResultExt<T> {
    fn code(self, code: ExitCode) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn code(self, code: ExitCode) -> Result<T> {
        self.map_err(|e| e.with_code(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_repmgrs() {
        let pinned = [
            (ExitCode::Success, 0),
            (ExitCode::BadConfig, 1),
            (ExitCode::BadRsync, 2),
            (ExitCode::BadPidfile, 3),
            (ExitCode::NoRestart, 4),
            (ExitCode::LocalCommand, 5),
            (ExitCode::DbConn, 6),
            (ExitCode::DbQuery, 7),
            (ExitCode::PromotionFail, 8),
            (ExitCode::MonitoringTimeout, 9),
            (ExitCode::StrOverflow, 10),
            (ExitCode::FailoverFail, 11),
            (ExitCode::BadSsh, 12),
            (ExitCode::SysFailure, 13),
            (ExitCode::BadBasebackup, 14),
            (ExitCode::Internal, 15),
            (ExitCode::MonitoringFail, 16),
            (ExitCode::BadBackupLabel, 17),
            (ExitCode::SwitchoverFail, 18),
            (ExitCode::Barman, 19),
            (ExitCode::RegistrationSync, 20),
            (ExitCode::OutOfMemory, 21),
            (ExitCode::SwitchoverIncomplete, 22),
            (ExitCode::FollowFail, 23),
            (ExitCode::RejoinFail, 24),
            (ExitCode::NodeStatus, 25),
            (ExitCode::RepmgrdPause, 26),
            (ExitCode::RepmgrdService, 27),
            (ExitCode::PgBackupApiService, 28),
        ];
        for (c, n) in pinned {
            assert_eq!(c.code(), n, "{c:?}");
        }
    }
}
