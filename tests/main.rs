//! Integration tests: real PostgreSQL servers and the real repmgr binary.

// Test harness: PostgreSQL nodes in temp dirs, running the binary under test.
mod harness;
// Tests proving the harness itself works (nodes, standbys, cleanup, user switch).
mod harness_selftest;
