//! systemd's notify protocol (sd_notify(3)), without libsystemd: datagrams
//! of `KEY=value` lines to the socket named by `NOTIFY_SOCKET` (a path, or
//! an abstract name written `@name`).
//!
//! [`Notifier::from_env`] reads and then removes `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC` and `WATCHDOG_PID`, as sd_notify's `unset_environment`
//! does: the child processes repmgrd starts (pg_ctl starts PostgreSQL,
//! which speaks the same protocol) must not talk to repmgrd's unit.
//! Sending never blocks: the socket is non-blocking and a lost
//! notification is not retried (systemd's socket does not drop them).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Where to send, and the watchdog's interval.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Half of `WATCHDOG_USEC`: how often to send `WATCHDOG=1`.
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: String,
    ready_sent: bool,
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service; None
    /// when not run so (or the socket cannot be used).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let for_pid = std::env::var("WATCHDOG_PID").ok();
        // SAFETY (edition 2021: safe fn): called at start-up, before any
        // other thread exists, as sd_notify's unset_environment is.
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
        let path = path.to_string_lossy().into_owned();
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else if path.starts_with('/') {
            SocketAddr::from_pathname(&path).ok()?
        } else {
            return None;
        };
        let socket = UnixDatagram::unbound().ok()?;
        socket.set_nonblocking(true).ok()?;
        let mine = for_pid
            .as_deref()
            .is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog_every = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && mine)
            .map(|u| Duration::from_micros(u / 2));
        Some(Notifier {
            socket,
            addr,
            watchdog_every,
            last_ping: None,
            last_status: String::new(),
            ready_sent: false,
        })
    }

    fn send(&self, msg: &str) {
        if let Err(e) = self.socket.send_to_addr(msg.as_bytes(), &self.addr) {
            crate::log_debug!("systemd notification not sent: {e}");
        }
    }

    /// Monitoring runs (again, after a reload).
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// A monitoring cycle ran: READY=1 after the first, then the status
    /// line whenever it changes.
    pub fn cycle(&mut self, status: &str) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.last_status = status.to_string();
            self.ready(status);
        } else if status != self.last_status {
            self.last_status = status.to_string();
            self.send(&format!("STATUS={status}"));
        }
    }

    /// SIGHUP received: reloading; [`Notifier::ready`] follows.
    pub fn reloading(&self) {
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={monotonic}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// When the next watchdog ping is due (None: no watchdog).
    pub fn watchdog_due(&self) -> Option<Instant> {
        let every = self.watchdog_every?;
        Some(self.last_ping.map_or_else(Instant::now, |t| t + every))
    }

    /// Sends `WATCHDOG=1` if it is due. Called from the monitoring loop
    /// only, so that a loop that stops running stops the pings and systemd
    /// restarts repmgrd.
    pub fn watchdog(&mut self) {
        if self.watchdog_due().is_some_and(|t| Instant::now() >= t) {
            self.last_ping = Some(Instant::now());
            self.send("WATCHDOG=1");
        }
    }
}
