//! The JSON body of the role endpoints, as Patroni gives one: what this
//! node is and why it answered as it did.

use super::view::View;

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

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
    let fields: Vec<(&str, String)> = vec![
        ("node_id", v.node_id.to_string()),
        ("node_name", string(&v.node_name)),
        ("role", string(h.role.name())),
        ("state", string(state)),
        ("writable", h.writable.to_string()),
        ("fenced", h.fenced.to_string()),
        ("isolated", h.isolated.to_string()),
        ("superseded_in_term", opt(h.superseded)),
        ("repmgrd_paused", h.paused.to_string()),
        ("timeline", opt(h.timeline)),
        ("voting_term", h.known_term.to_string()),
        (
            "wal_lsn",
            v.lsn.map_or_else(|| "null".into(), |l| string(&lsn(l))),
        ),
        ("upstream_node_id", opt(h.upstream)),
        (
            "upstream_node_name",
            v.upstream_name
                .as_deref()
                .map_or_else(|| "null".into(), string),
        ),
        (
            "upstream_last_seen_seconds",
            opt(h.upstream_seen_ms_ago.map(|ms| ms as f64 / 1000.0)),
        ),
        ("streaming", h.streaming.to_string()),
        ("replication_lag_bytes", opt(v.lag_bytes)),
        ("replication_lag_seconds", opt(v.lag_secs)),
        ("repmgrd_pid", v.pid.to_string()),
    ];
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, val)| format!("{}:{val}", string(k)))
        .collect();
    format!("{{{}}}\n", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json_requires() {
        assert_eq!(string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn an_lsn_is_written_as_postgresql_writes_it() {
        assert_eq!(lsn(0x0000_0000_0300_0148), "0/3000148");
        assert_eq!(lsn(0x0000_0001_0000_0000), "1/0");
    }
}
