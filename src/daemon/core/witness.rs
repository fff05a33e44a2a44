//! A witness (repmgr's `monitor_streaming_witness`): it watches whichever
//! node is primary, keeps its record pointing there and a copy of the node
//! records, and votes. It never promotes or follows.

use super::context::Ctx;
use super::settings::Settings;
use super::types::*;

#[derive(Debug, Clone)]
pub(super) struct Witness {
    /// The primary this witness's record points at.
    primary: Option<NodeId>,
    /// When the primary last answered a check.
    last_ok: Option<Time>,
    /// Since when no primary has answered.
    lost_since: Option<Time>,
    next_sync: Time,
    local_was_down: bool,
}

impl Witness {
    pub(super) fn new(_s: &Settings) -> Witness {
        Witness {
            primary: None,
            last_ok: None,
            lost_since: None,
            next_sync: Time(0),
            local_was_down: false,
        }
    }

    pub(super) fn status_line(&self, s: &Settings) -> String {
        let me = format!("\"{}\" (ID: {})", s.node_name, s.node_id);
        match self.primary.filter(|_| self.lost_since.is_none()) {
            Some(p) => format!("witness node {me} monitoring primary node {p} in normal state"),
            None => format!("witness node {me} monitoring in degraded state: no primary reachable"),
        }
    }

    pub(super) fn sees_primary(&self, s: &Settings, now: Time) -> Option<NodeId> {
        let window = s.failure_window_ms().max(2 * s.monitor_interval_ms);
        self.primary
            .filter(|_| self.last_ok.is_some_and(|t| now.since(t) <= window))
    }

    pub(super) fn tick(&mut self, core: &mut Ctx, _now: Time, f: &LocalFacts) {
        if self.local_was_down {
            self.local_was_down = false;
            core.log(
                Level::Notice,
                format!("reconnected to local node {}", core.me()),
            );
        }
        if self.primary.is_none() {
            let me = core.s.node_id;
            self.primary = f.nodes.iter().find(|n| n.id == me).and_then(|n| n.upstream);
        }
        match self.primary {
            Some(p) if self.lost_since.is_none() => {
                core.check(p);
            }
            _ => {
                core.gather();
            }
        }
    }

    pub(super) fn local_down(&mut self, core: &mut Ctx, _now: Time) {
        if !self.local_was_down {
            self.local_was_down = true;
            core.log(
                Level::Warning,
                format!("unable to connect to local node {}", core.me()),
            );
        }
    }

    pub(super) fn heard_primary(&mut self, now: Time, from: NodeId) {
        if self.primary == Some(from) {
            self.last_ok = Some(now);
        }
    }

    pub(super) fn on_input(&mut self, core: &mut Ctx, now: Time, input: Input) {
        match input {
            Input::UpstreamCheck {
                node,
                ok,
                in_recovery,
                ..
            } if Some(node) == self.primary => {
                if ok && in_recovery != Some(true) {
                    self.last_ok = Some(now);
                    if let Some(since) = self.lost_since.take() {
                        core.log(
                            Level::Notice,
                            format!(
                                "reconnected to primary node {node} after {} seconds",
                                now.since(since) / 1000
                            ),
                        );
                        core.event(
                            "repmgrd_upstream_reconnect",
                            true,
                            format!("witness reconnected to primary node {node}"),
                            None,
                        );
                    }
                    core.out.push(Action::WriteStatus {
                        upstream: Some(node),
                    });
                    if now >= self.next_sync {
                        self.next_sync = now.plus(core.s.witness_sync_interval_ms.max(1_000));
                        core.out.push(Action::WitnessSync {
                            primary: node,
                            repoint: false,
                        });
                    }
                } else {
                    self.lose(core, now);
                    core.gather();
                }
            }
            Input::Cluster(obs) => {
                let known = core.book.highest_term();
                let found = obs
                    .iter()
                    .filter(|o| o.may_follow(known, core.s.safety))
                    .filter(|o| core.node(o.id).is_some_and(|n| n.kind != NodeKind::Witness))
                    .min_by_key(|o| o.id)
                    .map(|o| o.id);
                match found {
                    Some(p) if Some(p) != self.primary => self.repoint(core, now, p),
                    Some(p) => {
                        // The same primary, answering again.
                        core.check(p);
                    }
                    None => self.lose(core, now),
                }
            }
            _ => {}
        }
    }

    fn lose(&mut self, core: &mut Ctx, now: Time) {
        if self.lost_since.is_some() {
            return;
        }
        self.lost_since = Some(now);
        let up = self.primary.unwrap_or_default();
        core.log(
            Level::Warning,
            format!("unable to connect to the primary (node {up})"),
        );
        core.event(
            "repmgrd_upstream_disconnect",
            false,
            format!("witness lost connection to primary node {up}"),
            None,
        );
    }

    /// After a failover: the witness's record on the new primary points at
    /// it, and the copy is refreshed at once.
    fn repoint(&mut self, core: &mut Ctx, now: Time, primary: NodeId) {
        let first = self.primary.is_none();
        self.primary = Some(primary);
        self.lost_since = None;
        self.last_ok = Some(now);
        self.next_sync = now.plus(core.s.witness_sync_interval_ms.max(1_000));
        core.out.push(Action::WitnessSync {
            primary,
            repoint: true,
        });
        if !first {
            let name = core
                .node(primary)
                .map_or(format!("node {primary}"), |n| format!("{n}"));
            let details = format!(
                "witness node {} now monitoring new primary {name}",
                core.me()
            );
            core.log(Level::Notice, details.clone());
            core.event("repmgrd_failover_follow", true, details, Some(primary));
        }
    }
}

#[cfg(test)]
impl Witness {
    /// `witness/watching N`, `witness/lost` or `witness/none`, for the
    /// phase tests.
    pub(super) fn phase_name(&self) -> String {
        match (self.primary, self.lost_since) {
            (Some(p), None) => format!("witness/watching {p}"),
            (_, Some(_)) => "witness/lost".into(),
            (None, None) => "witness/none".into(),
        }
    }
}
