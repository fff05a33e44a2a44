//! A witness keeps a copy of the primary's node records and of the
//! cluster's repmgrd secret; `witness register` makes the first copy,
//! repmgrd's witness mode refreshes it.

use crate::db::{self, Session};
use crate::error::Result;

/// Copies the primary's node records into the witness's metadata, with
/// the secret that authenticates the peer channel (without it the witness
/// cannot answer a vote request: a witness registered just before the
/// primary failed must still be able to vote), in one transaction on the
/// witness. Shared with repmgrd's witness mode.
pub fn copy_node_records(primary: &mut Session, witness: &mut Session) -> Result<usize> {
    let nodes = db::nodes::all(primary)?;
    let secret = db::secret::get(primary)?;
    let mut tx = witness
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::replace_all(&mut tx, &nodes)?;
    if let Some((cluster, secret)) = secret {
        db::secret::copy(&mut tx, cluster, &secret)?;
    }
    tx.commit()
        .map_err(|e| db::query_error("committing the copy of the node records", &e))?;
    Ok(nodes.len())
}
