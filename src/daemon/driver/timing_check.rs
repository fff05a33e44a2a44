//! The timing check repmgrd runs at start and after each SIGHUP: what
//! this node promises (its lease), what in its settings works against
//! their purpose, and which other running repmgrds published a different
//! timing. No timing is unsafe (each promise is kept on the voter's own
//! clock, and a primary fences against the shortest promise it holds), so
//! these are warnings: settings that differ only make failover and fencing
//! times differ from node to node.

use super::{settings, Driver};
use crate::daemon::core::timing::{timing_differences, Published};
use crate::db;
use crate::db::daemon_status::TimingRow;

impl Driver {
    /// Logs the lease in force and warns about what defeats it.
    pub(super) fn check_timing(&mut self) {
        let s = settings(self.cfg(), self.is_witness);
        crate::log_info!(
            "this repmgrd promises a primary not to vote for {} ms after each heartbeat; an isolated primary is read-only after half of that and stopped {} ms before it ends",
            s.lease_ms(),
            s.stop_margin_ms()
        );
        for w in s.timing_warnings() {
            crate::log_warning!("{w}");
        }
        let me = self.node_id();
        let Some(c) = self.local.as_mut() else {
            return;
        };
        let rows = match db::daemon_status::published_timings(c) {
            Ok(r) => r,
            Err(e) => {
                crate::log_debug!("timing of the other repmgrds not read: {}", e.reason());
                return;
            }
        };
        let others: Vec<(String, Published)> = rows
            .iter()
            .filter(|r| r.node_id != me)
            .map(|r| (self.label(r.node_id), published(r)))
            .collect();
        let warnings = timing_differences(s.published(), &others);
        for w in &warnings {
            crate::log_warning!("{w}");
        }
        if !warnings.is_empty() {
            crate::log_hint!(
                "every node is expected to use the same monitor_interval_secs, reconnect_attempts and reconnect_interval (see repmgrd(8), TIMING)"
            );
        }
    }

    /// `node "name" (ID: n)`, or `node n` for a node not in the list.
    fn label(&self, id: i32) -> String {
        match self.nodes.iter().find(|n| n.node_id == id) {
            Some(n) => format!("node \"{}\" (ID: {id})", n.node_name),
            None => format!("node {id}"),
        }
    }
}

/// A row's timing in the units the core compares.
fn published(r: &TimingRow) -> Published {
    let ms = |s: i32| u64::try_from(s.max(0)).unwrap_or(0) * 1000;
    Published {
        lease_ms: u64::try_from(r.lease_ms.max(0)).unwrap_or(0),
        reconnect_attempts: u32::try_from(r.reconnect_attempts.max(0)).unwrap_or(0),
        reconnect_interval_ms: ms(r.reconnect_interval),
        monitor_interval_ms: ms(r.monitor_interval_secs.max(1)),
    }
}
