//! The endpoint's answers, from a [`View`] of this node alone (no I/O):
//! Patroni's paths and meanings, so that an HAProxy configuration written
//! for Patroni needs only its port changed.
//!
//! | path | 200 when |
//! |---|---|
//! | `/primary`, `/`, `/read-write`, `/master`, `/leader` | a writable primary: not fenced, not isolated, not superseded |
//! | `/replica`, `/standby` | a running standby whose WAL receiver streams (`?lag=` bounds its lag) |
//! | `/read-only` | a running primary that is not superseded, or such a replica |
//! | `/health` | PostgreSQL answered repmgrd's last read |
//! | `/liveness` | repmgrd's monitoring loop ran within twice its interval |
//! | `/metrics` | always (Prometheus text) |
//! | `/cluster` | always, when the cluster could be asked (JSON) |
//!
//! The role paths and `/health` also need the monitoring loop to have run
//! lately (what `/liveness` says): a stuck loop's facts are of unknown age.

use super::body;
use super::request::{Method, Request};
use super::view::View;
use crate::daemon::core::health::{Health, HealthRole};

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// For 405: the methods allowed.
    pub allow: bool,
}

pub const JSON: &str = "application/json";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn plain(status: u16, text: &str) -> Response {
    Response {
        status,
        content_type: TEXT,
        body: format!("{text}\n"),
        allow: false,
    }
}

pub fn bad_request() -> Response {
    plain(400, "bad request")
}

pub fn too_large() -> Response {
    plain(431, "request head too large")
}

pub fn busy() -> Response {
    plain(503, "too many clients")
}

/// The answer to `req`. `cluster` renders `/cluster` (it asks the other
/// nodes, so it is called only for that path).
pub fn answer(req: &Request, v: &View, cluster: impl FnOnce() -> Option<String>) -> Response {
    if req.method == Method::Other {
        let mut r = plain(405, "method not allowed");
        r.allow = true;
        return r;
    }
    let role = |ok: bool| Response {
        status: if ok { 200 } else { 503 },
        content_type: JSON,
        body: body::status(v),
        allow: false,
    };
    let lag_ok = || match req.param("lag") {
        None => Some(true),
        Some(limit) => {
            let limit = parse_size(limit)?;
            Some(v.lag_bytes.is_some_and(|l| l <= limit))
        }
    };
    // What the last monitoring cycle read is vouched for only while the
    // loop runs: a stuck loop's facts are of unknown age.
    let alive = v.alive();
    match req.path.as_str() {
        "/" | "/primary" | "/read-write" | "/master" | "/leader" => {
            role(alive && v.health.writable)
        }
        "/replica" | "/standby" => match lag_ok() {
            Some(ok) => role(alive && ok && replica(&v.health)),
            None => plain(
                400,
                "lag: expected bytes or a size with a unit (kB, MB, GB, TB)",
            ),
        },
        "/read-only" => match lag_ok() {
            Some(ok) => role(alive && (readable_primary(&v.health) || (ok && replica(&v.health)))),
            None => plain(
                400,
                "lag: expected bytes or a size with a unit (kB, MB, GB, TB)",
            ),
        },
        "/health" => role(alive && v.health.running),
        "/liveness" => role(v.alive()),
        "/metrics" => Response {
            status: 200,
            content_type: PROMETHEUS,
            body: super::metrics::render(v),
            allow: false,
        },
        "/cluster" => match cluster() {
            Some(doc) => Response {
                status: 200,
                content_type: JSON,
                body: doc,
                allow: false,
            },
            None => plain(503, "the cluster could not be read"),
        },
        _ => plain(404, "not found"),
    }
}

fn replica(h: &Health) -> bool {
    h.role == HealthRole::Standby && h.running && h.streaming
}

fn readable_primary(h: &Health) -> bool {
    h.role == HealthRole::Primary && h.running && h.superseded.is_none()
}

/// Bytes, or a size with PostgreSQL's units (`16MB`, `512kB`, case
/// ignored), as Patroni's `?lag=` takes them.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests;
