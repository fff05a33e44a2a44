//! The queries repmgrd runs every cycle. A fixed, small number per cycle:
//! one on the local node, one or two on the primary.

use super::session::RowExt;
use super::session::Sql;
use tokio_postgres::types::PgLsn;

use super::query_error;
use crate::error::Result;

/// The local node as one query sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalState {
    pub in_recovery: bool,
    pub receive_lsn: Option<PgLsn>,
    pub replay_lsn: Option<PgLsn>,
    /// `pg_last_xact_replay_timestamp()` as text, for monitoring_history.
    pub last_replay: Option<String>,
    /// This node's pause flag (its copy of repmgr.repmgrd_status).
    pub paused: bool,
}

pub fn local_state(c: &mut impl Sql, node_id: i32) -> Result<LocalState> {
    let has_status: bool = c
        .query_one(
            "SELECT pg_catalog.to_regclass('repmgr.repmgrd_status') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking repmgr.repmgrd_status", &e))?
        .val(0)?;
    let paused_sql = if has_status {
        "COALESCE((SELECT paused FROM repmgr.repmgrd_status WHERE node_id = $1), FALSE)"
    } else {
        "($1::INT IS NULL)"
    };
    let sql = format!(
        "SELECT pg_catalog.pg_is_in_recovery(),
                pg_catalog.pg_last_wal_receive_lsn(),
                pg_catalog.pg_last_wal_replay_lsn(),
                pg_catalog.pg_last_xact_replay_timestamp()::TEXT,
                {paused_sql}"
    );
    let row = c
        .query_one(sql.as_str(), &[&node_id])
        .map_err(|e| query_error("reading the local node's state", &e))?;
    Ok(LocalState {
        in_recovery: row.val(0)?,
        receive_lsn: row.val(1)?,
        replay_lsn: row.val(2)?,
        last_replay: row.val(3)?,
        paused: row.val(4)?,
    })
}

/// One `repmgr.monitoring_history` row, computed and written on the primary
/// in a single statement.
pub fn insert_history(
    primary: &mut impl Sql,
    primary_id: i32,
    standby_id: i32,
    receive: PgLsn,
    replay: PgLsn,
    last_replay: Option<&str>,
) -> Result<()> {
    primary
        .execute(
            "INSERT INTO repmgr.monitoring_history
                (primary_node_id, standby_node_id, last_monitor_time, last_apply_time,
                 last_wal_primary_location, last_wal_standby_location, replication_lag, apply_lag)
             SELECT $1, $2, pg_catalog.now(), $5::TEXT::TIMESTAMPTZ, cur, $3,
                    GREATEST(pg_catalog.pg_wal_lsn_diff(cur, $3), 0)::BIGINT,
                    GREATEST(pg_catalog.pg_wal_lsn_diff($3, $4), 0)::BIGINT
               FROM (SELECT pg_catalog.pg_current_wal_lsn() AS cur) c",
            &[&primary_id, &standby_id, &receive, &replay, &last_replay],
        )
        .map_err(|e| query_error("writing monitoring history", &e))?;
    Ok(())
}

/// Whether this node's WAL receiver got a message from its upstream within
/// `within_secs` (a sibling that still sees the primary).
pub fn receiver_recently_active(c: &mut impl Sql, within_secs: f64) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver
                             WHERE status = 'streaming'
                               AND last_msg_receipt_time > pg_catalog.now() - pg_catalog.make_interval(secs => $1))",
            &[&within_secs],
        )
        .map_err(|e| query_error("reading pg_stat_wal_receiver", &e))?;
    row.val(0)
}
