//! `repmgr cluster …` (repmgr-action-cluster.c): one file per action.
//! What `cluster show` and `service status` share (the parallel probe of
//! every node and the Status and Upstream cells made from it) is
//! `ops::cluster_view`, where repmgrd can reach it too.

mod cleanup;
mod event;
mod matrix;
mod show;

pub use cleanup::cleanup;
pub use event::event;
pub use matrix::{crosscheck, matrix};
pub use show::show;
