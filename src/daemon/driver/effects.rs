//! The driver's side effects that are not jobs: the peer channel (serving,
//! heartbeats, votes), this repmgrd's rows on the primary, events and hooks.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::observe::spawn;
use super::{lock, peer, Driver};
use crate::conninfo::ConnInfo;
use crate::daemon::core::types::*;
use crate::daemon::signals::Wake;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, reach};
use crate::error::{Error, ExitCode, Result};

/// How recent an answer of the local server stands for the check a
/// renewal needs (a renewal on it extends the lease of a server that hung
/// since by one heartbeat interval at most: the next renewal checks).
const LOCAL_ANSWER_FRESH: Duration = Duration::from_millis(100);

/// How often a daemon-less voter's server is asked again.
const PROBE_EVERY: Duration = Duration::from_secs(2);

impl Driver {
    /// Listens for other repmgrds on the host of this node's conninfo.
    pub(super) fn start_peer_channel(&mut self, kept_port: u16) -> Result<()> {
        let host = self
            .conninfo
            .get("hostaddr")
            .or(self.conninfo.host())
            .filter(|h| !h.starts_with('/'))
            .unwrap_or("127.0.0.1")
            .to_string();
        let configured = u16::try_from(self.cfg().repmgrd_port.max(0)).unwrap_or(0);
        let port = if configured > 0 {
            configured
        } else {
            kept_port
        };
        let addr: Option<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let Some(addr) = addr else {
            crate::log_warning!(
                "unable to resolve \"{host}\" for the repmgrd peer channel; this node cannot vote"
            );
            return Ok(());
        };
        let core = self.core.clone();
        let clock = self.clock;
        let persister = self.persister.clone();
        let tx = self.tx.clone();
        let handler: peer::Handler = Arc::new(move |request| {
            let mut c = lock(&core);
            let actions = c.step(clock.now(), Input::Peer { token: 0, request });
            let mut reply = None;
            let mut rest = Vec::new();
            for a in actions {
                match a {
                    Action::Persist(p) => {
                        // No answer that the disk does not back.
                        if let Err(e) = persister.save(p) {
                            crate::logging::log_error_report(&e);
                            return None;
                        }
                    }
                    Action::Reply { reply: r, .. } => reply = Some(r),
                    other => rest.push(other),
                }
            }
            drop(c);
            if !rest.is_empty() {
                let _ = tx.send(Wake::Actions(rest));
            }
            reply
        });
        let bound = match peer::serve(addr, self.key.clone(), handler.clone()) {
            Ok(p) => p,
            Err(_) if configured == 0 && kept_port != 0 => {
                // The kept port is taken now: another one, published anew.
                let any = SocketAddr::new(addr.ip(), 0);
                peer::serve(any, self.key.clone(), handler).map_err(|e| bind_error(&host, 0, &e))?
            }
            Err(e) => return Err(bind_error(&host, port, &e)),
        };
        if bound != kept_port {
            if let Err(e) = self.persister.save_port(bound) {
                crate::logging::log_error_report(&e);
            }
        }
        crate::log_info!("repmgrd peer channel listening on {host}:{bound}");
        // Also on this node's own server: peers that never saw this
        // repmgrd's row (the primary died first) find the port there.
        let id = self.node_id();
        if let Some(c) = self.local.as_mut() {
            let _ = db::observe::announce_peer_port(c, bound, id);
        }
        self.peer_addr = Some(peer::Address { host, port: bound });
        Ok(())
    }

    /// On the primary (by the writer connection): this repmgrd's row, its
    /// peer address, the schema's newest version and the secret; then the
    /// repmgrd_start event.
    pub(super) fn announce(&mut self) {
        let (id, name) = (self.node_id(), self.cfg().node_name.clone());
        let role_primary = self
            .local
            .as_mut()
            .is_some_and(|c| matches!(db::server::in_recovery(c), Ok(false)))
            && !self.is_witness;
        if role_primary {
            if let Some(c) = self.local.as_mut() {
                if let Err(e) = db::secret::ensure(c) {
                    crate::log_warning!("unable to create the repmgrd secret: {}", e.reason());
                }
            }
        }
        self.publish();
        // repmgr's details, word for word, for each role
        let details = match (role_primary, self.is_witness) {
            (true, _) => format!("monitoring cluster primary \"{name}\" (ID: {id})"),
            (false, false) => match self.upstream_record() {
                Some(u) => format!("monitoring connection to upstream node {u}"),
                None => format!("monitoring connection to node \"{name}\" (ID: {id}) established"),
            },
            (false, true) => match self.primary_record() {
                Some(p) => format!("witness monitoring connection to primary node {p}"),
                None => format!("monitoring connection to node \"{name}\" (ID: {id}) established"),
            },
        };
        self.event("repmgrd_start", true, details, None, None);
    }

    fn upstream_record(&mut self) -> Option<NodeRecord> {
        let id = self.node_id();
        let c = self.local.as_mut()?;
        let me = db::nodes::get(c, id).ok().flatten()?;
        db::nodes::get(c, me.upstream_node_id?).ok().flatten()
    }

    /// The primary as the local metadata has it (a witness's view).
    fn primary_record(&mut self) -> Option<NodeRecord> {
        let c = self.local.as_mut()?;
        db::nodes::active_primaries(c).ok()?.into_iter().next()
    }

    /// `fence_command` (%n %a %e), off the decision path, with a deadline.
    pub(super) fn fence_hook(&mut self, event: &'static str) {
        let template = self.cfg().fence_command.trim().to_string();
        if template.is_empty() {
            return;
        }
        use crate::hooks::{cluster, plain};
        let line = crate::hooks::expand(
            &template,
            &[
                ('n', plain(self.node_id())),
                ('a', cluster(self.cfg().node_name.clone())),
                ('e', plain(event)),
            ],
        );
        spawn("fence-hook", move || run_hook(&line, "fence_command"));
    }

    /// `child_nodes_disconnect_command` (%p) and its event.
    pub(super) fn children_disconnected(&mut self, details: String) {
        let template = self.cfg().child_nodes_disconnect_command.trim().to_string();
        if !template.is_empty() {
            let line =
                crate::hooks::expand(&template, &[('p', crate::hooks::plain(self.node_id()))]);
            spawn("child-hook", move || {
                run_hook(&line, "child_nodes_disconnect_command")
            });
        }
        self.event("child_nodes_disconnect_command", true, details, None, None);
    }

    // ------------------------------------------------------------- peers

    /// Heartbeats to `to`, each answer posted as it comes: on the
    /// connections kept open to their repmgrds, from one thread; the
    /// others (and any whose connection was found closed) each from a
    /// thread of its own with [`heartbeat`]'s fallbacks. Voters whose
    /// repmgrd does not listen have their server asked instead.
    pub(super) fn send_heartbeats(
        &mut self,
        term: Term,
        to: Vec<NodeId>,
        promoted: bool,
        local_must_answer: bool,
        fences: bool,
    ) {
        let sent = self.clock.now();
        // A read of the local server that answered just now (the tick's,
        // which usually comes right before a renewal) is that proof.
        let fresh = self
            .local_answered_at
            .is_some_and(|t| t.elapsed() < LOCAL_ANSWER_FRESH);
        if local_must_answer && !fresh {
            let check = match self.local.as_mut() {
                Some(c) => c.is_valid(Duration::from_millis(500)),
                None => Err(db::SqlError::Closed),
            };
            self.local_answered_at = None;
            match check {
                Ok(()) => self.local_answered_at = Some(Instant::now()),
                // Slow, not gone: no renewal, and the lease rules decide
                // (a slow server may still take writes).
                Err(db::SqlError::TimedOut(_) | db::SqlError::Stopped) => return,
                Err(_) => {
                    // The local server died between two reads (its
                    // session ended): the core must learn it now, before
                    // the lease it can no longer renew runs out (it would
                    // otherwise "fence" a crashed server and later restart
                    // it to unfence).
                    (self.poster())(Input::Local(None));
                    return;
                }
            }
        }
        let Some(key) = self.key.read().ok().and_then(|k| k.clone()) else {
            crate::log_debug!("no repmgrd secret yet: heartbeats cannot be authenticated");
            return;
        };
        let timeline = self.last_row.as_ref().map_or(0, |r| r.timeline);
        let timeout = Duration::from_millis(
            super::settings(self.cfg(), self.is_witness).heartbeat_timeout_ms(),
        );
        let me = self.node_id();
        let request = PeerRequest::Heartbeat {
            from: me,
            term,
            timeline,
            promoted,
            fences,
        };
        // One voter's heartbeat on a thread of its own, with every
        // fallback (a new connection, a repmgrd at another port, no
        // repmgrd): what the round below cannot do on an open connection.
        let one = {
            let peers = self.peers.clone();
            let nodes = self.nodes.clone();
            let key = key.clone();
            let post = self.poster();
            let tx = self.tx.clone();
            let probed = self.probed.clone();
            move |t: NodeId| {
                let addr = peers.get(&t).cloned();
                let rec = nodes.iter().find(|n| n.node_id == t).cloned();
                let key = key.clone();
                let post = post.clone();
                let tx = tx.clone();
                let probed = probed.clone();
                spawn("heartbeat", move || {
                    let reply = heartbeat(
                        t, addr, rec, &key, &request, timeout, &probed, &tx, term, timeline,
                    );
                    if let Some(reply) = reply {
                        post(Input::Heartbeat {
                            from: t,
                            sent,
                            reply,
                        });
                    }
                });
            }
        };
        let (kept, elsewhere): (Vec<NodeId>, Vec<NodeId>) =
            to.into_iter().partition(|t| self.peers.contains_key(t));
        for t in elsewhere {
            one(t);
        }
        if kept.is_empty() {
            return;
        }
        let targets: Vec<(NodeId, peer::Address)> = kept
            .into_iter()
            .filter_map(|t| self.peers.get(&t).map(|a| (t, a.clone())))
            .collect();
        let post_all = self.batch_poster();
        // The voters this process has a connection open to, all from one
        // thread: one wake-up of it per round, not one per voter.
        spawn("heartbeats", move || {
            peer::ask_many(
                &targets,
                &key,
                &request,
                timeout,
                |answers| {
                    let inputs: Vec<Input> = answers
                        .into_iter()
                        .filter_map(|(t, answer)| match answer {
                            Ok(PeerReply::Heartbeat(reply)) => Some(Input::Heartbeat {
                                from: t,
                                sent,
                                reply,
                            }),
                            other => {
                                crate::log_debug!("heartbeat to node {t}: no answer ({other:?})");
                                None
                            }
                        })
                        .collect();
                    post_all(inputs);
                },
                &one,
            );
        });
    }

    /// Asks `to` for their votes; posts the answers once `needed` granted,
    /// all answered, or the deadline passed.
    pub(super) fn request_votes(&mut self, request: VoteRequest, to: Vec<NodeId>, needed: usize) {
        let key = self.key.read().ok().and_then(|k| k.clone());
        let limit = Duration::from_millis(
            super::settings(self.cfg(), self.is_witness).heartbeat_timeout_ms(),
        );
        let targets: Vec<(NodeId, Option<peer::Address>)> = to
            .iter()
            .map(|t| (*t, self.peers.get(t).cloned()))
            .collect();
        let post = self.poster();
        spawn("votes", move || {
            let (tx, rx) = mpsc::channel();
            let Some(key) = key else {
                crate::log_warning!(
                    "no repmgrd secret in this node's metadata: no vote can be asked for"
                );
                post(Input::Votes {
                    term: request.term,
                    replies: targets
                        .iter()
                        .map(|(t, _)| (*t, VoteReply::Silent))
                        .collect(),
                });
                return;
            };
            for (t, addr) in &targets {
                let (t, addr, key, tx) = (*t, addr.clone(), key.clone(), tx.clone());
                spawn("vote", move || {
                    let r = match addr {
                        Some(a) => match peer::ask(&a, &key, &PeerRequest::Vote(request), limit) {
                            Ok(PeerReply::Vote(v)) => v,
                            _ => VoteReply::Silent,
                        },
                        None => VoteReply::Silent,
                    };
                    let _ = tx.send((t, r));
                });
            }
            drop(tx);
            let deadline = Instant::now() + limit + Duration::from_millis(100);
            let mut replies: Vec<(NodeId, VoteReply)> = Vec::new();
            while replies.len() < targets.len() {
                let granted = replies
                    .iter()
                    .filter(|(_, r)| matches!(r, VoteReply::Granted { .. }))
                    .count();
                if granted >= needed && needed > 0 {
                    break;
                }
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(r) => replies.push(r),
                    Err(_) => break,
                }
            }
            for (t, _) in &targets {
                if !replies.iter().any(|(r, _)| r == t) {
                    replies.push((*t, VoteReply::Silent));
                }
            }
            post(Input::Votes {
                term: request.term,
                replies,
            });
        });
    }
}

/// What a voter's server says when its repmgrd did not answer.
enum Probe {
    /// No repmgrd there: what its server implies.
    Reply(HeartbeatReply),
    /// Its repmgrd announces its peer channel here (the metadata did not
    /// say, or said an old port).
    Listening(peer::Address),
    /// Nothing to count on.
    Unknown,
}

/// One heartbeat to voter `t` with its fallbacks: its repmgrd at the
/// address known, else (nothing listens there, at most every
/// PROBE_EVERY) its server asked directly, and its repmgrd at the port
/// the server names.
#[allow(clippy::too_many_arguments)]
fn heartbeat(
    t: NodeId,
    addr: Option<peer::Address>,
    rec: Option<NodeRecord>,
    key: &peer::Key,
    request: &PeerRequest,
    timeout: Duration,
    probed: &std::sync::Mutex<std::collections::BTreeMap<NodeId, Instant>>,
    tx: &mpsc::Sender<Wake>,
    term: Term,
    timeline: u32,
) -> Option<HeartbeatReply> {
    let answer = match &addr {
        Some(a) => peer::ask(a, key, request, timeout),
        None => Err(peer::NoAnswer::Refused),
    };
    if let Err(e) = &answer {
        crate::log_debug!("heartbeat to node {t} ({addr:?}): no answer ({e:?})");
    }
    match answer {
        Ok(PeerReply::Heartbeat(r)) => Some(r),
        Ok(_) | Err(peer::NoAnswer::Silent) => None,
        Err(peer::NoAnswer::Refused) => {
            let due = {
                let mut p = probed.lock().unwrap_or_else(|e| e.into_inner());
                let due = p.get(&t).is_none_or(|at| at.elapsed() >= PROBE_EVERY);
                if due {
                    p.insert(t, Instant::now());
                }
                due
            };
            match (due, rec) {
                (true, Some(rec)) => match probe_daemonless(&rec, term, timeline) {
                    Probe::Reply(r) => Some(r),
                    Probe::Listening(a) => {
                        let _ = tx.send(Wake::Peers(vec![(t, a.host.clone(), a.port)]));
                        match peer::ask(&a, key, request, timeout) {
                            Ok(PeerReply::Heartbeat(r)) => Some(r),
                            _ => None,
                        }
                    }
                    Probe::Unknown => None,
                },
                _ => None,
            }
        }
    }
}

/// A voter whose repmgrd did not answer: its server says where its
/// repmgrd listens, or (none there) whether it could vote later (a
/// standby of no newer history: its repmgrd, once started, sits out its
/// quarantine) or whether it knows of a newer primary.
fn probe_daemonless(rec: &NodeRecord, term: Term, timeline: u32) -> Probe {
    let Ok(mut c) = reach::connect_record(rec) else {
        return Probe::Unknown;
    };
    let Ok(row) = db::observe::server(&mut c) else {
        return Probe::Unknown;
    };
    if let (Some(port), Some(host)) = (row.peer_port, super::observe::tcp_host(&rec.conninfo)) {
        return Probe::Listening(peer::Address { host, port });
    }
    if row.daemon_sessions > 0 {
        return Probe::Unknown; // a repmgrd runs there but did not answer: no promise
    }
    let witness = rec.node_type == NodeType::Witness;
    let newer = !witness
        && (row.voting_term > term
            || row.timeline > timeline
            || (!row.in_recovery && row.voting_term == term));
    Probe::Reply(if newer {
        HeartbeatReply::Superseded {
            term: row.voting_term.max(term + 1),
            by: (!row.in_recovery).then_some(rec.node_id),
        }
    } else {
        HeartbeatReply::NoDaemon
    })
}

/// Runs a user command with a deadline, logging what went wrong.
pub fn run_hook(line: &str, what: &str) {
    match crate::process::run(crate::process::shell(line), Duration::from_secs(60), what) {
        Ok(o) if o.success() => {}
        Ok(o) => crate::log_warning!(
            "{what} returned {}",
            crate::process::describe_status(&o.status)
        ),
        Err(e) => crate::logging::log_error_report(&e),
    }
}

fn bind_error(host: &str, port: u16, e: &std::io::Error) -> Error {
    Error::new(
        ExitCode::SysFailure,
        format!("unable to listen on {host}:{port} for the repmgrd peer channel"),
    )
    .detail(e.to_string())
    .hint("set repmgrd_port to a free port, or 0 to choose one")
}

#[allow(dead_code)]
fn unused(_: &ConnInfo) {}
