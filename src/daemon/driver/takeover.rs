//! One repmgrd per node, and repmgrd on a cluster built by repmgr 5 (see
//! `db::takeover`): no start while another repmgrd (ours, or repmgr 5's)
//! runs for this node; the schema completed at the first session to the
//! primary, said once.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::db::{self, takeover::Completion, Session};
use crate::error::{Error, ExitCode, Result};

/// Each outcome is told once per process, however often the writer
/// session to the primary is made anew (the primary's copy is the same
/// schema after a failover: the standbys replayed it).
static TOLD_CREATED: AtomicBool = AtomicBool::new(false);
static TOLD_MISSING: AtomicBool = AtomicBool::new(false);

/// On a new session to the primary: creates what this schema lacks when
/// the user may, else warns that repmgrd goes on without recording its
/// status. Every later use of those objects checks for them first, so
/// neither case puts an ERROR in the server log.
pub(super) fn complete_schema(w: &mut Session) {
    match db::takeover::complete(w) {
        Ok(Completion::Complete) => {}
        Ok(Completion::Created { from, extension }) => {
            if TOLD_CREATED.swap(true, Ordering::Relaxed) {
                return;
            }
            if extension {
                crate::log_notice!(
                    "created what this repmgr needs beside the repmgr extension's objects: {}",
                    db::takeover::ADDED_OBJECTS
                );
                crate::log_detail!(
                    "the schema was made by repmgr 5 (CREATE EXTENSION repmgr); its own objects are unchanged"
                );
            } else {
                crate::log_notice!(
                    "the repmgr metadata schema was upgraded from version {from} to {}",
                    db::schema::SCHEMA_VERSION
                );
            }
        }
        Ok(Completion::NotPermitted { why, extension }) => {
            if TOLD_MISSING.swap(true, Ordering::Relaxed) {
                return;
            }
            let made_by = if extension {
                "made by repmgr 5's extension"
            } else {
                "of an older version"
            };
            crate::log_warning!(
                "the repmgr metadata schema ({made_by}) lacks {}; repmgrd runs without recording its status there",
                db::takeover::ADDED_OBJECTS
            );
            crate::log_detail!(
                "{why}; \"repmgr service status\" cannot show this repmgrd, and \"repmgr service pause\" cannot pause it"
            );
            crate::log_hint!(
                "run \"repmgr service unpause\" once as a superuser (it creates them), or GRANT CREATE ON SCHEMA repmgr to this user"
            );
        }
        // The session failed: the next write finds the primary anew.
        Err(e) => crate::log_debug!("checking the repmgr metadata schema failed: {}", e.reason()),
    }
}

/// repmgr 5's repmgrd monitors this node (its pid is in the extension's
/// shared memory on the local server, and alive): two repmgrds on one
/// node could both fail over, so this one does not start.
pub(super) fn refuse_legacy_daemon(local: &mut Session, cfg: &Config) -> Result<()> {
    let id = cfg.node_id.unwrap_or_default();
    let found = match db::takeover::legacy_daemon(local) {
        Ok(d) => d,
        Err(e) => {
            // Not knowing is no reason to refuse: the extension may be
            // broken on this server, and then no repmgr 5 repmgrd runs.
            crate::log_debug!("reading repmgr 5's repmgrd state failed: {}", e.reason());
            None
        }
    };
    let Some(d) = found.filter(|d| d.running) else {
        return Ok(());
    };
    let conf = &cfg.config_file;
    Err(Error::new(
        ExitCode::BadPidfile,
        format!(
            "repmgr 5's repmgrd (PID {}) is running for node \"{}\" (ID: {id})",
            d.pid, cfg.node_name
        ),
    )
    .detail(
        "its PID is in the repmgr extension's shared memory on this node; two repmgrds monitoring one node could both fail over",
    )
    .hint(format!(
        "stop it first: \"/usr/lib/postgresql/<version>/bin/repmgr -f {conf} daemon stop\" (repmgr 5), \"systemctl stop repmgrd\", or \"kill {}\"",
        d.pid
    )))
}

/// Another live repmgrd on this host already monitors this node.
pub(super) fn refuse_second_daemon(local: &mut Session, cfg: &Config, me: i32) -> Result<()> {
    let id = cfg.node_id.unwrap_or_default();
    let rows = db::daemon_status::all(local).unwrap_or_default();
    let Some(row) = rows.into_iter().find(|r| r.node_id == id) else {
        return Ok(());
    };
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(pid) = row.pid {
        let same_host = row.hostname.as_deref() == Some(host.as_str());
        let alive = pid != me
            && !matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
        if same_host && alive && row.is_running() {
            return Err(Error::new(
                ExitCode::BadPidfile,
                format!(
                    "repmgrd (PID {pid}) is already running for node \"{}\" (ID: {id})",
                    cfg.node_name
                ),
            )
            .hint("stop that repmgrd first; only one repmgrd may monitor a node"));
        }
    }
    Ok(())
}
