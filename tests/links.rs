//! One link cut, not a whole host (issue 11): primary, standby and
//! witness each on a host of their own, single links cut with
//! [`Host::drop_to`] in both directions, and healed one at a time. The
//! partition tests' [`Checker`] runs beside each (its writes override the
//! read-only default, as a client can). Last, the whole primary cut off
//! where no standby is an automatic candidate (it must not fence).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::Node;
use crate::harness::{holds_for, poll_until, Daemon};
use crate::partition::{
    add_witness, cluster, fenced_or_down, is_primary, promotions_logged, safe, tails,
    wait_heartbeats, Checker, CheckerReport,
};

const STEP: Duration = Duration::from_millis(100);

/// Cutting only the primary–standby link: the witness still sees the
/// primary and refuses the standby its vote, so nobody is promoted and the
/// primary, acknowledged by the witness, is not fenced. (Before votes were
/// conditional, the standby won with the witness's vote while the primary
/// kept writing.)
#[test]
fn cutting_only_the_primary_standby_link_promotes_nobody() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    let checker = Checker::start(n1, &[n1, n2]);
    let (h1, h2) = (n1.host(), n2.host());
    h1.drop_to(h2);
    h2.drop_to(h1);
    // Well past the failure window (6 s) and an election or two.
    daemons[1].wait_for_output("after 7 attempts", Duration::from_secs(60));
    if let Err(e) = holds_for(Duration::from_secs(15), STEP, || {
        is_primary(n1) && !fenced_or_down(n1) && !is_primary(n2)
    }) {
        panic!(
            "with only the primary-standby link cut, the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    h1.undrop_to(h2);
    h2.undrop_to(h1);
    poll_until(Duration::from_secs(60), "node2 streams again", || {
        crate::fixture::streams_from(n1, "node2")
    });
    checker.finish();
    drop(daemons);
    drop(w);
}

/// The primary cut from both others: the standby is promoted with the
/// witness's vote and the old primary fences. Healing only the
/// old-primary–witness link must not unfence it: the witness knows the
/// newer term.
#[test]
fn a_partial_heal_to_the_witness_does_not_unfence_the_old_primary() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    let checker = Checker::start(n1, &[n1, n2]);
    let (h1, h2, hw) = (n1.host(), n2.host(), w.host());
    for (a, b) in [(h1, h2), (h2, h1), (h1, hw), (hw, h1)] {
        a.drop_to(b);
    }
    poll_until(Duration::from_secs(90), "node2 promoted", || is_primary(n2));
    poll_until(Duration::from_secs(30), "node1 fenced", || {
        fenced_or_down(n1)
    });
    h1.undrop_to(hw);
    hw.undrop_to(h1);
    if let Err(e) = holds_for(Duration::from_secs(15), STEP, || fenced_or_down(n1)) {
        panic!(
            "the old primary unfenced after a heal to the witness only ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        is_primary(n2),
        "node2 is no longer primary\n{}",
        tails(&daemons)
    );
    checker.finish();
    drop(daemons);
    drop(w);
}

/// As above, with the witness's repmgrd down (killed) before the heal:
/// node1's heartbeats now reach only the witness's server, which answers
/// without a repmgrd and knows nothing of terms. That holds a lease (the
/// witness's repmgrd, once started, sits out its quarantine) but is no
/// evidence that nobody was promoted: node1 must stay fenced. (Before,
/// node1 unfenced on it beside node2; simulation class PartialHeal.)
#[test]
fn a_partial_heal_to_a_witness_without_its_repmgrd_does_not_unfence_the_old_primary() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    let checker = Checker::start(n1, &[n1, n2]);
    // The probe table on node2 before the cut.
    crate::fixture::wait_replayed(n1, n2);
    let (h1, h2, hw) = (n1.host(), n2.host(), w.host());
    for (a, b) in [(h1, h2), (h2, h1), (h1, hw), (hw, h1)] {
        a.drop_to(b);
    }
    poll_until(Duration::from_secs(90), "node2 promoted", || is_primary(n2));
    poll_until(Duration::from_secs(30), "node1 fenced", || {
        fenced_or_down(n1)
    });
    daemons[2].signal(Signal::SIGKILL);
    daemons[2].wait_exit(Duration::from_secs(10));
    h1.undrop_to(hw);
    hw.undrop_to(h1);
    // node1's repmgrd asks the witness's server, finds no repmgrd there,
    // and counts it as a voter without one.
    if let Err(e) = holds_for(Duration::from_secs(15), STEP, || fenced_or_down(n1)) {
        panic!(
            "the old primary unfenced after a heal to a witness without repmgrd ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        is_primary(n2),
        "node2 is no longer primary\n{}",
        tails(&daemons)
    );
    checker.finish();
    drop(daemons);
    drop(w);
}

/// Holds for several failure windows (each 6 s at the earliest, ~15 s with
/// the connect timeouts against a cut host) that `n1` stays the one
/// writable primary and `n2` a standby.
fn roles_hold(n1: &Node, n2: &Node, period: Duration) -> Result<(), String> {
    holds_for(period, STEP, || {
        is_primary(n1) && !fenced_or_down(n1) && !is_primary(n2)
    })
}

/// Cutting only the primary–witness link: the standby still streams from
/// the primary and has no reason to stand; the primary keeps 2 of 3
/// voters (itself and the standby), so its lease holds and it is not
/// fenced: writes go on. After the heal the witness's repmgrd is back
/// with its heartbeats.
#[test]
fn cutting_only_the_primary_witness_link_promotes_nobody_and_fences_nobody() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    wait_heartbeats(n1, 3);
    let checker = Checker::start(n1, &[n1, n2]);
    let (h1, hw) = (n1.host(), w.host());
    h1.drop_to(hw);
    hw.drop_to(h1);
    daemons[2].wait_for_output("unable to connect to the primary", Duration::from_secs(60));
    // The witness gave up on the primary; the primary's heartbeats to it
    // fail. Three failure windows and more.
    if let Err(e) = roles_hold(n1, n2, Duration::from_secs(30)) {
        panic!(
            "with only the primary-witness link cut, the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    // Writes go on, plainly (no override of the read-only default).
    n1.pg
        .execute("INSERT INTO t (at) VALUES (clock_timestamp())");
    let held = Instant::now();
    h1.undrop_to(hw);
    hw.undrop_to(h1);
    wait_heartbeats(n1, 3);
    if let Err(e) = roles_hold(n1, n2, Duration::from_secs(5)) {
        panic!(
            "after the heal of the primary-witness link, the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        crate::fixture::streams_from(n1, "node2"),
        "node2 no longer streams from node1\n{}",
        tails(&daemons)
    );
    let r = checker.finish();
    assert_kept_writing(&r, held, &daemons);
    assert!(
        promotions_logged(&daemons).is_empty(),
        "{:?}",
        promotions_logged(&daemons)
    );
    drop(daemons);
    drop(w);
}

/// Cutting only the standby–witness link: both still see the primary,
/// which keeps all 3 voters' heartbeats; nobody stands, nobody is fenced,
/// and the heal changes nothing.
#[test]
fn cutting_only_the_standby_witness_link_changes_nothing() {
    let (c, mut daemons) = cluster(1, safe);
    let (w, dw) = add_witness(&c, &safe(3));
    daemons.push(dw);
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    wait_heartbeats(n1, 3);
    let checker = Checker::start(n1, &[n1, n2]);
    let (h2, hw) = (n2.host(), w.host());
    h2.drop_to(hw);
    hw.drop_to(h2);
    // Nothing to wait for: no repmgrd loses its primary. Three failure
    // windows and more.
    if let Err(e) = roles_hold(n1, n2, Duration::from_secs(30)) {
        panic!(
            "with only the standby-witness link cut, the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    n1.pg
        .execute("INSERT INTO t (at) VALUES (clock_timestamp())");
    let held = Instant::now();
    h2.undrop_to(hw);
    hw.undrop_to(h2);
    wait_heartbeats(n1, 3);
    if let Err(e) = roles_hold(n1, n2, Duration::from_secs(5)) {
        panic!(
            "after the heal of the standby-witness link, the roles changed ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        crate::fixture::streams_from(n1, "node2"),
        "node2 no longer streams from node1\n{}",
        tails(&daemons)
    );
    let r = checker.finish();
    assert_kept_writing(&r, held, &daemons);
    assert!(
        promotions_logged(&daemons).is_empty(),
        "{:?}",
        promotions_logged(&daemons)
    );
    drop(daemons);
    drop(w);
}

/// The checker saw node1 take writes up to the end of the cut (`held`)
/// and past it, and no standby any.
#[track_caller]
fn assert_kept_writing(r: &CheckerReport, held: Instant, daemons: &[Daemon]) {
    assert!(
        r.last_accepted.get("node1").is_some_and(|t| *t > held),
        "the checker saw node1 take no write after the cut ended\n{}",
        tails(daemons)
    );
    let others: Vec<&String> = r.first_accepted.keys().filter(|n| *n != "node1").collect();
    assert!(
        others.is_empty(),
        "the checker saw standbys take writes: {others:?}\n{}",
        tails(daemons)
    );
}

/// NO SPLIT BRAIN rule 8: with every standby on `failover=manual` there is
/// no automatic candidate, so the primary does not fence itself for want
/// of a majority (as in repmgr 5). Cut off from everyone, it keeps taking
/// writes for several lease times (6 s each), and nobody is promoted.
#[test]
fn a_primary_without_an_automatic_candidate_is_never_fenced_when_cut_off() {
    let manual = |id: i32| {
        if id == 1 {
            safe(id)
        } else {
            safe(id).replace("failover=automatic", "failover=manual")
        }
    };
    let (c, daemons) = cluster(2, manual);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    daemons[0].wait_for_output(
        "no automatic failover candidate is registered: this primary does not fence itself",
        Duration::from_secs(60),
    );
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.host().cut();
    if let Err(e) = holds_for(Duration::from_secs(30), STEP, || {
        is_primary(n1) && !fenced_or_down(n1) && !is_primary(n2) && !is_primary(n3)
    }) {
        panic!(
            "a primary with no automatic candidate, cut off, was fenced or replaced ({e})\n{}",
            tails(&daemons)
        );
    }
    n1.pg
        .execute("INSERT INTO t (at) VALUES (clock_timestamp())");
    let held = Instant::now();
    n1.host().heal();
    for s in ["node2", "node3"] {
        poll_until(
            Duration::from_secs(60),
            &format!("{s} streams again"),
            || crate::fixture::streams_from(n1, s),
        );
    }
    let r = checker.finish();
    assert_kept_writing(&r, held, &daemons);
    assert!(
        !daemons[0].output().contains("fenced: "),
        "node1's repmgrd fenced its server:\n{}",
        daemons[0].output_tail(40)
    );
    assert!(
        promotions_logged(&daemons).is_empty(),
        "{:?}",
        promotions_logged(&daemons)
    );
    drop(daemons);
}
