//! PQping without a client: send a startup packet, read the server's first
//! answer, hang up. Like libpq's PQping, this stops before authentication
//! completes (PostgreSQL logs nothing for a client that leaves then), and
//! it needs no helper thread and no driver runtime, which matters for a
//! check repmgrd runs every second for years.
//!
//! Only for endpoints whose every step has a deadline: unix sockets and TCP
//! to an IP address. A host name (resolution has no deadline) is left to
//! the thread-bounded full connection.
//!
//! TLS as libpq's ping does it: for prefer and stronger modes an SSLRequest
//! first, then the handshake (with the same checks as a session) and the
//! startup packet inside it; every read and write is bounded by the same
//! deadline. A failed handshake is no answer (libpq: PQPING_NO_RESPONSE),
//! except that prefer tries again in plaintext.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::conninfo::{ConnTarget, Endpoint, SslMode};

/// What [`ping`] learned, like libpq's `PQping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// The server answered, even if it refused our credentials or database.
    Ok,
    /// The server answered that it is starting up or shutting down.
    Reject,
    /// Nothing answered: refused, unreachable, timed out, or unusable conninfo.
    NoResponse,
}

/// SQLSTATE cannot_connect_now: starting up, shutting down, in recovery
/// without hot standby.
const CANNOT_CONNECT_NOW: &str = "57P03";

/// None when an endpoint cannot be pinged this way (a host name).
pub fn raw_ping(target: &ConnTarget, app: &str) -> Option<Ping> {
    let deadline = Instant::now() + target.deadline();
    let mut any_reject = false;
    for ep in &target.endpoints {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let answer = match ep {
            Endpoint::Socket { dir, port } => {
                let path = format!("{dir}/.s.PGSQL.{port}");
                UnixStream::connect(path)
                    .ok()
                    .and_then(|s| exchange(Bounded { s, deadline }, target, app))
            }
            Endpoint::Tcp {
                host,
                hostaddr,
                port,
            } => {
                let ip = match hostaddr {
                    Some(a) => *a,
                    None => host.as_deref()?.parse::<IpAddr>().ok()?,
                };
                let domain = host.clone().unwrap_or_else(|| ip.to_string());
                tcp_ping(SocketAddr::new(ip, *port), &domain, deadline, target, app)
            }
        };
        match answer {
            Some(Ping::Ok) => return Some(Ping::Ok),
            Some(Ping::Reject) => any_reject = true,
            _ => {}
        }
    }
    Some(if any_reject {
        Ping::Reject
    } else {
        Ping::NoResponse
    })
}

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// One TCP endpoint, with TLS as the target's sslmode wants it. allow
/// starts in plaintext, and any first answer already tells what libpq's
/// retry over TLS would.
fn tcp_ping(
    addr: SocketAddr,
    domain: &str,
    deadline: Instant,
    target: &ConnTarget,
    app: &str,
) -> Option<Ping> {
    let connect = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        TcpStream::connect_timeout(&addr, left)
            .ok()
            .map(|s| Bounded { s, deadline })
    };
    let mode = target.ssl.mode;
    if mode <= SslMode::Allow {
        return exchange(connect()?, target, app);
    }
    // As for sessions (tls_plan.rs): prefer sets OpenSSL up only for a
    // server that accepts TLS, the stronger modes before anything is sent.
    let mut ready = None;
    if mode.requires() {
        match super::tls::setup(&target.ssl) {
            Ok(t) => ready = Some(t),
            Err(e) => {
                crate::log_debug!("ping: {e}");
                return Some(Ping::NoResponse);
            }
        }
    }
    let mut s = connect()?;
    s.write_all(&SSL_REQUEST).ok()?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).ok()?;
    match answer[0] {
        b'S' => {
            let setup = match ready {
                Some(t) => Some(t),
                None => super::tls::setup(&target.ssl).ok(),
            };
            match setup.and_then(|t| t.handshake(domain, s)) {
                Some(tls) => exchange(tls, target, app),
                None if mode == SslMode::Prefer => exchange(connect()?, target, app),
                None => Some(Ping::NoResponse),
            }
        }
        b'N' if mode == SslMode::Prefer => exchange(s, target, app),
        // The server refuses TLS and TLS is required: libpq fails without
        // a server error, which PQping reports as no response.
        _ => Some(Ping::NoResponse),
    }
}

/// A stream whose every read and write ends by `deadline`, so that a
/// conversation of many steps (a TLS handshake) is bounded as a whole.
struct Bounded<S> {
    s: S,
    deadline: Instant,
}

trait Timeouts {
    fn set_read(&self, d: Duration) -> std::io::Result<()>;
    fn set_write(&self, d: Duration) -> std::io::Result<()>;
}

impl Timeouts for TcpStream {
    fn set_read(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn set_write(&self, d: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

impl Timeouts for UnixStream {
    fn set_read(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn set_write(&self, d: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

impl<S> Bounded<S> {
    /// What is left of the deadline; an error once it has passed.
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

// Each direction is armed only when used (the ping runs every monitoring
// cycle: a system call saved per step is a few per second).
impl<S: Timeouts + Read> Read for Bounded<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.s.set_read(self.left()?)?;
        self.s.read(buf)
    }
}

impl<S: Timeouts + Write> Write for Bounded<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.s.set_write(self.left()?)?;
        self.s.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.left()?;
        self.s.flush()
    }
}

/// The byte-level conversation over an open (bounded) stream.
fn exchange<S: Read + Write>(mut s: S, target: &ConnTarget, app: &str) -> Option<Ping> {
    s.write_all(&startup_packet(&target.user, &target.dbname, app))
        .ok()?;
    s.flush().ok()?;
    let mut kind = [0u8; 1];
    s.read_exact(&mut kind).ok()?;
    match kind[0] {
        // An authentication request (or OK): the server accepts connections.
        b'R' => Some(Ping::Ok),
        b'E' => {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).ok()?;
            let n = (u32::from_be_bytes(len) as usize)
                .saturating_sub(4)
                .min(8192);
            let mut body = vec![0u8; n];
            s.read_exact(&mut body).ok()?;
            Some(classify_error(&body))
        }
        // Anything else is still a server talking.
        _ => Some(Ping::Ok),
    }
}

/// An ErrorResponse body: fields of a type byte and a NUL-terminated text.
fn classify_error(body: &[u8]) -> Ping {
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if kind == b'C' && &tail[..end] == CANNOT_CONNECT_NOW.as_bytes() {
            return Ping::Reject;
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    // The server answered (bad user, database, ...): it is up, as PQping says.
    Ping::Ok
}

/// StartupMessage, protocol 3.0.
fn startup_packet(user: &str, dbname: &str, app: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [
        ("user", user),
        ("database", dbname),
        ("application_name", app),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_packet_layout() {
        let p = startup_packet("u", "d", "a");
        assert_eq!(
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize,
            p.len()
        );
        assert_eq!(&p[4..8], &196_608u32.to_be_bytes());
        assert!(p.ends_with(b"application_name\0a\0\0"));
    }

    #[test]
    fn error_classification() {
        let reject = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(classify_error(reject), Ping::Reject);
        let auth = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0";
        assert_eq!(classify_error(auth), Ping::Ok);
        assert_eq!(classify_error(b""), Ping::Ok);
    }

    #[test]
    fn a_silent_listener_is_no_response_within_the_deadline() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let ci = crate::conninfo::ConnInfo::parse(&format!(
            "host=127.0.0.1 port={port} user=u dbname=d connect_timeout=2"
        ))
        .unwrap();
        let target = ci.resolve().unwrap();
        let start = Instant::now();
        assert_eq!(raw_ping(&target, "t"), Some(Ping::NoResponse));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
