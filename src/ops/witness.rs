//! A witness keeps a copy of the primary's node records; `witness
//! register` makes the first copy, repmgrd's witness mode refreshes it.

use crate::db::{self, Session};
use crate::error::Result;

/// Copies the primary's node records into the witness's metadata, in one
/// transaction on the witness. Shared with repmgrd's witness mode.
pub fn copy_node_records(primary: &mut Session, witness: &mut Session) -> Result<usize> {
    let nodes = db::nodes::all(primary)?;
    let mut tx = witness
        .transaction()
        .map_err(|e| db::query_error("starting a transaction", &e))?;
    db::nodes::replace_all(&mut tx, &nodes)?;
    tx.commit()
        .map_err(|e| db::query_error("committing the copy of the node records", &e))?;
    Ok(nodes.len())
}
