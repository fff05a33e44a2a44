//! The lines of the peer channel: the cluster's key and its MAC, the
//! nonce, and how each request and reply is written and read.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::daemon::core::types::*;

pub(super) const TAG: &str = "RPMGR/1";

/// The secret and the cluster it belongs to.
#[derive(Clone)]
pub struct Key {
    pub secret: Vec<u8>,
    pub cluster: i64,
}

impl Key {
    pub(super) fn mac(&self, text: &str) -> String {
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
    pub(super) fn seal(&self, text: &str) -> String {
        let mac = self.mac(text);
        format!("{text} {mac}\n")
    }

    /// The fields of a line whose MAC holds, else None.
    pub(super) fn open(&self, line: &str) -> Option<Vec<String>> {
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

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn hex(b: &[u8]) -> String {
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
pub(super) fn nonce() -> String {
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

pub(super) fn opt(v: Option<NodeId>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

pub(super) fn parse_opt(s: &str) -> Option<Option<NodeId>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

pub(super) fn encode_request(r: &PeerRequest) -> String {
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

pub(super) fn decode_request(f: &[String]) -> Option<PeerRequest> {
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

pub(super) fn encode_reply(r: &PeerReply) -> String {
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

pub(super) fn decode_reply(f: &[String]) -> Option<PeerReply> {
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
