//! `repmgr.nodes`: the registered nodes of the cluster.

use std::fmt;

use super::session::RowExt;
use super::session::{Row, Sql};

use super::query_error;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Primary,
    Standby,
    Witness,
    Bdr,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Primary => "primary",
            NodeType::Standby => "standby",
            NodeType::Witness => "witness",
            NodeType::Bdr => "bdr",
        }
    }

    pub fn parse(s: &str) -> Option<NodeType> {
        Some(match s {
            "primary" => NodeType::Primary,
            "standby" => NodeType::Standby,
            "witness" => NodeType::Witness,
            "bdr" => NodeType::Bdr,
            _ => return None,
        })
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `repmgr.nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: i32,
    pub upstream_node_id: Option<i32>,
    pub active: bool,
    pub node_name: String,
    pub node_type: NodeType,
    pub location: String,
    pub priority: i32,
    pub conninfo: String,
    pub repluser: String,
    pub slot_name: Option<String>,
    pub config_file: String,
}

impl NodeRecord {
    /// Whether this node takes part in elections: every active node but a
    /// BDR one (primary, standbys of any priority, the witness).
    pub fn is_voter(&self) -> bool {
        self.active && self.node_type != NodeType::Bdr
    }
}

/// `"node2" (ID: 2)`, how repmgr names a node in messages.
impl fmt::Display for NodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            crate::output::NodeName(&self.node_name, self.node_id)
        )
    }
}

pub(super) const COLUMNS: &str = "node_id, upstream_node_id, active, node_name, type, location, \
                       priority, conninfo, repluser, slot_name, config_file";
/// How many columns [`COLUMNS`] names: a statement may select more after them.
pub(super) const COLUMN_COUNT: usize = 11;

pub(super) fn from_row(row: &Row) -> Result<NodeRecord> {
    let t: String = row.val(4)?;
    let node_type = NodeType::parse(&t)
        .ok_or_else(|| Error::db_query(format!("unknown node type \"{t}\" in repmgr.nodes")))?;
    Ok(NodeRecord {
        node_id: row.val(0)?,
        upstream_node_id: row.val(1)?,
        active: row.val(2)?,
        node_name: row.val(3)?,
        node_type,
        location: row.val(5)?,
        priority: row.val(6)?,
        conninfo: row.val(7)?,
        repluser: row.val(8)?,
        slot_name: row.val(9)?,
        config_file: row.val(10)?,
    })
}

pub fn get(c: &mut impl Sql, node_id: i32) -> Result<Option<NodeRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM repmgr.nodes WHERE node_id = $1");
    // One round trip (no prepare): `node check` runs every minute.
    let row = c
        .query_typed_opt(
            sql.as_str(),
            &[(&node_id, tokio_postgres::types::Type::INT4)],
        )
        .map_err(|e| query_error(&format!("retrieving the record for node {node_id}"), &e))?;
    row.as_ref().map(from_row).transpose()
}

pub fn get_by_name(c: &mut impl Sql, name: &str) -> Result<Option<NodeRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM repmgr.nodes WHERE node_name = $1");
    let row = c
        .query_opt(sql.as_str(), &[&name])
        .map_err(|e| query_error(&format!("retrieving the record for node \"{name}\""), &e))?;
    row.as_ref().map(from_row).transpose()
}

/// All nodes, ordered by node_id (the order `cluster show` prints).
pub fn all(c: &mut impl Sql) -> Result<Vec<NodeRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM repmgr.nodes ORDER BY node_id");
    // One round trip (no prepare): `cluster show` and most commands start
    // here; repmgrd reads the records again only when they change.
    let rows = c
        .query_typed(sql.as_str(), &[])
        .map_err(|e| query_error("retrieving node records", &e))?;
    rows.iter().map(from_row).collect()
}

/// [`all`], or None when this node has no `repmgr.nodes` table: one
/// statement instead of [`super::schema::exists`] and then [`all`]
/// (`cluster show` asks it on every run; only a node without the metadata
/// pays for it, with an error line in its server log).
pub fn all_if_registered(c: &mut impl Sql) -> Result<Option<Vec<NodeRecord>>> {
    use tokio_postgres::error::SqlState;
    let sql = format!("SELECT {COLUMNS} FROM repmgr.nodes ORDER BY node_id");
    match c.query_typed(sql.as_str(), &[]) {
        Ok(rows) => rows.iter().map(from_row).collect::<Result<_>>().map(Some),
        Err(e)
            if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) =>
        {
            Ok(None)
        }
        Err(e) => Err(query_error("retrieving node records", &e)),
    }
}

/// The active primaries registered (normally at most one).
pub fn active_primaries(c: &mut impl Sql) -> Result<Vec<NodeRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM repmgr.nodes WHERE type = 'primary' AND active ORDER BY node_id"
    );
    let rows = c
        .query(sql.as_str(), &[])
        .map_err(|e| query_error("retrieving the primary node record", &e))?;
    rows.iter().map(from_row).collect()
}

/// Active nodes whose upstream is `node_id`.
pub fn downstream_of(c: &mut impl Sql, node_id: i32) -> Result<Vec<NodeRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM repmgr.nodes WHERE upstream_node_id = $1 AND active ORDER BY node_id"
    );
    let rows = c.query(sql.as_str(), &[&node_id]).map_err(|e| {
        query_error(
            &format!("retrieving downstream nodes of node {node_id}"),
            &e,
        )
    })?;
    rows.iter().map(from_row).collect()
}

/// Inserts the record, or replaces the one with the same node_id.
pub fn upsert(c: &mut impl Sql, n: &NodeRecord) -> Result<()> {
    let sql = format!(
        "INSERT INTO repmgr.nodes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (node_id) DO UPDATE SET
           upstream_node_id = EXCLUDED.upstream_node_id, active = EXCLUDED.active,
           node_name = EXCLUDED.node_name, type = EXCLUDED.type, location = EXCLUDED.location,
           priority = EXCLUDED.priority, conninfo = EXCLUDED.conninfo,
           repluser = EXCLUDED.repluser, slot_name = EXCLUDED.slot_name,
           config_file = EXCLUDED.config_file"
    );
    c.execute(
        sql.as_str(),
        &[
            &n.node_id,
            &n.upstream_node_id,
            &n.active,
            &n.node_name,
            &n.node_type.as_str(),
            &n.location,
            &n.priority,
            &n.conninfo,
            &n.repluser,
            &n.slot_name,
            &n.config_file,
        ],
    )
    .map_err(|e| query_error(&format!("writing the record for node {}", n.node_id), &e))?;
    Ok(())
}

pub fn delete(c: &mut impl Sql, node_id: i32) -> Result<bool> {
    let n = c
        .execute("DELETE FROM repmgr.nodes WHERE node_id = $1", &[&node_id])
        .map_err(|e| query_error(&format!("deleting the record for node {node_id}"), &e))?;
    Ok(n > 0)
}

pub fn set_active(c: &mut impl Sql, node_id: i32, active: bool) -> Result<()> {
    c.execute(
        "UPDATE repmgr.nodes SET active = $2 WHERE node_id = $1",
        &[&node_id, &active],
    )
    .map_err(|e| query_error(&format!("updating the record for node {node_id}"), &e))?;
    Ok(())
}

/// Sets the voting term to 1 unless a term is already recorded.
pub fn init_voting_term(c: &mut impl Sql) -> Result<()> {
    c.execute(
        "INSERT INTO repmgr.voting_term (term)
         SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM repmgr.voting_term)",
        &[],
    )
    .map_err(|e| query_error("initialising the voting term", &e))?;
    Ok(())
}

/// After a promotion: the former primary's record becomes inactive and
/// this node's record says primary, with no upstream (repmgr's
/// `update_node_record_set_primary`). Run inside the caller's transaction.
pub fn set_primary(c: &mut impl Sql, node_id: i32) -> Result<()> {
    c.execute(
        "UPDATE repmgr.nodes SET active = FALSE
          WHERE type = 'primary' AND active AND node_id <> $1",
        &[&node_id],
    )
    .map_err(|e| query_error("marking the former primary inactive", &e))?;
    c.execute(
        "UPDATE repmgr.nodes SET type = 'primary', upstream_node_id = NULL, active = TRUE
          WHERE node_id = $1",
        &[&node_id],
    )
    .map_err(|e| query_error(&format!("marking node {node_id} as primary"), &e))?;
    Ok(())
}

/// A standby now streams from `upstream_id`.
pub fn set_upstream(c: &mut impl Sql, node_id: i32, upstream_id: i32) -> Result<()> {
    c.execute(
        "UPDATE repmgr.nodes SET upstream_node_id = $2, type = 'standby', active = TRUE
          WHERE node_id = $1",
        &[&node_id, &upstream_id],
    )
    .map_err(|e| query_error(&format!("updating the upstream of node {node_id}"), &e))?;
    Ok(())
}

/// Bumps the voting term; returns the new term.
/// Sets the voting term to `term` (repmgrd's promotion records the term
/// its votes were granted in); it never goes down.
pub fn set_voting_term(c: &mut impl Sql, term: i32) -> Result<i32> {
    let row = c
        .query_opt(
            "UPDATE repmgr.voting_term SET term = GREATEST(term, $1) RETURNING term",
            &[&term],
        )
        .map_err(|e| query_error("setting the voting term", &e))?;
    match row {
        Some(r) => r.val(0),
        None => {
            c.execute(
                "INSERT INTO repmgr.voting_term (term) VALUES ($1)",
                &[&term],
            )
            .map_err(|e| query_error("setting the voting term", &e))?;
            Ok(term)
        }
    }
}

pub fn increment_voting_term(c: &mut impl Sql) -> Result<i32> {
    let row = c
        .query_opt(
            "UPDATE repmgr.voting_term SET term = term + 1 RETURNING term",
            &[],
        )
        .map_err(|e| query_error("incrementing the voting term", &e))?;
    match row {
        Some(r) => r.val(0),
        None => {
            init_voting_term(c)?;
            Ok(1)
        }
    }
}

/// Replaces every row of `repmgr.nodes` with `nodes` (a witness's copy of
/// the primary's records). Run inside the caller's transaction, so readers
/// never see a half-copied table.
pub fn replace_all(c: &mut impl Sql, nodes: &[NodeRecord]) -> Result<()> {
    c.batch_execute("SET CONSTRAINTS ALL DEFERRED; DELETE FROM repmgr.nodes")
        .map_err(|e| query_error("clearing the copy of the node records", &e))?;
    for n in nodes {
        upsert(c, n)?;
    }
    Ok(())
}

/// A witness now watches `upstream_id` (its type stays witness).
pub fn set_witness_upstream(c: &mut impl Sql, node_id: i32, upstream_id: i32) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE repmgr.nodes SET upstream_node_id = $2, active = TRUE
              WHERE node_id = $1 AND type = 'witness'",
            &[&node_id, &upstream_id],
        )
        .map_err(|e| query_error(&format!("updating the upstream of witness {node_id}"), &e))?;
    Ok(n > 0)
}

#[cfg(test)]
mod column_tests {
    use super::{COLUMNS, COLUMN_COUNT};

    #[test]
    fn column_count_matches_the_column_list() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }
}
