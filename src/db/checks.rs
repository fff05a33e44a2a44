//! The queries behind `node status`, `node check` and `cluster cleanup`.
//!
//! `node check` runs from cron and Nagios every minute, so the local facts
//! come from one statement (one round trip, no prepare) instead of repmgr's
//! dozen small queries. The statistics views are read through the functions
//! behind them (`pg_stat_get_wal_senders()`, `pg_stat_get_activity(pid)`,
//! `pg_get_replication_slots()`): a new session parses and plans a view's
//! joins (pg_authid, pg_database) against cold catalog caches, which cost
//! more than the rest of the command.

use super::nodes::{self, NodeRecord};
use super::session::Row;
use super::session::RowExt;
use super::session::Sql;
use tokio_postgres::types::Type;

use super::query_error;
use crate::error::Result;

/// What one query tells about the local server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    pub in_recovery: bool,
    /// `server_version` cut at the first space ("15.4", not "15.4 (Debian…)").
    pub server_version: String,
    pub max_wal_senders: i32,
    /// Rows in pg_stat_replication.
    pub attached_wal_receivers: i32,
    pub max_replication_slots: i32,
    pub total_slots: i32,
    pub active_slots: i32,
    pub inactive_slots: i32,
    /// repmgr's get_replication_lag_seconds: 0 when everything received is
    /// replayed, else seconds since the last replayed transaction; None
    /// when unknown (or on a primary).
    pub lag_seconds: Option<i32>,
    /// The `data_directory` setting, when this role may read it (superuser,
    /// pg_read_all_settings or pg_monitor).
    pub data_directory: Option<String>,
    pub archive_mode: String,
    pub archive_command: String,
    /// Last received / replayed LSN (standby), as text.
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    /// repmgr's replication_lag_time for `node status` (0 when unknown).
    pub status_lag_seconds: i32,
    /// A primary fenced read-only by repmgrd (see [`super::fence::is_fenced`]).
    pub fenced: bool,
}

/// What [`stats`] selects, as columns of one row (scalar subqueries only,
/// so it can follow the node record's columns in one statement).
const STATS_COLUMNS: &str = "pg_catalog.pg_is_in_recovery(),
    pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1),
    pg_catalog.current_setting('max_wal_senders')::INT4,
    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_get_wal_senders())::INT4,
    pg_catalog.current_setting('max_replication_slots')::INT4,
    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_get_replication_slots()
      WHERE slot_type = 'physical')::INT4,
    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_get_replication_slots()
      WHERE slot_type = 'physical' AND active)::INT4,
    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_get_replication_slots()
      WHERE slot_type = 'physical' AND NOT active)::INT4,
    CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN NULL
         WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0
         ELSE EXTRACT(EPOCH FROM (pg_catalog.clock_timestamp()
                                  - pg_catalog.pg_last_xact_replay_timestamp()))::INT4
    END,
    CASE WHEN pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER')
         THEN pg_catalog.current_setting('data_directory') END,
    pg_catalog.current_setting('archive_mode'),
    pg_catalog.current_setting('archive_command'),
    pg_catalog.pg_last_wal_receive_lsn()::TEXT,
    pg_catalog.pg_last_wal_replay_lsn()::TEXT,
    CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0
         WHEN pg_catalog.pg_last_xact_replay_timestamp() IS NULL THEN 0
         ELSE EXTRACT(EPOCH FROM (pg_catalog.clock_timestamp()
                                  - pg_catalog.pg_last_xact_replay_timestamp()))::INT4
    END";

/// What [`role`] selects: the recovery state (and the fence, as every
/// statement here: see [`columns`]).
const ROLE_COLUMNS: &str = "pg_catalog.pg_is_in_recovery()";

/// `template`'s columns and, last, whether the node is fenced.
fn columns(template: &str) -> String {
    format!("{template}, {}", super::fence::FENCED)
}

/// One statement, one round trip.
pub fn stats(c: &mut impl Sql) -> Result<NodeStats> {
    let sql = format!("SELECT {}", columns(STATS_COLUMNS));
    let row = c
        .query_typed_one(&sql, &[])
        .map_err(|e| query_error("retrieving replication statistics", &e))?;
    stats_from(&row, 0)
}

/// Node `node_id`'s record and [`stats`], in one statement (`node check`
/// runs from cron and Nagios: each round trip on a new session counts).
/// None without a record.
pub fn record_and_stats(c: &mut impl Sql, node_id: i32) -> Result<Option<(NodeRecord, NodeStats)>> {
    record_and(c, node_id, STATS_COLUMNS, stats_from)
}

/// Node `node_id`'s record and [`role`], in one statement.
pub fn record_and_role(c: &mut impl Sql, node_id: i32) -> Result<Option<(NodeRecord, NodeStats)>> {
    record_and(c, node_id, ROLE_COLUMNS, role_from)
}

fn record_and(
    c: &mut impl Sql,
    node_id: i32,
    template: &str,
    from: fn(&Row, usize) -> Result<NodeStats>,
) -> Result<Option<(NodeRecord, NodeStats)>> {
    let sql = record_and_sql(template);
    let rows = c.query_typed(&sql, &[(&node_id, Type::INT4)]);
    record_and_from(rows, node_id, from)
}

fn record_and_sql(template: &str) -> String {
    format!(
        "SELECT {}, {} FROM repmgr.nodes WHERE node_id = $1",
        nodes::COLUMNS,
        columns(template)
    )
}

fn record_and_from(
    rows: std::result::Result<Vec<Row>, super::SqlError>,
    node_id: i32,
    from: fn(&Row, usize) -> Result<NodeStats>,
) -> Result<Option<(NodeRecord, NodeStats)>> {
    let what = || format!("retrieving the record for node {node_id}");
    let mut rows = rows.map_err(|e| query_error(&what(), &e))?;
    if rows.len() > 1 {
        let e = super::SqlError::Unexpected(format!(
            "{} rows where at most one was expected",
            rows.len()
        ));
        return Err(query_error(&what(), &e));
    }
    match rows.pop() {
        Some(r) => Ok(Some((nodes::from_row(&r)?, from(&r, nodes::COLUMN_COUNT)?))),
        None => Ok(None),
    }
}

/// What [`local_facts`] asks besides the record, the statistics and the
/// downstream nodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    /// [`downstream`].
    pub downstream: bool,
    /// [`cluster_size`] (`node status`).
    pub size: bool,
    /// The record of the node's registered upstream.
    pub upstream: bool,
}

/// What `node status` and `node check` read from the local node.
pub struct LocalFacts {
    /// The node's record and [`stats`]; None without a record.
    pub found: Option<(NodeRecord, NodeStats)>,
    /// When asked: [`downstream`].
    pub downstream: Option<Result<Vec<Downstream>>>,
    /// When asked: [`cluster_size`].
    pub size: Option<Result<String>>,
    /// When asked: the record of the node named as this node's upstream
    /// (None when it names none, or no such record).
    pub upstream: Option<Result<Option<NodeRecord>>>,
}

/// [`record_and_stats`] and what `ask` adds, as separate
/// statements sent together: one round trip on a new session instead of
/// one each (cron and Nagios run these every minute). An error of the
/// record's statement fails the call; the others' are in their fields.
pub fn local_facts(c: &mut impl Sql, node_id: i32, ask: Ask) -> Result<LocalFacts> {
    let record = record_and_sql(STATS_COLUMNS);
    let upstream = format!(
        "SELECT {} FROM repmgr.nodes
          WHERE node_id = (SELECT upstream_node_id FROM repmgr.nodes WHERE node_id = $1)",
        nodes::COLUMNS
    );
    let id: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)] = &[(&node_id, Type::INT4)];
    let mut stmts = vec![(record.as_str(), id)];
    if ask.downstream {
        stmts.push((DOWNSTREAM, id));
    }
    if ask.size {
        stmts.push((CLUSTER_SIZE, &[]));
    }
    if ask.upstream {
        stmts.push((upstream.as_str(), id));
    }
    let mut answers = c
        .query_typed_all(&stmts)
        .map_err(|e| query_error(&format!("retrieving the record for node {node_id}"), &e))?
        .into_iter();
    let mut next = || {
        answers
            .next()
            .unwrap_or_else(|| Err(super::SqlError::Unexpected("no answer".into())))
    };
    let found = record_and_from(next(), node_id, stats_from)?;
    let downstream = ask.downstream.then(|| downstream_from(next()));
    let size = ask.size.then(|| cluster_size_from(next()));
    let upstream = ask.upstream.then(|| {
        let rows = next().map_err(|e| query_error("retrieving the upstream node record", &e))?;
        rows.first().map(nodes::from_row).transpose()
    });
    Ok(LocalFacts {
        found,
        downstream,
        size,
        upstream,
    })
}

fn stats_from(row: &Row, at: usize) -> Result<NodeStats> {
    Ok(NodeStats {
        in_recovery: row.val(at)?,
        server_version: row.val(at + 1)?,
        max_wal_senders: row.val(at + 2)?,
        attached_wal_receivers: row.val(at + 3)?,
        max_replication_slots: row.val(at + 4)?,
        total_slots: row.val(at + 5)?,
        active_slots: row.val(at + 6)?,
        inactive_slots: row.val(at + 7)?,
        lag_seconds: row.val(at + 8)?,
        data_directory: row.val(at + 9)?,
        archive_mode: row.val(at + 10)?,
        archive_command: row.val(at + 11)?,
        receive_lsn: row.val(at + 12)?,
        replay_lsn: row.val(at + 13)?,
        status_lag_seconds: row.val::<Option<i32>>(at + 14)?.unwrap_or(0),
        fenced: row.val(at + 15)?,
    })
}

/// Only what `node check --role` needs, in one round trip: the recovery
/// state and the fence (the rest of [`NodeStats`] left at its default).
pub fn role(c: &mut impl Sql) -> Result<NodeStats> {
    let sql = format!("SELECT {}", columns(ROLE_COLUMNS));
    let row = c
        .query_typed_one(&sql, &[])
        .map_err(|e| query_error("checking the recovery state", &e))?;
    role_from(&row, 0)
}

fn role_from(row: &Row, at: usize) -> Result<NodeStats> {
    Ok(NodeStats {
        in_recovery: row.val(at)?,
        fenced: row.val(at + 1)?,
        ..NodeStats::default()
    })
}

/// A node registered with this node as its upstream, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    pub node_id: i32,
    pub node_name: String,
    pub is_witness: bool,
    /// Streaming from this node (pg_stat_replication state "streaming").
    pub attached: bool,
    /// A standby whose registered slot does not exist on this node.
    pub slot_missing: bool,
    pub slot_name: Option<String>,
}

/// [`downstream`]'s statement.
const DOWNSTREAM: &str = "SELECT n.node_id, n.node_name, n.type = 'witness',
                    EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_wal_senders() w,
                                          pg_catalog.pg_stat_get_activity(w.pid) a
                             WHERE a.application_name = n.node_name AND w.state = 'streaming'),
                    (n.type = 'standby' AND n.slot_name IS NOT NULL AND n.slot_name <> ''
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_get_replication_slots() s
                                      WHERE s.slot_name = n.slot_name)),
                    n.slot_name
               FROM repmgr.nodes n
              WHERE n.upstream_node_id = $1
              ORDER BY n.node_id";

/// Every node registered downstream of `node_id`, by node_id, with whether
/// it is attached here and whether its slot is missing (one round trip).
pub fn downstream(c: &mut impl Sql, node_id: i32) -> Result<Vec<Downstream>> {
    downstream_from(c.query_typed(DOWNSTREAM, &[(&node_id, Type::INT4)]))
}

fn downstream_from(
    rows: std::result::Result<Vec<Row>, super::SqlError>,
) -> Result<Vec<Downstream>> {
    let rows = rows.map_err(|e| query_error("retrieving downstream node records", &e))?;
    rows.iter()
        .map(|r| {
            Ok(Downstream {
                node_id: r.val(0)?,
                node_name: r.val(1)?,
                is_witness: r.val(2)?,
                attached: r.val(3)?,
                slot_missing: r.val(4)?,
                slot_name: r.val(5)?,
            })
        })
        .collect()
}

/// Names of the inactive physical replication slots.
pub fn inactive_slots(c: &mut impl Sql) -> Result<Vec<String>> {
    let rows = c
        .query_typed(
            "SELECT slot_name::TEXT FROM pg_catalog.pg_get_replication_slots()
              WHERE NOT active AND slot_type = 'physical' ORDER BY slot_name",
            &[],
        )
        .map_err(|e| query_error("retrieving inactive replication slots", &e))?;
    rows.iter().map(|r| r.val(0)).collect()
}

/// [`cluster_size`]'s statement.
const CLUSTER_SIZE: &str =
    "SELECT pg_catalog.pg_size_pretty(pg_catalog.sum(pg_catalog.pg_database_size(oid))::BIGINT)
       FROM pg_catalog.pg_database";

/// The size of all databases, pretty-printed as repmgr's get_cluster_size.
pub fn cluster_size(c: &mut impl Sql) -> Result<String> {
    cluster_size_from(c.query_typed(CLUSTER_SIZE, &[]))
}

fn cluster_size_from(rows: std::result::Result<Vec<Row>, super::SqlError>) -> Result<String> {
    let rows = rows.map_err(|e| query_error("retrieving the cluster size", &e))?;
    match rows.first() {
        Some(r) if rows.len() == 1 => r.val(0),
        _ => {
            let e = super::SqlError::Unexpected(format!(
                "{} rows where exactly one was expected",
                rows.len()
            ));
            Err(query_error("retrieving the cluster size", &e))
        }
    }
}

/// Whether this session is a superuser (CHECKPOINT needs one before 15's
/// pg_checkpoint role).
pub fn is_superuser(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_typed_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(|e| query_error("checking for superuser", &e))?;
    row.val(0)
}

pub fn checkpoint(c: &mut impl Sql) -> Result<()> {
    super::session::with_bound(c, super::session::CHECKPOINT_BOUND, |c| {
        c.batch_execute("CHECKPOINT")
    })
    .map_err(|e| query_error("issuing CHECKPOINT", &e))
}

/// monitoring_history rows at least `days` old (all with 0), optionally for
/// one standby only.
pub fn monitoring_rows_to_delete(c: &mut impl Sql, days: i32, node_id: Option<i32>) -> Result<i64> {
    let row = c
        .query_typed_one(
            "SELECT pg_catalog.count(*) FROM repmgr.monitoring_history
              WHERE pg_catalog.age(pg_catalog.now(), last_monitor_time) >= pg_catalog.make_interval(days => $1)
                AND ($2::INT4 IS NULL OR standby_node_id = $2)",
            &[(&days, Type::INT4), (&node_id, Type::INT4)],
        )
        .map_err(|e| query_error("counting monitoring records to clean up", &e))?;
    row.val(0)
}

/// Deletes what [`monitoring_rows_to_delete`] counts.
pub fn delete_monitoring_rows(
    c: &mut impl Sql,
    days: i32,
    node_id: Option<i32>,
) -> std::result::Result<u64, super::SqlError> {
    c.execute_typed(
        "DELETE FROM repmgr.monitoring_history
          WHERE pg_catalog.age(pg_catalog.now(), last_monitor_time) >= pg_catalog.make_interval(days => $1)
            AND ($2::INT4 IS NULL OR standby_node_id = $2)",
        &[(&days, Type::INT4), (&node_id, Type::INT4)],
    )
}

pub fn vacuum_monitoring(c: &mut impl Sql) -> std::result::Result<(), super::SqlError> {
    c.batch_execute("VACUUM repmgr.monitoring_history")
}
