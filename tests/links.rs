//! One link cut, not a whole host (issue 11): primary, standby and
//! witness each on a host of their own, single links cut with
//! [`Host::drop_to`] in both directions, and healed one at a time. The
//! partition tests' [`Checker`] runs beside each (its writes override the
//! read-only default, as a client can).

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{holds_for, poll_until};
use crate::partition::{add_witness, cluster, fenced_or_down, is_primary, safe, tails, Checker};

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
