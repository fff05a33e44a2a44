//! This repmgrd's rows on the primary: its status and peer address, its
//! record, the witness's copy of the records, and events. Everything here
//! goes through one session to the primary, found again whenever a write
//! fails (the primary may have changed), and events that cannot be
//! recorded yet wait for the next chance.

use std::time::{Duration, Instant};

use super::Driver;
use crate::daemon::core::types::*;
use crate::db::{self, reach, Session};
use crate::error::Result;
use crate::events::{self, Event};

use super::pending::{PendingEvent, RecordWrite, PENDING_EVENTS};

impl Driver {
    /// A session to the primary for writes: the local one on a primary,
    /// else found from the metadata (not more often than every 5 s).
    pub(super) fn ensure_writer(&mut self) {
        if let Some((_, w)) = self.writer.as_mut() {
            if !w.is_closed() {
                return;
            }
        }
        self.writer = None;
        let id = self.node_id();
        let local_primary = !self.is_witness
            && self
                .local
                .as_mut()
                .is_some_and(|c| matches!(db::server::in_recovery(c), Ok(false)));
        // On a primary the writer is a second local session: no search,
        // so no back-off (the last writes at shutdown must not be skipped
        // because a search failed a moment before).
        if local_primary {
            if let Ok(mut c) = db::connect::connect(&self.conninfo, reach::DAEMON_APP_NAME) {
                let _ = db::fence::exempt_session(&mut c);
                self.writer = Some((id, c));
            }
            return;
        }
        if Instant::now() < self.writer_retry_at {
            return;
        }
        self.writer_retry_at = Instant::now() + Duration::from_secs(5);
        // The local copy of the records, else (the local server is down)
        // the copy kept from the last read.
        let found = match self.local.as_mut() {
            Some(local) => reach::find_primary(local).ok().flatten(),
            None => reach::find_primary_among(&self.nodes),
        };
        if let Some((rec, c)) = found {
            self.writer = Some((rec.node_id, c));
        }
    }

    /// Writes that waited for a primary (every cycle, whether the local
    /// server answers or not).
    pub(super) fn flush_pending(&mut self) {
        if self.pending_events.events.is_empty() && self.pending_events.record.is_none() {
            return;
        }
        self.flush_record();
        self.flush_events();
    }

    /// Runs `f` on the session to the primary. A failure drops that
    /// session and tries once more on a primary found anew (a failover or
    /// a restart since); the second failure is logged as `what`.
    pub(super) fn on_primary<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Session, NodeId) -> Result<T>,
    ) -> Option<T> {
        for attempt in 0..2 {
            self.ensure_writer();
            let (primary, w) = self.writer.as_mut()?;
            let primary = *primary;
            match f(w, primary) {
                Ok(v) => return Some(v),
                Err(e) => {
                    self.writer = None;
                    if attempt == 0 {
                        self.writer_retry_at = Instant::now();
                    } else {
                        crate::log_warning!("unable to {what}: {}", e.reason());
                    }
                }
            }
        }
        None
    }

    /// This repmgrd's row on the primary: started, where it listens, its
    /// failover mode and timing.
    pub(super) fn publish(&mut self) {
        let id = self.node_id();
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cfg = self.cfg().clone();
        let lease =
            i64::try_from(super::settings(&cfg, self.is_witness).lease_ms()).unwrap_or(i64::MAX);
        let reconnect = (cfg.reconnect_attempts, cfg.reconnect_interval);
        let failover = match cfg.failover {
            crate::config::Failover::Automatic => "automatic",
            crate::config::Failover::Manual => "manual",
        };
        let (pid, pid_file, addr) = (self.pid, self.pid_file.clone(), self.peer_addr.clone());
        let done = self.on_primary("record repmgrd's status", |w, _| {
            if !db::daemon_status::table_exists(w)? {
                return Ok(false);
            }
            db::daemon_status::register_start(
                w,
                id,
                pid,
                pid_file.as_deref(),
                &host,
                cfg.monitor_interval_secs,
            )?;
            if let Some(a) = &addr {
                db::daemon_status::publish_peer(
                    w, id, &a.host, a.port, lease, reconnect, failover,
                )?;
            }
            Ok(true)
        });
        self.published = done == Some(true);
    }

    /// A primary says in its row whether it fences itself.
    pub(super) fn publish_fencing(&mut self, fences: bool) {
        let id = self.node_id();
        if let Some(c) = self.local.as_mut() {
            if let Err(e) = db::daemon_status::publish_fencing(c, id, fences) {
                crate::log_warning!("unable to publish the fencing mode: {}", e.reason());
            }
        }
    }

    /// The heartbeat row (and, on a standby, a monitoring history row);
    /// then events that are waiting.
    pub(super) fn write_status(&mut self, upstream: Option<NodeId>) {
        let (id, pid) = (self.node_id(), self.pid);
        let standby = self.last_row.as_ref().is_some_and(|r| r.in_recovery);
        if !standby && !self.is_witness {
            // A primary writes on its own server.
            if let Some(c) = self.local.as_mut() {
                let _ = db::daemon_status::heartbeat(c, id, pid, None, false);
                let _ = db::daemon_status::publish_sync_names(c, id);
            }
        } else {
            let history = self.cfg().monitoring_history && standby;
            let row = self.last_row.clone();
            self.on_primary("write repmgrd's status", |w, primary| {
                db::daemon_status::heartbeat(w, id, pid, upstream, true)?;
                if let (true, Some(r)) = (history, &row) {
                    if let (Some(recv), Some(replay)) = (r.receive_lsn, r.replay_lsn) {
                        if let Err(e) = db::monitoring::insert_history(
                            w,
                            primary,
                            id,
                            recv,
                            replay,
                            r.last_replay.as_deref(),
                        ) {
                            crate::log_warning!(
                                "unable to write monitoring history: {}",
                                e.reason()
                            );
                        }
                    }
                }
                Ok(())
            });
        }
        if !self.published {
            self.publish();
        }
        self.flush_pending();
    }

    pub(super) fn set_active(&mut self, active: bool) {
        self.pending_events.record = Some(RecordWrite::Active(active));
        self.flush_record();
    }

    pub(super) fn record_upstream(&mut self, upstream: NodeId) {
        self.pending_events.record = Some(RecordWrite::Upstream(upstream));
        self.flush_record();
    }

    /// The last change to this node's record, until it is written.
    fn flush_record(&mut self) {
        let Some(op) = self.pending_events.record else {
            return;
        };
        let id = self.node_id();
        let done = self.on_primary("update this node's record", |w, _| match op {
            RecordWrite::Active(active) => db::nodes::set_active(w, id, active),
            RecordWrite::Upstream(u) => db::nodes::set_upstream(w, id, u),
        });
        if done.is_some() {
            self.pending_events.record = None;
        }
    }

    /// Witness mode: point this witness's record at `primary`, copy the
    /// node records and the secret.
    pub(super) fn witness_sync(&mut self, primary: NodeId, repoint: bool) {
        let id = self.node_id();
        if self.writer.as_ref().is_some_and(|(p, _)| *p != primary) {
            self.writer = None;
        }
        if self.writer.is_none() {
            if let Some(rec) = self.record(primary) {
                if let Ok(c) = reach::connect_record(&rec) {
                    self.writer = Some((primary, c));
                }
            }
        }
        let (Some((_, w)), Some(l)) = (self.writer.as_mut(), self.local.as_mut()) else {
            return;
        };
        if repoint {
            match db::nodes::set_witness_upstream(w, id, primary) {
                Ok(true) => {}
                Ok(false) => crate::log_warning!(
                    "this witness (ID: {id}) has no witness record on node {primary}"
                ),
                Err(e) => {
                    crate::log_warning!("unable to update this witness's record: {}", e.reason())
                }
            }
        }
        match crate::ops::witness::copy_node_records(w, l) {
            Ok(n) => crate::log_debug!("copied {n} node record(s) from the primary"),
            Err(e) => crate::log_warning!(
                "unable to copy the node records from the primary: {}",
                e.reason()
            ),
        }
        if let Ok(Some((cluster, secret))) = db::secret::get(w) {
            let _ = db::secret::copy(l, cluster, &secret);
        }
    }

    /// Records an event (on `on`, or the primary; kept for later when
    /// neither can be written to) and runs the notification hook in the
    /// background in every case.
    pub(super) fn event(
        &mut self,
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
        on: Option<NodeId>,
    ) {
        let cfg = self.loaded.config.clone();
        let ev = Event {
            successful: ok,
            primary_id,
            ..Event::for_node(&cfg, name, details.clone())
        };
        let mut ts = on.and_then(|n| {
            let rec = self.record(n)?;
            let mut c = reach::connect_record(&rec).ok()?;
            match db::server::in_recovery(&mut c) {
                Ok(false) => events::write(&mut c, &ev).ok(),
                _ => None,
            }
        });
        if ts.is_none() {
            ts = self.write_event(&ev);
        }
        if ts.is_none() {
            let p = &mut self.pending_events.events;
            if p.len() >= PENDING_EVENTS {
                p.pop_front();
            }
            p.push_back(PendingEvent {
                name,
                ok,
                details,
                primary_id,
            });
        }
        events::notify_in_background(&cfg, &ev, ts.as_deref());
    }

    /// On the local server when it is the primary, else on the primary.
    fn write_event(&mut self, ev: &Event<'_>) -> Option<String> {
        let primary_local =
            !self.is_witness && self.last_row.as_ref().is_some_and(|r| !r.in_recovery);
        if primary_local {
            if let Some(c) = self.local.as_mut() {
                if let Ok(t) = events::write(c, ev) {
                    return Some(t);
                }
            }
        }
        self.on_primary(&format!("record event \"{}\"", ev.event), |w, _| {
            events::write(w, ev)
        })
    }

    /// Events that waited for a primary, oldest first (hooks already ran).
    fn flush_events(&mut self) {
        let cfg = self.loaded.config.clone();
        while let Some(p) = self.pending_events.events.front().cloned() {
            let ev = Event {
                successful: p.ok,
                primary_id: p.primary_id,
                ..Event::for_node(&cfg, p.name, p.details.clone())
            };
            if self.write_event(&ev).is_none() {
                return;
            }
            self.pending_events.events.pop_front();
        }
    }
}
