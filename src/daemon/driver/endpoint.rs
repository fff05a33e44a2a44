//! What the HTTP endpoint ([`crate::daemon::http`]) reads of this repmgrd:
//! the core's health view, taken under the core's lock at the moment of
//! the request (so a lease that has run out is seen as run out even if the
//! main loop is stuck), and what the main loop last read of the local
//! server and counted.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::observed::{Observed, Shared};
use super::{lock, Clock, Driver};
use crate::daemon::core::health::HealthRole;
use crate::daemon::core::types::{Done, Input};
use crate::daemon::core::Core;
use crate::daemon::http::{self, View};
use crate::ops::cluster_view;

fn observed(o: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    o.lock().unwrap_or_else(|e| e.into_inner())
}

struct Source {
    core: Arc<Mutex<Core>>,
    clock: Clock,
    observed: Shared,
    node_id: i32,
    node_name: String,
    started_unix: u64,
    pid: u32,
}

impl http::Source for Source {
    fn view(&self) -> View {
        let health = lock(&self.core).health(self.clock.now());
        let o = observed(&self.observed);
        let row = o.row.as_ref();
        let standby = row.is_some_and(|r| r.in_recovery);
        let lag_bytes = row.filter(|_| standby).and_then(|r| {
            let end = u64::from(r.sender_end_lsn?);
            let replayed = u64::from(r.replay_lsn?);
            Some(end.saturating_sub(replayed))
        });
        let upstream_name = health.upstream.and_then(|id| {
            o.nodes
                .iter()
                .find(|n| n.node_id == id)
                .map(|n| n.node_name.clone())
        });
        View {
            node_id: self.node_id,
            node_name: self.node_name.clone(),
            upstream_name,
            lag_bytes,
            lag_secs: row.and_then(|r| r.lag_secs),
            lsn: row.map(|r| r.lsn),
            failovers: o.failovers,
            fences: o.fences,
            cycle_ms: o.cycle_ms,
            cycle_age_ms: o
                .cycle_at
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            interval_ms: o.interval_ms,
            pid: self.pid,
            started_unix: self.started_unix,
            health,
        }
    }

    fn cluster(&self) -> Option<String> {
        let nodes = observed(&self.observed).nodes.clone();
        if nodes.is_empty() {
            return None;
        }
        // Every node asked in parallel, each within its connect deadline.
        let report = cluster_view::cluster_report(&nodes, false);
        Some(cluster_view::render_json(&report))
    }
}

impl Driver {
    /// Starts the endpoint when `http_listen` is set.
    pub(super) fn start_endpoint(&mut self) -> crate::error::Result<()> {
        let listen = self.cfg().http_listen.trim().to_string();
        observed(&self.observed).interval_ms =
            1000 * u64::try_from(self.cfg().monitor_interval_secs.max(1)).unwrap_or(1);
        if listen.is_empty() {
            return Ok(());
        }
        let src = Source {
            core: self.core.clone(),
            clock: self.clock,
            observed: self.observed.clone(),
            node_id: self.node_id(),
            node_name: self.cfg().node_name.clone(),
            pid: std::process::id(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let addr = http::start(&listen, Arc::new(src))?;
        observed(&self.observed).enabled = true;
        crate::log_notice!("HTTP endpoint listening on {addr} (http_listen)");
        Ok(())
    }

    /// What systemd's status line says: the role, and a standby's
    /// upstream.
    pub(super) fn status_line(&self) -> String {
        let h = lock(&self.core).health(self.clock.now());
        let name = |id: i32| {
            self.nodes.iter().find(|n| n.node_id == id).map_or_else(
                || format!("node {id}"),
                |n| format!("\"{}\" (ID: {id})", n.node_name),
            )
        };
        let mut line = match (h.role, h.upstream) {
            (HealthRole::Standby, Some(up)) => format!("standby, upstream {}", name(up)),
            (role, _) => role.name().to_string(),
        };
        if !h.running {
            line.push_str("; local server not answering");
        } else if h.superseded.is_some() {
            line.push_str("; superseded");
        } else if h.fenced {
            line.push_str("; fenced");
        } else if h.isolated {
            line.push_str("; isolated");
        }
        if h.paused {
            line.push_str("; paused");
        }
        line
    }

    /// After each monitoring cycle: systemd hears that monitoring runs
    /// (READY=1, once) and of any change of role or upstream.
    pub(super) fn notify_cycle(&mut self) {
        if self.notifier.is_none() {
            return;
        }
        let line = self.status_line();
        if let Some(n) = &mut self.notifier {
            n.cycle(&line);
        }
    }

    /// A monitoring cycle's read of the local server, timed.
    pub(super) fn note_cycle(&mut self, began: Instant) {
        let mut o = observed(&self.observed);
        if !o.enabled {
            return;
        }
        o.cycle_at = Some(began);
        o.cycle_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        o.row.clone_from(&self.last_row);
        o.nodes.clone_from(&self.nodes);
    }

    /// Counts what the endpoint's counters count.
    pub(super) fn count(&self, input: &Input) {
        let mut o = observed(&self.observed);
        match input {
            Input::Done(Done::Promoted { ok: Ok(()) }) => o.failovers += 1,
            Input::Done(Done::Fenced { ok: Ok(()), .. }) => o.fences += 1,
            Input::Reload(s) => o.interval_ms = s.monitor_interval_ms,
            _ => {}
        }
    }
}
