//! The deterministic simulation of the whole protocol (`make sim`).
//!
//! Every node runs the real decision core (`repmgr::daemon::core`); the
//! model plays the servers, the network and the driver. Each schedule is a
//! random cluster (2 nodes + witness, 3 nodes, 5 nodes with and without a
//! witness), random per-node settings, clock offsets and drift, and random
//! faults: crashes of servers and repmgrds, pauses of whole hosts, of the
//! postmaster only or of the daemon only, cuts of one link one way or both,
//! partitions, delays. The invariants, checked as it runs:
//!
//! - (a) at most one node takes writes at a time, but for a primary whose
//!   repmgrd or server just came back (a paused host resuming): it stops
//!   within the documented bound;
//! - (b) with synchronous replication, no acknowledged commit is missing
//!   from a newly promoted primary;
//! - (c) once every fault is healed, exactly one primary remains;
//! - (d) no candidate is promoted while a visible standby has WAL it lacks.
//!
//! `SIM_SEEDS=N` (default 2000) sets how many schedules, `SIM_SEED=S`
//! replays one (and prints its trace). The last line is
//! `simulation: N schedules, S steps, V violations`; the exit status is
//! non-zero when V > 0, after the failing seed and the trace of the first
//! violation.

mod model;
mod schedule;
mod world;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use repmgr::daemon::core::Safety;

struct Outcome {
    steps: u64,
    violations: Vec<String>,
    trace: Vec<String>,
}

fn run_one(seed: u64, safety: Safety) -> Outcome {
    let mut s = schedule::build(seed, safety);
    s.world.log(format!(
        "schedule {seed}: {:?}, sync {:?}",
        s.shape, s.world.sync
    ));
    s.world.run(s.end);
    if s.world.violations.is_empty() {
        s.world.check_exactly_one_primary(s.stable_at);
    }
    Outcome {
        steps: s.world.steps,
        violations: s.world.violations.clone(),
        trace: std::mem::take(&mut s.world.trace),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `count` schedules from `first` on every core; returns (steps,
/// violations, the first failing seed with its outcome).
fn run_many(
    first: u64,
    count: u64,
    safety: Safety,
    stop_early: bool,
) -> (u64, usize, Option<(u64, Outcome)>) {
    let next = AtomicU64::new(first);
    let steps = AtomicU64::new(0);
    let bad = AtomicUsize::new(0);
    let failed: Mutex<Option<(u64, Outcome)>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| loop {
                if stop_early && bad.load(Ordering::Relaxed) > 0 {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    return;
                }
                let o = run_one(seed, safety);
                steps.fetch_add(o.steps, Ordering::Relaxed);
                if !o.violations.is_empty() {
                    bad.fetch_add(1, Ordering::Relaxed);
                    let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                    if f.as_ref().is_none_or(|(s, _)| seed < *s) {
                        *f = Some((seed, o));
                    }
                }
            });
        }
    });
    let f = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    (steps.into_inner(), bad.into_inner(), f)
}

fn print_failure(seed: u64, o: &Outcome, tail: usize) {
    eprintln!("first violation in seed {seed} (replay: SIM_SEED={seed} make sim):");
    for v in &o.violations {
        eprintln!("  {v}");
    }
    eprintln!("--- trace (last {tail} lines) ---");
    let start = o.trace.len().saturating_sub(tail);
    for l in &o.trace[start..] {
        eprintln!("{l}");
    }
}

/// A safety rule the self-test switches off: what it is, whether the
/// schedules must expose its absence, and the switch. Three rules are
/// defences in depth that the schedules do not expose alone: the
/// candidate's own wait for the old primary's lease covers a voter that
/// breaks its promise; votes are counted against every voter whatever the
/// election's count says; and the WAL rule (the most advanced visible
/// candidate wins) covers most of what the sync rule does.
struct Rule {
    what: &'static str,
    must_bite: bool,
    off: fn(&mut Safety),
}

const RULES: &[Rule] = &[
    Rule {
        what: "the primary's hard fence (stop before the lease ends)",
        must_bite: true,
        off: |s| s.hard_fence = false,
    },
    Rule {
        what: "voters keeping their promises to a primary",
        must_bite: false,
        off: |s| s.voters_keep_promises = false,
    },
    Rule {
        what: "counting the failed primary in the majority",
        must_bite: false,
        off: |s| s.count_failed_primary = false,
    },
    Rule {
        what: "the sync-aware election",
        must_bite: false,
        off: |s| s.sync_aware = false,
    },
    Rule {
        what: "the supersession check",
        must_bite: true,
        off: |s| s.supersession_check = false,
    },
];

/// The checker bites: with each safety rule off in turn, it finds a
/// violation. Rules whose absence the schedules do not expose are
/// reported (their safety then rests on another rule too).
fn self_test() -> bool {
    let mut ok = true;
    for rule in RULES {
        let what = rule.what;
        let mut off = Safety::default();
        (rule.off)(&mut off);
        // A rule that must bite shows it within a few schedules; the
        // others get a shorter look (make test runs this in a debug build).
        let count = if rule.must_bite { 600 } else { 200 };
        let (_, bad, first) = run_many(1, count, off, true);
        match first {
            Some((seed, o)) if bad > 0 => {
                let v = o.violations.first().map_or("", String::as_str);
                eprintln!("self-test: without {what} the checker finds a violation (seed {seed}): {v}");
            }
            _ if rule.must_bite => {
                eprintln!("self-test: without {what}, {count} schedules found no violation: the checker is blind");
                ok = false;
            }
            _ => eprintln!("self-test: without {what}, {count} schedules found no violation (another rule covers it)"),
        }
    }
    ok
}

fn main() -> ExitCode {
    if let Some(seed) = env_u64("SIM_SEED") {
        let o = run_one(seed, Safety::default());
        for l in &o.trace {
            println!("{l}");
        }
        println!(
            "simulation: 1 schedules, {} steps, {} violations",
            o.steps,
            usize::from(!o.violations.is_empty())
        );
        if !o.violations.is_empty() {
            print_failure(seed, &o, 60);
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(2000);
    if std::env::var("SIM_SELF_TEST").map_or(true, |v| v != "0") && !self_test() {
        return ExitCode::FAILURE;
    }
    let (steps, bad, failed) = run_many(1, count, Safety::default(), false);
    if let Some((seed, o)) = &failed {
        print_failure(*seed, o, 80);
    }
    println!("simulation: {count} schedules, {steps} steps, {bad} violations");
    if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
