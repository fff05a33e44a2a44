//! Reading one HTTP request head within a deadline and a size cap. The
//! endpoint answers health checks: no request body is read, every
//! connection is closed after one answer, and a client that sends slowly
//! or too much is cut off rather than waited for.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The most a request head may take (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    Other,
}

/// A request as the routes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path without its query, percent-decoding not needed (the
    /// endpoint's paths are plain words).
    pub path: String,
    /// `key=value` pairs of the query, in order.
    pub query: Vec<(String, String)>,
    /// HTTP/1.0 or HTTP/1.1, echoed in the answer's status line.
    pub version: &'static str,
}

impl Request {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The client went away or the deadline passed: nothing is answered.
    Gone,
    /// The head is malformed (400) or too large (431).
    Malformed,
    TooLarge,
}

/// `recv` without waiting (MSG_DONTWAIT), `peek` too: None when nothing
/// is there yet. The socket's own mode is left alone (no ioctl per call).
pub fn recv_now(s: &TcpStream, buf: &mut [u8], peek: bool) -> Option<std::io::Result<usize>> {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut flags = MsgFlags::MSG_DONTWAIT;
    if peek {
        flags |= MsgFlags::MSG_PEEK;
    }
    match recv(s.as_raw_fd(), buf, flags) {
        Ok(n) => Some(Ok(n)),
        Err(nix::errno::Errno::EAGAIN) => None,
        Err(e) => Some(Err(std::io::Error::from(e))),
    }
}

/// Reads a request head from `s`, giving up at `deadline`.
pub fn read(s: &mut TcpStream, deadline: Instant) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = head_end(&buf) {
            return parse(&buf[..end]);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
        // What has arrived is taken at once; only a wait sets a deadline.
        let got = match recv_now(s, &mut chunk, false) {
            Some(r) => r,
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ReadError::Gone);
                }
                // A zero timeout would mean "none": the least is a millisecond.
                let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                s.read(&mut chunk)
            }
        };
        match got {
            Ok(0) | Err(_) => return Err(ReadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether a whole request head has arrived on `s` already (looked at,
/// not read), and it is not for `/cluster` (which asks other nodes and so
/// is never answered on the accepting thread).
pub fn ready_now(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let n = match recv_now(s, &mut buf, true) {
        Some(Ok(n)) => n,
        _ => 0,
    };
    let got = &buf[..n];
    head_end(got).is_some() && !got.windows(8).any(|w| w == b"/cluster")
}

/// Where the head ends (a blank line; bare LFs are accepted as curl and
/// HAProxy never send them but hand-typed requests do).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a request head (the request line and headers, which are not
/// needed and only skipped).
pub fn parse(head: &[u8]) -> Result<Request, ReadError> {
    let text = std::str::from_utf8(head).map_err(|_| ReadError::Malformed)?;
    let line = text.lines().next().ok_or(ReadError::Malformed)?;
    let mut words = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ReadError::Malformed);
    };
    let version = match version {
        "HTTP/1.0" => "HTTP/1.0",
        "HTTP/1.1" => "HTTP/1.1",
        _ => return Err(ReadError::Malformed),
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    // An absolute form (`http://host/path`) names the same path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    let path = match path.trim_end_matches('/') {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    Ok(Request {
        method,
        path,
        query,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_gives_method_path_query_and_version() {
        let r = parse(b"GET /replica?lag=16MB&x HTTP/1.1\r\nHost: a").unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/replica");
        assert_eq!(r.param("lag"), Some("16MB"));
        assert_eq!(r.param("x"), Some(""));
        assert_eq!(r.version, "HTTP/1.1");
        let r = parse(b"OPTIONS / HTTP/1.0").unwrap();
        assert_eq!((r.method, r.path.as_str()), (Method::Options, "/"));
        let r = parse(b"HEAD http://h:8008/primary/ HTTP/1.1").unwrap();
        assert_eq!((r.method, r.path.as_str()), (Method::Head, "/primary"));
        assert_eq!(parse(b"POST / HTTP/1.1").unwrap().method, Method::Other);
    }

    #[test]
    fn malformed_request_lines_are_refused() {
        for bad in [
            &b""[..],
            b"GET",
            b"GET /",
            b"GET / HTTP/2",
            b"GET / HTTP/1.1 extra",
            b"\xff / HTTP/1.1",
        ] {
            assert_eq!(parse(bad), Err(ReadError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nrest"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
    }
}
