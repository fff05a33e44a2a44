//! repmgr in Rust: a replication manager for PostgreSQL clusters.
//!
//! One executable, two personalities chosen by `argv[0]`: `repmgr` (the CLI,
//! runs and exits) and `repmgrd` (the monitoring and failover daemon).
//! No C extension and no `shared_preload_libraries` are needed: metadata is
//! plain SQL in schema `repmgr`, compatible with repmgr 5.

pub mod logging;

pub mod attach;
pub mod cli;
pub mod commands;
pub mod config;
pub mod conninfo;
pub mod daemon;
pub mod db;
pub mod error;
pub mod events;
pub mod hooks;
pub mod ops;
pub mod output;
pub mod parallel;
pub mod pgtools;
pub mod poll;
pub mod process;
pub mod remote;
pub mod replconf;
pub mod shutdown;
pub mod tool_secrets;

#[cfg(test)]
mod layering;
