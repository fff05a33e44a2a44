//! A primary whose server hangs while its own fence job runs (issue 11),
//! on real servers: every node on its own host, the partition tests'
//! [`Checker`] beside it (its writes override the read-only default, as a
//! client can).
//!
//! The primary's host is cut off, so its lease runs out and its repmgrd
//! starts fencing it (the read-only step first). The moment it decides to,
//! its server (postmaster, then every process the postmaster has) is
//! stopped with SIGSTOP: the fence job meets a server that answers nothing.
//! The rule (src/daemon/core/primary/hung.rs): a fence job that fails
//! while the server answers nothing leaves it down, not fenced, and the
//! kill comes a stop margin before the lease ends, before any standby can
//! be promoted. (Before, a hung server whose fence jobs failed and were
//! retried back to back was never seen down, so never killed: resumed, it
//! took writes beside the new primary; simulation class HungPrimary.)

use std::time::{Duration, Instant};

use crate::fixture::{streams_from, Node};
use crate::harness::pg::Frozen;
use crate::harness::{holds_for, pid_alive, poll_until, Daemon};
use crate::partition::{
    assert_one_handover, cluster_since, fenced_or_down, safe, secs, tails, Checker,
};
use crate::races::{past_quarantine, writable};

/// How often a "nothing happens" condition is checked while it must hold.
const STEP: Duration = Duration::from_millis(100);

/// What node1's repmgrd logs as it decides the read-only fence of a
/// cut-off primary (the job starts right after the line).
const FENCE_DECIDED: &str = "fencing this primary before another node can be promoted";

/// What it logs once it killed the hung server.
const KILLED: &str = "its server answered nothing and was killed";

/// Stops every process of the server: the postmaster first, and once it
/// is stopped (it then starts no process), every process it has, the
/// fence job's own session included. (Listing the children while the
/// postmaster was still in fork() missed the session being started.)
fn freeze_whole(n: &Node, pm: i32) -> (Frozen, Frozen) {
    let first = Frozen::pids(vec![pm]);
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pm}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('T')))
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    (first, n.pg.freeze())
}

/// Waits, up to 60 s after `cut`, for one of `standbys` to take writes,
/// noting meanwhile when node1's repmgrd first logged `line`: (when it
/// logged it, the standby that took writes), each None if not seen.
fn until_promoted<'a>(
    daemons: &[Daemon],
    cut: Instant,
    line: &str,
    standbys: [&'a Node; 2],
) -> (Option<Duration>, Option<&'a Node>) {
    let (mut logged, mut new) = (None, None);
    let deadline = cut + Duration::from_secs(60);
    while new.is_none() && Instant::now() < deadline {
        if logged.is_none() && daemons[0].output().contains(line) {
            logged = Some(cut.elapsed());
        }
        new = standbys.into_iter().find(|n| writable(n));
        std::thread::sleep(Duration::from_millis(20));
    }
    (logged, new)
}

/// The primary cut off, its server hung (SIGSTOP) the moment its fence
/// job starts: its repmgrd kills the server before a standby is promoted;
/// resumed (SIGCONT) and healed, it takes no write beside the new primary
/// and is prepared to come back as a standby.
#[test]
fn a_primary_hung_during_its_own_fence_job_is_killed_before_a_promotion() {
    hung_during_the_fence(Duration::ZERO);
}

/// The same, the server hung 25 ms into the job: its first steps done
/// (ALTER SYSTEM, the reload), it waits for the setting to be live on a
/// new session that gets no answer. (That wait went on for its 5 s, and
/// ending the sessions for another deadline, while the lease ran out: the
/// kill came after the promotion.)
#[test]
fn a_primary_hung_midway_through_its_own_fence_job_is_killed_before_a_promotion() {
    hung_during_the_fence(Duration::from_millis(25));
}

/// The scenario, the server hung `into_job` after the fence was decided.
fn hung_during_the_fence(into_job: Duration) {
    let (c, daemons, started) = cluster_since(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    // The probe table on the standbys before the cut.
    crate::fixture::wait_all_replayed(&c.nodes);
    let pm = n1
        .pg
        .postmaster_pid()
        .unwrap_or_else(|| panic!("node1 has no postmaster.pid\n{}", tails(&daemons)));

    let cut = Instant::now();
    n1.host().cut();
    // Watched closely: the job's first connection follows the line at once.
    let deadline = cut + Duration::from_secs(30);
    while !daemons[0].output().contains(FENCE_DECIDED) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(into_job);
    let frozen = freeze_whole(n1, pm);
    let hung = cut.elapsed();
    let at_freeze = daemons[0].output();
    assert!(
        at_freeze.contains(FENCE_DECIDED),
        "node1's repmgrd never decided to fence the cut-off primary\n{}",
        tails(&daemons)
    );
    // Whether the read-only step was done before the freeze (then the
    // server hung after its fence, not during it).
    let done_before = at_freeze.contains("fenced: read-only");

    // The kill, before any standby is promoted.
    let (killed, new) = until_promoted(&daemons, cut, KILLED, [n2, n3]);
    let promoted = cut.elapsed();
    let Some(new) = new else {
        panic!(
            "no standby promoted while node1 was cut off and hung\n{}",
            tails(&daemons)
        );
    };
    let Some(killed) = killed else {
        panic!(
            "node1's hung server (postmaster {pm}, alive: {}) was not killed before {} was promoted\n{}",
            pid_alive(pm),
            new.pg.name,
            tails(&daemons)
        );
    };
    assert!(
        !pid_alive(pm),
        "node1's postmaster {pm} lives on after the kill"
    );
    let other = if new.pg.name == n2.pg.name { n3 } else { n2 };
    poll_until(
        Duration::from_secs(60),
        &format!("{} follows {}", other.pg.name, new.pg.name),
        || streams_from(new, &other.pg.name),
    );

    // Resumed (nothing is left to resume) and healed.
    drop(frozen);
    n1.host().heal();
    let back = cut.elapsed();
    if let Err(e) = holds_for(Duration::from_secs(5), STEP, || fenced_or_down(n1)) {
        panic!(
            "the old primary takes writes after the resume and the heal ({e})\n{}",
            tails(&daemons)
        );
    }
    poll_until(
        Duration::from_secs(30),
        "node1 prepared to come back as a standby (standby.signal)",
        || n1.pg.datadir.join("standby.signal").exists(),
    );
    assert!(writable(new), "{} no longer takes writes", new.pg.name);
    assert_one_handover(&daemons, &checker.finish(), "node1", &new.pg.name);
    eprintln!(
        "[hung_fence] cut at +0, server hung ({} ms into the job) at +{} ({} the read-only step), killed at +{}, {} writable at +{}, resumed and healed at +{}",
        into_job.as_millis(),
        secs(hung),
        if done_before { "after" } else { "during" },
        secs(killed),
        new.pg.name,
        secs(promoted),
        secs(back)
    );
    drop(daemons);
}

/// What node1's repmgrd logs as it decides the hard fence (the stop).
const STOP_DECIDED: &str = "stopping the server before another node can be promoted";

/// What it logs when the postmaster did not act on the stop.
const STOP_IGNORED: &str = "did not stop within 0.5 s of an immediate shutdown";

/// The primary cut off and fenced read-only; then its postmaster alone
/// stops (SIGSTOP) before the hard fence, while its backends run on: the
/// checker's session, opened again after the read-only step ended the
/// last one, keeps taking writes that override the read-only default. The
/// stop's signal goes unheeded; node1's repmgrd kills the postmaster and
/// its backends within its grace, before any standby is promoted. (pg_ctl
/// waited 25 s for the stop before: the backends took writes beside the
/// new primary.)
#[test]
fn a_postmaster_that_ignores_the_stop_is_killed_before_a_promotion() {
    let (c, daemons, started) = cluster_since(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    crate::fixture::wait_all_replayed(&c.nodes);
    let pm = n1
        .pg
        .postmaster_pid()
        .unwrap_or_else(|| panic!("node1 has no postmaster.pid\n{}", tails(&daemons)));

    let cut = Instant::now();
    n1.host().cut();
    daemons[0].wait_for_output("fenced: read-only", Duration::from_secs(60));
    // The checker reconnects at once (every 50 ms): its new session is
    // one of the backends that outlive the postmaster's pause.
    std::thread::sleep(Duration::from_millis(300));
    let frozen = Frozen::pids(vec![pm]);
    let paused = cut.elapsed();
    assert!(
        !daemons[0].output().contains(STOP_DECIDED),
        "the hard fence came before the postmaster was paused: the test proves nothing\n{}",
        tails(&daemons)
    );

    let (killed, new) = until_promoted(&daemons, cut, STOP_IGNORED, [n2, n3]);
    let promoted = cut.elapsed();
    let Some(new) = new else {
        panic!(
            "no standby promoted while node1 was cut off\n{}",
            tails(&daemons)
        );
    };
    let Some(killed) = killed else {
        panic!(
            "node1's paused postmaster {pm} (alive: {}) was not killed before {} was promoted\n{}",
            pid_alive(pm),
            new.pg.name,
            tails(&daemons)
        );
    };
    assert!(
        !pid_alive(pm),
        "node1's postmaster {pm} lives on after the kill"
    );
    drop(frozen);
    n1.host().heal();
    assert!(writable(new), "{} no longer takes writes", new.pg.name);
    assert_one_handover(&daemons, &checker.finish(), "node1", &new.pg.name);
    eprintln!(
        "[hung_fence] cut at +0, postmaster paused at +{}, killed at +{}, {} writable at +{}",
        secs(paused),
        secs(killed),
        new.pg.name,
        secs(promoted)
    );
    drop(daemons);
}

/// Only the postmaster hangs (SIGSTOP), not cut off, the default majority
/// quorum: its backends live on (the checker's session on node1, opened
/// before, keeps writing; the walsenders stream), while new connections to
/// node1 get nowhere. The standbys must not fail over: their WAL receivers
/// still hear the primary (core rule receiver_check, simulation class
/// SynOnly) and its repmgrd's heartbeats hold their votes (prevote). The
/// checker, writing on every node all along, must never see a standby take
/// a write; resumed, node1 is still the one writable primary.
#[test]
fn a_hung_postmaster_with_live_backends_under_a_majority_gets_no_second_primary() {
    let (c, daemons, started) = cluster_since(2, safe);
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    past_quarantine(started);
    let checker = Checker::start(n1, &[n1, n2, n3]);
    let on_node1 = format!(
        "SELECT count(*) > 0 FROM split_brain_probe WHERE port = {}",
        n1.pg.port
    );
    poll_until(
        Duration::from_secs(30),
        "the checker's session on node1 writes",
        || {
            n1.pg
                .try_query_one_string(&on_node1)
                .ok()
                .flatten()
                .as_deref()
                == Some("t")
        },
    );
    let pm = n1
        .pg
        .postmaster_pid()
        .unwrap_or_else(|| panic!("node1 has no postmaster.pid\n{}", tails(&daemons)));
    let frozen = Frozen::pids(vec![pm]);
    let hung = Instant::now();
    // Well past the failure window of `safe` (7 attempts 1 s apart) and an
    // election with its re-runs.
    let no_promotion = holds_for(Duration::from_secs(20), STEP, || {
        !writable(n2) && !writable(n3)
    });
    drop(frozen);
    if let Err(e) = no_promotion {
        panic!(
            "a standby was promoted while node1's backends lived ({e})\n{}",
            tails(&daemons)
        );
    }
    assert!(
        writable(n1),
        "node1 does not take writes once its postmaster resumed\n{}",
        tails(&daemons)
    );
    let r = checker.finish();
    let last = r.last_accepted.get(&n1.pg.name).copied();
    assert!(
        last.is_some_and(|t| t > hung + Duration::from_secs(15)),
        "the checker's session on node1 did not write on through the hang (last write: {:?} after the hang): the test proves nothing",
        last.map(|t| secs(t.saturating_duration_since(hung)))
    );
    drop(daemons);
}
