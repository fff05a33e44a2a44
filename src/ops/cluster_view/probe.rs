//! Probing nodes: every node at once, each bounded by its connect_timeout,
//! so one hung node costs one timeout in total.

use std::thread;

use crate::conninfo::parse_described as parse_conninfo;
use crate::db::{self, nodes::NodeRecord, reach::APP_NAME};

/// How a node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Up,
    /// The server answers but would not let us in (repmgr's REJECTED).
    Rejected,
    Down,
}

/// What one parallel probe of a node found.
#[derive(Debug, Clone)]
pub struct Probe {
    pub reach: Reach,
    pub error: Option<String>,
    pub in_recovery: Option<bool>,
    pub timeline: Option<i64>,
    /// application_names streaming from this node.
    pub attached: Vec<String>,
    pub replay_paused: bool,
    /// Running as primary but fenced (read-only) by repmgrd.
    pub fenced: bool,
}

impl Probe {
    fn down(reach: Reach, error: String) -> Probe {
        Probe {
            reach,
            error: Some(error),
            in_recovery: None,
            timeline: None,
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        }
    }
}

/// Probes one node: a connection bounded by its connect_timeout, then a few
/// cheap queries. Never fails: what went wrong is part of the result.
fn probe(n: &NodeRecord) -> Probe {
    probe_keep(n).0
}

/// [`probe`], keeping the connection for further questions.
fn probe_keep(n: &NodeRecord) -> (Probe, Option<crate::db::Session>) {
    let ci = match parse_conninfo(&n.conninfo, "conninfo") {
        Ok(ci) => ci,
        Err(e) => return (Probe::down(Reach::Down, e.reason().to_string()), None),
    };
    match db::connect::probe(&ci, APP_NAME) {
        Ok(c) => probe_on(c),
        Err((e, ping)) => {
            let reach = match ping {
                db::connect::Ping::Ok => Reach::Rejected,
                _ => Reach::Down,
            };
            let text = e.reason().to_string();
            (Probe::down(reach, text), None)
        }
    }
}

/// The probe's questions, on a session already open to the node.
fn probe_on(mut c: crate::db::Session) -> (Probe, Option<crate::db::Session>) {
    // One statement; should the server refuse it (an odd privilege
    // setup), each fact is asked on its own, so what can be read still
    // is. A session closed by a missed deadline is not asked again.
    let (in_recovery, timeline, replay_paused, attached, fenced) =
        match db::server::probe_facts(&mut c) {
            Ok(f) => (
                Some(f.in_recovery),
                f.timeline,
                f.replay_paused,
                f.attached,
                f.fenced,
            ),
            Err(_) if c.is_closed() => (None, None, false, Vec::new(), false),
            Err(_) => (
                db::server::in_recovery(&mut c).ok(),
                db::server::timeline(&mut c).ok(),
                db::server::wal_replay_paused(&mut c).unwrap_or(false),
                db::server::attached_standbys(&mut c).unwrap_or_default(),
                db::fence::is_fenced(&mut c).unwrap_or(false),
            ),
        };
    let p = Probe {
        reach: Reach::Up,
        error: None,
        in_recovery,
        timeline,
        attached,
        replay_paused,
        fenced,
    };
    (p, Some(c))
}

/// Probes every node at once like [`probe_all`], then asks each reachable
/// node `ask` on the same connection (still in that node's thread).
pub fn probe_all_with<T, F>(nodes: &[NodeRecord], ask: F) -> Vec<(Probe, Option<T>)>
where
    T: Send + 'static,
    F: Fn(&NodeRecord, &mut crate::db::Session) -> T + Send + Sync + 'static,
{
    let ask = std::sync::Arc::new(ask);
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|n| {
            let ask = ask.clone();
            thread::spawn(move || {
                let (p, c) = probe_keep(&n);
                let answer = c.map(|mut c| ask(&n, &mut c));
                (p, answer)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| {
                (
                    Probe::down(Reach::Down, "internal error while probing".into()),
                    None,
                )
            })
        })
        .collect()
}

/// Probes every node at once, so one hung node costs one timeout in total.
pub fn probe_all(nodes: &[NodeRecord]) -> Vec<Probe> {
    probe_all_reusing(nodes, None)
}

/// [`probe_all`], where `open` is a session already open to the node at
/// that index, made with that node's own conninfo: it is asked on that
/// session instead of a new connection (`cluster show` read the records
/// through it; a second connection to the same server would cost it a
/// backend start for nothing).
pub fn probe_all_reusing(
    nodes: &[NodeRecord],
    open: Option<(usize, crate::db::Session)>,
) -> Vec<Probe> {
    let mut open = open;
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| {
            let reuse = match open.take() {
                Some((at, c)) if at == i => Some(c),
                other => {
                    open = other;
                    None
                }
            };
            thread::spawn(move || match reuse {
                Some(c) if !c.is_closed() => probe_on(c).0,
                _ => probe(&n),
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Probe::down(Reach::Down, "internal error while probing".into()))
        })
        .collect()
}
