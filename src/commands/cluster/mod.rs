//! `repmgr cluster …` (repmgr-action-cluster.c): one file per action, and
//! the parallel probe of every node that `cluster show` and `service status`
//! share.

mod cleanup;
mod event;
mod matrix;
mod probe;
mod show;

pub use cleanup::cleanup;
pub use event::event;
pub use matrix::{crosscheck, matrix};
pub(crate) use probe::{probe_all_with, Probe, Reach};
pub use show::show;
pub(crate) use show::{status_cell, upstream_cell};
