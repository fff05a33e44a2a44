//! The failover election (repmgr's `do_election`, §5.3), as a pure
//! function of what this node sees. Every standby runs it on the same facts
//! and reaches the same answer, so exactly one of them promotes; the others
//! wait for it and follow.

use crate::config::{Failover, FailoverQuorum};
use crate::db::nodes::NodeType;

/// What this node knows about one node taking part (itself or a sibling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: i32,
    pub node_type: NodeType,
    pub priority: i32,
    pub location: String,
    /// It answered within its deadline.
    pub visible: bool,
    /// Some(false): it runs as a primary already.
    pub in_recovery: Option<bool>,
    /// Furthest WAL received (or replayed): how much of the old primary's
    /// history it holds.
    pub lsn: u64,
    /// Its WAL receiver still streams from the failed primary.
    pub sees_primary: bool,
}

/// Everything the election needs.
#[derive(Debug, Clone)]
pub struct ElectionInput {
    pub me: NodeView,
    pub primary_location: String,
    /// Active nodes (standbys and witnesses) that shared the failed upstream.
    pub siblings: Vec<NodeView>,
    pub failover: Failover,
    pub paused: bool,
    pub primary_visibility_consensus: bool,
    pub quorum: FailoverQuorum,
    /// Every registered voter: the failed primary, all standbys (priority 0
    /// included) and the witness.
    pub voters: usize,
    /// Voters visible from here, this node included.
    pub visible_voters: usize,
    /// A visible node whose timeline or voting term is newer than this
    /// node's: a promotion already happened somewhere.
    pub newer_history: Option<i32>,
}

/// Why no promotion happens now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// No node in the primary's location is visible: probably a network split.
    NetworkSplit,
    /// A sibling still streams from the primary.
    PrimaryStillVisible { by: i32 },
    /// Too few nodes visible to be sure the primary is really gone.
    NoQuorum { visible: usize, voters: usize },
    /// A node with a newer timeline or term is visible.
    NewerHistory { by: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This node must not act (failover=manual, paused).
    NotCandidate(&'static str),
    /// This node is the best candidate: promote it.
    Won,
    /// Another node is the best candidate: wait for it and follow it.
    Lost {
        winner: i32,
    },
    /// A sibling is already running as primary: follow it.
    FollowExisting {
        new_primary: i32,
    },
    Cancelled(Cancel),
    /// Nobody can be promoted (e.g. every candidate has priority 0).
    NoCandidate,
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
                    "node {by} still sees the primary (primary_visibility_consensus)"
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
        }
    }
}

/// Candidates are visible standbys in recovery with priority > 0.
fn is_candidate(v: &NodeView) -> bool {
    v.visible && v.node_type == NodeType::Standby && v.priority > 0 && v.in_recovery == Some(true)
}

/// repmgr's ordering: most WAL, then highest priority, then lowest node_id.
pub fn best_candidate<'a>(views: impl IntoIterator<Item = &'a NodeView>) -> Option<&'a NodeView> {
    views
        .into_iter()
        .filter(|v| is_candidate(v))
        .min_by(|a, b| {
            b.lsn
                .cmp(&a.lsn)
                .then(b.priority.cmp(&a.priority))
                .then(a.node_id.cmp(&b.node_id))
        })
}

pub fn decide(input: &ElectionInput) -> Outcome {
    if input.failover == Failover::Manual {
        return Outcome::NotCandidate("failover is set to \"manual\"");
    }
    if input.paused {
        return Outcome::NotCandidate("repmgrd is paused");
    }
    let visible: Vec<&NodeView> = input.siblings.iter().filter(|s| s.visible).collect();

    // A sibling that is already primary wins outright: follow it.
    if let Some(p) = visible
        .iter()
        .filter(|s| s.node_type != NodeType::Witness && s.in_recovery == Some(false))
        .min_by_key(|s| s.node_id)
    {
        return Outcome::FollowExisting {
            new_primary: p.node_id,
        };
    }

    if let Some(by) = input.newer_history {
        return Outcome::Cancelled(Cancel::NewerHistory { by });
    }

    let location_seen = input.me.location == input.primary_location
        || visible.iter().any(|s| s.location == input.primary_location);
    if !location_seen {
        return Outcome::Cancelled(Cancel::NetworkSplit);
    }

    if let Some(s) = visible.iter().find(|s| s.sees_primary) {
        if input.primary_visibility_consensus {
            return Outcome::Cancelled(Cancel::PrimaryStillVisible { by: s.node_id });
        }
    }

    match input.quorum {
        // A strict majority of every voter, the failed primary included: the
        // nodes on the other side of a partition can then never also have one.
        FailoverQuorum::Majority => {
            if input.visible_voters * 2 <= input.voters {
                return Outcome::Cancelled(Cancel::NoQuorum {
                    visible: input.visible_voters,
                    voters: input.voters,
                });
            }
        }
        // repmgr's rule (§5.3 step 9): more than half of the nodes that
        // shared the failed upstream, this node included, must be visible.
        FailoverQuorum::Repmgr => {
            let voters = input.siblings.len() + 1;
            let seen = visible.len() + 1;
            if (seen as f64) <= voters as f64 / 2.0 {
                return Outcome::Cancelled(Cancel::NoQuorum {
                    visible: seen,
                    voters,
                });
            }
        }
    }

    let all = std::iter::once(&input.me).chain(visible.iter().copied());
    match best_candidate(all) {
        None => Outcome::NoCandidate,
        Some(w) if w.node_id == input.me.node_id => Outcome::Won,
        Some(w) => Outcome::Lost { winner: w.node_id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(id: i32, lsn: u64, priority: i32) -> NodeView {
        NodeView {
            node_id: id,
            node_type: NodeType::Standby,
            priority,
            location: "default".into(),
            visible: true,
            in_recovery: Some(true),
            lsn,
            sees_primary: false,
        }
    }

    /// Every node visible, voters = siblings + me + the failed primary.
    fn input(me: NodeView, siblings: Vec<NodeView>) -> ElectionInput {
        let visible = 1 + siblings.iter().filter(|s| s.visible).count();
        ElectionInput {
            me,
            primary_location: "default".into(),
            voters: siblings.len() + 2,
            visible_voters: visible,
            siblings,
            failover: Failover::Automatic,
            paused: false,
            primary_visibility_consensus: false,
            quorum: FailoverQuorum::Majority,
            newer_history: None,
        }
    }

    fn repmgr_rule(mut i: ElectionInput) -> ElectionInput {
        i.quorum = FailoverQuorum::Repmgr;
        i
    }

    #[test]
    fn most_wal_wins_then_priority_then_lowest_id() {
        let i = input(standby(2, 100, 100), vec![standby(3, 200, 100)]);
        assert_eq!(decide(&i), Outcome::Lost { winner: 3 });
        let i = input(standby(3, 200, 100), vec![standby(2, 100, 100)]);
        assert_eq!(decide(&i), Outcome::Won);
        let i = input(standby(2, 100, 50), vec![standby(3, 100, 90)]);
        assert_eq!(decide(&i), Outcome::Lost { winner: 3 });
        let i = input(standby(3, 100, 100), vec![standby(2, 100, 100)]);
        assert_eq!(decide(&i), Outcome::Lost { winner: 2 });
    }

    #[test]
    fn the_same_facts_give_every_node_the_same_winner() {
        let nodes = [
            standby(2, 500, 100),
            standby(3, 700, 10),
            standby(4, 700, 10),
        ];
        let winners: Vec<i32> = (0..3)
            .map(|i| {
                let me = nodes[i].clone();
                let sib = nodes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, n)| n.clone())
                    .collect();
                match decide(&input(me.clone(), sib)) {
                    Outcome::Won => me.node_id,
                    Outcome::Lost { winner } => winner,
                    o => panic!("{o:?}"),
                }
            })
            .collect();
        assert_eq!(winners, vec![3, 3, 3]);
    }

    #[test]
    fn priority_zero_is_never_promoted() {
        let i = input(standby(2, 900, 0), vec![standby(3, 100, 100)]);
        assert_eq!(decide(&i), Outcome::Lost { winner: 3 });
        let i = repmgr_rule(input(standby(2, 900, 0), vec![]));
        assert_eq!(decide(&i), Outcome::NoCandidate);
    }

    #[test]
    fn manual_and_paused_do_nothing() {
        let mut i = input(standby(2, 1, 100), vec![]);
        i.failover = Failover::Manual;
        assert!(matches!(decide(&i), Outcome::NotCandidate(_)));
        let mut i = input(standby(2, 1, 100), vec![]);
        i.paused = true;
        assert!(matches!(decide(&i), Outcome::NotCandidate(_)));
    }

    #[test]
    fn a_sibling_already_primary_is_followed() {
        let mut p = standby(3, 0, 100);
        p.in_recovery = Some(false);
        let i = input(standby(2, 900, 100), vec![p]);
        assert_eq!(decide(&i), Outcome::FollowExisting { new_primary: 3 });
    }

    #[test]
    fn location_rule() {
        let mut me = standby(2, 1, 100);
        me.location = "dc2".into();
        let mut sib = standby(3, 1, 100);
        sib.location = "dc2".into();
        let mut i = input(me, vec![sib]);
        i.primary_location = "dc1".into();
        assert_eq!(decide(&i), Outcome::Cancelled(Cancel::NetworkSplit));
    }

    #[test]
    fn visibility_consensus() {
        let mut sib = standby(3, 1, 100);
        sib.sees_primary = true;
        let mut i = input(standby(2, 5, 100), vec![sib]);
        assert_eq!(
            decide(&i),
            Outcome::Won,
            "only logged when consensus is off"
        );
        i.primary_visibility_consensus = true;
        assert_eq!(
            decide(&i),
            Outcome::Cancelled(Cancel::PrimaryStillVisible { by: 3 })
        );
    }

    #[test]
    fn quorum_of_repmgr() {
        // 3 siblings + me = 4 voters; only me visible: 1 <= 2 -> cancelled.
        let mut hidden = vec![standby(3, 1, 100), standby(4, 1, 100), standby(5, 1, 100)];
        for h in &mut hidden {
            h.visible = false;
        }
        let i = repmgr_rule(input(standby(2, 1, 100), hidden.clone()));
        assert_eq!(
            decide(&i),
            Outcome::Cancelled(Cancel::NoQuorum {
                visible: 1,
                voters: 4
            })
        );
        // Two of four visible: still not more than half.
        hidden[0].visible = true;
        let i = repmgr_rule(input(standby(2, 1, 100), hidden.clone()));
        assert!(matches!(
            decide(&i),
            Outcome::Cancelled(Cancel::NoQuorum { .. })
        ));
        hidden[1].visible = true;
        let i = repmgr_rule(input(standby(2, 9, 100), hidden));
        assert_eq!(decide(&i), Outcome::Won);
        // Alone with no siblings: repmgr promotes (the split-brain issue tightens this).
        assert_eq!(
            decide(&repmgr_rule(input(standby(2, 1, 100), vec![]))),
            Outcome::Won
        );
    }

    #[test]
    fn witness_counts_but_is_no_candidate() {
        let mut w = standby(9, 0, 0);
        w.node_type = NodeType::Witness;
        w.in_recovery = Some(false);
        let i = input(standby(2, 1, 100), vec![w]);
        assert_eq!(decide(&i), Outcome::Won);
    }

    #[test]
    fn majority_counts_the_failed_primary() {
        // Two nodes, no witness: the standby sees 1 of 2 voters.
        assert_eq!(
            decide(&input(standby(2, 1, 100), vec![])),
            Outcome::Cancelled(Cancel::NoQuorum {
                visible: 1,
                voters: 2
            })
        );
        // Three nodes, primary gone, both standbys see each other: 2 of 3.
        assert_eq!(
            decide(&input(standby(2, 9, 100), vec![standby(3, 1, 100)])),
            Outcome::Won
        );
        // Three nodes, this standby isolated: 1 of 3.
        let mut hidden = standby(3, 1, 100);
        hidden.visible = false;
        assert!(matches!(
            decide(&input(standby(2, 9, 100), vec![hidden])),
            Outcome::Cancelled(Cancel::NoQuorum {
                visible: 1,
                voters: 3
            })
        ));
        // Primary, standby and witness: the witness's vote makes 2 of 3.
        let mut w = standby(9, 0, 0);
        w.node_type = NodeType::Witness;
        w.in_recovery = Some(false);
        assert_eq!(decide(&input(standby(2, 1, 100), vec![w])), Outcome::Won);
    }

    #[test]
    fn newer_history_means_no_promotion() {
        let mut i = input(standby(2, 9, 100), vec![standby(3, 1, 100)]);
        i.newer_history = Some(3);
        assert_eq!(
            decide(&i),
            Outcome::Cancelled(Cancel::NewerHistory { by: 3 })
        );
    }
}
