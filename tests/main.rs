//! Integration tests: real PostgreSQL servers and the real repmgr binary.

// Test harness: PostgreSQL nodes in temp dirs, running the binary under test.
mod harness;
// Tests proving the harness itself works (nodes, standbys, cleanup, user switch).
mod harness_selftest;
// Nodes with their repmgr.conf, and a registered cluster.
mod fixture;
// Tests of the hosts-and-partitions harness (network namespaces, cut/heal).
mod net_selftest;
// The command grammar through the real binary (no PostgreSQL).
mod cli;
// The product's db::Session against a real server (pipelined statements).
mod db_session;
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
// repmgr 5 keys with an effect on repmgrd: failover_delay, exit_on_inactive_node, standby_startup_timeout.
mod repmgr_keys;
// A frozen primary host and a server silent mid-session (issue 10).
mod frozen;
// repmgrd's HTTP endpoint: health checks, metrics (issue 13).
mod http;
// HAProxy in front of the cluster, checking repmgrd's /primary (issue 13).
mod haproxy;
// repmgrd under systemd: sd_notify (issue 13).
mod notify;
// Network partitions with nodes on separate hosts (network namespaces).
mod partition_demo;
// No split brain under network partitions: fencing, quorum, witness, flapping (issue 6).
mod partition;
// Every route around the read-only fence, against a fenced and a superseded primary (issue 11).
mod fence_routes;
// A fence_command far slower than the failover (issue 11).
mod slow_fence_hook;
// A fenced primary's server started by hand while still cut off (issue 11).
mod manual_start;
// An ordinary database user can neither forge nor block a vote (issue 11).
mod forged_votes;
// One link cut and partial heals (primary, standby, witness on hosts); a cut-off
// primary with no automatic candidate.
mod links;
// Faults racing a failover: SYN-only loss, a voter restarted mid-claim, the
// old primary back before the promotion (issue 11).
mod races;
// A promotion that failed or timed out is resolved, never left in doubt (issue 11).
mod promote_outcome;
// A primary whose server hangs while its own fence job runs (issue 11).
mod hung_fence;
// A voter's repmgrd restarted or down: its start-up quarantine (issue 11).
mod quarantine;
// A standby streaming from a superseded (zombie) primary ends that stream (issue 11).
mod zombie_stream;
// Synchronous replication under a partition and under pgbench load (issue 11).
mod sync_faults;
// Nodes of an earlier history: a fenced, inactive old primary back after a
// failover, a standby left on an older timeline (issue 11).
mod old_histories;
// standby clone: pg_basebackup and rsync, refusals, tablespaces, slots.
mod clone;
// repmgrd control: service status/pause/unpause, daemon start/stop.
mod service;
// standby switchover through a real sshd on loopback.
mod switchover;
// cluster matrix and crosscheck through a real sshd on loopback.
mod matrix;
// No split brain: fencing and old primaries that never come back as primaries.
mod split_brain;
// node status/check/service and cluster cleanup.
mod node_check;
// node rejoin and the witness.
mod rejoin_witness;
// The seed README's EXAMPLES end to end: clone, promote, follow, clone from the new primary.
mod seed_examples;
// --json of cluster show/event, node status/check, service status against their text.
mod json;
// TLS with real certificates: verify-full, cert auth, clone, refusals (issue 12).
mod tls;
// make deb (its files, control fields and systemd units) and make install's guard (issue 13).
mod package;
// Taking over a cluster built by repmgr 5.3 without re-registering (issue 12).
mod takeover;
// repmgr 5.3 and ours side by side: exit codes and stdout shape (issue 12).
mod parity;
