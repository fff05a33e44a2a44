//! `repmgr.daemon_secret`: the key of the repmgrd peer channel and the
//! cluster (system identifier) it belongs to. Created with the schema
//! (`primary register`), else by the first repmgrd that reaches a primary
//! without one (a cluster built by repmgr 5); read from each node's copy.

use super::session::{query_error, RowExt, Sql};
use crate::error::Result;

fn exists(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT pg_catalog.to_regclass('repmgr.daemon_secret') IS NOT NULL",
            &[],
        )
        .map_err(|e| query_error("checking for repmgr.daemon_secret", &e))?;
    row.val(0)
}

/// The cluster's (system identifier, secret), when there is one.
pub fn get(c: &mut impl Sql) -> Result<Option<(i64, String)>> {
    if !exists(c)? {
        return Ok(None);
    }
    let row = c
        .query_opt(
            "SELECT system_identifier, secret FROM repmgr.daemon_secret",
            &[],
        )
        .map_err(|e| query_error("reading the repmgrd secret", &e))?;
    match row {
        Some(r) => Ok(Some((r.val(0)?, r.val(1)?))),
        None => Ok(None),
    }
}

/// A new cluster secret: 32 random bytes as hex (None without an entropy
/// source: then no secret is made rather than a guessable one).
pub fn generate() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// On the primary: creates the secret unless there is one.
pub fn ensure(c: &mut impl Sql) -> Result<()> {
    if !exists(c)? {
        return Ok(());
    }
    let Some(secret) = generate() else {
        return Err(crate::error::Error::db_query(
            "no entropy source to generate the repmgrd secret from".to_string(),
        ));
    };
    c.execute(
        "INSERT INTO repmgr.daemon_secret (system_identifier, secret)
         SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system()), $1
          WHERE NOT EXISTS (SELECT 1 FROM repmgr.daemon_secret)",
        &[&secret],
    )
    .map_err(|e| query_error("creating the repmgrd secret", &e))?;
    Ok(())
}

/// A witness copies the primary's secret into its own metadata.
pub fn copy(c: &mut impl Sql, cluster: i64, secret: &str) -> Result<()> {
    if !exists(c)? {
        return Ok(());
    }
    c.batch_execute("DELETE FROM repmgr.daemon_secret")
        .map_err(|e| query_error("replacing the repmgrd secret", &e))?;
    c.execute(
        "INSERT INTO repmgr.daemon_secret (system_identifier, secret) VALUES ($1, $2)",
        &[&cluster, &secret],
    )
    .map_err(|e| query_error("copying the repmgrd secret", &e))?;
    Ok(())
}
