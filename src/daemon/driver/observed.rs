//! What the main loop last saw and counted, shared with the HTTP
//! endpoint's threads ([`super::endpoint`] reads it).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::db::{nodes::NodeRecord, observe::ServerRow};

/// What the main loop last saw and counted, for the endpoint.
#[derive(Debug, Default)]
pub struct Observed {
    pub row: Option<ServerRow>,
    pub nodes: Vec<NodeRecord>,
    pub failovers: u64,
    pub fences: u64,
    /// When the last monitoring cycle began and how long it took.
    pub cycle_at: Option<Instant>,
    pub cycle_ms: u64,
    pub interval_ms: u64,
    /// The endpoint runs (else nothing is copied here each cycle).
    pub enabled: bool,
}

pub type Shared = Arc<Mutex<Observed>>;
