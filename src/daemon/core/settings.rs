//! What the core is told of repmgr.conf, and the safety rules (which only
//! the simulation's self-test switches off).

/// Automatic or manual failover (`failover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failover {
    #[default]
    Manual,
    Automatic,
}

/// Which quorum rule elections follow (`failover_quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// A strict majority of every voter, the failed primary counted; the
    /// primary holds a lease and fences itself without one.
    #[default]
    Majority,
    /// repmgr's rule: more than half of the visible siblings; no lease.
    Repmgr,
}

/// What the core is told of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This node's ID (a `types::NodeId`).
    pub node_id: i32,
    pub node_name: String,
    pub failover: Failover,
    pub quorum: Quorum,
    pub monitor_interval_ms: u64,
    pub reconnect_attempts: u32,
    pub reconnect_interval_ms: u64,
    pub primary_notification_timeout_ms: u64,
    pub election_rerun_interval_ms: u64,
    /// None: never give up.
    pub degraded_monitoring_timeout_ms: Option<u64>,
    pub primary_visibility_consensus: bool,
    /// The read-only fence; false: stop the server.
    pub fence_read_only: bool,
    /// `primary_isolation_timeout` when set.
    pub isolation_timeout_ms: Option<u64>,
    pub auto_rejoin: bool,
    /// None: children are not checked.
    pub child_nodes_check_interval_ms: Option<u64>,
    pub child_nodes_disconnect_min_count: i32,
    pub child_nodes_connected_min_count: i32,
    pub child_nodes_disconnect_timeout_ms: u64,
    pub child_nodes_connected_include_witness: bool,
    pub witness_sync_interval_ms: u64,
    /// 0: no status lines.
    pub log_status_interval_ms: u64,
    /// This node is a witness.
    pub is_witness: bool,
    /// `failover_delay`: once the upstream primary is declared failed,
    /// the election starts this much later (the primary answering
    /// meanwhile cancels it).
    pub failover_delay_ms: u64,
    /// `promote_delay`: a node that won the election asks for the votes
    /// this much later (every check of the election comes after it).
    pub promote_delay_ms: u64,
    /// `always_promote`: a winner whose own record names no upstream
    /// promotes all the same (repmgr refuses: its metadata is stale).
    pub always_promote: bool,
    /// The safety rules, all on. Switching one off is for the
    /// simulation's self-test only (it proves the checker finds the split
    /// brain the rule prevents); repmgrd never does.
    pub safety: Safety,
}

/// Rules the simulation's self-test can switch off (each one alone: the
/// self-test shows the checker finds the violation the rule prevents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    /// Voters keep the promises they make (no vote while one holds).
    pub voters_keep_promises: bool,
    /// The failed primary counts as a voter in the majority.
    pub count_failed_primary: bool,
    /// A primary stops its server before its lease can run out (not only
    /// the read-only default, which a client can override).
    pub hard_fence: bool,
    /// With synchronous replication in force, only a candidate holding
    /// every acknowledged commit is promoted.
    pub sync_aware: bool,
    /// A primary that hears of a newer term fences (demotes) at once.
    pub supersession_check: bool,
    /// A WAL receiver that streams fresh WAL from the failed primary is
    /// proof it lives: the candidate does not run, and the voter does
    /// not vote.
    pub receiver_check: bool,
    /// A voter refuses a term while it has heard from a healthy primary
    /// (its own check of it) within the failure window.
    pub prevote: bool,
    /// A granted vote is part of the voter's durable record: a restarted
    /// voter still refuses that term (and any lower one) to anyone else.
    pub durable_votes: bool,
    /// A fenced primary is unfenced only on positive reports that no
    /// higher term exists (acknowledgements of its heartbeats), never on
    /// a voter's server answering without its repmgrd.
    pub unfence_evidence: bool,
    /// Candidates are ranked, and voters compare WAL, on the newest
    /// timeline only (an older timeline's LSN past the fork is not WAL
    /// the newer one lacks).
    pub newest_timeline: bool,
    /// A primary whose server hangs is killed before its lease ends (a
    /// hung server that resumed would take writes).
    pub kill_hung: bool,
    /// A standby looking for the new primary skips inactive and fenced
    /// nodes and any of a term below the highest it knows.
    pub follow_checks: bool,
    /// A repmgrd that starts (or whose server comes back) grants no vote
    /// for its quarantine: promises it made before are not remembered.
    pub quarantine: bool,
    /// A standby whose server streams from a node that a newer term
    /// superseded (a zombie primary: its follow of the new primary failed,
    /// its timeline diverged) ends that stream and keeps it ended.
    pub superseded_stream: bool,
    /// The last look right before promoting: a candidate with votes does
    /// not promote while a better candidate became visible meanwhile, or
    /// while the old primary is back and takes writes.
    pub last_look: bool,
    /// A server started by hand while its fence kept it stopped is fenced
    /// again at once: the start brings back a writable primary, which
    /// only repmgrd's record of the fence knows to be fenced.
    pub refence_on_start: bool,
}

impl Default for Safety {
    fn default() -> Safety {
        Safety {
            voters_keep_promises: true,
            count_failed_primary: true,
            hard_fence: true,
            sync_aware: true,
            supersession_check: true,
            receiver_check: true,
            prevote: true,
            durable_votes: true,
            unfence_evidence: true,
            newest_timeline: true,
            kill_hung: true,
            follow_checks: true,
            quarantine: true,
            superseded_stream: true,
            last_look: true,
            refence_on_start: true,
        }
    }
}

impl Default for Settings {
    /// repmgr's defaults.
    fn default() -> Settings {
        Settings {
            node_id: 0,
            node_name: String::new(),
            failover: Failover::Automatic,
            quorum: Quorum::Majority,
            monitor_interval_ms: 2_000,
            reconnect_attempts: 6,
            reconnect_interval_ms: 10_000,
            primary_notification_timeout_ms: 60_000,
            election_rerun_interval_ms: 15_000,
            degraded_monitoring_timeout_ms: None,
            primary_visibility_consensus: false,
            fence_read_only: true,
            isolation_timeout_ms: None,
            auto_rejoin: false,
            child_nodes_check_interval_ms: Some(5_000),
            child_nodes_disconnect_min_count: -1,
            child_nodes_connected_min_count: -1,
            child_nodes_disconnect_timeout_ms: 30_000,
            child_nodes_connected_include_witness: false,
            witness_sync_interval_ms: 15_000,
            log_status_interval_ms: 300_000,
            is_witness: false,
            failover_delay_ms: 0,
            promote_delay_ms: 0,
            always_promote: false,
            safety: Safety::default(),
        }
    }
}
