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
    /// A link down in one direction.
    Cut(Id, Id),
    Heal(Id, Id),
    Delay(Id, Id, u64),
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
    Five,
    FiveWithWitness,
}

pub struct Schedule {
    pub world: World,
    pub stable_at: u64,
    pub end: u64,
    /// For a failing seed's report.
    pub shape: Shape,
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

/// Builds schedule `seed` (with `safety` rules, normally all on).
pub fn build(seed: u64, safety: Safety) -> Schedule {
    let mut rng = Rng(seed);
    let shape = match rng.range(0, 3) {
        0 => Shape::TwoPlusWitness,
        1 => Shape::Three,
        2 => Shape::Five,
        _ => Shape::FiveWithWitness,
    };
    let kinds: Vec<NodeKind> = match shape {
        Shape::TwoPlusWitness => vec![NodeKind::Primary, NodeKind::Standby, NodeKind::Witness],
        Shape::Three => vec![NodeKind::Primary, NodeKind::Standby, NodeKind::Standby],
        Shape::Five => vec![
            NodeKind::Primary,
            NodeKind::Standby,
            NodeKind::Standby,
            NodeKind::Standby,
            NodeKind::Standby,
        ],
        Shape::FiveWithWitness => vec![
            NodeKind::Primary,
            NodeKind::Standby,
            NodeKind::Standby,
            NodeKind::Standby,
            NodeKind::Witness,
        ],
    };
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
    let meta: Vec<NodeInfo> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let prio = if *k == NodeKind::Standby && rng.chance(10) {
                0
            } else {
                100
            };
            NodeInfo {
                automatic: automatic[i],
                ..info(i as Id + 1, *k, prio)
            }
        })
        .collect();
    let auto_rejoin = rng.chance(30);
    let fast = rng.chance(50);
    let mut hosts = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let id = i as Id + 1;
        let settings = Settings {
            node_id: id,
            node_name: format!("node{id}"),
            failover: if automatic[i] {
                Failover::Automatic
            } else {
                Failover::Manual
            },
            quorum: Quorum::Majority,
            monitor_interval_ms: 1_000,
            reconnect_attempts: if fast {
                rng.range(3, 5) as u32
            } else {
                rng.range(5, 8) as u32
            },
            reconnect_interval_ms: 1_000,
            primary_notification_timeout_ms: 15_000,
            election_rerun_interval_ms: rng.range(3, 8) * 1_000,
            degraded_monitoring_timeout_ms: None,
            primary_visibility_consensus: false,
            fence_read_only: !rng.chance(20),
            isolation_timeout_ms: None,
            auto_rejoin,
            child_nodes_check_interval_ms: None,
            log_status_interval_ms: 3_600_000,
            witness_sync_interval_ms: 5_000,
            is_witness: *k == NodeKind::Witness,
            safety,
            ..Settings::default()
        };
        let primary = *k == NodeKind::Primary;
        let pg = Pg {
            running: true,
            paused: false,
            recovery: *k == NodeKind::Standby,
            upstream: (*k == NodeKind::Standby).then_some(1),
            read_only: false,
            standby_signal: *k == NodeKind::Standby,
            wal: vec![],
            tli: 1,
            voting_term: 1,
            meta: meta.clone(),
            crashed: false,
            last_recv: None,
            streaming: false,
            witness: *k == NodeKind::Witness,
        };
        let _ = primary;
        hosts.push(Host {
            id,
            name: format!("node{id}"),
            priority: meta[i].priority,
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
        });
    }
    let mut world = World::new(hosts, sync, Rng(seed ^ 0x5eed));
    for i in 0..world.hosts.len() {
        world.start_daemon(i);
    }
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
                for o in 1..=n {
                    if o != node {
                        world.fault_at(at, Fault::Cut(node, o));
                        world.fault_at(at, Fault::Cut(o, node));
                        world.fault_at(at + len, Fault::Heal(node, o));
                        world.fault_at(at + len, Fault::Heal(o, node));
                    }
                }
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
                for a in 1..=cut {
                    for b in cut + 1..=n {
                        world.fault_at(at, Fault::Cut(a, b));
                        world.fault_at(at, Fault::Cut(b, a));
                        world.fault_at(at + len, Fault::Heal(a, b));
                        world.fault_at(at + len, Fault::Heal(b, a));
                    }
                }
            }
        }
    }
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
    }
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
        Fault::Cut(a, b) => {
            w.net.down.insert((a, b), true);
        }
        Fault::Heal(a, b) => {
            w.net.down.remove(&(a, b));
        }
        Fault::Delay(a, b, ms) => {
            w.net.extra_delay.insert((a, b), ms);
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
            w.hosts[i].pg.paused = true;
        }
        Fault::ResumePostmaster(id) => {
            let i = idx(w, id);
            if w.hosts[i].pg.paused {
                w.hosts[i].pg.paused = false;
                w.hosts[i].exposed_since = w.g;
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
