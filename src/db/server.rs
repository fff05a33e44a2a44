//! Facts about a running server: role, version, timeline, replication.

use super::session::RowExt;
use super::session::Sql;

use super::query_error;
use crate::error::Result;

/// Whether the server is a standby (`pg_is_in_recovery()`).
/// This session's backend process ID.
pub fn backend_pid(c: &mut impl Sql) -> Result<i32> {
    let row = c
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .map_err(|e| query_error("reading the backend pid", &e))?;
    row.val(0)
}

pub fn in_recovery(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .map_err(|e| query_error("checking the recovery state", &e))?;
    row.val(0)
}

/// repmgrd's `connection_check_query`: the operator's own SQL, run as
/// written (as repmgr does; it takes no parameters), only its success counts.
pub fn run_check_query(c: &mut impl Sql, sql: &str) -> Result<()> {
    c.batch_execute(sql)
        .map_err(|e| query_error("running connection_check_query", &e))
}

/// `server_version_num`, e.g. 150018.
pub fn version_num(c: &mut impl Sql) -> Result<i32> {
    let row = c
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::INT",
            &[],
        )
        .map_err(|e| query_error("retrieving the server version", &e))?;
    row.val(0)
}

/// The server's data directory, if this role may read it (superuser or
/// pg_read_all_settings); None otherwise.
pub fn data_directory(c: &mut impl Sql) -> Result<Option<String>> {
    let row = c
        .query_one(
            "SELECT CASE WHEN pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER')
                         THEN pg_catalog.current_setting('data_directory') END",
            &[],
        )
        .map_err(|e| query_error("retrieving the data directory", &e))?;
    row.val(0)
}

/// The timeline the node is on: a primary's current WAL timeline, a
/// standby's received timeline (or its last checkpoint's when not streaming).
pub fn timeline(c: &mut impl Sql) -> Result<i64> {
    let row = c
        .query_one(
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
                    THEN COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver),
                                  (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))::BIGINT
                    ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::BIT(32)::BIGINT
                    END",
            &[],
        )
        .map_err(|e| query_error("retrieving the timeline", &e))?;
    row.val(0)
}

/// application_names of the standbys streaming (or catching up) from here.
pub fn attached_standbys(c: &mut impl Sql) -> Result<Vec<String>> {
    let rows = c
        .query_typed(
            "SELECT a.application_name::TEXT
               FROM pg_catalog.pg_stat_get_wal_senders() w,
                    pg_catalog.pg_stat_get_activity(w.pid) a
              WHERE w.state IN ('streaming', 'catchup', 'startup', 'backup')",
            &[],
        )
        .map_err(|e| query_error("checking pg_stat_replication", &e))?;
    rows.iter().map(|r| r.val(0)).collect()
}

/// What `cluster show` asks each node, in one statement (one round trip,
/// no prepare): [`in_recovery`], [`timeline`], [`wal_replay_paused`],
/// [`attached_standbys`] and `fence::is_fenced`. The statistics are read
/// through the functions behind the views (`pg_stat_get_wal_senders()`,
/// `pg_stat_get_activity(pid)`, `pg_stat_get_wal_receiver()`,
/// `pg_show_all_settings()`): a new session would otherwise spend most of
/// its time expanding the views' joins against cold catalog caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFacts {
    pub in_recovery: bool,
    pub timeline: Option<i64>,
    pub replay_paused: bool,
    pub attached: Vec<String>,
    pub fenced: bool,
}

/// [`ProbeFacts`] in one statement. `want_attached`: whether the standbys
/// streaming from here are asked (`cluster show` needs them only of a node
/// some standby names as its upstream; `pg_stat_get_activity()` copies
/// every backend's status, a good part of what a probe costs a new
/// session). A primary's timeline comes as its current WAL file's name,
/// read here: the casts that would turn it into a number on the server
/// cost more cold catalog lookups than the answer is worth.
pub fn probe_facts(c: &mut impl Sql, want_attached: bool) -> Result<ProbeFacts> {
    let attached = if want_attached {
        "ARRAY(SELECT a.application_name::TEXT
                 FROM pg_catalog.pg_stat_get_wal_senders() w,
                      pg_catalog.pg_stat_get_activity(w.pid) a
                WHERE w.state IN ('streaming', 'catchup', 'startup', 'backup'))"
    } else {
        "NULL::TEXT[]"
    };
    let row = c
        .query_typed_one(
            &format!("SELECT pg_catalog.pg_is_in_recovery(),
                    CASE WHEN pg_catalog.pg_is_in_recovery()
                    THEN COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_get_wal_receiver()
                                    WHERE pid IS NOT NULL),
                                  (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))::BIGINT
                    END,
                    CASE WHEN NOT pg_catalog.pg_is_in_recovery()
                    THEN pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END,
                    CASE WHEN pg_catalog.pg_is_in_recovery()
                    THEN pg_catalog.pg_is_wal_replay_paused() ELSE FALSE END,
                    {attached},
                    {}", super::fence::FENCED),
            &[],
        )
        .map_err(|e| query_error("probing the node", &e))?;
    let standby_tli: Option<i64> = row.val(1)?;
    let walfile: Option<String> = row.val(2)?;
    let attached: Option<Vec<String>> = row.val(4)?;
    Ok(ProbeFacts {
        in_recovery: row.val(0)?,
        timeline: standby_tli.or_else(|| walfile.as_deref().and_then(walfile_timeline)),
        replay_paused: row.val(3)?,
        attached: attached.unwrap_or_default(),
        fenced: row.val(5)?,
    })
}

/// The timeline in a WAL file's name: its first 8 hex digits.
fn walfile_timeline(name: &str) -> Option<i64> {
    name.get(..8).and_then(|t| i64::from_str_radix(t, 16).ok())
}

/// Whether WAL replay is paused (standbys only; false on a primary).
pub fn wal_replay_paused(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
                    THEN pg_catalog.pg_is_wal_replay_paused() ELSE FALSE END",
            &[],
        )
        .map_err(|e| query_error("checking whether WAL replay is paused", &e))?;
    row.val(0)
}

/// The user this session runs as.
pub fn current_user(c: &mut impl Sql) -> Result<String> {
    let row = c
        .query_one("SELECT current_user::TEXT", &[])
        .map_err(|e| query_error("retrieving the current user", &e))?;
    row.val(0)
}

/// Asks the server to promote (`pg_promote`, PostgreSQL 12+) without
/// waiting; the caller polls `pg_is_in_recovery()` with its own deadline.
pub fn promote(c: &mut impl Sql) -> std::result::Result<(), super::SqlError> {
    c.execute("SELECT pg_catalog.pg_promote(false)", &[])
        .map(|_| ())
}

/// Asks the server to re-read its configuration (`pg_reload_conf`).
pub fn reload_conf(c: &mut impl Sql) -> std::result::Result<(), super::SqlError> {
    c.execute("SELECT pg_catalog.pg_reload_conf()", &[])
        .map(|_| ())
}

/// Whether pg_rewind could rewind a node against this one's history:
/// `wal_log_hints` on, or data checksums enabled.
pub fn rewind_possible(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT pg_catalog.current_setting('wal_log_hints')::BOOL
                 OR pg_catalog.current_setting('data_checksums')::BOOL",
            &[],
        )
        .map_err(|e| query_error("checking wal_log_hints and data_checksums", &e))?;
    row.val(0)
}

/// `CHECKPOINT` (superuser or pg_checkpoint role).
pub fn checkpoint(c: &mut impl Sql) -> std::result::Result<(), super::SqlError> {
    super::session::with_bound(c, super::session::CHECKPOINT_BOUND, |c| {
        c.batch_execute("CHECKPOINT")
    })
}

/// The WAL receiver's pid, if one runs (standbys only).
pub fn wal_receiver_pid(c: &mut impl Sql) -> Result<Option<i32>> {
    let row = c
        .query_opt("SELECT pid FROM pg_catalog.pg_stat_wal_receiver", &[])
        .map_err(|e| query_error("reading pg_stat_wal_receiver", &e))?;
    Ok(row.map(|r| r.val::<Option<_>>(0)).transpose()?.flatten())
}

/// Stops the WAL receiver from reconnecting (repmgr's way: a very long
/// `wal_retrieve_retry_interval`), or undoes it. Ending the running
/// receiver is the caller's (a signal from its host).
pub fn set_wal_receiver_enabled(c: &mut impl Sql, enabled: bool) -> Result<()> {
    let set = if enabled {
        "ALTER SYSTEM RESET wal_retrieve_retry_interval"
    } else {
        "ALTER SYSTEM SET wal_retrieve_retry_interval = 86400000"
    };
    c.batch_execute(set)
        .map_err(|e| query_error("changing wal_retrieve_retry_interval", &e))?;
    c.batch_execute("SELECT pg_catalog.pg_reload_conf()")
        .map_err(|e| query_error("reloading the configuration", &e))?;
    Ok(())
}

/// The host and port the WAL receiver streams from, when it streams.
pub fn wal_receiver_sender(c: &mut impl Sql) -> Result<Option<(String, i32)>> {
    let row = c
        .query_opt(
            "SELECT sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver
              WHERE status = 'streaming'",
            &[],
        )
        .map_err(|e| query_error("reading pg_stat_wal_receiver", &e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let host: Option<String> = r.val(0)?;
    let port: Option<i32> = r.val(1)?;
    Ok(host.zip(port))
}

/// Ends the WAL receiver's stream for good (repmgrd, on a standby that
/// streams from a superseded node): `primary_conninfo` becomes empty in
/// postgresql.auto.conf and the configuration is reloaded. From PostgreSQL
/// 13 on the startup process ends a running receiver when primary_conninfo
/// changes, and starts none while it is empty, through restarts too; a
/// later follow or rejoin writes it anew.
pub fn clear_primary_conninfo(c: &mut impl Sql) -> Result<()> {
    c.batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
        .map_err(|e| query_error("clearing primary_conninfo (ALTER SYSTEM)", &e))?;
    c.batch_execute("SELECT pg_catalog.pg_reload_conf()")
        .map_err(|e| query_error("reloading the configuration", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::walfile_timeline;

    #[test]
    fn the_timeline_is_the_first_eight_hex_digits_of_the_wal_file_name() {
        assert_eq!(walfile_timeline("000000010000000000000003"), Some(1));
        assert_eq!(walfile_timeline("0000001A00000000000000FF"), Some(26));
        assert_eq!(walfile_timeline("0000"), None);
        assert_eq!(walfile_timeline("zzzzzzzz0000000000000000"), None);
    }
}
