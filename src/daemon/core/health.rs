//! What this repmgrd can vouch for about its own node, for load balancers
//! and monitoring (the HTTP endpoint's `/primary`, `/replica`, `/metrics`).
//!
//! The rule that matters is [`Health::writable`]: a load balancer sends
//! writes only where it holds, and it is false wherever the core would not
//! let the server take writes. A fenced primary still answers
//! `pg_is_in_recovery() = false`, so only repmgrd can tell a load balancer
//! to stop sending it writes; and a primary that has lost its majority is
//! reported unwritable from the moment the core would begin to fence it,
//! not from when the fence is in place.

use super::types::NodeId;
use super::types::Term;

/// The part this node plays, as the health view names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthRole {
    /// The local server has not answered since repmgrd started.
    Unknown,
    Primary,
    Standby,
    Witness,
}

impl HealthRole {
    pub fn name(self) -> &'static str {
        match self {
            HealthRole::Unknown => "unknown",
            HealthRole::Primary => "primary",
            HealthRole::Standby => "standby",
            HealthRole::Witness => "witness",
        }
    }
}

/// This node's health now, from the core's state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub role: HealthRole,
    /// The local server answered at the last read.
    pub running: bool,
    /// A primary that may take writes now: running, not in recovery, no
    /// fence applied or being applied, not superseded, and (when it fences
    /// itself on losing its majority) holding a lease a majority renewed,
    /// outside the window in which it would begin to fence itself.
    pub writable: bool,
    /// A fence is applied or being applied to the server.
    pub fenced: bool,
    /// A primary that fences itself and holds no majority lease now.
    pub isolated: bool,
    /// The term of a newer primary, when one superseded this node.
    pub superseded: Option<Term>,
    /// A standby whose WAL receiver streams.
    pub streaming: bool,
    /// A standby's upstream, and how long ago it last answered a check.
    pub upstream: Option<NodeId>,
    pub upstream_seen_ms_ago: Option<u64>,
    /// From the last read of the local server.
    pub in_recovery: Option<bool>,
    pub timeline: Option<u32>,
    pub paused: bool,
    /// The highest term this node knows a primary to act in.
    pub known_term: Term,
}

/// A primary's lease and fence as the health view needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LeaseView {
    /// A majority's promises hold beyond the point where the primary
    /// would begin to fence itself.
    pub majority: bool,
    /// A fence is applied or being applied.
    pub fenced: bool,
    pub superseded: Option<Term>,
    /// The primary saw its server go down.
    pub down: bool,
}
