//! Probing nodes: every node at once, each bounded by its connect_timeout,
//! so one hung node costs one timeout in total.

use std::thread;

use crate::conninfo::parse_described as parse_conninfo;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, reach::APP_NAME};

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
fn probe(n: &NodeRecord, want_attached: bool) -> Probe {
    probe_keep(n, want_attached).0
}

/// [`probe`], keeping the connection for further questions.
fn probe_keep(n: &NodeRecord, want_attached: bool) -> (Probe, Option<crate::db::Session>) {
    let ci = match parse_conninfo(&n.conninfo, "conninfo") {
        Ok(ci) => ci,
        Err(e) => return (Probe::down(Reach::Down, e.reason().to_string()), None),
    };
    match db::connect::probe(&ci, APP_NAME) {
        Ok(c) => probe_on(c, want_attached),
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
fn probe_on(mut c: crate::db::Session, want_attached: bool) -> (Probe, Option<crate::db::Session>) {
    // One statement; should the server refuse it (an odd privilege
    // setup), each fact is asked on its own, so what can be read still
    // is. A session closed by a missed deadline is not asked again.
    let (in_recovery, timeline, replay_paused, attached, fenced) =
        match db::server::probe_facts(&mut c, want_attached) {
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
                match want_attached {
                    true => db::server::attached_standbys(&mut c).unwrap_or_default(),
                    false => Vec::new(),
                },
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
                let (p, c) = probe_keep(&n, true);
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
    probe_all_reusing(nodes, None, false)
}

/// Whether a standby's record names `n` as its upstream: only then does
/// the Upstream cell need to know who streams from it.
fn is_an_upstream(n: &NodeRecord, nodes: &[NodeRecord]) -> bool {
    nodes
        .iter()
        .any(|m| m.node_type == NodeType::Standby && m.upstream_node_id == Some(n.node_id))
}

/// [`probe_all`], where `open` is a session already open to the node at
/// that index, made with that node's own conninfo: it is asked on that
/// session instead of a new connection (`cluster show` read the records
/// through it; a second connection to the same server would cost it a
/// backend start for nothing). `lean`: the standbys streaming from a node
/// are asked only of a node some standby's record names as its upstream
/// (the Upstream cell asks them of no other; [`Probe::attached`] stays
/// empty elsewhere).
pub fn probe_all_reusing(
    nodes: &[NodeRecord],
    open: Option<(usize, crate::db::Session)>,
    lean: bool,
) -> Vec<Probe> {
    let mut open = open;
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| {
            let want_attached = !lean || is_an_upstream(&n, nodes);
            let reuse = match open.take() {
                Some((at, c)) if at == i => Some(c),
                other => {
                    open = other;
                    None
                }
            };
            thread::spawn(move || match reuse {
                Some(c) if !c.is_closed() => probe_on(c, want_attached).0,
                _ => probe(&n, want_attached),
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
