//! The durable state of one repmgrd: the highest term it granted a vote
//! in (and to whom), the highest term it knows a primary to act in, the
//! fence it applied to its own server, and its peer port. Written with
//! fsync before any answer that depends on it leaves (a vote survives a
//! crash of the voter), to a file beside the data directory (never inside:
//! a clone or pg_rewind would copy it to another node).
//!
//! The format is `key=value` lines. A file of another cluster or another
//! node (a data directory reused) is not trusted: it starts afresh.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::daemon::core::types::{FenceState, NodeId, Persisted};
use crate::error::{Error, ExitCode, Result};

/// What the file holds besides the core's durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateFile {
    pub core: Persisted,
    /// The peer channel's port, kept across restarts (0: none yet).
    pub peer_port: u16,
}

/// `repmgrd_state_file`, or `<data_directory>.repmgrd` beside the data
/// directory, or `$TMPDIR/repmgrd-<node_id>.state`.
pub fn path(configured: &str, data_directory: &str, node_id: NodeId) -> PathBuf {
    if !configured.trim().is_empty() {
        return PathBuf::from(configured.trim());
    }
    let dd = data_directory.trim().trim_end_matches('/');
    if dd.is_empty() {
        return std::env::temp_dir().join(format!("repmgrd-{node_id}.state"));
    }
    PathBuf::from(format!("{dd}.repmgrd"))
}

/// Reads the state for `node_id` of cluster `cluster`; absent, unreadable
/// or foreign: a fresh state (with `fallback` as the known term).
pub fn load(p: &Path, node_id: NodeId, cluster: i64) -> StateFile {
    let Ok(text) = fs::read_to_string(p) else {
        return StateFile::default();
    };
    let get = |k: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
    if num("node_id") != Some(i64::from(node_id)) || num("cluster") != Some(cluster) {
        crate::log_warning!(
            "state file \"{}\" belongs to another node or cluster; starting afresh",
            p.display()
        );
        return StateFile::default();
    }
    let node = |k: &str| num(k).and_then(|v| NodeId::try_from(v).ok());
    let fence = match get("fence").as_deref() {
        Some("isolated") => Some(FenceState::Isolated),
        Some(v) if v.starts_with("superseded:") => {
            let mut parts = v.split(':').skip(1);
            let term = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let by = parts.next().and_then(|b| b.parse().ok());
            Some(FenceState::Superseded { term, by })
        }
        _ => None,
    };
    StateFile {
        core: Persisted {
            granted_term: num("granted_term").unwrap_or(0),
            granted_to: node("granted_to"),
            known_term: num("known_term").unwrap_or(0),
            known_primary: node("known_primary"),
            known_fences: num("known_fences") == Some(1),
            fencing: num("fencing") == Some(1),
            fence,
        },
        peer_port: num("peer_port")
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
    }
}

/// Writes the state durably: a temporary file, fsync, rename, fsync of
/// the directory. Fails loudly: a vote that cannot be recorded must not
/// be given.
pub fn save(p: &Path, node_id: NodeId, cluster: i64, s: &StateFile) -> Result<()> {
    let fence = match s.core.fence {
        None => "none".to_string(),
        Some(FenceState::Isolated) => "isolated".to_string(),
        Some(FenceState::Superseded { term, by }) => {
            format!(
                "superseded:{term}:{}",
                by.map_or(String::new(), |b| b.to_string())
            )
        }
    };
    let opt = |v: Option<NodeId>| v.map_or(String::new(), |v| v.to_string());
    let text = format!(
        "# repmgrd's durable state (votes, fence): do not edit\n\
         version=1\ncluster={cluster}\nnode_id={node_id}\n\
         granted_term={}\ngranted_to={}\nknown_term={}\nknown_primary={}\n\
         known_fences={}\nfencing={}\nfence={fence}\npeer_port={}\n",
        s.core.granted_term,
        opt(s.core.granted_to),
        s.core.known_term,
        opt(s.core.known_primary),
        u8::from(s.core.known_fences),
        u8::from(s.core.fencing),
        s.peer_port
    );
    let fail = |e: std::io::Error| {
        Error::new(
            ExitCode::SysFailure,
            format!("unable to write repmgrd's state file \"{}\"", p.display()),
        )
        .detail(e.to_string())
        .hint(
            "check the directory beside the data directory is writable (or set repmgrd_state_file)",
        )
    };
    let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    fs::rename(&tmp, p).map_err(fail)?;
    if let Some(dir) = p.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let s = StateFile {
            core: Persisted {
                granted_term: 7,
                granted_to: Some(3),
                known_term: 6,
                known_primary: Some(2),
                known_fences: true,
                fencing: false,
                fence: Some(FenceState::Superseded {
                    term: 7,
                    by: Some(3),
                }),
            },
            peer_port: 4321,
        };
        save(&p, 2, 99, &s).unwrap();
        assert_eq!(load(&p, 2, 99), s);
        assert_eq!(load(&p, 3, 99), StateFile::default());
        assert_eq!(load(&p, 2, 98), StateFile::default());
        assert_eq!(
            load(&dir.path().join("missing"), 2, 99),
            StateFile::default()
        );
    }

    #[test]
    fn the_default_path_is_beside_the_data_directory() {
        assert_eq!(
            path("", "/var/lib/postgresql/15/main/", 1),
            PathBuf::from("/var/lib/postgresql/15/main.repmgrd")
        );
        assert_eq!(path("/x/y", "/d", 1), PathBuf::from("/x/y"));
    }
}
