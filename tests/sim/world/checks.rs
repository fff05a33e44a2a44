//! The invariants the world checks as it runs, and what a targeted
//! class expects of its own schedule (see `main.rs`).

use repmgr::daemon::core::Failover;

use super::{World, FENCE_OP_MAX};
use crate::model::*;

impl World {
    /// Invariant (d): no visible candidate (an automatic standby of
    /// priority > 0 whose repmgrd runs: without one nothing can promote
    /// it, as with repmgr) has WAL the new primary lacks: more of the
    /// same history, or any of a newer timeline (a later primary's
    /// commits, which an older timeline's LSN past the fork does not
    /// outweigh).
    pub(super) fn check_candidate_has_the_wal(&mut self, i: usize) {
        let id = self.hosts[i].id;
        let mine = self.hosts[i].pg.wal.clone();
        let my_tli = self.hosts[i].pg.tli;
        // Active, and automatic as far as the cluster knows: a mode
        // changed while no primary could record it is not known yet.
        let active = |n: Id| {
            self.hosts[i]
                .pg
                .meta
                .iter()
                .any(|m| m.id == n && m.active && m.automatic)
        };
        for o in &self.hosts {
            let candidate = o.priority > 0
                && o.settings.failover == Failover::Automatic
                && o.core.is_some()
                && !o.exited;
            if o.id == id || !o.pg.recovery || o.pg.witness || !candidate || !active(o.id) {
                continue;
            }
            if !(self.net.connects(id, o.id) && o.pg_up()) {
                continue;
            }
            let more = o.pg.wal.len() > mine.len() && is_prefix(&mine, &o.pg.wal);
            let newer = o.pg.tli > my_tli && !is_prefix(&o.pg.wal, &mine);
            if more || newer {
                let msg = format!(
                    "node{id} promoting with {} records (timeline {my_tli}) while visible node{} has {} (timeline {}) of which it lacks {}",
                    mine.len(),
                    o.id,
                    o.pg.wal.len(),
                    o.pg.tli,
                    o.pg.wal.len() - common_prefix(&mine, &o.pg.wal)
                );
                self.violations.push(format!("t={} {msg}", self.g));
                return;
            }
        }
    }

    /// Invariant (f): a standby's server does not stream from a node that
    /// a newer term superseded, once its repmgrd knows of that term (its
    /// durable known term is above the sender's, and the primary of it
    /// is another node), for longer than the rule takes to end the
    /// stream: a receiver window, a few monitoring cycles and a local
    /// operation. Such a stream feeds a zombie primary (its synchronous
    /// commits are acknowledged, and the cluster's primary never has
    /// them) and takes the standby ever further from the primary.
    pub(super) fn check_superseded_streams(&mut self) {
        let mut found = None;
        for h in &self.hosts {
            let sender =
                h.pg.upstream
                    .filter(|_| h.pg.recovery && h.pg.streaming && h.pg_up() && h.daemon_alive());
            let superseded = sender.is_some_and(|u| {
                let up = &self.hosts[self.idx(u)];
                h.durable.known_term > up.pg.voting_term && h.durable.known_primary != Some(u)
            });
            if !superseded {
                self.superseded_stream_since.remove(&h.id);
                continue;
            }
            let since = *self.superseded_stream_since.entry(h.id).or_insert(self.g);
            let s = &h.settings;
            let bound =
                2 * s.monitor_interval_ms + 1_000 + 3 * s.monitor_interval_ms + 2 * FENCE_OP_MAX;
            if found.is_none() && self.g.saturating_sub(since) > bound {
                found = Some((
                    h.id,
                    sender.unwrap_or_default(),
                    h.durable.known_term,
                    self.g - since,
                    h.pg.voting_term,
                ));
            }
        }
        let Some((id, from, term, ms, copy)) = found else {
            return;
        };
        // What the stream let the zombie acknowledge that the newest
        // writer does not have.
        let newest = self
            .hosts
            .iter()
            .filter(|h| h.takes_writes())
            .max_by_key(|h| (h.pg.voting_term, h.pg.tli));
        let lost = newest.map_or(0, |n| {
            self.acked.iter().filter(|r| !n.pg.wal.contains(r)).count()
        });
        self.violation(format!(
            "node{id}'s server streams from node{from}, superseded in term {term} as its repmgrd knows (its own copy has term {copy}), for {ms} ms ({lost} acknowledged commits the newest primary lacks)"
        ));
        self.superseded_stream_since.clear();
    }

    /// Invariant (a): two nodes take writes at once only while the older
    /// one is within the bound after its repmgrd (or server) came back.
    pub(super) fn check_one_writer(&mut self, writers: &[usize]) {
        if writers.len() < 2 {
            return;
        }
        let top = writers
            .iter()
            .copied()
            .max_by_key(|w| (self.hosts[*w].pg.voting_term, self.hosts[*w].pg.tli))
            .unwrap_or(0);
        for &w in writers {
            if w == top {
                continue;
            }
            let (x, y) = (&self.hosts[w], &self.hosts[top]);
            if x.pg.voting_term == y.pg.voting_term && x.pg.tli == y.pg.tli {
                let msg = format!(
                    "node{} and node{} both take writes in term {}",
                    x.id, y.id, x.pg.voting_term
                );
                self.violation(msg);
                return;
            }
            let s = &x.settings;
            let bound = s.heartbeat_every_ms()
                + s.heartbeat_timeout_ms()
                + 2 * FENCE_OP_MAX
                + s.monitor_interval_ms;
            let protected = x.daemon_alive() && self.g.saturating_sub(x.exposed_since) >= bound;
            if protected {
                let msg = format!(
                    "node{} (term {}) takes writes while node{} (term {}) does, {} ms after its repmgrd or server came back",
                    x.id,
                    x.pg.voting_term,
                    y.id,
                    y.pg.voting_term,
                    self.g.saturating_sub(x.exposed_since)
                );
                self.violation(msg);
                return;
            }
        }
    }

    /// Invariant (c): exactly one node takes writes, while automatic
    /// failover is configured somewhere. (With every standby set to
    /// manual by the end, a primary that fenced itself while a candidate
    /// still held a granted term waits for the operator, as repmgr's
    /// manual mode does: at most one then.)
    pub fn check_exactly_one_primary(&mut self, stable_since: u64) {
        let writers: Vec<Id> = self
            .hosts
            .iter()
            .filter(|h| h.takes_writes())
            .map(|h| h.id)
            .collect();
        let automatic = self
            .hosts
            .iter()
            .any(|h| h.pg.recovery && h.priority > 0 && h.settings.failover == Failover::Automatic);
        if writers.len() > 1 || (writers.is_empty() && automatic) {
            self.violation(format!(
                "{} node(s) take writes {} ms after the cluster became stable: {writers:?}",
                writers.len(),
                self.g - stable_since
            ));
        }
    }

    /// A targeted class's expectation as the stable phase begins (the
    /// faults are over, old primaries without repmgrd still write): these
    /// standbys stream from the primary of the highest term.
    pub fn check_following(&mut self) {
        let Some((ids, why)) = self.expect_following.clone() else {
            return;
        };
        let newest = self
            .hosts
            .iter()
            .filter(|h| h.takes_writes())
            .max_by_key(|h| (h.pg.voting_term, h.pg.tli))
            .map(|h| (h.id, h.pg.voting_term));
        let newest_id = newest.map(|(id, _)| id);
        for id in ids.into_iter().filter(|id| Some(*id) != newest_id) {
            let h = &self.hosts[self.idx(id)];
            let follows = h.pg.recovery && h.pg.streaming && h.pg.upstream == newest_id;
            if !follows {
                let (p, t) = newest.unwrap_or((0, 0));
                let msg = format!(
                    "node{id} does not stream from the primary of the highest term (node{p}, term {t}) as the cluster becomes stable: {why}"
                );
                self.violation(msg);
                return;
            }
        }
    }

    /// A targeted class's expectation at the end: these nodes' servers
    /// run (as the primary or a standby).
    pub fn check_running(&mut self, stable_since: u64) {
        let down: Vec<(Id, &str)> = self
            .expect_running
            .iter()
            .filter(|(id, _)| self.hosts.iter().any(|h| h.id == *id && !h.pg.running))
            .copied()
            .collect();
        for (id, why) in down {
            let msg = format!(
                "node{id} still stopped {} ms after the cluster became stable: {why}",
                self.g - stable_since
            );
            self.violation(msg);
        }
    }

    /// Liveness at the end: a node whose own fence keeps its server
    /// stopped, whose repmgrd runs with `auto_rejoin`, has rejoined once
    /// a primary of a higher term takes writes (whether that repmgrd ran
    /// throughout or was restarted meanwhile, and whichever node
    /// superseded it first, that one may have failed since).
    pub fn check_rejoined(&mut self, stable_since: u64) {
        let newest = self
            .hosts
            .iter()
            .filter(|h| h.takes_writes())
            .max_by_key(|h| (h.pg.voting_term, h.pg.tli))
            .map(|h| (h.id, h.pg.voting_term));
        let Some((p, term)) = newest else {
            return;
        };
        let stuck: Vec<Id> = self
            .hosts
            .iter()
            .filter(|h| {
                h.id != p
                    && h.core.is_some()
                    && !h.exited
                    && h.settings.auto_rejoin
                    && !h.pg.running
                    && !h.pg.crashed
                    && h.durable.fence.is_some()
                    && h.pg.voting_term < term
            })
            .map(|h| h.id)
            .collect();
        for id in stuck {
            let msg = format!(
                "node{id}, stopped by its own fence with auto_rejoin, has not rejoined node{p} (term {term}) {} ms after the cluster became stable",
                self.g - stable_since
            );
            self.violation(msg);
        }
    }
}
