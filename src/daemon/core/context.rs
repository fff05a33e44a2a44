//! What every role's handler works with: the settings, the voter, the
//! last local facts, the work in flight, and the actions being collected.

use super::settings::{Failover, Quorum, Settings};
use super::types::*;
use super::vote::{VoteBook, VoterView};

/// Work the core asked for and has not heard back about: at most one of
/// each kind is in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pending {
    pub local: bool,
    /// Checks sent and not answered yet.
    pub checks: u32,
    pub gather: bool,
    pub votes: bool,
    pub job: bool,
}

/// The part of the core the roles share (the role itself is apart, so a
/// role's handler borrows this and its own state at once).
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub s: Settings,
    /// The voter in this node: promises, grants, the durable record.
    pub book: VoteBook,
    /// The last facts the local server gave.
    pub facts: Option<LocalFacts>,
    pub pending: Pending,
    /// The last check's number.
    pub check_seq: u64,
    pub out: Vec<Action>,
}

impl Ctx {
    /// What this node's voter should know of itself to answer, given what
    /// the role in force says: whether it runs as an unfenced primary, and
    /// the primary it sees.
    pub fn voter_view(&self, am_primary: bool, sees: Option<NodeId>, witness: bool) -> VoterView {
        let f = self.facts.as_ref();
        let me = self.s.node_id;
        // Only a node that could be promoted holds a failover up for the
        // WAL it has.
        let candidate = self.s.failover == Failover::Automatic
            && f.is_some_and(|f| {
                f.nodes
                    .iter()
                    .any(|n| n.id == me && n.kind == NodeKind::Standby && n.priority > 0)
            });
        let wal = match f {
            _ if witness => None,
            None => None,
            Some(_) if !candidate => None,
            Some(f) => Some((f.timeline, f.lsn)),
        };
        VoterView {
            am_primary,
            sees,
            wal,
            timeline: f.map_or(0, |f| f.timeline),
            needs_fence: self.s.quorum == Quorum::Majority,
        }
    }

    pub fn persist(&mut self, p: Option<Persisted>) {
        if let Some(p) = p {
            self.out.push(Action::Persist(p));
        }
    }

    pub fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    pub fn event(
        &mut self,
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
    ) {
        self.out.push(Action::Event {
            name,
            ok,
            details,
            primary_id,
            on: None,
        });
    }

    pub fn event_on(&mut self, on: NodeId, name: &'static str, ok: bool, details: String) {
        self.out.push(Action::Event {
            name,
            ok,
            details,
            primary_id: Some(on),
            on: Some(on),
        });
    }

    pub fn me(&self) -> String {
        format!("\"{}\" (ID: {})", self.s.node_name, self.s.node_id)
    }

    pub fn node(&self, id: NodeId) -> Option<NodeInfo> {
        self.facts
            .as_ref()
            .and_then(|f| f.nodes.iter().find(|n| n.id == id).cloned())
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.facts
            .as_ref()
            .map(|f| f.nodes.clone())
            .unwrap_or_default()
    }

    /// Asks for a cluster round unless one is in flight.
    pub fn gather(&mut self) -> bool {
        self.gather_sparing(None)
    }

    /// A cluster round that does not wait long for `down`, a node found
    /// failed already (see [`Action::GatherCluster`]).
    pub fn gather_sparing(&mut self, down: Option<NodeId>) -> bool {
        if self.pending.gather {
            return false;
        }
        self.pending.gather = true;
        self.out.push(Action::GatherCluster { down });
        true
    }

    /// A routine check of `node`, unless one is still out.
    pub fn check(&mut self, node: NodeId) -> bool {
        if self.pending.checks > 0 {
            return false;
        }
        self.send_check(node, false);
        true
    }

    /// A check sent whatever else is out (a retry attempt); its `seq`.
    pub fn send_check(&mut self, node: NodeId, ping: bool) -> u64 {
        self.pending.checks += 1;
        self.check_seq += 1;
        let seq = self.check_seq;
        self.out.push(Action::CheckUpstream { node, ping, seq });
        seq
    }

    pub fn job(&mut self, a: Action) -> bool {
        if self.pending.job {
            return false;
        }
        self.pending.job = true;
        self.out.push(a);
        true
    }

    pub fn paused(&self) -> bool {
        self.facts.as_ref().is_some_and(|f| f.paused)
    }

    /// The voters of the cluster as this node's metadata has them.
    pub fn voters(&self) -> Vec<NodeInfo> {
        self.nodes().into_iter().filter(|n| n.is_voter()).collect()
    }
}
