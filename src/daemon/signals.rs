//! Signals as events on a channel: SIGINT (ctrlc) and SIGTERM stop, SIGHUP
//! reloads. ctrlc alone cannot tell SIGHUP from SIGTERM, hence signal-hook
//! for those two; ctrlc is used without its `termination` feature so the
//! two never both handle one signal.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Stop(&'static str),
    Reload,
}

pub fn install() -> Result<Receiver<Signal>> {
    let (tx, rx) = channel();
    let int_tx = tx.clone();
    ctrlc::set_handler(move || {
        let _ = int_tx.send(Signal::Stop("SIGINT"));
    })
    .map_err(|e| {
        Error::new(
            ExitCode::SysFailure,
            format!("unable to install the SIGINT handler: {e}"),
        )
    })?;
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let mut sigs = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP]).map_err(|e| {
        Error::new(
            ExitCode::SysFailure,
            format!("unable to install signal handlers: {e}"),
        )
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in sigs.forever() {
                let ev = if s == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop("SIGTERM")
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| {
            Error::new(
                ExitCode::SysFailure,
                format!("unable to start the signal thread: {e}"),
            )
        })?;
    Ok(rx)
}

/// Waits up to `timeout` for a signal; None when the time is up. A closed
/// channel (cannot happen while the signal thread lives) counts as a stop.
pub fn wait(rx: &Receiver<Signal>, timeout: Duration) -> Option<Signal> {
    match rx.recv_timeout(timeout) {
        Ok(s) => Some(s),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => Some(Signal::Stop("shutdown")),
    }
}
