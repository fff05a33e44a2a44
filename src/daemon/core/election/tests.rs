use super::*;
use crate::daemon::core::types::NodeObs;

fn info(id: NodeId, kind: NodeKind, priority: i32) -> NodeInfo {
    NodeInfo {
        id,
        name: format!("node{id}"),
        kind,
        active: true,
        priority,
        location: "default".into(),
        upstream: Some(1),
        automatic: true,
        fences: false,
        published: true,
    }
}

fn seen(id: NodeId, lsn: Lsn) -> NodeObs {
    NodeObs {
        reachable: true,
        in_recovery: Some(true),
        timeline: 1,
        lsn,
        term: 1,
        ..NodeObs::unreachable(id)
    }
}

/// A cluster: node 1 the failed primary, then `others` (standbys unless
/// said otherwise); this node is `me`.
struct Case {
    settings: Settings,
    nodes: Vec<NodeInfo>,
    obs: Vec<NodeObs>,
    me: NodeId,
    my_lsn: Lsn,
    my_timeline: u32,
    fresh: bool,
    paused: bool,
    sync: Option<SyncSpec>,
}

impl Case {
    fn new(me: NodeId, my_lsn: Lsn) -> Case {
        Case {
            settings: Settings::default(),
            nodes: vec![
                info(1, NodeKind::Primary, 100),
                info(me, NodeKind::Standby, 100),
            ],
            obs: Vec::new(),
            me,
            my_lsn,
            my_timeline: 1,
            fresh: false,
            paused: false,
            sync: None,
        }
    }
    fn standby(mut self, id: NodeId, priority: i32, obs: Option<NodeObs>) -> Case {
        self.nodes.push(info(id, NodeKind::Standby, priority));
        self.obs
            .push(obs.unwrap_or_else(|| NodeObs::unreachable(id)));
        self
    }
    fn witness(mut self, id: NodeId, visible: bool) -> Case {
        self.nodes.push(info(id, NodeKind::Witness, 0));
        let mut o = seen(id, 0);
        o.in_recovery = Some(false);
        o.reachable = visible;
        self.obs.push(o);
        self
    }
    fn my_priority(mut self, p: i32) -> Case {
        let me = self.me;
        self.nodes.iter_mut().find(|n| n.id == me).unwrap().priority = p;
        self
    }
    fn repmgr_rule(mut self) -> Case {
        self.settings.quorum = Quorum::Repmgr;
        self
    }
    fn decide(&self) -> Outcome {
        let me = self.nodes.iter().find(|n| n.id == self.me).unwrap();
        let b = Ballot {
            settings: &self.settings,
            me,
            my_timeline: self.my_timeline,
            my_lsn: self.my_lsn,
            my_receiver_fresh: self.fresh,
            paused: self.paused,
            failed: &self.nodes[0],
            nodes: &self.nodes,
            obs: &self.obs,
            known_term: 1,
            sync: self.sync.clone(),
        };
        decide(&b)
    }
}

#[test]
fn most_wal_wins_then_priority_then_lowest_id() {
    assert_eq!(
        Case::new(2, 100)
            .standby(3, 100, Some(seen(3, 200)))
            .decide(),
        Outcome::Lost { winner: 3 }
    );
    assert_eq!(
        Case::new(3, 200)
            .standby(2, 100, Some(seen(2, 100)))
            .decide(),
        Outcome::Won
    );
    assert_eq!(
        Case::new(2, 100)
            .my_priority(50)
            .standby(3, 90, Some(seen(3, 100)))
            .decide(),
        Outcome::Lost { winner: 3 }
    );
    assert_eq!(
        Case::new(3, 100)
            .standby(2, 100, Some(seen(2, 100)))
            .decide(),
        Outcome::Lost { winner: 2 }
    );
}

#[test]
fn the_same_facts_give_every_node_the_same_winner() {
    let lsn = [(2, 500, 100), (3, 700, 10), (4, 700, 10)];
    let winners: Vec<NodeId> = lsn
        .iter()
        .map(|&(me, my_lsn, prio)| {
            let mut c = Case::new(me, my_lsn).my_priority(prio);
            for &(id, l, p) in lsn.iter().filter(|(id, _, _)| *id != me) {
                c = c.standby(id, p, Some(seen(id, l)));
            }
            match c.decide() {
                Outcome::Won => me,
                Outcome::Lost { winner } => winner,
                o => panic!("{o:?}"),
            }
        })
        .collect();
    assert_eq!(winners, vec![3, 3, 3]);
}

#[test]
fn priority_zero_is_never_promoted() {
    assert_eq!(
        Case::new(2, 900)
            .my_priority(0)
            .standby(3, 100, Some(seen(3, 100)))
            .decide(),
        Outcome::Lost { winner: 3 }
    );
    assert_eq!(
        Case::new(2, 900).my_priority(0).repmgr_rule().decide(),
        Outcome::NoCandidate
    );
}

#[test]
fn manual_and_paused_do_nothing() {
    let mut c = Case::new(2, 1).standby(3, 100, Some(seen(3, 1)));
    c.settings.failover = Failover::Manual;
    assert!(matches!(c.decide(), Outcome::NotCandidate(_)));
    let mut c = Case::new(2, 1).standby(3, 100, Some(seen(3, 1)));
    c.paused = true;
    assert!(matches!(c.decide(), Outcome::NotCandidate(_)));
}

#[test]
fn a_sibling_already_primary_is_followed_unless_fenced_or_older() {
    let mut p = seen(3, 0);
    p.in_recovery = Some(false);
    let c = Case::new(2, 900).standby(3, 100, Some(p.clone()));
    assert_eq!(c.decide(), Outcome::FollowExisting { new_primary: 3 });
    let mut fenced = p.clone();
    fenced.fenced = true;
    let c = Case::new(2, 900)
        .standby(3, 100, Some(fenced))
        .standby(4, 100, Some(seen(4, 1)));
    assert_eq!(c.decide(), Outcome::Won);
    let mut old = p;
    old.term = 0;
    let c = Case::new(2, 900)
        .standby(3, 100, Some(old))
        .standby(4, 100, Some(seen(4, 1)));
    assert_eq!(c.decide(), Outcome::Won);
}

#[test]
fn location_rule() {
    let mut c = Case::new(2, 1).standby(3, 100, Some(seen(3, 1)));
    c.nodes[0].location = "dc1".into();
    for n in &mut c.nodes[1..] {
        n.location = "dc2".into();
    }
    assert_eq!(c.decide(), Outcome::Cancelled(Cancel::NetworkSplit));
}

#[test]
fn a_receiver_still_streaming_from_the_primary_stops_the_election() {
    let mut c = Case::new(2, 5).standby(3, 100, Some(seen(3, 1)));
    c.fresh = true;
    assert_eq!(
        c.decide(),
        Outcome::Cancelled(Cancel::PrimaryStillVisible { by: 2 })
    );
    let mut sib = seen(3, 1);
    sib.receiver_fresh = true;
    sib.streams_from = Some(1);
    let mut c = Case::new(2, 5).standby(3, 100, Some(sib));
    assert_eq!(
        c.decide(),
        Outcome::Won,
        "a sibling's view counts only with consensus on"
    );
    c.settings.primary_visibility_consensus = true;
    assert_eq!(
        c.decide(),
        Outcome::Cancelled(Cancel::PrimaryStillVisible { by: 3 })
    );
}

#[test]
fn quorum_of_repmgr() {
    // 3 siblings + me = 4 voters; only me visible: 1 <= 2 -> cancelled.
    let c = Case::new(2, 1)
        .standby(3, 100, None)
        .standby(4, 100, None)
        .standby(5, 100, None);
    assert_eq!(
        c.repmgr_rule().decide(),
        Outcome::Cancelled(Cancel::NoQuorum {
            visible: 1,
            voters: 4
        })
    );
    let c = Case::new(2, 1)
        .standby(3, 100, Some(seen(3, 1)))
        .standby(4, 100, None)
        .standby(5, 100, None);
    assert!(matches!(
        c.repmgr_rule().decide(),
        Outcome::Cancelled(Cancel::NoQuorum { .. })
    ));
    let c = Case::new(2, 9)
        .standby(3, 100, Some(seen(3, 1)))
        .standby(4, 100, Some(seen(4, 1)))
        .standby(5, 100, None);
    assert_eq!(c.repmgr_rule().decide(), Outcome::Won);
    // Alone with no siblings: repmgr's rule promotes.
    assert_eq!(Case::new(2, 1).repmgr_rule().decide(), Outcome::Won);
}

#[test]
fn witness_counts_but_is_no_candidate() {
    assert_eq!(Case::new(2, 1).witness(9, true).decide(), Outcome::Won);
}

#[test]
fn majority_counts_the_failed_primary() {
    // Two nodes, no witness: the standby sees 1 of 2 voters.
    assert_eq!(
        Case::new(2, 1).decide(),
        Outcome::Cancelled(Cancel::NoQuorum {
            visible: 1,
            voters: 2
        })
    );
    // Three nodes, primary gone, both standbys see each other: 2 of 3.
    assert_eq!(
        Case::new(2, 9).standby(3, 100, Some(seen(3, 1))).decide(),
        Outcome::Won
    );
    // Three nodes, this standby isolated: 1 of 3.
    assert!(matches!(
        Case::new(2, 9).standby(3, 100, None).decide(),
        Outcome::Cancelled(Cancel::NoQuorum {
            visible: 1,
            voters: 3
        })
    ));
    // Primary, standby and witness: the witness makes 2 of 3.
    assert_eq!(Case::new(2, 1).witness(9, true).decide(), Outcome::Won);
    assert!(matches!(
        Case::new(2, 1).witness(9, false).decide(),
        Outcome::Cancelled(Cancel::NoQuorum { .. })
    ));
}

#[test]
fn a_fenced_primary_of_a_newer_history_means_no_promotion() {
    let mut newer = seen(3, 1);
    newer.timeline = 2;
    newer.in_recovery = Some(false);
    newer.fenced = true;
    assert_eq!(
        Case::new(2, 9)
            .standby(3, 100, Some(newer))
            .standby(4, 100, Some(seen(4, 1)))
            .decide(),
        Outcome::Cancelled(Cancel::NewerHistory { by: 3 })
    );
}

#[test]
fn a_standby_of_a_newer_history_wins_over_more_wal_on_an_older_one() {
    let mut newer = seen(3, 1);
    newer.timeline = 2;
    newer.term = 5;
    assert_eq!(
        Case::new(2, 9).standby(3, 100, Some(newer)).decide(),
        Outcome::Lost { winner: 3 }
    );
}

#[test]
fn lsns_are_compared_on_the_newest_timeline_only() {
    // Node 3 has more WAL, on an older timeline: node 2 wins.
    let mut old = seen(3, 900);
    old.timeline = 1;
    let mut c = Case::new(2, 100).standby(3, 100, Some(old));
    c.my_timeline = 2;
    // (node 3 is behind: its timeline is older, not newer history)
    assert_eq!(c.decide(), Outcome::Won);
}

#[test]
fn a_majority_without_the_sync_standby_promotes_nobody() {
    // FIRST 1 (node3): node3 is out of sight.
    let mut c = Case::new(2, 100)
        .standby(3, 100, None)
        .standby(4, 100, Some(seen(4, 50)))
        .witness(9, true);
    c.sync = SyncSpec::parse("FIRST 1 (node3)");
    assert!(matches!(
        c.decide(),
        Outcome::Cancelled(Cancel::SyncUnsafe(_))
    ));
    // The sync standby visible and ahead: it wins.
    let mut c = Case::new(2, 100)
        .standby(3, 100, Some(seen(3, 150)))
        .standby(4, 100, None)
        .witness(9, true);
    c.sync = SyncSpec::parse("FIRST 1 (node3)");
    assert_eq!(c.decide(), Outcome::Lost { winner: 3 });
    // The sync standby visible but priority 0 and ahead: nobody is sure.
    let mut c = Case::new(2, 100)
        .standby(3, 0, Some(seen(3, 150)))
        .standby(4, 100, None)
        .witness(9, true);
    c.sync = SyncSpec::parse("node3");
    assert!(matches!(
        c.decide(),
        Outcome::Cancelled(Cancel::SyncUnsafe(_))
    ));
}
