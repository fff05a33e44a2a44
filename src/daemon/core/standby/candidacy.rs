//! A standby's candidacy: the cluster round and the decision it
//! answers (who may stand, who won, whom to follow or wait for).

use super::*;

impl Standby {
    // Long: one match over the phases a cluster round can answer.
    pub(super) fn on_cluster(&mut self, core: &mut Ctx, now: Time, obs: &[NodeObs]) {
        for o in obs {
            if o.reachable {
                self.unreachable_since.remove(&o.id);
            } else {
                self.unreachable_since.entry(o.id).or_insert(now);
            }
            let t = o
                .term
                .max(o.daemon.map_or(0, |d| d.granted_term.max(d.known_term)));
            self.seen_term = self.seen_term.max(t);
        }
        let nodes = core.nodes();
        let a_primary = obs.iter().any(|o| {
            o.is_writable_primary()
                && nodes
                    .iter()
                    .any(|n| n.id == o.id && n.kind != NodeKind::Witness)
        });
        if a_primary {
            self.no_primary_since = None;
        } else if self.no_primary_since.is_none() {
            self.no_primary_since = Some(now);
        }
        match self.phase.clone() {
            Phase::Attaching => {
                if let Some(mut p) = self.primary_in(core, obs, None) {
                    // It answers as the primary whatever its record says
                    // (as when following a winner): when it fails, that is
                    // a failed primary to elect against, not an upstream
                    // standby to re-attach from.
                    p.kind = NodeKind::Primary;
                    p.upstream = None;
                    self.set_upstream(core, p);
                }
            }
            Phase::Electing {
                failed,
                step: Step::Gathering { delayed },
            } => self.decide(core, now, failed, obs, delayed),
            Phase::Electing {
                failed,
                step: Step::Confirming { until, .. },
            } => {
                // Right before promoting: a standby that became visible
                // meanwhile may hold WAL this node lacks.
                let look = core.s.safety.last_look;
                if let Some(better) = self.better_candidate(core, obs).filter(|_| look) {
                    core.log(
                        Level::Warning,
                        format!("node {better} has WAL this node lacks; not promoting"),
                    );
                    self.degrade(core, now, Some(failed), true);
                    return;
                }
                let back = look
                    && obs
                        .iter()
                        .find(|o| o.id == failed.id)
                        .is_some_and(|o| o.is_writable_primary());
                if !back {
                    self.promote(core, now);
                } else if now >= until {
                    core.log(
                        Level::Notice,
                        format!("original primary {failed} reappeared and still takes writes"),
                    );
                    core.event(
                        "repmgrd_failover_aborted",
                        true,
                        format!("original primary {failed} reappeared"),
                        None,
                    );
                    self.degrade(core, now, Some(failed), true);
                }
                // Otherwise wait for it to learn it is superseded and fence.
            }
            Phase::Waiting { failed, .. } => {
                if let Some(p) = self.primary_in(core, obs, Some(failed.id)) {
                    self.follow(core, now, Some(failed), p);
                } else if obs
                    .iter()
                    .find(|o| o.id == failed.id)
                    .is_some_and(|o| o.is_writable_primary() && o.term >= self.known(core))
                {
                    core.log(
                        Level::Notice,
                        format!("original primary {failed} reappeared"),
                    );
                    core.event(
                        "repmgrd_failover_aborted",
                        true,
                        format!("original primary {failed} reappeared"),
                        None,
                    );
                    self.phase = Phase::Healthy;
                    self.upstream = Some(failed.clone());
                    self.watch(core, Some(failed.id));
                }
            }
            Phase::Reattaching { lost } => match self.primary_in(core, obs, Some(lost.id)) {
                Some(p) => self.follow(core, now, Some(lost), p),
                None => {
                    core.log(Level::Warning, "no primary found to re-attach to");
                    self.degrade(core, now, Some(lost), false);
                }
            },
            Phase::Degraded {
                lost,
                next_election,
                ..
            } => self.degraded_round(core, now, obs, lost, next_election),
            _ => {}
        }
    }

    pub(super) fn known(&self, core: &Ctx) -> Term {
        core.book.highest_term()
    }

    /// A node that runs as an unfenced primary of a current term: active
    /// in the metadata, not `except`, and not older than anything this
    /// node knows.
    pub(super) fn primary_in(
        &self,
        core: &Ctx,
        obs: &[NodeObs],
        except: Option<NodeId>,
    ) -> Option<NodeInfo> {
        let known = self.known(core);
        let nodes = core.nodes();
        let checks = core.s.safety.follow_checks;
        obs.iter()
            .filter(|o| o.may_follow(known, core.s.safety))
            .filter(|o| Some(o.id) != except && o.id != core.s.node_id)
            .filter_map(|o| {
                nodes
                    .iter()
                    .find(|n| n.id == o.id && (n.active || !checks) && n.kind != NodeKind::Witness)
            })
            .min_by_key(|n| n.id)
            .cloned()
    }

    // Long: the refusals before a candidacy, in order, each a short early
    // return with its log line and event.
    pub(super) fn decide(
        &mut self,
        core: &mut Ctx,
        now: Time,
        failed: NodeInfo,
        obs: &[NodeObs],
        delayed: bool,
    ) {
        let Some(f) = core.facts.clone() else {
            core.log(
                Level::Warning,
                "unable to gather the cluster state for an election",
            );
            self.degrade(core, now, Some(failed), true);
            return;
        };
        let nodes = f.nodes.clone();
        let Some(me) = nodes.iter().find(|n| n.id == core.s.node_id).cloned() else {
            self.degrade(core, now, Some(failed), true);
            return;
        };
        // This node's own WAL receiver still hears from the failed primary
        // (an unknown sender counts as it), unless that node now answers
        // as a standby itself.
        let failed_is_standby = obs
            .iter()
            .any(|o| o.id == failed.id && o.reachable && o.in_recovery == Some(true));
        let fresh = !failed_is_standby
            && f.receiver.is_some_and(|r| {
                r.streaming
                    && r.last_msg_age <= receiver_window(&core.s)
                    && r.sender.is_none_or(|s| s == failed.id)
            });
        let known = self.known(core);
        let (my_timeline, my_lsn) = obs
            .iter()
            .find(|o| o.id == me.id && o.reachable)
            .map_or((f.timeline, f.lsn), |o| (o.timeline, o.lsn));
        let others: Vec<NodeObs> = obs.iter().filter(|o| o.id != me.id).cloned().collect();
        let obs = &others[..];
        let ballot = Ballot {
            settings: &core.s,
            me: &me,
            my_timeline,
            my_lsn,
            my_receiver_fresh: fresh,
            paused: f.paused,
            failed: &failed,
            nodes: &nodes,
            obs,
            known_term: known,
            sync: SyncSpec::parse(&f.sync_standby_names),
        };
        let outcome = election::decide(&ballot);
        let visible = election::visible_voters(&ballot);
        let total = election::counted_voters(&ballot);
        core.log(
            Level::Info,
            format!("election: {visible} of {total} voter(s) visible, outcome {outcome:?}"),
        );
        match outcome {
            Outcome::NotCandidate(why) => {
                core.log(Level::Notice, format!("not taking action: {why}"));
                if core.s.failover == Failover::Manual {
                    core.event(
                        "standby_disconnect_manual",
                        true,
                        format!(
                            "node {} lost its upstream {failed}; failover is manual",
                            core.me()
                        ),
                        None,
                    );
                }
                self.degrade(core, now, Some(failed), false);
            }
            Outcome::Cancelled(why) => {
                let text = match why {
                    election::Cancel::PrimaryStillVisible { by } if by == core.s.node_id => {
                        "this node still sees the primary (its WAL receiver streams from it)"
                            .to_string()
                    }
                    _ => why.to_string(),
                };
                core.log(Level::Warning, format!("failover cancelled: {text}"));
                if matches!(why, election::Cancel::SyncUnsafe(_)) {
                    core.event(
                        "repmgrd_failover_aborted",
                        false,
                        format!("no promotion after the loss of {failed}: {why}"),
                        None,
                    );
                }
                self.degrade(core, now, Some(failed), true);
            }
            Outcome::FollowExisting { new_primary } => match core.node(new_primary) {
                Some(p) => self.follow(core, now, Some(failed), p),
                None => self.degrade(core, now, Some(failed), true),
            },
            Outcome::Won if core.s.promote_delay_ms > 0 && !delayed => {
                self.start_promote_delay(core, now, failed)
            }
            Outcome::Won if me.upstream.is_none() && !core.s.always_promote => {
                // repmgr's promote_self: stale metadata on the winner.
                core.log(
                    Level::Error,
                    format!(
                        "this node (ID: {}) does not have its upstream_node_id set, not promoting",
                        me.id
                    ),
                );
                core.log(
                    Level::Info,
                    "the local node's metadata has not been updated since it became a standby; set \"always_promote\" to \"true\" to force promotion in this situation",
                );
                core.event(
                    "repmgrd_promote_error",
                    false,
                    format!(
                        "node {} does not have its upstream_node_id set; not promoting",
                        core.me()
                    ),
                    None,
                );
                self.degrade(core, now, Some(failed), true);
            }
            Outcome::Won => {
                if me.upstream.is_none() {
                    core.log(
                        Level::Warning,
                        format!(
                            "this node (ID: {}) does not have its upstream_node_id set, promoting anyway (\"always_promote\" is set to \"true\")",
                            me.id
                        ),
                    );
                }
                self.ask_for_votes(core, now, failed, &f, obs, visible, total)
            }
            Outcome::Lost { winner } => {
                core.log(
                    Level::Notice,
                    format!("node {winner} is the promotion candidate; waiting for it to become primary"),
                );
                self.wait_for(core, now, failed);
            }
            Outcome::NoCandidate => {
                core.log(Level::Warning, "no node is eligible for promotion");
                self.wait_for(core, now, failed);
            }
        }
    }

    pub(super) fn wait_for(&mut self, core: &mut Ctx, now: Time, failed: NodeInfo) {
        self.phase = Phase::Waiting {
            failed,
            until: now.plus(core.s.primary_notification_timeout_ms.max(1_000)),
            next_scan: now.plus(SCAN_MS),
        };
    }
}
