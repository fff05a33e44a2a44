//! The deterministic simulation of the whole protocol (`make sim`).
//!
//! Every node runs the real decision core (`repmgr::daemon::core`); the
//! model plays the servers, the network and the driver. Each schedule is a
//! random cluster (2 nodes + witness, 3 nodes, 5 nodes with and without a
//! witness), random per-node settings, clock offsets and drift, and random
//! faults: crashes of servers and repmgrds, pauses of whole hosts, of the
//! server only or of the daemon only, cuts of one link one way or both,
//! partitions, delays (and, in the targeted classes, dropped SYNs: new
//! connections fail, established ones carry on). One seed in 50 of each
//! targeted class (`classes.rs`) instead puts the cluster where a single
//! safety rule is all that prevents a violation. The invariants, checked
//! as it runs:
//!
//! - (a) at most one node takes writes at a time, but for a primary whose
//!   repmgrd or server just came back (a paused host resuming; not a
//!   server that resumes under a repmgrd that ran throughout): it stops
//!   within the documented bound;
//! - (b) with synchronous replication, no acknowledged commit is missing
//!   from a newly promoted primary;
//! - (c) once every fault is healed, exactly one primary remains;
//! - (d) no candidate is promoted while a visible standby has WAL it
//!   lacks (more of the same history, or any of a newer timeline);
//! - (e) no two nodes are promoted in the same term;
//!
//! and what a targeted class expects of its own schedule (no promotion
//! at all, a standby following the newest primary once the faults are
//! over, an old primary rejoined by the end); and in every schedule, a
//! node whose own fence keeps its server stopped has rejoined, with
//! `auto_rejoin`, once a primary of a higher term takes writes.
//!
//! First a self-test switches each safety rule off in turn (the core's
//! `Safety`) and expects the checker to find a violation: in the seeds of
//! the rule's class, or for a rule the random faults expose, in the first
//! random ones (`SIM_SELF_TEST=0` skips it).
//!
//! `SIM_SEEDS=N` (default 2000) sets how many schedules, `SIM_SEED=S`
//! replays one (and prints its trace), `SIM_OFF=rule` with it replays it
//! with that rule off (as the self-test reports it). The last line is
//! `simulation: N schedules, S steps, V violations`; the exit status is
//! non-zero when V > 0, after the failing seed and the trace of the first
//! violation.

mod classes;
mod model;
mod schedule;
mod world;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use repmgr::daemon::core::Safety;

use schedule::{class_of, Class, CLASS_EVERY, TARGETED};

struct Outcome {
    steps: u64,
    violations: Vec<String>,
    trace: Vec<String>,
}

fn run_one(seed: u64, safety: Safety) -> Outcome {
    let mut s = schedule::build(seed, safety);
    s.world.log(format!(
        "schedule {seed}: {:?} {:?}, sync {:?}",
        s.class, s.shape, s.world.sync
    ));
    s.world.run(s.end);
    if s.world.violations.is_empty() {
        s.world.check_exactly_one_primary(s.stable_at);
    }
    if s.world.violations.is_empty() {
        s.world.check_running(s.stable_at);
    }
    if s.world.violations.is_empty() {
        s.world.check_rejoined(s.stable_at);
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

/// Runs the schedules of `seeds` on every core; returns (steps,
/// violations, the first failing seed with its outcome).
fn run_many(
    seeds: &[u64],
    safety: Safety,
    stop_early: bool,
) -> (u64, usize, Option<(u64, Outcome)>) {
    let next = AtomicUsize::new(0);
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
                let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
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

/// A safety rule the self-test switches off: what it is, the schedule
/// class built to expose its absence (None: the random schedules do),
/// and the switch.
struct Rule {
    /// Its name for `SIM_OFF`.
    key: &'static str,
    what: &'static str,
    class: Option<Class>,
    off: fn(&mut Safety),
}

const RULES: &[Rule] = &[
    Rule {
        key: "hard_fence",
        what: "the primary's hard fence (stop before the lease ends)",
        class: None,
        off: |s| s.hard_fence = false,
    },
    Rule {
        key: "promises",
        what: "voters keeping their promises to a primary",
        class: Some(Class::LatePromise),
        off: |s| s.voters_keep_promises = false,
    },
    Rule {
        key: "count_failed",
        what: "counting the failed primary in the majority",
        class: Some(Class::EvenSplit),
        off: |s| s.count_failed_primary = false,
    },
    Rule {
        key: "sync_aware",
        what: "the sync-aware election",
        class: Some(Class::SyncSplit),
        off: |s| s.sync_aware = false,
    },
    Rule {
        key: "supersession",
        what: "the supersession check",
        class: Some(Class::ReturningPrimary),
        off: |s| s.supersession_check = false,
    },
    Rule {
        key: "receiver_check",
        what: "the WAL receiver check (a fresh stream from the primary is proof it lives)",
        class: Some(Class::SynOnly),
        off: |s| s.receiver_check = false,
    },
    Rule {
        key: "prevote",
        what: "the pre-vote rule (no vote while the voter saw the primary healthy)",
        class: Some(Class::PrimarySeen),
        off: |s| s.prevote = false,
    },
    Rule {
        key: "durable_votes",
        what: "durable votes (a restarted voter remembers its grants)",
        class: Some(Class::RestartedVoters),
        off: |s| s.durable_votes = false,
    },
    Rule {
        key: "unfence_evidence",
        what: "unfencing only on positive reports of no higher term",
        class: Some(Class::PartialHeal),
        off: |s| s.unfence_evidence = false,
    },
    Rule {
        key: "newest_timeline",
        what: "ranking and comparing WAL on the newest timeline only",
        class: Some(Class::OlderFork),
        off: |s| s.newest_timeline = false,
    },
    Rule {
        key: "kill_hung",
        what: "the kill of a hung primary before its lease ends",
        class: Some(Class::HungPrimary),
        off: |s| s.kill_hung = false,
    },
    Rule {
        key: "follow_checks",
        what: "followers skipping inactive, fenced and lower-term nodes",
        class: Some(Class::ZombiePrimary),
        off: |s| s.follow_checks = false,
    },
    Rule {
        key: "superseded_stream",
        what: "ending a standby's stream from a superseded node (a zombie primary)",
        class: Some(Class::SupersededStream),
        off: |s| s.superseded_stream = false,
    },
    Rule {
        key: "quarantine",
        what: "the start-up quarantine of a restarted voter",
        class: Some(Class::RestartedPromiser),
        off: |s| s.quarantine = false,
    },
    Rule {
        key: "last_look",
        what: "the last look before promoting (a better candidate come into sight, the old primary back)",
        class: Some(Class::LateBetter),
        off: |s| s.last_look = false,
    },
    Rule {
        key: "refence_on_start",
        what: "fencing again a server started by hand while its fence kept it stopped",
        class: Some(Class::ManualStart),
        off: |s| s.refence_on_start = false,
    },
];

/// The seeds a rule's self-test runs: the first of its class, or the
/// first random ones (a rule the random faults expose shows it within a
/// few; make test runs this in a debug build).
fn self_test_seeds(class: Option<Class>) -> Vec<u64> {
    match class.and_then(|c| TARGETED.iter().find(|(t, _)| *t == c)) {
        Some((_, r)) => (0..30).map(|k| k * CLASS_EVERY + r).collect(),
        None => (1..)
            .filter(|s| class_of(*s) == Class::Random)
            .take(600)
            .collect(),
    }
}

/// The checker bites: with each safety rule off in turn, it finds a
/// violation.
fn self_test() -> bool {
    let mut ok = true;
    for rule in RULES {
        let what = rule.what;
        let mut off = Safety::default();
        (rule.off)(&mut off);
        let seeds = self_test_seeds(rule.class);
        let (_, bad, first) = run_many(&seeds, off, true);
        match first {
            Some((seed, o)) if bad > 0 => {
                let v = o.violations.first().map_or("", String::as_str);
                eprintln!("self-test: without {what} the checker finds a violation (seed {seed}, SIM_OFF={}): {v}", rule.key);
            }
            _ => {
                eprintln!(
                    "self-test: without {what}, {} schedules found no violation: the checker is blind",
                    seeds.len()
                );
                ok = false;
            }
        }
    }
    ok
}

fn main() -> ExitCode {
    if let Some(seed) = env_u64("SIM_SEED") {
        // SIM_OFF=key replays a self-test's schedule with its rule off.
        let mut safety = Safety::default();
        if let Ok(key) = std::env::var("SIM_OFF") {
            match RULES.iter().find(|r| r.key == key.trim()) {
                Some(r) => (r.off)(&mut safety),
                None => {
                    let keys: Vec<&str> = RULES.iter().map(|r| r.key).collect();
                    eprintln!("SIM_OFF: no rule {key:?} (one of {keys:?})");
                    return ExitCode::FAILURE;
                }
            }
        }
        let o = run_one(seed, safety);
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
    let seeds: Vec<u64> = (1..=count).collect();
    let (steps, bad, failed) = run_many(&seeds, Safety::default(), false);
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
