//! A fence no client can bypass (issue 11): every route around the
//! read-only fence, tried against a fenced primary (cut off: repmgrd makes
//! it read-only, then stops it) and against a superseded one (its whole
//! host paused through a failover, then resumed; and restarted by hand).
//!
//! Each route runs in a thread of its own from before the fault (a
//! connection that hangs on a paused server holds up only its own route)
//! and records when each write of its was acknowledged; the preconditions
//! (roles, settings, prepared transactions, a subscription) are in place
//! before the fault. Every route is judged, and every one that got through
//! is named, in one assertion.
//!
//! What repmgrd.8 promises (NO SPLIT BRAIN, rules 4 and 6, and Limits), and
//! so what is asserted:
//! - a cut-off primary acknowledges no write by any route once a standby
//!   can have been promoted: it is stopped before its lease ends;
//! - sessions that override nothing write no more once the read-only step
//!   is in place; the other routes may until the stop (they are listed);
//! - a paused primary that resumes after a failover acknowledges writes
//!   until its repmgrd fences it, in its first cycle, and none after;
//!   restarted by hand it is a standby;
//! - `node rejoin` leaves no fence setting behind: a later promotion of the
//!   node gives a writable primary.

mod routes;

use std::time::{Duration, Instant};

use routes::*;

use crate::fixture::{auto_conf_fence, streams_from, Node};
use crate::frozen::FrozenDaemon;
use crate::harness::{poll_until, Daemon};
use crate::partition::{is_primary, tails, Checker};

const MINUTE: Duration = Duration::from_secs(60);

/// node1, restarted by hand once its repmgrd prepared it as a standby
/// (standby.signal): in recovery, and every route refused.
fn restarted_by_hand_refuses_every_route(n1: &Node, daemons: &[Daemon]) {
    poll_until(
        MINUTE,
        "node1's repmgrd prepares the data directory (standby.signal)",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    assert_eq!(
        auto_conf_fence(n1),
        None,
        "prepared as a standby, node1 keeps the fence setting"
    );
    n1.pg.start();
    assert!(
        n1.pg.is_in_recovery(),
        "node1 restarted by hand as a primary\n{}",
        tails(daemons)
    );
    let through = try_every_route_once(n1);
    assert!(
        through.is_empty(),
        "node1, restarted by hand as a standby, acknowledged writes by: {through:?}"
    );
}

/// Each route tried once, in turn: the routes that got a write in.
fn try_every_route_once(n: &Node) -> Vec<&'static str> {
    let t = Target::of(&n.pg);
    ROUTES
        .iter()
        .filter(|r| {
            let (mut conn, mut k) = (None, 0);
            attempt(**r, &t, &mut conn, &mut k).is_ok()
        })
        .map(|r| r.name())
        .collect()
}

/// Waits until every route got a write in on node1 (a route that never
/// worked would prove nothing).
fn every_route_writes(routes: &Routes) {
    poll_until(
        MINUTE,
        "every route writes on node1 before the fault",
        || routes.snapshot().iter().all(|(_, l)| !l.acks.is_empty()),
    );
}

/// The primary's host is cut off: it goes read-only, then is stopped, and
/// a standby is promoted. No route gets a write acknowledged once the new
/// primary takes writes; the plain ones none once they were refused as
/// read-only. After the heal it is superseded: restarted by hand it is a
/// standby; `node rejoin` leaves no fence setting, and promoted later it
/// takes writes.
#[test]
fn no_route_gets_a_write_past_the_fence_of_a_cut_off_primary() {
    let (c, daemons, publisher) = setup();
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    let routes = Routes::start(n1);
    every_route_writes(&routes);

    let cut = Instant::now();
    let cut_at = now_on(n1);
    n1.host().cut();
    daemons[0].wait_for_output("fenced: read-only", MINUTE);
    let read_only = Instant::now();
    let read_only_at = now_on(n1);
    daemons[0].wait_for_output("fenced: server stopped", MINUTE);
    let stopped = Instant::now();
    poll_until(MINUTE, "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let new = if is_primary(n2) { n2 } else { n3 };
    assert!(
        !n1.pg.is_running(),
        "node1's server still runs after {} was promoted\n{}",
        new.pg.name,
        tails(&daemons)
    );
    // The checker's writes land on the new primary; the routes go on
    // trying node1 a little longer. Its first is the first the new primary
    // wrote itself (by its port): a checker write node1 took while the cut
    // was being made may have replicated, and is no sign of the promotion.
    let first_new_at = || {
        new.pg
            .try_query_one_string(&format!(
                "SELECT min(at)::text FROM split_brain_probe WHERE at > '{cut_at}' AND port = {}",
                new.pg.port
            ))
            .ok()
            .flatten()
    };
    poll_until(MINUTE, "the new primary takes the checker's writes", || {
        first_new_at().is_some()
    });
    std::thread::sleep(Duration::from_secs(1));
    let logs = routes.finish();
    let report = checker.finish();
    let first_new = report.first_accepted[&new.pg.name];
    let first_new_at = first_new_at().unwrap_or_default();

    let phases = [
        ("before the cut", cut),
        ("cut", cut),
        ("read-only", read_only),
        ("stopped", stopped),
        ("promoted", first_new),
    ];
    let table = table(&logs, &phases);
    eprintln!(
        "[fence_routes] cut-off primary: read-only {} after the cut, stopped {} after, {} writable {} after; writes acknowledged on node1 per phase:\n{table}",
        secs(read_only - cut),
        secs(stopped - cut),
        new.pg.name,
        secs(first_new.saturating_duration_since(cut))
    );
    let mut through = Vec::new();
    for (r, l) in &logs {
        let late = l.acks_after(first_new);
        if !late.is_empty() {
            through.push(format!(
                "{}: {} write(s) after {} took writes",
                r.name(),
                late.len(),
                new.pg.name
            ));
        }
        match (r.plain(), l.first_read_only) {
            (true, Some(ro)) if !l.acks_after(ro).is_empty() => through.push(format!(
                "{}: {} write(s) after it was refused as read-only",
                r.name(),
                l.acks_after(ro).len()
            )),
            (true, None) => through.push(format!(
                "{}: never refused as read-only (last error: {:?})",
                r.name(),
                l.last_error
            )),
            _ => {}
        }
    }

    // After the heal node1 learns that it was superseded.
    n1.host().heal();
    restarted_by_hand_refuses_every_route(n1, &daemons);
    // 8: the subscription's apply worker, judged by what it applied, on
    // the server clock.
    let worker_read_only = worker_applied_after(n1, &read_only_at);
    eprintln!(
        "[fence_routes] 8 logical replication apply worker: applied a row after the read-only step: {}",
        worker_read_only.as_deref().unwrap_or("no")
    );
    if let Some(at) = worker_applied_after(n1, &first_new_at) {
        through.push(format!(
            "8 logical replication apply worker: applied a row at {at}, after {} took writes (at {first_new_at})",
            new.pg.name
        ));
    }
    assert!(
        through.is_empty(),
        "routes that got a write past the fence of the cut-off node1:\n{}\n{table}\n{}",
        through.join("\n"),
        tails(&daemons)
    );

    // 10: node rejoin leaves no fence setting behind.
    n1.pg.stop();
    let archive = n1.pg.path("archive");
    std::fs::create_dir_all(&archive).unwrap();
    crate::harness::chown_to_user(&archive);
    n1.cmd(&[
        "node",
        "rejoin",
        "-d",
        &new.pg.conninfo(),
        "--force-rewind",
        "--config-files=harness.conf",
        &format!("--config-archive-dir={}", archive.display()),
    ])
    .run()
    .assert_success();
    poll_until(MINUTE, "node1 streams from the new primary", || {
        streams_from(new, "node1")
    });
    assert_eq!(auto_conf_fence(n1), None, "node rejoin kept the fence");
    drop(daemons);
    n1.pg.execute("SELECT pg_promote()");
    let through = try_every_route_once(n1);
    assert!(
        through.contains(&Route::Reconnecting.name()),
        "node1, rejoined and promoted, refuses a plain write (routes that wrote: {through:?})"
    );
    drop(publisher);
}

/// Every process of the primary's host (its server and its repmgrd) paused
/// until a standby has been promoted, then resumed: sessions and requests
/// from before the pause may still be acknowledged, until node1's repmgrd
/// fences it in its first cycle; none after. Restarted by hand, it is a
/// standby.
#[test]
fn no_route_gets_a_write_into_a_resumed_superseded_primary_once_repmgrd_fenced_it() {
    let (c, daemons, publisher) = setup();
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let routes = Routes::start(n1);
    every_route_writes(&routes);

    let paused = Instant::now();
    let daemon = FrozenDaemon::new(&daemons[0]);
    let server = n1.pg.freeze();
    poll_until(Duration::from_secs(90), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let new = if is_primary(n2) { n2 } else { n3 };
    poll_until(MINUTE, "the new primary takes a write", || {
        new.pg
            .try_execute("CREATE TABLE IF NOT EXISTS after_promotion (x int)")
            .is_ok()
    });
    let promoted = Instant::now();
    let resumed = Instant::now();
    drop(server);
    drop(daemon);
    let fence_lines = ["fenced: server stopped", "fenced: demoted"];
    poll_until(MINUTE, "node1's repmgrd fences it after the resume", || {
        let out = daemons[0].output();
        fence_lines.iter().any(|l| out.contains(l))
    });
    let fenced = Instant::now();
    let fenced_at = now_on(new);
    std::thread::sleep(Duration::from_secs(1));
    let logs = routes.finish();

    let phases = [
        ("before the pause", paused),
        ("paused", paused),
        ("resumed", resumed),
        ("fenced", fenced),
    ];
    let table = table(&logs, &phases);
    let window = logs
        .iter()
        .flat_map(|(_, l)| l.acks_after(resumed))
        .max()
        .map_or("none".to_string(), |t| secs(t - resumed));
    eprintln!(
        "[fence_routes] resumed superseded primary: {} promoted {} after the pause; node1 fenced {} after the resume (seen); last write acknowledged after the resume: {window}; per phase:\n{table}",
        new.pg.name,
        secs(promoted - paused),
        secs(fenced - resumed)
    );
    let mut through: Vec<String> = logs
        .iter()
        .filter(|(_, l)| !l.acks_after(fenced).is_empty())
        .map(|(r, l)| {
            format!(
                "{}: {} write(s) after node1's repmgrd fenced it",
                r.name(),
                l.acks_after(fenced).len()
            )
        })
        .collect();
    restarted_by_hand_refuses_every_route(n1, &daemons);
    if let Some(at) = worker_applied_after(n1, &fenced_at) {
        through.push(format!(
            "8 logical replication apply worker: applied a row at {at}, after the fence (seen at {fenced_at})"
        ));
    }
    assert!(
        through.is_empty(),
        "routes that got a write into the superseded node1 after its fence:\n{}\n{table}\n{}",
        through.join("\n"),
        tails(&daemons)
    );
    drop(daemons);
    drop(publisher);
}
