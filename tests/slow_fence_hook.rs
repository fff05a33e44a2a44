//! A slow `fence_command` stays off the decision path (issue 11, man
//! repmgrd.8 NO SPLIT BRAIN rule 4 and "Child processes"): the isolated
//! primary test of tests/partition.rs with a hook that takes far longer
//! than the failover. Its own file: tests/partition.rs is past the size of
//! one job.
//!
//! The hook records each run (its node, its event, when it started) and
//! then waits 90 s, or until the test lets it go. Were it on the decision
//! path, the read-only step's hook would hold back the stop step, and the
//! cut-off primary would take writes (the checker's override the read-only
//! default) beside the new primary.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{pid_alive, poll_until, try_poll_until, user_tempdir, write_user_file};
use crate::partition::{
    assert_one_handover, cluster, fenced_or_down, is_primary, safe, secs, tails, Checker,
};

/// The hook: one line when it starts (with its pid), one if it ends by
/// itself. (A line from a TERM trap would race the KILL that follows the
/// TERM as soon as `sh -c` is gone.)
const HOOK: &str = "d=$(dirname \"$0\")\n\
    echo \"start $1 $2 $(date +%s.%N) $$\" >> \"$d/ran\"\n\
    i=0\n\
    while [ ! -e \"$d/release\" ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done\n\
    echo \"done $1 $2 $(date +%s.%N) $$\" >> \"$d/ran\"\n";

/// What node1's repmgrd logs when it stops a hook at its deadline.
const STOPPED: &str = "fence_command did not finish within 60 s and was stopped";

/// The hook's record lines starting with `what` ("start", "done") for
/// node `id`'s `event`: when (seconds since the epoch) and its pid.
fn records(dir: &Path, what: &str, id: i32, event: &str) -> Vec<(f64, i32)> {
    let text = std::fs::read_to_string(dir.join("ran")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [w, n, e, t, pid] if *w == what && *n == id.to_string() && *e == event => {
                    Some((t.parse().ok()?, pid.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Test 1 of tests/partition.rs with a `fence_command` that sleeps far
/// longer than the failover takes: the cut-off primary still stops taking
/// writes before a standby is promoted, a standby is promoted within the
/// usual bound, the hook ran for both fence steps (the second while the
/// first still ran), and repmgrd stops each at its 60 s deadline.
#[test]
fn a_slow_fence_command_does_not_delay_the_fence_of_an_isolated_primary() {
    let hooks = user_tempdir();
    let dir = hooks.path().to_path_buf();
    write_user_file(&dir.join("fence.sh"), HOOK);
    let conf = format!("fence_command='/bin/sh {}/fence.sh %n %e'", dir.display());
    let (c, daemons) = cluster(2, |id| format!("{}\n{conf}", safe(id)));
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let checker = Checker::start(n1, &[n1, n2, n3]);

    let cut = Instant::now();
    n1.host().cut();
    poll_until(Duration::from_secs(60), "a standby promoted", || {
        is_primary(n2) || is_primary(n3)
    });
    let promoted = cut.elapsed();
    let new = if is_primary(n2) { n2 } else { n3 };
    assert!(
        fenced_or_down(n1),
        "the isolated primary node1 is neither fenced nor stopped after the promotion of {}\n{}",
        new.pg.name,
        tails(&daemons)
    );
    // Both steps (read-only, then stopped) ran the hook, the second while
    // the first still waited: neither held back the next decision.
    let starts = records(&dir, "start", 1, "repmgrd_fence");
    assert!(
        starts.len() >= 2,
        "node1's fence_command started {} time(s) by the promotion, not once per fence step\n{}",
        starts.len(),
        tails(&daemons)
    );
    assert!(
        records(&dir, "done", 1, "repmgrd_fence").is_empty(),
        "a fence_command ended before the promotion"
    );
    assert!(
        daemons[0].output().contains("fenced: server stopped"),
        "node1's repmgrd did not stop its server:\n{}",
        daemons[0].output_tail(40)
    );

    // The deadline: each stopped (TERM, then KILL, to its process group)
    // 60 s after it started, not let run its 90 s.
    let stopped = || daemons[0].output().matches(STOPPED).count();
    let mut first_stop = None;
    let all_stopped = try_poll_until(Duration::from_secs(90), || {
        if first_stop.is_none() && stopped() > 0 {
            first_stop = Some(epoch_now());
        }
        stopped() >= starts.len()
    });
    let report = checker.finish();
    let ran = std::fs::read_to_string(dir.join("ran")).unwrap_or_default();
    let done = records(&dir, "done", 1, "repmgrd_fence");
    // Let any hook still waiting go.
    let _ = std::fs::write(dir.join("release"), "");
    assert!(
        all_stopped,
        "node1's repmgrd stopped {} of its {} fence_command runs by their deadline; their record:\n{ran}\n{}",
        stopped(),
        starts.len(),
        daemons[0].output_tail(40)
    );
    assert!(
        done.is_empty(),
        "a fence_command ran to its end; the record:\n{ran}"
    );
    let ran_for = first_stop.unwrap_or(0.0) - starts[0].0;
    assert!(
        (59.0..70.0).contains(&ran_for),
        "the first fence_command was stopped after {ran_for:.1} s, not at its 60 s deadline"
    );
    for (_, pid) in &starts {
        poll_until(
            Duration::from_secs(5),
            &format!("fence_command (pid {pid}) gone"),
            || !pid_alive(*pid),
        );
    }
    let (last_old, first_new) = assert_one_handover(&daemons, &report, "node1", &new.pg.name);
    eprintln!(
        "[slow_fence_hook] cut at +0: node1's last write +{}, {} promoted by +{} (first write +{}); hooks: {ran}",
        last_old.map_or("-".into(), |t| secs(t.saturating_duration_since(cut))),
        new.pg.name,
        secs(promoted),
        secs(first_new.saturating_duration_since(cut)),
    );
    drop(daemons);
}
