//! Writes to the primary that wait for one to be reachable.

use std::collections::VecDeque;

use crate::daemon::core::types::NodeId;

/// Events kept for a later attempt when no primary can be written to.
pub const PENDING_EVENTS: usize = 50;

/// An event not recorded yet.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub name: &'static str,
    pub ok: bool,
    pub details: String,
    pub primary_id: Option<NodeId>,
}

/// A change to this node's own record.
#[derive(Debug, Clone, Copy)]
pub enum RecordWrite {
    Active(bool),
    Upstream(NodeId),
}

/// Writes waiting for a primary: events, and the latest change to this
/// node's record.
#[derive(Debug, Default)]
pub struct Pending {
    pub events: VecDeque<PendingEvent>,
    pub record: Option<RecordWrite>,
}
