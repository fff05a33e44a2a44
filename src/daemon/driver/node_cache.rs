//! A copy of repmgr.nodes beside the state file, so that a repmgrd
//! restarted while its fence keeps the local server stopped still knows
//! the other nodes (their conninfo) and can look for the newer primary.
//! Without it that repmgrd could only exit, and nobody would prepare the
//! data directory as a standby's before a start by hand.
//!
//! Format: `key=value` header lines (version, cluster, node_id), one
//! `node=` line per record with space-separated fields, and `end=<count>`
//! (a truncated file is refused). Every text value is percent-encoded
//! with only `[A-Za-z0-9._]` left as is, so no value can hold a space,
//! a line break or the `-` that stands for "none". Hand-written rather
//! than a serde format: eleven fields, and the strict parse is shorter
//! than a new dependency's review.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::daemon::core::types::NodeId;
use crate::db::nodes::{NodeRecord, NodeType};
use crate::error::{Error, ExitCode, Result};

/// `<state file>.nodes`.
pub fn path(state_file: &Path) -> PathBuf {
    let mut s = state_file.as_os_str().to_os_string();
    s.push(".nodes");
    PathBuf::from(s)
}

fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn decode(v: &str) -> std::result::Result<String, String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape in \"{v}\""))?;
                out.push(hex);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' => {
                out.push(b);
                i += 1;
            }
            _ => return Err(format!("unencoded character in \"{v}\"")),
        }
    }
    String::from_utf8(out).map_err(|_| format!("not UTF-8: \"{v}\""))
}

fn opt_id(v: Option<i32>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn record_line(n: &NodeRecord) -> String {
    format!(
        "node={} {} {} {} {} {} {} {} {} {} {}\n",
        n.node_id,
        opt_id(n.upstream_node_id),
        u8::from(n.active),
        n.node_type.as_str(),
        n.priority,
        encode(&n.node_name),
        encode(&n.location),
        encode(&n.conninfo),
        encode(&n.repluser),
        n.slot_name.as_deref().map_or("-".to_string(), encode),
        encode(&n.config_file),
    )
}

fn parse_record(v: &str) -> std::result::Result<NodeRecord, String> {
    let f: Vec<&str> = v.split(' ').collect();
    let [id, up, active, kind, prio, name, loc, ci, user, slot, conf] = f[..] else {
        return Err(format!("{} fields in a node line, not 11", f.len()));
    };
    let int = |s: &str| {
        s.parse::<i32>()
            .map_err(|_| format!("not a number: \"{s}\""))
    };
    Ok(NodeRecord {
        node_id: int(id)?,
        upstream_node_id: match up {
            "-" => None,
            s => Some(int(s)?),
        },
        active: match active {
            "1" => true,
            "0" => false,
            s => return Err(format!("bad active flag \"{s}\"")),
        },
        node_type: NodeType::parse(kind).ok_or_else(|| format!("bad node type \"{kind}\""))?,
        priority: int(prio)?,
        node_name: decode(name)?,
        location: decode(loc)?,
        conninfo: decode(ci)?,
        repluser: decode(user)?,
        slot_name: match slot {
            "-" => None,
            s => Some(decode(s)?),
        },
        config_file: decode(conf)?,
    })
}

/// The file's text for `nodes` of node `node_id` in cluster `cluster`.
fn render(node_id: NodeId, cluster: i64, nodes: &[NodeRecord]) -> String {
    let mut text = format!(
        "# repmgrd's copy of repmgr.nodes (a start while the server is down): do not edit\n\
         version=1\ncluster={cluster}\nnode_id={node_id}\n"
    );
    for n in nodes {
        text.push_str(&record_line(n));
    }
    let _ = writeln!(text, "end={}", nodes.len());
    text
}

/// Parses the file strictly: any line out of place refuses all of it.
fn parse(
    text: &str,
    node_id: NodeId,
    cluster: i64,
) -> std::result::Result<Vec<NodeRecord>, String> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let mut header = |key: &str| -> std::result::Result<String, String> {
        match lines.next().and_then(|l| l.split_once('=')) {
            Some((k, v)) if k == key => Ok(v.to_string()),
            _ => Err(format!("\"{key}=\" expected")),
        }
    };
    if header("version")? != "1" {
        return Err("unknown version".into());
    }
    if header("cluster")? != cluster.to_string() {
        return Err("it belongs to another cluster".into());
    }
    if header("node_id")? != node_id.to_string() {
        return Err("it belongs to another node".into());
    }
    let mut nodes = Vec::new();
    for l in lines.by_ref() {
        match l.split_once('=') {
            Some(("node", v)) => nodes.push(parse_record(v)?),
            Some(("end", n)) if n == nodes.len().to_string() => {
                return match lines.next() {
                    None => Ok(nodes),
                    Some(_) => Err("lines after \"end=\"".into()),
                };
            }
            Some(("end", _)) => return Err("the count at \"end=\" does not match".into()),
            _ => return Err(format!("unexpected line \"{l}\"")),
        }
    }
    Err("no \"end=\" line (truncated)".into())
}

/// Reads the cached records; Err says why they cannot be used.
pub fn load(
    p: &Path,
    node_id: NodeId,
    cluster: i64,
) -> std::result::Result<Vec<NodeRecord>, String> {
    let text = fs::read_to_string(p).map_err(|e| format!("\"{}\": {e}", p.display()))?;
    parse(&text, node_id, cluster).map_err(|e| format!("\"{}\": {e}", p.display()))
}

/// Writes the records durably (temporary file, fsync, rename, fsync of
/// the directory), readable by this user only: conninfo may hold a
/// password.
pub fn save(p: &Path, node_id: NodeId, cluster: i64, nodes: &[NodeRecord]) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::new(
            ExitCode::SysFailure,
            format!(
                "unable to write repmgrd's node list cache \"{}\"",
                p.display()
            ),
        )
        .detail(e.to_string())
    };
    let tmp = PathBuf::from({
        let mut s = p.as_os_str().to_os_string();
        s.push(format!(".tmp.{}", std::process::id()));
        s
    });
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render(node_id, cluster, nodes).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, p)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    if let Some(dir) = p.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes the records unless the file holds them already (a start reads
/// the same list most times); a failure is logged: the cache only serves
/// a later start while the server is down.
pub fn keep(p: &Path, node_id: NodeId, cluster: i64, nodes: &[NodeRecord]) {
    if load(p, node_id, cluster).is_ok_and(|old| old == nodes) {
        return;
    }
    if let Err(e) = save(p, node_id, cluster, nodes) {
        crate::logging::log_error_report(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: i32, name: &str, conninfo: &str) -> NodeRecord {
        NodeRecord {
            node_id: id,
            upstream_node_id: (id != 1).then_some(1),
            active: id != 3,
            node_name: name.into(),
            node_type: if id == 1 {
                NodeType::Primary
            } else {
                NodeType::Standby
            },
            location: "dc 1\nrack=2".into(),
            priority: 100 - id,
            conninfo: conninfo.into(),
            repluser: "repmgr".into(),
            slot_name: (id == 2).then(|| "-".to_string()),
            config_file: "/etc/repmgr %s.conf".into(),
        }
    }

    #[test]
    fn any_value_round_trips() {
        let nodes = vec![
            rec(1, "node 1", "host=a password='p w=%41\n' end=1"),
            rec(2, "", "host=b node=3 x"),
            rec(3, "nöde\r\u{0}#", "-"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = path(&dir.path().join("main.repmgrd"));
        assert!(p.ends_with("main.repmgrd.nodes"));
        save(&p, 1, 42, &nodes).unwrap();
        assert_eq!(load(&p, 1, 42).unwrap(), nodes);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Each record is one line, whatever its values hold.
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("node=")).count(), 3);
        assert_eq!(load(&p, 1, 42).unwrap(), nodes);
        save(&p, 1, 42, &[]).unwrap();
        assert_eq!(load(&p, 1, 42).unwrap(), vec![]);
    }

    #[test]
    fn a_foreign_damaged_or_truncated_file_is_refused() {
        let nodes = vec![rec(1, "node1", "host=a"), rec(2, "node2", "host=b")];
        let text = render(1, 42, &nodes);
        assert_eq!(parse(&text, 1, 42).unwrap(), nodes);
        assert!(parse(&text, 2, 42).unwrap_err().contains("another node"));
        assert!(parse(&text, 1, 43).unwrap_err().contains("another cluster"));
        let cut = &text[..text.rfind("end=").unwrap()];
        assert!(parse(cut, 1, 42).unwrap_err().contains("truncated"));
        let short = text.replacen("node=2 1 1", "node=2 1", 1);
        assert!(parse(&short, 1, 42).unwrap_err().contains("fields"));
        let miscount = text.replace("end=2", "end=3");
        assert!(parse(&miscount, 1, 42).is_err());
        let extra = format!("{text}node=3 - 1 standby 1 a b c d - e\n");
        assert!(parse(&extra, 1, 42).is_err());
        let raw = text.replace("host%3Da", "host=a");
        assert!(parse(&raw, 1, 42).unwrap_err().contains("unencoded"));
        let bad_escape = text.replace("host%3Da", "host%3");
        assert!(parse(&bad_escape, 1, 42).is_err());
        assert!(parse("", 1, 42).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("missing"), 1, 42).is_err());
    }
}
