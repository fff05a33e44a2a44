//! The primary's side of "no split brain".
//!
//! - An isolated primary stops taking writes before the other side can
//!   promote: when the voters it cannot see could form a majority without
//!   it, for longer than `primary_isolation_timeout` (shorter than the
//!   standbys' detection window), it fences itself; when the majority
//!   returns and nobody was promoted meanwhile, the fence is lifted.
//! - A superseded primary never resumes: when some node shows a newer
//!   timeline or voting term, this node is fenced (and, with `auto_rejoin`,
//!   rejoins the new primary as a standby).
//! - If the local server is down while a promotion happens elsewhere, the
//!   data directory is prepared (standby.signal + primary_conninfo to the
//!   new primary) so that a restart by hand or by systemd comes up as a
//!   standby and accepts no write.

use std::time::{Duration, Instant};

use super::{Monitor, Role};
use crate::config::{Config, FailoverQuorum, FenceMode};
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::logging;
use crate::pgtools::{self, ServiceAction};
use crate::process;

/// Why this node is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fence {
    Isolated,
    Superseded { by: i32 },
}

/// The earliest a standby can declare the primary failed after losing it:
/// its reconnection attempts span (reconnect_attempts − 1) ×
/// reconnect_interval (the first attempt can fail at once).
pub fn standby_earliest_secs(cfg: &Config) -> u64 {
    (cfg.reconnect_attempts.max(1) as u64 - 1) * cfg.reconnect_interval.max(0) as u64
}

/// How long the primary's direct check of a silent voter may take (the
/// default connect_timeout).
const PROBE_SECS: u64 = 2;

/// The latest this primary notices that it is isolated: a voter's
/// heartbeat counts as fresh for two monitoring intervals, the check runs
/// once per interval, and a silent voter is then asked directly.
pub fn primary_notice_secs(cfg: &Config) -> u64 {
    3 * cfg.monitor_interval_secs.max(1) as u64 + PROBE_SECS
}

/// The isolation timeout in force: the configured one, or by default half
/// of the margin between noticing isolation and the earliest promotion.
pub fn isolation_timeout(cfg: &Config) -> Duration {
    let secs = if cfg.primary_isolation_timeout >= 0 {
        cfg.primary_isolation_timeout as u64
    } else {
        standby_earliest_secs(cfg).saturating_sub(primary_notice_secs(cfg)) / 2
    };
    Duration::from_secs(secs)
}

/// Whether an isolated primary is sure to be fenced before any standby can
/// be promoted, with the timing settings of this node (which every node is
/// expected to share). The error explains the numbers.
pub fn check_fencing_timing(cfg: &Config) -> Result<(), String> {
    let fence_by = primary_notice_secs(cfg) + isolation_timeout(cfg).as_secs();
    let earliest = standby_earliest_secs(cfg);
    if fence_by < earliest {
        return Ok(());
    }
    Err(format!(
        "an isolated primary is fenced after up to {fence_by} s (3 × monitor_interval_secs + {PROBE_SECS} s + primary_isolation_timeout), \
         but a standby may be promoted after {earliest} s ((reconnect_attempts − 1) × reconnect_interval)"
    ))
}

/// Whether the voters this primary cannot see could elect a new primary
/// without it: then it must stop taking writes.
pub fn other_side_has_majority(voters: usize, visible: usize) -> bool {
    let invisible = voters.saturating_sub(visible);
    invisible * 2 > voters
}

impl Monitor {
    /// Runs every primary cycle. Returns true while the node is fenced.
    pub(super) fn protect_primary(&mut self) -> bool {
        if self.suspect_supersession || self.fenced.is_some() || self.isolated_since.is_some() {
            self.suspect_supersession = false;
            if let Some(newer) = self.find_newer_primary() {
                self.fence(Fence::Superseded { by: newer.node_id }, &newer);
                if self.cfg().auto_rejoin {
                    self.rejoin_new_primary(&newer);
                }
                return true;
            }
        }
        let id = self.node_id();
        let window = 2.0 * self.interval().as_secs_f64() + 0.5;
        if self.cfg().failover_quorum != FailoverQuorum::Majority {
            // No isolation fencing under repmgr's rule, and a standby may
            // then be promoted behind a partition: while any voter is
            // silent (and once more when it is back), look for a newer
            // primary at the next cycle. The check is a local query; the
            // other nodes are contacted only while one is silent.
            let silent = self
                .local
                .as_mut()
                .map(|c| db::fence::voter_visibility(c, id, window))
                .is_some_and(|seen| seen.map_or(true, |s| s.iter().any(|v| !v.fresh)));
            if silent {
                self.suspect_supersession = true;
            }
            return self.fenced.is_some();
        }
        let seen = match self
            .local
            .as_mut()
            .map(|c| db::fence::voter_visibility(c, id, window))
        {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                crate::log_warning!(
                    "unable to check which voters this primary sees: {}",
                    e.reason()
                );
                return self.fenced.is_some();
            }
            None => return self.fenced.is_some(),
        };
        // A voter without a fresh heartbeat (no repmgrd, or its repmgrd
        // cannot reach us) is asked directly, all at once, within one
        // connect deadline: a crashed repmgrd must not fence the primary.
        let unknown: Vec<NodeRecord> = seen
            .iter()
            .filter(|v| !v.fresh)
            .map(|v| v.node.clone())
            .collect();
        let answered = db::reach::reach_all(&unknown)
            .into_iter()
            .filter(|r| r.conn.is_some())
            .count();
        let voters = seen.len() + 1;
        let visible = 1 + seen.iter().filter(|v| v.fresh).count() + answered;
        if other_side_has_majority(voters, visible) {
            let since = *self.isolated_since.get_or_insert_with(|| {
                crate::log_warning!("this primary sees only {visible} of {voters} voters");
                Instant::now()
            });
            if self.fenced.is_none() && since.elapsed() >= isolation_timeout(self.cfg()) {
                let me = self.own_record();
                crate::log_warning!(
                    "isolated for {} s: fencing this primary before another node can be promoted",
                    since.elapsed().as_secs()
                );
                if let Some(me) = me {
                    self.fence(Fence::Isolated, &me);
                }
            }
        } else {
            if self.isolated_since.take().is_some() {
                crate::log_notice!("this primary sees {visible} of {voters} voters again");
            }
            if self.fenced == Some(Fence::Isolated) {
                // Lift the fence only if nobody was promoted meanwhile.
                match self.find_newer_primary() {
                    Some(newer) => {
                        self.fence(Fence::Superseded { by: newer.node_id }, &newer);
                        if self.cfg().auto_rejoin {
                            self.rejoin_new_primary(&newer);
                        }
                    }
                    None => self.unfence(),
                }
            }
        }
        self.fenced.is_some()
    }

    fn own_record(&mut self) -> Option<NodeRecord> {
        let id = self.node_id();
        self.local
            .as_mut()
            .and_then(|c| db::nodes::get(c, id).ok().flatten())
    }

    /// A node whose timeline or voting term is newer than ours means a
    /// promotion happened elsewhere. Returns the node running as primary
    /// on that history (or the newer node itself if no primary answers).
    pub(super) fn find_newer_primary(&mut self) -> Option<NodeRecord> {
        let id = self.node_id();
        let (my_tli, my_term, nodes) = match self.local.as_mut() {
            Some(c) => (
                db::timeline::position(c).ok().map(|p| p.timeline),
                db::fence::voting_term(c).ok(),
                db::nodes::all(c).ok()?,
            ),
            None => (self.last_timeline, self.last_term, self.known_nodes.clone()),
        };
        let (my_tli, my_term) = (my_tli?, my_term.unwrap_or(0));
        let others: Vec<NodeRecord> = nodes
            .into_iter()
            .filter(|n| n.node_id != id && n.node_type != NodeType::Witness)
            .collect();
        let mut newer_standby = None;
        for mut r in db::reach::reach_all(&others) {
            let Some(c) = r.conn.as_mut() else { continue };
            let Ok(pos) = db::timeline::position(c) else {
                continue;
            };
            let term = db::fence::voting_term(c).unwrap_or(0);
            if pos.timeline <= my_tli && term <= my_term {
                continue;
            }
            if r.in_recovery == Some(false) {
                return Some(r.node);
            }
            newer_standby.get_or_insert(r.node);
        }
        newer_standby
    }

    /// Fences the local server as `fence_mode` says; records the event on
    /// the new primary when there is one.
    pub(super) fn fence(&mut self, why: Fence, reference: &NodeRecord) {
        if self.fenced == Some(why) {
            return;
        }
        let first = self.fenced.is_none();
        let mut applied = true;
        let (id, name) = (self.node_id(), self.node_name());
        let reason = match why {
            Fence::Isolated => "it cannot see a majority of the voters".to_string(),
            Fence::Superseded { by } => format!(
                "node \"{}\" (ID: {by}) was promoted on a newer timeline",
                reference.node_name
            ),
        };
        if first {
            match self.cfg().fence_mode {
                FenceMode::ReadOnly => {
                    let ci = self.conninfo.clone();
                    let fresh =
                        move || db::connect::connect(&ci, crate::db::reach::DAEMON_APP_NAME).ok();
                    match self
                        .local
                        .as_mut()
                        .map(|c| db::fence::fence_read_only(c, &fresh, None))
                    {
                        Some(Ok(n)) => {
                            crate::log_warning!(
                                "node \"{name}\" (ID: {id}) fenced: read-only, {n} client session(s) ended"
                            );
                            if let Some(c) = self.local.as_mut() {
                                let _ = db::fence::exempt_session(c);
                            }
                        }
                        Some(Err(e)) => {
                            applied = false;
                            logging::log_error_report(&e);
                            crate::log_hint!("fencing needs a superuser connection; set fence_mode=stop otherwise");
                        }
                        None => applied = false,
                    }
                }
                FenceMode::Stop => {
                    let cfg = self.cfg().clone();
                    let bin = self.bin.clone();
                    let dir = cfg.data_directory.clone();
                    let mut cmd = bin.command("pg_ctl");
                    cmd.args(["-D", &dir, "-m", "immediate", "-W", "stop"]);
                    match process::run_checked(
                        cmd,
                        Duration::from_secs(30),
                        "pg_ctl stop",
                        crate::error::ExitCode::LocalCommand,
                    ) {
                        Ok(_) => {
                            crate::log_warning!("node \"{name}\" (ID: {id}) fenced: server stopped")
                        }
                        Err(e) => {
                            applied = false;
                            logging::log_error_report(&e);
                        }
                    }
                    self.local = None;
                }
            }
        }
        if !applied {
            // Not fenced: the next cycle tries again.
            let details = format!("fencing node \"{name}\" (ID: {id}) failed: {reason}");
            self.event("repmgrd_fence", false, details, None);
            return;
        }
        self.fenced = Some(why);
        self.run_fence_command("repmgrd_fence");
        let details = format!("node \"{name}\" (ID: {id}) fenced: {reason}");
        if reference.node_id == id {
            self.event("repmgrd_fence", true, details, None);
        } else {
            self.event_on(reference, "repmgrd_fence", true, details);
        }
    }

    pub(super) fn unfence(&mut self) {
        let (id, name) = (self.node_id(), self.node_name());
        if self.cfg().fence_mode == FenceMode::ReadOnly {
            if let Some(Err(e)) = self.local.as_mut().map(db::fence::unfence) {
                logging::log_error_report(&e);
                return;
            }
        }
        self.fenced = None;
        crate::log_notice!("node \"{name}\" (ID: {id}) unfenced: the majority is back and no other node was promoted");
        self.run_fence_command("repmgrd_unfence");
        self.event(
            "repmgrd_unfence",
            true,
            format!("node \"{name}\" (ID: {id}) unfenced"),
            None,
        );
    }

    fn run_fence_command(&self, event: &str) {
        let template = self.cfg().fence_command.trim();
        if template.is_empty() {
            return;
        }
        use crate::hooks::{cluster, plain};
        let line = crate::hooks::expand(
            template,
            &[
                ('n', plain(self.node_id())),
                ('a', cluster(self.node_name())),
                ('e', plain(event)),
            ],
        );
        match process::run(
            process::shell(&line),
            Duration::from_secs(60),
            "fence_command",
        ) {
            Ok(o) if o.success() => {}
            Ok(o) => crate::log_warning!(
                "fence_command returned {}",
                process::describe_status(&o.status)
            ),
            Err(e) => logging::log_error_report(&e),
        }
    }

    /// Records an event on `node` (a new primary) if it answers, and runs
    /// the notification hook.
    fn event_on(&mut self, node: &NodeRecord, name: &str, successful: bool, details: String) {
        let ev = crate::events::Event {
            successful,
            primary_id: Some(node.node_id),
            ..crate::events::Event::for_node(&self.loaded.config, name, details)
        };
        let mut ts = None;
        if let Ok(mut c) = db::reach::connect_record(node) {
            if !db::server::in_recovery(&mut c).unwrap_or(true) {
                ts = crate::events::write(&mut c, &ev).ok();
            }
        }
        crate::events::notify_in_background(&self.loaded.config, &ev, ts.as_deref());
    }

    /// While the local server is down: if a promotion happened elsewhere,
    /// write standby.signal and primary_conninfo so that whoever restarts
    /// this server gets a standby, never a second primary.
    pub(super) fn prepare_while_down(&mut self) {
        if self.role != Role::Primary || self.prepared_for.is_some() {
            return;
        }
        let Some(newer) = self.find_newer_primary() else {
            return;
        };
        let cfg = self.cfg().clone();
        if cfg.data_directory.is_empty() {
            return;
        }
        let datadir = std::path::Path::new(&cfg.data_directory);
        if pgtools::running_postmaster(datadir).is_some() {
            return;
        }
        let upstream = match crate::conninfo::ConnInfo::parse(&newer.conninfo) {
            Ok(ci) => ci,
            Err(_) => return,
        };
        let pci = crate::replconf::primary_conninfo(
            &upstream,
            &cfg.node_name,
            (!newer.repluser.is_empty()).then_some(newer.repluser.as_str()),
            &cfg.passfile,
            cfg.use_primary_conninfo_password,
        );
        let rc = crate::replconf::ReplicationConfig {
            primary_conninfo: pci.to_string(),
            ..Default::default()
        };
        let version = self.last_version.unwrap_or(150000);
        match crate::replconf::write(datadir, version, &rc) {
            Ok(()) => {
                self.prepared_for = Some(newer.node_id);
                let (id, name) = (self.node_id(), self.node_name());
                let details = format!(
                    "node \"{name}\" (ID: {id}) was superseded by {} while down; it will restart as a standby",
                    newer);
                crate::log_warning!("{details}");
                self.event_on(&newer, "repmgrd_fence", true, details);
            }
            Err(e) => logging::log_error_report(&e),
        }
    }

    /// The server came back as the standby we prepared while it was down.
    /// If it streams from the new primary, its record says so from now on;
    /// if it cannot (its old timeline went past the fork), auto_rejoin
    /// rewinds it, else the operator is told what to run. Returns true when
    /// this cycle was spent on it.
    pub(super) fn after_preparation(&mut self) -> bool {
        let Some(new_id) = self.prepared_for else {
            return false;
        };
        let Some(newer) = self
            .known_nodes
            .iter()
            .find(|n| n.node_id == new_id)
            .cloned()
        else {
            self.prepared_for = None;
            return false;
        };
        let since = *self.prepared_back_since.get_or_insert_with(Instant::now);
        let window = 2.0 * self.interval().as_secs_f64() + 1.0;
        let streaming = self
            .local
            .as_mut()
            .and_then(|c| db::monitoring::receiver_recently_active(c, window).ok())
            .unwrap_or(false);
        let (id, name) = (self.node_id(), self.node_name());
        if streaming {
            self.prepared_for = None;
            self.prepared_back_since = None;
            if let Ok(mut c) = db::reach::connect_record(&newer) {
                if let Err(e) = db::nodes::set_upstream(&mut c, id, new_id) {
                    logging::log_error_report(&e);
                }
            }
            let details = format!(
                "former primary \"{name}\" (ID: {id}) now streams from node \"{}\" (ID: {new_id})",
                newer.node_name
            );
            crate::log_notice!("{details}");
            self.event_on(&newer, "repmgrd_standby_reconnect", true, details);
            return false;
        }
        if since.elapsed() < Duration::from_secs_f64(window) {
            return true; // give the WAL receiver a moment to connect
        }
        self.prepared_for = None;
        self.prepared_back_since = None;
        if self.cfg().auto_rejoin {
            self.rejoin_new_primary(&newer);
        } else {
            crate::log_warning!(
                "this former primary runs as a standby but cannot stream from node \"{}\"; run \"repmgr node rejoin --force-rewind\"",
                newer.node_name
            );
        }
        true
    }

    /// auto_rejoin: stop the superseded server and rejoin the new primary
    /// as a standby, with pg_rewind when its timeline diverged — the same
    /// steps as `repmgr node rejoin --force-rewind`. Tried once per
    /// election_rerun_interval; until it succeeds the node stays fenced.
    fn rejoin_new_primary(&mut self, newer: &NodeRecord) {
        if self.rejoin_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.rejoin_after = Some(
            Instant::now() + Duration::from_secs(self.cfg().election_rerun_interval.max(1) as u64),
        );
        let (id, name) = (self.node_id(), self.node_name());
        crate::log_notice!(
            "auto_rejoin: rejoining node \"{name}\" (ID: {id}) as a standby of the new primary"
        );
        match self.try_rejoin(newer) {
            Ok(details) => {
                crate::log_notice!("{details}");
                self.fenced = None;
                self.isolated_since = None;
                self.local = None;
                self.role = Role::Standby;
                self.link = None;
            }
            Err(e) => {
                crate::log_error!("auto_rejoin failed; this node stays fenced");
                logging::log_error_report(&e);
            }
        }
    }

    fn try_rejoin(&mut self, newer: &NodeRecord) -> crate::error::Result<String> {
        use crate::ops::rejoin;
        let cfg = self.cfg().clone();
        let bin = self.bin.clone();
        // The node with the newer history may itself be a standby: find the
        // primary through it.
        let mut conn = db::reach::connect_record(newer)?;
        let (primary, mut pconn) = if db::server::in_recovery(&mut conn)? {
            db::reach::find_primary(&mut conn)?.ok_or_else(|| {
                crate::error::Error::new(
                    crate::error::ExitCode::RejoinFail,
                    "no primary is reachable to rejoin",
                )
            })?
        } else {
            (newer.clone(), conn)
        };
        // Stop the local server (it is fenced and superseded) and wait.
        self.local = None;
        let datadir = std::path::PathBuf::from(&cfg.data_directory);
        if pgtools::running_postmaster(&datadir).is_some() {
            pgtools::run_service_action(ServiceAction::Stop, &cfg, &bin, &cfg.data_directory)?;
            let deadline =
                Instant::now() + Duration::from_secs(cfg.shutdown_check_timeout.max(1) as u64);
            while pgtools::running_postmaster(&datadir).is_some() {
                if Instant::now() >= deadline {
                    return Err(crate::error::Error::new(
                        crate::error::ExitCode::RejoinFail,
                        "the local server did not stop within shutdown_check_timeout",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let opts = rejoin::RejoinOptions {
            pg_rewind: Some(bin.path("pg_rewind")),
            config_files: Vec::new(),
            config_archive_dir: std::env::temp_dir(),
            wait: true,
        };
        let control = rejoin::check_local_stopped(&cfg, &bin, true)?;
        let plan = rejoin::check_rejoin(&cfg, &opts, control, &primary, &mut pconn)?;
        let (ev, ts) = rejoin::rejoin_node(&cfg, &bin, &opts, &plan, &primary, &mut pconn)?;
        crate::events::notify_in_background(&cfg, &ev, Some(&ts));
        Ok(ev.details.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_side_needs_a_majority_of_all_voters() {
        // Three voters, the primary sees nobody: the two others can elect.
        assert!(other_side_has_majority(3, 1));
        // It still sees one standby: the other one alone cannot.
        assert!(!other_side_has_majority(3, 2));
        // Two nodes: the lone standby can never have a majority.
        assert!(!other_side_has_majority(2, 1));
        // Five voters, two visible: three invisible could elect.
        assert!(other_side_has_majority(5, 2));
        assert!(!other_side_has_majority(5, 3));
    }

    #[test]
    fn isolation_timeout_stays_inside_the_detection_window() {
        // repmgr's defaults: 6 attempts 10 s apart, 2 s cycles.
        let defaults = Config::default();
        assert_eq!(standby_earliest_secs(&defaults), 50);
        assert_eq!(primary_notice_secs(&defaults), 8);
        assert_eq!(isolation_timeout(&defaults), Duration::from_secs(21));
        assert!(check_fencing_timing(&defaults).is_ok());
        // Fast settings: 7 attempts 1 s apart, 1 s cycles: fence at once.
        let fast = Config {
            reconnect_attempts: 7,
            reconnect_interval: 1,
            monitor_interval_secs: 1,
            ..Config::default()
        };
        assert_eq!(isolation_timeout(&fast), Duration::ZERO);
        assert!(check_fencing_timing(&fast).is_ok());
        // Too fast to guarantee the order: refused with the numbers.
        let tight = Config {
            reconnect_attempts: 3,
            ..fast.clone()
        };
        assert!(check_fencing_timing(&tight)
            .unwrap_err()
            .contains("after 2 s"));
        let too_long = Config {
            primary_isolation_timeout: 60,
            ..Config::default()
        };
        assert!(check_fencing_timing(&too_long).is_err());
    }
}
