//! Integration tests: real PostgreSQL servers and the real repmgr binary.

// Test harness: PostgreSQL nodes in temp dirs, running the binary under test.
mod harness;
// Tests proving the harness itself works (nodes, standbys, cleanup, user switch).
mod harness_selftest;
// Nodes with their repmgr.conf, and a registered cluster.
mod fixture;
// The command grammar through the real binary (no PostgreSQL).
mod cli;
// Bad input: config, conninfo, hung and closed servers, refusals.
mod bad_input;
// primary/standby register and unregister.
mod register;
// cluster show and cluster event.
mod cluster;
// repmgrd lifecycle.
mod daemon;
// standby promote and standby follow.
mod promote_follow;
// repmgrd monitoring and automatic failover.
mod failover;
// standby clone: pg_basebackup and rsync, refusals, tablespaces, slots.
mod clone;
// repmgrd control: service status/pause/unpause, daemon start/stop.
mod service;
// The seed README's EXAMPLES end to end: clone, promote, follow, clone from the new primary.
mod seed_examples;
