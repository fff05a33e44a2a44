//! What goes into the decision core (observations) and what comes out
//! (actions). Plain data: the driver gathers the observations with
//! deadlines and carries out the actions; the simulation does both against
//! its model of a cluster.

use std::fmt;

/// A node's ID, as in `repmgr.nodes`.
pub type NodeId = i32;

/// A voting term. Every promotion starts a new one; a node that sees a
/// higher term than the one it acts in has been superseded.
pub type Term = i64;

/// A WAL position (LSN as a number).
pub type Lsn = u64;

/// A point on this node's monotonic clock, in milliseconds. The core never
/// reads a clock: time arrives with each input. Only differences of two
/// times of the same node are ever compared, so clock skew between nodes
/// does not matter; drift is allowed for by [`super::timing::DRIFT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    pub fn plus(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }
    pub fn minus(self, ms: u64) -> Time {
        Time(self.0.saturating_sub(ms))
    }
    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// What the core knows of a registered node from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub kind: NodeKind,
    pub active: bool,
    pub priority: i32,
    pub location: String,
    pub upstream: Option<NodeId>,
    /// Its repmgrd published `failover=automatic` (it may stand for
    /// election); as this node's copy of the metadata has it.
    pub automatic: bool,
    /// A primary's repmgrd published that it fences itself when it loses
    /// its lease (see `Persisted::fencing`).
    pub fences: bool,
    /// Its repmgrd has run and published its row (else `automatic` and
    /// `fences` are assumptions).
    pub published: bool,
}

impl NodeInfo {
    /// Takes part in elections: every active node but a BDR one.
    pub fn is_voter(&self) -> bool {
        self.active && self.kind != NodeKind::Bdr
    }
}

/// `"node2" (ID: 2)`.
impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" (ID: {})", self.name, self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Primary,
    Standby,
    Witness,
    Bdr,
}

/// What the local server said this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalFacts {
    pub in_recovery: bool,
    pub timeline: u32,
    /// A primary's current WAL position; a standby's received (flushed)
    /// position, or replayed when nothing was received.
    pub lsn: Lsn,
    /// A standby's WAL receiver: when it last heard from its sender, and
    /// which node that is (when the sender's address matches a record).
    pub receiver: Option<Receiver>,
    /// repmgrd is paused (`repmgr service pause`).
    pub paused: bool,
    /// The metadata as this node's copy has it.
    pub nodes: Vec<NodeInfo>,
    /// `repmgr.voting_term` in this node's copy.
    pub voting_term: Term,
    /// The server's configured default is read-only (the read-only fence).
    pub read_only_fenced: bool,
    /// `synchronous_standby_names` in force on the primary: its own
    /// setting on a primary, the one it last published on a standby.
    pub sync_standby_names: String,
    /// A primary's streaming standbys (their application_name).
    pub attached: Vec<String>,
}

/// A standby's WAL receiver, as `pg_stat_wal_receiver` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver {
    pub sender: Option<NodeId>,
    pub streaming: bool,
    /// Milliseconds since the last message from the sender.
    pub last_msg_age: u64,
}

/// One node as seen this round by asking its server and its repmgrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObs {
    pub id: NodeId,
    /// Its server answered within its deadline.
    pub reachable: bool,
    pub in_recovery: Option<bool>,
    pub timeline: u32,
    pub lsn: Lsn,
    /// Its voting term in its metadata copy.
    pub term: Term,
    /// Fenced: read-only by its configured default (a primary), or
    /// stopped or demoted (then `reachable` is false or it is in recovery).
    pub fenced: bool,
    /// Its WAL receiver heard from its sender within the failure window.
    pub receiver_fresh: bool,
    /// The node its WAL receiver streams from.
    pub streams_from: Option<NodeId>,
    /// Its repmgrd's answer, when it gave one.
    pub daemon: Option<DaemonStatus>,
    /// A repmgrd session is connected to its server (None: unknown).
    pub daemon_session: Option<bool>,
}

impl NodeObs {
    pub fn unreachable(id: NodeId) -> NodeObs {
        NodeObs {
            id,
            reachable: false,
            in_recovery: None,
            timeline: 0,
            lsn: 0,
            term: 0,
            fenced: false,
            receiver_fresh: false,
            streams_from: None,
            daemon: None,
            daemon_session: None,
        }
    }

    /// Runs as a primary that is not fenced.
    pub fn is_writable_primary(&self) -> bool {
        self.reachable && self.in_recovery == Some(false) && !self.fenced
    }

    /// A primary to follow for a node that knows term `known`: writable
    /// (not fenced) and of no lower term. (`follow_checks` off, in the
    /// simulation's self-test only: any node not in recovery.)
    pub fn may_follow(&self, known: Term, safety: super::settings::Safety) -> bool {
        if !safety.follow_checks {
            return self.reachable && self.in_recovery == Some(false);
        }
        self.is_writable_primary() && self.term >= known
    }
}

/// What a repmgrd says of itself (its answer to a status request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DaemonStatus {
    /// The highest term it granted a vote in.
    pub granted_term: Term,
    pub granted_to: Option<NodeId>,
    /// The highest term it knows a primary to act in.
    pub known_term: Term,
    /// It would refuse a vote now because a primary's lease, its start-up
    /// quarantine or its own view of a healthy primary holds.
    pub holds_lease: bool,
    /// It runs with `failover=automatic` (it may promote itself).
    pub automatic: bool,
}

/// A primary's heartbeat as a voter answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatReply {
    /// The voter promises not to grant any vote for `promise_ms` from the
    /// moment it received the heartbeat.
    Ack { promise_ms: u64, known_term: Term },
    /// The voter has granted or seen a higher term: this primary is
    /// superseded.
    Superseded { term: Term, by: Option<NodeId> },
    /// Its server answered, as a standby of no newer term or timeline
    /// than the sender's, and no repmgrd is connected to it: the voter
    /// cannot vote before its repmgrd starts and sits out its start-up
    /// quarantine, which is at least [`super::timing::QUARANTINE_MS`]. (A
    /// server that answers as a primary, or with a newer term or timeline,
    /// is reported as [`HeartbeatReply::Superseded`] instead.)
    NoDaemon,
}

/// A vote request, sent by a candidate to every voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteRequest {
    pub term: Term,
    pub candidate: NodeId,
    /// The primary whose failure the election is about.
    pub failed: NodeId,
    pub timeline: u32,
    pub lsn: Lsn,
    /// A pre-vote: "would you grant this?", answered by the same rules
    /// and recording nothing. A candidate asks for real votes only after a
    /// majority said yes, so a candidate that cannot win does not leave
    /// granted terms behind that would supersede a working primary.
    pub pre: bool,
}

/// A voter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteReply {
    /// Granted, with a promise not to vote for another candidate for
    /// `promise_ms`.
    Granted {
        promise_ms: u64,
    },
    Refused(Refusal),
    /// No answer within the deadline.
    Silent,
}

/// Why a voter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It granted this or a higher term already (to `to`).
    TermTaken { granted: Term, to: Option<NodeId> },
    /// A primary's heartbeat lease, a granted vote's lease or its start-up
    /// quarantine is still in force for `left_ms`.
    LeaseHeld { left_ms: u64 },
    /// It still sees the failed primary healthy (its own probe, or its WAL
    /// receiver streams from it).
    PrimaryVisible,
    /// It has WAL the candidate lacks.
    MoreWal { lsn: Lsn },
    /// It runs as a primary itself.
    IsPrimary,
    /// The request named a term below one it knows a primary acts in.
    Stale { known: Term },
    /// The last primary it heard from does not fence itself (it knew of
    /// no automatic candidate): a promotion could leave two primaries.
    NoFence { primary: NodeId },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TermTaken { granted, to } => match to {
                Some(n) => write!(f, "it granted term {granted} to node {n}"),
                None => write!(f, "it granted term {granted} already"),
            },
            Refusal::LeaseHeld { left_ms } => write!(
                f,
                "it promised the primary not to vote for another {} ms",
                left_ms
            ),
            Refusal::PrimaryVisible => f.write_str("it still sees the primary"),
            Refusal::MoreWal { lsn } => write!(f, "it has more WAL (up to {})", fmt_lsn(*lsn)),
            Refusal::IsPrimary => f.write_str("it runs as a primary"),
            Refusal::Stale { known } => write!(f, "it knows of term {known}"),
            Refusal::NoFence { primary } => write!(
                f,
                "primary node {primary} does not fence itself (it knew of no automatic failover candidate)"
            ),
        }
    }
}

/// `0/3000060`.
pub fn fmt_lsn(l: Lsn) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff)
}

/// A request from another repmgrd over the peer channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRequest {
    Heartbeat {
        from: NodeId,
        term: Term,
        timeline: u32,
        /// It runs as primary (else: a candidate with votes, promoting).
        promoted: bool,
        /// It fences itself when it loses its lease. A primary that knows
        /// of no node that could be promoted automatically does not, and a
        /// voter that heard so grants no vote until a newer primary says
        /// otherwise.
        fences: bool,
    },
    Vote(VoteRequest),
    Status,
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerReply {
    Heartbeat(HeartbeatReply),
    Vote(VoteReply),
    Status(DaemonStatus),
}

/// The durable part of a repmgrd's state, written (fsynced) before any
/// answer that depends on it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Persisted {
    /// The highest term this node granted a vote in, and to whom.
    pub granted_term: Term,
    pub granted_to: Option<NodeId>,
    /// The highest term it knows a primary to act in, and that primary.
    pub known_term: Term,
    pub known_primary: Option<NodeId>,
    /// The last heartbeat of `known_primary` said it fences itself.
    pub known_fences: bool,
    /// As a primary: it fences itself on losing its lease (it knew of an
    /// automatic candidate, or not enough voters have heard otherwise).
    pub fencing: bool,
    /// The fence this node applied to its own server, if any: re-applied
    /// whenever the server comes back.
    pub fence: Option<FenceState>,
}

/// Why this node's server is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceState {
    /// It lost its majority lease; lifted when a majority answers again.
    Isolated,
    /// A newer term exists: never lifted by repmgrd (rejoin makes it a
    /// standby).
    Superseded { term: Term, by: Option<NodeId> },
}

/// How a fence is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceHow {
    /// The server's default becomes read-only and client sessions end.
    ReadOnly,
    /// The server stops (fast shutdown).
    Stop,
    /// standby.signal is written and fsynced, then the server restarts in
    /// recovery: it can never take a write again, and reads go on.
    Demote { to: Option<NodeId> },
    /// A server that answers nothing (hung: a stopped postmaster, a stuck
    /// disk) while its postmaster runs: the postmaster and its backends
    /// are killed (SIGKILL, as a crash: WAL recovery at the next start), so
    /// that it cannot resume and take writes after another node was
    /// promoted. A server that answers, or has no postmaster, is left.
    Kill,
}

/// What the core asks the driver to do. Each action that takes time
/// reports back with an input; the others are done before the next input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Gather [`LocalFacts`]; reported as [`Input::Local`].
    ReadLocal,
    /// One check of `node` by `connection_check_type` (a ping when
    /// `ping`), bounded by its connect_timeout; reported as
    /// [`Input::UpstreamCheck`].
    CheckUpstream {
        node: NodeId,
        ping: bool,
        /// Echoed in the answer: checks may overlap (retry attempts are
        /// `reconnect_interval` apart however long each one waits).
        seq: u64,
    },
    /// Keep an idle connection to `node` and report it closing
    /// ([`Input::UpstreamClosed`]); None stops watching.
    Watch {
        node: Option<NodeId>,
    },
    /// Ask every registered node (server and repmgrd) at once, this one
    /// included (so the answer carries a fresh view of itself too);
    /// reported as [`Input::Cluster`]. `down`: a node already found
    /// failed, waited for only a moment once the others have answered (a
    /// hung one would otherwise cost the whole round its deadline).
    GatherCluster {
        down: Option<NodeId>,
    },
    /// A lease holder renews: a heartbeat to every voter's repmgrd, each
    /// answer reported as it comes ([`Input::Heartbeat`]). `promoted`: the
    /// sender runs as primary (not only a candidate holding votes).
    /// The driver sends nothing when `local_must_answer` and the local
    /// server does not answer a quick check first (it died since the last
    /// read: no promise may be collected for a dead primary).
    SendHeartbeats {
        term: Term,
        to: Vec<NodeId>,
        promoted: bool,
        local_must_answer: bool,
        /// Carried in each heartbeat (see [`PeerRequest::Heartbeat`]).
        fences: bool,
    },
    /// Ask `to` for their votes; reported as [`Input::Votes`] once
    /// `needed` granted, all answered, or the deadline passed.
    RequestVotes {
        request: VoteRequest,
        to: Vec<NodeId>,
        needed: usize,
    },
    /// Run `failover_validation_command` (when set; `visible`, `total`
    /// for its placeholders), then promote the local standby, recording
    /// `term`; reported as [`Input::Done`]. A promotion that does not
    /// complete in time is undone (the server restarted as a standby), so
    /// the outcome is never in doubt.
    Promote {
        term: Term,
        failed: NodeId,
        visible: usize,
        total: usize,
    },
    /// Re-point the local standby at `target`; reported as [`Input::Done`].
    Follow {
        target: NodeId,
    },
    /// Fence the local server; reported as [`Input::Done`].
    Fence {
        how: FenceHow,
    },
    /// Lift a read-only fence, or start a server stopped by a fence;
    /// reported as [`Input::Done`].
    Unfence {
        start: bool,
    },
    /// auto_rejoin: make the local (superseded, stopped or demoted) server
    /// a standby of `target`, rewinding when needed; reported as
    /// [`Input::Done`].
    Rejoin {
        target: NodeId,
    },
    /// The local server is down and a newer primary exists: write
    /// standby.signal so whoever starts it gets a standby.
    PrepareAsStandby {
        target: NodeId,
    },
    /// The local standby's WAL receiver streams from `from`, which a
    /// primary of term `term` superseded: its `primary_conninfo` becomes
    /// empty (ALTER SYSTEM, then a reload), so the receiver ends and does
    /// not connect again, through restarts too, until the node is
    /// rejoined or follows anew (which write `primary_conninfo`). Done
    /// before the next input, bounded by the local connection's deadline.
    EndStream {
        from: NodeId,
        term: Term,
    },
    /// Write the durable state (fsync) now, before anything else.
    Persist(Persisted),
    /// Answer a peer request.
    Reply {
        token: u64,
        reply: PeerReply,
    },
    /// This repmgrd's heartbeat (and, on a standby, a monitoring history
    /// row) on the primary.
    WriteStatus {
        upstream: Option<NodeId>,
    },
    /// The local server streams from `upstream` though its record may say
    /// otherwise (a former primary started as a standby): record it as a
    /// standby of `upstream`, active, on the primary.
    RecordUpstream {
        upstream: NodeId,
    },
    /// Publish, in this repmgrd's row on the primary, whether this primary
    /// fences itself on losing its lease.
    PublishFencing {
        fences: bool,
    },
    /// Mark this node's record active or inactive on the primary.
    SetActive {
        active: bool,
    },
    /// A witness: point its record at `primary` and copy the node records.
    WitnessSync {
        primary: NodeId,
        repoint: bool,
    },
    /// Record an event (on `on`, the primary, when None) and run the
    /// notification hook off the decision path.
    Event {
        name: &'static str,
        ok: bool,
        details: String,
        primary_id: Option<NodeId>,
        on: Option<NodeId>,
    },
    /// Run `fence_command` (off the decision path, with a deadline).
    FenceHook {
        event: &'static str,
    },
    Log(Level, String),
    /// Too many child nodes are gone: run `child_nodes_disconnect_command`
    /// and record the event, off the decision path.
    ChildrenDisconnected {
        details: String,
    },
    /// Stop the daemon (degraded_monitoring_timeout).
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

/// The outcome of a job the core asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// `ok`: the server is a primary. Err: it is not (validation refused,
    /// the promotion failed, or was undone), with why.
    Promoted {
        ok: Result<(), String>,
    },
    Followed {
        target: NodeId,
        ok: Result<(), String>,
        streams_anyway: bool,
    },
    Fenced {
        how: FenceHow,
        ok: Result<(), String>,
    },
    Unfenced {
        ok: Result<(), String>,
    },
    Rejoined {
        target: NodeId,
        ok: Result<String, String>,
    },
}

/// An observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The timer: the core's own wake-up time has come.
    Tick,
    /// The local server's facts, or None when it did not answer.
    Local(Option<LocalFacts>),
    /// `in_recovery`: what the node said of itself when the check logged
    /// in (None for a ping).
    UpstreamCheck {
        node: NodeId,
        ok: bool,
        in_recovery: Option<bool>,
        /// The `seq` of the check answered.
        seq: u64,
    },
    /// The watched connection to `node` closed.
    UpstreamClosed {
        node: NodeId,
    },
    Cluster(Vec<NodeObs>),
    /// One voter's answer to the heartbeat sent at `sent` (this node's
    /// clock). A voter that does not answer sends nothing.
    Heartbeat {
        from: NodeId,
        sent: Time,
        reply: HeartbeatReply,
    },
    Votes {
        term: Term,
        replies: Vec<(NodeId, VoteReply)>,
    },
    Done(Done),
    /// A request from another repmgrd; answer with [`Action::Reply`]
    /// carrying the same token.
    Peer {
        token: u64,
        request: PeerRequest,
    },
    /// SIGHUP: new settings.
    Reload(Box<super::settings::Settings>),
}
