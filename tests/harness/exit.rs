//! Exit statuses by name: repmgr's own codes ([`ExitCode`], the binary
//! crate's enum, whose numbers a unit test pins) and the Nagios plugin
//! states a single `node check --nagios` exits with ([`Nagios`]).
//!
//! `r.assert_code(ExitCode::NodeStatus)` instead of `r.assert_code(25)`.

use std::fmt;

pub use repmgr::error::ExitCode;

/// Nagios plugin states: a single `node check` (with or without
/// `--nagios`) exits with the state's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Nagios {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Nagios {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Something an exit status is asserted against, with a name for messages.
pub trait Status: Copy + fmt::Debug {
    fn code(self) -> i32;
}

impl Status for ExitCode {
    fn code(self) -> i32 {
        ExitCode::code(self)
    }
}

impl Status for Nagios {
    fn code(self) -> i32 {
        Nagios::code(self)
    }
}

/// Every [`ExitCode`], to name a status in failure messages.
const ALL: [ExitCode; 29] = [
    ExitCode::Success,
    ExitCode::BadConfig,
    ExitCode::BadRsync,
    ExitCode::BadPidfile,
    ExitCode::NoRestart,
    ExitCode::LocalCommand,
    ExitCode::DbConn,
    ExitCode::DbQuery,
    ExitCode::PromotionFail,
    ExitCode::MonitoringTimeout,
    ExitCode::StrOverflow,
    ExitCode::FailoverFail,
    ExitCode::BadSsh,
    ExitCode::SysFailure,
    ExitCode::BadBasebackup,
    ExitCode::Internal,
    ExitCode::MonitoringFail,
    ExitCode::BadBackupLabel,
    ExitCode::SwitchoverFail,
    ExitCode::Barman,
    ExitCode::RegistrationSync,
    ExitCode::OutOfMemory,
    ExitCode::SwitchoverIncomplete,
    ExitCode::FollowFail,
    ExitCode::RejoinFail,
    ExitCode::NodeStatus,
    ExitCode::RepmgrdPause,
    ExitCode::RepmgrdService,
    ExitCode::PgBackupApiService,
];

/// `25 (NodeStatus)`; `137 (killed by signal 9)`; `99`.
pub fn describe_status(status: i32) -> String {
    if let Some(c) = ALL.iter().find(|c| c.code() == status) {
        return format!("{status} ({c:?})");
    }
    if status > 128 {
        return format!("{status} (killed by signal {})", status - 128);
    }
    status.to_string()
}
