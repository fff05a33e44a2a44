//! A primary's jobs finished: a fence applied or lifted, a promotion's
//! aftermath, a rejoin; and the repmgrd_fence event.

use super::*;

impl Primary {
    pub(super) fn on_done(&mut self, core: &mut Ctx, now: Time, d: Done) {
        match d {
            Done::Fenced {
                how: FenceHow::Kill,
                ok: Err(why),
            } => {
                // Not killed: crashed (nothing runs that could resume) or
                // answering after all. Neither is a fence, nor a failure.
                self.applying = None;
                core.log(
                    Level::Notice,
                    format!("the local server was not killed: {why}"),
                );
            }
            Done::Fenced { how, ok } => {
                self.applying = None;
                match ok {
                    Ok(()) => {
                        self.down_in_job = None;
                        self.applied = Some(how);
                        self.fence_error = None;
                        self.record_fence(core);
                        if matches!(
                            how,
                            FenceHow::Demote { .. } | FenceHow::Stop | FenceHow::Kill
                        ) && core.s.auto_rejoin
                            && self.superseded.is_some()
                        {
                            self.rejoin(core, now);
                        }
                    }
                    Err(why) if self.fence_error.as_deref() == Some(why.as_str()) => {
                        core.log(Level::Debug, format!("fencing failed again: {why}"));
                        self.down_after_failed_job(core, now);
                    }
                    Err(why) => {
                        core.log(Level::Error, why.clone());
                        core.event(
                            "repmgrd_fence",
                            false,
                            format!("fencing node {} failed: {why}", core.me()),
                            None,
                        );
                        self.fence_error = Some(why);
                        self.down_after_failed_job(core, now);
                    }
                }
            }
            Done::Unfenced { ok } => {
                self.applying = None;
                match ok {
                    Ok(()) => {
                        self.applied = None;
                        self.evented = false;
                        core.book.durable.fence = None;
                        let d = core.book.durable;
                        core.persist(Some(d));
                        core.log(
                            Level::Notice,
                            format!(
                                "node {} unfenced: the majority is back and no other node was promoted",
                                core.me()
                            ),
                        );
                        core.out.push(Action::FenceHook {
                            event: "repmgrd_unfence",
                        });
                        core.event(
                            "repmgrd_unfence",
                            true,
                            format!("node {} unfenced", core.me()),
                            None,
                        );
                    }
                    Err(why) => core.log(Level::Error, why),
                }
            }
            Done::Rejoined { ok, target } => match ok {
                Ok(details) => {
                    core.log(Level::Notice, details);
                    // Its upstream now: not necessarily the node it was
                    // prepared for, which may have failed since (the
                    // standby it becomes checks that it streams from it).
                    self.prepared_for = Some(target);
                    core.book.durable.fence = None;
                    let d = core.book.durable;
                    core.persist(Some(d));
                }
                Err(why) => {
                    core.log(Level::Error, "auto_rejoin failed; this node stays fenced");
                    core.log(Level::Error, why);
                }
            },
            _ => {}
        }
    }

    /// One repmgrd_fence event per episode: on the new primary when there
    /// is one.
    pub(super) fn record_fence(&mut self, core: &mut Ctx) {
        core.out.push(Action::FenceHook {
            event: "repmgrd_fence",
        });
        if self.evented {
            return;
        }
        self.evented = true;
        let me = core.me();
        match self.superseded {
            Some((term, Some(by))) => {
                let who = core
                    .node(by)
                    .map_or(format!("node {by}"), |n| format!("node {n}"));
                core.event_on(
                    by,
                    "repmgrd_fence",
                    true,
                    format!(
                        "node {me} fenced: {who} was promoted on a newer timeline (term {term})"
                    ),
                );
            }
            Some((term, None)) => core.event(
                "repmgrd_fence",
                true,
                format!("node {me} fenced: a promotion happened in term {term}"),
                None,
            ),
            None => core.event(
                "repmgrd_fence",
                true,
                format!("node {me} fenced: it cannot see a majority of the voters"),
                None,
            ),
        }
    }
}
