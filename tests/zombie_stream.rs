//! A standby that streams from a superseded node (issue 11, NO SPLIT
//! BRAIN rule 10): node1 runs on without repmgrd; node2, cut off from
//! node1, is promoted by hand; node3 keeps streaming from node1, which
//! keeps taking writes, so node3's WAL goes past node2's fork. node3's
//! repmgrd hears node2's heartbeats (term 2) and ends its stream from
//! node1, for good.

use std::time::Duration;

use crate::harness::{holds_for, poll_until};
use crate::partition::{safe, wait_heartbeats};

fn answer(n: &crate::fixture::Node, sql: &str) -> Option<String> {
    n.pg.try_query_one_string(sql).ok().flatten()
}

#[test]
fn a_standby_streaming_from_a_superseded_primary_ends_that_stream() {
    let c = crate::fixture::registered_cluster_on_hosts(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    n1.pg
        .execute("CREATE TABLE t (id bigserial PRIMARY KEY, at timestamptz)");
    // Every repmgrd publishes its row (and peer port), then node1's and
    // node2's stop: node1 is the primary nobody fences.
    let mut d1 = n1.repmgrd();
    let mut d2 = n2.repmgrd();
    let d3 = n3.repmgrd();
    wait_heartbeats(n1, 3);
    d2.stop(Duration::from_secs(10));
    d1.stop(Duration::from_secs(10));
    // node2 cut off from node1; node1 takes writes node2 never gets and
    // node3 does (past the fork to come).
    h1.drop_to(h2);
    h2.drop_to(h1);
    n1.pg
        .execute("INSERT INTO t (at) SELECT now() FROM generate_series(1, 10)");
    poll_until(
        Duration::from_secs(30),
        "node3 replays node1's rows",
        || answer(n3, "SELECT count(*) FROM t").as_deref() == Some("10"),
    );
    n2.repmgr(&["standby", "promote"]).assert_success();
    poll_until(Duration::from_secs(30), "node2 runs as a primary", || {
        answer(n2, "SELECT NOT pg_is_in_recovery()").as_deref() == Some("t")
    });
    assert_eq!(
        answer(n2, "SELECT term FROM repmgr.voting_term").as_deref(),
        Some("2"),
        "the promotion's term"
    );
    // node1 writes on; node3 streams it (a zombie's stream).
    n1.pg
        .execute("INSERT INTO t (at) SELECT now() FROM generate_series(1, 10)");
    let streams_from_1 = || {
        answer(
            n1,
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node3' AND state = 'streaming'",
        )
        .as_deref()
            == Some("1")
    };
    poll_until(
        Duration::from_secs(30),
        "node3 streams from node1",
        streams_from_1,
    );
    // node3 has WAL past node2's fork: it could not follow node2.
    poll_until(
        Duration::from_secs(30),
        "node3 replays node1's new rows",
        || answer(n3, "SELECT count(*) FROM t").as_deref() == Some("20"),
    );
    assert_eq!(answer(n2, "SELECT count(*) FROM t").as_deref(), Some("0"));
    // node2's repmgrd comes back as the primary of term 2: its heartbeats
    // reach node3's repmgrd.
    let _d2 = n2.repmgrd();
    poll_until(
        Duration::from_secs(60),
        "node3's repmgrd ends its stream from node1",
        || {
            d3.output()
                .contains("ending the stream (primary_conninfo cleared)")
        },
    );
    poll_until(Duration::from_secs(20), "node3's receiver gone", || {
        !streams_from_1()
            && answer(n3, "SELECT count(*) FROM pg_stat_wal_receiver").as_deref() == Some("0")
    });
    assert_eq!(
        answer(n3, "SHOW primary_conninfo").as_deref(),
        Some(""),
        "primary_conninfo cleared"
    );
    // Kept ended while node1 writes on.
    let before = answer(n3, "SELECT count(*) FROM t");
    n1.pg
        .execute("INSERT INTO t (at) SELECT now() FROM generate_series(1, 10)");
    if let Err(e) = holds_for(Duration::from_secs(8), Duration::from_millis(200), || {
        !streams_from_1() && answer(n3, "SELECT count(*) FROM t") == before
    }) {
        panic!(
            "node3 streams from node1 again: {e}\n{}",
            d3.output_tail(40)
        );
    }
    poll_until(Duration::from_secs(30), "the event on node2", || {
        answer(
            n2,
            "SELECT count(*) FROM repmgr.events WHERE event = 'repmgrd_superseded_stream_ended' AND node_id = 3",
        )
        .as_deref()
            == Some("1")
    });
    assert!(
        d3.output().contains("repmgr node rejoin --force-rewind"),
        "the log names what to run:\n{}",
        d3.output_tail(40)
    );
}
