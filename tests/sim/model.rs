//! The simulated cluster: a model of each PostgreSQL server, the network,
//! and each host's processes. The repmgrd of every node is the real
//! decision core (`repmgr::daemon::core::Core`); this file plays its driver
//! against the model, with latencies and deadlines like the real ones.

use std::collections::{BTreeMap, BTreeSet};

use repmgr::daemon::core::types::*;
use repmgr::daemon::core::{Core, Settings};

pub type Id = NodeId;

/// One PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Pg {
    /// The postmaster runs (not crashed, not stopped).
    pub running: bool,
    /// Every process of the server is stopped (SIGSTOP).
    pub paused: bool,
    pub recovery: bool,
    /// Where primary_conninfo points.
    pub upstream: Option<Id>,
    /// The read-only fence (a client may bypass it; the checker assumes one does).
    pub read_only: bool,
    /// standby.signal is there: the next start is in recovery.
    pub standby_signal: bool,
    /// Its WAL: record ids in order (the LSN is the length).
    pub wal: Vec<u64>,
    pub tli: u32,
    /// `repmgr.voting_term` in its metadata.
    pub voting_term: Term,
    /// Its copy of `repmgr.nodes`.
    pub meta: Vec<NodeInfo>,
    /// It crashed (a fault), as opposed to being stopped by repmgrd.
    pub crashed: bool,
    /// When its WAL receiver last got something from its upstream.
    pub last_recv: Option<u64>,
    pub streaming: bool,
    /// A witness's own server: never a data node.
    pub witness: bool,
    /// When it was last paused.
    pub paused_at: u64,
}

/// A simulated host: its server, its repmgrd, its clock.
pub struct Host {
    pub id: Id,
    pub name: String,
    pub settings: Settings,
    pub pg: Pg,
    pub core: Option<Core>,
    /// Bumped whenever the daemon restarts: late answers to an older one
    /// are dropped.
    pub epoch: u64,
    pub durable: Persisted,
    pub daemon_paused: bool,
    pub host_paused: bool,
    /// Inputs that arrived while the daemon was paused.
    pub backlog: Vec<Input>,
    /// Local clock: `offset + g + g × drift_ppm / 1e6` for global time g.
    pub clock_offset: u64,
    pub drift_ppm: i64,
    /// Since when this node has been exposed (its daemon or server just
    /// (re)started or resumed): the checker allows a superseded primary
    /// this long to fence itself.
    pub exposed_since: u64,
    pub watching: Option<Id>,
    pub priority: i32,
    /// The daemon exited (degraded_monitoring_timeout) and stays down.
    pub exited: bool,
}

impl Host {
    pub fn local(&self, g: u64) -> Time {
        let d = (g as i128 * self.drift_ppm as i128 / 1_000_000) as i64;
        Time((self.clock_offset as i64 + g as i64 + d).max(0) as u64)
    }

    /// The global time at which this host's clock shows `t`.
    pub fn global(&self, t: Time) -> u64 {
        let local = t.0 as i128 - self.clock_offset as i128;
        let g = local * 1_000_000 / (1_000_000 + self.drift_ppm as i128);
        g.max(0) as u64 + 1
    }

    /// The daemon can run code now.
    pub fn daemon_alive(&self) -> bool {
        self.core.is_some() && !self.daemon_paused && !self.host_paused
    }

    /// Its server answers connections now.
    pub fn pg_up(&self) -> bool {
        self.pg.running && !self.pg.paused && !self.host_paused
    }

    /// It takes (and acknowledges) writes: a running primary, whatever a
    /// read-only default says (a client can override that).
    pub fn takes_writes(&self) -> bool {
        self.pg_up() && !self.pg.recovery && !self.pg.witness
    }
}

/// The network: per direction, up or down, and a delay; and per
/// direction, whether new connections fail (SYNs dropped) while the
/// established ones carry on (WAL streams, sessions, the repmgrd peer
/// connections kept open between heartbeats).
#[derive(Debug, Clone, Default)]
pub struct Net {
    pub down: BTreeMap<(Id, Id), bool>,
    pub extra_delay: BTreeMap<(Id, Id), u64>,
    pub syn_dropped: BTreeSet<(Id, Id)>,
}

impl Net {
    /// A new connection from `a` to `b` can be opened.
    pub fn connects(&self, a: Id, b: Id) -> bool {
        self.both(a, b) && !self.syn_dropped.contains(&(a, b))
    }
    pub fn up(&self, a: Id, b: Id) -> bool {
        a == b || !self.down.get(&(a, b)).copied().unwrap_or(false)
    }
    pub fn both(&self, a: Id, b: Id) -> bool {
        self.up(a, b) && self.up(b, a)
    }
    pub fn delay(&self, a: Id, b: Id) -> u64 {
        if a == b {
            return 0;
        }
        1 + self.extra_delay.get(&(a, b)).copied().unwrap_or(0)
    }
}

/// What the driver waits on for a node.
#[derive(Debug, Clone)]
pub enum Round {
    Votes {
        term: Term,
        replies: BTreeMap<Id, VoteReply>,
        expected: Vec<Id>,
        /// Grants that end the round early.
        needed: usize,
    },
}

/// Placeholder for the PG facts a node's repmgrd reads.
pub fn local_facts(h: &Host, all: &[Host], net: &Net, g: u64, sync: &str) -> LocalFacts {
    let receiver = if h.pg.recovery {
        Some(Receiver {
            sender: h.pg.upstream,
            streaming: h.pg.streaming,
            last_msg_age: h.pg.last_recv.map_or(u64::MAX / 4, |t| g.saturating_sub(t)),
        })
    } else {
        None
    };
    let attached = all
        .iter()
        .filter(|o| {
            o.pg.recovery && o.pg.streaming && o.pg.upstream == Some(h.id) && net.both(o.id, h.id)
        })
        .map(|o| o.name.clone())
        .collect();
    LocalFacts {
        in_recovery: h.pg.recovery,
        timeline: h.pg.tli,
        lsn: h.pg.wal.len() as Lsn,
        receiver,
        paused: false,
        nodes: h.pg.meta.clone(),
        voting_term: h.pg.voting_term,
        read_only_fenced: h.pg.read_only,
        sync_standby_names: sync.to_string(),
        attached,
    }
}

/// WAL `a` is a prefix of (or equal to) WAL `b`.
pub fn is_prefix(a: &[u64], b: &[u64]) -> bool {
    a.len() <= b.len() && a == &b[..a.len()]
}

pub fn common_prefix(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
