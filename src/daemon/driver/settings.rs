//! The decision core's settings, from repmgr.conf: the one place that
//! turns the configuration's units and sentinels into the core's.

use crate::config::{Config, Failover, FailoverQuorum, FenceMode};
use crate::daemon::core::{Failover as CoreFailover, Quorum, Settings};

/// The core's settings from repmgr.conf.
pub fn settings(cfg: &Config, is_witness: bool) -> Settings {
    let secs = |s: i32| u64::try_from(s.max(0)).unwrap_or(0) * 1000;
    Settings {
        node_id: cfg.node_id.unwrap_or_default(),
        node_name: cfg.node_name.clone(),
        failover: match cfg.failover {
            Failover::Automatic => CoreFailover::Automatic,
            Failover::Manual => CoreFailover::Manual,
        },
        quorum: match cfg.failover_quorum {
            FailoverQuorum::Majority => Quorum::Majority,
            FailoverQuorum::Repmgr => Quorum::Repmgr,
        },
        monitor_interval_ms: secs(cfg.monitor_interval_secs.max(1)),
        reconnect_attempts: u32::try_from(cfg.reconnect_attempts.max(0)).unwrap_or(0),
        reconnect_interval_ms: secs(cfg.reconnect_interval),
        primary_notification_timeout_ms: secs(cfg.primary_notification_timeout.max(1)),
        election_rerun_interval_ms: secs(cfg.election_rerun_interval.max(1)),
        degraded_monitoring_timeout_ms: (cfg.degraded_monitoring_timeout > 0)
            .then(|| secs(cfg.degraded_monitoring_timeout)),
        primary_visibility_consensus: cfg.primary_visibility_consensus,
        fence_read_only: cfg.fence_mode == FenceMode::ReadOnly,
        isolation_timeout_ms: (cfg.primary_isolation_timeout >= 0)
            .then(|| secs(cfg.primary_isolation_timeout)),
        auto_rejoin: cfg.auto_rejoin,
        child_nodes_check_interval_ms: (cfg.child_nodes_check_interval > 0)
            .then(|| secs(cfg.child_nodes_check_interval)),
        child_nodes_disconnect_min_count: cfg.child_nodes_disconnect_min_count,
        child_nodes_connected_min_count: cfg.child_nodes_connected_min_count,
        child_nodes_disconnect_timeout_ms: secs(cfg.child_nodes_disconnect_timeout),
        child_nodes_connected_include_witness: cfg.child_nodes_connected_include_witness,
        witness_sync_interval_ms: secs(cfg.witness_sync_interval.max(1)),
        // 0 turns the status line off, as in repmgr
        log_status_interval_ms: secs(cfg.log_status_interval.max(0)),
        is_witness,
        failover_delay_ms: secs(cfg.failover_delay),
        promote_delay_ms: secs(cfg.promote_delay),
        always_promote: cfg.always_promote,
        safety: Default::default(),
    }
}
