//! The driver's side of the metadata: what to write is sent to the
//! recorder ([`super::recorder`]), which writes it on a thread of its own.

use super::recorder::{History, PublishInfo, RecordWrite, Write, Writes};
use super::Driver;
use crate::daemon::core::types::*;

/// How often an unchanged status row written through the primary is
/// rewritten (each monitoring cycle when that is longer).
const STATUS_REFRESH: std::time::Duration = std::time::Duration::from_millis(1_900);

impl Driver {
    /// How this node writes its metadata now.
    fn writes(&self) -> Option<Writes> {
        let row = self.last_row.as_ref()?;
        Some(if row.in_recovery || self.is_witness {
            Writes::ThroughPrimary
        } else {
            Writes::OnLocalPrimary
        })
    }

    /// This repmgrd's row on the primary, published (anew) by the recorder.
    pub(super) fn publish(&mut self) {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cfg = self.cfg();
        let lease =
            i64::try_from(super::settings(cfg, self.is_witness).lease_ms()).unwrap_or(i64::MAX);
        let failover = match cfg.failover {
            crate::config::Failover::Automatic => "automatic",
            crate::config::Failover::Manual => "manual",
        };
        let info = PublishInfo {
            pid_file: self.pid_file.clone(),
            host,
            monitor_interval_secs: cfg.monitor_interval_secs,
            peer: self.peer_addr.as_ref().map(|a| (a.host.clone(), a.port)),
            lease_ms: lease,
            reconnect: (cfg.reconnect_attempts, cfg.reconnect_interval),
            failover,
        };
        self.recorder.send(Write::Publish(info));
    }

    /// A primary says in its row whether it fences itself: after its row
    /// is published (the recorder keeps the order).
    pub(super) fn publish_fencing(&mut self, fences: bool) {
        self.recorder.send(Write::PublishFencing(fences));
    }

    /// The heartbeat row (and, on a standby, a monitoring history row);
    /// then events that are waiting.
    pub(super) fn write_status(&mut self, upstream: Option<NodeId>) {
        let writes = self.writes();
        let history = match (&self.last_row, self.cfg().monitoring_history) {
            (Some(r), true) if r.in_recovery => match (r.receive_lsn, r.replay_lsn) {
                (Some(receive_lsn), Some(replay_lsn)) => Some(History {
                    receive_lsn,
                    replay_lsn,
                    last_replay: r.last_replay.clone(),
                }),
                _ => None,
            },
            _ => None,
        };
        // A standby's row is written through the primary (a transaction
        // and WAL there, a round trip here): when nothing in it changed,
        // every STATUS_REFRESH is enough to show the daemon running (a row
        // counts for three monitoring intervals and at least 5 s).
        let now = std::time::Instant::now();
        let same = self.status_sent.is_some_and(|(at, w, u)| {
            w == writes && u == upstream && now.duration_since(at) < STATUS_REFRESH
        });
        if same && history.is_none() && writes == Some(Writes::ThroughPrimary) {
            return;
        }
        self.status_sent = Some((now, writes, upstream));
        self.recorder.send(Write::Status {
            writes,
            upstream,
            history,
        });
    }

    /// The local server was promoted: it is the primary written to from
    /// now on, starting with the promotion's own event (the last local
    /// read still says standby).
    pub(super) fn promoted(&mut self) {
        self.recorder.send(Write::Mode(Writes::OnLocalPrimary));
    }

    pub(super) fn flush_pending(&mut self) {
        self.recorder.send(Write::Flush);
    }

    pub(super) fn set_active(&mut self, active: bool) {
        self.recorder
            .send(Write::Record(RecordWrite::Active(active)));
    }

    pub(super) fn record_upstream(&mut self, upstream: NodeId) {
        self.recorder
            .send(Write::Record(RecordWrite::Upstream(upstream)));
    }

    pub(super) fn witness_sync(&mut self, primary: NodeId, repoint: bool) {
        self.recorder.send(Write::WitnessSync { primary, repoint });
    }

    pub(super) fn event(
        &mut self,
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
        on: Option<NodeId>,
    ) {
        self.recorder.send(Write::Event {
            name,
            ok,
            details,
            primary_id,
            on,
        });
    }
}
