//! Workflows that both the CLI and repmgrd run. Commands parse options and
//! print; the daemon decides when; the functions here do the work, over
//! `db` (SQL), `pgtools` and `process` (server tools and child processes).
//! Nothing here names `commands` or `daemon` (`make check` keeps it so).

pub mod cluster_view;
pub mod follow;
pub mod pidfile;
pub mod promote;
pub mod rejoin;
pub mod witness;
