//! The targeted schedule classes: each puts the cluster where one safety
//! rule is all that stands between it and a violation, so that the
//! self-test, with that rule switched off, finds one (and with every rule
//! on, none may appear). Their random parts (clocks, timing, which
//! standby sides with the primary) vary the schedule around that point.

use repmgr::daemon::core::{Safety, Settings};

use crate::model::Id;
use crate::schedule::Fault;
use crate::schedule::*;
use crate::world::Rng;

pub fn build(class: Class, seed: u64, safety: Safety) -> Schedule {
    let mut rng = Rng(seed);
    match class {
        Class::LatePromise => late_promise(seed, &mut rng, safety),
        Class::EvenSplit => even_split(seed, &mut rng, safety),
        Class::ReturningPrimary => returning_primary(seed, &mut rng, safety),
        Class::SyncSplit | Class::Random => sync_split(seed, &mut rng, safety),
    }
}

/// Three nodes; node2 gives up on its upstream quickly (2–3 s of
/// retries), node3 only after a long window, and so promises the primary
/// as long. node1 is cut off: node2 stands as candidate while node3's
/// last promise to node1 still runs (node3 no longer sees node1: its
/// checks fail and its WAL receiver went quiet). node1 counts on that
/// promise and stays writable; only node3 keeping it stops node2 from
/// getting its vote, and so from promoting beside node1.
fn late_promise(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::Three;
    let kinds = kinds(shape);
    let meta = metadata(&kinds, &[true; 3], &[100; 3]);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let (attempts, interval) = match id {
            1 => (rng.range(3, 6) as u32, 1_000),
            2 => (rng.range(3, 4) as u32, 1_000),
            _ => (rng.range(5, 8) as u32, rng.range(2, 3) * 1_000),
        };
        let settings = Settings {
            reconnect_attempts: attempts,
            reconnect_interval_ms: interval,
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            fence_read_only: !rng.chance(20),
            ..base_settings(id, *k, true, safety)
        };
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(8_000, 25_000));
    split(&mut world, &[1], 3, at, len);
    finish(world, at + len, shape, Class::LatePromise)
}

/// Four voters (three data nodes and a witness, or four data nodes),
/// split two against two: node1 and one standby, the rest. node1 keeps
/// its lease (with four voters one promise besides its own blocks any
/// majority); the other side is two of four, no majority, unless the
/// failed primary is left out of the count (two of three).
fn even_split(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::ThreePlusWitness
    } else {
        Shape::Four
    };
    let kinds = kinds(shape);
    let meta = metadata(&kinds, &[true; 4], &[100; 4]);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let settings = Settings {
            reconnect_attempts: rng.range(3, 7) as u32,
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            fence_read_only: !rng.chance(20),
            auto_rejoin: rng.chance(30),
            ..base_settings(id, *k, true, safety)
        };
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    let mut world = world(seed, hosts, String::new());
    // The standby that stays with node1 (never the witness).
    let with = rng.range(2, 3) as Id;
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    split(&mut world, &[1, with], 4, at, len);
    finish(world, at + len, shape, Class::EvenSplit)
}

/// Five nodes (or four and a witness), `FIRST 1 (node2)`: node1 and
/// node2 are cut off from the other three, a majority, while clients
/// write. node1 keeps acknowledging commits that only node2 holds until
/// its lease runs out; the majority can elect among standbys that lack
/// them, and only the sync-aware election (node2, the one synchronous
/// standby, is out of sight: nobody is sure to hold every acknowledged
/// commit) refuses.
fn sync_split(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Five
    } else {
        Shape::FiveWithWitness
    };
    let kinds = kinds(shape);
    let meta = metadata(&kinds, &[true; 5], &[100; 5]);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let settings = Settings {
            reconnect_attempts: rng.range(3, 7) as u32,
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            fence_read_only: !rng.chance(20),
            auto_rejoin: rng.chance(30),
            ..base_settings(id, *k, true, safety)
        };
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    let mut world = world(seed, hosts, "FIRST 1 (node2)".to_string());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    split(&mut world, &[1, 2], 5, at, len);
    finish(world, at + len, shape, Class::SyncSplit)
}

/// Two nodes and a witness: node1 is cut off until node2 has been
/// promoted (node1 stopped itself when its lease ran out); the witness's
/// repmgrd crashes shortly before the cut heals. node1's heartbeats then
/// reach only the witness's server, which counts as a promise (a voter
/// without repmgrd sits out its start-up quarantine): node1's lease holds
/// again, and only the newer term it hears of (node2's heartbeats, the
/// answers to its own) keeps it from unfencing beside node2.
fn returning_primary(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::TwoPlusWitness;
    let kinds = kinds(shape);
    let meta = metadata(&kinds, &[true; 3], &[100; 3]);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let settings = Settings {
            reconnect_attempts: rng.range(3, 7) as u32,
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            fence_read_only: !rng.chance(20),
            auto_rejoin: rng.chance(30),
            ..base_settings(id, *k, true, safety)
        };
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    split(&mut world, &[1], 3, at, len);
    let crash = at + len - rng.range(500, 3_000);
    world.fault_at(crash, Fault::CrashDaemon(3));
    let back = at + len + rng.range(5_000, 15_000);
    world.fault_at(back, Fault::StartDaemon(3));
    finish(world, back, shape, Class::ReturningPrimary)
}
