//! Random schedules: a cluster shape, per-node settings and clocks, and
//! faults at random times; then a stable phase (every fault healed, every
//! daemon and crashed server started again) in which exactly one primary
//! must remain.

use repmgr::daemon::core::types::*;
use repmgr::daemon::core::{Failover, Quorum, Safety, Settings};

use crate::model::*;
use crate::world::{Rng, World};

#[derive(Debug, Clone)]
pub enum Fault {
    /// kill -9 of the postmaster; restarted at the stable phase.
    CrashPg(Id),
    /// An operator's `pg_ctl start` of a server that is down: it comes up
    /// as its data directory says (in recovery if standby.signal is there).
    StartPg(Id),
    /// A link down in one direction.
    Cut(Id, Id),
    Heal(Id, Id),
    Delay(Id, Id, u64),
    /// New connections from the first to the second fail (SYNs dropped),
    /// established ones carry on; and back to normal.
    DropSyn(Id, Id),
    PassSyn(Id, Id),
    PauseHost(Id),
    ResumeHost(Id),
    PausePostmaster(Id),
    ResumePostmaster(Id),
    PauseDaemon(Id),
    ResumeDaemon(Id),
    CrashDaemon(Id),
    StartDaemon(Id),
    /// `failover` set to automatic (true) or manual and repmgrd reloaded.
    SetFailover(Id, bool),
    /// Heal everything, resume everything, start what crashed.
    Stabilise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    TwoPlusWitness,
    Three,
    /// Three data nodes and a witness, or four data nodes: an even number
    /// of voters (only the targeted classes build them).
    ThreePlusWitness,
    Four,
    Five,
    FiveWithWitness,
}

/// The family a seed's schedule comes from. Most are random; one seed in
/// [`CLASS_EVERY`] goes to each targeted class, whose faults leave one
/// safety rule alone between the cluster and a violation (the
/// self-test switches that rule off and expects one; see `classes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Random,
    /// A voter whose promise to the primary outlasts a candidate's
    /// failure window: its promise is what holds the vote back.
    LatePromise,
    /// Four voters split two against two: only counting the failed
    /// primary keeps the side without it from a majority.
    EvenSplit,
    /// The primary and its only synchronous standby cut off from a
    /// majority of asynchronous ones: only the sync-aware election keeps
    /// acknowledged commits from being lost.
    SyncSplit,
    /// A primary cut off long enough to be replaced, and the witness's
    /// repmgrd down when it comes back: the witness's server renews its
    /// lease (no evidence to unfence on), and only hearing of the newer
    /// term makes it rejoin the new primary.
    ReturningPrimary,
    /// New connections to the primary fail (SYNs dropped) while the WAL
    /// streams on, its repmgrd down: only the standbys' WAL receivers
    /// show it lives.
    SynOnly,
    /// Primary / standby / witness, the primary's repmgrd down, only the
    /// primary–standby link cut: only the witness's own view of the
    /// primary holds its vote back.
    PrimarySeen,
    /// Two candidates that cannot see each other, and the two voters the
    /// first won restarted right after granting: only their durable
    /// record keeps the second from the same term.
    RestartedVoters,
    /// After a fence and a promotion, only the old-primary–witness link
    /// heals: only positive reports of no higher term may unfence it.
    PartialHeal,
    /// A standby that kept streaming from a cut-off primary (an older
    /// timeline, more WAL past the fork) beside one on the new primary's
    /// timeline, the new primary gone: only ranking on the newest timeline
    /// keeps the later primary's commits.
    OlderFork,
    /// The primary's server hangs (every process stopped) past its
    /// lease, its repmgrd running: only the kill keeps it from taking
    /// writes when it resumes.
    HungPrimary,
    /// The voter whose promise holds the primary's lease restarts as the
    /// primary is cut off: only its start-up quarantine keeps the promise
    /// it no longer remembers.
    RestartedPromiser,
    /// An old primary without repmgrd writes on beside a newer one, and
    /// the newer one fails: only skipping inactive, fenced and lower-term
    /// nodes lets the standbys follow the next primary, not chase it.
    ZombiePrimary,
    /// The old primary, without repmgrd, resumes right after a promotion
    /// and feeds a standby WAL past the fork before it follows: its
    /// follow fails (diverged), and only ending that stream keeps it from
    /// acknowledging the zombie's synchronous commits for good.
    SupersededStream,
    /// A candidate wins its votes while a standby with more WAL is out of
    /// its sight, and that standby comes into sight right then: only the
    /// last look before promoting keeps the candidate from promoting
    /// without that WAL.
    LateBetter,
    /// A primary cut off until it stopped its server (its fence), a
    /// standby promoted, and the old primary's server started again by
    /// hand while still cut off: it knows of no newer term, so only its
    /// record of the fence makes it stop the server again.
    ManualStart,
}

pub const CLASS_EVERY: u64 = 50;

/// Each targeted class and its seeds' remainder modulo [`CLASS_EVERY`].
pub const TARGETED: [(Class, u64); 15] = [
    (Class::LatePromise, 6),
    (Class::EvenSplit, 12),
    (Class::SyncSplit, 18),
    (Class::ReturningPrimary, 24),
    (Class::SynOnly, 30),
    (Class::PrimarySeen, 34),
    (Class::RestartedVoters, 38),
    (Class::PartialHeal, 42),
    (Class::OlderFork, 46),
    (Class::HungPrimary, 49),
    (Class::RestartedPromiser, 3),
    (Class::ZombiePrimary, 9),
    (Class::SupersededStream, 27),
    (Class::LateBetter, 15),
    (Class::ManualStart, 21),
];

pub fn class_of(seed: u64) -> Class {
    TARGETED
        .iter()
        .find(|(_, r)| seed % CLASS_EVERY == *r)
        .map_or(Class::Random, |(c, _)| *c)
}

pub struct Schedule {
    pub world: World,
    pub stable_at: u64,
    pub end: u64,
    /// For a failing seed's report.
    pub shape: Shape,
    pub class: Class,
}

fn info(id: Id, kind: NodeKind, priority: i32) -> NodeInfo {
    NodeInfo {
        id,
        name: format!("node{id}"),
        kind,
        active: true,
        priority,
        location: "default".into(),
        upstream: (id != 1).then_some(1),
        automatic: true,
        fences: false,
        published: true,
    }
}

pub fn kinds(shape: Shape) -> Vec<NodeKind> {
    use NodeKind::{Primary as P, Standby as S, Witness as W};
    match shape {
        Shape::TwoPlusWitness => vec![P, S, W],
        Shape::Three => vec![P, S, S],
        Shape::ThreePlusWitness => vec![P, S, S, W],
        Shape::Four => vec![P, S, S, S],
        Shape::Five => vec![P, S, S, S, S],
        Shape::FiveWithWitness => vec![P, S, S, S, W],
    }
}

/// The registered nodes, node1 the primary and every other its standby.
pub fn metadata(kinds: &[NodeKind], automatic: &[bool], priority: &[i32]) -> Vec<NodeInfo> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| NodeInfo {
            automatic: automatic[i],
            ..info(i as Id + 1, *k, priority[i])
        })
        .collect()
}

/// What every schedule's repmgr.conf says, before its own choices.
pub fn base_settings(id: Id, kind: NodeKind, automatic: bool, safety: Safety) -> Settings {
    Settings {
        node_id: id,
        node_name: format!("node{id}"),
        failover: if automatic {
            Failover::Automatic
        } else {
            Failover::Manual
        },
        quorum: Quorum::Majority,
        monitor_interval_ms: 1_000,
        reconnect_attempts: 6,
        reconnect_interval_ms: 1_000,
        primary_notification_timeout_ms: 15_000,
        election_rerun_interval_ms: 5_000,
        degraded_monitoring_timeout_ms: None,
        primary_visibility_consensus: false,
        fence_read_only: true,
        isolation_timeout_ms: None,
        auto_rejoin: false,
        child_nodes_check_interval_ms: None,
        log_status_interval_ms: 3_600_000,
        witness_sync_interval_ms: 5_000,
        is_witness: kind == NodeKind::Witness,
        safety,
        ..Settings::default()
    }
}

/// Host `id` as every schedule starts it: its server in its role, the
/// durable state of a repmgrd that knew node1 as the primary, and a
/// clock of its own (drawn from `rng`).
pub fn host(id: Id, kind: NodeKind, settings: Settings, meta: &[NodeInfo], rng: &mut Rng) -> Host {
    let standby = kind == NodeKind::Standby;
    let pg = Pg {
        running: true,
        paused: false,
        recovery: standby,
        upstream: standby.then_some(1),
        read_only: false,
        standby_signal: standby,
        wal: vec![],
        tli: 1,
        voting_term: 1,
        meta: meta.to_vec(),
        crashed: false,
        last_recv: None,
        streaming: false,
        witness: kind == NodeKind::Witness,
        paused_at: 0,
    };
    Host {
        id,
        name: format!("node{id}"),
        priority: meta[id as usize - 1].priority,
        settings,
        pg,
        core: None,
        epoch: 0,
        durable: Persisted {
            known_term: 1,
            known_primary: Some(1),
            ..Persisted::default()
        },
        daemon_paused: false,
        host_paused: false,
        backlog: Vec::new(),
        clock_offset: rng.range(0, 10_000_000),
        drift_ppm: rng.range(0, 8_000) as i64 - 4_000,
        exposed_since: 0,
        watching: None,
        exited: false,
    }
}

/// The world of these hosts with every repmgrd started.
pub fn world(seed: u64, hosts: Vec<Host>, sync: String) -> World {
    let mut world = World::new(hosts, sync, Rng(seed ^ 0x5eed));
    for i in 0..world.hosts.len() {
        world.start_daemon(i);
    }
    world
}

/// Both ways between every node of `side` and every other of the `n`.
pub fn split(world: &mut World, side: &[Id], n: Id, at: u64, len: u64) {
    for a in side.iter().copied() {
        for b in (1..=n).filter(|b| !side.contains(b)) {
            world.fault_at(at, Fault::Cut(a, b));
            world.fault_at(at, Fault::Cut(b, a));
            world.fault_at(at + len, Fault::Heal(a, b));
            world.fault_at(at + len, Fault::Heal(b, a));
        }
    }
}

/// The stable phase after the last fault, and the end.
pub fn finish(mut world: World, last_end: u64, shape: Shape, class: Class) -> Schedule {
    let stable_at = last_end + 1_000;
    world.fault_at(stable_at, Fault::Stabilise);
    // Liveness: the failure window, an election and its re-runs, a fence
    // and a rejoin all fit in this.
    let end = stable_at + 45_000;
    Schedule {
        world,
        stable_at,
        end,
        shape,
        class,
    }
}

/// Builds schedule `seed` (with `safety` rules, normally all on).
pub fn build(seed: u64, safety: Safety) -> Schedule {
    match class_of(seed) {
        Class::Random => random(seed, safety),
        class => crate::classes::build(class, seed, safety),
    }
}

/// Whether random schedules give their nodes repmgr's `failover_delay`
/// and `promote_delay` (0–3 s, each on about one node in three) and
/// `always_promote`: on unless `SIM_DELAYS=0`.
pub const DRAW_DELAYS: bool = true;

fn draw_delays() -> bool {
    match std::env::var("SIM_DELAYS") {
        Ok(v) => v.trim() != "0",
        Err(_) => DRAW_DELAYS,
    }
}

fn random(seed: u64, safety: Safety) -> Schedule {
    let mut rng = Rng(seed);
    let shape = match rng.range(0, 3) {
        0 => Shape::TwoPlusWitness,
        1 => Shape::Three,
        2 => Shape::Five,
        _ => Shape::FiveWithWitness,
    };
    let kinds = kinds(shape);
    // Synchronous replication in one schedule of five: FIRST 1 (node2).
    let sync = if rng.chance(20) {
        "FIRST 1 (node2)".to_string()
    } else {
        String::new()
    };
    // Most clusters fail over automatically; some never (repmgr's default,
    // failover=manual), some are mixed.
    let mode = rng.range(0, 19);
    let mut automatic: Vec<bool> = kinds
        .iter()
        .map(|_| match mode {
            0..=13 => true,
            14..=16 => false,
            _ => rng.chance(50),
        })
        .collect();
    // A manual synchronous standby would be the only node holding every
    // acknowledged commit and could never be promoted: no failover at
    // all, by design (liveness is not expected of that configuration).
    if !sync.is_empty() {
        automatic[1] = true;
    }
    let priority: Vec<i32> = kinds
        .iter()
        .map(|k| {
            if *k == NodeKind::Standby && rng.chance(10) {
                0
            } else {
                100
            }
        })
        .collect();
    let meta = metadata(&kinds, &automatic, &priority);
    let auto_rejoin = rng.chance(30);
    let fast = rng.chance(50);
    // The delays come from a generator of their own, so that every other
    // draw of a seed (and so its schedule) is what it was without them.
    let mut delays = Rng(seed ^ 0xde1a_75ee_d000_0000);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let (failover_delay_ms, promote_delay_ms, always_promote) = if draw_delays() {
            let mut secs = |p| {
                if delays.chance(p) {
                    delays.range(1, 3) * 1_000
                } else {
                    0
                }
            };
            (secs(30), secs(30), delays.chance(50))
        } else {
            (0, 0, false)
        };
        let settings = Settings {
            failover_delay_ms,
            promote_delay_ms,
            always_promote,
            reconnect_attempts: if fast {
                rng.range(3, 5) as u32
            } else {
                rng.range(5, 8) as u32
            },
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            fence_read_only: !rng.chance(20),
            auto_rejoin,
            ..base_settings(id, *k, automatic[i], safety)
        };
        hosts.push(host(id, *k, settings, &meta, &mut rng));
    }
    let mut world = world(seed, hosts, sync);
    // Faults between 15 s (settled: quarantines over) and 60 s.
    let n = kinds.len() as Id;
    let faults = rng.range(1, 4);
    let mut last_end = 15_000;
    for _ in 0..faults {
        let at = rng.range(15_000, 60_000);
        let len = rng.range(500, 25_000);
        let node = rng.range(1, n as u64) as Id;
        let other = ((node as u64 + rng.range(1, n as u64 - 1) - 1) % n as u64 + 1) as Id;
        last_end = last_end.max(at + len);
        let change_mode = rng.chance(15);
        if change_mode && (node != 2 || world.sync.is_empty()) {
            // The failover mode changed at run time (SIGHUP).
            world.fault_at(at, Fault::SetFailover(node, rng.chance(50)));
        }
        match rng.range(0, 9) {
            0 => world.fault_at(at, Fault::CrashPg(node)),
            1 => {
                // A host cut off, both ways.
                split(&mut world, &[node], n, at, len);
            }
            2 => {
                // One link, one way or both.
                world.fault_at(at, Fault::Cut(node, other));
                world.fault_at(at + len, Fault::Heal(node, other));
                if rng.chance(50) {
                    world.fault_at(at, Fault::Cut(other, node));
                    world.fault_at(at + len, Fault::Heal(other, node));
                }
            }
            3 => {
                world.fault_at(at, Fault::PauseHost(node));
                world.fault_at(at + len, Fault::ResumeHost(node));
            }
            4 => {
                world.fault_at(at, Fault::PausePostmaster(node));
                world.fault_at(at + len, Fault::ResumePostmaster(node));
            }
            5 => {
                world.fault_at(at, Fault::PauseDaemon(node));
                world.fault_at(at + len, Fault::ResumeDaemon(node));
            }
            6 => {
                world.fault_at(at, Fault::CrashDaemon(node));
                world.fault_at(at + len, Fault::StartDaemon(node));
            }
            7 => {
                world.fault_at(at, Fault::Delay(node, other, rng.range(100, 3_000)));
                world.fault_at(at + len, Fault::Delay(node, other, 0));
            }
            _ => {
                // A partition that splits the cluster in two.
                let cut = rng.range(1, n as u64 - 1) as Id;
                let side: Vec<Id> = (1..=cut).collect();
                split(&mut world, &side, n, at, len);
            }
        }
    }
    finish(world, last_end, shape, Class::Random)
}

pub fn apply(w: &mut World, f: Fault) {
    w.log(format!("FAULT {f:?}"));
    match f {
        Fault::CrashPg(id) => {
            let i = idx(w, id);
            if w.hosts[i].pg.running {
                w.hosts[i].pg.running = false;
                w.hosts[i].pg.crashed = true;
                notify_watchers(w, id);
            }
        }
        Fault::StartPg(id) => {
            let i = idx(w, id);
            let h = &mut w.hosts[i];
            if !h.pg.running && !h.pg.paused {
                h.pg.running = true;
                h.pg.crashed = false;
                h.pg.recovery = h.pg.standby_signal;
                h.exposed_since = w.g;
            }
        }
        Fault::Cut(a, b) => {
            w.net.down.insert((a, b), true);
        }
        Fault::Heal(a, b) => {
            w.net.down.remove(&(a, b));
        }
        Fault::Delay(a, b, ms) => {
            w.net.extra_delay.insert((a, b), ms);
        }
        Fault::DropSyn(a, b) => {
            w.net.syn_dropped.insert((a, b));
        }
        Fault::PassSyn(a, b) => {
            w.net.syn_dropped.remove(&(a, b));
        }
        Fault::PauseHost(id) => {
            let i = idx(w, id);
            w.hosts[i].host_paused = true;
        }
        Fault::ResumeHost(id) => {
            let i = idx(w, id);
            if w.hosts[i].host_paused {
                w.hosts[i].host_paused = false;
                w.hosts[i].exposed_since = w.g;
                w.resume_daemon(i);
            }
        }
        Fault::PausePostmaster(id) => {
            let i = idx(w, id);
            if !w.hosts[i].pg.paused {
                w.hosts[i].pg.paused = true;
                w.hosts[i].pg.paused_at = w.g;
            }
        }
        Fault::ResumePostmaster(id) => {
            let i = idx(w, id);
            let h = &mut w.hosts[i];
            if h.pg.paused {
                h.pg.paused = false;
                // A repmgrd that ran throughout had the whole pause to
                // kill a server that could have been superseded: no
                // allowance for it.
                let watched = h.daemon_alive() && h.exposed_since <= h.pg.paused_at;
                if !watched {
                    h.exposed_since = w.g;
                }
            }
        }
        Fault::PauseDaemon(id) => {
            let i = idx(w, id);
            w.hosts[i].daemon_paused = true;
        }
        Fault::ResumeDaemon(id) => {
            let i = idx(w, id);
            if w.hosts[i].daemon_paused {
                w.hosts[i].daemon_paused = false;
                w.hosts[i].exposed_since = w.g;
                w.resume_daemon(i);
            }
        }
        Fault::CrashDaemon(id) => {
            let i = idx(w, id);
            w.hosts[i].core = None;
            w.hosts[i].backlog.clear();
        }
        Fault::StartDaemon(id) => {
            let i = idx(w, id);
            if w.hosts[i].core.is_none() && w.hosts[i].pg_up() {
                w.start_daemon(i);
            }
        }
        Fault::SetFailover(id, automatic) => {
            let i = idx(w, id);
            w.hosts[i].settings.failover = if automatic {
                Failover::Automatic
            } else {
                Failover::Manual
            };
            let s = w.hosts[i].settings.clone();
            w.deliver(i, Input::Reload(Box::new(s)));
        }
        Fault::Stabilise => {
            w.check_following();
            w.net = Net::default();
            for i in 0..w.hosts.len() {
                let h = &mut w.hosts[i];
                h.host_paused = false;
                h.daemon_paused = false;
                h.pg.paused = false;
                if h.pg.crashed {
                    // Started again by hand or by systemd.
                    h.pg.crashed = false;
                    h.pg.running = true;
                    h.pg.recovery = h.pg.standby_signal;
                    h.exposed_since = w.g;
                }
                if w.hosts[i].core.is_none() && !w.hosts[i].exited {
                    w.start_daemon(i);
                } else {
                    w.resume_daemon(i);
                }
            }
        }
    }
}

fn idx(w: &World, id: Id) -> usize {
    w.hosts.iter().position(|h| h.id == id).unwrap_or(0)
}

/// The connections watching a node close when its server dies (the
/// kernel resets them), if the network lets the reset through.
fn notify_watchers(w: &mut World, id: Id) {
    let watchers: Vec<usize> = (0..w.hosts.len())
        .filter(|i| w.hosts[*i].watching == Some(id) && w.net.both(w.hosts[*i].id, id))
        .collect();
    for i in watchers {
        w.deliver(i, Input::UpstreamClosed { node: id });
    }
}
