//! Reaching the registered nodes of a cluster: connecting to one by its
//! record with errors that name it, asking all at once, and finding the
//! node that runs as primary. Used by the commands, the daemon and ops.

use std::time::Duration;

use super::nodes::{NodeRecord, NodeType};
use super::session::Session;
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result};

/// The application name of these connections (repmgrd's own sessions to
/// its local node and its upstream say [`DAEMON_APP_NAME`]).
pub const APP_NAME: &str = "repmgr";

/// The application name of repmgrd's sessions to its local node and its
/// upstream.
pub const DAEMON_APP_NAME: &str = "repmgrd";

/// Connects to a node, with an error naming the node.
pub fn connect_node(ci: &ConnInfo, node_name: &str, node_id: i32) -> Result<Session> {
    super::connect::connect(ci, APP_NAME).map_err(|e| {
        let what = if node_name.is_empty() {
            "unable to connect to the database".to_string()
        } else {
            format!("unable to connect to node \"{node_name}\" (ID: {node_id})")
        };
        let detail = e.reason().to_string();
        let hint = e
            .hint
            .unwrap_or_else(|| "check the node is running and its conninfo is correct".into());
        Error::new(e.code, what).detail(detail).hint(hint)
    })
}

/// Connects to a registered node by its record.
pub fn connect_record(n: &NodeRecord) -> Result<Session> {
    let ci = crate::conninfo::parse_described(
        &n.conninfo,
        &format!("conninfo of node \"{}\"", n.node_name),
    )?;
    connect_node(&ci, &n.node_name, n.node_id)
}

/// A registered node, connected to if it answered within its deadline.
pub struct Reached {
    pub node: NodeRecord,
    pub conn: Option<Session>,
    /// Some(false) for a node running as primary.
    pub in_recovery: Option<bool>,
}

/// The longest one node can take to answer: its connect deadline (per
/// host) plus one query, with a second to spare. Unparsable conninfo fails
/// at once, so it needs no time.
fn answer_limit(nodes: &[NodeRecord]) -> Duration {
    nodes
        .iter()
        .filter_map(|n| ConnInfo::parse(&n.conninfo).ok())
        .filter_map(|ci| super::connect::attempt_limit(&ci, APP_NAME))
        .max()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1)
}

/// Connects to every node at once (one deadline in total, not one per
/// node) and asks each whether it is in recovery.
pub fn reach_all(nodes: &[NodeRecord]) -> Vec<Reached> {
    let limit = answer_limit(nodes);
    let answers = crate::parallel::map_within(nodes.to_vec(), limit, |node: NodeRecord| {
        let mut conn = connect_record(&node).ok();
        let in_recovery = conn
            .as_mut()
            .and_then(|c| super::server::in_recovery(c).ok());
        (conn, in_recovery)
    });
    nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| {
            let (conn, in_recovery) = a.unwrap_or((None, None));
            Reached {
                node: n.clone(),
                conn,
                in_recovery,
            }
        })
        .collect()
}

/// Finds the current primary from a node's metadata: the registered active
/// primary if it answers and is not in recovery, else any registered node
/// that answers out of recovery (see [`primary_rank`]). All nodes are
/// asked at once, so a hung node costs one connect deadline in total.
/// Returns its record and connection.
pub fn find_primary(meta: &mut Session) -> Result<Option<(NodeRecord, Session)>> {
    let nodes = super::nodes::all(meta)?;
    Ok(find_primary_among(&nodes))
}

/// The writable primary among `nodes` (a copy of the records kept from
/// before), asking every one at once.
pub fn find_primary_among(nodes: &[NodeRecord]) -> Option<(NodeRecord, Session)> {
    let nodes: Vec<NodeRecord> = nodes
        .iter()
        .filter(|n| n.node_type != NodeType::Witness)
        .cloned()
        .collect();
    let mut primaries: Vec<Reached> = reach_all(&nodes)
        .into_iter()
        .filter(|r| r.in_recovery == Some(false) && r.conn.is_some())
        .collect();
    primaries.sort_by_key(|r| primary_rank(&r.node));
    primaries
        .into_iter()
        .next()
        .and_then(|r| r.conn.map(|c| (r.node, c)))
}

/// The order in which nodes that answer out of recovery are taken for the
/// primary: the registered active primary first, then other active nodes
/// (a standby just promoted, while this copy of the records still says
/// standby), then inactive ones, each by node_id. An old primary marked
/// inactive by a failover that runs again as a primary without a repmgrd
/// to demote it comes last: metadata written there (events, repmgrd's
/// status) would be lost to the cluster, or fail on its read-only fence.
pub fn primary_rank(n: &NodeRecord) -> (bool, bool, i32) {
    (
        !(n.node_type == NodeType::Primary && n.active),
        !n.active,
        n.node_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node_id: i32, node_type: NodeType, active: bool) -> NodeRecord {
        NodeRecord {
            node_id,
            upstream_node_id: None,
            active,
            node_name: format!("node{node_id}"),
            node_type,
            location: "default".into(),
            priority: 100,
            conninfo: String::new(),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    #[test]
    fn an_inactive_old_primary_is_taken_for_the_primary_last() {
        // After two failovers, in a copy of the records that has not seen
        // the second yet: node1 (inactive since the first) runs again as a
        // primary, node2 (the registered primary) is down, node3 (still a
        // standby here) was just promoted.
        let mut answering = [
            rec(1, NodeType::Primary, false),
            rec(3, NodeType::Standby, true),
        ];
        answering.sort_by_key(primary_rank);
        assert_eq!(answering[0].node_id, 3);
        // The registered active primary comes first of all.
        let mut answering = [
            rec(3, NodeType::Standby, true),
            rec(1, NodeType::Primary, false),
            rec(4, NodeType::Primary, true),
        ];
        answering.sort_by_key(primary_rank);
        let ids: Vec<i32> = answering.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, vec![4, 3, 1]);
    }
}
