//! What `standby clone` asks of its upstream: replication settings, WAL
//! sender and slot usage, physical slots, and the non-exclusive backup
//! functions (`pg_backup_start`/`pg_backup_stop` from PostgreSQL 15, the
//! `pg_start_backup`/`pg_stop_backup` names before).

use std::collections::HashMap;

use super::session::RowExt;
use super::session::Sql;

use super::query_error;
use crate::error::Result;

/// The upstream's settings that decide whether a standby can be cloned.
#[derive(Debug, Clone, Default)]
pub struct UpstreamSettings {
    pub wal_level: String,
    pub max_wal_senders: i64,
    pub wal_senders_in_use: i64,
    pub hot_standby: bool,
    /// `wal_keep_size` (MB, 13+) or `wal_keep_segments` (before 13).
    pub wal_keep_name: &'static str,
    pub wal_keep: i64,
    pub max_replication_slots: i64,
    pub slots_in_use: i64,
    pub archive_mode: String,
    pub archive_command: String,
}

pub fn settings(c: &mut impl Sql, version_num: i32) -> Result<UpstreamSettings> {
    let wal_keep_name = if version_num >= 130000 {
        "wal_keep_size"
    } else {
        "wal_keep_segments"
    };
    let names: Vec<String> = [
        "wal_level",
        "max_wal_senders",
        "hot_standby",
        wal_keep_name,
        "max_replication_slots",
        "archive_mode",
        "archive_command",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows = c
        .query(
            "SELECT name::TEXT, setting::TEXT FROM pg_catalog.pg_settings WHERE name = ANY($1)",
            &[&names],
        )
        .map_err(|e| query_error("retrieving the upstream's replication settings", &e))?;
    let map: HashMap<String, String> = rows
        .iter()
        .map(|r| Ok((r.val(0)?, r.val(1)?)))
        .collect::<Result<_>>()?;
    let get = |k: &str| map.get(k).cloned().unwrap_or_default();
    let int = |k: &str| get(k).parse::<i64>().unwrap_or(0);
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_stat_replication),
                    (SELECT count(*) FROM pg_catalog.pg_replication_slots)",
            &[],
        )
        .map_err(|e| query_error("counting WAL senders and replication slots", &e))?;
    Ok(UpstreamSettings {
        wal_level: get("wal_level"),
        max_wal_senders: int("max_wal_senders"),
        wal_senders_in_use: row.val(0)?,
        hot_standby: get("hot_standby") == "on",
        wal_keep_name,
        wal_keep: int(wal_keep_name),
        max_replication_slots: int("max_replication_slots"),
        slots_in_use: row.val(1)?,
        archive_mode: get("archive_mode"),
        archive_command: get("archive_command"),
    })
}

/// `data_directory`, `config_file`, `hba_file`, `ident_file` as far as this
/// role may read them (superuser or pg_read_all_settings).
pub fn file_settings(c: &mut impl Sql) -> Result<HashMap<String, String>> {
    let rows = c
        .query(
            "SELECT name::TEXT, setting::TEXT FROM pg_catalog.pg_settings
              WHERE name IN ('data_directory', 'config_file', 'hba_file', 'ident_file')",
            &[],
        )
        .map_err(|e| query_error("retrieving the upstream's file locations", &e))?;
    rows.iter().map(|r| Ok((r.val(0)?, r.val(1)?))).collect()
}

/// The server's system identifier.
pub fn system_identifier(c: &mut impl Sql) -> Result<String> {
    let row = c
        .query_one(
            "SELECT system_identifier::TEXT FROM pg_catalog.pg_control_system()",
            &[],
        )
        .map_err(|e| query_error("retrieving the system identifier", &e))?;
    row.val(0)
}

/// A physical slot's `active` flag; None when it does not exist.
pub fn slot_active(c: &mut impl Sql, name: &str) -> Result<Option<bool>> {
    let rows = c
        .query(
            "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .map_err(|e| query_error("checking the replication slot", &e))?;
    rows.first().map(|r| r.val(0)).transpose()
}

/// Creates a physical slot that reserves WAL from now on.
pub fn create_physical_slot(c: &mut impl Sql, name: &str) -> Result<()> {
    c.query_one(
        "SELECT pg_catalog.pg_create_physical_replication_slot($1, TRUE)",
        &[&name],
    )
    .map_err(|e| query_error(&format!("creating replication slot \"{name}\""), &e))?;
    Ok(())
}

pub fn drop_slot(c: &mut impl Sql, name: &str) -> Result<()> {
    c.query_one("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&name])
        .map_err(|e| query_error(&format!("dropping replication slot \"{name}\""), &e))?;
    Ok(())
}

/// A tablespace other than pg_default/pg_global, with its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    pub oid: i64,
    pub name: String,
    pub location: String,
}

pub fn tablespaces(c: &mut impl Sql) -> Result<Vec<Tablespace>> {
    let rows = c
        .query(
            "SELECT oid::INT8, spcname::TEXT, pg_catalog.pg_tablespace_location(oid)
               FROM pg_catalog.pg_tablespace
              WHERE spcname NOT IN ('pg_default', 'pg_global')
              ORDER BY oid",
            &[],
        )
        .map_err(|e| query_error("listing tablespaces", &e))?;
    rows.iter()
        .map(|r| {
            Ok(Tablespace {
                oid: r.val(0)?,
                name: r.val(1)?,
                location: r.val(2)?,
            })
        })
        .collect()
}

/// Session settings for a backup session that may sit idle for hours while
/// files are copied: no statement or idle-session timeout may abort it.
pub fn prepare_backup_session(c: &mut impl Sql, version_num: i32) -> Result<()> {
    let mut sql =
        String::from("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0;");
    if version_num >= 140000 {
        sql.push_str(" SET idle_session_timeout = 0;");
    }
    c.batch_execute(&sql)
        .map_err(|e| query_error("preparing the backup session", &e))
}

/// Starts a non-exclusive backup on this session; returns its start LSN.
pub fn backup_start(c: &mut impl Sql, version_num: i32, label: &str, fast: bool) -> Result<String> {
    let sql = if version_num >= 150000 {
        "SELECT pg_catalog.pg_backup_start($1, $2)::TEXT"
    } else {
        "SELECT pg_catalog.pg_start_backup($1, $2, FALSE)::TEXT"
    };
    // A backup starts with a checkpoint, spread unless `fast`.
    let row = super::session::with_bound(c, super::session::CHECKPOINT_BOUND, |c| {
        c.query_one(sql, &[&label, &fast])
    })
    .map_err(|e| query_error("starting the backup", &e))?;
    row.val(0)
}

/// What ending a non-exclusive backup returns.
#[derive(Debug, Clone, Default)]
pub struct BackupStop {
    pub lsn: String,
    pub backup_label: String,
    pub tablespace_map: String,
}

/// Ends the backup started on this session. It does not wait for WAL
/// archiving (that wait has no bound); the standby gets its WAL by
/// streaming, a slot, wal_keep_size or restore_command.
pub fn backup_stop(c: &mut impl Sql, version_num: i32) -> Result<BackupStop> {
    let row = if version_num >= 150000 {
        c.query_one(
            "SELECT lsn::TEXT, labelfile, spcmapfile FROM pg_catalog.pg_backup_stop(FALSE)",
            &[],
        )
    } else {
        c.query_one(
            "SELECT lsn::TEXT, labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(FALSE, FALSE)",
            &[],
        )
    }
    .map_err(|e| query_error("stopping the backup", &e))?;
    Ok(BackupStop {
        lsn: row.val(0)?,
        backup_label: row.val::<Option<String>>(1)?.unwrap_or_default(),
        tablespace_map: row.val::<Option<String>>(2)?.unwrap_or_default(),
    })
}
