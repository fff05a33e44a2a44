//! A primary's child nodes: which attached standbys came and went, and
//! the child_nodes_* thresholds.

use super::*;

impl Primary {
    /// The primary watches its registered downstream nodes (child_nodes_*).
    pub(super) fn check_children(&mut self, core: &mut Ctx, now: Time, f: &LocalFacts) {
        let Some(every) = core.s.child_nodes_check_interval_ms else {
            return;
        };
        if now < self.next_child_check {
            return;
        }
        self.next_child_check = now.plus(every);
        let me = core.s.node_id;
        let include_witness = core.s.child_nodes_connected_include_witness;
        let (mut missing, mut connected) = (0, 0);
        let children: Vec<NodeInfo> = f
            .nodes
            .iter()
            .filter(|n| n.upstream == Some(me) && n.active)
            .filter(|n| include_witness || n.kind != NodeKind::Witness)
            .cloned()
            .collect();
        for c in &children {
            // A witness connects by SQL, not by streaming: it counts as attached.
            let now_attached = c.kind == NodeKind::Witness || f.attached.contains(&c.name);
            let what = match (self.children.get(&c.id).copied(), now_attached) {
                (Some(true), false) => Some(("child_node_disconnect", "has disconnected")),
                (Some(false), true) => Some(("child_node_reconnect", "has reconnected")),
                (None, true) => Some(("child_node_new_connect", "has connected")),
                _ => None,
            };
            if let Some((ev, what)) = what {
                let details = format!("node {c} {what}");
                core.log(Level::Notice, details.clone());
                core.event(ev, true, details, Some(me));
            }
            self.children.insert(c.id, now_attached);
            if now_attached {
                connected += 1;
            } else {
                missing += 1;
            }
        }
        self.children_threshold(core, now, missing, connected);
    }

    pub(super) fn children_threshold(
        &mut self,
        core: &mut Ctx,
        now: Time,
        missing: i32,
        connected: i32,
    ) {
        let s = &core.s;
        let too_many_missing = s.child_nodes_disconnect_min_count >= 0
            && missing >= s.child_nodes_disconnect_min_count
            && missing > 0;
        let too_few_connected =
            s.child_nodes_connected_min_count >= 0 && connected < s.child_nodes_connected_min_count;
        if !(too_many_missing || too_few_connected) {
            self.children_missing_since = None;
            return;
        }
        let since = *self.children_missing_since.get_or_insert(now);
        if now.since(since) < s.child_nodes_disconnect_timeout_ms {
            return;
        }
        self.children_missing_since = None;
        let details = format!("{missing} child node(s) disconnected, {connected} connected");
        core.log(Level::Warning, details.clone());
        core.out.push(Action::ChildrenDisconnected { details });
    }
}
