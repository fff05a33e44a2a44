//! Retrying a lost upstream on the clock: `reconnect_attempts` checks,
//! `reconnect_interval` apart from the first failure whether the ones
//! before have answered or not; then an election (a primary) or a
//! re-attach (an upstream standby).

use super::*;

impl Standby {
    /// The next retry attempt is due at this time (None once all are out).
    pub(super) fn attempt_due(&self, s: &Settings) -> Option<Time> {
        match self.phase {
            Phase::Retrying { first, sent, .. } if sent < s.reconnect_attempts => {
                Some(first.plus(s.reconnect_interval_ms * u64::from(sent)))
            }
            _ => None,
        }
    }

    /// Sends every retry attempt that is due.
    pub(super) fn send_due_attempts(&mut self, core: &mut Ctx, now: Time) {
        while let Some(due) = self.attempt_due(&core.s) {
            if now < due {
                break;
            }
            let Some(up) = self.upstream.clone() else {
                break;
            };
            let Phase::Retrying { sent, .. } = &mut self.phase else {
                break;
            };
            *sent += 1;
            let attempt = *sent;
            core.log(
                Level::Info,
                format!(
                    "checking state of node {up}, {attempt} of {} attempts",
                    core.s.reconnect_attempts
                ),
            );
            core.send_check(up.id, up.kind != NodeKind::Primary);
        }
    }

    /// An answer to a check of the upstream being retried (numbered from
    /// the loss on).
    pub(super) fn retry_answered(&mut self, core: &mut Ctx, now: Time, ok: bool) {
        let Phase::Retrying {
            first,
            sent,
            failed,
            from_seq,
        } = self.phase.clone()
        else {
            return;
        };
        let Some(up) = self.upstream.clone() else {
            return;
        };
        if ok {
            core.log(
                Level::Notice,
                format!("node {up} has recovered, reconnecting"),
            );
            core.event(
                "repmgrd_upstream_reconnect",
                true,
                format!("reconnected to upstream node {up}"),
                None,
            );
            self.last_ok = Some(now);
            self.phase = Phase::Healthy;
            self.watching = None;
            self.watch(core, Some(up.id));
        } else if failed + 1 >= core.s.reconnect_attempts {
            self.give_up_on(core, now, up);
        } else {
            self.phase = Phase::Retrying {
                first,
                sent,
                failed: failed + 1,
                from_seq,
            };
        }
    }

    /// Every reconnection attempt to `up` failed: an election when it was
    /// the primary, else another upstream.
    fn give_up_on(&mut self, core: &mut Ctx, now: Time, up: NodeInfo) {
        core.log(
            Level::Warning,
            format!(
                "unable to reconnect to node {up} after {} attempts",
                core.s.reconnect_attempts
            ),
        );
        if up.kind == NodeKind::Primary {
            self.start_election(core, now, up);
        } else {
            self.reattach(core, now, up);
        }
    }

    /// The upstream stopped answering: retry on the clock from `first`.
    /// `failed_check` is the failed check that counts as the first attempt
    /// (None when the connection closed: the first attempt is sent now);
    /// answers to checks numbered below `from_seq` are not counted.
    pub(super) fn lose_upstream(
        &mut self,
        core: &mut Ctx,
        now: Time,
        first: Time,
        failed_check: Option<u64>,
        from_seq: u64,
    ) {
        let Some(up) = self.upstream.clone() else {
            return;
        };
        self.watch(core, None);
        core.log(
            Level::Warning,
            format!("unable to connect to upstream node {up}"),
        );
        core.event(
            "repmgrd_upstream_disconnect",
            false,
            format!("lost connection to upstream node {up}"),
            None,
        );
        self.unreachable_since.entry(up.id).or_insert(first);
        let done = u32::from(failed_check.is_some());
        if done >= core.s.reconnect_attempts {
            self.give_up_on(core, now, up);
            return;
        }
        self.phase = Phase::Retrying {
            first,
            sent: done,
            failed: done,
            from_seq,
        };
        self.timers(core, now);
    }
}
