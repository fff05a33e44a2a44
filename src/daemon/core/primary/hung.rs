//! A primary whose server stops answering while its repmgrd runs: crashed,
//! or hung (a stopped postmaster with its backends, a stuck disk). Its
//! heartbeats stop, the voters' promises run out and a standby may be
//! promoted; a hung server that then resumed would take writes. So when
//! the lease is about to run out (where a running server would be
//! stopped), the driver is asked to kill it: it does so only when a
//! postmaster runs and answers nothing, and a crashed server is left.

use super::*;

impl Primary {
    /// When the kill is due while the server is down: the stop margin
    /// before the lease ends (at once without a lease). None once decided
    /// for this outage.
    pub(super) fn kill_due(&self, s: &Settings) -> Option<Time> {
        if self.hung_decided || s.quorum != Quorum::Majority || !s.safety.kill_hung {
            return None;
        }
        let t = self.thresholds(s);
        let at = self
            .lease
            .end()
            .map_or(Time(1), |end| end.minus(t.stop_margin));
        Some(at.max(Time(1)))
    }

    /// Asks for the kill once it is due, once per outage.
    pub(super) fn kill_if_hung(&mut self, core: &mut Ctx, now: Time) {
        let Some(due) = self.kill_due(&core.s) else {
            return;
        };
        if now < due || self.applying.is_some() || core.pending.job {
            return;
        }
        // Right after start the lease is not known yet.
        let s = &core.s;
        if now.since(self.started) < s.heartbeat_every_ms() + s.heartbeat_timeout_ms() {
            return;
        }
        self.hung_decided = true;
        if !core.book.durable.fencing {
            return; // no node can be promoted automatically
        }
        core.log(
            Level::Warning,
            "the local server does not answer and the lease of this primary is about to run out: killing the server if it is hung, before another node can be promoted",
        );
        self.fence(core, FenceHow::Kill);
    }

    /// A fence job failed while the server did not answer: it is down
    /// (hung, or crashed), not stopped by us. Without this a hung server
    /// whose fence was retried back to back was never seen down, so
    /// never killed, and took writes again once it resumed.
    pub(super) fn down_after_failed_job(&mut self, core: &mut Ctx, now: Time) {
        if self.down_in_job.take().is_some() {
            self.local_down(core, now);
        }
    }
}
