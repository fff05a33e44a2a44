//! `repmgr.repmgrd_status`: repmgrd's state without shared memory.
//!
//! Each repmgrd stamps its row on the primary every monitoring cycle (pid,
//! heartbeat, upstream last seen); `service pause` sets the pause flag there;
//! every repmgrd reads its flag from its own node's replicated copy, so a
//! standby knows it is paused even while the primary is down.

use super::session::RowExt;
use super::session::Sql;

use super::query_error;
use crate::error::Result;

/// One row as `service status` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonStatus {
    pub node_id: i32,
    pub pid: Option<i32>,
    pub hostname: Option<String>,
    pub paused: bool,
    pub upstream_node_id: Option<i32>,
    /// Seconds since the upstream was last seen, when known.
    pub upstream_last_seen_secs: Option<f64>,
    /// Seconds since the last heartbeat, when known.
    pub heartbeat_age_secs: Option<f64>,
    pub monitor_interval_secs: i32,
}

impl DaemonStatus {
    /// A repmgrd counts as running while its heartbeat is younger than three
    /// of its own monitoring intervals (and at least 5 s).
    pub fn is_running(&self) -> bool {
        let limit = (3 * self.monitor_interval_secs.max(1)).max(5) as f64;
        self.pid.is_some() && self.heartbeat_age_secs.is_some_and(|a| a < limit)
    }
}

/// The table exists from schema version 2 on.
pub fn table_exists(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT pg_catalog.to_regclass('repmgr.repmgrd_status') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking for repmgr.repmgrd_status", &e))?;
    row.val(0)
}

/// Records that a repmgrd started on `node_id` (keeps the pause flag).
pub fn register_start(
    c: &mut impl Sql,
    node_id: i32,
    pid: i32,
    pid_file: Option<&str>,
    hostname: &str,
    monitor_interval_secs: i32,
) -> Result<()> {
    c.execute(
        "INSERT INTO repmgr.repmgrd_status
                (node_id, pid, pid_file, hostname, monitor_interval_secs, started_at, last_updated)
         VALUES ($1, $2, $3, $4, $5, now(), now())
         ON CONFLICT (node_id) DO UPDATE SET
           pid = EXCLUDED.pid, pid_file = EXCLUDED.pid_file, hostname = EXCLUDED.hostname,
           monitor_interval_secs = EXCLUDED.monitor_interval_secs,
           started_at = EXCLUDED.started_at, last_updated = EXCLUDED.last_updated",
        &[&node_id, &pid, &pid_file, &hostname, &monitor_interval_secs],
    )
    .map_err(|e| query_error("recording the repmgrd start", &e))?;
    Ok(())
}

/// The per-cycle heartbeat; `upstream_seen` stamps the upstream as seen now.
pub fn heartbeat(
    c: &mut impl Sql,
    node_id: i32,
    pid: i32,
    upstream_node_id: Option<i32>,
    upstream_seen: bool,
) -> Result<()> {
    c.execute(
        "UPDATE repmgr.repmgrd_status
            SET pid = $2, upstream_node_id = $3, last_updated = now(),
                upstream_last_seen = CASE WHEN $4 THEN now() ELSE upstream_last_seen END
          WHERE node_id = $1",
        &[&node_id, &pid, &upstream_node_id, &upstream_seen],
    )
    .map_err(|e| query_error("updating the repmgrd heartbeat", &e))?;
    Ok(())
}

/// Records a clean stop: no pid, so the node shows as not running at once.
pub fn register_stop(c: &mut impl Sql, node_id: i32) -> Result<()> {
    c.execute(
        "UPDATE repmgr.repmgrd_status SET pid = NULL, last_updated = now() WHERE node_id = $1",
        &[&node_id],
    )
    .map_err(|e| query_error("recording the repmgrd stop", &e))?;
    Ok(())
}

/// Sets the pause flag for the given nodes (rows created as needed).
pub fn set_paused(c: &mut impl Sql, node_ids: &[i32], paused: bool) -> Result<u64> {
    c.execute(
        "INSERT INTO repmgr.repmgrd_status (node_id, paused)
         SELECT unnest($1::INT[]), $2
         ON CONFLICT (node_id) DO UPDATE SET paused = EXCLUDED.paused",
        &[&node_ids, &paused],
    )
    .map_err(|e| query_error("setting the repmgrd pause flag", &e))
}

/// Whether repmgrd on `node_id` is paused (this node's copy of the flag).
pub fn is_paused(c: &mut impl Sql, node_id: i32) -> Result<bool> {
    if !table_exists(c)? {
        return Ok(false);
    }
    let row = c
        .query_opt(
            "SELECT paused FROM repmgr.repmgrd_status WHERE node_id = $1",
            &[&node_id],
        )
        .map_err(|e| query_error("reading the repmgrd pause flag", &e))?;
    Ok(row.map(|r| r.val(0)).transpose()?.unwrap_or(false))
}

/// Every row, by node_id.
pub fn all(c: &mut impl Sql) -> Result<Vec<DaemonStatus>> {
    if !table_exists(c)? {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT node_id, pid, hostname, paused, upstream_node_id,
                    EXTRACT(EPOCH FROM (now() - upstream_last_seen))::FLOAT8,
                    EXTRACT(EPOCH FROM (now() - last_updated))::FLOAT8,
                    monitor_interval_secs
               FROM repmgr.repmgrd_status ORDER BY node_id",
            &[],
        )
        .map_err(|e| query_error("reading repmgr.repmgrd_status", &e))?;
    rows.iter()
        .map(|r| {
            Ok(DaemonStatus {
                node_id: r.val(0)?,
                pid: r.val(1)?,
                hostname: r.val(2)?,
                paused: r.val(3)?,
                upstream_node_id: r.val(4)?,
                upstream_last_seen_secs: r.val(5)?,
                heartbeat_age_secs: r.val(6)?,
                monitor_interval_secs: r.val(7)?,
            })
        })
        .collect()
}
