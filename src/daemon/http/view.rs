//! What the endpoint answers from: this node as the driver sees it when a
//! request arrives.

use crate::daemon::core::health::Health;

/// What the driver knows of this node when a request arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub node_id: i32,
    pub node_name: String,
    pub health: Health,
    pub upstream_name: Option<String>,
    /// A standby's lag behind its sender's WAL end, and repmgr's lag in
    /// seconds.
    pub lag_bytes: Option<u64>,
    pub lag_secs: Option<f64>,
    /// The local server's WAL position (a standby's received one).
    pub lsn: Option<u64>,
    /// Promotions and fences this repmgrd carried out since it started.
    pub failovers: u64,
    pub fences: u64,
    /// The last monitoring cycle: how long it took, and how long ago it
    /// began; the interval it should run at.
    pub cycle_ms: u64,
    pub cycle_age_ms: Option<u64>,
    pub interval_ms: u64,
    pub pid: u32,
    pub started_unix: u64,
}

impl View {
    pub fn alive(&self) -> bool {
        self.cycle_age_ms
            .is_some_and(|a| a <= 2 * self.interval_ms.max(1_000))
    }
}
