//! `repmgr cluster …` (repmgr-action-cluster.c): one file per action, and
//! what `cluster show` and `service status` share: the parallel probe of
//! every node and the Status and Upstream cells made from it.

mod cells;
mod cleanup;
mod event;
mod matrix;
mod probe;
mod show;

pub(crate) use cells::{status_cell, upstream_cell};
pub use cleanup::cleanup;
pub use event::event;
pub use matrix::{crosscheck, matrix};
pub(crate) use probe::{probe_all_with, Probe, Reach};
pub use show::show;
