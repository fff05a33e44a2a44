//! What start-up opens before the main loop: the local server (this
//! node's record, the state file of its cluster, the node list), or, when
//! the server is down and this node's own fence keeps it stopped, the same
//! without the server: the system identifier from pg_control, the state
//! file, and the node list cached beside it ([`super::node_cache`]).
//! Anywhere else a local server that does not answer ends the start, as
//! in repmgr.

use std::path::{Path, PathBuf};

use super::{node_cache, startup, state, takeover};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::daemon::core::types::Persisted;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType, reach::DAEMON_APP_NAME, Session};
use crate::error::{Error, Result};
use crate::pgtools::{self, PgBin};

pub(super) struct Opened {
    /// None: started while the server is down (fenced).
    pub local: Option<Session>,
    pub me: NodeRecord,
    pub in_recovery: bool,
    pub cluster: i64,
    /// Mark this node's record active (through the primary).
    pub activate: bool,
    pub state_path: PathBuf,
    pub file: state::StateFile,
    /// The core's durable state to start from (the file's, and the term
    /// the local metadata records).
    pub persisted: Persisted,
    /// The node list: read from the server, or the cached copy.
    pub nodes: Vec<NodeRecord>,
}

/// Connects to the local server and reads what the start needs; when it
/// does not answer, [`open_down`] decides whether to go on without it.
pub(super) fn open(cfg: &Config, conninfo: &ConnInfo, bin: &PgBin, pid: i32) -> Result<Opened> {
    let id = cfg.node_id.unwrap_or_default();
    let name = &cfg.node_name;
    let mut local = match db::connect::connect(conninfo, DAEMON_APP_NAME) {
        Ok(c) => c,
        Err(e) => {
            let refused = Error::new(
                e.code,
                format!("unable to connect to local node \"{name}\" (ID: {id})"),
            )
            .detail(e.reason().to_string())
            .hint("check the node is running and the conninfo in repmgr.conf is correct");
            return open_down(cfg, bin).ok_or(refused);
        }
    };
    let me = if db::schema::exists(&mut local)? {
        db::nodes::get(&mut local, id)?
    } else {
        None
    };
    let Some(me) = me else {
        return Err(Error::config(format!("no metadata record found for this node (ID: {id})"))
            .hint("check that \"repmgr primary register\" or \"repmgr standby register\" was executed for this node"));
    };
    takeover::refuse_second_daemon(&mut local, cfg, pid)?;
    takeover::refuse_legacy_daemon(&mut local, cfg)?;
    let pos = db::timeline::position(&mut local)?;
    let activate = startup::inactive_record(cfg, &me, pos.in_recovery)?;
    let state_path = state::path(&cfg.repmgrd_state_file, &cfg.data_directory, id);
    let file = state::load(&state_path, id, pos.system_identifier);
    let mut persisted = file.core;
    // The metadata's term is known too (a primary records the term it
    // was promoted in).
    if !pos.in_recovery && me.node_type != NodeType::Witness {
        let term = db::fence::voting_term(&mut local).unwrap_or(0).into();
        if term > persisted.known_term {
            persisted.known_term = term;
            persisted.known_primary = Some(id);
        }
    }
    // The recorder looks for the primary among these until the first
    // cycle reads them again; a copy serves a start while the server is
    // down.
    let nodes = db::nodes::all(&mut local).unwrap_or_default();
    if !nodes.is_empty() {
        node_cache::keep(
            &node_cache::path(&state_path),
            id,
            pos.system_identifier,
            &nodes,
        );
    }
    Ok(Opened {
        local: Some(local),
        me,
        in_recovery: pos.in_recovery,
        cluster: pos.system_identifier,
        activate,
        state_path,
        file,
        persisted,
        nodes,
    })
}

/// The local server is down. Only when the state file records a fence of
/// this node's own (that fence stopped the server, and it must stay
/// stopped until the data directory is prepared as a standby's) and the
/// cached node list holds this node: start without the server. None: the
/// start fails as before.
fn open_down(cfg: &Config, bin: &PgBin) -> Option<Opened> {
    let id = cfg.node_id.unwrap_or_default();
    let state_path = state::path(&cfg.repmgrd_state_file, &cfg.data_directory, id);
    if cfg.data_directory.trim().is_empty() || !state_path.exists() {
        return None;
    }
    let cluster = match system_identifier(bin, Path::new(cfg.data_directory.trim())) {
        Ok(c) => c,
        Err(e) => {
            crate::log_debug!("no system identifier without the server: {e}");
            return None;
        }
    };
    let file = state::load(&state_path, id, cluster);
    file.core.fence?;
    let cache = node_cache::path(&state_path);
    let nodes = match node_cache::load(&cache, id, cluster) {
        Ok(n) => n,
        Err(e) => {
            crate::log_warning!(
                "this node's fence is recorded but its cached node list cannot be used: {e}"
            );
            return None;
        }
    };
    let Some(me) = nodes.iter().find(|n| n.node_id == id).cloned() else {
        crate::log_warning!(
            "this node's fence is recorded but its cached node list has no record of this node"
        );
        return None;
    };
    if me.node_type == NodeType::Witness {
        return None;
    }
    crate::log_notice!(
        "local server is down and this node's fence keeps it stopped: monitoring from the cached node list"
    );
    crate::log_detail!(
        "state file \"{}\", node list \"{}\" ({} records); the local server is tried again each cycle",
        state_path.display(),
        cache.display(),
        nodes.len()
    );
    Some(Opened {
        local: None,
        me,
        in_recovery: false,
        cluster,
        activate: false,
        state_path,
        persisted: file.core,
        file,
        nodes,
    })
}

/// The data directory's system identifier, from pg_controldata (a child
/// process with a deadline).
fn system_identifier(bin: &PgBin, datadir: &Path) -> std::result::Result<i64, String> {
    let cd = pgtools::control_data(bin, datadir).map_err(|e| e.reason().to_string())?;
    let sysid: u64 = cd
        .system_identifier
        .parse()
        .map_err(|_| format!("pg_controldata gave \"{}\"", cd.system_identifier))?;
    // Stored as PostgreSQL's bigint shows it (pg_control_system()).
    Ok(sysid as i64)
}
