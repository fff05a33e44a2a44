//! `repmgr.events`: the cluster's event log.

use super::session::RowExt;
use super::session::Sql;

use super::query_error;
use crate::error::Result;

/// Inserts an event row; returns the timestamp as text (for `%t`).
pub fn insert(
    c: &mut impl Sql,
    node_id: i32,
    event: &str,
    successful: bool,
    details: &str,
) -> Result<String> {
    let row = c
        .query_one(
            "INSERT INTO repmgr.events (node_id, event, successful, details)
             VALUES ($1, $2, $3, $4)
             RETURNING pg_catalog.to_char(event_timestamp, 'YYYY-MM-DD HH24:MI:SS.USOF')",
            &[&node_id, &event, &successful, &details],
        )
        .map_err(|e| query_error(&format!("recording event \"{event}\""), &e))?;
    row.val(0)
}

/// One row as `cluster event` shows it.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub node_id: i32,
    pub node_name: String,
    pub event: String,
    pub successful: bool,
    pub timestamp: String,
    pub details: String,
}

/// Filters of `cluster event`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub node_id: Option<i32>,
    pub node_name: Option<String>,
    pub event: Option<String>,
    /// None: all events.
    pub limit: Option<i64>,
}

/// Events newest first, filtered. repmgr writes each event in a transaction
/// of its own, so `primary_register` is newer than `cluster_created`; we
/// write both in the registration's transaction (equal timestamps), so ties
/// go newest row first (`ctid`: the table is append-only) to give repmgr's
/// order.
pub fn list(c: &mut impl Sql, f: &EventFilter) -> Result<Vec<EventRow>> {
    let rows = c
        .query(
            "SELECT e.node_id, COALESCE(n.node_name, ''), e.event, e.successful,
                    pg_catalog.to_char(e.event_timestamp, 'YYYY-MM-DD HH24:MI:SS'),
                    COALESCE(e.details, '')
               FROM repmgr.events e
          LEFT JOIN repmgr.nodes n ON e.node_id = n.node_id
              WHERE ($1::INT IS NULL OR e.node_id = $1)
                AND ($2::TEXT IS NULL OR n.node_name = $2)
                AND ($3::TEXT IS NULL OR e.event = $3)
           ORDER BY e.event_timestamp DESC, e.ctid DESC
              LIMIT $4",
            &[&f.node_id, &f.node_name, &f.event, &f.limit],
        )
        .map_err(|e| query_error("retrieving events", &e))?;
    rows.iter()
        .map(|r| {
            Ok(EventRow {
                node_id: r.val(0)?,
                node_name: r.val(1)?,
                event: r.val(2)?,
                successful: r.val(3)?,
                timestamp: r.val(4)?,
                details: r.val(5)?,
            })
        })
        .collect()
}
