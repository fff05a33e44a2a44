//! A fenced primary finding its way back as a standby.
//!
//! - auto_rejoin never trusts the node that superseded it to still be the
//!   primary: that node may have failed since (and a later one been
//!   promoted). Each attempt first runs a cluster round and rejoins the
//!   writable primary of the highest term among those of no lower term
//!   than it knows; with none in sight it waits for the next attempt.
//! - A server its own fence keeps stopped takes no heartbeats' answers
//!   (its metadata may name it failed, so no primary sends it any), and a
//!   repmgrd restarted meanwhile knows no voters at all: every
//!   `election_rerun_interval` it runs a cluster round, and a writable
//!   primary of a higher term than its own supersedes it, as a voter's
//!   answer would. It is never unfenced from such a round.

use super::*;

impl Primary {
    /// A primary whose repmgrd starts while the server is down and its
    /// state file records a fence of its own: the server is treated as
    /// stopped by that fence (never started, never killed), and its own
    /// term is the one the state file knows it held, if any.
    pub(in super::super) fn stopped(core: &mut Ctx, now: Time) -> Primary {
        let d = core.book.durable;
        let term = if d.known_primary == Some(core.s.node_id) {
            d.known_term
        } else {
            0
        };
        let superseded = match d.fence {
            Some(FenceState::Superseded { term, by }) => Some((term, by)),
            _ => None,
        };
        Primary {
            applied: Some(FenceHow::Stop),
            superseded,
            evented: true,
            // Unknown until the server answers again.
            timeline: 0,
            ..Primary::promoted(term, Lease::new(term, 1), now, 0)
        }
    }

    /// Asks for a rejoin: the target is chosen from the cluster round it
    /// starts (see [`Self::on_cluster_stopped`]). At most once per
    /// `election_rerun_interval`.
    pub(super) fn rejoin(&mut self, core: &mut Ctx, now: Time) {
        if self.rejoin_after.is_some_and(|t| now < t) {
            return;
        }
        self.rejoin_after = Some(now.plus(core.s.election_rerun_interval_ms.max(1_000)));
        if let Some(FenceHow::Demote { .. }) = self.applied {
            // Demoted: the server runs in recovery, and is a standby's
            // business at the next read (a standby whose upstream fails
            // looks for the new primary itself); the rejoin rewinds it
            // towards the node its primary_conninfo names.
            if let Some((_, Some(target))) = self.superseded {
                core.log(
                    Level::Notice,
                    format!(
                        "auto_rejoin: rejoining node {} as a standby of the new primary",
                        core.me()
                    ),
                );
                core.job(Action::Rejoin { target });
            }
            return;
        }
        self.rejoin_wanted = true;
        self.next_look = now.plus(core.s.election_rerun_interval_ms.max(1_000));
        core.gather();
    }

    /// A server stopped by its own fence, not known to be superseded:
    /// looks for a newer primary now and then.
    pub(super) fn look_while_stopped(&mut self, core: &mut Ctx, now: Time) {
        let stopped = self.applied == Some(FenceHow::Stop) && self.down_since.is_none();
        if !stopped || self.superseded.is_some() || now < self.next_look {
            return;
        }
        self.next_look = now.plus(core.s.election_rerun_interval_ms.max(1_000));
        core.gather();
    }

    /// A cluster round while the server is stopped by its own fence: a
    /// newer primary supersedes it; a rejoin asked for goes to the
    /// writable primary of the highest term (none: it waits).
    pub(super) fn on_cluster_stopped(&mut self, core: &mut Ctx, now: Time, obs: &[NodeObs]) {
        if self.applied != Some(FenceHow::Stop) || self.down_since.is_some() {
            return;
        }
        let me = core.s.node_id;
        let known = core.book.durable.known_term;
        // Of no lower term than any this node knows of, its own included.
        let floor = self.superseded.map_or(known, |(t, _)| t.max(known));
        let newest = obs
            .iter()
            .filter(|o| o.id != me && o.may_follow(floor, core.s.safety))
            .max_by_key(|o| (o.term, o.timeline));
        if let Some(o) = newest.filter(|o| o.term > self.term) {
            if self.superseded.is_none_or(|(t, _)| o.term > t) {
                self.supersede(core, o.term, Some(o.id));
                self.evaluate(core, now);
            }
        }
        if !std::mem::take(&mut self.rejoin_wanted) || !core.s.auto_rejoin {
            return;
        }
        match newest.filter(|o| o.term > self.term) {
            Some(o) => {
                core.log(
                    Level::Notice,
                    format!(
                        "auto_rejoin: rejoining node {} as a standby of the new primary (node {}, term {})",
                        core.me(),
                        o.id,
                        o.term
                    ),
                );
                core.job(Action::Rejoin { target: o.id });
            }
            None => core.log(
                Level::Info,
                format!("auto_rejoin: no writable primary of term {floor} or later is reachable; waiting"),
            ),
        }
    }
}
