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

use hmac::{Hmac, KeyInit, Mac};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sha2::Sha256;

use super::idle_conns;
use crate::daemon::core::types::*;

const TAG: &str = "RPMGR/1";
/// The longest line either side accepts.
pub const MAX_LINE: usize = 512;
/// Concurrent connections a repmgrd serves at most.
const MAX_CLIENTS: usize = 64;
/// How long the server waits for a request line, and for its answer to go.
const SERVE_DEADLINE: Duration = Duration::from_secs(2);

/// The secret and the cluster it belongs to.
#[derive(Clone)]
pub struct Key {
    pub secret: Vec<u8>,
    pub cluster: i64,
}

impl Key {
    fn mac(&self, text: &str) -> String {
        // HMAC takes a key of any length; the error cannot happen.
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) else {
            return String::new();
        };
        m.update(self.cluster.to_string().as_bytes());
        m.update(b"\n");
        m.update(text.as_bytes());
        hex(&m.finalize().into_bytes())
    }

    /// `text nonce mac`.
    fn seal(&self, text: &str) -> String {
        let mac = self.mac(text);
        format!("{text} {mac}\n")
    }

    /// The fields of a line whose MAC holds, else None.
    fn open(&self, line: &str) -> Option<Vec<String>> {
        let line = line.trim_end();
        let (text, mac) = line.rsplit_once(' ')?;
        let expected = self.mac(text);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut fields: Vec<String> = text.split(' ').map(str::to_string).collect();
        (fields.first().map(String::as_str) == Some(TAG)).then(|| {
            fields.remove(0);
            fields
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(b: &[u8]) -> String {
    // Four MACs a heartbeat: one string, not one per byte.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
}

/// A nonce never used before by any repmgrd: a random prefix drawn once
/// per process, then a counter. (It need only be unique, not secret: a
/// reply is sealed with the key and echoes the nonce of its request, so an
/// old reply cannot answer a new request. One draw instead of one per
/// heartbeat saves a system call several times a second.)
fn nonce() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            // No entropy source: time and pid are unique enough.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            return format!("{t:x}{:x}", std::process::id());
        }
        hex(&b)
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}{n:08x}")
}

fn opt(v: Option<NodeId>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn parse_opt(s: &str) -> Option<Option<NodeId>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

fn encode_request(r: &PeerRequest) -> String {
    match r {
        PeerRequest::Heartbeat {
            from,
            term,
            timeline,
            promoted,
            fences,
        } => format!(
            "HB {from} {term} {timeline} {} {}",
            u8::from(*promoted),
            u8::from(*fences)
        ),
        PeerRequest::Vote(v) => format!(
            "VOTE {} {} {} {} {} {}",
            v.term,
            v.candidate,
            v.failed,
            v.timeline,
            v.lsn,
            u8::from(v.pre)
        ),
        PeerRequest::Status => "STATUS".into(),
    }
}

fn decode_request(f: &[String]) -> Option<PeerRequest> {
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    match f.first()?.as_str() {
        "HB" => Some(PeerRequest::Heartbeat {
            from: NodeId::try_from(n(1)?).ok()?,
            term: n(2)?,
            timeline: u32::try_from(n(3)?).ok()?,
            promoted: n(4)? == 1,
            fences: n(5)? == 1,
        }),
        "VOTE" => Some(PeerRequest::Vote(VoteRequest {
            term: n(1)?,
            candidate: NodeId::try_from(n(2)?).ok()?,
            failed: NodeId::try_from(n(3)?).ok()?,
            timeline: u32::try_from(n(4)?).ok()?,
            lsn: f.get(5)?.parse().ok()?,
            pre: n(6)? == 1,
        })),
        "STATUS" => Some(PeerRequest::Status),
        _ => None,
    }
}

fn encode_reply(r: &PeerReply) -> String {
    match r {
        PeerReply::Heartbeat(HeartbeatReply::Ack {
            promise_ms,
            known_term,
        }) => format!("ACK {promise_ms} {known_term}"),
        PeerReply::Heartbeat(HeartbeatReply::Superseded { term, by }) => {
            format!("SUPERSEDED {term} {}", opt(*by))
        }
        PeerReply::Heartbeat(HeartbeatReply::NoDaemon) => "NODAEMON".into(),
        PeerReply::Vote(VoteReply::Granted { promise_ms }) => format!("GRANTED {promise_ms}"),
        PeerReply::Vote(VoteReply::Silent) => "SILENT".into(),
        PeerReply::Vote(VoteReply::Refused(why)) => match why {
            Refusal::TermTaken { granted, to } => format!("REFUSED taken {granted} {}", opt(*to)),
            Refusal::LeaseHeld { left_ms } => format!("REFUSED lease {left_ms} -"),
            Refusal::PrimaryVisible => "REFUSED visible 0 -".into(),
            Refusal::MoreWal { lsn } => format!("REFUSED wal {lsn} -"),
            Refusal::IsPrimary => "REFUSED primary 0 -".into(),
            Refusal::Stale { known } => format!("REFUSED stale {known} -"),
            Refusal::NoFence { primary } => format!("REFUSED nofence {primary} -"),
        },
        PeerReply::Status(s) => format!(
            "STATUS {} {} {} {} {}",
            s.granted_term,
            opt(s.granted_to),
            s.known_term,
            u8::from(s.holds_lease),
            u8::from(s.automatic)
        ),
    }
}

fn decode_reply(f: &[String]) -> Option<PeerReply> {
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    let u = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(match f.first()?.as_str() {
        "ACK" => PeerReply::Heartbeat(HeartbeatReply::Ack {
            promise_ms: u(1)?,
            known_term: n(2)?,
        }),
        "SUPERSEDED" => PeerReply::Heartbeat(HeartbeatReply::Superseded {
            term: n(1)?,
            by: parse_opt(f.get(2)?)?,
        }),
        "NODAEMON" => PeerReply::Heartbeat(HeartbeatReply::NoDaemon),
        "GRANTED" => PeerReply::Vote(VoteReply::Granted { promise_ms: u(1)? }),
        "SILENT" => PeerReply::Vote(VoteReply::Silent),
        "REFUSED" => PeerReply::Vote(VoteReply::Refused(match f.get(1)?.as_str() {
            "taken" => Refusal::TermTaken {
                granted: n(2)?,
                to: parse_opt(f.get(3)?)?,
            },
            "lease" => Refusal::LeaseHeld { left_ms: u(2)? },
            "visible" => Refusal::PrimaryVisible,
            "wal" => Refusal::MoreWal { lsn: u(2)? },
            "primary" => Refusal::IsPrimary,
            "stale" => Refusal::Stale { known: n(2)? },
            "nofence" => Refusal::NoFence {
                primary: NodeId::try_from(n(2)?).ok()?,
            },
            _ => return None,
        })),
        "STATUS" => PeerReply::Status(DaemonStatus {
            granted_term: n(1)?,
            granted_to: parse_opt(f.get(2)?)?,
            known_term: n(3)?,
            holds_lease: n(4)? == 1,
            automatic: n(5)? == 1,
        }),
        _ => return None,
    })
}

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
/// round used to wake a thread per voter). `answered` gets each answer as
/// it is read, and each silence at the deadline (`limit` from now), as
/// [`ask`] would have; `elsewhere` gets at once each target this cannot
/// serve (no open connection, or one found closed), to be asked with
/// [`ask`] on a thread of its own, as before.
pub fn ask_many<T: Copy>(
    targets: &[(T, Address)],
    key: &Key,
    request: &PeerRequest,
    limit: Duration,
    mut answered: impl FnMut(T, Result<PeerReply, NoAnswer>),
    mut elsewhere: impl FnMut(T),
) {
    let deadline = Instant::now() + limit;
    let mut waiting: Vec<(T, SocketAddr, TcpStream, String)> = Vec::with_capacity(targets.len());
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
            Err(Exchange::Failed) => answered(*t, Err(NoAnswer::Silent)),
        }
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
        for ((t, addr, stream, n), ready) in waiting.drain(..).zip(ready) {
            if !ready {
                still.push((t, addr, stream, n));
                continue;
            }
            match read_reply(&stream, key, &n) {
                Ok(reply) => {
                    idle_conns::put(addr, stream);
                    answered(t, Ok(reply));
                }
                // Closed while idle: a new connection, elsewhere.
                Err(Exchange::Unsent) => elsewhere(t),
                Err(Exchange::Failed) => answered(t, Err(NoAnswer::Silent)),
            }
        }
        waiting = still;
    }
    for (t, ..) in waiting {
        answered(t, Err(NoAnswer::Silent));
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
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            secret: b"secret".to_vec(),
            cluster: 42,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let reqs = [
            PeerRequest::Heartbeat {
                from: 1,
                term: 3,
                timeline: 2,
                promoted: true,
                fences: true,
            },
            PeerRequest::Vote(VoteRequest {
                term: 4,
                candidate: 2,
                failed: 1,
                timeline: 2,
                lsn: 123_456,
                pre: true,
            }),
            PeerRequest::Status,
        ];
        for r in reqs {
            let f: Vec<String> = encode_request(&r).split(' ').map(str::to_string).collect();
            assert_eq!(decode_request(&f), Some(r));
        }
        let replies = [
            PeerReply::Heartbeat(HeartbeatReply::Ack {
                promise_ms: 2000,
                known_term: 3,
            }),
            PeerReply::Heartbeat(HeartbeatReply::Superseded { term: 5, by: None }),
            PeerReply::Vote(VoteReply::Granted { promise_ms: 7 }),
            PeerReply::Vote(VoteReply::Refused(Refusal::TermTaken {
                granted: 4,
                to: Some(3),
            })),
            PeerReply::Vote(VoteReply::Refused(Refusal::MoreWal { lsn: 99 })),
            PeerReply::Status(DaemonStatus {
                granted_term: 4,
                granted_to: Some(2),
                known_term: 3,
                holds_lease: true,
                automatic: true,
            }),
        ];
        for r in replies {
            let f: Vec<String> = encode_reply(&r).split(' ').map(str::to_string).collect();
            assert_eq!(decode_reply(&f), Some(r));
        }
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn a_forged_or_foreign_line_does_not_open() {
        let k = key();
        let sealed = k.seal("RPMGR/1 STATUS abc");
        assert!(k.open(&sealed).is_some());
        let other = Key {
            cluster: 43,
            ..key()
        };
        assert!(other.open(&sealed).is_none());
        let tampered = sealed.replace("STATUS", "STATUX");
        assert!(k.open(&tampered).is_none());
    }

    #[test]
    fn a_status_request_leaves_its_connection_for_the_next_one() {
        let key = Arc::new(RwLock::new(Some(self::key())));
        let handler: Handler = Arc::new(|r| match r {
            PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
            _ => None,
        });
        let port = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
        let to = Address {
            host: "127.0.0.1".into(),
            port,
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let status = || {
            ask(
                &to,
                &self::key(),
                &PeerRequest::Status,
                Duration::from_secs(2),
            )
        };
        assert!(status().is_ok());
        let kept = idle_conns::take(addr).expect("the connection is kept");
        let local = kept.local_addr().unwrap();
        idle_conns::put(addr, kept);
        assert!(status().is_ok());
        let again = idle_conns::take(addr).expect("kept again");
        assert_eq!(again.local_addr().unwrap(), local, "the same connection");
        // A connection the server closed is replaced, not an error.
        again.shutdown(std::net::Shutdown::Both).unwrap();
        idle_conns::put(addr, again);
        assert!(status().is_ok());
    }

    #[test]
    fn a_round_asks_on_open_connections_and_hands_the_others_on() {
        let key = Arc::new(RwLock::new(Some(self::key())));
        let handler: Handler = Arc::new(|r| match r {
            PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
            _ => None,
        });
        let open = serve("127.0.0.1:0".parse().unwrap(), key.clone(), handler.clone()).unwrap();
        let other = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
        let at = |port| Address {
            host: "127.0.0.1".into(),
            port,
        };
        // A connection kept to the first only.
        let status = PeerRequest::Status;
        assert!(ask(&at(open), &self::key(), &status, Duration::from_secs(2)).is_ok());
        let targets = [(1, at(open)), (2, at(other))];
        let (mut answers, mut handed) = (Vec::new(), Vec::new());
        ask_many(
            &targets,
            &self::key(),
            &status,
            Duration::from_secs(2),
            |t, a| answers.push((t, a)),
            |t| handed.push(t),
        );
        assert_eq!(
            answers,
            vec![(1, Ok(PeerReply::Status(DaemonStatus::default())))]
        );
        assert_eq!(handed, vec![2]);
        // The connection is kept for the next round; a silent answer costs
        // the deadline and no more.
        let hb = PeerRequest::Heartbeat {
            from: 1,
            term: 1,
            timeline: 1,
            promoted: true,
            fences: false,
        };
        let (mut answers, mut handed) = (Vec::new(), Vec::new());
        let began = std::time::Instant::now();
        ask_many(
            &targets[..1],
            &self::key(),
            &hb,
            Duration::from_millis(300),
            |t, a| answers.push((t, a)),
            |t| handed.push(t),
        );
        assert!(began.elapsed() < Duration::from_secs(1));
        // The server closes a connection whose request it does not answer:
        // closed, so handed on (as ask would retry on a new one).
        assert!(
            answers == vec![(1, Err(NoAnswer::Silent))] || handed == vec![1],
            "{answers:?} {handed:?}"
        );
    }

    #[test]
    fn a_request_is_answered_and_a_silent_server_costs_the_deadline() {
        let key = Arc::new(RwLock::new(Some(self::key())));
        let handler: Handler = Arc::new(|r| match r {
            PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
            _ => None,
        });
        let port = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
        let to = Address {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            ask(
                &to,
                &self::key(),
                &PeerRequest::Status,
                Duration::from_secs(2)
            ),
            Ok(PeerReply::Status(DaemonStatus::default()))
        );
        // No answer for a heartbeat from this handler: silence.
        let hb = PeerRequest::Heartbeat {
            from: 1,
            term: 1,
            timeline: 1,
            promoted: true,
            fences: false,
        };
        assert_eq!(
            ask(&to, &self::key(), &hb, Duration::from_millis(300)),
            Err(NoAnswer::Silent)
        );
        // The wrong key: no answer either.
        let wrong = Key {
            secret: b"other".to_vec(),
            cluster: 42,
        };
        assert_eq!(
            ask(
                &to,
                &wrong,
                &PeerRequest::Status,
                Duration::from_millis(300)
            ),
            Err(NoAnswer::Silent)
        );
        // Nothing listening: refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let none = Address {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            ask(
                &none,
                &self::key(),
                &PeerRequest::Status,
                Duration::from_millis(300)
            ),
            Err(NoAnswer::Refused)
        );
    }
}
