//! Observations: the local server each cycle, one node's check, and a
//! round over the whole cluster. Every one is bounded by the deadlines of
//! the sessions it uses; the remote ones run on threads of their own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{peer, round_sessions, Driver};
use crate::config::ConnectionCheckType;
use crate::conninfo::ConnInfo;
use crate::daemon::core::types::*;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, observe::ServerRow, reach};

/// How often the secret and the peer addresses are read again.
const REFRESH: Duration = Duration::from_secs(10);

/// A record as the core sees it, with what its repmgrd published
/// (`modes`: node, automatic, fences; None where the metadata has no
/// repmgrd table to publish in).
pub fn info(n: &NodeRecord, modes: Option<&[(i32, bool, bool)]>) -> NodeInfo {
    let (automatic, fences, published) = match modes {
        Some(modes) => modes
            .iter()
            .find(|m| m.0 == n.node_id)
            // A node whose repmgrd never published counts as automatic: a
            // primary then fences itself rather than trust that it is not.
            .map_or((true, false, false), |m| (m.1, m.2, true)),
        // A schema made by repmgr 5 that this user may not complete: no
        // repmgrd can publish (nor read the peer channel's secret), so
        // none can win an election, and a primary fencing itself for want
        // of voters that cannot exist would only stop a healthy server.
        None => (false, false, false),
    };
    NodeInfo {
        id: n.node_id,
        name: n.node_name.clone(),
        kind: match n.node_type {
            NodeType::Primary => NodeKind::Primary,
            NodeType::Standby => NodeKind::Standby,
            NodeType::Witness => NodeKind::Witness,
            NodeType::Bdr => NodeKind::Bdr,
        },
        active: n.active,
        priority: n.priority,
        location: n.location.clone(),
        upstream: n.upstream_node_id,
        automatic,
        fences,
        published,
    }
}

/// Which registered node a WAL receiver's sender is, by the host and port
/// of each conninfo.
pub fn sender_node(nodes: &[NodeRecord], host: Option<&str>, port: Option<i32>) -> Option<NodeId> {
    let (host, port) = (host?, port?);
    nodes
        .iter()
        .find(|n| {
            ConnInfo::parse(&n.conninfo).is_ok_and(|ci| {
                let p = ci
                    .port()
                    .and_then(|p| p.parse::<i32>().ok())
                    .unwrap_or(5432);
                let h = ci.get("hostaddr").or(ci.host()).unwrap_or("");
                p == port && (h == host || ci.host() == Some(host))
            })
        })
        .map(|n| n.node_id)
}

/// The window within which a WAL receiver's last message counts as fresh.
fn receiver_window_ms(monitor_interval_secs: i32) -> i64 {
    2 * 1000 * i64::from(monitor_interval_secs.max(1)) + 1000
}

/// One node's server (and repmgrd) as a cluster round sees it.
fn node_obs(id: NodeId, row: &ServerRow, nodes: &[NodeRecord], window_ms: i64) -> NodeObs {
    let receiver = row.receiver.as_ref();
    let fresh =
        receiver.is_some_and(|r| r.streaming && r.last_msg_age_ms.is_some_and(|a| a <= window_ms));
    NodeObs {
        id,
        reachable: true,
        in_recovery: Some(row.in_recovery),
        timeline: row.timeline,
        lsn: row.lsn,
        term: row.voting_term,
        fenced: !row.in_recovery && row.read_only_fenced,
        receiver_fresh: fresh,
        streams_from: receiver
            .filter(|r| r.streaming)
            .and_then(|r| sender_node(nodes, r.sender_host.as_deref(), r.sender_port)),
        daemon: None,
        daemon_session: Some(row.daemon_sessions > 0),
    }
}

impl Driver {
    /// The local server's facts, or None when it does not answer.
    pub(super) fn read_local(&mut self) -> Option<LocalFacts> {
        if self.local.as_ref().is_none_or(|c| c.is_closed()) {
            self.local = None;
            self.local_answered_at = None;
            match db::connect::connect(&self.conninfo, reach::DAEMON_APP_NAME) {
                Ok(c) => self.set_local(c),
                Err(_) => return None,
            }
        }
        let id = self.node_id();
        let c = self.local.as_mut()?;
        let got = (|| -> crate::error::Result<LocalFacts> {
            let db::observe::LocalRow {
                server: row,
                paused,
                published_sync_names,
                modes,
                nodes_digest,
            } = db::observe::local(c, id)?;
            // The records are read again only when their digest changed.
            let nodes = match (&nodes_digest, &self.nodes_digest) {
                (Some(now), Some(then)) if now == then => self.nodes.clone(),
                _ => db::nodes::all(c)?,
            };
            let sync = if row.in_recovery {
                published_sync_names
            } else {
                row.sync_standby_names.clone()
            };
            let receiver = row.receiver.as_ref().map(|r| Receiver {
                sender: sender_node(&nodes, r.sender_host.as_deref(), r.sender_port),
                streaming: r.streaming,
                last_msg_age: r
                    .last_msg_age_ms
                    .map_or(u64::MAX / 4, |a| u64::try_from(a.max(0)).unwrap_or(0)),
            });
            let facts = LocalFacts {
                in_recovery: row.in_recovery,
                timeline: row.timeline,
                lsn: row.lsn,
                receiver,
                paused,
                nodes: nodes.iter().map(|n| info(n, modes.as_deref())).collect(),
                voting_term: row.voting_term,
                read_only_fenced: row.read_only_fenced,
                sync_standby_names: sync,
                attached: row.attached.clone(),
            };
            if nodes != self.nodes {
                self.recorder
                    .send(super::recorder::Write::Nodes(nodes.clone()));
                // Kept for a start while the server is down (open.rs).
                let p = &self.persister;
                super::node_cache::keep(
                    &super::node_cache::path(&p.path),
                    p.node_id,
                    p.cluster,
                    &nodes,
                );
            }
            self.nodes = nodes;
            self.nodes_digest = nodes_digest;
            self.last_row = Some(row);
            Ok(facts)
        })();
        match got {
            Ok(f) => {
                self.local_answered_at = Some(Instant::now());
                self.refresh_peers();
                Some(f)
            }
            Err(e) => {
                crate::log_debug!("reading the local node failed: {}", e.reason());
                self.local = None;
                self.local_answered_at = None;
                None
            }
        }
    }

    /// The secret and the peer addresses, from this node's copy of the
    /// metadata, now and then.
    fn refresh_peers(&mut self) {
        // A voter whose address is not known yet (its repmgrd just
        // started) is looked for every second.
        let me = self.node_id();
        let missing = self
            .nodes
            .iter()
            .any(|n| n.is_voter() && n.node_id != me && !self.peers.contains_key(&n.node_id));
        let every = if missing {
            Duration::from_secs(1)
        } else {
            REFRESH
        };
        let due = self.key_checked_at.is_none_or(|t| t.elapsed() >= every)
            || self.key.read().map_or(true, |k| k.is_none());
        if !due {
            return;
        }
        self.key_checked_at = Some(Instant::now());
        let Some(c) = self.local.as_mut() else { return };
        if let Ok(rows) = db::daemon_status::peers(c) {
            // The metadata wins; an address found on a node's own server
            // (its row never reached this copy) is kept until it has one.
            for r in rows {
                self.peers.insert(
                    r.node_id,
                    peer::Address {
                        host: r.host,
                        port: r.port,
                    },
                );
            }
        }
        match db::secret::get(c) {
            Ok(Some((cluster, secret))) => {
                if let Ok(mut k) = self.key.write() {
                    *k = Some(peer::Key {
                        secret: secret.into_bytes(),
                        cluster,
                    });
                }
            }
            Ok(None) => {
                // A cluster whose schema predates the secret (or built by
                // repmgr 5) gets one from the first repmgrd that reaches
                // its primary; it replicates back to this copy.
                crate::log_debug!("no repmgrd secret in this node's metadata yet");
                self.recorder.send(super::recorder::Write::EnsureSecret);
            }
            Err(e) => crate::log_debug!("reading the repmgrd secret failed: {}", e.reason()),
        }
    }

    /// One check of a node, on a thread: a ping (or, by
    /// `connection_check_type`, a connection or a query), with a login
    /// that reads its recovery state at least every fifth check.
    pub(super) fn check_upstream(&mut self, node: NodeId, ping: bool, seq: u64) {
        self.checks += 1;
        let Some(ci) = self.conninfo_of(node) else {
            (self.poster())(Input::UpstreamCheck {
                node,
                ok: false,
                in_recovery: None,
                seq,
            });
            return;
        };
        let kind = self.loaded.config.connection_check_type;
        let login = !ping && (kind != ConnectionCheckType::Ping || self.checks % 5 == 0);
        // connection_check_type=query also runs the operator's query
        let check_query = (kind == ConnectionCheckType::Query && !ping)
            .then(|| self.loaded.config.connection_check_query.clone())
            .filter(|q| !q.trim().is_empty());
        let post = self.poster();
        let nodes = self.nodes.clone();
        let keep = self.keep_round_sessions();
        spawn("check", move || {
            let (ok, in_recovery) = if login {
                match db::connect::connect(&ci, reach::DAEMON_APP_NAME) {
                    Ok(mut c) => match db::server::in_recovery(&mut c) {
                        Ok(r) => match &check_query {
                            Some(q) if db::server::run_check_query(&mut c, q).is_err() => {
                                (false, None)
                            }
                            _ => (true, Some(r)),
                        },
                        Err(_) => (false, None),
                    },
                    Err(_) => (false, None),
                }
            } else {
                (
                    db::connect::ping(&ci, reach::DAEMON_APP_NAME) == db::connect::Ping::Ok,
                    None,
                )
            };
            post(Input::UpstreamCheck {
                node,
                ok,
                in_recovery,
                seq,
            });
            if !ok {
                // The rounds of a failover may follow: their sessions are
                // opened now, while the failure window runs.
                round_sessions::open_ahead(&nodes, node, keep);
            }
        });
    }

    /// How long the sessions of a cluster round are kept for the next.
    fn keep_round_sessions(&self) -> Duration {
        let c = &self.loaded.config;
        round_sessions::keep_for(c.reconnect_attempts, c.reconnect_interval)
    }

    /// A round over every registered node, this one included, on threads:
    /// each server's state and each repmgrd's status.
    pub(super) fn gather(&mut self, down: Option<NodeId>) {
        let nodes = self.nodes.clone();
        let peers = self.peers.clone();
        let key = self.key.read().ok().and_then(|k| k.clone());
        let window = receiver_window_ms(self.loaded.config.monitor_interval_secs);
        let keep = self.keep_round_sessions();
        let post = self.poster();
        let tx = self.tx.clone();
        spawn("gather", move || {
            let (obs, found) = observe_all(&nodes, &peers, key.as_ref(), window, down, keep);
            if !found.is_empty() {
                let _ = tx.send(crate::daemon::signals::Wake::Peers(found));
            }
            post(Input::Cluster(obs));
        });
    }
}

/// How long a cluster round waits for a node's repmgrd.
const STATUS_LIMIT: Duration = Duration::from_secs(1);

/// How long a cluster round waits for a node found failed already, once
/// every other node has answered: a server that answers at all does so
/// within a few round trips, as the others just did.
pub const DOWN_GRACE: Duration = Duration::from_millis(250);

/// Asks every node at once, each node's server and its repmgrd side by
/// side; a node that does not answer in time is unreachable (`down`, a
/// node found failed already, is waited for [`DOWN_GRACE`] after the
/// others). Also returns the peer addresses not in `peers` that the
/// servers announce (node, host, port).
pub fn observe_all(
    nodes: &[NodeRecord],
    peers: &BTreeMap<NodeId, peer::Address>,
    key: Option<&peer::Key>,
    window_ms: i64,
    down: Option<NodeId>,
    keep: Duration,
) -> (Vec<NodeObs>, Vec<(NodeId, String, u16)>) {
    let late = down.and_then(|d| nodes.iter().position(|n| n.node_id == d));
    let limit = nodes
        .iter()
        .filter_map(|n| ConnInfo::parse(&n.conninfo).ok())
        .filter_map(|ci| db::connect::attempt_limit(&ci, reach::APP_NAME))
        .max()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1);
    let all = nodes.to_vec();
    let work: Vec<(NodeRecord, Option<peer::Address>)> = nodes
        .iter()
        .map(|n| (n.clone(), peers.get(&n.node_id).cloned()))
        .collect();
    let key = key.cloned();
    let answers =
        crate::parallel::map_within_sparing(work, limit, late, DOWN_GRACE, move |(n, addr)| {
            // Its repmgrd is asked on a thread of its own, while the server is:
            // a node where neither answers costs one deadline, not two.
            let (tx, rx) = std::sync::mpsc::channel();
            if let (Some(a), Some(k)) = (addr, key.clone()) {
                spawn("status", move || {
                    if let Ok(PeerReply::Status(s)) =
                        peer::ask(&a, &k, &PeerRequest::Status, STATUS_LIMIT)
                    {
                        let _ = tx.send(s);
                    }
                });
            } else {
                drop(tx);
            }
            let mut port = None;
            let reusable = round_sessions::reusable(&n, down);
            let mut obs = match round_sessions::observe(&n, reusable, keep) {
                Some(row) => {
                    port = row.peer_port;
                    node_obs(n.node_id, &row, &all, window_ms)
                }
                None => NodeObs::unreachable(n.node_id),
            };
            obs.daemon = rx
                .recv_timeout(STATUS_LIMIT + Duration::from_millis(100))
                .ok();
            (obs, port)
        });
    let mut found = Vec::new();
    let obs = nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| match a {
            Some((obs, port)) => {
                if let (Some(port), false) = (port, peers.contains_key(&n.node_id)) {
                    if let Some(host) = tcp_host(&n.conninfo) {
                        found.push((n.node_id, host, port));
                    }
                }
                obs
            }
            None => NodeObs::unreachable(n.node_id),
        })
        .collect();
    (obs, found)
}

/// The TCP host of a conninfo (None for a unix socket directory).
pub(super) fn tcp_host(conninfo: &str) -> Option<String> {
    let ci = ConnInfo::parse(conninfo).ok()?;
    let host = ci.get("host").or_else(|| ci.get("hostaddr"))?;
    let first = host.split(',').next()?.trim();
    (!first.is_empty() && !first.starts_with('/')).then(|| first.to_string())
}

/// A job of the driver's: a check, a heartbeat, a vote, a round.
type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on a worker thread (a small stack: they only wait on sockets).
/// The workers stay for the next job a while: the jobs of each cycle reuse
/// the threads of the last one instead of starting new ones.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    static WORKERS: std::sync::OnceLock<std::sync::Arc<crate::daemon::workers::Pool<Job>>> =
        std::sync::OnceLock::new();
    let pool =
        WORKERS.get_or_init(|| crate::daemon::workers::Pool::new("worker", |job: Job| job()));
    if !pool.dispatch(Box::new(f)) {
        crate::log_warning!("unable to start a thread ({name})");
    }
}
