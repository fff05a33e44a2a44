//! repmgrd's driver: it gathers observations with deadlines, feeds them to
//! the decision core ([`super::core`]) and carries out the core's actions.
//! It decides nothing itself.
//!
//! Threads: the main loop owns the core's clock and the local session; it
//! waits on one channel for signals, the upstream watcher, and the results
//! of work it started. Work that talks to other nodes (checks, cluster
//! rounds, heartbeats, votes), the long jobs (promote, follow, fence,
//! rejoin) and the metadata writes (the recorder, which holds the session
//! to the primary) run on threads of their own, so the loop is never stuck
//! behind a remote deadline. The peer channel's thread answers other repmgrds by stepping
//! the core itself (under its lock, which is held for microseconds, never
//! across I/O) and writes the durable state before any answer leaves.

mod effects;
mod end_stream;
mod endpoint;
mod idle_conns;
mod jobs;
mod metadata;
mod node_cache;
mod observe;
mod observed;
mod open;
pub mod peer;
mod pending;
mod recorder;
mod reload;
mod round_sessions;
mod settings;
mod startup;
pub mod state;
mod takeover;
pub use settings::settings;
mod timing_check;
mod writes;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::core::types::*;
use super::core::Core;
use super::notify::Notifier;
use super::signals::{self, Wake};
use super::watch::{self, Watcher};
use crate::config::{Config, Failover, FailoverQuorum, Loaded};
use crate::conninfo::ConnInfo;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, Session};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::PgBin;

/// The core's clock: milliseconds since this repmgrd started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn now(&self) -> Time {
        Time(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
    pub fn at(&self, t: Time) -> Instant {
        self.0 + Duration::from_millis(t.0)
    }
}

/// Writes the durable state; shared by the main loop and the peer thread.
pub struct Persister {
    path: PathBuf,
    node_id: NodeId,
    cluster: i64,
    file: Mutex<state::StateFile>,
}

impl Persister {
    pub fn save(&self, p: Persisted) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.core = p;
        state::save(&self.path, self.node_id, self.cluster, &f)
    }

    fn save_port(&self, port: u16) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.peer_port = port;
        state::save(&self.path, self.node_id, self.cluster, &f)
    }
}

fn lock(core: &Mutex<Core>) -> std::sync::MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything the main loop owns.
pub struct Driver {
    loaded: Loaded,
    conninfo: ConnInfo,
    bin: PgBin,
    pid_file: Option<String>,
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
    core: Arc<Mutex<Core>>,
    clock: Clock,
    persister: Arc<Persister>,
    /// The local server, and its backend pid (spared when sessions end).
    local: Option<Session>,
    local_pid: Option<i32>,
    /// The thread that writes this repmgrd's metadata and events.
    recorder: recorder::RecorderHandle,
    nodes: Vec<NodeRecord>,
    /// The digest of repmgr.nodes when `nodes` was read.
    nodes_digest: Option<String>,
    /// Monitoring cycles run.
    cycles: u64,
    peers: BTreeMap<NodeId, peer::Address>,
    key: Arc<RwLock<Option<peer::Key>>>,
    key_checked_at: Option<Instant>,
    peer_addr: Option<peer::Address>,
    watcher: Option<Watcher>,
    watch_gen: u64,
    watched: Option<NodeId>,
    checks: u64,
    last_row: Option<db::observe::ServerRow>,
    /// The last status row sent to the recorder: when, how, which upstream.
    status_sent: Option<(Instant, Option<recorder::Writes>, Option<NodeId>)>,
    /// When the local server last answered (a read or a check).
    local_answered_at: Option<Instant>,
    is_witness: bool,
    /// Daemon-less voters probed lately (their servers asked directly).
    probed: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
    queue: VecDeque<Input>,
    /// What the HTTP endpoint reads besides the core.
    observed: observed::Shared,
    /// systemd's notify socket, when run as a Type=notify service.
    notifier: Option<Notifier>,
    /// This repmgrd's writes of primary_conninfo (see `end_stream`): the
    /// count when each queued local observation was read, and when the
    /// one the core last stepped was.
    writes: writes::ConninfoWrites,
    writes_marks: VecDeque<u64>,
    writes_seen: u64,
}

impl Driver {
    fn cfg(&self) -> &Config {
        &self.loaded.config
    }

    fn node_id(&self) -> NodeId {
        self.cfg().node_id.unwrap_or_default()
    }

    /// Connects, announces itself, and runs until stopped.
    // Long: the start-up steps in their order (open.rs: the local server,
    // or without it when its fence keeps it stopped; then role, peer
    // channel, announce), each with its refusal.
    pub fn start(
        loaded: Loaded,
        conninfo: ConnInfo,
        bin: PgBin,
        pid_file: Option<String>,
        channel: (Sender<Wake>, Receiver<Wake>),
        notifier: Option<Notifier>,
    ) -> Result<()> {
        let cfg = loaded.config.clone();
        let id = cfg.node_id.unwrap_or_default();
        let name = cfg.node_name.clone();
        let pid = std::process::id() as i32;
        let o = open::open(&cfg, &conninfo, &bin, pid)?;
        let in_recovery = o.in_recovery;
        let is_witness = o.me.node_type == NodeType::Witness;
        let file = o.file;
        let persister = Arc::new(Persister {
            path: o.state_path,
            node_id: id,
            cluster: o.cluster,
            file: Mutex::new(file),
        });
        let clock = Clock(Instant::now());
        let core = Core::new(settings(&cfg, is_witness), o.persisted, clock.now());
        let recorder = recorder::RecorderHandle::start(
            cfg.clone(),
            conninfo.clone(),
            pid,
            // Started while the server is down: a fenced primary writes
            // nothing locally.
            if in_recovery || is_witness || o.local.is_none() {
                recorder::Writes::ThroughPrimary
            } else {
                recorder::Writes::OnLocalPrimary
            },
        );
        let mut d = Driver {
            loaded,
            conninfo,
            bin,
            pid_file,
            tx: channel.0,
            rx: channel.1,
            core: Arc::new(Mutex::new(core)),
            clock,
            persister,
            local: None,
            local_pid: None,
            recorder,
            nodes: Vec::new(),
            nodes_digest: None,
            cycles: 0,
            peers: BTreeMap::new(),
            key: Arc::new(RwLock::new(None)),
            key_checked_at: None,
            peer_addr: None,
            watcher: None,
            watch_gen: 0,
            watched: None,
            checks: 0,
            last_row: None,
            status_sent: None,
            local_answered_at: None,
            is_witness,
            probed: Arc::new(Mutex::new(BTreeMap::new())),
            queue: VecDeque::new(),
            observed: Default::default(),
            notifier,
            writes: Default::default(),
            writes_marks: VecDeque::new(),
            writes_seen: 0,
        };
        let down = o.local.is_none();
        if let Some(local) = o.local {
            d.set_local(local);
        }
        if o.activate {
            d.set_active(true);
        }
        // The recorder looks for the primary among these until the first
        // cycle reads them again.
        if !o.nodes.is_empty() {
            d.recorder.send(recorder::Write::Nodes(o.nodes.clone()));
            d.nodes = o.nodes;
        }
        crate::log_notice!(
            "starting monitoring of node \"{name}\" (ID: {id}), running as {}",
            if is_witness {
                "witness"
            } else if in_recovery {
                "standby"
            } else if down {
                "primary (its server stopped by its fence)"
            } else {
                "primary"
            }
        );
        if is_witness {
            crate::log_notice!("this node is a witness: it is monitored, and never promoted");
        }
        if cfg.failover == Failover::Automatic && in_recovery {
            crate::log_info!(
                "failover is automatic: the upstream is declared failed after {} reconnection attempt(s) {} s apart",
                cfg.reconnect_attempts,
                cfg.reconnect_interval
            );
        }
        d.explain_protection();
        d.start_peer_channel(file.peer_port)?;
        d.start_endpoint()?;
        d.announce();
        let asked_to_exit = d.run();
        d.shutdown();
        if asked_to_exit {
            // The core's only Exit is degraded_monitoring_timeout's; repmgr
            // then exits with ERR_MONITORING_TIMEOUT (already logged).
            return Err(Error::silent(ExitCode::MonitoringTimeout));
        }
        Ok(())
    }

    /// Says at start what protects this cluster from split brain.
    fn explain_protection(&mut self) {
        let cfg = self.cfg().clone();
        if cfg.failover_quorum == FailoverQuorum::Repmgr {
            crate::log_warning!(
                "failover_quorum=repmgr: repmgr's quorum rule is in force; a network partition can leave two primaries"
            );
            return;
        }
        let voters = self.nodes.iter().filter(|n| n.is_voter()).count();
        if voters == 2 && cfg.failover == Failover::Automatic {
            crate::log_notice!(
                "this cluster has two voters and no witness: automatic failover needs a majority and will not happen"
            );
            crate::log_hint!("register a witness, or set failover_quorum=repmgr to accept repmgr's split-brain risk");
        }
        self.check_timing();
    }

    fn set_local(&mut self, mut c: Session) {
        // repmgrd's own session keeps writing its metadata on a fenced
        // primary: a session setting overrides the configured default.
        let _ = db::fence::exempt_session(&mut c);
        if let Some(a) = &self.peer_addr {
            let _ = db::observe::announce_peer_port(&mut c, a.port, self.node_id());
        }
        self.local_pid = db::server::backend_pid(&mut c).ok();
        self.local = Some(c);
    }

    /// Runs until a stop signal (false) or the core's Exit (true).
    fn run(&mut self) -> bool {
        loop {
            let mut wake_at = self.clock.at(lock(&self.core).next_wakeup());
            if let Some(n) = &mut self.notifier {
                // From this loop only: a loop that stops stops the pings.
                n.watchdog();
                wake_at = n.watchdog_due().map_or(wake_at, |t| t.min(wake_at));
            }
            let wait = wake_at.saturating_duration_since(Instant::now());
            let input = match signals::wait(&self.rx, wait) {
                Some(Wake::Stop(sig)) => {
                    crate::log_notice!("{sig} received: terminating");
                    return false;
                }
                Some(Wake::Reload) => {
                    if let Some(n) = &self.notifier {
                        n.reloading();
                    }
                    let reloaded = self.reload();
                    if let Some(n) = &self.notifier {
                        n.reloaded(&self.status_line());
                    }
                    match reloaded {
                        Some(s) => Input::Reload(Box::new(s)),
                        None => continue,
                    }
                }
                Some(Wake::UpstreamLost(g)) => match (g == self.watch_gen, self.watched) {
                    (true, Some(node)) => Input::UpstreamClosed { node },
                    _ => continue,
                },
                Some(Wake::Core(i)) => *i,
                Some(Wake::CoreBatch(inputs)) => {
                    self.queue.extend(inputs);
                    if !self.drain() {
                        return true;
                    }
                    continue;
                }
                Some(Wake::Actions(a)) => {
                    // What the peer thread's step asked for; what those
                    // actions observe is stepped at once.
                    if !self.execute(a) || !self.drain() {
                        return true;
                    }
                    continue;
                }
                Some(Wake::Peers(found)) => {
                    for (id, host, port) in found {
                        let a = peer::Address { host, port };
                        if self.peers.get(&id) != Some(&a) {
                            crate::log_info!(
                                "node {id}'s repmgrd found on its server: peer channel {}:{}",
                                a.host,
                                a.port
                            );
                            self.peers.insert(id, a);
                        }
                    }
                    continue;
                }
                None => {
                    round_sessions::close_expired();
                    Input::Tick
                }
            };
            if !self.feed(input) {
                return true;
            }
        }
    }

    /// Steps the core with `input` and everything that input's actions
    /// observe at once; false when the core asked to exit.
    fn feed(&mut self, input: Input) -> bool {
        self.queue.push_back(input);
        self.drain()
    }

    /// Steps the core with every queued observation; false on Exit.
    fn drain(&mut self) -> bool {
        while let Some(i) = self.queue.pop_front() {
            let actions = self.step(i);
            if !self.execute(actions) {
                return false;
            }
        }
        true
    }

    /// One step of the core; the durable state is written under its lock.
    fn step(&mut self, input: Input) -> Vec<Action> {
        if matches!(input, Input::Done(Done::Promoted { ok: Ok(()) })) {
            self.promoted();
        }
        self.count(&input);
        let cycle = matches!(input, Input::Local(_));
        if matches!(input, Input::Local(Some(_))) {
            if let Some(m) = self.writes_marks.pop_front() {
                self.writes_seen = m;
            }
        }
        let mut core = lock(&self.core);
        let actions = core.step(self.clock.now(), input);
        for a in &actions {
            if let Action::Persist(p) = a {
                if let Err(e) = self.persister.save(*p) {
                    crate::logging::log_error_report(&e);
                }
            }
        }
        drop(core);
        if cycle {
            self.notify_cycle();
            super::trim::after_cycle(&mut self.cycles);
        }
        actions
    }

    /// Carries out actions; false on Exit.
    fn execute(&mut self, actions: Vec<Action>) -> bool {
        for a in actions {
            match a {
                Action::Exit => return false,
                Action::ReadLocal => {
                    let began = Instant::now();
                    // Taken before the read: a write during it counts as
                    // one the facts may not show.
                    let mark = self.writes.count();
                    let facts = self.read_local();
                    self.note_cycle(began);
                    if facts.is_none() {
                        self.flush_pending();
                    } else {
                        self.writes_marks.push_back(mark);
                    }
                    self.queue.push_back(Input::Local(facts));
                }
                Action::Watch { node } => self.watch(node),
                Action::CheckUpstream { node, ping, seq } => self.check_upstream(node, ping, seq),
                Action::GatherCluster { down } => self.gather(down),
                Action::SendHeartbeats {
                    term,
                    to,
                    promoted,
                    local_must_answer,
                    fences,
                } => self.send_heartbeats(term, to, promoted, local_must_answer, fences),
                Action::RequestVotes {
                    request,
                    to,
                    needed,
                } => self.request_votes(request, to, needed),
                Action::Promote { .. }
                | Action::Follow { .. }
                | Action::Fence { .. }
                | Action::Unfence { .. }
                | Action::Rejoin { .. } => self.job(a),
                Action::PrepareAsStandby { target } => self.prepare_as_standby(target),
                Action::EndStream { from, term } => self.end_stream(from, term),
                Action::Persist(_) | Action::Reply { .. } => {}
                Action::WriteStatus { upstream } => self.write_status(upstream),
                Action::SetActive { active } => self.set_active(active),
                Action::PublishFencing { fences } => self.publish_fencing(fences),
                Action::RecordUpstream { upstream } => self.record_upstream(upstream),
                Action::WitnessSync { primary, repoint } => self.witness_sync(primary, repoint),
                Action::Event {
                    name,
                    ok,
                    details,
                    primary_id,
                    on,
                } => self.event(name, ok, details, primary_id, on),
                Action::FenceHook { event } => self.fence_hook(event),
                Action::ChildrenDisconnected { details } => self.children_disconnected(details),
                Action::Log(level, msg) => log(level, &msg),
            }
        }
        true
    }

    fn watch(&mut self, node: Option<NodeId>) {
        self.watcher = None;
        self.watched = node;
        let Some(id) = node else { return };
        let Some(ci) = self.conninfo_of(id) else {
            return;
        };
        self.watch_gen += 1;
        self.watcher = watch::start(&ci, self.watch_gen, self.tx.clone());
    }

    fn conninfo_of(&self, id: NodeId) -> Option<ConnInfo> {
        let rec = self.nodes.iter().find(|n| n.node_id == id)?;
        ConnInfo::parse(&rec.conninfo).ok()
    }

    fn record(&self, id: NodeId) -> Option<NodeRecord> {
        self.nodes.iter().find(|n| n.node_id == id).cloned()
    }

    /// Posts an observation back to the main loop (from a worker).
    fn poster(&self) -> impl Fn(Input) + Send + Clone + 'static {
        let tx = self.tx.clone();
        move |i: Input| {
            let _ = tx.send(Wake::Core(Box::new(i)));
        }
    }

    /// As [`Driver::poster`], for observations that arrive together: the
    /// main loop wakes once for all of them.
    fn batch_poster(&self) -> impl Fn(Vec<Input>) + Send + Clone + 'static {
        let tx = self.tx.clone();
        move |inputs: Vec<Input>| match inputs.len() {
            0 => {}
            _ => {
                let _ = tx.send(Wake::CoreBatch(inputs));
            }
        }
    }

    fn shutdown(&mut self) {
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        self.watcher = None;
        // A stop requested by a signal ends every wait; the last writes
        // below get a moment of their own (shutdown::FINAL_WRITES).
        let (id, name) = (self.node_id(), self.cfg().node_name.clone());
        crate::shutdown::finish();
        self.recorder.stop(
            format!("repmgrd on node \"{name}\" (ID: {id}) terminating"),
            crate::shutdown::FINAL_WRITES + Duration::from_millis(200),
        );
        crate::log_notice!("repmgrd terminating");
    }
}

fn log(level: Level, msg: &str) {
    match level {
        Level::Debug => crate::log_debug!("{msg}"),
        Level::Info => crate::log_info!("{msg}"),
        Level::Notice => crate::log_notice!("{msg}"),
        Level::Warning => crate::log_warning!("{msg}"),
        Level::Error => crate::log_error!("{msg}"),
    }
}
