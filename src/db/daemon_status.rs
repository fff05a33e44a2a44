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
    const FACT: &str = "repmgr.repmgrd_status exists";
    if c.knows(FACT) {
        return Ok(true);
    }
    let row = c
        .query_one(
            "SELECT pg_catalog.to_regclass('repmgr.repmgrd_status') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking for repmgr.repmgrd_status", &e))?;
    let exists: bool = row.val(0)?;
    if exists {
        c.learn(FACT);
    }
    Ok(exists)
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
/// Where a repmgrd's peer channel listens, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
}

/// Whether the columns of schema version 3 are there.
fn has_peer_columns(c: &mut impl Sql) -> Result<bool> {
    const FACT: &str = "repmgr.repmgrd_status has the peer columns";
    if c.knows(FACT) {
        return Ok(true);
    }
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                             WHERE attrelid = pg_catalog.to_regclass('repmgr.repmgrd_status')
                               AND attname = 'peer_port' AND NOT attisdropped)",
            &[],
        )
        .map_err(|e| query_error("checking repmgr.repmgrd_status", &e))?;
    let has: bool = row.val(0)?;
    if has {
        c.learn(FACT);
    }
    Ok(has)
}

/// Whether `repmgr.repmgrd_status` exists with the peer columns (this
/// implementation's schema, not repmgr 5's).
pub fn has_peer_table(c: &mut impl Sql) -> Result<bool> {
    Ok(table_exists(c)? && has_peer_columns(c)?)
}

/// Every repmgrd's peer address (this node's copy of the table).
pub fn peers(c: &mut impl Sql) -> Result<Vec<PeerRow>> {
    if !table_exists(c)? || !has_peer_columns(c)? {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT node_id, peer_host, peer_port FROM repmgr.repmgrd_status
              WHERE peer_host IS NOT NULL AND peer_port IS NOT NULL ORDER BY node_id",
            &[],
        )
        .map_err(|e| query_error("reading the repmgrd peer addresses", &e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let port: i32 = r.val(2)?;
        if let Ok(port) = u16::try_from(port) {
            out.push(PeerRow {
                node_id: r.val(0)?,
                host: r.val(1)?,
                port,
            });
        }
    }
    Ok(out)
}

/// The timing a running repmgrd published (schema version 3 columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingRow {
    pub node_id: i32,
    pub lease_ms: i64,
    pub reconnect_attempts: i32,
    /// Seconds.
    pub reconnect_interval: i32,
    pub monitor_interval_secs: i32,
}

/// The timing of every running repmgrd that published one (this node's
/// copy of the table).
pub fn published_timings(c: &mut impl Sql) -> Result<Vec<TimingRow>> {
    if !table_exists(c)? || !has_peer_columns(c)? {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT node_id, lease_ms, reconnect_attempts, reconnect_interval, monitor_interval_secs
               FROM repmgr.repmgrd_status
              WHERE pid IS NOT NULL AND lease_ms IS NOT NULL
                AND reconnect_attempts IS NOT NULL AND reconnect_interval IS NOT NULL
              ORDER BY node_id",
            &[],
        )
        .map_err(|e| query_error("reading the repmgrd timing settings", &e))?;
    rows.iter()
        .map(|r| {
            Ok(TimingRow {
                node_id: r.val(0)?,
                lease_ms: r.val(1)?,
                reconnect_attempts: r.val(2)?,
                reconnect_interval: r.val(3)?,
                monitor_interval_secs: r.val(4)?,
            })
        })
        .collect()
}

/// Publishes this repmgrd's peer address and what it promises (on the
/// primary; the others read it from their copy).
pub fn publish_peer(
    c: &mut impl Sql,
    node_id: i32,
    host: &str,
    port: u16,
    lease_ms: i64,
    reconnect: (i32, i32),
    failover: &str,
) -> Result<()> {
    if !has_peer_columns(c)? {
        return Ok(());
    }
    c.execute(
        "UPDATE repmgr.repmgrd_status
            SET peer_host = $2, peer_port = $3, lease_ms = $4,
                reconnect_attempts = $5, reconnect_interval = $6, failover = $7
          WHERE node_id = $1",
        &[
            &node_id,
            &host,
            &i32::from(port),
            &lease_ms,
            &reconnect.0,
            &reconnect.1,
            &failover,
        ],
    )
    .map_err(|e| query_error("publishing the repmgrd peer address", &e))?;
    Ok(())
}

/// A primary publishes whether it fences itself on losing its lease.
pub fn publish_fencing(c: &mut impl Sql, node_id: i32, fences: bool) -> Result<()> {
    if !has_peer_columns(c)? {
        return Ok(());
    }
    c.execute(
        "UPDATE repmgr.repmgrd_status SET fences = $2 WHERE node_id = $1",
        &[&node_id, &fences],
    )
    .map_err(|e| query_error("publishing whether this primary fences itself", &e))?;
    Ok(())
}

/// What each repmgrd published of its failover mode, and (a primary)
/// whether it fences itself: `(node_id, automatic, fences)`.
pub fn published_modes(c: &mut impl Sql) -> Result<Vec<(i32, bool, bool)>> {
    if !table_exists(c)? || !has_peer_columns(c)? {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT node_id, COALESCE(failover = 'automatic', FALSE), COALESCE(fences, FALSE)
               FROM repmgr.repmgrd_status",
            &[],
        )
        .map_err(|e| query_error("reading the repmgrd failover modes", &e))?;
    rows.iter()
        .map(|r| Ok((r.val(0)?, r.val(1)?, r.val(2)?)))
        .collect()
}

/// The primary's per-cycle heartbeat, with its `synchronous_standby_names`
/// published in the same statement (the row is rewritten anyway).
pub fn heartbeat_primary(c: &mut impl Sql, node_id: i32, pid: i32) -> Result<()> {
    if !has_peer_columns(c)? {
        return heartbeat(c, node_id, pid, None, false);
    }
    c.execute(
        "UPDATE repmgr.repmgrd_status
            SET pid = $2, upstream_node_id = NULL, last_updated = now(),
                sync_standby_names = pg_catalog.current_setting('synchronous_standby_names')
          WHERE node_id = $1",
        &[&node_id, &pid],
    )
    .map_err(|e| query_error("updating the repmgrd heartbeat", &e))?;
    Ok(())
}

/// The `synchronous_standby_names` the primary last published.
pub fn published_sync_names(c: &mut impl Sql) -> Result<String> {
    if !table_exists(c)? || !has_peer_columns(c)? {
        return Ok(String::new());
    }
    let row = c
        .query_opt(
            "SELECT s.sync_standby_names FROM repmgr.repmgrd_status s
               JOIN repmgr.nodes n ON n.node_id = s.node_id
              WHERE n.type = 'primary' AND n.active AND s.sync_standby_names IS NOT NULL
              ORDER BY s.last_updated DESC NULLS LAST LIMIT 1",
            &[],
        )
        .map_err(|e| query_error("reading synchronous_standby_names", &e))?;
    Ok(row.map(|r| r.val(0)).transpose()?.unwrap_or_default())
}
