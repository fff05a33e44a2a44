//! This repmgrd's rows on the primary: its status and peer address, its
//! record, the witness's copy of the records, and events.
//!
//! All of it is written by a thread of its own (the recorder), never by
//! the main loop: a primary that hangs costs a write its deadline, and the
//! decision loop must not spend that time (a frozen primary would delay
//! noticing that it is frozen). The main loop sends what to write, in
//! order; the recorder writes through one session to the primary, found
//! again whenever a write fails (the primary may have changed), and keeps
//! events that cannot be recorded yet for the next chance.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

pub use super::pending::RecordWrite;
use super::pending::{PendingEvent, PENDING_EVENTS};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::daemon::core::types::*;
use crate::db::{self, nodes::NodeRecord, reach, Session};
use crate::error::Result;
use crate::events::{self, Event};
use tokio_postgres::types::PgLsn;

/// What this repmgrd's row on the primary says about it.
#[derive(Debug, Clone)]
pub struct PublishInfo {
    pub pid_file: Option<String>,
    pub host: String,
    pub monitor_interval_secs: i32,
    pub peer: Option<(String, u16)>,
    pub lease_ms: i64,
    pub reconnect: (i32, i32),
    pub failover: &'static str,
}

/// One monitoring history row (a standby's positions).
#[derive(Debug, Clone)]
pub struct History {
    pub receive_lsn: PgLsn,
    pub replay_lsn: PgLsn,
    pub last_replay: Option<String>,
}

/// How this node writes: a primary on its own server, others through the
/// primary they find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    OnLocalPrimary,
    ThroughPrimary,
}

/// A request to the recorder.
pub enum Write {
    /// The node records to look for the primary among.
    Nodes(Vec<NodeRecord>),
    /// The configuration changed (SIGHUP): the row is published anew.
    Config(Box<(Config, ConnInfo)>),
    Publish(PublishInfo),
    /// A primary says in its row whether it fences itself (again after
    /// each publish: the row may only just exist).
    PublishFencing(bool),
    /// How this node writes from now on (told at a promotion, before the
    /// events that follow it; each status says it again).
    Mode(Writes),
    Status {
        /// None: not known yet (the local server was not read).
        writes: Option<Writes>,
        upstream: Option<NodeId>,
        history: Option<History>,
    },
    Record(RecordWrite),
    Event {
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
        on: Option<NodeId>,
    },
    EnsureSecret,
    WitnessSync {
        primary: NodeId,
        repoint: bool,
    },
    Flush,
    /// The last writes (repmgrd stops): then the thread ends.
    Stop {
        event_details: String,
    },
}

/// The main loop's end of the recorder.
pub struct RecorderHandle {
    tx: Sender<Write>,
    done: Receiver<()>,
}

impl RecorderHandle {
    pub fn start(cfg: Config, conninfo: ConnInfo, pid: i32, writes: Writes) -> RecorderHandle {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let r = Recorder {
            node_id: cfg.node_id.unwrap_or_default(),
            cfg,
            conninfo,
            pid,
            writes,
            nodes: Vec::new(),
            writer: None,
            retry_at: Instant::now(),
            pending: Default::default(),
            publish: None,
            published: false,
            fences: None,
            local: None,
        };
        let spawned = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                r.run(rx);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            // Writes then go nowhere; monitoring and failover go on.
            crate::log_error!("unable to start the metadata writer thread: {e}");
        }
        RecorderHandle { tx, done }
    }

    pub fn send(&self, w: Write) {
        let _ = self.tx.send(w);
    }

    /// Sends the last writes and waits for them, at most `limit`.
    pub fn stop(&self, event_details: String, limit: Duration) {
        self.send(Write::Stop { event_details });
        match self.done.recv_timeout(limit) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                crate::log_warning!("the last metadata writes did not finish in time")
            }
        }
    }
}

struct Recorder {
    cfg: Config,
    conninfo: ConnInfo,
    node_id: NodeId,
    pid: i32,
    writes: Writes,
    nodes: Vec<NodeRecord>,
    /// A session to the primary (on a primary, a second local session).
    writer: Option<(NodeId, Session)>,
    retry_at: Instant,
    pending: super::pending::Pending,
    publish: Option<PublishInfo>,
    published: bool,
    fences: Option<bool>,
    /// The witness's own server, for its copy of the records.
    local: Option<Session>,
}

impl Recorder {
    fn run(mut self, rx: Receiver<Write>) {
        while let Ok(first) = rx.recv() {
            // What queued up while a write waited: only the newest status
            // counts (a heartbeat row is overwritten anyway).
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let last_status = batch
                .iter()
                .rposition(|w| matches!(w, Write::Status { .. }));
            for (i, w) in batch.into_iter().enumerate() {
                if matches!(w, Write::Status { .. }) && Some(i) != last_status {
                    continue;
                }
                if !self.handle(w) {
                    return;
                }
            }
        }
    }

    /// False once the last writes are done.
    fn handle(&mut self, w: Write) -> bool {
        match w {
            Write::Nodes(n) => self.nodes = n,
            Write::Config(c) => {
                let (cfg, conninfo) = *c;
                if conninfo != self.conninfo {
                    self.local = None;
                }
                self.cfg = cfg;
                self.conninfo = conninfo;
            }
            Write::Publish(info) => {
                self.publish = Some(info);
                self.published = false;
                self.publish();
            }
            Write::PublishFencing(fences) => {
                self.fences = Some(fences);
                self.publish_fencing();
            }
            Write::Mode(w) => self.set_writes(w),
            Write::Status {
                writes,
                upstream,
                history,
            } => {
                if let Some(w) = writes {
                    self.set_writes(w);
                }
                self.status(upstream, history);
            }
            Write::Record(op) => {
                self.pending.record = Some(op);
                self.flush_record();
            }
            Write::Event {
                name,
                ok,
                details,
                primary_id,
                on,
            } => self.event(name, ok, details, primary_id, on),
            Write::EnsureSecret => {
                self.on_primary("create the repmgrd secret", |w, _| db::secret::ensure(w));
            }
            Write::WitnessSync { primary, repoint } => self.witness_sync(primary, repoint),
            Write::Flush => self.flush_pending(),
            Write::Stop { event_details } => {
                self.retry_at = Instant::now();
                let id = self.node_id;
                self.on_primary("record that repmgrd stopped", |w, _| {
                    if !db::daemon_status::table_exists(w)? {
                        return Ok(());
                    }
                    db::daemon_status::register_stop(w, id)
                });
                self.event("repmgrd_shutdown", true, event_details, None, None);
                return false;
            }
        }
        true
    }

    fn set_writes(&mut self, writes: Writes) {
        if writes != self.writes {
            // A promotion or a demotion: the primary is elsewhere now.
            self.writes = writes;
            self.writer = None;
            self.retry_at = Instant::now();
        }
    }

    /// A session to the primary for writes: a second local session on a
    /// primary, else found among the records (not more often than every
    /// 5 s).
    fn ensure_writer(&mut self) {
        if let Some((_, w)) = self.writer.as_mut() {
            if !w.is_closed() {
                return;
            }
        }
        self.writer = None;
        // On a primary there is no search, so no back-off (the last
        // writes at shutdown must not be skipped because a search failed a
        // moment before).
        if self.writes == Writes::OnLocalPrimary {
            if let Ok(mut c) = db::connect::connect(&self.conninfo, reach::DAEMON_APP_NAME) {
                let _ = db::fence::exempt_session(&mut c);
                super::takeover::complete_schema(&mut c);
                self.writer = Some((self.node_id, c));
            }
            return;
        }
        if Instant::now() < self.retry_at {
            return;
        }
        self.retry_at = Instant::now() + Duration::from_secs(5);
        if let Some((rec, mut c)) = reach::find_primary_among(&self.nodes) {
            // First contact with this primary: a cluster built by repmgr 5
            // (or an older version) gets what this version writes to.
            super::takeover::complete_schema(&mut c);
            self.writer = Some((rec.node_id, c));
        }
    }

    /// Runs `f` on the session to the primary. A failure drops that
    /// session and tries once more on a primary found anew (a failover or
    /// a restart since); the second failure is logged as `what`.
    fn on_primary<T>(
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
                        self.retry_at = Instant::now();
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
    fn publish(&mut self) {
        let Some(p) = self.publish.clone() else {
            return;
        };
        let (id, pid) = (self.node_id, self.pid);
        let done = self.on_primary("record repmgrd's status", |w, _| {
            if !db::daemon_status::table_exists(w)? {
                return Ok(false);
            }
            db::daemon_status::register_start(
                w,
                id,
                pid,
                p.pid_file.as_deref(),
                &p.host,
                p.monitor_interval_secs,
            )?;
            if let Some((host, port)) = &p.peer {
                db::daemon_status::publish_peer(
                    w,
                    id,
                    host,
                    *port,
                    p.lease_ms,
                    p.reconnect,
                    p.failover,
                )?;
            }
            Ok(true)
        });
        self.published = done == Some(true);
        if self.published {
            self.publish_fencing();
        }
    }

    fn publish_fencing(&mut self) {
        let (Some(fences), id) = (self.fences, self.node_id) else {
            return;
        };
        self.on_primary("publish whether this primary fences itself", |w, _| {
            db::daemon_status::publish_fencing(w, id, fences)
        });
    }

    /// The heartbeat row (and, on a standby, a monitoring history row);
    /// then what is waiting.
    fn status(&mut self, upstream: Option<NodeId>, history: Option<History>) {
        let (id, pid) = (self.node_id, self.pid);
        let on_primary = self.writes == Writes::OnLocalPrimary;
        self.on_primary("write repmgrd's status", |w, primary| {
            // Without the table (a schema this user may not complete) the
            // heartbeat is not recorded; the history still is.
            let has_table = db::daemon_status::table_exists(w)?;
            if on_primary {
                if !has_table {
                    return Ok(());
                }
                return db::daemon_status::heartbeat_primary(w, id, pid);
            }
            if has_table {
                db::daemon_status::heartbeat(w, id, pid, upstream, true)?;
            }
            if let Some(h) = &history {
                if let Err(e) = db::monitoring::insert_history(
                    w,
                    primary,
                    id,
                    h.receive_lsn,
                    h.replay_lsn,
                    h.last_replay.as_deref(),
                ) {
                    crate::log_warning!("unable to write monitoring history: {}", e.reason());
                }
            }
            Ok(())
        });
        if !self.published {
            self.publish();
        }
        self.flush_pending();
    }

    fn flush_pending(&mut self) {
        if self.pending.events.is_empty() && self.pending.record.is_none() {
            return;
        }
        self.flush_record();
        self.flush_events();
    }

    /// The last change to this node's record, until it is written.
    fn flush_record(&mut self) {
        let Some(op) = self.pending.record else {
            return;
        };
        let id = self.node_id;
        let done = self.on_primary("update this node's record", |w, _| match op {
            RecordWrite::Active(active) => db::nodes::set_active(w, id, active),
            RecordWrite::Upstream(u) => db::nodes::set_upstream(w, id, u),
        });
        if done.is_some() {
            self.pending.record = None;
        }
    }

    /// Witness mode: point this witness's record at `primary`, copy the
    /// node records and the secret (ops::witness).
    fn witness_sync(&mut self, primary: NodeId, repoint: bool) {
        let id = self.node_id;
        if self.writer.as_ref().is_some_and(|(p, _)| *p != primary) {
            self.writer = None;
        }
        if self.writer.is_none() {
            if let Some(rec) = self.nodes.iter().find(|n| n.node_id == primary) {
                if let Ok(c) = reach::connect_record(rec) {
                    self.writer = Some((primary, c));
                }
            }
        }
        if self.local.as_ref().is_none_or(|c| c.is_closed()) {
            self.local = db::connect::connect(&self.conninfo, reach::DAEMON_APP_NAME).ok();
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
    }

    /// Records an event (on `on`, or the primary; kept for later when
    /// neither can be written to) and runs the notification hook in the
    /// background in every case.
    fn event(
        &mut self,
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
        on: Option<NodeId>,
    ) {
        let cfg = self.cfg.clone();
        let ev = Event {
            successful: ok,
            primary_id,
            ..Event::for_node(&cfg, name, details.clone())
        };
        let mut ts = on.and_then(|n| {
            let rec = self.nodes.iter().find(|r| r.node_id == n)?;
            let mut c = reach::connect_record(rec).ok()?;
            match db::server::in_recovery(&mut c) {
                Ok(false) => events::write(&mut c, &ev).ok(),
                _ => None,
            }
        });
        if ts.is_none() {
            ts = self.on_primary(&format!("record event \"{}\"", ev.event), |w, _| {
                events::write(w, &ev)
            });
        }
        if ts.is_none() {
            let p = &mut self.pending.events;
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

    /// Events that waited for a primary, oldest first (hooks already ran).
    fn flush_events(&mut self) {
        let cfg = self.cfg.clone();
        while let Some(p) = self.pending.events.front().cloned() {
            let ev = Event {
                successful: p.ok,
                primary_id: p.primary_id,
                ..Event::for_node(&cfg, p.name, p.details.clone())
            };
            let written = self.on_primary(&format!("record event \"{}\"", ev.event), |w, _| {
                events::write(w, &ev)
            });
            if written.is_none() {
                return;
            }
            self.pending.events.pop_front();
        }
    }
}
