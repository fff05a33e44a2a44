//! Faults that race a failover (issue 11), on real servers, every node
//! (its PostgreSQL and its repmgrd) on its own host, the partition tests'
//! [`Checker`] beside each (no two nodes acknowledge a write in one round;
//! its writes override the read-only default, as a client can):
//!
//! 1. SYN-only loss at the primary's host: no new connection reaches it,
//!    established ones (the standbys' WAL streams) keep working.
//! 2. A voter's repmgrd killed (-9) and restarted while the candidate it
//!    voted for holds its votes and has not promoted yet.
//! 3. The old primary's server back (SIGCONT) after the candidate has its
//!    votes and before it promotes.
//! 4. The same while the candidate's failover_validation_command runs, the
//!    old primary without a repmgrd to fence it.
//!
//! A candidate is held right before its promotion by a
//! `failover_validation_command` that waits for the test ([`Gate`]):
//! repmgrd runs it after the votes and the last look at the failed
//! primary, and pg_promote only once it exits 0. Nothing in the product is
//! there for the tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::{streams_from, Node};
use crate::harness::{
    holds_for, poll_until, try_poll_until, user_tempdir, write_user_file, Daemon,
};
use crate::partition::{
    assert_one_handover, cluster_since, fenced_or_down, is_primary, promotions_logged, safe, secs,
    tails, Checker,
};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// Waits out every repmgrd's start-up quarantine (10 s after it started, in
/// which it grants no vote), so elections are decided by the rules under
/// test, not by the quarantine.
pub(crate) fn past_quarantine(started: Instant) {
    std::thread::sleep(Duration::from_secs(11).saturating_sub(started.elapsed()));
}

/// A runs as a primary that takes writes (not fenced read-only).
pub(crate) fn writable(n: &Node) -> bool {
    is_primary(n) && !fenced_or_down(n)
}

/// The voting term of the first claim `d` logged: "claim of voting term T:
/// k of n voters granted".
fn claimed_term(d: &Daemon) -> Option<i64> {
    let out = d.output();
    let rest = out.split("claim of voting term ").nth(1)?;
    rest.split(':').next()?.trim().parse().ok()
}

/// repmgrd's state file of a node (repmgrd.8, FILES): `<data_directory>.repmgrd`.
fn state_of(n: &Node) -> HashMap<String, String> {
    let dd = n.pg.datadir.display().to_string();
    let path = PathBuf::from(format!("{}.repmgrd", dd.trim_end_matches('/')));
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn state_num(state: &HashMap<String, String>, key: &str) -> Option<i64> {
    state.get(key).and_then(|v| v.parse().ok())
}

/// `repmgrd_failover_promote` events recorded on `n`.
fn promote_events(n: &Node) -> Option<String> {
    n.pg.try_query_one_string(
        "SELECT count(*) FROM repmgr.events WHERE event = 'repmgrd_failover_promote'",
    )
    .ok()
    .flatten()
}

// ------------------------------------------------------------------ gate

/// A `failover_validation_command` that holds a candidate right before its
/// promotion (votes in hand, the failed primary looked at) until the test
/// opens the gate, at most 20 s. The held node marks itself.
struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    fn new() -> Gate {
        let dir = user_tempdir();
        write_user_file(
            &dir.path().join("gate.sh"),
            "d=$(dirname \"$0\")\n: > \"$d/held.$1\"\ni=0\n\
             while [ ! -e \"$d/open\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done\n\
             exit 0\n",
        );
        Gate { dir }
    }

    /// The repmgr.conf line.
    fn conf(&self) -> String {
        format!(
            "failover_validation_command='/bin/sh {}/gate.sh %n'",
            self.dir.path().display()
        )
    }

    /// The node ids held (or once held) at the gate.
    fn held(&self) -> Vec<i32> {
        (1..10)
            .filter(|id| self.dir.path().join(format!("held.{id}")).exists())
            .collect()
    }

    fn open(&self) {
        let _ = std::fs::write(self.dir.path().join("open"), "");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // A failing test leaves no candidate waiting.
        self.open();
    }
}

// ----------------------------------------------------------------- tests

/// 1. SYN-only loss at the primary's host: every new TCP connection to it
///    fails (the standbys' checks, their status requests to its repmgrd),
///    every established one keeps working (the WAL streams, repmgrd's
///    sessions), and the primary's own outbound connections (its
///    heartbeats to the voters) too.
///
/// What the design does: the standbys give up on the primary after their
/// reconnection attempts and hold an election, and a candidate refuses to
/// run while its own WAL receiver streams fresh WAL from the primary
/// ("failover cancelled: this node still sees the primary"); a voter whose
/// WAL receiver streams refuses its vote as well. The primary still renews
/// its lease with a majority (its heartbeats go out) and finds no newer
/// term in the answers, so it is neither fenced nor superseded. So: no
/// promotion while the WAL streams, the primary keeps taking writes, and
/// once connections are accepted again the standbys reconnect.
#[test]
fn syn_only_loss_at_the_primary_promotes_nobody_while_the_wal_streams() {
    let (c, daemons, started) = cluster_since(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, n2, n3]);

    let lost = Instant::now();
    n1.host().refuse_new_connections();
    // Both standbys run out of attempts and cancel their elections.
    for d in &daemons[1..] {
        d.wait_for_output("after 7 attempts", Duration::from_secs(60));
        d.wait_for_output("failover cancelled", Duration::from_secs(30));
    }
    assert!(
        daemons[1..].iter().any(|d| d
            .output()
            .contains("this node still sees the primary (its WAL receiver streams from it)")),
        "no standby cancelled for its own WAL receiver\n{}",
        tails(&daemons)
    );
    let cancelled = lost.elapsed();
    // Well past the failure window and a re-run of the elections: the WAL
    // still streams to both, nobody is promoted, node1 is not fenced.
    if let Err(e) = holds_for(Duration::from_secs(12), STEP, || {
        writable(n1)
            && !is_primary(n2)
            && !is_primary(n3)
            && streams_from(n1, "node2")
            && streams_from(n1, "node3")
    }) {
        panic!(
            "under SYN-only loss at the primary, the roles or the WAL streams changed ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        !n1.host().is_cut(),
        "the host was cut, not only its new connections"
    );

    n1.host().accept_new_connections();
    for d in &daemons[1..] {
        d.wait_for_output("reconnected to upstream node", Duration::from_secs(60));
    }
    assert!(promotions_logged(&daemons).is_empty());
    assert!(writable(n1) && n2.pg.is_in_recovery() && n3.pg.is_in_recovery());
    let r = checker.finish();
    let last = r.last_accepted.get("node1").copied();
    assert!(
        last.is_some_and(|t| t > lost + cancelled),
        "node1 stopped taking writes during the SYN-only loss\n{}",
        tails(&daemons)
    );
    eprintln!(
        "[races] SYN-only loss: elections cancelled by +{}, no promotion, node1 wrote throughout",
        secs(cancelled)
    );
    drop(daemons);
}

/// 2. A voter's repmgrd killed (-9) and restarted mid-claim: the primary's
///    server is killed; the winner gets its votes for term T and is held
///    right before promoting; the other standby's repmgrd, which granted
///    T, is killed and started again; then the winner goes on.
///
/// What the design does: a vote is written (fsynced) to the voter's state
/// file before the answer leaves, and a restarted repmgrd reads it back:
/// it still knows it granted T to the winner, so it refuses T (and any
/// lower term) to anyone else and acknowledges the winner's lease
/// renewals in T. So: exactly one promotion, in term T, the restarted
/// voter follows it, and its granted term never goes down.
#[test]
fn a_voter_restarted_mid_claim_keeps_its_vote_and_one_node_is_promoted() {
    let gate = Gate::new();
    let (c, mut daemons, started) = cluster_since(2, |id| format!("{}\n{}", safe(id), gate.conf()));
    let n1 = &c.nodes[0];
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, &c.nodes[1], &c.nodes[2]]);

    n1.pg.kill9();
    poll_until(
        Duration::from_secs(60),
        "a candidate held with its votes",
        || !gate.held().is_empty(),
    );
    let held = gate.held();
    assert_eq!(held.len(), 1, "two candidates held at once: {held:?}");
    let ci = held[0] as usize - 1;
    let vi = if ci == 1 { 2 } else { 1 };
    let (cand, voter) = (&c.nodes[ci], &c.nodes[vi]);
    let term = claimed_term(&daemons[ci]).unwrap_or_else(|| {
        panic!(
            "{} is held but logged no claim\n{}",
            cand.pg.name,
            tails(&daemons)
        )
    });
    let before = state_of(voter);
    assert_eq!(
        (
            state_num(&before, "granted_term"),
            state_num(&before, "granted_to")
        ),
        (Some(term), Some(held[0] as i64)),
        "{}'s state file does not record its vote for {} in term {term}: {before:?}",
        voter.pg.name,
        cand.pg.name
    );
    assert!(!is_primary(cand), "promoted before the gate opened");

    // kill -9, then a new repmgrd on the same state file.
    daemons[vi].signal(Signal::SIGKILL);
    daemons[vi].wait_exit(Duration::from_secs(10));
    let fresh = voter.repmgrd();
    let killed = std::mem::replace(&mut daemons[vi], fresh);
    let after = state_of(voter);
    assert_eq!(
        (
            state_num(&after, "granted_term"),
            state_num(&after, "granted_to")
        ),
        (Some(term), Some(held[0] as i64)),
        "the restarted repmgrd of {} lost its vote: {after:?}",
        voter.pg.name
    );
    // The restarted voter acknowledges the winner's lease in term T: it
    // records the winner as the holder of T (its durable known term).
    poll_until(
        Duration::from_secs(20),
        &format!(
            "the restarted voter {} acknowledges {}'s lease in term {term}",
            voter.pg.name, cand.pg.name
        ),
        || {
            let s = state_of(voter);
            state_num(&s, "known_term") == Some(term)
                && state_num(&s, "known_primary") == Some(held[0] as i64)
        },
    );
    assert!(!is_primary(cand), "promoted before the gate opened");

    gate.open();
    poll_until(
        Duration::from_secs(60),
        &format!("{} promoted", cand.pg.name),
        || writable(cand),
    );
    poll_until(
        Duration::from_secs(60),
        &format!("{} follows {}", voter.pg.name, cand.pg.name),
        || streams_from(cand, &voter.pg.name),
    );
    let out = daemons[ci].output();
    assert!(
        out.contains(&format!("voting term is now {term}")),
        "{} was not promoted in the term it claimed ({term})\n{}",
        cand.pg.name,
        daemons[ci].output_tail(40)
    );
    // No second promotion, by anyone, for a while after.
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || {
        writable(cand) && voter.pg.is_in_recovery() && !n1.pg.is_running()
    }) {
        panic!(
            "the roles changed after the promotion ({e})\n{}",
            tails(&daemons)
        );
    }
    let mut all = daemons;
    all.push(killed);
    let promotions = promotions_logged(&all);
    assert_eq!(
        promotions.len(),
        1,
        "promotions: {promotions:?}\n{}",
        tails(&all)
    );
    assert_eq!(promote_events(cand).as_deref(), Some("1"));
    let end = state_of(voter);
    assert!(
        state_num(&end, "granted_term") >= Some(term)
            && state_num(&end, "known_term") >= Some(term),
        "{}'s terms went down: {end:?}",
        voter.pg.name
    );
    checker.finish();
    eprintln!(
        "[races] voter {} restarted mid-claim of term {term}: {} promoted once, in term {term}",
        voter.pg.name, cand.pg.name
    );
    drop(all);
}

/// How the primary goes away in test 3, and comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Away {
    /// Its host cut off (server and repmgrd run on), then healed.
    Cut,
    /// Its server (postmaster and backends) stopped with SIGSTOP, its
    /// repmgrd running on, then SIGCONT.
    Hung,
}

/// 3. The old primary back between the last reconnect attempt and the
///    promotion: its host is cut off; the standbys run out of attempts and
///    elect; the moment the winner logs its claim (votes in hand) the host
///    is healed, while the winner is held right before its promotion (after
///    its last look at the old primary, before pg_promote); then the winner
///    goes on at once.
///
/// What the design does: the cut-off primary renews its lease with no
/// majority, so its repmgrd stops its server (`pg_ctl -m immediate`) a stop
/// margin before the lease ends, before any voter, bound by its promise
/// until then, can grant a vote. The primary that comes back during the
/// claim is a stopped server; its repmgrd learns the newer term from the
/// voters and prepares it to restart as a standby. So the promotion goes
/// ahead, and the old primary takes no write once the new one takes any.
#[test]
fn an_old_primary_back_during_the_claim_takes_no_write_after_the_promotion() {
    back_during_the_claim(Away::Cut);
}

/// Test 3 with a hung server instead of a cut: the postmaster and its
/// backends stopped (SIGSTOP) while its repmgrd runs on and keeps its
/// links. The server answers nothing, so its repmgrd sends no heartbeat
/// and the voters' promises run out; a stop margin before the lease ends
/// it kills the hung server (SIGKILL needs no answer), so that it cannot
/// resume and take writes once the winner promotes. Resumed during the
/// claim there is nothing left to resume; its repmgrd learns the newer
/// term and prepares it to restart as a standby, as for a crash.
#[test]
fn a_hung_old_primary_back_during_the_claim_takes_no_write_after_the_promotion() {
    back_during_the_claim(Away::Hung);
}

fn back_during_the_claim(away: Away) {
    let gate = Gate::new();
    let (c, daemons, started) = cluster_since(2, |id| format!("{}\n{}", safe(id), gate.conf()));
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, n2, n3]);

    let gone = Instant::now();
    let frozen = match away {
        Away::Cut => {
            n1.host().cut();
            None
        }
        Away::Hung => Some(n1.pg.freeze()),
    };
    // The claim: watched closely, the winner's last look follows at once.
    let mut winner = None;
    let claimed = try_poll_until(Duration::from_secs(60), || {
        winner = (1..3).find(|&i| claimed_term(&daemons[i]).is_some());
        if winner.is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        winner.is_some()
    });
    let n1_at_claim = daemons[0].output();
    match frozen {
        Some(f) => drop(f),
        None => n1.host().heal(),
    }
    let back = Instant::now();
    assert!(
        claimed,
        "no standby claimed a term while node1 was away\n{}",
        tails(&daemons)
    );
    let ci = winner.expect("a winner after the poll");
    let (cand, other) = (&c.nodes[ci], &c.nodes[3 - ci]);
    assert!(!is_primary(cand), "promoted before the gate opened");
    if away == Away::Cut {
        assert!(
            n1_at_claim.contains("stopping the server before another node can be promoted"),
            "node1's repmgrd had not stopped its server when {} claimed its term\n{}",
            cand.pg.name,
            tails(&daemons)
        );
    }
    poll_until(
        Duration::from_secs(30),
        &format!("{} held right before its promotion", cand.pg.name),
        || gate.held() == vec![ci as i32 + 1],
    );
    gate.open();
    poll_until(
        Duration::from_secs(60),
        &format!("{} promoted", cand.pg.name),
        || writable(cand),
    );
    poll_until(
        Duration::from_secs(60),
        &format!("{} follows {}", other.pg.name, cand.pg.name),
        || streams_from(cand, &other.pg.name),
    );
    if let Err(e) = holds_for(Duration::from_secs(3), STEP, || fenced_or_down(n1)) {
        panic!(
            "the old primary takes writes after the promotion ({e})\n{}",
            tails(&daemons)
        );
    }
    // It learns the newer term and is prepared to restart as a standby.
    poll_until(
        Duration::from_secs(30),
        "node1 prepared to come back as a standby (standby.signal)",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    let (last_old, first_new) =
        assert_one_handover(&daemons, &checker.finish(), "node1", &cand.pg.name);
    eprintln!(
        "[races] node1 away at +0, {} claimed and node1 back at +{}, node1's last write at +{}, {} first writable at +{}",
        cand.pg.name,
        secs(back.duration_since(gone)),
        last_old.map_or("-".into(), |t| secs(t.saturating_duration_since(gone))),
        cand.pg.name,
        secs(first_new.duration_since(gone)),
    );
    drop(daemons);
}

/// Test 4: the old primary back while the winner's
/// `failover_validation_command` runs, with no repmgrd of its own to fence
/// it (failover_quorum=repmgr, two nodes: node2 wins alone). The core's last
/// look came before the command; the promotion job looks once more after
/// it, so node2 is not promoted beside a node1 that takes writes again.
#[test]
fn an_old_primary_back_during_the_validation_command_is_not_promoted_beside() {
    let gate = Gate::new();
    let nodes = crate::fixture::registered_cluster_with(1, |_| {
        format!(
            "failover=automatic\nfailover_quorum=repmgr\nreconnect_attempts=2\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO\n{}",
            gate.conf()
        )
    });
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let d2 = n2.repmgrd();
    poll_until(
        Duration::from_secs(60),
        "node2's status row on node1",
        || {
            n1.pg
            .try_query_one_string(
                "SELECT count(*) FROM repmgr.repmgrd_status WHERE node_id = 2 AND pid IS NOT NULL",
            )
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
        },
    );
    let frozen = n1.pg.freeze();
    poll_until(
        Duration::from_secs(60),
        "node2 held right before its promotion",
        || gate.held() == vec![2],
    );
    drop(frozen);
    poll_until(Duration::from_secs(10), "node1 takes writes again", || {
        writable(n1)
    });
    gate.open();
    poll_until(
        Duration::from_secs(30),
        "node2 giving up the promotion",
        || {
            d2.output()
                .contains("answers again after failover_validation_command")
        },
    );
    if let Err(e) = holds_for(Duration::from_secs(5), STEP, || !is_primary(n2)) {
        panic!("node2 promoted beside node1 ({e})\n{}", d2.output_tail(40));
    }
    assert!(writable(n1), "node1 no longer takes writes");
}
