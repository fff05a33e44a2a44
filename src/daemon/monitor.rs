//! repmgrd's monitoring loop and failover, one thread owning all state.
//!
//! Each cycle (`monitor_interval_secs`) reads the local node in one query
//! and, on a standby, checks the upstream with a hard deadline. A watcher
//! thread holds an idle connection to the upstream, so a dead primary is
//! noticed the moment its socket closes; a hung one at the next check.
//! Losing the upstream starts `reconnect_attempts` × `reconnect_interval`
//! of retries, then an election (`election.rs`): the winner promotes, the
//! others find it by asking their siblings and follow it. Every wait is
//! bounded and reacts to SIGTERM/SIGINT at once.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use crate::db::Session;

use super::election::{self, ElectionInput, NodeView, Outcome};
use super::signals::{self, Wake};
use super::watch::{self, Watcher};
use crate::config::{self, Config, ConnectionCheckType, Failover, Loaded};
use crate::conninfo::ConnInfo;
use crate::db::reach::DAEMON_APP_NAME as APP_NAME;
use crate::db::{self, connect::Ping, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::logging;
use crate::ops::{follow as cli_follow, promote as cli_promote};
use crate::pgtools::PgBin;
use crate::process;

/// How often a waiting loser checks whether the winner is primary yet.
const WINNER_POLL: Duration = Duration::from_millis(50);
/// How often a waiting loser rescans every sibling.
const SIBLING_SCAN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Primary,
    Standby,
    /// A witness: watches the primary, keeps a copy of the node records,
    /// never promotes or follows.
    Witness,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The upstream a standby streams from.
struct Link {
    rec: NodeRecord,
    ci: ConnInfo,
    /// For `connection_check_type=query`.
    conn: Option<Session>,
}

/// Monitoring goes on, but something is wrong and no action is possible now.
struct Degraded {
    since: Instant,
    /// The upstream that was lost, if that is why.
    lost_upstream: Option<NodeRecord>,
    next_election: Option<Instant>,
}

pub struct Monitor {
    loaded: Loaded,
    conninfo: ConnInfo,
    bin: PgBin,
    pid: i32,
    pid_file: Option<String>,
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
    local: Option<Session>,
    local_down: bool,
    role: Role,
    link: Option<Link>,
    watch_gen: u64,
    watcher: Option<Watcher>,
    /// A connection to the primary, for heartbeats, history and events.
    writer: Option<(i32, Session)>,
    degraded: Option<Degraded>,
    last_status_log: Instant,
    last_child_check: Instant,
    children: HashMap<i32, bool>,
    children_missing_since: Option<Instant>,
    pending_reload: bool,
    // Split-brain protection (fencing.rs).
    fenced: Option<fencing::Fence>,
    isolated_since: Option<Instant>,
    /// Check the other nodes for a newer primary at the next cycle (set at
    /// start and whenever the local server comes back).
    suspect_supersession: bool,
    /// The data directory was prepared to come back as a standby of this node.
    prepared_for: Option<i32>,
    /// What the local server last said, for when it is down.
    last_timeline: Option<u32>,
    last_term: Option<i32>,
    last_version: Option<i32>,
    known_nodes: Vec<NodeRecord>,
    /// auto_rejoin is not retried before this instant.
    rejoin_after: Option<Instant>,
    /// When the prepared server was first seen back as a standby.
    prepared_back_since: Option<Instant>,
    /// When the local facts above were last read.
    facts_at: Option<Instant>,
    witness: WitnessState,
}

/// What repmgrd in witness mode remembers between cycles.
#[derive(Default)]
struct WitnessState {
    /// The primary this witness's record points at.
    upstream: Option<i32>,
    /// When the node records were last copied from the primary.
    last_sync: Option<Instant>,
    /// Since when no primary has been reachable.
    lost_since: Option<Instant>,
}

mod fencing;

impl Monitor {
    pub fn new(
        loaded: Loaded,
        conninfo: ConnInfo,
        bin: PgBin,
        pid_file: Option<String>,
        channel: (Sender<Wake>, Receiver<Wake>),
    ) -> Monitor {
        Monitor {
            loaded,
            conninfo,
            bin,
            pid: std::process::id() as i32,
            pid_file,
            tx: channel.0,
            rx: channel.1,
            local: None,
            local_down: false,
            role: Role::Unknown,
            link: None,
            watch_gen: 0,
            watcher: None,
            writer: None,
            degraded: None,
            last_status_log: Instant::now(),
            last_child_check: Instant::now(),
            children: HashMap::new(),
            children_missing_since: None,
            pending_reload: false,
            fenced: None,
            isolated_since: None,
            suspect_supersession: true,
            prepared_for: None,
            last_timeline: None,
            last_term: None,
            last_version: None,
            known_nodes: Vec::new(),
            rejoin_after: None,
            prepared_back_since: None,
            facts_at: None,
            witness: WitnessState::default(),
        }
    }

    fn cfg(&self) -> &Config {
        &self.loaded.config
    }
    fn node_id(&self) -> i32 {
        self.cfg().node_id.unwrap_or_default()
    }
    fn node_name(&self) -> String {
        self.cfg().node_name.clone()
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(self.cfg().monitor_interval_secs.max(1) as u64)
    }

    /// Connects, announces itself, and runs until stopped.
    pub fn run(&mut self) -> Result<()> {
        let (id, name) = (self.node_id(), self.node_name());
        let mut local = db::connect::connect(&self.conninfo, APP_NAME).map_err(|e| {
            Error::new(
                e.code,
                format!("unable to connect to local node \"{name}\" (ID: {id})"),
            )
            .detail(e.reason().to_string())
            .hint("check the node is running and the conninfo in repmgr.conf is correct")
        })?;
        let me = if db::schema::exists(&mut local)? {
            db::nodes::get(&mut local, id)?
        } else {
            None
        };
        let Some(me) = me else {
            return Err(Error::config(format!("no metadata record found for this node (ID: {id})"))
                .hint("check that \"repmgr primary register\" or \"repmgr standby register\" was executed for this node"));
        };
        self.refuse_second_daemon(&mut local)?;
        let in_recovery = db::server::in_recovery(&mut local)?;
        self.role = if me.node_type == NodeType::Witness {
            self.witness.upstream = me.upstream_node_id;
            Role::Witness
        } else if in_recovery {
            Role::Standby
        } else {
            Role::Primary
        };
        self.local = Some(local);
        crate::log_notice!(
            "starting monitoring of node \"{name}\" (ID: {id}), running as {}",
            match self.role {
                Role::Witness => "witness",
                _ if in_recovery => "standby",
                _ => "primary",
            }
        );
        if me.node_type == NodeType::Witness {
            crate::log_notice!("this node is a witness: it is monitored, and never promoted");
        }
        if self.cfg().failover == Failover::Automatic && in_recovery {
            crate::log_info!(
                "failover is automatic: the upstream is declared failed after {} reconnection attempt(s) {} s apart",
                self.cfg().reconnect_attempts,
                self.cfg().reconnect_interval
            );
        }
        let nodes = local_nodes_of(self.local.as_mut());
        self.explain_split_brain_protection(&nodes)?;
        self.ensure_writer();
        if let Some((_, w)) = self.writer.as_mut() {
            if db::daemon_status::table_exists(w).unwrap_or(false) {
                let host = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let interval = self.loaded.config.monitor_interval_secs;
                if let Err(e) = db::daemon_status::register_start(
                    w,
                    id,
                    self.pid,
                    self.pid_file.as_deref(),
                    &host,
                    interval,
                ) {
                    crate::log_warning!("unable to record repmgrd's status: {}", e.reason());
                }
            }
        }
        self.event(
            "repmgrd_start",
            true,
            format!("monitoring connection to node \"{name}\" (ID: {id}) established"),
            None,
        );

        let mut next_tick = Instant::now();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match signals::wait(&self.rx, wait) {
                Some(Wake::Stop(sig)) => {
                    crate::log_notice!("{sig} received: terminating");
                    break;
                }
                Some(Wake::Reload) => {
                    self.reload();
                    continue;
                }
                Some(Wake::UpstreamLost(g)) if g == self.watch_gen && self.link.is_some() => {
                    crate::log_warning!("connection to the upstream node was lost");
                    if self.handle_upstream_loss(None) == Flow::Stop {
                        break;
                    }
                    next_tick = Instant::now();
                    continue;
                }
                Some(Wake::UpstreamLost(_)) => continue,
                None => {}
            }
            next_tick = Instant::now() + self.interval();
            if self.tick() == Flow::Stop {
                break;
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Says at start what protects this cluster from split brain, and
    /// refuses timing settings under which an isolated primary could still
    /// take writes after a standby was promoted.
    fn explain_split_brain_protection(&mut self, nodes: &[NodeRecord]) -> Result<()> {
        let cfg = self.cfg().clone();
        if cfg.failover_quorum == crate::config::FailoverQuorum::Repmgr {
            crate::log_warning!(
                "failover_quorum=repmgr: repmgr's quorum rule is in force; a network partition can leave two primaries"
            );
            return Ok(());
        }
        let voters = nodes.iter().filter(|n| n.is_voter()).count();
        if voters == 2 && cfg.failover == Failover::Automatic {
            crate::log_notice!(
                "this cluster has two voters and no witness: automatic failover needs a majority and will not happen"
            );
            crate::log_hint!("register a witness, or set failover_quorum=repmgr to accept repmgr's split-brain risk");
        }
        if let Err(why) = fencing::check_fencing_timing(&cfg) {
            if cfg.primary_isolation_timeout >= 0 {
                return Err(Error::config("primary_isolation_timeout is too long to fence an isolated primary in time")
                    .detail(why)
                    .hint("lower primary_isolation_timeout, or raise reconnect_attempts or reconnect_interval"));
            }
            crate::log_warning!(
                "an isolated primary may not be fenced before a standby is promoted"
            );
            crate::log_detail!("{why}");
            crate::log_hint!(
                "raise reconnect_attempts or reconnect_interval, or lower monitor_interval_secs"
            );
        } else {
            crate::log_info!(
                "an isolated primary fences itself after {} s without a majority",
                fencing::isolation_timeout(&cfg).as_secs()
            );
        }
        Ok(())
    }

    /// Another live repmgrd on this host already monitors this node.
    fn refuse_second_daemon(&mut self, local: &mut Session) -> Result<()> {
        let id = self.node_id();
        let rows = db::daemon_status::all(local).unwrap_or_default();
        let Some(row) = rows.into_iter().find(|r| r.node_id == id) else {
            return Ok(());
        };
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(pid) = row.pid {
            let same_host = row.hostname.as_deref() == Some(host.as_str());
            let alive = pid != self.pid
                && !matches!(
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                    Err(nix::errno::Errno::ESRCH)
                );
            if same_host && alive && row.is_running() {
                return Err(Error::new(
                    ExitCode::BadPidfile,
                    format!(
                        "repmgrd (PID {pid}) is already running for node \"{}\" (ID: {id})",
                        self.node_name()
                    ),
                )
                .hint("stop that repmgrd first; only one repmgrd may monitor a node"));
            }
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        self.watcher = None;
        let (id, name) = (self.node_id(), self.node_name());
        self.ensure_writer();
        if let Some((_, w)) = self.writer.as_mut() {
            let _ = db::daemon_status::register_stop(w, id);
        }
        self.event(
            "repmgrd_shutdown",
            true,
            format!("repmgrd on node \"{name}\" (ID: {id}) terminating"),
            None,
        );
        crate::log_notice!("repmgrd terminating");
    }

    /// Sleeps while staying responsive: a stop ends the wait at once, a
    /// reload is applied at the next cycle.
    fn sleep(&mut self, d: Duration) -> Flow {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Flow::Continue;
            }
            match signals::wait(&self.rx, left) {
                Some(Wake::Stop(sig)) => {
                    crate::log_notice!("{sig} received: terminating");
                    return Flow::Stop;
                }
                Some(Wake::Reload) => self.pending_reload = true,
                Some(Wake::UpstreamLost(_)) | None => {}
            }
        }
    }

    // ---------------------------------------------------------------- cycle

    fn tick(&mut self) -> Flow {
        if self.pending_reload {
            self.pending_reload = false;
            self.reload();
        }
        if !self.ensure_local() {
            self.prepare_while_down();
            return Flow::Continue;
        }
        let id = self.node_id();
        let state = match self
            .local
            .as_mut()
            .map(|c| db::monitoring::local_state(c, id))
        {
            Some(Ok(s)) => s,
            _ => {
                self.local = None;
                return Flow::Continue;
            }
        };
        let flow = if self.role == Role::Witness {
            self.witness_tick()
        } else if state.in_recovery {
            self.standby_tick(&state)
        } else {
            self.primary_tick();
            Flow::Continue
        };
        if self.last_status_log.elapsed()
            >= Duration::from_secs(self.cfg().log_status_interval.max(1) as u64)
        {
            self.last_status_log = Instant::now();
            self.log_status(&state);
        }
        flow
    }

    fn log_status(&self, state: &db::monitoring::LocalState) {
        let (id, name) = (self.node_id(), self.node_name());
        if self.role == Role::Witness {
            match self.witness.upstream.filter(|_| self.witness.lost_since.is_none()) {
                Some(p) => crate::log_info!(
                    "witness node \"{name}\" (ID: {id}) monitoring primary node {p} in normal state"
                ),
                None => crate::log_info!(
                    "witness node \"{name}\" (ID: {id}) monitoring in degraded state: no primary reachable"
                ),
            }
            return;
        }
        match (&self.link, &self.degraded) {
            (_, Some(_)) => {
                crate::log_info!("node \"{name}\" (ID: {id}) monitoring in degraded state")
            }
            (Some(l), None) if state.in_recovery => crate::log_info!(
                "node \"{name}\" (ID: {id}) monitoring upstream node {} in normal state",
                l.rec
            ),
            _ => crate::log_info!("monitoring primary node \"{name}\" (ID: {id}) in normal state"),
        }
    }

    /// Keeps a working local connection; reports the local server going
    /// away and coming back.
    fn ensure_local(&mut self) -> bool {
        let healthy = self
            .local
            .as_mut()
            .is_some_and(|c| c.is_valid(Duration::from_secs(2)).is_ok());
        if healthy {
            return true;
        }
        self.local = db::connect::connect(&self.conninfo, APP_NAME).ok();
        let (id, name) = (self.node_id(), self.node_name());
        match (self.local.is_some(), self.local_down) {
            (true, true) => {
                self.local_down = false;
                self.suspect_supersession = true;
                crate::log_notice!("reconnected to local node \"{name}\" (ID: {id})");
                if self.role == Role::Standby {
                    self.set_own_active(true);
                    self.event(
                        "standby_recovery",
                        true,
                        format!("local standby \"{name}\" (ID: {id}) has recovered"),
                        None,
                    );
                } else {
                    self.event(
                        "repmgrd_local_reconnect",
                        true,
                        format!("reconnected to local node \"{name}\" (ID: {id})"),
                        None,
                    );
                }
                true
            }
            (true, false) => true,
            (false, false) => {
                self.local_down = true;
                crate::log_warning!("unable to connect to local node \"{name}\" (ID: {id})");
                if self.role == Role::Standby {
                    self.set_own_active(false);
                    self.event(
                        "standby_failure",
                        false,
                        format!("unable to connect to local standby \"{name}\" (ID: {id})"),
                        None,
                    );
                } else {
                    self.event(
                        "repmgrd_local_disconnect",
                        false,
                        format!("unable to connect to local node \"{name}\" (ID: {id})"),
                        None,
                    );
                }
                false
            }
            (false, true) => false,
        }
    }

    fn set_own_active(&mut self, active: bool) {
        let id = self.node_id();
        self.ensure_writer();
        if let Some((_, w)) = self.writer.as_mut() {
            if let Err(e) = db::nodes::set_active(w, id, active) {
                crate::log_warning!("unable to update this node's record: {}", e.reason());
            }
        }
    }

    // -------------------------------------------------------------- primary

    fn primary_tick(&mut self) {
        if self.role == Role::Standby {
            crate::log_notice!("local node is now a primary; monitoring it as such");
        }
        self.role = Role::Primary;
        self.link = None;
        self.watcher = None;
        self.degraded = None;
        let id = self.node_id();
        if let Some(local) = self.local.as_mut() {
            let _ = db::daemon_status::heartbeat(local, id, self.pid, None, false);
        }
        self.writer = None; // the local connection is the writer on a primary
        self.remember_local_facts();
        if self.protect_primary() {
            return;
        }
        let every = self.cfg().child_nodes_check_interval;
        if every > 0 && self.last_child_check.elapsed() >= Duration::from_secs(every as u64) {
            self.last_child_check = Instant::now();
            self.check_children();
        }
    }

    /// Facts needed to recognise a promotion elsewhere while the local
    /// server is down.
    fn remember_local_facts(&mut self) {
        // A promotion elsewhere changes none of these faster than this.
        if self
            .facts_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.facts_at = Some(Instant::now());
        let Some(c) = self.local.as_mut() else { return };
        if let Ok(p) = db::timeline::position(c) {
            self.last_timeline = Some(p.timeline);
        }
        self.last_term = db::fence::voting_term(c).ok();
        self.last_version = db::server::version_num(c).ok();
        if let Ok(n) = db::nodes::all(c) {
            self.known_nodes = n;
        }
    }

    /// The primary watches its registered downstream nodes (child_nodes_*).
    fn check_children(&mut self) {
        let id = self.node_id();
        let Some(local) = self.local.as_mut() else {
            return;
        };
        let Ok(children) = db::nodes::downstream_of(local, id) else {
            return;
        };
        let Ok(attached) = db::server::attached_standbys(local) else {
            return;
        };
        let include_witness = self.loaded.config.child_nodes_connected_include_witness;
        let mut events_to_send = Vec::new();
        let mut missing = 0;
        let mut connected = 0;
        for c in &children {
            if c.node_type == NodeType::Witness && !include_witness {
                continue;
            }
            // A witness connects by SQL, not by streaming: count it as attached.
            let now_attached = c.node_type == NodeType::Witness || attached.contains(&c.node_name);
            match (self.children.get(&c.node_id).copied(), now_attached) {
                (Some(true), false) => {
                    events_to_send.push(("child_node_disconnect", c.clone(), "has disconnected"))
                }
                (Some(false), true) => {
                    events_to_send.push(("child_node_reconnect", c.clone(), "has reconnected"))
                }
                (None, true) => {
                    events_to_send.push(("child_node_new_connect", c.clone(), "has connected"))
                }
                _ => {}
            }
            self.children.insert(c.node_id, now_attached);
            if now_attached {
                connected += 1;
            } else {
                missing += 1;
            }
        }
        for (ev, c, what) in events_to_send {
            let details = format!("node {} {what}", c);
            crate::log_notice!("{details}");
            self.event(ev, true, details, Some(id));
        }
        self.check_children_threshold(missing, connected);
    }

    /// `child_nodes_disconnect_command` when too many children are gone for
    /// longer than `child_nodes_disconnect_timeout`.
    fn check_children_threshold(&mut self, missing: i32, connected: i32) {
        let cfg = self.cfg().clone();
        let too_many_missing = cfg.child_nodes_disconnect_min_count >= 0
            && missing >= cfg.child_nodes_disconnect_min_count
            && missing > 0;
        let too_few_connected = cfg.child_nodes_connected_min_count >= 0
            && connected < cfg.child_nodes_connected_min_count;
        if !(too_many_missing || too_few_connected) {
            self.children_missing_since = None;
            return;
        }
        let since = *self.children_missing_since.get_or_insert_with(Instant::now);
        if since.elapsed() < Duration::from_secs(cfg.child_nodes_disconnect_timeout.max(0) as u64) {
            return;
        }
        self.children_missing_since = None;
        let details = format!("{missing} child node(s) disconnected, {connected} connected");
        crate::log_warning!("{details}");
        if !cfg.child_nodes_disconnect_command.trim().is_empty() {
            let cmd = crate::hooks::expand(
                &cfg.child_nodes_disconnect_command,
                &[('p', crate::hooks::plain(self.node_id()))],
            );
            match process::run(
                process::shell(&cmd),
                Duration::from_secs(60),
                "child_nodes_disconnect_command",
            ) {
                Ok(o) if o.success() => {}
                Ok(o) => crate::log_warning!(
                    "child_nodes_disconnect_command returned {}",
                    process::describe_status(&o.status)
                ),
                Err(e) => logging::log_error_report(&e),
            }
        }
        self.event("child_nodes_disconnect_command", true, details, None);
    }

    // -------------------------------------------------------------- witness

    /// Witness mode (repmgr's `monitor_streaming_witness`): keep a
    /// connection to whichever node is primary, point this witness's record
    /// at it, heartbeat, and copy its node records every
    /// `witness_sync_interval`. A witness never promotes or follows; it
    /// only has to stay visible to the standbys' elections.
    fn witness_tick(&mut self) -> Flow {
        let id = self.node_id();
        // A writer that fell into recovery (switchover) is no primary.
        if let Some((_, w)) = self.writer.as_mut() {
            if !matches!(db::server::in_recovery(w), Ok(false)) {
                self.writer = None;
            }
        }
        self.ensure_writer();
        let Some(primary_id) = self.writer.as_ref().map(|(p, _)| *p) else {
            if self.witness.lost_since.is_none() {
                self.witness.lost_since = Some(Instant::now());
                let up = self.witness.upstream.unwrap_or_default();
                crate::log_warning!("unable to connect to the primary (node {up})");
                self.event(
                    "repmgrd_upstream_disconnect",
                    false,
                    format!("witness lost connection to primary node {up}"),
                    None,
                );
            }
            return Flow::Continue;
        };
        let lost_since = self.witness.lost_since.take();
        if self.witness.upstream != Some(primary_id) {
            self.witness_repoint(primary_id);
        } else if let Some(since) = lost_since {
            crate::log_notice!(
                "reconnected to primary node {primary_id} after {} seconds",
                since.elapsed().as_secs()
            );
            self.event(
                "repmgrd_upstream_reconnect",
                true,
                format!("witness reconnected to primary node {primary_id}"),
                None,
            );
        }
        let pid = self.pid;
        if let Some((_, w)) = self.writer.as_mut() {
            if db::daemon_status::heartbeat(w, id, pid, Some(primary_id), true).is_err() {
                self.writer = None;
                return Flow::Continue;
            }
        }
        let every = Duration::from_secs(self.cfg().witness_sync_interval.max(1) as u64);
        if self.witness.last_sync.is_none_or(|t| t.elapsed() >= every) {
            self.witness_sync();
        }
        Flow::Continue
    }

    /// After a failover: the witness's record on the new primary points at
    /// it, and the copy is refreshed at once.
    fn witness_repoint(&mut self, primary_id: i32) {
        let (id, name) = (self.node_id(), self.node_name());
        let Some((_, w)) = self.writer.as_mut() else {
            return;
        };
        let primary_name = db::nodes::get(w, primary_id)
            .ok()
            .flatten()
            .map(|n| n.node_name)
            .unwrap_or_default();
        match db::nodes::set_witness_upstream(w, id, primary_id) {
            Ok(true) => {}
            Ok(false) => {
                crate::log_warning!(
                    "this witness (ID: {id}) has no witness record on node {primary_id}"
                );
                return;
            }
            Err(e) => {
                crate::log_warning!("unable to update this witness's record: {}", e.reason());
                self.writer = None;
                return;
            }
        }
        let first = self.witness.upstream.is_none();
        self.witness.upstream = Some(primary_id);
        self.witness.last_sync = None;
        if first {
            return;
        }
        let details = format!(
            "witness node \"{name}\" (ID: {id}) now monitoring new primary \"{primary_name}\" (ID: {primary_id})"
        );
        crate::log_notice!("{details}");
        self.event("repmgrd_failover_follow", true, details, Some(primary_id));
    }

    /// Copies the primary's node records into the witness's own metadata.
    fn witness_sync(&mut self) {
        let (Some((_, w)), Some(l)) = (self.writer.as_mut(), self.local.as_mut()) else {
            return;
        };
        match crate::ops::witness::copy_node_records(w, l) {
            Ok(n) => {
                crate::log_debug!("copied {n} node record(s) from the primary");
                self.witness.last_sync = Some(Instant::now());
            }
            Err(e) => crate::log_warning!(
                "unable to copy the node records from the primary: {}",
                e.reason()
            ),
        }
    }

    // -------------------------------------------------------------- standby

    fn standby_tick(&mut self, state: &db::monitoring::LocalState) -> Flow {
        if self.role == Role::Primary {
            crate::log_notice!("local node is now a standby; monitoring its upstream");
        }
        self.role = Role::Standby;
        if self.after_preparation() {
            return Flow::Continue;
        }
        if self.link.is_none() && self.degraded.is_none() {
            self.attach_link();
        }
        let check_started = Instant::now();
        let up_ok = match self.link.as_ref() {
            Some(_) => self.check_upstream(),
            None => false,
        };
        if up_ok {
            if let Some(d) = self.degraded.take() {
                let (uid, uname) = self
                    .link
                    .as_ref()
                    .map(|l| (l.rec.node_id, l.rec.node_name.clone()))
                    .unwrap_or_default();
                crate::log_notice!(
                    "reconnected to upstream node \"{uname}\" (ID: {uid}) after {} seconds",
                    d.since.elapsed().as_secs()
                );
                self.event(
                    "repmgrd_upstream_reconnect",
                    true,
                    format!("reconnected to upstream node \"{uname}\" (ID: {uid})"),
                    None,
                );
            }
            if self.watcher.is_none() {
                self.start_watcher();
            }
            self.heartbeat_and_history(state);
            return Flow::Continue;
        }
        if self.degraded.is_some() {
            return self.degraded_tick();
        }
        if self.link.is_none() {
            crate::log_warning!("no upstream node found for this standby");
            self.degraded = Some(Degraded {
                since: Instant::now(),
                lost_upstream: None,
                next_election: None,
            });
            return Flow::Continue;
        }
        self.handle_upstream_loss(Some(check_started))
    }

    /// Finds this standby's upstream from its own (replicated) metadata.
    fn attach_link(&mut self) {
        let id = self.node_id();
        let Some(local) = self.local.as_mut() else {
            return;
        };
        let Ok(nodes) = db::nodes::all(local) else {
            return;
        };
        let me = nodes.iter().find(|n| n.node_id == id);
        let mut upstream = me
            .and_then(|me| me.upstream_node_id)
            .and_then(|u| nodes.iter().find(|n| n.node_id == u))
            .or_else(|| {
                nodes
                    .iter()
                    .find(|n| n.node_type == NodeType::Primary && n.active && n.node_id != id)
            })
            .cloned();
        if upstream.is_none() {
            // A stale copy (say, a former primary restarted as a standby):
            // ask the other nodes which of them is the primary.
            let others: Vec<NodeRecord> = nodes
                .iter()
                .filter(|n| n.node_id != id && n.node_type != NodeType::Witness)
                .cloned()
                .collect();
            upstream = db::reach::reach_all(&others)
                .into_iter()
                .find(|r| r.in_recovery == Some(false))
                .map(|r| r.node);
        }
        if let Some(rec) = upstream {
            if let Ok(ci) = ConnInfo::parse(&rec.conninfo) {
                crate::log_info!("monitoring upstream node {}", rec);
                self.link = Some(Link {
                    rec,
                    ci,
                    conn: None,
                });
                self.writer = None;
                self.start_watcher();
            }
        }
    }

    fn start_watcher(&mut self) {
        self.watch_gen += 1;
        self.watcher = self
            .link
            .as_ref()
            .and_then(|l| watch::start(&l.ci, self.watch_gen, self.tx.clone()));
    }

    /// One check of the upstream, by `connection_check_type`, bounded by
    /// the conninfo's connect_timeout.
    fn check_upstream(&mut self) -> bool {
        let kind = self.cfg().connection_check_type;
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        match kind {
            ConnectionCheckType::Ping => db::connect::ping(&link.ci, APP_NAME) == Ping::Ok,
            ConnectionCheckType::Connection => db::connect::connect(&link.ci, APP_NAME).is_ok(),
            ConnectionCheckType::Query => {
                let ok = link
                    .conn
                    .as_mut()
                    .is_some_and(|c| c.is_valid(Duration::from_secs(2)).is_ok());
                if ok {
                    return true;
                }
                link.conn = db::connect::connect(&link.ci, APP_NAME).ok();
                link.conn.is_some()
            }
        }
    }

    /// Whether the upstream answers at all (used while retrying).
    fn upstream_alive(&self, rec: &NodeRecord) -> bool {
        ConnInfo::parse(&rec.conninfo)
            .map(|ci| db::connect::ping(&ci, APP_NAME) == Ping::Ok)
            .unwrap_or(false)
    }

    /// A connection to the current primary for writes.
    fn ensure_writer(&mut self) {
        if let Some((_, w)) = self.writer.as_mut() {
            if w.is_valid(Duration::from_secs(2)).is_ok() {
                return;
            }
        }
        self.writer = None;
        if self.role == Role::Primary {
            if let Ok(c) = db::connect::connect(&self.conninfo, APP_NAME) {
                self.writer = Some((self.node_id(), c));
            }
            return;
        }
        if self.local.is_none() {
            self.local = db::connect::connect(&self.conninfo, APP_NAME).ok();
        }
        let Some(local) = self.local.as_mut() else {
            return;
        };
        if let Ok(Some((rec, c))) = db::reach::find_primary(local) {
            self.writer = Some((rec.node_id, c));
        }
    }

    fn heartbeat_and_history(&mut self, state: &db::monitoring::LocalState) {
        let (id, pid) = (self.node_id(), self.pid);
        let upstream = self.link.as_ref().map(|l| l.rec.node_id);
        let history = self.cfg().monitoring_history;
        // The heartbeat itself tells whether the writer still works (a
        // failure drops it); no separate validity round trip per cycle.
        if self.writer.is_none() {
            self.ensure_writer();
        }
        let Some((primary_id, w)) = self.writer.as_mut() else {
            return;
        };
        if db::daemon_status::heartbeat(w, id, pid, upstream, true).is_err() {
            self.writer = None;
            return;
        }
        if history {
            if let (Some(recv), Some(replay)) = (state.receive_lsn, state.replay_lsn) {
                let primary_id = *primary_id;
                if let Err(e) = db::monitoring::insert_history(
                    w,
                    primary_id,
                    id,
                    recv,
                    replay,
                    state.last_replay.as_deref(),
                ) {
                    crate::log_warning!("unable to write monitoring history: {}", e.reason());
                }
            }
        }
    }

    // ------------------------------------------------------------- failover

    /// The upstream stopped answering: retry, then fail over (a primary) or
    /// re-attach to the primary (an upstream standby).
    /// `failed_check_started`: when the check that just failed began (it
    /// counts as the first attempt); None when the watcher saw the
    /// connection close.
    fn handle_upstream_loss(&mut self, failed_check_started: Option<Instant>) -> Flow {
        let Some(up) = self.link.as_ref().map(|l| l.rec.clone()) else {
            return Flow::Continue;
        };
        self.watcher = None;
        if self
            .writer
            .as_ref()
            .is_some_and(|(wid, _)| *wid == up.node_id)
        {
            self.writer = None;
        }
        crate::log_warning!("unable to connect to upstream node {}", up);
        self.event(
            "repmgrd_upstream_disconnect",
            false,
            format!("lost connection to upstream node {}", up),
            None,
        );
        // Attempts are scheduled by the clock, `reconnect_interval` apart
        // from the first failure, so a hung upstream (each attempt waiting
        // out its connect deadline) does not stretch the window further.
        let attempts = self.cfg().reconnect_attempts.max(0);
        let interval = Duration::from_secs(self.cfg().reconnect_interval.max(0) as u64);
        let start = failed_check_started.unwrap_or_else(Instant::now);
        let first = if failed_check_started.is_some() { 2 } else { 1 };
        for attempt in first..=attempts {
            let due = start + interval * (attempt - 1) as u32;
            if self.sleep(due.saturating_duration_since(Instant::now())) == Flow::Stop {
                return Flow::Stop;
            }
            crate::log_info!(
                "checking state of node {}, {attempt} of {attempts} attempts",
                up
            );
            if self.upstream_alive(&up) {
                crate::log_notice!("node {} has recovered, reconnecting", up);
                self.start_watcher();
                self.event(
                    "repmgrd_upstream_reconnect",
                    true,
                    format!("reconnected to upstream node {}", up),
                    None,
                );
                return Flow::Continue;
            }
        }
        crate::log_warning!(
            "unable to reconnect to node {} after {attempts} attempts",
            up
        );
        if up.node_type == NodeType::Primary {
            self.failover(&up)
        } else {
            self.reattach_to_primary(&up)
        }
    }

    /// Whether the local WAL receiver streams (got a message within two
    /// cycles).
    fn local_streams(&mut self) -> bool {
        if self.local.is_none() {
            self.local = db::connect::connect(&self.conninfo, APP_NAME).ok();
        }
        let window = 2.0 * self.interval().as_secs_f64() + 1.0;
        self.local
            .as_mut()
            .and_then(|c| db::monitoring::receiver_recently_active(c, window).ok())
            .unwrap_or(false)
    }

    fn local_paused(&mut self) -> bool {
        let id = self.node_id();
        self.local
            .as_mut()
            .and_then(|c| db::daemon_status::is_paused(c, id).ok())
            .unwrap_or(false)
    }

    /// Everything the election needs, gathered in parallel.
    /// Everything the election needs, gathered in parallel: every other
    /// voter is contacted (visibility, WAL position, timeline and term);
    /// the siblings (nodes that shared the failed upstream) are the
    /// candidates.
    fn gather(&mut self, failed: &NodeRecord) -> Option<(ElectionInput, Vec<NodeRecord>)> {
        let id = self.node_id();
        let paused = self.local_paused();
        let local = self.local.as_mut()?;
        let nodes = db::nodes::all(local).ok()?;
        let me_rec = nodes.iter().find(|n| n.node_id == id)?.clone();
        let my_pos = db::timeline::position(local).ok()?;
        let my_term = db::fence::voting_term(local).unwrap_or(0);
        let is_voter = |n: &&NodeRecord| n.is_voter();
        let others: Vec<NodeRecord> = nodes
            .iter()
            .filter(is_voter)
            .filter(|n| n.node_id != id && n.node_id != failed.node_id)
            .cloned()
            .collect();
        // The failed primary counts as a voter even though it cannot answer.
        let voters = others.len() + 2;
        let window = 2.0 * self.interval().as_secs_f64();
        let mut visible_voters = 1;
        let mut newer_history = None;
        let mut views = Vec::new();
        for mut r in db::reach::reach_all(&others) {
            let visible = r.conn.is_some();
            let mut lsn = 0;
            let mut sees = false;
            if let Some(c) = r.conn.as_mut() {
                visible_voters += 1;
                if let Ok(pos) = db::timeline::position(c) {
                    lsn = pos.lsn;
                    let term = db::fence::voting_term(c).unwrap_or(0);
                    let data_node = r.node.node_type != NodeType::Witness;
                    if data_node
                        && (pos.timeline > my_pos.timeline || term > my_term)
                        && newer_history.is_none()
                    {
                        newer_history = Some(r.node.node_id);
                    }
                }
                sees = r.in_recovery == Some(true)
                    && db::monitoring::receiver_recently_active(c, window).unwrap_or(false);
            }
            // Candidates: every active standby (and the witness, a voter
            // but never a candidate), not only those whose record names the
            // failed node as upstream: records can lag behind a failover
            // that happened moments ago, and the ranking by WAL position is
            // what keeps the best one.
            if r.node.node_type == NodeType::Primary {
                continue;
            }
            views.push(NodeView {
                node_id: r.node.node_id,
                node_type: r.node.node_type,
                priority: r.node.priority,
                location: r.node.location.clone(),
                visible,
                in_recovery: r.in_recovery,
                lsn,
                sees_primary: sees,
            });
        }
        let input = ElectionInput {
            me: NodeView {
                node_id: id,
                node_type: me_rec.node_type,
                priority: me_rec.priority,
                location: me_rec.location.clone(),
                visible: true,
                in_recovery: Some(true),
                lsn: my_pos.lsn,
                sees_primary: false,
            },
            primary_location: failed.location.clone(),
            siblings: views,
            failover: self.cfg().failover,
            paused,
            primary_visibility_consensus: self.cfg().primary_visibility_consensus,
            quorum: self.cfg().failover_quorum,
            voters,
            visible_voters,
            newer_history,
        };
        Some((input, nodes))
    }

    /// Claims the next voting term before promoting: an advisory lock for
    /// that term on the server of every voter that answers, in node_id
    /// order. A lock is a vote; a voter grants one per term. Two candidates
    /// (who disagree about the ranking) can then never both collect a
    /// majority. The locks are held (returned connections) until the
    /// promotion is recorded.
    fn claim_term(
        &mut self,
        nodes: &[NodeRecord],
        failed: &NodeRecord,
        input: &ElectionInput,
    ) -> Option<Vec<Session>> {
        let id = self.node_id();
        let term = self
            .local
            .as_mut()
            .and_then(|c| db::fence::voting_term(c).ok())?
            + 1;
        let mut voters: Vec<&NodeRecord> = nodes
            .iter()
            .filter(|n| n.is_voter() && n.node_id != failed.node_id)
            .collect();
        voters.sort_by_key(|n| n.node_id);
        // Connect to every voter at once (one connect deadline in total),
        // then ask for the votes in node_id order, so two candidates never
        // each hold a part of the voters waiting for the rest.
        let others: Vec<NodeRecord> = voters
            .iter()
            .filter(|n| n.node_id != id)
            .map(|n| (*n).clone())
            .collect();
        let mut conns: Vec<(i32, Session)> = db::reach::reach_all(&others)
            .into_iter()
            .filter_map(|r| r.conn.map(|c| (r.node.node_id, c)))
            .collect();
        if let Ok(c) = db::connect::connect(&self.conninfo, APP_NAME) {
            conns.push((id, c));
        }
        conns.sort_by_key(|(nid, _)| *nid);
        let mut held = Vec::new();
        for (nid, mut c) in conns {
            match db::fence::try_claim(&mut c, term) {
                Ok(true) => held.push(c),
                Ok(false) => crate::log_info!(
                    "node {nid} has already granted term {term} to another candidate"
                ),
                Err(e) => crate::log_info!("node {nid} cannot vote: {}", e.message()),
            }
        }
        let granted = held.len();
        let enough = match input.quorum {
            crate::config::FailoverQuorum::Majority => granted * 2 > input.voters,
            crate::config::FailoverQuorum::Repmgr => granted >= input.visible_voters,
        };
        crate::log_info!(
            "claim of voting term {term}: {granted} of {} voters granted",
            input.voters
        );
        enough.then_some(held)
    }

    fn failover(&mut self, failed: &NodeRecord) -> Flow {
        let Some((input, nodes)) = self.gather(failed) else {
            crate::log_warning!("unable to gather the cluster state for an election");
            self.enter_degraded(Some(failed.clone()), true);
            return Flow::Continue;
        };
        let outcome = election::decide(&input);
        crate::log_info!(
            "election: {} of {} voter(s) visible, outcome {outcome:?}",
            input.visible_voters,
            input.voters
        );
        match outcome {
            Outcome::NotCandidate(why) => {
                crate::log_notice!("not taking action: {why}");
                if self.cfg().failover == Failover::Manual {
                    let (id, name) = (self.node_id(), self.node_name());
                    self.event(
                        "standby_disconnect_manual",
                        true,
                        format!(
                            "node \"{name}\" (ID: {id}) lost its upstream {}; failover is manual",
                            failed
                        ),
                        None,
                    );
                }
                self.enter_degraded(Some(failed.clone()), false);
                Flow::Continue
            }
            Outcome::Cancelled(why) => {
                crate::log_warning!("failover cancelled: {why}");
                self.enter_degraded(Some(failed.clone()), true);
                Flow::Continue
            }
            Outcome::FollowExisting { new_primary } => {
                self.follow_new_primary(new_primary, &nodes, failed)
            }
            Outcome::Won => {
                match self.claim_term(&nodes, failed, &input) {
                    Some(_votes) => self.promote_self(failed, &input),
                    None => {
                        crate::log_warning!("this node won the election but could not claim the term; not promoting");
                        self.enter_degraded(Some(failed.clone()), true);
                        Flow::Continue
                    }
                }
            }
            Outcome::Lost { winner } => {
                crate::log_notice!(
                    "node {winner} is the promotion candidate; waiting for it to become primary"
                );
                self.wait_for_new_primary(failed, Some(winner), &nodes)
            }
            Outcome::NoCandidate => {
                crate::log_warning!("no node is eligible for promotion");
                self.wait_for_new_primary(failed, None, &nodes)
            }
        }
    }

    fn enter_degraded(&mut self, lost: Option<NodeRecord>, rerun: bool) {
        let rerun_at = rerun.then(|| {
            Instant::now() + Duration::from_secs(self.cfg().election_rerun_interval.max(1) as u64)
        });
        match self.degraded.as_mut() {
            Some(d) => d.next_election = rerun_at,
            None => {
                self.degraded = Some(Degraded {
                    since: Instant::now(),
                    lost_upstream: lost,
                    next_election: rerun_at,
                })
            }
        }
    }

    /// In degraded state: a primary may have appeared (follow it), the
    /// election may be due again, or repmgrd gives up after
    /// `degraded_monitoring_timeout`.
    fn degraded_tick(&mut self) -> Flow {
        let timeout = self.cfg().degraded_monitoring_timeout;
        let Some(d) = self.degraded.as_ref() else {
            return Flow::Continue;
        };
        if timeout > 0 && d.since.elapsed() >= Duration::from_secs(timeout as u64) {
            crate::log_warning!(
                "degraded monitoring timeout ({timeout} seconds) exceeded, terminating"
            );
            return Flow::Stop;
        }
        let lost = d.lost_upstream.clone();
        let due = d.next_election.is_some_and(|t| Instant::now() >= t);
        let can_act = self.cfg().failover == Failover::Automatic && !self.local_paused();
        if !can_act {
            return Flow::Continue;
        }
        let id = self.node_id();
        let nodes = match self.local.as_mut().map(db::nodes::all) {
            Some(Ok(n)) => n,
            _ => return Flow::Continue,
        };
        let others: Vec<NodeRecord> = nodes
            .iter()
            .filter(|n| n.node_id != id && n.node_type != NodeType::Witness)
            .cloned()
            .collect();
        let lost_id = lost.as_ref().map(|l| l.node_id);
        let primary = db::reach::reach_all(&others)
            .into_iter()
            .find(|r| r.in_recovery == Some(false) && Some(r.node.node_id) != lost_id);
        if let Some(p) = primary {
            crate::log_notice!("found new primary {}", p.node);
            let failed = lost.unwrap_or_else(|| p.node.clone());
            return self.follow_new_primary(p.node.node_id, &nodes, &failed);
        }
        if due {
            // The primary may have changed since the upstream was lost (a
            // node was promoted, then failed too): elect against the one the
            // metadata names now, if it does not answer.
            let current = nodes
                .iter()
                .find(|n| n.node_type == NodeType::Primary && n.active && n.node_id != id)
                .cloned()
                .filter(|p| Some(p.node_id) != lost_id && !self.upstream_alive(p));
            if let Some(l) = current.or(lost.filter(|l| l.node_type == NodeType::Primary)) {
                crate::log_notice!("rerunning the election");
                return self.failover(&l);
            }
        }
        Flow::Continue
    }

    /// The winner: check once more that the old primary is really gone,
    /// validate, promote, record.
    fn promote_self(&mut self, failed: &NodeRecord, input: &ElectionInput) -> Flow {
        let (id, name) = (self.node_id(), self.node_name());
        if !self.validate_failover(input) {
            self.enter_degraded(Some(failed.clone()), true);
            return Flow::Continue;
        }
        crate::log_notice!(
            "this node is the winner, will now promote itself and inform other nodes"
        );
        let command = self.cfg().promote_command.trim().to_string();
        let result = if command.is_empty() {
            self.builtin_promote()
        } else {
            self.run_hook(&command, "promote_command")
        };
        if let Err(e) = result {
            logging::log_error_report(&e);
            if self.upstream_alive(failed) {
                self.event(
                    "repmgrd_failover_abort",
                    false,
                    format!(
                        "promotion failed and original primary {} reappeared",
                        failed
                    ),
                    None,
                );
                self.degraded = None;
                self.start_watcher();
            } else {
                self.event(
                    "repmgrd_promote_error",
                    false,
                    format!(
                        "promotion of node \"{name}\" (ID: {id}) failed: {}",
                        e.message()
                    ),
                    None,
                );
                self.enter_degraded(Some(failed.clone()), true);
            }
            return Flow::Continue;
        }
        self.role = Role::Primary;
        self.link = None;
        self.watcher = None;
        self.degraded = None;
        self.writer = None;
        let details = format!(
            "node \"{name}\" (ID: {id}) promoted to primary; old primary {} marked as failed",
            failed
        );
        crate::log_notice!("{details}");
        self.event(
            "repmgrd_failover_promote",
            true,
            details,
            Some(failed.node_id),
        );
        Flow::Continue
    }

    /// `failover_validation_command` (%n %a %v %u %t): exit 0 lets the
    /// promotion go ahead.
    fn validate_failover(&self, input: &ElectionInput) -> bool {
        let cmd = self.cfg().failover_validation_command.trim();
        if cmd.is_empty() {
            return true;
        }
        let visible = input.siblings.iter().filter(|s| s.visible).count() + 1;
        use crate::hooks::{cluster, plain};
        let line = crate::hooks::expand(
            cmd,
            &[
                ('n', plain(self.node_id())),
                ('a', cluster(self.node_name())),
                ('v', plain(visible)),
                ('u', plain(input.siblings.len() + 1)),
                ('t', plain(input.siblings.len() + 2)),
            ],
        );
        match process::run(
            process::shell(&line),
            Duration::from_secs(60),
            "failover_validation_command",
        ) {
            Ok(o) if o.success() => true,
            Ok(o) => {
                crate::log_notice!(
                    "failover_validation_command returned {}: not promoting now",
                    process::describe_status(&o.status)
                );
                false
            }
            Err(e) => {
                logging::log_error_report(&e);
                false
            }
        }
    }

    fn builtin_promote(&mut self) -> Result<()> {
        let local = match self.local.take() {
            Some(c) => c,
            None => db::connect::connect(&self.conninfo, APP_NAME)?,
        };
        let ci = self.conninfo.clone();
        let reconnect = move || db::connect::connect(&ci, APP_NAME);
        let mut conn =
            cli_promote::promote_local(&self.loaded.config, &self.bin, local, &reconnect)?;
        if db::schema::exists(&mut conn)? {
            let (term, _ev, _ts) =
                cli_promote::record_promotion(&self.loaded.config, &mut conn, None)?;
            crate::log_info!("voting term is now {term}");
        }
        self.local = Some(conn);
        Ok(())
    }

    /// Runs a user command (promote_command, follow_command) with a deadline.
    fn run_hook(&mut self, line: &str, what: &str) -> Result<()> {
        let limit = Duration::from_secs((self.cfg().promote_check_timeout.max(1) + 60) as u64);
        process::run_checked(process::shell(line), limit, what, ExitCode::LocalCommand)?;
        self.local = None;
        Ok(())
    }

    /// A loser waits for the winner (polled finely) or any sibling (polled
    /// every second) to run as primary, at most primary_notification_timeout.
    fn wait_for_new_primary(
        &mut self,
        failed: &NodeRecord,
        winner: Option<i32>,
        nodes: &[NodeRecord],
    ) -> Flow {
        let timeout = Duration::from_secs(self.cfg().primary_notification_timeout.max(1) as u64);
        let deadline = Instant::now() + timeout;
        let id = self.node_id();
        let mut winner_conn = winner
            .and_then(|w| nodes.iter().find(|n| n.node_id == w))
            .and_then(|rec| db::reach::connect_record(rec).ok());
        let others: Vec<NodeRecord> = nodes
            .iter()
            .filter(|n| n.node_id != id && n.node_type != NodeType::Witness)
            .cloned()
            .collect();
        let mut next_scan = Instant::now();
        while Instant::now() < deadline {
            if let (Some(w), Some(c)) = (winner, winner_conn.as_mut()) {
                if let Ok(false) = db::server::in_recovery(c) {
                    return self.follow_new_primary(w, nodes, failed);
                }
            }
            if Instant::now() >= next_scan {
                next_scan = Instant::now() + SIBLING_SCAN;
                for r in db::reach::reach_all(&others) {
                    if r.in_recovery != Some(false) {
                        continue;
                    }
                    if r.node.node_id == failed.node_id {
                        crate::log_notice!("original primary {} reappeared", failed);
                        self.event(
                            "repmgrd_failover_aborted",
                            true,
                            format!("original primary {} reappeared", failed),
                            None,
                        );
                        self.degraded = None;
                        self.start_watcher();
                        return Flow::Continue;
                    }
                    return self.follow_new_primary(r.node.node_id, nodes, failed);
                }
                if winner_conn.is_none() {
                    winner_conn = winner
                        .and_then(|w| nodes.iter().find(|n| n.node_id == w))
                        .and_then(|rec| db::reach::connect_record(rec).ok());
                }
            }
            if self.sleep(WINNER_POLL) == Flow::Stop {
                return Flow::Stop;
            }
        }
        crate::log_warning!(
            "no new primary appeared within {} seconds",
            timeout.as_secs()
        );
        self.enter_degraded(Some(failed.clone()), true);
        Flow::Continue
    }

    /// Follows `new_id` with follow_command or the built-in follow.
    fn follow_new_primary(
        &mut self,
        new_id: i32,
        nodes: &[NodeRecord],
        failed: &NodeRecord,
    ) -> Flow {
        let (id, name) = (self.node_id(), self.node_name());
        if self.local_paused() {
            crate::log_notice!("repmgrd is paused; not following the new primary");
            self.enter_degraded(Some(failed.clone()), false);
            return Flow::Continue;
        }
        let Some(target) = nodes.iter().find(|n| n.node_id == new_id).cloned() else {
            crate::log_warning!("new primary {new_id} has no record in the local metadata");
            self.enter_degraded(Some(failed.clone()), true);
            return Flow::Continue;
        };
        crate::log_notice!(
            "attempting to follow new primary \"{}\" (ID: {new_id})",
            target.node_name
        );
        let command = self.cfg().follow_command.trim().to_string();
        let result = if command.is_empty() {
            self.builtin_follow(&target)
        } else {
            let line = crate::hooks::expand(&command, &[('n', crate::hooks::plain(new_id))]);
            self.run_hook(&line, "follow_command")
        };
        if let Err(e) = result {
            logging::log_error_report(&e);
            // The configuration may be in place and the WAL receiver
            // streaming, with only the confirmation lost (the new primary
            // went away in the meantime): then this node does follow it.
            if self.local_streams() {
                crate::log_notice!(
                    "the WAL receiver streams from node \"{}\" (ID: {new_id}) all the same; following it",
                    target.node_name
                );
                if let Ok(mut c) = db::reach::connect_record(&target) {
                    let _ = db::nodes::set_upstream(&mut c, id, new_id);
                }
            } else {
                if self.upstream_alive(failed) && failed.node_id != new_id {
                    self.event(
                        "repmgrd_failover_aborted",
                        false,
                        format!(
                            "following node {new_id} failed and original primary {} reappeared",
                            failed
                        ),
                        None,
                    );
                }
                self.enter_degraded(Some(failed.clone()), true);
                return Flow::Continue;
            }
        }
        // The record was read before the winner promoted: it still says
        // standby. The node we now follow is the primary, and losing it
        // later is a failover, not a lost upstream standby.
        let mut rec = target.clone();
        rec.node_type = NodeType::Primary;
        rec.upstream_node_id = None;
        self.link = ConnInfo::parse(&target.conninfo).ok().map(|ci| Link {
            rec,
            ci,
            conn: None,
        });
        self.degraded = None;
        self.writer = db::reach::connect_record(&target).ok().map(|c| (new_id, c));
        self.start_watcher();
        let details = format!(
            "node \"{name}\" (ID: {id}) now following new upstream node \"{}\" (ID: {new_id})",
            target.node_name
        );
        crate::log_notice!("{details}");
        self.event("repmgrd_failover_follow", true, details, Some(new_id));
        Flow::Continue
    }

    fn builtin_follow(&mut self, target: &NodeRecord) -> Result<()> {
        let mut local = match self.local.take() {
            Some(c) => c,
            None => db::connect::connect(&self.conninfo, APP_NAME)?,
        };
        let mut tconn = db::reach::connect_record(target)?;
        cli_follow::check_can_follow(&mut local, &mut tconn, target)?;
        cli_follow::follow_node(&self.loaded.config, &self.bin, local, target, &mut tconn)?;
        Ok(())
    }

    /// A cascaded standby whose upstream standby died re-attaches to the
    /// primary.
    fn reattach_to_primary(&mut self, lost: &NodeRecord) -> Flow {
        if self.cfg().failover != Failover::Automatic || self.local_paused() {
            crate::log_notice!(
                "upstream standby lost; not re-attaching (failover is manual or repmgrd is paused)"
            );
            self.enter_degraded(Some(lost.clone()), false);
            return Flow::Continue;
        }
        let id = self.node_id();
        let nodes = match self.local.as_mut().map(db::nodes::all) {
            Some(Ok(n)) => n,
            _ => return Flow::Continue,
        };
        let others: Vec<NodeRecord> = nodes
            .iter()
            .filter(|n| {
                n.node_id != id && n.node_id != lost.node_id && n.node_type != NodeType::Witness
            })
            .cloned()
            .collect();
        match db::reach::reach_all(&others)
            .into_iter()
            .find(|r| r.in_recovery == Some(false))
        {
            Some(p) => self.follow_new_primary(p.node.node_id, &nodes, lost),
            None => {
                crate::log_warning!("no primary found to re-attach to");
                self.enter_degraded(Some(lost.clone()), false);
                Flow::Continue
            }
        }
    }

    // --------------------------------------------------------------- events

    /// Records an event on the primary when one is reachable, and runs the
    /// notification hook in the background in every case.
    fn event(&mut self, name: &str, successful: bool, details: String, primary_id: Option<i32>) {
        let ev = Event {
            successful,
            primary_id,
            ..Event::for_node(&self.loaded.config, name, details)
        };
        let mut ts = None;
        let writer = match self.role {
            Role::Primary => self.local.as_mut(),
            _ => self.writer.as_mut().map(|(_, c)| c),
        };
        if let Some(w) = writer {
            match events::write(w, &ev) {
                Ok(t) => ts = Some(t),
                Err(e) => crate::log_debug!("event \"{name}\" not recorded: {}", e.message()),
            }
        }
        events::notify_in_background(&self.loaded.config, &ev, ts.as_deref());
    }

    // --------------------------------------------------------------- reload

    /// SIGHUP: re-read repmgr.conf, apply what may change at run time, and
    /// reopen the log file (logrotate).
    fn reload(&mut self) {
        crate::log_notice!("received SIGHUP: reloading configuration and reopening log file");
        let _ = logging::sink().reopen();
        let fresh = match config::load_file(&self.loaded.path) {
            Ok(l) => l,
            Err(e) => {
                crate::log_warning!("configuration file not reloaded: it contains errors");
                for m in &e.messages {
                    crate::log_detail!("{m}");
                }
                return;
            }
        };
        let (old, new) = (&self.loaded.config, &fresh.config);
        if old.node_id != new.node_id || old.node_name != new.node_name {
            crate::log_warning!("\"node_id\" and \"node_name\" cannot be changed at run time; configuration not reloaded");
            return;
        }
        let conninfo = match ConnInfo::parse(&new.conninfo) {
            Ok(ci) => ci,
            Err(e) => {
                crate::log_warning!(
                    "new \"conninfo\" is invalid ({e}); configuration not reloaded"
                );
                return;
            }
        };

        logging::set_level(new.log_level);
        if new.log_file != old.log_file {
            let res = if new.log_file.is_empty() {
                logging::sink().to_stderr();
                Ok(())
            } else {
                logging::sink().open(&new.log_file)
            };
            if let Err(e) = res {
                crate::log_warning!("unable to open log file \"{}\": {e}", new.log_file);
            }
        }
        if conninfo != self.conninfo {
            self.local = None;
        }
        self.conninfo = conninfo;
        self.loaded = fresh;
        crate::log_notice!("configuration file reloaded");
        let (id, name) = (self.node_id(), self.node_name());
        self.event(
            "repmgrd_reload",
            true,
            format!("repmgrd on node \"{name}\" (ID: {id}) reloaded its configuration"),
            None,
        );
    }
}

/// The registered nodes as the local node knows them (empty if unknown).
fn local_nodes_of(local: Option<&mut Session>) -> Vec<NodeRecord> {
    local
        .and_then(|c| db::nodes::all(c).ok())
        .unwrap_or_default()
}
