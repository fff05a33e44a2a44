//! repmgrd's HTTP endpoint (`http_listen`): health checks for load
//! balancers, Prometheus metrics, the cluster as JSON.
//!
//! No async runtime: one thread accepts, and each client is answered on a
//! short-lived thread of its own, at most [`MAX_CLIENTS`] at once (one
//! more is told 503 at once and dropped). Each client has
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

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use request::{Method, ReadError};
use routes::Response;
pub use view::View;

use crate::error::{Error, ExitCode, Result};

/// Clients answered at once.
pub const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its request head.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
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

/// Counts a client in for as long as it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, src: Arc<dyn Source>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let active = Arc::new(AtomicUsize::new(0));
    // One /cluster at a time: it asks every node.
    let cluster_busy = Arc::new(AtomicBool::new(false));
    while !crate::shutdown::requested() {
        let ready = {
            let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ACCEPT_POLL_MS)).unwrap_or(0)
        };
        if ready == 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
            continue;
        }
        let slot = Slot(active.clone());
        let (src, cluster_busy) = (src.clone(), cluster_busy.clone());
        let spawned = std::thread::Builder::new()
            .name("http-client".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _slot = slot;
                serve(stream, &*src, &cluster_busy);
            });
        if spawned.is_err() {
            crate::log_debug!("HTTP endpoint: unable to start a client thread");
        }
    }
}

/// Over the cap: a 503 if the socket takes it at once, then closed. What
/// the client has sent already is read first (a close with unread data
/// would reset the connection and lose the answer); nothing is waited for.
fn refuse(mut s: TcpStream) {
    use std::io::Read;
    let _ = s.set_nonblocking(true);
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    let _ = write_response(&mut s, "HTTP/1.1", &routes::busy(), false);
    let _ = s.shutdown(std::net::Shutdown::Write);
}

fn serve(mut s: TcpStream, src: &dyn Source, cluster_busy: &AtomicBool) {
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(WRITE_DEADLINE));
    let (version, head_only, resp) = match request::read(&mut s, Instant::now() + READ_DEADLINE) {
        Ok(req) => {
            let view = src.view();
            let resp = routes::answer(&req, &view, || {
                if cluster_busy.swap(true, Ordering::SeqCst) {
                    return None;
                }
                let doc = src.cluster();
                cluster_busy.store(false, Ordering::SeqCst);
                doc
            });
            (req.version, req.method == Method::Head, resp)
        }
        Err(ReadError::Gone) => return,
        Err(ReadError::Malformed) => ("HTTP/1.1", false, routes::bad_request()),
        Err(ReadError::TooLarge) => ("HTTP/1.1", false, routes::too_large()),
    };
    let _ = write_response(&mut s, version, &resp, head_only);
    let _ = s.shutdown(std::net::Shutdown::Both);
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
}
