//! The targeted schedule classes: each puts the cluster where one safety
//! rule is all that stands between it and a violation, so that the
//! self-test, with that rule switched off, finds one (and with every rule
//! on, none may appear). Their random parts (clocks, timing, which
//! standby sides with the primary) vary the schedule around that point.

use repmgr::daemon::core::types::NodeKind;
use repmgr::daemon::core::{Safety, Settings};

use crate::model::{Host, Id};
use crate::schedule::Fault;
use crate::schedule::*;
use crate::world::{Rng, Trigger, When};

pub fn build(class: Class, seed: u64, safety: Safety) -> Schedule {
    let mut rng = Rng(seed);
    match class {
        Class::LatePromise => late_promise(seed, &mut rng, safety),
        Class::EvenSplit => even_split(seed, &mut rng, safety),
        Class::ReturningPrimary => returning_primary(seed, &mut rng, safety),
        Class::SynOnly => syn_only(seed, &mut rng, safety),
        Class::PrimarySeen => primary_seen(seed, &mut rng, safety),
        Class::RestartedVoters => restarted_voters(seed, &mut rng, safety),
        Class::PartialHeal => partial_heal(seed, &mut rng, safety),
        Class::OlderFork => older_fork(seed, &mut rng, safety),
        Class::HungPrimary => hung_primary(seed, &mut rng, safety),
        Class::RestartedPromiser => restarted_promiser(seed, &mut rng, safety),
        Class::ZombiePrimary => zombie_primary(seed, &mut rng, safety),
        Class::SupersededStream => superseded_stream(seed, &mut rng, safety),
        Class::LateBetter => late_better(seed, &mut rng, safety),
        Class::ManualStart => manual_start(seed, &mut rng, safety),
        Class::SyncSplit | Class::Random => sync_split(seed, &mut rng, safety),
    }
}

/// The hosts of `kinds` (every node automatic), each with the settings
/// most classes vary around, then `tune`d for its part.
fn hosts(
    kinds: &[NodeKind],
    priority: &[i32],
    rng: &mut Rng,
    safety: Safety,
    tune: impl Fn(Id, Settings, &mut Rng) -> Settings,
) -> Vec<Host> {
    let meta = metadata(kinds, &vec![true; kinds.len()], priority);
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
        let settings = tune(id, settings, rng);
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    hosts
}

fn keep(_: Id, s: Settings, _: &mut Rng) -> Settings {
    s
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
/// again. That is no evidence to unfence on (PartialHeal shows why); the
/// newer term it hears of (node2's heartbeats, the answers to its own)
/// is what makes it rejoin node2 (node1 has `auto_rejoin`): without it,
/// node1 stays stopped for good.
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
            auto_rejoin: rng.chance(30) || id == 1,
            ..base_settings(id, *k, true, safety)
        };
        hosts.push(host(id, *k, settings, &meta, rng));
    }
    let mut world = world(seed, hosts, String::new());
    world.expect_running = vec![(1, "superseded, with auto_rejoin, it rejoins node2")];
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    split(&mut world, &[1], 3, at, len);
    let crash = at + len - rng.range(500, 3_000);
    world.fault_at(crash, Fault::CrashDaemon(3));
    let back = at + len + rng.range(5_000, 15_000);
    world.fault_at(back, Fault::StartDaemon(3));
    finish(world, back, shape, Class::ReturningPrimary)
}

/// Primary and two standbys (or a standby and the witness): node1's
/// repmgrd crashes, then new connections to node1 fail (SYNs dropped)
/// while its WAL streams on and its clients' sessions write. Its
/// heartbeats have stopped with its repmgrd (else their promises would
/// hold every vote back as well), and nobody can connect to it: only
/// the standbys' WAL receivers, fresh from node1, show it lives.
fn syn_only(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Three
    } else {
        Shape::TwoPlusWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(15_000, 25_000));
    world.fault_at(at, Fault::CrashDaemon(1));
    let syn = at + rng.range(0, 2_000);
    for b in 2..=3 {
        world.fault_at(syn, Fault::DropSyn(b, 1));
        world.fault_at(syn + len, Fault::PassSyn(b, 1));
    }
    world.no_promotion = Some(
        "node1 takes writes and streams them to its standbys; only new connections to it fail",
    );
    finish(world, syn + len, shape, Class::SynOnly)
}

/// Primary, standby and witness: node1's repmgrd crashes or hangs, then
/// only the node1–node2 link is cut. node1's server takes writes and
/// the witness reaches it; its heartbeats have stopped (else their
/// promises would hold the witness's vote back as well): only the
/// witness's own view of node1, healthy within the failure window, keeps
/// node2 from winning with the witness's vote.
fn primary_seen(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::TwoPlusWitness;
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(15_000, 25_000));
    if rng.chance(50) {
        world.fault_at(at, Fault::CrashDaemon(1));
    } else {
        world.fault_at(at, Fault::PauseDaemon(1));
        world.fault_at(at + len, Fault::ResumeDaemon(1));
    }
    let cut = at + rng.range(0, 2_000);
    for (a, b) in [(1, 2), (2, 1)] {
        world.fault_at(cut, Fault::Cut(a, b));
        world.fault_at(cut + len, Fault::Heal(a, b));
    }
    world.no_promotion = Some("node1 takes writes and the witness reaches it");
    finish(world, cut + len, shape, Class::PrimarySeen)
}

/// Five voters; node2 and node3 cannot see each other, node4 and node5
/// can never be promoted (priority 0, or the witness). node1 (server and
/// repmgrd) crashes; node2 (quick to give up) wins term T with the votes of node4
/// and node5, whose repmgrds are restarted the moment they grant it and
/// whose links to node2 go down with it (node2, promoted, is fenced when
/// its lease ends). node3 (slow to give up) stands once their quarantine
/// is over: only their durable record of the grant (they refuse T, and
/// their status names it, so node3 asks for T + 1) keeps node3 from
/// being promoted in the term node2 was.
fn restarted_voters(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Five
    } else {
        Shape::FiveWithWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100, 100, 100, 0, 0], rng, safety, |id, s, rng| {
        let (attempts, interval) = match id {
            2 => (3, 1_000),
            3 => (rng.range(7, 9) as u32, 1_000),
            _ => (s.reconnect_attempts, s.reconnect_interval_ms),
        };
        Settings {
            reconnect_attempts: attempts,
            reconnect_interval_ms: interval,
            ..s
        }
    });
    let mut world = world(seed, hosts, String::new());
    let at = rng.range(15_000, 40_000);
    let apart = at - rng.range(500, 3_000);
    world.fault_at(apart, Fault::Cut(2, 3));
    world.fault_at(apart, Fault::Cut(3, 2));
    // The whole of node1 goes (its repmgrd would learn node2's term from
    // node2's heartbeats and tell node3).
    world.fault_at(at, Fault::CrashPg(1));
    world.fault_at(at, Fault::CrashDaemon(1));
    for v in [4, 5] {
        let back = rng.range(300, 2_000);
        world.triggers.push(Trigger {
            when: When::Grants(v),
            faults: Box::new(move |_| {
                vec![
                    (0, Fault::CrashDaemon(v)),
                    (0, Fault::Cut(2, v)),
                    (0, Fault::Cut(v, 2)),
                    (back, Fault::StartDaemon(v)),
                ]
            }),
        });
    }
    let end = at + rng.range(22_000, 30_000);
    finish(world, end, shape, Class::RestartedVoters)
}

/// Primary, standby and witness: node1 is cut off until node2 has been
/// promoted with the witness's vote and node1 fenced itself; then only
/// the node1–witness link heals, for a while. The witness's repmgrd
/// either runs (it knows the newer term: its answer supersedes node1) or
/// crashed shortly before the heal (its server, answering without it,
/// knows nothing of terms): only a positive report of no higher term may
/// unfence node1, and none comes.
fn partial_heal(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::TwoPlusWitness;
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    for (a, b) in [(1, 2), (2, 1), (1, 3), (3, 1)] {
        world.fault_at(at, Fault::Cut(a, b));
    }
    world.fault_at(at + len, Fault::Heal(1, 3));
    world.fault_at(at + len, Fault::Heal(3, 1));
    let heal = at + len + rng.range(10_000, 20_000);
    world.fault_at(heal, Fault::Heal(1, 2));
    world.fault_at(heal, Fault::Heal(2, 1));
    if rng.chance(50) {
        world.fault_at(at + len - rng.range(500, 3_000), Fault::CrashDaemon(3));
        world.fault_at(heal, Fault::StartDaemon(3));
    }
    finish(world, heal, shape, Class::PartialHeal)
}

/// Five nodes (or four and a witness): {node1, node3} cut off from
/// {node2, node4, node5}. node1 keeps writing until its lease ends, and
/// node3 streams it: node3's timeline 1 runs well past the fork. node2
/// (node4 ranks below it, node5 never stands) is promoted on timeline 2
/// and node4 follows it; a moment later node2's server crashes and the
/// partition heals. node3 (timeline 1, more WAL) and node4 (timeline 2,
/// node2's commits) are the candidates: only ranking, and comparing WAL,
/// on the newest timeline keeps node3, whose LSN is higher, from being
/// promoted without node2's commits.
fn older_fork(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Five
    } else {
        Shape::FiveWithWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(
        &kinds,
        &[100, 100, 100, 50, 0],
        rng,
        safety,
        |id, s, rng| {
            let attempts = match id {
                1 => 6,
                2 => 3,
                _ => rng.range(5, 6) as u32,
            };
            Settings {
                reconnect_attempts: attempts,
                reconnect_interval_ms: 1_000,
                ..s
            }
        },
    );
    // node1, stopped by its lease fence and superseded by node2, which
    // crashes: with auto_rejoin it rejoins the primary promoted after.
    let rejoins = hosts[0].settings.auto_rejoin;
    let mut world = world(seed, hosts, String::new());
    if rejoins {
        world.expect_running = vec![(1, "superseded by node2, which failed since: with auto_rejoin it rejoins the newer primary")];
    }
    let at = rng.range(15_000, 40_000);
    let mut links = Vec::new();
    for a in [1, 3] {
        for b in [2, 4, 5] {
            links.extend([(a, b), (b, a)]);
        }
    }
    for (a, b) in &links {
        world.fault_at(at, Fault::Cut(*a, *b));
    }
    let after = rng.range(600, 1_500);
    world.triggers.push(Trigger {
        when: When::Promotion,
        faults: Box::new(move |p| {
            let mut f = vec![(after, Fault::CrashPg(p))];
            f.extend(links.iter().map(|(a, b)| (after, Fault::Heal(*a, *b))));
            f
        }),
    });
    finish(world, at + 30_000, shape, Class::OlderFork)
}

/// Primary and two standbys (or a standby and the witness): every
/// process of node1's server stops (SIGSTOP) for longer than a
/// failover takes, its repmgrd running; then the server resumes, its
/// backends acknowledging writes again. Only the kill, before node1's
/// lease ends, keeps a resumed node1 from writing beside the new
/// primary (the checker gives a resumed server whose repmgrd ran
/// throughout no allowance).
fn hung_primary(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Three
    } else {
        Shape::TwoPlusWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(15_000, 25_000));
    world.fault_at(at, Fault::PausePostmaster(1));
    world.fault_at(at + len, Fault::ResumePostmaster(1));
    finish(world, at + len, shape, Class::HungPrimary)
}

/// Three nodes, as [`late_promise`]: node1 cut off, node2 quick to give
/// up, node3's promise to node1 long. node3's repmgrd restarts right
/// after the cut: it no longer remembers that promise, and only its
/// start-up quarantine (at least as long as any promise it made) keeps
/// its vote from node2 while node1 still counts on it.
fn restarted_promiser(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::Three;
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, |id, s, rng| {
        let (attempts, interval) = match id {
            1 => (rng.range(3, 6) as u32, 1_000),
            2 => (rng.range(3, 4) as u32, 1_000),
            _ => (rng.range(5, 8) as u32, rng.range(2, 3) * 1_000),
        };
        Settings {
            reconnect_attempts: attempts,
            reconnect_interval_ms: interval,
            ..s
        }
    });
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(8_000, 25_000));
    split(&mut world, &[1], 3, at, len);
    let crash = at + rng.range(0, 300);
    world.fault_at(crash, Fault::CrashDaemon(3));
    world.fault_at(crash + rng.range(100, 600), Fault::StartDaemon(3));
    finish(world, at + len, shape, Class::RestartedPromiser)
}

/// Five nodes: node1's repmgrd crashes and node1 is cut off; node2 is
/// promoted and the others follow it, while node1's server, which no
/// repmgrd fences, writes on (repmgrd's one limit: a primary without
/// repmgrd cannot fence itself). The cut heals: node1, a writable
/// primary of term 1, inactive in the metadata, is visible again. Then
/// node2's server crashes and one of node3–node5 is promoted: only
/// skipping inactive, fenced and lower-term nodes lets the other two
/// follow it, rather than chase node1 (diverged: they cannot follow it)
/// until the faults are over.
fn zombie_primary(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::Five;
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 5], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 30_000), rng.range(12_000, 20_000));
    world.fault_at(at, Fault::CrashDaemon(1));
    split(&mut world, &[1], 5, at + rng.range(0, 1_000), len);
    let crash = at + len + rng.range(2_000, 6_000);
    world.fault_at(crash, Fault::CrashPg(2));
    world.expect_following = Some((
        vec![3, 4, 5],
        "node1, the old primary of term 1 that writes on without repmgrd, is no primary to follow",
    ));
    finish(
        world,
        crash + rng.range(20_000, 25_000),
        shape,
        Class::ZombiePrimary,
    )
}

/// Three nodes, `ANY 1 (node2, node3)`: node1's repmgrd crashes, then its
/// server hangs (every process stopped). node2 or node3 is promoted; at
/// that moment node1's server resumes (a paused host, an old primary
/// restarted without repmgrd), and the links between the two standbys
/// slow down for a while, so that the other standby's WAL receiver,
/// still pointed at node1, takes node1's new commits (and acknowledges
/// them) before the new primary's heartbeat reaches it. Its follow then
/// fails (its timeline diverged) and its server streams on from node1,
/// a zombie no repmgrd fences until the faults are over: only the rule
/// that ends a stream from a superseded node stops it acknowledging
/// commits the new primary never has.
fn superseded_stream(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = Shape::Three;
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100; 3], rng, safety, keep);
    let mut world = world(seed, hosts, "ANY 1 (node2, node3)".to_string());
    let at = rng.range(15_000, 30_000);
    world.fault_at(at, Fault::CrashDaemon(1));
    let pause = at + rng.range(500, 1_500);
    world.fault_at(pause, Fault::PausePostmaster(1));
    let slow = rng.range(400, 800);
    let heal = rng.range(2_000, 4_000);
    world.triggers.push(Trigger {
        when: When::Promotion,
        faults: Box::new(move |who| {
            let other = if who == 2 { 3 } else { 2 };
            vec![
                (0, Fault::ResumePostmaster(1)),
                (0, Fault::Delay(who, other, slow)),
                (0, Fault::Delay(other, who, slow)),
                (heal, Fault::Delay(who, other, 0)),
                (heal, Fault::Delay(other, who, 0)),
            ]
        }),
    });
    finish(
        world,
        pause + rng.range(35_000, 45_000),
        shape,
        Class::SupersededStream,
    )
}

/// Five nodes (or four and a witness): {node1, node3} cut off from
/// {node2, node4, node5}. node1 writes on until its lease ends and node3
/// streams it, so node3 holds WAL node2 lacks. node2 (quick to give up)
/// stands; node4 and node5 (never promoted), which see neither node1 nor
/// node3, grant it the term, and the moment the first of them does, the
/// node2–node3 link heals. node3 (slow to give up: it still streams from
/// node1 when node2 stands) is then a visible candidate with more WAL
/// right before node2 promotes: only the last look before promoting
/// keeps node2 from promoting without it.
fn late_better(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Five
    } else {
        Shape::FiveWithWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100, 100, 100, 0, 0], rng, safety, |id, s, rng| {
        let attempts = match id {
            2 => 3,
            3 => rng.range(7, 9) as u32,
            _ => s.reconnect_attempts,
        };
        Settings {
            reconnect_attempts: attempts,
            reconnect_interval_ms: 1_000,
            ..s
        }
    });
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(20_000, 30_000));
    split(&mut world, &[1, 3], 5, at, len);
    for v in [4, 5] {
        world.triggers.push(Trigger {
            when: When::Grants(v),
            faults: Box::new(|_| vec![(0, Fault::Heal(2, 3)), (0, Fault::Heal(3, 2))]),
        });
    }
    finish(world, at + len, shape, Class::LateBetter)
}

/// Three nodes (or two and a witness): node1 cut off from the others for
/// longer than a failover. Its lease runs out, it stops its server, a
/// standby is promoted, and then an operator starts node1's server by
/// hand while it is still cut off: it comes up a writable primary and
/// hears of no newer term, so only repmgrd's record of its own fence
/// makes it stop the server again.
fn manual_start(seed: u64, rng: &mut Rng, safety: Safety) -> Schedule {
    let shape = if rng.chance(50) {
        Shape::Three
    } else {
        Shape::TwoPlusWitness
    };
    let kinds = kinds(shape);
    let hosts = hosts(&kinds, &[100, 100, 100], rng, safety, keep);
    let mut world = world(seed, hosts, String::new());
    let (at, len) = (rng.range(15_000, 40_000), rng.range(45_000, 60_000));
    split(&mut world, &[1], kinds.len() as Id, at, len);
    let after = rng.range(500, 3_000);
    world.triggers.push(Trigger {
        when: When::Promotion,
        faults: Box::new(move |_| vec![(after, Fault::StartPg(1))]),
    });
    finish(world, at + len, shape, Class::ManualStart)
}
