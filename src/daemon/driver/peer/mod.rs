//! The channel between repmgrds: heartbeats, vote requests and status,
//! one request per TCP connection, each line authenticated.
//!
//! A message is one line: `RPMGR/1 <fields…> <nonce> <mac>`, where the MAC
//! is HMAC-SHA256 over the rest of the line and the cluster's system
//! identifier, keyed with the cluster's secret (`repmgr.daemon_secret`,
//! readable only by the repmgr role; standbys have it by replication, the
//! witness by its copy). A database user without that role can neither
//! forge a vote nor block one (nothing here takes a database lock). The
//! reply echoes the request's nonce, so an old reply cannot be replayed as
//! a new one. Every read and write has a deadline, connections are capped,
//! and a line is at most [`MAX_LINE`] bytes: no peer can stall or grow a
//! repmgrd. The format is plain text so that other requests (a switchover
//! step, say) can be added as new kinds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::idle_conns;
use crate::daemon::core::types::*;

mod wire;

pub use wire::Key;
use wire::*;

/// The longest line either side accepts.
pub const MAX_LINE: usize = 512;
/// Concurrent connections a repmgrd serves at most.
const MAX_CLIENTS: usize = 64;
/// How long the server waits for a request line, and for its answer to go.
const SERVE_DEADLINE: Duration = Duration::from_secs(2);

/// Where a peer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// Nothing listens there (no repmgrd, or not this one).
    Refused,
    /// No answer within the deadline, or one that did not authenticate.
    Silent,
}

/// Why no line came.
#[derive(Debug, PartialEq, Eq)]
enum NoLine {
    /// The other side closed before sending anything.
    Closed,
    /// A timeout, an error, or a line cut short.
    Failed,
}

fn read_line(stream: &TcpStream) -> Result<String, NoLine> {
    // One line is all either side reads before it writes: a buffer of
    // MAX_LINE, not BufReader's default 8 KiB, for each.
    let mut reader = BufReader::with_capacity(MAX_LINE, stream.take_limited());
    let mut line = String::with_capacity(MAX_LINE);
    match reader.read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with('\n') => Ok(line),
        Ok(0) => Err(NoLine::Closed),
        _ => Err(NoLine::Failed),
    }
}

trait TakeLimited {
    fn take_limited(&self) -> std::io::Take<&TcpStream>;
}

impl TakeLimited for TcpStream {
    fn take_limited(&self) -> std::io::Take<&TcpStream> {
        std::io::Read::take(self, MAX_LINE as u64)
    }
}

/// Sends `request` to `to` and waits at most `limit` for the answer.
/// Heartbeats and status requests (which may be asked twice) reuse an
/// open connection to the same repmgrd when there is one; votes always
/// open their own.
pub fn ask(
    to: &Address,
    key: &Key,
    request: &PeerRequest,
    limit: Duration,
) -> Result<PeerReply, NoAnswer> {
    let deadline = Instant::now() + limit;
    let addrs: Vec<SocketAddr> = (to.host.as_str(), to.port)
        .to_socket_addrs()
        .map_err(|_| NoAnswer::Silent)?
        .collect();
    let reusable = !matches!(request, PeerRequest::Vote(_));
    let mut refused = false;
    for addr in addrs {
        if reusable {
            if let Some(stream) = idle_conns::take(addr) {
                match exchange(&stream, key, request, deadline, false) {
                    Ok(reply) => {
                        idle_conns::put(addr, stream);
                        return Ok(reply);
                    }
                    // Closed while idle (the repmgrd restarted, or its
                    // idle limit passed): a new connection below.
                    Err(Exchange::Unsent) => {}
                    Err(Exchange::Failed) => return Err(NoAnswer::Silent),
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let stream = match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => s,
            Err(e) => {
                refused |= e.kind() == std::io::ErrorKind::ConnectionRefused;
                continue;
            }
        };
        return match exchange(&stream, key, request, deadline, true) {
            Ok(reply) => {
                if reusable {
                    idle_conns::put(addr, stream);
                }
                Ok(reply)
            }
            Err(_) => Err(NoAnswer::Silent),
        };
    }
    Err(if refused {
        NoAnswer::Refused
    } else {
        NoAnswer::Silent
    })
}

/// How an exchange on a connection failed.
enum Exchange {
    /// The connection was closed before the request could be read.
    Unsent,
    /// No (valid) answer by the deadline.
    Failed,
}

/// One request and its answer on `stream`, by `deadline`. The write
/// timeout is set on a `fresh` connection only: a reused one keeps its
/// first (one request line never fills an idle connection's buffer, so
/// the write does not wait in practice; the bound is still there).
fn exchange(
    stream: &TcpStream,
    key: &Key,
    request: &PeerRequest,
    deadline: Instant,
    fresh: bool,
) -> Result<PeerReply, Exchange> {
    let n = send_request(stream, key, request, deadline, fresh)?;
    read_reply(stream, key, &n)
}

/// Sends `request` on `stream` (its answer due by `deadline`); returns
/// the nonce the answer must echo.
fn send_request(
    stream: &TcpStream,
    key: &Key,
    request: &PeerRequest,
    deadline: Instant,
    fresh: bool,
) -> Result<String, Exchange> {
    let n = nonce();
    let text = format!("{TAG} {} {n}", encode_request(request));
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    if (fresh && stream.set_write_timeout(Some(left)).is_err())
        || stream.set_read_timeout(Some(left)).is_err()
    {
        return Err(Exchange::Failed);
    }
    if (&*stream).write_all(key.seal(&text).as_bytes()).is_err() {
        return Err(Exchange::Unsent);
    }
    Ok(n)
}

/// The answer to the request of nonce `n` on `stream`.
fn read_reply(stream: &TcpStream, key: &Key, n: &str) -> Result<PeerReply, Exchange> {
    let line = match read_line(stream) {
        Ok(l) => l,
        Err(NoLine::Closed) => return Err(Exchange::Unsent),
        Err(NoLine::Failed) => return Err(Exchange::Failed),
    };
    let fields = key.open(&line).ok_or(Exchange::Failed)?;
    // The answer ends with the request's nonce.
    match fields.split_last() {
        Some((echo, rest)) if *echo == n => decode_reply(rest).ok_or(Exchange::Failed),
        _ => Err(Exchange::Failed),
    }
}

/// One request (a heartbeat) to several repmgrds from one thread. To each
/// target this process has an open connection to, the request goes on it
/// and the answers are read as they come, one poll over all of them (a
/// round used to wake a thread per voter). `answered` gets the answers
/// read on one wake-up together (so that whoever it tells is woken once
/// for them, not once per voter), and the silences at the deadline
/// (`limit` from now), as [`ask`] would have; `elsewhere` gets at once each
/// target this cannot serve (no open connection, or one found closed), to
/// be asked with [`ask`] on a thread of its own, as before.
pub fn ask_many<T: Copy>(
    targets: &[(T, Address)],
    key: &Key,
    request: &PeerRequest,
    limit: Duration,
    mut answered: impl FnMut(Vec<(T, Result<PeerReply, NoAnswer>)>),
    mut elsewhere: impl FnMut(T),
) {
    let deadline = Instant::now() + limit;
    let mut waiting: Vec<(T, SocketAddr, TcpStream, String)> = Vec::with_capacity(targets.len());
    let mut unsent = Vec::new();
    for (t, to) in targets {
        let kept = (to.host.as_str(), to.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find_map(|a| idle_conns::take(a).map(|s| (a, s))));
        let Some((addr, stream)) = kept else {
            elsewhere(*t);
            continue;
        };
        match send_request(&stream, key, request, deadline, false) {
            Ok(n) => waiting.push((*t, addr, stream, n)),
            Err(Exchange::Unsent) => elsewhere(*t),
            Err(Exchange::Failed) => unsent.push((*t, Err(NoAnswer::Silent))),
        }
    }
    if !unsent.is_empty() {
        answered(unsent);
    }
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = waiting
                .iter()
                .map(|(_, _, s, _)| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        let mut still = Vec::with_capacity(waiting.len());
        let mut read = Vec::new();
        for ((t, addr, stream, n), ready) in waiting.drain(..).zip(ready) {
            if !ready {
                still.push((t, addr, stream, n));
                continue;
            }
            match read_reply(&stream, key, &n) {
                Ok(reply) => {
                    idle_conns::put(addr, stream);
                    read.push((t, Ok(reply)));
                }
                // Closed while idle: a new connection, elsewhere.
                Err(Exchange::Unsent) => elsewhere(t),
                Err(Exchange::Failed) => read.push((t, Err(NoAnswer::Silent))),
            }
        }
        if !read.is_empty() {
            answered(read);
        }
        waiting = still;
    }
    let silent: Vec<_> = waiting
        .into_iter()
        .map(|(t, ..)| (t, Err(NoAnswer::Silent)))
        .collect();
    if !silent.is_empty() {
        answered(silent);
    }
}

/// What the server does with an authenticated request.
pub type Handler = Arc<dyn Fn(PeerRequest) -> Option<PeerReply> + Send + Sync>;

/// Listens on `bind` and answers requests with `handler`, until the
/// process stops. Returns the port actually bound (for port 0).
pub fn serve(
    bind: SocketAddr,
    key: Arc<RwLock<Option<Key>>>,
    handler: Handler,
) -> std::io::Result<u16> {
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let busy = Arc::new(AtomicUsize::new(0));
    // Requests come every heartbeat: the same few workers answer them.
    let workers = {
        let busy = busy.clone();
        crate::daemon::workers::Pool::new("peer-serve", move |stream: TcpStream| {
            serve_one(&stream, &key, &handler);
            busy.fetch_sub(1, Ordering::SeqCst);
        })
    };
    std::thread::Builder::new()
        .name("peer-listen".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for conn in listener.incoming() {
                if crate::shutdown::requested() {
                    return;
                }
                let Ok(stream) = conn else { continue };
                if busy.load(Ordering::SeqCst) >= MAX_CLIENTS {
                    continue; // dropped: the peer times out
                }
                busy.fetch_add(1, Ordering::SeqCst);
                if !workers.dispatch(stream) {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    crate::log_warning!("unable to start a thread for a peer request");
                }
            }
        })?;
    Ok(port)
}

/// Answers the requests on one connection: the first within
/// SERVE_DEADLINE (an unauthenticated client holds a slot no longer), the
/// next ones within SERVER_IDLE of the last answer. Anything that does
/// not authenticate closes it.
fn serve_one(stream: &TcpStream, key: &RwLock<Option<Key>>, handler: &Handler) {
    let mut wait = SERVE_DEADLINE;
    // Set once each, not per request: heartbeats come several a second.
    let mut read_timeout = None;
    if stream.set_write_timeout(Some(SERVE_DEADLINE)).is_err() {
        return;
    }
    loop {
        if read_timeout != Some(wait) {
            if stream.set_read_timeout(Some(wait)).is_err() {
                return;
            }
            read_timeout = Some(wait);
        }
        let Ok(line) = read_line(stream) else {
            return;
        };
        let Some(key) = key.read().ok().and_then(|k| k.clone()) else {
            return; // no secret yet: nothing can be authenticated
        };
        let Some(fields) = key.open(&line) else {
            crate::log_debug!("peer request that does not authenticate; ignored");
            return;
        };
        let Some((nonce, rest)) = fields.split_last() else {
            return;
        };
        let Some(request) = decode_request(rest) else {
            return;
        };
        let Some(reply) = handler(request) else {
            return;
        };
        let text = format!("{TAG} {} {nonce}", encode_reply(&reply));
        let mut s = stream;
        if s.write_all(key.seal(&text).as_bytes()).is_err() || crate::shutdown::requested() {
            return;
        }
        wait = idle_conns::SERVER_IDLE;
    }
}

#[cfg(test)]
mod tests;
