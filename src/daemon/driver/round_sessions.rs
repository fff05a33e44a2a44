//! Sessions to the other nodes' servers, kept from one cluster round to the
//! next while a failure is being handled.
//!
//! When the upstream fails, every standby asks every node at the end of
//! the failure window, and again to confirm after the votes. On 9 nodes
//! that is 8 × 9 new server sessions at the same moment, and on a small
//! machine they took 0.5 s to open, all of it added to the failover. So
//! the first failed check of the upstream opens them (the failure window
//! is spent waiting anyway), the rounds use them, and each round keeps the
//! ones that answered for the next.
//!
//! Only for nodes that are not the one that failed and that the records
//! do not call primary: a primary's (or the failed node's) state must come
//! from a new connection, as a hung postmaster with live backends would
//! still answer on an old session while refusing every new one. A session
//! whose server has become a primary is not kept; one that fails is
//! dropped, and the node is asked on a new connection at once. Each
//! session is kept for a bounded time ([`keep_for`]), then closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::daemon::core::types::NodeId;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, observe::ServerRow, reach, Session};

struct Parked {
    node: NodeId,
    conninfo: String,
    session: Session,
    until: Instant,
}

static PARKED: Mutex<Vec<Parked>> = Mutex::new(Vec::new());

fn parked() -> MutexGuard<'static, Vec<Parked>> {
    PARKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a session is kept: the failure window (from the first failed
/// check to the round at its end) and ten seconds more for the rounds
/// after it.
pub fn keep_for(reconnect_attempts: i32, reconnect_interval_secs: i32) -> Duration {
    let window = u64::try_from(reconnect_attempts.saturating_sub(1)).unwrap_or(0)
        * u64::try_from(reconnect_interval_secs).unwrap_or(0);
    Duration::from_secs(window + 10)
}

/// Whether a round may ask `n` on a kept session.
pub fn reusable(n: &NodeRecord, down: Option<NodeId>) -> bool {
    Some(n.node_id) != down && matches!(n.node_type, NodeType::Standby | NodeType::Witness)
}

/// Closes the sessions whose time is up, on a thread of their own (a
/// goodbye may wait a moment; the main loop calls this).
pub fn close_expired() {
    let now = Instant::now();
    let old: Vec<Parked> = {
        let mut all = parked();
        if all.iter().all(|p| p.until > now) {
            return;
        }
        let (old, young) = all.drain(..).partition(|p| p.until <= now);
        *all = young;
        old
    };
    let closing = std::thread::Builder::new()
        .name("close".into())
        .spawn(move || drop(old));
    if closing.is_err() {
        crate::log_debug!("could not start a thread to close kept sessions");
    }
}

fn take(n: &NodeRecord) -> Option<Session> {
    let now = Instant::now();
    let mut all = parked();
    let at = all
        .iter()
        .position(|p| p.node == n.node_id && p.conninfo == n.conninfo && p.until > now)?;
    Some(all.swap_remove(at).session)
}

fn holds(n: &NodeRecord) -> bool {
    let now = Instant::now();
    parked()
        .iter()
        .any(|p| p.node == n.node_id && p.conninfo == n.conninfo && p.until > now)
}

fn put(n: &NodeRecord, session: Session, keep: Duration) {
    if session.is_closed() {
        return;
    }
    parked().push(Parked {
        node: n.node_id,
        conninfo: n.conninfo.clone(),
        session,
        until: Instant::now() + keep,
    });
}

/// A session kept is worth keeping after this answer: not once its
/// server runs as a primary (a witness always does).
fn worth_keeping(n: &NodeRecord, row: &ServerRow) -> bool {
    n.node_type == NodeType::Witness || row.in_recovery
}

/// Reads `n`'s server state for a round: on a kept session when
/// `reusable` and one is there (a new connection if it fails), else on a
/// new one; keeps the session for the next round when it may.
pub fn observe(n: &NodeRecord, reusable: bool, keep: Duration) -> Option<ServerRow> {
    if reusable {
        if let Some(mut c) = take(n) {
            let asked = Instant::now();
            match db::observe::server(&mut c) {
                Ok(row) => {
                    if worth_keeping(n, &row) {
                        put(n, c, keep);
                    }
                    return Some(row);
                }
                // No answer within the bound: a new connection would wait
                // as long again, and the round would wait for it.
                Err(_) if asked.elapsed() >= c.bound() => return None,
                // Ended (the server restarted, say): asked anew below.
                Err(_) => {}
            }
        }
    }
    let mut c = reach::connect_record(n).ok()?;
    let row = db::observe::server(&mut c).ok()?;
    if reusable && worth_keeping(n, &row) {
        put(n, c, keep);
    }
    Some(row)
}

/// Opens a session to each node a later round may reuse one for (not
/// `failed`, no primary) and has none kept yet; all at once, each within
/// its connect deadline and one query.
pub fn open_ahead(nodes: &[NodeRecord], failed: NodeId, keep: Duration) {
    // One at a time: the next failed check may come while an unreachable
    // node still holds this one up.
    static OPENING: AtomicBool = AtomicBool::new(false);
    if OPENING.swap(true, Ordering::AcqRel) {
        return;
    }
    open_missing(nodes, failed, keep);
    OPENING.store(false, Ordering::Release);
}

fn open_missing(nodes: &[NodeRecord], failed: NodeId, keep: Duration) {
    let todo: Vec<NodeRecord> = nodes
        .iter()
        .filter(|n| reusable(n, Some(failed)) && !holds(n))
        .cloned()
        .collect();
    if todo.is_empty() {
        return;
    }
    let limit = todo
        .iter()
        .filter_map(|n| crate::conninfo::ConnInfo::parse(&n.conninfo).ok())
        .filter_map(|ci| db::connect::attempt_limit(&ci, reach::APP_NAME))
        .max()
        .unwrap_or(Duration::ZERO);
    // The round's question is asked once now too: a new backend's first
    // query loads its catalog caches, which on a busy machine took longer
    // than the connection itself.
    crate::parallel::map_within(todo, limit, move |n: NodeRecord| {
        if let Ok(mut c) = reach::connect_record(&n) {
            if db::observe::server(&mut c).is_ok_and(|row| worth_keeping(&n, &row)) {
                put(&n, c, keep);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: NodeId, node_type: NodeType) -> NodeRecord {
        NodeRecord {
            node_id: id,
            upstream_node_id: None,
            active: true,
            node_name: format!("node{id}"),
            node_type,
            location: "default".into(),
            priority: 100,
            conninfo: format!("host=127.0.0.1 port=1 dbname=x{id}"),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    #[test]
    fn neither_the_failed_node_nor_a_primary_is_asked_on_a_kept_session() {
        assert!(reusable(&record(2, NodeType::Standby), Some(1)));
        assert!(reusable(&record(3, NodeType::Witness), Some(1)));
        assert!(!reusable(&record(1, NodeType::Standby), Some(1)));
        assert!(!reusable(&record(1, NodeType::Primary), Some(2)));
        assert!(!reusable(&record(1, NodeType::Primary), None));
    }

    #[test]
    fn sessions_are_kept_for_the_failure_window_and_ten_seconds() {
        assert_eq!(keep_for(3, 1), Duration::from_secs(12));
        assert_eq!(keep_for(6, 10), Duration::from_secs(60));
        assert_eq!(keep_for(1, 10), Duration::from_secs(10));
        assert_eq!(keep_for(0, 10), Duration::from_secs(10));
    }
}
