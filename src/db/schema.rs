//! The `repmgr` metadata schema, in plain SQL: no `CREATE EXTENSION`, no
//! `shared_preload_libraries`. Tables and views are column for column those
//! of repmgr 5 (`repmgr--5.5.sql`) so dashboards and scripts keep working.
//!
//! The schema carries a version (`repmgr.schema_version`) and is brought up
//! to date by numbered migrations, each applied once, in one transaction,
//! under an advisory lock so two `primary register` runs cannot race.
//! What repmgr keeps in shared memory through its C extension (repmgrd pid,
//! pause flag, upstream last seen) lives in `repmgr.repmgrd_status` (version
//! 2), read by SQL functions of the extension's names (version 4). A schema
//! made by the extension counts as version 1 and is completed beside its
//! objects (`db::takeover`).

use super::session::RowExt;
use super::session::{query_error, Session, Sql};

use crate::error::{Error, Result};

/// Arbitrary but fixed key for `pg_advisory_xact_lock` while installing.
const INSTALL_LOCK_KEY: i64 = 0x7265_706d_6772; // "repmgr"

/// Migration steps: index + 1 is the schema version they bring.
const MIGRATIONS: &[&str] = &[
    // Version 1: repmgr 5.5's tables and views, extension-free.
    r#"
CREATE TABLE repmgr.nodes (
  node_id          INTEGER     PRIMARY KEY,
  upstream_node_id INTEGER     NULL REFERENCES repmgr.nodes (node_id) DEFERRABLE,
  active           BOOLEAN     NOT NULL DEFAULT TRUE,
  node_name        TEXT        NOT NULL,
  type             TEXT        NOT NULL CHECK (type IN('primary','standby','witness','bdr')),
  location         TEXT        NOT NULL DEFAULT 'default',
  priority         INT         NOT NULL DEFAULT 100,
  conninfo         TEXT        NOT NULL,
  repluser         VARCHAR(63) NOT NULL,
  slot_name        TEXT        NULL,
  config_file      TEXT        NOT NULL
);

CREATE TABLE repmgr.events (
  node_id          INTEGER NOT NULL,
  event            TEXT NOT NULL,
  successful       BOOLEAN NOT NULL DEFAULT TRUE,
  event_timestamp  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  details          TEXT NULL
);

CREATE TABLE repmgr.monitoring_history (
  primary_node_id                INTEGER NOT NULL,
  standby_node_id                INTEGER NOT NULL,
  last_monitor_time              TIMESTAMP WITH TIME ZONE NOT NULL,
  last_apply_time                TIMESTAMP WITH TIME ZONE,
  last_wal_primary_location      PG_LSN NOT NULL,
  last_wal_standby_location      PG_LSN,
  replication_lag                BIGINT NOT NULL,
  apply_lag                      BIGINT NOT NULL
);

CREATE INDEX idx_monitoring_history_time
          ON repmgr.monitoring_history (last_monitor_time, standby_node_id);

CREATE TABLE repmgr.voting_term (
  term INT NOT NULL
);

CREATE UNIQUE INDEX voting_term_restrict
          ON repmgr.voting_term ((TRUE));

CREATE RULE voting_term_delete AS
   ON DELETE TO repmgr.voting_term
   DO INSTEAD NOTHING;

CREATE VIEW repmgr.show_nodes AS
   SELECT n.node_id,
          n.node_name,
          n.active,
          n.upstream_node_id,
          un.node_name AS upstream_node_name,
          n.type,
          n.priority,
          n.conninfo
     FROM repmgr.nodes n
LEFT JOIN repmgr.nodes un
       ON un.node_id = n.upstream_node_id;

CREATE VIEW repmgr.replication_status AS
  SELECT m.primary_node_id, m.standby_node_id, n.node_name AS standby_name,
         n.type AS node_type, n.active, last_monitor_time,
         CASE WHEN n.type='standby' THEN m.last_wal_primary_location ELSE NULL END AS last_wal_primary_location,
         m.last_wal_standby_location,
         CASE WHEN n.type='standby' THEN pg_catalog.pg_size_pretty(m.replication_lag) ELSE NULL END AS replication_lag,
         CASE WHEN n.type='standby' THEN
           CASE WHEN replication_lag > 0 THEN pg_catalog.age(pg_catalog.now(), m.last_apply_time) ELSE '0'::INTERVAL END
           ELSE NULL
         END AS replication_time_lag,
         CASE WHEN n.type='standby' THEN pg_catalog.pg_size_pretty(m.apply_lag) ELSE NULL END AS apply_lag,
         pg_catalog.age(pg_catalog.now(), m.last_monitor_time) AS communication_time_lag
    FROM repmgr.monitoring_history m
    JOIN repmgr.nodes n ON m.standby_node_id = n.node_id
   WHERE (m.standby_node_id, m.last_monitor_time) IN (
              SELECT m1.standby_node_id, pg_catalog.max(m1.last_monitor_time)
               FROM repmgr.monitoring_history m1 GROUP BY 1
            );
"#,
    // Version 2: what repmgr keeps in the C extension's shared memory, as a
    // plain table written on the primary and read from any node's replicated
    // copy: each repmgrd's pid and heartbeat, the pause flag, and when it
    // last saw its upstream.
    r#"
CREATE TABLE repmgr.repmgrd_status (
  node_id                INTEGER     PRIMARY KEY,
  pid                    INTEGER     NULL,
  pid_file               TEXT        NULL,
  hostname               TEXT        NULL,
  paused                 BOOLEAN     NOT NULL DEFAULT FALSE,
  upstream_node_id       INTEGER     NULL,
  upstream_last_seen     TIMESTAMP WITH TIME ZONE NULL,
  monitor_interval_secs  INTEGER     NOT NULL DEFAULT 2,
  started_at             TIMESTAMP WITH TIME ZONE NULL,
  last_updated           TIMESTAMP WITH TIME ZONE NULL
);
"#,
    // Version 3: what repmgrds need of each other. Where each one's peer
    // channel listens and what it promises (its lease, from its timing
    // settings), its failover mode, and whether a primary fences itself;
    // the primary's synchronous_standby_names, for elections on the
    // standbys; and the cluster's secret that authenticates the peer
    // channel, readable only by the repmgr role.
    r#"
ALTER TABLE repmgr.repmgrd_status
  ADD COLUMN IF NOT EXISTS peer_host          TEXT    NULL,
  ADD COLUMN IF NOT EXISTS peer_port          INTEGER NULL,
  ADD COLUMN IF NOT EXISTS lease_ms           BIGINT  NULL,
  ADD COLUMN IF NOT EXISTS reconnect_attempts INTEGER NULL,
  ADD COLUMN IF NOT EXISTS reconnect_interval INTEGER NULL,
  ADD COLUMN IF NOT EXISTS failover           TEXT    NULL,
  ADD COLUMN IF NOT EXISTS fences             BOOLEAN NULL,
  ADD COLUMN IF NOT EXISTS sync_standby_names TEXT    NULL;

CREATE TABLE IF NOT EXISTS repmgr.daemon_secret (
  system_identifier BIGINT NOT NULL,
  secret            TEXT   NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS daemon_secret_single_row ON repmgr.daemon_secret ((TRUE));
REVOKE ALL ON repmgr.daemon_secret FROM PUBLIC;
"#,
    // Version 4: the SQL-callable functions of repmgr 5's extension that
    // scripts use, as plain SQL over this schema (see repmgr(1), "repmgr 5's
    // functions"). Where the extension made the schema its own C functions
    // have these names: they are left alone.
    r#"
DO $do$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'repmgr') THEN
    RETURN;
  END IF;
  -- repmgrd's session to its own server is named 'repmgrd port=P node=N'.
  CREATE OR REPLACE FUNCTION repmgr.get_local_node_id() RETURNS INT
    LANGUAGE sql STABLE AS $f$
      SELECT pg_catalog.substring(application_name, ' node=([0-9]+)$')::INT
        FROM pg_catalog.pg_stat_activity
       WHERE application_name LIKE 'repmgrd port=% node=%'
       ORDER BY backend_start LIMIT 1
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.repmgrd_is_running() RETURNS BOOL
    LANGUAGE sql STABLE AS $f$
      SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity
                      WHERE application_name LIKE 'repmgrd port=%')
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.get_repmgrd_pid() RETURNS INT
    LANGUAGE sql STABLE AS $f$
      SELECT s.pid FROM repmgr.repmgrd_status s
       WHERE s.node_id = repmgr.get_local_node_id() AND repmgr.repmgrd_is_running()
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.get_repmgrd_pidfile() RETURNS TEXT
    LANGUAGE sql STABLE AS $f$
      SELECT s.pid_file FROM repmgr.repmgrd_status s
       WHERE s.node_id = repmgr.get_local_node_id() AND repmgr.repmgrd_is_running()
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.repmgrd_is_paused() RETURNS BOOL
    LANGUAGE sql STABLE AS $f$
      SELECT COALESCE((SELECT s.paused FROM repmgr.repmgrd_status s
                        WHERE s.node_id = repmgr.get_local_node_id()), FALSE)
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.get_upstream_node_id() RETURNS INT
    LANGUAGE sql STABLE AS $f$
      SELECT s.upstream_node_id FROM repmgr.repmgrd_status s
       WHERE s.node_id = repmgr.get_local_node_id()
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.get_upstream_last_seen() RETURNS INT
    LANGUAGE sql STABLE AS $f$
      SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN -1
                  ELSE COALESCE((SELECT EXTRACT(EPOCH FROM pg_catalog.now() - s.upstream_last_seen)::INT
                                   FROM repmgr.repmgrd_status s
                                  WHERE s.node_id = repmgr.get_local_node_id()), -1)
             END
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.standby_get_last_updated() RETURNS TIMESTAMP WITH TIME ZONE
    LANGUAGE sql STABLE AS $f$
      SELECT s.last_updated FROM repmgr.repmgrd_status s
       WHERE s.node_id = repmgr.get_local_node_id()
    $f$;
  CREATE OR REPLACE FUNCTION repmgr.get_wal_receiver_pid() RETURNS INT
    LANGUAGE sql STABLE AS $f$
      SELECT pid FROM pg_catalog.pg_stat_wal_receiver
    $f$;
END
$do$;
"#,
];

/// The version this binary installs and expects.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// What `ensure_schema` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaChange {
    Created,
    Upgraded { from: i32 },
    UpToDate,
}

/// Whether the `repmgr` schema (with its nodes table) exists on this node.
pub fn exists(client: &mut impl Sql) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT pg_catalog.to_regclass('repmgr.nodes') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking for the repmgr schema", &e))?;
    row.val(0)
}

/// The installed schema version; None when the schema is absent. A schema
/// created by repmgr's C extension (no version table) counts as version 1.
pub fn installed_version(client: &mut impl Sql) -> Result<Option<i32>> {
    if !exists(client)? {
        return Ok(None);
    }
    let has_table: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('repmgr.schema_version') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking the repmgr schema version", &e))?
        .val(0)?;
    if !has_table {
        return Ok(Some(1));
    }
    let row = client
        .query_opt("SELECT version FROM repmgr.schema_version", &[])
        .map_err(|e| query_error("reading the repmgr schema version", &e))?;
    Ok(Some(row.map(|r| r.val(0)).transpose()?.unwrap_or(1)))
}

/// Creates or upgrades the schema. Runs in one transaction: either the whole
/// schema is there afterwards, or nothing changed.
pub fn ensure_schema(client: &mut Session) -> Result<SchemaChange> {
    let mut tx = client
        .transaction()
        .map_err(|e| query_error("starting a transaction", &e))?;
    tx.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[&INSTALL_LOCK_KEY],
    )
    .map_err(|e| query_error("locking the repmgr schema installation", &e))?;
    let current = installed_version(&mut tx)?;
    let from = current.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(Error::db_query(format!(
            "the repmgr metadata schema has version {from}, newer than this repmgr supports ({SCHEMA_VERSION})"
        ))
        .hint("upgrade repmgr on this node to the version used elsewhere in the cluster"));
    }
    if from == SCHEMA_VERSION {
        return Ok(SchemaChange::UpToDate);
    }
    if current.is_none() {
        tx.batch_execute("CREATE SCHEMA IF NOT EXISTS repmgr")
            .map_err(|e| schema_error(&e))?;
    }
    // `from` was read from the server: checked above to be at most ours;
    // a negative or corrupt value is refused rather than sliced with.
    let pending = usize::try_from(from)
        .ok()
        .and_then(|f| MIGRATIONS.get(f..))
        .ok_or_else(|| {
            Error::db_query(format!(
                "the repmgr metadata schema reports an invalid version ({from})"
            ))
            .hint("check repmgr.schema_version on the primary")
        })?;
    for sql in pending {
        tx.batch_execute(sql).map_err(|e| schema_error(&e))?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS repmgr.schema_version (
           version       INTEGER NOT NULL,
           repmgr_version TEXT NOT NULL,
           updated_at    TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
         );
         CREATE UNIQUE INDEX IF NOT EXISTS schema_version_single_row
           ON repmgr.schema_version ((TRUE));",
    )
    .map_err(|e| schema_error(&e))?;
    tx.execute("DELETE FROM repmgr.schema_version", &[])
        .map_err(|e| schema_error(&e))?;
    tx.execute(
        "INSERT INTO repmgr.schema_version (version, repmgr_version) VALUES ($1, $2)",
        &[&SCHEMA_VERSION, &env!("CARGO_PKG_VERSION")],
    )
    .map_err(|e| schema_error(&e))?;
    super::secret::ensure(&mut tx)?;
    tx.commit()
        .map_err(|e| query_error("committing the repmgr schema", &e))?;
    Ok(if current.is_none() {
        SchemaChange::Created
    } else {
        SchemaChange::Upgraded { from }
    })
}

fn schema_error(e: &super::SqlError) -> Error {
    query_error("creating the repmgr metadata schema", e).hint(
        "the repmgr user needs the CREATE privilege on the database (e.g. be its owner), \
         or a superuser must run \"repmgr primary register\" once",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_and_view_of_repmgr5_is_created() {
        let sql = MIGRATIONS.concat();
        for obj in [
            "repmgr.nodes (",
            "repmgr.events (",
            "repmgr.monitoring_history (",
            "repmgr.voting_term (",
            "VIEW repmgr.show_nodes",
            "VIEW repmgr.replication_status",
        ] {
            assert!(sql.contains(obj), "{obj}");
        }
        assert!(!sql.contains("EXTENSION"));
        for f in [
            "repmgr.repmgrd_is_running() RETURNS BOOL",
            "repmgr.get_repmgrd_pid() RETURNS INT",
            "repmgr.repmgrd_is_paused() RETURNS BOOL",
        ] {
            assert!(sql.contains(f), "{f}");
        }
    }
}
