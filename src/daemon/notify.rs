//! systemd's notify protocol (sd_notify(3)), without libsystemd: datagrams
//! of `KEY=value` lines to the socket named by `NOTIFY_SOCKET` (a path, or
//! an abstract name written `@name`).
//!
//! [`Notifier::from_env`] reads and then removes `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC` and `WATCHDOG_PID`, as sd_notify's `unset_environment`
//! does: the child processes repmgrd starts (pg_ctl starts PostgreSQL,
//! which speaks the same protocol) must not talk to repmgrd's unit.
//! A send waits at most [`SEND_DEADLINE`] (systemd's socket queue may be
//! full for a moment); READY=1 is sent again after each cycle until it
//! went out, since systemd stops a unit that never says it.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The longest a notification may wait for room in systemd's socket.
pub const SEND_DEADLINE: Duration = Duration::from_millis(200);

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
        socket.set_write_timeout(Some(SEND_DEADLINE)).ok()?;
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

    /// Whether the message went out.
    fn send(&self, msg: &str) -> bool {
        match self.socket.send_to_addr(msg.as_bytes(), &self.addr) {
            Ok(_) => true,
            Err(e) => {
                crate::log_debug!("systemd notification not sent: {e}");
                false
            }
        }
    }

    /// Monitoring runs (again, after a reload).
    pub fn ready(&self, status: &str) -> bool {
        self.send(&format!(
            "READY=1\nSTATUS={}\nMAINPID={}",
            one_line(status),
            std::process::id()
        ))
    }

    /// A monitoring cycle ran: READY=1 after the first, then the status
    /// line whenever it changes.
    pub fn cycle(&mut self, status: &str) {
        if !self.ready_sent {
            self.ready_sent = self.ready(status);
            self.last_status = status.to_string();
        } else if status != self.last_status && self.send(&format!("STATUS={}", one_line(status))) {
            self.last_status = status.to_string();
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

    pub fn reloaded(&self, status: &str) {
        self.ready(status);
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

/// A value on one line: node names come from the metadata, and a newline
/// in one would add fields of its own to the notification.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_line_cannot_carry_fields_of_its_own() {
        assert_eq!(super::one_line("standby\nREADY=1"), "standby READY=1");
    }
}
