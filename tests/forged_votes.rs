//! Votes can neither be forged nor blocked by an ordinary database user
//! (issue 11), on real servers.
//!
//! Votes and heartbeats go over the repmgrds' own channel, each line
//! authenticated with a MAC keyed by `repmgr.daemon_secret`, which only the
//! repmgr role can read (src/daemon/driver/peer); nothing in an election
//! takes a database lock. (Before, a term claim was an advisory lock that
//! any user could take first.) So a user with a login and nothing else,
//! holding on every standby the advisory lock of every key a claim of a
//! low term used, and sending well-formed vote requests for a far higher
//! term, with a made-up MAC, to every repmgrd, neither blocks the failover
//! nor moves a voter's term.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::fixture::{registered_cluster_with, writable, Node};
use crate::harness::{poll_until, Daemon};

const MINUTE: Duration = Duration::from_secs(60);

fn conf(_: i32) -> String {
    "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=DEBUG"
        .to_string()
}

/// A session of the ordinary user on `n`, over its unix socket.
fn as_user(n: &Node, user: &str) -> postgres::Client {
    let mut c = postgres::Config::new()
        .host_path(&n.pg.sockdir)
        .port(n.pg.port)
        .user(user)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5))
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("{user} connecting to {}: {e}", n.pg.name));
    c.batch_execute("SET statement_timeout = '10s'")
        .unwrap_or_else(|e| panic!("{user} on {}: {e}", n.pg.name));
    c
}

/// The peer port node `id`'s repmgrd announces in its session's
/// application_name on its server `n` ("repmgrd port=P node=N"), as
/// anyone can read it.
fn peer_port(n: &Node, id: i32) -> u16 {
    let sql = format!(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'repmgrd port=% node={id}' LIMIT 1"
    );
    let mut port = None;
    poll_until(
        MINUTE,
        &format!("{}'s repmgrd announces its peer port", n.pg.name),
        || {
            port =
                n.pg.try_query_one_string(&sql)
                    .ok()
                    .flatten()
                    .and_then(|a| {
                        a.strip_prefix("repmgrd port=")?
                            .split(' ')
                            .next()?
                            .parse()
                            .ok()
                    });
            port.is_some()
        },
    );
    port.unwrap_or(0)
}

/// Sends one vote request line for `term` with a MAC the sender made up;
/// what came back before the repmgrd closed the connection (or 2 s).
fn forged_vote(port: u16, term: i64, candidate: i32) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().expect("address"),
        Duration::from_secs(2),
    )
    .unwrap_or_else(|e| panic!("connecting to the peer port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let line = format!(
        "RPMGR/1 VOTE {term} {candidate} 1 1 999999999 0 0badc0de00000000 {}\n",
        "0".repeat(64)
    );
    s.write_all(line.as_bytes())
        .expect("sending the forged line");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn an_ordinary_user_can_neither_forge_nor_block_a_vote() {
    let nodes = registered_cluster_with(2, conf);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    n1.pg.execute("CREATE ROLE mallory LOGIN");
    poll_until(MINUTE, "the role replicated", || {
        [n2, n3].iter().all(|s| {
            s.pg.try_query_one_string("SELECT count(*) FROM pg_roles WHERE rolname = 'mallory'")
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        })
    });

    // The key is out of reach.
    let mut m1 = as_user(n1, "mallory");
    let read = m1.simple_query("SELECT secret FROM repmgr.daemon_secret");
    assert!(
        read.as_ref()
            .is_err_and(|e| e.as_db_error().is_some_and(|d| d.code().code() == "42501")),
        "an ordinary user read the peer channel's key: {read:?}"
    );

    // Every advisory lock a term claim could once have used, held on every
    // standby (both key spaces) for the whole failover.
    let mut held: Vec<postgres::Client> = Vec::new();
    for s in [n2, n3] {
        let mut c = as_user(s, "mallory");
        c.batch_execute(
            "SELECT pg_advisory_lock(k) FROM generate_series(0, 200) k;
             SELECT pg_advisory_lock(0, k) FROM generate_series(0, 200) k;
             SELECT pg_advisory_lock(k, 0) FROM generate_series(0, 200) k;",
        )
        .unwrap_or_else(|e| panic!("mallory's advisory locks on {}: {e:?}", s.pg.name));
        held.push(c);
    }

    // Forged vote requests for term 1000, for each candidate, to every
    // repmgrd: none is answered.
    for (n, id) in [(n1, 1), (n2, 2), (n3, 3)] {
        let port = peer_port(n, id);
        for candidate in [2, 3] {
            let reply = forged_vote(port, 1000, candidate);
            assert!(
                reply.is_empty(),
                "{}'s repmgrd answered a forged vote request: {:?}",
                n.pg.name,
                String::from_utf8_lossy(&reply)
            );
        }
    }

    n1.pg.kill9();
    poll_until(MINUTE, "a standby promoted despite mallory", || {
        writable(n2) || writable(n3)
    });
    let new = if writable(n2) { n2 } else { n3 };
    let term: i64 = new
        .pg
        .query_one_string("SELECT term FROM repmgr.voting_term")
        .parse()
        .unwrap_or(-1);
    assert!(
        (1..1000).contains(&term),
        "{} was promoted in voting term {term}: a forged request for term 1000 moved the terms",
        new.pg.name
    );
    for (c, s) in held.iter_mut().zip([n2, n3]) {
        let locks = c
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
                &[],
            )
            .map(|r| r.get::<_, i64>(0));
        assert!(
            locks.as_ref().is_ok_and(|n| *n >= 602),
            "mallory's session on {} no longer holds its locks: {locks:?}",
            s.pg.name
        );
    }
    let ignored = daemons
        .iter()
        .filter(|d| {
            d.output()
                .contains("peer request that does not authenticate; ignored")
        })
        .count();
    assert_eq!(
        ignored, 3,
        "not every repmgrd logged the forged requests as ignored"
    );
    drop(daemons);
}
