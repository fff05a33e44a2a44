//! The Status and Upstream cells of a node, from its probe: the columns
//! `cluster show` and `service status` share, with the issue each raises.

use super::probe::{Probe, Reach};
use crate::db::nodes::{NodeRecord, NodeType};

/// The Status cell for a node, plus a warning when it is an issue.
pub fn status_cell(n: &NodeRecord, p: &Probe) -> (String, Option<String>) {
    let who = format!("node {}", n);
    if p.reach == Reach::Up && p.fenced && n.node_type != NodeType::Witness {
        // Plainly: this server refuses writes because repmgrd fenced it.
        return (
            "! fenced".into(),
            Some(format!(
                "{who} is fenced: it runs as a primary but is read-only"
            )),
        );
    }
    if p.reach != Reach::Up {
        return unreachable_cell(n, p.reach, &who);
    }
    running_cell(n, p.in_recovery, &who)
}

/// [`status_cell`] of a node that did not let us in.
fn unreachable_cell(n: &NodeRecord, reach: Reach, who: &str) -> (String, Option<String>) {
    if !n.active {
        return ("- failed".into(), None);
    }
    let cell = if reach == Reach::Rejected {
        "? running"
    } else {
        "? unreachable"
    };
    let article = match n.node_type {
        NodeType::Primary => "an active primary",
        NodeType::Witness => "an active witness",
        _ => "an active standby",
    };
    (
        cell.into(),
        Some(format!(
            "{who} is registered as {article} but is unreachable"
        )),
    )
}

/// [`status_cell`] of a node that answered: its record against what it
/// runs as.
fn running_cell(n: &NodeRecord, in_recovery: Option<bool>, who: &str) -> (String, Option<String>) {
    let kind = n.node_type;
    match (kind, n.active, in_recovery) {
        (_, _, None) => (
            "! unknown".into(),
            Some(format!("{who} has unknown replication status")),
        ),
        (NodeType::Primary, true, Some(false)) => ("* running".into(), None),
        (NodeType::Primary, true, Some(true)) => (
            "! running as standby".into(),
            Some(format!(
                "{who} is registered as primary but running as standby"
            )),
        ),
        (NodeType::Primary, false, Some(false)) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (NodeType::Primary, false, Some(true)) => (
            "! running as standby".into(),
            Some(format!(
                "{who} is registered as an inactive primary but running as standby"
            )),
        ),
        (NodeType::Witness, true, _) => ("* running".into(), None),
        (NodeType::Witness, false, _) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (_, true, Some(true)) => ("  running".into(), None),
        (_, true, Some(false)) => (
            "! running as primary".into(),
            Some(format!(
                "{who} is registered as standby but running as primary"
            )),
        ),
        (_, false, Some(true)) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (_, false, Some(false)) => (
            "! running as primary".into(),
            Some(format!(
                "{who} is running as primary but the repmgr node record is inactive"
            )),
        ),
    }
}

/// The Upstream cell: the name, marked `?` when the node or its upstream
/// cannot be asked and `!` when the node is not streaming from it.
pub fn upstream_cell(
    n: &NodeRecord,
    p: &Probe,
    nodes: &[NodeRecord],
    probes: &[Probe],
) -> (String, Option<String>) {
    let up_idx = n
        .upstream_node_id
        .and_then(|id| nodes.iter().position(|x| x.node_id == id));
    if p.reach != Reach::Up {
        // As repmgr 5.3: the node's own record cannot be read, so whatever
        // its type or state (a primary too, with no upstream: a lone `?`),
        // the recorded upstream is unverified.
        let cell = match (n.upstream_node_id, up_idx) {
            (None, _) => "?".to_string(),
            (Some(_), Some(i)) => format!("? {}", nodes[i].node_name),
            (Some(id), None) => format!("? {id}"),
        };
        return (cell, None);
    }
    let Some(up_id) = n.upstream_node_id else {
        return (String::new(), None);
    };
    let Some(idx) = up_idx else {
        return (format!("? {up_id}"), None);
    };
    let up = &nodes[idx];
    let up_probe = &probes[idx];
    if n.node_type != NodeType::Standby {
        // A witness connects by SQL, not by streaming: nothing to verify.
        return (up.node_name.clone(), None);
    }
    if p.in_recovery != Some(true) {
        return (up.node_name.clone(), None);
    }
    if up_probe.reach != Reach::Up {
        return (format!("? {}", up.node_name), None);
    }
    if up_probe.attached.iter().any(|a| a == &n.node_name) {
        (up.node_name.clone(), None)
    } else {
        (
            format!("! {}", up.node_name),
            Some(format!(
                "node {} is not attached to its upstream node {}",
                n, up
            )),
        )
    }
}
