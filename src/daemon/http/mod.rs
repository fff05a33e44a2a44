//! repmgrd's HTTP endpoint (`http_listen`): health checks for load
//! balancers, Prometheus metrics, the cluster as JSON.
//!
//! No async runtime: one thread accepts, and each client is answered on a
//! worker thread of its own ([`pool`]: workers are kept a while for the
//! next client, so steady health checks start no thread), at most
//! [`MAX_CLIENTS`] at once and
//! [`MAX_PER_PEER`] from one address (one more is told 503 at once and
//! dropped). Each client has
//! [`READ_DEADLINE`] to send its request head (at most
//! [`request::MAX_HEAD`] bytes) and [`WRITE_DEADLINE`] to take the answer;
//! every connection is closed after one answer. So no client can stall the
//! daemon or grow it: the monitoring loop never waits on the endpoint,
//! which reads the core's state under its lock for microseconds.

mod body;
mod metrics;
pub mod request;
pub mod routes;
mod view;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use request::{Method, ReadError};
use routes::Response;
pub use view::View;

use crate::error::{Error, ExitCode, Result};

/// Clients answered at once, and from any one address: a host that holds
/// connections open without sending cannot take the load balancer's turn.
pub const MAX_CLIENTS: usize = 32;
pub const MAX_PER_PEER: usize = 8;
/// How long a client may take to send its request head.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// How long the accepting thread waits after accept fails for want of
/// descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a client may take to read the answer.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// How often the accepting thread looks at the stop request.
const ACCEPT_POLL_MS: u16 = 1_000;

/// What the endpoint asks the daemon.
pub trait Source: Send + Sync + 'static {
    /// This node now.
    fn view(&self) -> View;
    /// The cluster as `cluster show --json` renders it (asks every node,
    /// each within its connect deadline); None when it cannot be read.
    fn cluster(&self) -> Option<String>;
}

/// Parses `http_listen`: `ADDRESS:PORT`, `[IPv6]:PORT`, or `*:PORT` and
/// `localhost:PORT` (no name is resolved: a lookup has no deadline).
pub fn parse_listen(text: &str) -> std::result::Result<SocketAddr, String> {
    let t = text.trim();
    let fixed = match t.rsplit_once(':') {
        Some(("*", port)) => format!("0.0.0.0:{port}"),
        Some(("localhost", port)) => format!("127.0.0.1:{port}"),
        _ => t.to_string(),
    };
    fixed.parse().map_err(|_| {
        format!("\"{t}\" is not ADDRESS:PORT with a numeric address (such as 0.0.0.0:8008 or [::]:8008)")
    })
}

/// Binds `listen` and answers on a thread of its own; the address bound.
pub fn start(listen: &str, src: Arc<dyn Source>) -> Result<SocketAddr> {
    let addr = parse_listen(listen).map_err(|e| {
        Error::config(format!("invalid value for \"http_listen\": {e}"))
            .hint("set http_listen to ADDRESS:PORT in repmgr.conf, or leave it empty to turn the endpoint off")
    })?;
    let listener = TcpListener::bind(addr).map_err(|e| {
        Error::new(
            ExitCode::SysFailure,
            format!("unable to listen on {addr} for the HTTP endpoint (http_listen)"),
        )
        .detail(e.to_string())
        .hint("choose a free port, or leave http_listen empty")
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("http".into())
        .stack_size(128 * 1024)
        .spawn(move || accept_loop(listener, src))
        .map_err(|e| {
            Error::new(
                ExitCode::SysFailure,
                format!("unable to start the HTTP endpoint's thread: {e}"),
            )
        })?;
    Ok(bound)
}

/// Clients being answered: in all, and from each address.
#[derive(Default)]
struct Clients {
    total: usize,
    by_peer: BTreeMap<IpAddr, usize>,
}

/// Counts a client in for as long as it lives.
struct Slot {
    clients: Arc<Mutex<Clients>>,
    peer: IpAddr,
}

impl Slot {
    /// A slot for a client from `peer`, unless the endpoint is at either
    /// cap.
    fn take(clients: &Arc<Mutex<Clients>>, peer: IpAddr) -> Option<Slot> {
        let mut c = clients.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.by_peer.get(&peer).copied().unwrap_or(0);
        if c.total >= MAX_CLIENTS || mine >= MAX_PER_PEER {
            return None;
        }
        c.total += 1;
        c.by_peer.insert(peer, mine + 1);
        Some(Slot {
            clients: clients.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

/// Holds the one /cluster request allowed at a time.
struct ClusterTurn<'a>(&'a AtomicBool);

impl<'a> ClusterTurn<'a> {
    fn take(busy: &'a AtomicBool) -> Option<ClusterTurn<'a>> {
        (!busy.swap(true, Ordering::SeqCst)).then_some(ClusterTurn(busy))
    }
}

impl Drop for ClusterTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// SO_RCVTIMEO of ACCEPT_POLL_MS on the listener. The kernel takes
/// microseconds below one second only (EDOM otherwise): split the value.
fn bound_accept(listener: &TcpListener) -> nix::Result<()> {
    let ms = i64::from(ACCEPT_POLL_MS);
    let timeout = nix::sys::time::TimeVal::new(ms / 1000, (ms % 1000) * 1000);
    nix::sys::socket::setsockopt(
        listener,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &timeout,
    )
}

fn accept_loop(listener: TcpListener, src: Arc<dyn Source>) {
    // accept waits at most ACCEPT_POLL (SO_RCVTIMEO bounds accept on
    // Linux), then looks at the stop request: no poll before each accept.
    let bounded = bound_accept(&listener).is_ok();
    if !bounded {
        // Without it accept could wait forever: a non-blocking listener
        // and a short sleep bound it instead.
        let _ = listener.set_nonblocking(true);
    }
    let clients = Arc::new(Mutex::new(Clients::default()));
    // One /cluster at a time: it asks every node.
    let cluster_busy = Arc::new(AtomicBool::new(false));
    let inline_src = src.clone();
    let pool = {
        let busy = cluster_busy.clone();
        crate::daemon::workers::Pool::new(
            "http-client",
            move |(stream, slot): (TcpStream, Slot)| {
                serve(stream, &*src, &busy);
                drop(slot);
            },
        )
    };
    while !crate::shutdown::requested() {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // The timeout passed (or, non-blocking, nothing is there).
                if !bounded {
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) =>
            {
                continue
            }
            Err(e) => {
                // Out of descriptors or memory: the pending connection
                // keeps the listener readable, so wait rather than spin.
                crate::log_debug!("HTTP endpoint: accept failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(slot) = Slot::take(&clients, peer.ip()) else {
            refuse(stream);
            continue;
        };
        // Most clients (HAProxy, curl) send the request with the connect:
        // answered here at once, with no thread woken. The rest wait for
        // their request on a worker.
        if request::ready_now(&stream) {
            serve(stream, &*inline_src, &cluster_busy);
            drop(slot);
        } else {
            if !pool.dispatch((stream, slot)) {
                crate::log_debug!("HTTP endpoint: unable to start a client thread");
            }
        }
    }
}

/// Reads what the client has sent already, up to a request head's size,
/// without waiting: a close with unread data would reset the connection
/// and lose the answer.
fn drain(s: &TcpStream) {
    let mut sink = [0u8; 1024];
    let mut read = 0;
    while read < request::MAX_HEAD {
        match request::recv_now(s, &mut sink, false) {
            Some(Ok(n)) if n > 0 => read += n,
            _ => break,
        }
    }
}

/// Over a cap: a 503 if the socket takes it at once, then closed.
fn refuse(mut s: TcpStream) {
    drain(&s);
    let _ = s.set_nonblocking(true);
    let _ = write_response(&mut s, "HTTP/1.1", &routes::busy(), false);
    let _ = s.shutdown(std::net::Shutdown::Write);
}

fn serve(mut s: TcpStream, src: &dyn Source, cluster_busy: &AtomicBool) {
    // (No TCP_NODELAY: one write, then the close, which sends at once.)
    let _ = s.set_write_timeout(Some(WRITE_DEADLINE));
    let (version, head_only, resp) = match request::read(&mut s, Instant::now() + READ_DEADLINE) {
        Ok(req) => {
            let view = src.view();
            let resp = routes::answer(&req, &view, || {
                let _turn = ClusterTurn::take(cluster_busy)?;
                src.cluster()
            });
            (req.version, req.method == Method::Head, resp)
        }
        Err(ReadError::Gone) => return,
        Err(ReadError::Malformed) => ("HTTP/1.1", false, routes::bad_request()),
        Err(ReadError::TooLarge) => ("HTTP/1.1", false, routes::too_large()),
    };
    let _ = write_response(&mut s, version, &resp, head_only);
    // Whatever else the client sent (a body, a second request) is read,
    // so the close does not reset the answer away.
    drain(&s);
}

fn write_response(
    s: &mut TcpStream,
    version: &str,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "{version} {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n",
        r.status,
        routes::reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.allow {
        out.push_str("Allow: GET, HEAD, OPTIONS\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&r.body);
    }
    s.write_all(out.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_numeric_or_the_two_shorthands() {
        assert_eq!(parse_listen("0.0.0.0:8008").unwrap().port(), 8008);
        assert_eq!(parse_listen("[::]:8008").unwrap().port(), 8008);
        assert_eq!(
            parse_listen("*:8008").unwrap(),
            "0.0.0.0:8008".parse().unwrap()
        );
        assert_eq!(
            parse_listen(" localhost:1 ").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_listen("db1:8008").is_err());
        assert!(parse_listen("8008").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
    }

    /// The accepting thread blocks in accept (one wakeup a second), not
    /// the non-blocking fallback that wakes ten times a second.
    #[test]
    fn accept_waits_in_the_kernel_for_its_poll_interval() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        bound_accept(&l).unwrap();
        let t = std::time::Instant::now();
        let e = l.accept().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert!(t.elapsed() >= Duration::from_millis(u64::from(ACCEPT_POLL_MS) - 50));
    }
}
