//! Start-up checks of repmgr 5.3's `do_physical_node_check` that depend on
//! repmgr.conf: a node record marked inactive (`repmgrd_exit_on_inactive_node`),
//! and how long a standby's server may take to accept connections again
//! after a follow (`repmgrd_standby_startup_timeout`).

use std::time::{Duration, Instant};

use crate::config::{Config, Failover};
use crate::db::nodes::{NodeRecord, NodeType};
use crate::error::{Error, Result};

/// repmgr's hint for an inactive record, word for word.
const INACTIVE_HINT: &str =
    "Check that \"repmgr (primary|standby) register\" was executed for this node";

/// What start-up does about this node's own record. `Ok(true)`: mark it
/// active (through the primary). An inactive record with
/// `repmgrd_exit_on_inactive_node` and automatic failover refuses the
/// start (exit 1, as repmgr's ERR_BAD_CONFIG); with manual failover the
/// node is monitored passively.
///
/// Unlike repmgr, an inactive record is set active only for a standby that
/// runs in recovery (or a witness): an inactive primary record is a failed
/// primary's, and marking it active would make it a node standbys follow.
/// It stays inactive (this repmgrd's fence and rejoin handle that node).
pub(super) fn inactive_record(cfg: &Config, me: &NodeRecord, in_recovery: bool) -> Result<bool> {
    if me.active {
        return Ok(false);
    }
    let (name, id) = (&me.node_name, me.node_id);
    let activatable =
        (me.node_type == NodeType::Standby && in_recovery) || me.node_type == NodeType::Witness;
    if !cfg.repmgrd_exit_on_inactive_node && activatable {
        crate::log_notice!("setting node record for node \"{name}\" (ID: {id}) to \"active\"");
        return Ok(true);
    }
    if cfg.repmgrd_exit_on_inactive_node {
        crate::log_notice!(
            "node record for node \"{name}\" (ID: {id}) is inactive and \"repmgrd_exit_on_inactive_node\" is set: not setting it \"active\""
        );
    } else {
        crate::log_notice!(
            "node record for node \"{name}\" (ID: {id}) is inactive: a {} record not in use as such is left inactive",
            me.node_type.as_str()
        );
    }
    match cfg.failover {
        Failover::Automatic if cfg.repmgrd_exit_on_inactive_node => Err(Error::config(
            "this node is marked as inactive and cannot be used as a failover target",
        )
        .detail("\"repmgrd_exit_on_inactive_node\" is set to \"true\"")
        .hint(INACTIVE_HINT)),
        Failover::Automatic => {
            crate::log_warning!(
                "this node is marked as inactive and cannot be used as a failover target"
            );
            crate::log_hint!("{INACTIVE_HINT}");
            Ok(false)
        }
        Failover::Manual => {
            crate::log_warning!(
                "this node is marked as inactive and will be passively monitored only"
            );
            crate::log_hint!("{INACTIVE_HINT}");
            Ok(false)
        }
    }
}

/// `repmgrd_standby_startup_timeout` in seconds: -1 (the default) is
/// `standby_reconnect_timeout`, as repmgr resolves it; other negative
/// values are no wait.
pub(super) fn standby_startup_timeout(cfg: &Config) -> u64 {
    let secs = match cfg.repmgrd_standby_startup_timeout {
        -1 => cfg.standby_reconnect_timeout,
        s => s,
    };
    u64::try_from(secs.max(0)).unwrap_or(0)
}

/// After a follow, as repmgr's `follow_new_primary`: the local server may
/// still be starting; try it once a second, `timeout` tries in all. Err
/// when it never accepted a connection (the follow then counts as failed).
pub(super) fn wait_for_local<T>(
    cfg: &Config,
    timeout: u64,
    mut connect: impl FnMut() -> Result<T>,
) -> std::result::Result<(), String> {
    let started = Instant::now();
    for i in 0..timeout {
        if connect().is_ok() {
            return Ok(());
        }
        crate::log_debug!(
            "sleeping 1 second; {} of {timeout} (\"repmgrd_standby_startup_timeout\") attempts to reconnect to local node",
            i + 1
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The last second slept may have brought it up.
    if connect().is_ok() {
        return Ok(());
    }
    Err(format!(
        "unable to reconnect to local node \"{}\" (ID: {}) within {} seconds (\"repmgrd_standby_startup_timeout\", waited {} s)",
        cfg.node_name,
        cfg.node_id.unwrap_or_default(),
        timeout,
        started.elapsed().as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: NodeType, active: bool) -> NodeRecord {
        NodeRecord {
            node_id: 2,
            upstream_node_id: Some(1),
            active,
            node_name: "node2".into(),
            node_type: kind,
            location: "default".into(),
            priority: 100,
            conninfo: String::new(),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn cfg(exit: bool, failover: Failover) -> Config {
        Config {
            node_name: "node2".into(),
            node_id: Some(2),
            repmgrd_exit_on_inactive_node: exit,
            failover,
            ..Config::default()
        }
    }

    #[test]
    fn an_inactive_standby_is_set_active_unless_told_to_exit() {
        let sb = record(NodeType::Standby, false);
        assert!(inactive_record(&cfg(false, Failover::Automatic), &sb, true).unwrap());
        let e = inactive_record(&cfg(true, Failover::Automatic), &sb, true).unwrap_err();
        assert_eq!(e.code as i32, 1);
        // Manual failover: monitored passively, no exit.
        assert!(!inactive_record(&cfg(true, Failover::Manual), &sb, true).unwrap());
        // An active record: nothing to do, whatever the setting.
        let active = record(NodeType::Standby, true);
        assert!(!inactive_record(&cfg(true, Failover::Automatic), &active, true).unwrap());
    }

    #[test]
    fn an_inactive_primary_record_stays_inactive() {
        let p = record(NodeType::Primary, false);
        assert!(!inactive_record(&cfg(false, Failover::Automatic), &p, false).unwrap());
        // A standby record of a node running as a primary, likewise.
        let sb = record(NodeType::Standby, false);
        assert!(!inactive_record(&cfg(false, Failover::Automatic), &sb, false).unwrap());
    }

    #[test]
    fn startup_timeout_falls_back_to_standby_reconnect_timeout() {
        let mut c = Config::default();
        assert_eq!(c.repmgrd_standby_startup_timeout, -1);
        assert_eq!(standby_startup_timeout(&c), 60);
        c.standby_reconnect_timeout = 7;
        assert_eq!(standby_startup_timeout(&c), 7);
        c.repmgrd_standby_startup_timeout = 3;
        assert_eq!(standby_startup_timeout(&c), 3);
        c.repmgrd_standby_startup_timeout = -5;
        assert_eq!(standby_startup_timeout(&c), 0);
    }

    #[test]
    fn the_wait_for_the_local_server_is_bounded() {
        let c = cfg(false, Failover::Automatic);
        let mut tries = 0;
        let t = Instant::now();
        let r = wait_for_local(&c, 2, || -> Result<()> {
            tries += 1;
            Err(Error::config("down"))
        });
        assert!(r.unwrap_err().contains("repmgrd_standby_startup_timeout"));
        assert_eq!(tries, 3);
        assert!(t.elapsed() >= Duration::from_secs(2));
        let mut n = 0;
        assert!(wait_for_local(&c, 5, || -> Result<()> {
            n += 1;
            if n < 2 {
                Err(Error::config("starting"))
            } else {
                Ok(())
            }
        })
        .is_ok());
        assert_eq!(n, 2);
    }
}
