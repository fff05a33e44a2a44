//! The JSON body of the role endpoints, as Patroni gives one: what this
//! node is and why it answered as it did.

use super::view::View;
use crate::output::json::Json;

/// `0/3000148`, as PostgreSQL writes an LSN.
pub fn lsn(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff)
}

/// The role endpoints' body.
pub fn status(v: &View) -> String {
    let h = &v.health;
    let state = if h.running {
        "running"
    } else if h.in_recovery.is_some() {
        // It answered once: now it does not.
        "stopped"
    } else {
        "unknown"
    };
    Json::object()
        .field("node_id", v.node_id)
        .field("node_name", &v.node_name)
        .field("role", h.role.name())
        .field("state", state)
        .field("writable", h.writable)
        .field("fenced", h.fenced)
        .field("isolated", h.isolated)
        .field("superseded_in_term", h.superseded)
        .field("repmgrd_paused", h.paused)
        .field("timeline", h.timeline)
        .field("voting_term", h.known_term)
        .field("wal_lsn", v.lsn.map(lsn))
        .field("upstream_node_id", h.upstream)
        .field("upstream_node_name", v.upstream_name.clone())
        .field(
            "upstream_last_seen_seconds",
            h.upstream_seen_ms_ago.map(|ms| ms as f64 / 1000.0),
        )
        .field("streaming", h.streaming)
        .field("replication_lag_bytes", v.lag_bytes)
        .field("replication_lag_seconds", v.lag_secs)
        .field("repmgrd_pid", v.pid)
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lsn_is_written_as_postgresql_writes_it() {
        assert_eq!(lsn(0x0000_0000_0300_0148), "0/3000148");
        assert_eq!(lsn(0x0000_0001_0000_0000), "1/0");
    }
}
