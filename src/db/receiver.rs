//! What a standby's WAL receiver and replay show, and how far an upstream
//! can send: what `standby follow` reads to know that the standby really
//! receives and applies the new upstream's WAL.

use tokio_postgres::types::PgLsn;

use super::session::{query_error, RowExt, Sql};
use crate::error::Result;

/// A standby's WAL receiver and replay, read in one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// `pg_stat_wal_receiver` has a row (it is shown only once the
    /// receiver has connected) and its status is `streaming`.
    pub streaming: bool,
    /// The timeline of the WAL it last flushed, or of the start point the
    /// startup process asked it to stream from.
    pub received_tli: Option<u32>,
    /// How far it has flushed (`flushed_lsn`, `received_lsn` before 13).
    pub flushed: Option<u64>,
    pub replayed: Option<u64>,
    /// Replay is held back on purpose (paused, or
    /// `recovery_min_apply_delay`), so it cannot be expected to advance.
    pub replay_held: bool,
}

/// Reads the local standby's [`Progress`]; `version_num` picks the column
/// name PostgreSQL 13 renamed.
pub fn progress(c: &mut impl Sql, version_num: i32) -> Result<Progress> {
    let flushed = if version_num >= 130000 {
        "flushed_lsn"
    } else {
        "received_lsn"
    };
    let sql = format!(
        "SELECT COALESCE(r.status = 'streaming', FALSE),
                r.received_tli::INT8,
                r.{flushed},
                pg_catalog.pg_last_wal_replay_lsn(),
                CASE WHEN pg_catalog.pg_is_in_recovery()
                  THEN pg_catalog.pg_is_wal_replay_paused()
                       OR (SELECT setting::INT8 > 0 FROM pg_catalog.pg_settings
                            WHERE name = 'recovery_min_apply_delay')
                  ELSE FALSE
                END
           FROM (SELECT 1) AS one
           LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON TRUE"
    );
    let row = c
        .query_one(&sql, &[])
        .map_err(|e| query_error("reading pg_stat_wal_receiver", &e))?;
    let tli: Option<i64> = row.val(1)?;
    let flushed: Option<PgLsn> = row.val(2)?;
    let replayed: Option<PgLsn> = row.val(3)?;
    Ok(Progress {
        streaming: row.val(0)?,
        received_tli: tli.map(|t| t as u32),
        flushed: flushed.map(u64::from),
        replayed: replayed.map(u64::from),
        replay_held: row.val::<Option<bool>>(4)?.unwrap_or(false),
    })
}

/// How far this node can send WAL to a standby right now: a primary's
/// flush position (a walsender sends nothing beyond it), a standby's
/// replay position (a cascading walsender sends at least that far).
pub fn sendable_lsn(c: &mut impl Sql) -> Result<u64> {
    let row = c
        .query_one(
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
                      THEN COALESCE(pg_catalog.pg_last_wal_replay_lsn(), '0/0')
                      ELSE pg_catalog.pg_current_wal_flush_lsn()
                    END",
            &[],
        )
        .map_err(|e| query_error("retrieving the node's WAL flush position", &e))?;
    let lsn: PgLsn = row.val(0)?;
    Ok(u64::from(lsn))
}
