//! The failover election (repmgr's `do_election`), as a pure function of
//! what this node sees. Every standby runs it on the same facts and reaches
//! the same winner; the winner still needs the votes of a majority before
//! it promotes (see [`super::vote`]), so two candidates who disagree can
//! never both promote.

use super::settings::{Failover, Quorum, Settings};
use super::sync::{candidate_holds_every_commit, SyncSpec, SyncView, Unsafe};
use super::types::{Lsn, NodeId, NodeInfo, NodeKind, NodeObs, Term};

/// Everything the election needs.
#[derive(Debug, Clone)]
pub struct Ballot<'a> {
    pub settings: &'a Settings,
    pub me: &'a NodeInfo,
    pub my_timeline: u32,
    pub my_lsn: Lsn,
    /// This node's WAL receiver still hears from the failed primary.
    pub my_receiver_fresh: bool,
    pub paused: bool,
    pub failed: &'a NodeInfo,
    /// Every registered node.
    pub nodes: &'a [NodeInfo],
    /// What every other node answered this round.
    pub obs: &'a [NodeObs],
    /// The highest term this node knows of.
    pub known_term: Term,
    pub sync: Option<SyncSpec>,
}

/// Why no promotion happens now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// No node in the primary's location is visible: probably a network split.
    NetworkSplit,
    /// A node (this one, or a sibling) still streams from the primary.
    PrimaryStillVisible { by: NodeId },
    /// Too few voters visible to be sure the primary is really gone.
    NoQuorum { visible: usize, voters: usize },
    /// A node with a newer timeline or term is visible.
    NewerHistory { by: NodeId },
    /// Synchronous replication: no candidate is sure to hold every
    /// acknowledged commit.
    SyncUnsafe(Unsafe),
}

impl std::fmt::Display for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cancel::NetworkSplit => write!(
                f,
                "no node in the primary's location is visible; assuming a network split"
            ),
            Cancel::PrimaryStillVisible { by } => {
                write!(
                    f,
                    "node {by} still sees the primary (its WAL receiver streams from it)"
                )
            }
            Cancel::NoQuorum { visible, voters } => {
                write!(
                    f,
                    "only {visible} of {voters} voters are visible: no quorum"
                )
            }
            Cancel::NewerHistory { by } => write!(
                f,
                "node {by} has a newer timeline or voting term: a promotion already happened"
            ),
            Cancel::SyncUnsafe(why) => write!(f, "synchronous replication: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This node must not act (failover=manual, paused).
    NotCandidate(&'static str),
    /// This node is the best candidate: ask for votes and promote.
    Won,
    /// Another node is the best candidate: wait for it and follow it.
    Lost {
        winner: NodeId,
    },
    /// A node is already running as primary: follow it.
    FollowExisting {
        new_primary: NodeId,
    },
    Cancelled(Cancel),
    /// Nobody can be promoted (e.g. every candidate has priority 0).
    NoCandidate,
}

/// One node as a candidate: its identity and its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    id: NodeId,
    priority: i32,
    timeline: u32,
    lsn: Lsn,
}

/// Every registered voter: the failed primary, all standbys (priority 0
/// included) and the witness.
pub fn voters(nodes: &[NodeInfo]) -> usize {
    nodes.iter().filter(|n| n.is_voter()).count()
}

/// The voters an election counts: every voter, or (only in the
/// simulation's self-test) all but the failed primary.
pub fn counted_voters(b: &Ballot<'_>) -> usize {
    let all = voters(b.nodes);
    if b.settings.safety.count_failed_primary || !b.failed.is_voter() {
        all
    } else {
        all - 1
    }
}

fn obs_of<'a>(b: &'a Ballot<'_>, id: NodeId) -> Option<&'a NodeObs> {
    b.obs.iter().find(|o| o.id == id)
}

/// Voters visible from here, this node included.
pub fn visible_voters(b: &Ballot<'_>) -> usize {
    1 + b
        .nodes
        .iter()
        .filter(|n| n.is_voter() && n.id != b.me.id && n.id != b.failed.id)
        .filter(|n| obs_of(b, n.id).is_some_and(|o| o.reachable))
        .count()
}

/// repmgr's ordering, on the newest timeline only: most WAL, then highest
/// priority, then lowest node_id. A node on an older timeline may hold WAL
/// past the fork that the others do not share; it is never preferred.
/// (`newest_timeline` off, in the simulation's self-test only: every
/// timeline competes on its LSN.)
fn best(cands: &[Candidate], newest_timeline: bool) -> Option<Candidate> {
    let eligible = || cands.iter().filter(|c| c.priority > 0);
    let newest = eligible().map(|c| c.timeline).max()?;
    eligible()
        .filter(|c| c.timeline == newest || !newest_timeline)
        .min_by(|a, b| {
            b.lsn
                .cmp(&a.lsn)
                .then(b.priority.cmp(&a.priority))
                .then(a.id.cmp(&b.id))
        })
        .copied()
}

// Long: the election's rules in the order repmgr applies them, each a
// short early return; split up they would no longer read as one ranking.
pub fn decide(b: &Ballot<'_>) -> Outcome {
    let s = b.settings;
    if s.failover == Failover::Manual {
        return Outcome::NotCandidate("failover is set to \"manual\"");
    }
    if b.paused {
        return Outcome::NotCandidate("repmgrd is paused");
    }
    let siblings: Vec<(&NodeInfo, &NodeObs)> = b
        .nodes
        .iter()
        .filter(|n| n.active && n.id != b.me.id && n.id != b.failed.id)
        .filter_map(|n| obs_of(b, n.id).filter(|o| o.reachable).map(|o| (n, o)))
        .collect();

    // A node already running as an unfenced primary of a current term wins
    // outright: follow it.
    if let Some((n, _)) = siblings
        .iter()
        .filter(|(n, o)| n.kind != NodeKind::Witness && o.may_follow(b.known_term, s.safety))
        .min_by_key(|(n, _)| n.id)
    {
        return Outcome::FollowExisting { new_primary: n.id };
    }
    // A primary of a newer history that is not writable (fenced): a
    // promotion happened after the one this node knows; do not start
    // another. A standby of a newer history is a candidate like any other
    // (the ranking prefers the newest timeline).
    if let Some((n, _)) = siblings.iter().find(|(n, o)| {
        n.kind != NodeKind::Witness
            && o.in_recovery == Some(false)
            && (o.timeline > b.my_timeline || o.term > b.known_term.max(0))
    }) {
        return Outcome::Cancelled(Cancel::NewerHistory { by: n.id });
    }
    let location = &b.failed.location;
    if b.me.location != *location && !siblings.iter().any(|(n, _)| n.location == *location) {
        return Outcome::Cancelled(Cancel::NetworkSplit);
    }
    if b.my_receiver_fresh && s.safety.receiver_check {
        return Outcome::Cancelled(Cancel::PrimaryStillVisible { by: b.me.id });
    }
    if s.primary_visibility_consensus && s.safety.receiver_check {
        if let Some((n, _)) = siblings
            .iter()
            .find(|(_, o)| o.receiver_fresh && o.streams_from == Some(b.failed.id))
        {
            return Outcome::Cancelled(Cancel::PrimaryStillVisible { by: n.id });
        }
    }
    if let Some(c) = quorum_refusal(b, &siblings) {
        return Outcome::Cancelled(c);
    }

    let mut cands = vec![Candidate {
        id: b.me.id,
        priority: if b.me.kind == NodeKind::Standby {
            b.me.priority
        } else {
            0
        },
        timeline: b.my_timeline,
        lsn: b.my_lsn,
    }];
    cands.extend(
        siblings
            .iter()
            // A standby whose repmgrd runs with failover=manual never
            // promotes itself: waiting for it would wait for ever.
            .filter(|(n, o)| {
                n.kind == NodeKind::Standby
                    && o.in_recovery == Some(true)
                    && n.automatic
                    && o.daemon_session != Some(false)
                    && o.daemon.is_none_or(|d| d.automatic)
            })
            .map(|(n, o)| Candidate {
                id: n.id,
                priority: n.priority,
                timeline: o.timeline,
                lsn: o.lsn,
            }),
    );
    let Some(winner) = best(&cands, s.safety.newest_timeline) else {
        return Outcome::NoCandidate;
    };
    if let Some(spec) = &b.sync {
        if let Err(why) = sync_check(b, spec, winner) {
            return Outcome::Cancelled(Cancel::SyncUnsafe(why));
        }
    }
    if winner.id == b.me.id {
        Outcome::Won
    } else {
        Outcome::Lost { winner: winner.id }
    }
}

fn quorum_refusal(b: &Ballot<'_>, siblings: &[(&NodeInfo, &NodeObs)]) -> Option<Cancel> {
    match b.settings.quorum {
        // A strict majority of every voter, the failed primary included: the
        // nodes on the other side of a partition can then never also have one.
        Quorum::Majority => {
            let voters = counted_voters(b);
            let visible = visible_voters(b);
            (visible * 2 <= voters).then_some(Cancel::NoQuorum { visible, voters })
        }
        // repmgr's rule (§5.3 step 9): more than half of the nodes that
        // shared the failed upstream, this node included, must be visible.
        Quorum::Repmgr => {
            let shared: Vec<&NodeInfo> = b
                .nodes
                .iter()
                .filter(|n| n.active && n.id != b.me.id && n.id != b.failed.id)
                .filter(|n| n.kind != NodeKind::Bdr)
                .collect();
            let voters = shared.len() + 1;
            let seen = 1 + shared
                .iter()
                .filter(|n| siblings.iter().any(|(s, _)| s.id == n.id))
                .count();
            (seen * 2 <= voters).then_some(Cancel::NoQuorum {
                visible: seen,
                voters,
            })
        }
    }
}

/// With synchronous replication in force, the winner must hold every
/// acknowledged commit.
fn sync_check(b: &Ballot<'_>, spec: &SyncSpec, winner: Candidate) -> Result<(), Unsafe> {
    if !b.settings.safety.sync_aware {
        return Ok(());
    }
    let name_of = |id: NodeId| b.nodes.iter().find(|n| n.id == id).map(|n| n.name.as_str());
    let standbys: Vec<SyncView> = b
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Standby && n.id != winner.id && n.id != b.failed.id)
        .map(|n| {
            let (visible, timeline, lsn) = if n.id == b.me.id {
                (true, b.my_timeline, b.my_lsn)
            } else {
                match obs_of(b, n.id) {
                    Some(o) if o.reachable => (true, o.timeline, o.lsn),
                    _ => (false, 0, 0),
                }
            };
            SyncView {
                id: n.id,
                name: n.name.as_str(),
                visible,
                timeline,
                lsn,
            }
        })
        .collect();
    candidate_holds_every_commit(
        spec,
        (
            winner.id,
            name_of(winner.id).unwrap_or(""),
            winner.timeline,
            winner.lsn,
        ),
        &standbys,
    )
}

#[cfg(test)]
mod tests;
