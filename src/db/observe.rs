//! What repmgrd reads of a server: its own every monitoring cycle, and
//! every node's when it looks at the whole cluster. A fixed, small number
//! of round trips each.

use tokio_postgres::types::PgLsn;

use super::session::{query_error, RowExt, Sql};
use crate::error::Result;

/// A WAL receiver as `pg_stat_wal_receiver` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverRow {
    pub streaming: bool,
    pub sender_host: Option<String>,
    pub sender_port: Option<i32>,
    /// Milliseconds since its last message from the sender.
    pub last_msg_age_ms: Option<i64>,
}

/// The application_name repmgrd gives its local session, followed by its
/// peer port and node: `repmgrd port=PORT node=ID` (13 characters, then
/// the port). The node lets the SQL functions of repmgr 5's names
/// (`repmgr.get_repmgrd_pid()`, …) tell which node their server is, and
/// the whole mark tells this implementation's repmgrd from repmgr 5's,
/// which names its sessions plain `repmgrd`.
pub const PEER_MARK: &str = "repmgrd port=";

/// One server's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRow {
    pub in_recovery: bool,
    pub timeline: u32,
    pub lsn: u64,
    pub receiver: Option<ReceiverRow>,
    /// `repmgr.voting_term` in its metadata (0 without one).
    pub voting_term: i64,
    /// Its configured default is read-only (the read-only fence).
    pub read_only_fenced: bool,
    /// Its own `synchronous_standby_names`.
    pub sync_standby_names: String,
    /// Its streaming standbys (application_name).
    pub attached: Vec<String>,
    /// repmgrd sessions connected to it (other than this one).
    pub daemon_sessions: i64,
    /// The peer port its own repmgrd announces on its local session
    /// ([`PEER_MARK`]), so that peers find it while no primary can
    /// tell them.
    pub peer_port: Option<u16>,
    pub receive_lsn: Option<PgLsn>,
    pub replay_lsn: Option<PgLsn>,
    pub last_replay: Option<String>,
    /// The sender's WAL end as its last message to the WAL receiver said
    /// (`latest_end_lsn`): the upstream's position, as of that message.
    pub sender_end_lsn: Option<PgLsn>,
    /// repmgr's replication lag in seconds (0 when all that was received
    /// is replayed, else the age of the last replayed transaction); None
    /// on a primary.
    pub lag_secs: Option<f64>,
}

/// Reads a server's state: its position (timeline from the history files
/// on a standby), then the rest in one query.
pub fn server(c: &mut impl Sql) -> Result<ServerRow> {
    let pos = super::timeline::position(c)?;
    let row = c
        .query_one(
            "SELECT (SELECT status = 'streaming' FROM pg_catalog.pg_stat_wal_receiver),
                    (SELECT sender_host FROM pg_catalog.pg_stat_wal_receiver),
                    (SELECT sender_port FROM pg_catalog.pg_stat_wal_receiver),
                    (SELECT (EXTRACT(EPOCH FROM (pg_catalog.now() - last_msg_receipt_time)) * 1000)::INT8
                       FROM pg_catalog.pg_stat_wal_receiver),
                    CASE WHEN pg_catalog.to_regclass('repmgr.voting_term') IS NULL THEN 0::INT8
                         ELSE COALESCE((SELECT pg_catalog.max(term) FROM repmgr.voting_term), 0)::INT8
                    END,
                    COALESCE((SELECT setting = 'on' AND source = 'configuration file'
                                FROM pg_catalog.pg_settings
                               WHERE name = 'default_transaction_read_only'), FALSE),
                    pg_catalog.current_setting('synchronous_standby_names'),
                    ARRAY(SELECT application_name::TEXT FROM pg_catalog.pg_stat_replication
                           WHERE state = 'streaming'),
                    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
                      WHERE (application_name = 'repmgrd' OR application_name LIKE 'repmgrd port=%')
                        AND pid <> pg_catalog.pg_backend_pid())::INT8,
                    pg_catalog.pg_last_wal_receive_lsn(),
                    pg_catalog.pg_last_wal_replay_lsn(),
                    pg_catalog.pg_last_xact_replay_timestamp()::TEXT,
                    (SELECT pg_catalog.split_part(pg_catalog.substr(application_name, 14), ' ', 1) FROM pg_catalog.pg_stat_activity
                      WHERE application_name LIKE 'repmgrd port=%' LIMIT 1),
                    (SELECT latest_end_lsn FROM pg_catalog.pg_stat_wal_receiver),
                    CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN NULL
                         WHEN pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_catalog.pg_last_wal_replay_lsn() THEN 0::FLOAT8
                         ELSE EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp())::FLOAT8
                    END",
            &[],
        )
        .map_err(|e| query_error("reading the server's state", &e))?;
    let streaming: Option<bool> = row.val(0)?;
    let receiver = streaming.map(|streaming| -> Result<ReceiverRow> {
        Ok(ReceiverRow {
            streaming,
            sender_host: row.val(1)?,
            sender_port: row.val(2)?,
            last_msg_age_ms: row.val(3)?,
        })
    });
    Ok(ServerRow {
        in_recovery: pos.in_recovery,
        timeline: pos.timeline,
        lsn: pos.lsn,
        receiver: receiver.transpose()?,
        voting_term: row.val(4)?,
        read_only_fenced: row.val(5)?,
        sync_standby_names: row.val(6)?,
        attached: row.val(7)?,
        daemon_sessions: row.val(8)?,
        receive_lsn: row.val(9)?,
        replay_lsn: row.val(10)?,
        last_replay: row.val(11)?,
        peer_port: row.val::<Option<String>>(12)?.and_then(|p| p.parse().ok()),
        sender_end_lsn: row.val(13)?,
        lag_secs: row.val(14)?,
    })
}

/// Marks this session as repmgrd's, with its peer port and node
/// ([`PEER_MARK`]).
pub fn announce_peer_port(c: &mut impl Sql, port: u16, node_id: i32) -> Result<()> {
    let name = format!("{PEER_MARK}{port} node={node_id}");
    c.execute(
        "SELECT pg_catalog.set_config('application_name', $1, false)",
        &[&name],
    )
    .map_err(|e| query_error("announcing the repmgrd peer port", &e))?;
    Ok(())
}
