//! A voter whose repmgrd restarts sits out its start-up quarantine
//! (issue 11), on real servers: primary, standby and witness each on a
//! host of their own, the partition tests' [`Checker`] beside them (its
//! writes override the read-only default, as a client can).
//!
//! A voter's promises to a primary (no vote for anyone for its lease after
//! each heartbeat it acknowledged) live in its repmgrd's memory: a
//! restarted repmgrd no longer knows them. The primary still counts on
//! them, so a restarted voter grants no vote for max(its lease, 10 s)
//! (src/daemon/core/vote.rs, `VoteBook::new`; simulation class
//! RestartedPromiser).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::Node;
use crate::harness::{poll_until, Daemon};
use crate::partition::{
    add_witness, assert_one_handover, cluster, fenced_or_down, safe, secs, tails, wait_heartbeats,
    Checker,
};
use crate::races::{past_quarantine, writable};

/// node2 gives up on its primary quickly: 3 attempts 1 s apart, elections
/// re-run every 2 s.
fn quick_standby() -> String {
    "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nelection_rerun_interval=2\nlog_level=INFO"
        .to_string()
}

/// The witness promises long: its lease is its failure window,
/// (12 − 1) × 1 s = 11 s, so its quarantine is 11 s too.
fn patient_witness() -> String {
    "reconnect_attempts=12\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO"
        .to_string()
}

/// The witness's lease (and quarantine), from [`patient_witness`].
const WITNESS_LEASE: Duration = Duration::from_secs(11);

/// Kills (-9) a repmgrd and starts a new one for the same node; returns
/// it and when it was started (its quarantine begins no earlier).
fn restart(d: &mut Daemon, n: &Node) -> (Daemon, Instant) {
    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    let at = Instant::now();
    (n.repmgrd(), at)
}

/// node1 is cut off from both others; the witness's repmgrd, whose 11 s
/// promise holds node1's lease (node1 and the witness are 2 of 3), is
/// restarted right after. node2 gives up on node1 within seconds and asks
/// the witness for its vote: the restarted witness refuses it for its
/// quarantine, so node2 is promoted only once node1, counting on the
/// forgotten promise, has stopped itself. (Without the quarantine the
/// witness granted at once, and node2 took writes while node1 still
/// held its lease.)
#[test]
fn a_restarted_witness_sits_out_its_quarantine_while_the_primary_counts_on_it() {
    let (c, mut daemons) = cluster(1, |id| match id {
        2 => quick_standby(),
        _ => safe(id),
    });
    let witness_started = Instant::now();
    let (w, dw) = add_witness(&c, &patient_witness());
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    wait_heartbeats(n1, 3);
    // Every repmgrd's first quarantine over: the one under test is the
    // restart's.
    past_quarantine(witness_started - Duration::from_secs(1));
    let checker = Checker::start(n1, &[n1, n2]);
    // The probe table on node2 before the cut.
    crate::fixture::wait_replayed(n1, n2);

    let cut = Instant::now();
    n1.host().cut();
    let (fresh, at) = restart(&mut daemons[2], &w);
    let _killed = std::mem::replace(&mut daemons[2], fresh);
    let restarted = at.duration_since(cut);

    poll_until(Duration::from_secs(60), "node2 promoted", || writable(n2));
    let promoted = cut.elapsed();
    let at_promotion = fenced_or_down(n1);
    let out2 = daemons[1].output();
    assert!(
        at_promotion,
        "node2 was promoted while node1 still took writes\n{}",
        tails(&daemons)
    );
    assert!(
        out2.contains("node 3 refused its vote: it promised the primary not to vote for another"),
        "the restarted witness never refused node2 its vote\n{}",
        tails(&daemons)
    );
    assert!(
        promoted >= restarted + WITNESS_LEASE - Duration::from_millis(500),
        "node2 was promoted {} after the cut, the witness restarted at +{} (quarantine {})\n{}",
        secs(promoted),
        secs(restarted),
        secs(WITNESS_LEASE),
        tails(&daemons)
    );

    n1.host().heal();
    poll_until(
        Duration::from_secs(30),
        "node1 prepared to come back as a standby (standby.signal)",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    assert!(fenced_or_down(n1), "node1 takes writes after the heal");
    let (last_old, _) = assert_one_handover(&daemons, &checker.finish(), "node1", "node2");
    eprintln!(
        "[quarantine] cut at +0, witness restarted at +{}, node1's last write at +{}, node2 writable at +{}",
        secs(restarted),
        last_old.map_or("-".into(), |t| secs(t.saturating_duration_since(cut))),
        secs(promoted)
    );
    drop(daemons);
    drop(w);
}
