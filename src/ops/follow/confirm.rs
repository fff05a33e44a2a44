//! Knowing, within milliseconds, that a re-pointed standby really follows
//! its new upstream.
//!
//! Seeing a walsender for the standby in `pg_stat_replication` is not
//! enough: a standby that cannot follow the upstream's timeline connects,
//! "streams" for a moment and is cut off, again and again. What such a
//! standby cannot show, asked on the standby itself, is all of:
//!
//! - its WAL receiver streaming on the upstream's current timeline
//!   (`received_tli`). A standby whose WAL went past the point where the
//!   upstream's timeline forked off its own is never sent there: its
//!   startup process refuses to switch to a timeline that "forked off
//!   before the current recovery point", and keeps asking for the old one,
//!   which the upstream either refuses (start point not in its history) or
//!   ends at the fork point;
//! - having flushed at least the upstream's sendable position read before
//!   the switch ([`Goal::lsn`]). That point lies past the fork point (the
//!   upstream's first record on its timeline is there), so only WAL of the
//!   new timeline, received from the upstream, reaches it; yet it needs no
//!   new WAL on the upstream: what was already there is enough;
//! - having replayed up to it too, unless replay is held back on purpose
//!   (paused, `recovery_min_apply_delay`). This catches a standby on the
//!   same timeline number but another history (promoted on its own): it
//!   receives the upstream's WAL, but its startup process cannot read a
//!   record where its own WAL ended, and drops the connection.
//!
//! Plus the upstream listing a walsender for it as `streaming`, so that a
//! WAL receiver still connected to the previous upstream (the reload takes
//! effect asynchronously) is not mistaken for the new one.
//!
//! [`crate::attach::can_follow`] refuses the diverged cases before anything
//! changes; this is what proves the result, and it replaced a fixed 500 ms
//! of watching the walsender stay up.

use std::time::Duration;

use crate::config::Config;
use crate::db::{self, receiver::Progress, timeline::format_lsn, Session};
use crate::error::{Error, ExitCode, Result};

/// Short: the standby usually streams within tens of milliseconds.
const POLL: Duration = Duration::from_millis(10);

/// Where the new upstream stood just before the standby was re-pointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goal {
    pub timeline: u32,
    /// Its sendable position ([`db::receiver::sendable_lsn`]).
    pub lsn: u64,
}

/// Reads the [`Goal`] on the upstream; call before re-pointing.
pub fn goal(upstream: &mut Session) -> Result<Goal> {
    let timeline = db::timeline::position(upstream)?.timeline;
    let lsn = db::receiver::sendable_lsn(upstream)?;
    Ok(Goal { timeline, lsn })
}

/// Whether the standby's own view proves it follows (see the module
/// documentation).
pub fn reached(p: &Progress, goal: &Goal) -> bool {
    p.streaming
        && p.received_tli == Some(goal.timeline)
        && p.flushed.is_some_and(|f| f >= goal.lsn)
        && (p.replay_held || p.replayed.is_some_and(|r| r >= goal.lsn))
}

/// Waits up to `timeout` until the local standby follows `upstream` as
/// [`reached`] says and the upstream streams to it. `local` is a session
/// to the standby, if one survived the reload (else one is opened, and
/// reopened if it breaks: a restart may be under way).
pub fn wait_following(
    cfg: &Config,
    version_num: i32,
    mut local: Option<Session>,
    upstream: &mut Session,
    goal: &Goal,
    timeout: Duration,
) -> Result<()> {
    let mut last: Option<Progress> = None;
    let mut failure = None;
    let mut local_error: Option<Error> = None;
    let done = crate::poll::until(timeout, POLL, || {
        // The upstream first: once it streams to this node, the receiver
        // the standby shows next is one connected to it.
        match db::timeline::streaming_pid(upstream, &cfg.node_name) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                failure = Some(e);
                return Some(());
            }
        }
        if local.is_none() {
            match connect_local(cfg) {
                Ok(s) => local = Some(s),
                Err(e) => {
                    local_error = Some(e);
                    return None;
                }
            }
        }
        let s = local.as_mut()?;
        match db::receiver::progress(s, version_num) {
            Ok(p) => {
                last = Some(p);
                reached(&p, goal).then_some(())
            }
            Err(e) => {
                local_error = Some(e);
                local = None;
                None
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    if done.is_some() {
        return Ok(());
    }
    let err = Error::new(
        ExitCode::FollowFail,
        format!(
            "this node did not start streaming from the new upstream within {} seconds",
            timeout.as_secs()
        ),
    );
    Err(match (last, local_error) {
        (Some(p), _) => err.detail(describe(&p, goal)),
        (None, Some(e)) => err.detail(format!("this node could not be asked: {e}")),
        (None, None) => err.detail("the new upstream never listed this node as streaming"),
    })
}

fn connect_local(cfg: &Config) -> Result<Session> {
    let ci = crate::conninfo::parse_described(&cfg.conninfo, "conninfo in the configuration file")?;
    db::reach::connect_node(&ci, &cfg.node_name, cfg.node_id.unwrap_or_default())
}

/// What the standby showed last, against what was needed.
fn describe(p: &Progress, goal: &Goal) -> String {
    let lsn = |l: Option<u64>| l.map(format_lsn).unwrap_or_else(|| "-".into());
    let tli = p
        .received_tli
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "its WAL receiver {} (timeline {tli}, flushed up to {}), replayed up to {}; \
         needed: timeline {}, {} flushed and replayed",
        if p.streaming {
            "streams"
        } else {
            "does not stream"
        },
        lsn(p.flushed),
        lsn(p.replayed),
        goal.timeline,
        format_lsn(goal.lsn)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOAL: Goal = Goal {
        timeline: 2,
        lsn: 0x3000100,
    };

    fn following() -> Progress {
        Progress {
            streaming: true,
            received_tli: Some(2),
            flushed: Some(0x3000100),
            replayed: Some(0x3000100),
            replay_held: false,
        }
    }

    #[test]
    fn streaming_on_the_new_timeline_up_to_the_goal_counts() {
        assert!(reached(&following(), &GOAL));
        let ahead = Progress {
            flushed: Some(0x4000000),
            replayed: Some(0x3800000),
            ..following()
        };
        assert!(reached(&ahead, &GOAL));
    }

    #[test]
    fn the_old_timeline_never_counts() {
        // A diverged standby: far ahead, but on the timeline it forked from.
        let diverged = Progress {
            received_tli: Some(1),
            flushed: Some(0x9000000),
            replayed: Some(0x9000000),
            ..following()
        };
        assert!(!reached(&diverged, &GOAL));
    }

    #[test]
    fn short_of_the_goal_or_not_streaming_does_not_count() {
        let behind = Progress {
            flushed: Some(0x3000000),
            ..following()
        };
        assert!(!reached(&behind, &GOAL));
        let idle = Progress {
            streaming: false,
            ..following()
        };
        assert!(!reached(&idle, &GOAL));
        assert!(!reached(&Progress::default(), &GOAL));
    }

    #[test]
    fn replay_counts_unless_held_back() {
        let stuck = Progress {
            replayed: Some(0x2000000),
            ..following()
        };
        assert!(!reached(&stuck, &GOAL));
        let delayed = Progress {
            replay_held: true,
            ..stuck
        };
        assert!(reached(&delayed, &GOAL));
    }
}
