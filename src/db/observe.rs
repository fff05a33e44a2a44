//! What repmgrd reads of a server: its own every monitoring cycle, and
//! every node's when it looks at the whole cluster. A fixed, small number
//! of round trips each.

use tokio_postgres::types::PgLsn;

use super::session::{query_error, Row, RowExt, Sql};
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

/// What a server says of itself beside its position, as SELECT-list
/// expressions ([`SERVER_WIDTH`] columns, read by [`server_from`]).
const SERVER_COLUMNS: &str = "(SELECT status = 'streaming' FROM pg_catalog.pg_stat_wal_receiver),
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
                    END";

const SERVER_WIDTH: usize = 15;

/// What repmgrd reads of its own node each cycle beyond [`ServerRow`]:
/// from this node's copy of the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRow {
    pub server: ServerRow,
    /// This node's repmgrd is paused.
    pub paused: bool,
    /// The primary's `synchronous_standby_names` as it published it.
    pub published_sync_names: String,
    /// Each repmgrd's published (node, failover automatic, fences); None
    /// without `repmgr.repmgrd_status` (a repmgr 5 schema).
    pub modes: Option<Vec<(i32, bool, bool)>>,
    /// A digest of `repmgr.nodes`: the records need reading again only
    /// when it changes (None: read them every time).
    pub nodes_digest: Option<String>,
}

/// The metadata columns of [`local`], after the server's.
const LOCAL_COLUMNS: &str = "COALESCE((SELECT paused FROM repmgr.repmgrd_status WHERE node_id = $1), FALSE),
        COALESCE((SELECT s.sync_standby_names FROM repmgr.repmgrd_status s
                    JOIN repmgr.nodes n ON n.node_id = s.node_id
                   WHERE n.type = 'primary' AND n.active AND s.sync_standby_names IS NOT NULL
                   ORDER BY s.last_updated DESC NULLS LAST LIMIT 1), ''),
        ARRAY(SELECT node_id FROM repmgr.repmgrd_status ORDER BY node_id),
        ARRAY(SELECT COALESCE(failover = 'automatic', FALSE) FROM repmgr.repmgrd_status ORDER BY node_id),
        ARRAY(SELECT COALESCE(fences, FALSE) FROM repmgr.repmgrd_status ORDER BY node_id),
        (SELECT pg_catalog.md5(pg_catalog.string_agg(n::TEXT, '|' ORDER BY n.node_id)) FROM repmgr.nodes n)";

/// Reads repmgrd's own node: the server and this node's metadata, in one
/// round trip where the schema has the peer columns of repmgrd_status
/// (else, on a repmgr 5 schema, a few).
pub fn local(c: &mut impl Sql, node_id: i32) -> Result<LocalRow> {
    use super::daemon_status as status;
    if !status::has_peer_table(c)? {
        let server = server(c)?;
        let exists = status::table_exists(c)?;
        return Ok(LocalRow {
            paused: status::is_paused(c, node_id)?,
            published_sync_names: status::published_sync_names(c)?,
            modes: if exists {
                Some(status::published_modes(c)?)
            } else {
                None
            },
            nodes_digest: None,
            server,
        });
    }
    let sql = format!(
        "SELECT {}, {SERVER_COLUMNS}, {LOCAL_COLUMNS}",
        super::timeline::position_columns(c)?
    );
    let row = c
        .query_one(&sql, &[&node_id])
        .map_err(|e| query_error("reading the server's state and its metadata", &e))?;
    let server = server_from(c, &row)?;
    let at = super::timeline::POSITION_WIDTH + SERVER_WIDTH;
    let ids: Vec<i32> = row.val(at + 2)?;
    let automatic: Vec<bool> = row.val(at + 3)?;
    let fences: Vec<bool> = row.val(at + 4)?;
    let modes = ids
        .into_iter()
        .zip(automatic)
        .zip(fences)
        .map(|((id, a), f)| (id, a, f))
        .collect();
    Ok(LocalRow {
        server,
        paused: row.val(at)?,
        published_sync_names: row.val(at + 1)?,
        modes: Some(modes),
        nodes_digest: row.val(at + 5)?,
    })
}

/// Reads a server's state (its position, with the timeline from the
/// history files on a standby, and the rest) in one round trip.
pub fn server(c: &mut impl Sql) -> Result<ServerRow> {
    let sql = format!(
        "SELECT {}, {SERVER_COLUMNS}",
        super::timeline::position_columns(c)?
    );
    let row = c
        .query_one(&sql, &[])
        .map_err(|e| query_error("reading the server's state", &e))?;
    server_from(c, &row)
}

/// The server's state from the head of `row`: the position, then
/// [`SERVER_COLUMNS`].
fn server_from(c: &mut impl Sql, row: &Row) -> Result<ServerRow> {
    let pos = super::timeline::position_from(c, row)?;
    let at = super::timeline::POSITION_WIDTH;
    let streaming: Option<bool> = row.val(at)?;
    let receiver = streaming.map(|streaming| -> Result<ReceiverRow> {
        Ok(ReceiverRow {
            streaming,
            sender_host: row.val(at + 1)?,
            sender_port: row.val(at + 2)?,
            last_msg_age_ms: row.val(at + 3)?,
        })
    });
    Ok(ServerRow {
        in_recovery: pos.in_recovery,
        timeline: pos.timeline,
        lsn: pos.lsn,
        receiver: receiver.transpose()?,
        voting_term: row.val(at + 4)?,
        read_only_fenced: row.val(at + 5)?,
        sync_standby_names: row.val(at + 6)?,
        attached: row.val(at + 7)?,
        daemon_sessions: row.val(at + 8)?,
        receive_lsn: row.val(at + 9)?,
        replay_lsn: row.val(at + 10)?,
        last_replay: row.val(at + 11)?,
        peer_port: row
            .val::<Option<String>>(at + 12)?
            .and_then(|p| p.parse().ok()),
        sender_end_lsn: row.val(at + 13)?,
        lag_secs: row.val(at + 14)?,
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
