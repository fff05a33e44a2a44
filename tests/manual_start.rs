//! A fenced primary's server started by hand while its host is still cut
//! off (issue 11: the fence state is read each cycle, so any restart
//! re-applies it), on real servers, each node on a host of its own.
//!
//! Cut off, the primary's repmgrd makes its server read-only, then stops it
//! before its lease ends, and a standby is promoted. An operator who then
//! starts the server by hand brings back a primary that knows of no newer
//! term (it cannot reach anyone): only repmgrd's own record of the fence
//! (core/primary.rs `tick`; simulation class ManualStart, switch
//! `refence_on_start`) makes it stop the server again.

use std::time::{Duration, Instant};

use crate::fixture::auto_conf_fence;
use crate::harness::poll_until;
use crate::partition::{cluster, is_primary, safe, secs, tails, Checker, Writer};

const MINUTE: Duration = Duration::from_secs(60);

/// What node1's repmgrd logs when it stops its server for its lease.
const STOPS: &str = "stopping the server before another node can be promoted";

/// node1 cut off, stopped by its fence, a standby promoted; node1's server
/// started by hand while still cut off is stopped again by its repmgrd, and
/// a client writing on it all along (over the unix socket, no override of
/// the read-only default the fence left in postgresql.auto.conf) commits
/// nothing. Once the link is back it is prepared as a standby.
#[test]
fn a_fenced_primary_started_by_hand_while_still_cut_off_is_stopped_again() {
    let (c, daemons) = cluster(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    n1.host().cut();
    poll_until(MINUTE, "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    assert!(
        !n1.pg.is_running(),
        "node1's server still runs after a standby was promoted\n{}",
        tails(&daemons)
    );
    // The checker's writes override the read-only default, as a client can:
    // a server started by hand takes those until repmgrd's next cycle
    // (repmgrd.8, rule 4), so it covers the cut and the promotion only.
    checker.finish();

    let stops_before = daemons[0].output().matches(STOPS).count();
    let writer = Writer::start(n1);
    let start = n1.pg.try_start();
    let started = Instant::now();
    poll_until(
        MINUTE,
        "node1's repmgrd stops the server started by hand",
        || daemons[0].output().matches(STOPS).count() > stops_before && !n1.pg.is_running(),
    );
    eprintln!(
        "[manual_start] started by hand ({start:?}), stopped again after {}",
        secs(started.elapsed())
    );
    let w = writer.finish();
    assert_eq!(
        w.commits,
        0,
        "node1, started by hand while fenced, committed {} plain write(s) (fence setting in postgresql.auto.conf: {:?})\n{}",
        w.commits,
        auto_conf_fence(n1),
        tails(&daemons)
    );

    n1.host().heal();
    poll_until(
        MINUTE,
        "node1's repmgrd prepares the data directory (standby.signal) once it sees the new primary",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    assert!(
        !n1.pg.is_running(),
        "node1's server started again by its repmgrd"
    );
    drop(daemons);
}
