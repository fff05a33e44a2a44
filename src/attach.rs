//! Whether a node can stream from another without losing or mixing data:
//! repmgr's `check_node_can_attach`, as a pure function.
//!
//! A node can follow a target when both come from the same `initdb` (system
//! identifier) and the node's WAL is a prefix of the target's history: on
//! the same timeline it must not be ahead; on an older timeline it must not
//! have gone past the point where the target's history left that timeline.

use crate::db::timeline::{format_lsn, HistoryEntry, Position};

/// Why a node cannot follow a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    DifferentSystem {
        local: i64,
        target: i64,
    },
    AheadOnSameTimeline {
        timeline: u32,
        local: u64,
        target: u64,
    },
    NewerTimeline {
        local: u32,
        target: u32,
    },
    TimelineNotInHistory {
        local: u32,
        target: u32,
    },
    Diverged {
        timeline: u32,
        switchpoint: u64,
        local: u64,
    },
    /// The target's history could not be read (permissions).
    HistoryUnavailable {
        target: u32,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::DifferentSystem { local, target } => write!(
                f,
                "the nodes belong to different clusters: system identifier {local} here, {target} on the target"
            ),
            Refusal::AheadOnSameTimeline { timeline, local, target } => write!(
                f,
                "this node is ahead of the target on timeline {timeline}: its WAL reaches {}, the target's only {}",
                format_lsn(*local),
                format_lsn(*target)
            ),
            Refusal::NewerTimeline { local, target } => write!(
                f,
                "this node is on timeline {local}, newer than the target's timeline {target}"
            ),
            Refusal::TimelineNotInHistory { local, target } => write!(
                f,
                "timeline {local} of this node is not in the history of the target's timeline {target}"
            ),
            Refusal::Diverged { timeline, switchpoint, local } => write!(
                f,
                "the target's history forked off timeline {timeline} at {}, but this node has WAL up to {}",
                format_lsn(*switchpoint),
                format_lsn(*local)
            ),
            Refusal::HistoryUnavailable { target } => write!(
                f,
                "the history of the target's timeline {target} could not be read"
            ),
        }
    }
}

/// Decides whether `local` can stream from `target`. `history` is the
/// target's timeline history (None when it could not be read).
pub fn can_follow(
    local: &Position,
    target: &Position,
    history: Option<&[HistoryEntry]>,
) -> Result<(), Refusal> {
    if local.system_identifier != target.system_identifier {
        return Err(Refusal::DifferentSystem {
            local: local.system_identifier,
            target: target.system_identifier,
        });
    }
    if local.timeline == target.timeline {
        if local.lsn > target.lsn {
            return Err(Refusal::AheadOnSameTimeline {
                timeline: local.timeline,
                local: local.lsn,
                target: target.lsn,
            });
        }
        return Ok(());
    }
    if local.timeline > target.timeline {
        return Err(Refusal::NewerTimeline {
            local: local.timeline,
            target: target.timeline,
        });
    }
    let history = history.ok_or(Refusal::HistoryUnavailable {
        target: target.timeline,
    })?;
    let entry = history
        .iter()
        .find(|e| e.timeline == local.timeline)
        .ok_or(Refusal::TimelineNotInHistory {
            local: local.timeline,
            target: target.timeline,
        })?;
    if local.lsn > entry.switchpoint {
        return Err(Refusal::Diverged {
            timeline: local.timeline,
            switchpoint: entry.switchpoint,
            local: local.lsn,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(tli: u32, lsn: u64) -> Position {
        Position {
            system_identifier: 42,
            in_recovery: true,
            timeline: tli,
            lsn,
        }
    }

    const HIST: &[HistoryEntry] = &[HistoryEntry {
        timeline: 1,
        switchpoint: 1000,
    }];

    #[test]
    fn same_timeline_behind_or_equal_is_fine() {
        assert_eq!(can_follow(&pos(1, 500), &pos(1, 500), None), Ok(()));
        assert_eq!(can_follow(&pos(1, 400), &pos(1, 500), None), Ok(()));
    }

    #[test]
    fn same_timeline_ahead_is_refused() {
        assert!(matches!(
            can_follow(&pos(1, 600), &pos(1, 500), None),
            Err(Refusal::AheadOnSameTimeline { .. })
        ));
    }

    #[test]
    fn older_timeline_up_to_the_fork_is_fine() {
        assert_eq!(can_follow(&pos(1, 1000), &pos(2, 5000), Some(HIST)), Ok(()));
        assert_eq!(can_follow(&pos(1, 10), &pos(2, 5000), Some(HIST)), Ok(()));
    }

    #[test]
    fn older_timeline_past_the_fork_diverged() {
        let r = can_follow(&pos(1, 1001), &pos(2, 5000), Some(HIST));
        assert!(matches!(
            r,
            Err(Refusal::Diverged {
                timeline: 1,
                switchpoint: 1000,
                local: 1001
            })
        ));
    }

    #[test]
    fn other_refusals() {
        let mut other = pos(1, 1);
        other.system_identifier = 7;
        assert!(matches!(
            can_follow(&pos(1, 1), &other, None),
            Err(Refusal::DifferentSystem { .. })
        ));
        assert!(matches!(
            can_follow(&pos(3, 1), &pos(2, 9), Some(HIST)),
            Err(Refusal::NewerTimeline { .. })
        ));
        assert!(matches!(
            can_follow(
                &pos(1, 1),
                &pos(3, 9),
                Some(&[HistoryEntry {
                    timeline: 2,
                    switchpoint: 5
                }])
            ),
            Err(Refusal::TimelineNotInHistory { .. })
        ));
        assert!(matches!(
            can_follow(&pos(1, 1), &pos(2, 9), None),
            Err(Refusal::HistoryUnavailable { .. })
        ));
    }
}
