//! Everything that wakes the daemon arrives on one channel: SIGINT (ctrlc)
//! and SIGTERM stop, SIGHUP reloads, and the upstream watcher reports a lost
//! connection. ctrlc alone cannot tell SIGHUP from SIGTERM, hence
//! signal-hook for those two; ctrlc is used without its `termination`
//! feature so the two never both handle one signal.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    Stop(&'static str),
    Reload,
    /// The watcher's connection to the upstream broke (generation number).
    UpstreamLost(u64),
    /// An observation gathered by a worker, for the decision core.
    Core(Box<super::core::types::Input>),
    /// Observations gathered together (a heartbeat round's answers).
    CoreBatch(Vec<super::core::types::Input>),
    /// Actions the core returned while answering a peer (on the peer
    /// thread), to be carried out by the main loop.
    Actions(Vec<super::core::types::Action>),
    /// Peer addresses a cluster round found on the nodes' own servers.
    Peers(Vec<(i32, String, u16)>),
}

pub fn install() -> Result<(Sender<Wake>, Receiver<Wake>)> {
    let (tx, rx) = channel();
    let int_tx = tx.clone();
    ctrlc::set_handler(move || {
        crate::shutdown::request();
        let _ = int_tx.send(Wake::Stop("SIGINT"));
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
    let sig_tx = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in sigs.forever() {
                let ev = if s == SIGHUP {
                    Wake::Reload
                } else {
                    // Every wait in progress gives up within a moment.
                    crate::shutdown::request();
                    Wake::Stop("SIGTERM")
                };
                if sig_tx.send(ev).is_err() {
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
    Ok((tx, rx))
}

/// Waits up to `timeout` for something to happen; None when the time is up.
/// A closed channel (cannot happen while the signal thread lives) is a stop.
pub fn wait(rx: &Receiver<Wake>, timeout: Duration) -> Option<Wake> {
    match rx.recv_timeout(timeout) {
        Ok(s) => Some(s),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => Some(Wake::Stop("shutdown")),
    }
}
