//! Timelines, WAL positions and timeline history: what decides whether a
//! node can follow another without losing or mixing up data.

use super::session::RowExt;
use super::session::Sql;
use tokio_postgres::types::PgLsn;

use super::query_error;
use crate::error::Result;

/// Where a node stands in the WAL history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub system_identifier: i64,
    pub in_recovery: bool,
    /// The timeline of the position below.
    pub timeline: u32,
    /// A primary's current insert position; a standby's furthest received
    /// or replayed position (what it would bring along when it follows).
    pub lsn: u64,
}

/// The first four columns of a node's position (see [`position_from`]):
/// system identifier, in recovery, the timeline pg_control or the WAL
/// names, the LSN.
macro_rules! position_head {
    () => {
        "(SELECT system_identifier FROM pg_catalog.pg_control_system()),
        pg_catalog.pg_is_in_recovery(),
        CASE WHEN pg_catalog.pg_is_in_recovery()
          THEN GREATEST(
                 (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()),
                 (SELECT min_recovery_end_timeline FROM pg_catalog.pg_control_recovery()),
                 COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver), 0))::BIGINT
          ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::BIT(32)::BIGINT
        END,
        CASE WHEN pg_catalog.pg_is_in_recovery()
          THEN GREATEST(COALESCE(pg_catalog.pg_last_wal_receive_lsn(), '0/0'),
                        COALESCE(pg_catalog.pg_last_wal_replay_lsn(), '0/0'))
          ELSE pg_catalog.pg_current_wal_lsn()
        END"
    };
}

/// A node's position as SELECT-list expressions ([`POSITION_WIDTH`]
/// columns): [`position_head`], then the newest timeline history file in
/// pg_wal on a standby, NULL here: for roles that may not list pg_wal.
pub const POSITION_COLUMNS: &str = concat!(position_head!(), ", NULL::TEXT");

/// [`POSITION_COLUMNS`] with the history listing, for roles that may list
/// and read pg_wal ([`may_read_history`]).
pub const POSITION_COLUMNS_WITH_HISTORY: &str = concat!(
    position_head!(),
    ", CASE WHEN pg_catalog.pg_is_in_recovery()
          THEN (SELECT pg_catalog.max(name) FROM pg_catalog.pg_ls_waldir()
                 WHERE name ~ '^[0-9A-F]{8}\\.history$')
        END"
);

/// How many columns the position takes at the head of a row.
pub const POSITION_WIDTH: usize = 5;

/// The position columns this session may use.
pub fn position_columns(c: &mut impl Sql) -> Result<&'static str> {
    Ok(if may_read_history(c)? {
        POSITION_COLUMNS_WITH_HISTORY
    } else {
        POSITION_COLUMNS
    })
}

/// Reads the node's position in one round trip (two when a standby's
/// newest history file has to be read).
pub fn position(c: &mut impl Sql) -> Result<Position> {
    let sql = format!("SELECT {}", position_columns(c)?);
    let row = c
        .query_one(&sql, &[])
        .map_err(|e| query_error("retrieving the node's WAL position", &e))?;
    position_from(c, &row)
}

/// The position in the first [`POSITION_WIDTH`] columns of `row`. On a
/// standby the timeline is checked against the history files, which may
/// take a read of the newest one.
pub fn position_from(c: &mut impl Sql, row: &tokio_postgres::Row) -> Result<Position> {
    let tli: i64 = row.val(2)?;
    let lsn: PgLsn = row.val(3)?;
    let newest: Option<String> = row.val(4)?;
    let mut pos = Position {
        system_identifier: row.val(0)?,
        in_recovery: row.val(1)?,
        timeline: tli as u32,
        lsn: u64::from(lsn),
    };
    if pos.in_recovery {
        pos.timeline = standby_timeline(c, pos.timeline, pos.lsn, newest)?;
    }
    Ok(pos)
}

/// Whether this session's role may list pg_wal (pg_monitor) and read its
/// files (pg_read_server_files). Asked once per session.
fn may_read_history(c: &mut impl Sql) -> Result<bool> {
    const YES: &str = "may list and read pg_wal";
    const NO: &str = "may not list or read pg_wal";
    if c.knows(YES) {
        return Ok(true);
    }
    if c.knows(NO) {
        return Ok(false);
    }
    let allowed: bool = c
        .query_one(
            "SELECT pg_catalog.pg_has_role(current_user, 'pg_monitor', 'MEMBER')
                AND pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')",
            &[],
        )
        .map_err(|e| query_error("checking permissions", &e))?
        .val(0)?;
    c.learn(if allowed { YES } else { NO });
    Ok(allowed)
}

/// A standby's timeline at its WAL position. pg_control's timelines lag
/// until the next restartpoint, and `received_tli` is gone with the WAL
/// receiver; a standby that streamed a new timeline and then lost its
/// upstream would look as if it were still on the old one. The history
/// files in its pg_wal tell (`newest`, listed by the position query): the
/// newest one lists where each ancestor timeline ended. Without the
/// permissions to list them, `base` stands.
///
/// A history file alone is no proof the standby switched: its WAL
/// receiver fetches the history of its upstream's timeline before it
/// asks for WAL, also when that timeline forked before the standby's own
/// position and it cannot follow. Such a standby stays on its older
/// timeline, past the fork; taken for the newest one, with its higher
/// LSN, it would win an election without the newest timeline's commits.
/// So the segment files holding its position decide (see
/// [`timeline_from`]).
fn standby_timeline(c: &mut impl Sql, base: u32, lsn: u64, newest: Option<String>) -> Result<u32> {
    let Some(newest) = newest else {
        return Ok(base);
    };
    let Some(Ok(top)) = newest.get(..8).map(|h| u32::from_str_radix(h, 16)) else {
        return Ok(base);
    };
    if top <= base {
        return Ok(base);
    }
    let Some(text) = history_file(c, top)? else {
        return Ok(base);
    };
    let history = parse_history(&text);
    if timeline_at(&history, top, lsn) <= base {
        return Ok(base);
    }
    let segments = segment_timelines(c, lsn)?;
    Ok(timeline_from(base, &history, top, lsn, &segments))
}

/// A standby's timeline at `lsn`: by the history of timeline `top`, unless
/// the WAL segment files holding `lsn` (`segments`: their timelines) show
/// it never reached that timeline there. WAL received or replayed on a
/// timeline sits in segment files named with it, so a standby on the
/// history's timeline has that segment; one left on an older timeline
/// past the fork has only the older one's. No segment of a timeline from
/// `base` on (archive recovery reads its segments under a temporary name)
/// is no evidence: the history stands.
pub fn timeline_from(
    base: u32,
    history: &[HistoryEntry],
    top: u32,
    lsn: u64,
    segments: &[u32],
) -> u32 {
    let by_history = timeline_at(history, top, lsn).max(base);
    segments
        .iter()
        .copied()
        .filter(|t| (base..=by_history).contains(t))
        .max()
        .unwrap_or(by_history)
}

/// The timelines of the WAL segment files in pg_wal that hold the byte
/// before `lsn` (the last one the standby has). Needs pg_monitor (as the
/// listing of history files does).
fn segment_timelines(c: &mut impl Sql, lsn: u64) -> Result<Vec<u32>> {
    let Some(last) = lsn.checked_sub(1).and_then(|l| i64::try_from(l).ok()) else {
        return Ok(Vec::new());
    };
    let row = c
        .query_one(
            "SELECT ARRAY(
               SELECT ('x' || pg_catalog.substr(w.name, 1, 8))::BIT(32)::BIGINT
                 FROM pg_catalog.pg_ls_waldir() w,
                      (SELECT bytes_per_wal_segment::INT8 AS size FROM pg_catalog.pg_control_init()) s
                WHERE w.name ~ '^[0-9A-F]{24}$'
                  AND ('x' || pg_catalog.substr(w.name, 9, 8))::BIT(32)::BIGINT * (4294967296 / s.size)
                      + ('x' || pg_catalog.substr(w.name, 17, 8))::BIT(32)::BIGINT = $1 / s.size)",
            &[&last],
        )
        .map_err(|e| query_error("listing the WAL segment files at the node's position", &e))?;
    let tlis: Vec<i64> = row.val(0)?;
    Ok(tlis
        .into_iter()
        .filter_map(|t| u32::try_from(t).ok())
        .collect())
}

/// The timeline holding `lsn`, given the history of timeline `top`: the
/// first ancestor that ended at or after it, else `top` itself.
pub fn timeline_at(history: &[HistoryEntry], top: u32, lsn: u64) -> u32 {
    history
        .iter()
        .find(|e| lsn <= e.switchpoint)
        .map(|e| e.timeline)
        .unwrap_or(top)
}

/// The history file of `timeline` on this node, if it can be read (needs
/// superuser or pg_read_server_files). Timeline 1 has none.
pub fn history_file(c: &mut impl Sql, timeline: u32) -> Result<Option<String>> {
    if timeline <= 1 {
        return Ok(Some(String::new()));
    }
    let path = format!("pg_wal/{timeline:08X}.history");
    let allowed: bool = c
        .query_one(
            "SELECT pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')",
            &[],
        )
        .map_err(|e| query_error("checking file read permission", &e))?
        .val(0)?;
    if !allowed {
        return Ok(None);
    }
    let row = c
        .query_one(
            "SELECT pg_catalog.pg_read_file($1, 0, 1048576, true)",
            &[&path],
        )
        .map_err(|e| query_error(&format!("reading {path}"), &e))?;
    row.val(0)
}

/// One line of a timeline history file: `parent_tli  switchpoint  reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub timeline: u32,
    /// Where the history left `timeline` for the next one.
    pub switchpoint: u64,
}

pub fn parse_history(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split_whitespace();
            let tli = f.next()?.parse().ok()?;
            let lsn: PgLsn = f.next()?.parse().ok()?;
            Some(HistoryEntry {
                timeline: tli,
                switchpoint: u64::from(lsn),
            })
        })
        .collect()
}

/// Formats an LSN as PostgreSQL does (`0/3000060`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Whether the physical slot exists on this node.
pub fn slot_exists(c: &mut impl Sql, name: &str) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
            &[&name],
        )
        .map_err(|e| query_error("checking replication slots", &e))?;
    row.val(0)
}

/// Creates a physical slot that reserves WAL at once, unless it exists.
pub fn create_slot_if_missing(c: &mut impl Sql, name: &str) -> Result<bool> {
    if slot_exists(c, name)? {
        return Ok(false);
    }
    c.execute(
        "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)",
        &[&name],
    )
    .map_err(|e| query_error(&format!("creating replication slot \"{name}\""), &e))?;
    Ok(true)
}

/// Drops an inactive slot; an active one is left alone (something uses it).
pub fn drop_slot_if_inactive(c: &mut impl Sql, name: &str) -> Result<bool> {
    let n = c
        .execute(
            "SELECT pg_catalog.pg_drop_replication_slot(slot_name)
               FROM pg_catalog.pg_replication_slots
              WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .map_err(|e| query_error(&format!("dropping replication slot \"{name}\""), &e))?;
    Ok(n > 0)
}

/// Whether a standby named `application_name` streams from this node.
pub fn is_streaming_to(c: &mut impl Sql, application_name: &str) -> Result<bool> {
    Ok(streaming_pid(c, application_name)?.is_some())
}

/// The pid of the walsender streaming to the standby named
/// `application_name`, if one is in state `streaming`. A standby that
/// cannot follow this node's timeline connects, "streams" for a moment and
/// is cut off, again and again: callers that must know it really streams
/// check that the same walsender is still there a little later.
pub fn streaming_pid(c: &mut impl Sql, application_name: &str) -> Result<Option<i32>> {
    // pg_stat_replication's own functions, not the view: a new session
    // (`node check` on a standby asks its upstream) skips expanding it.
    let row = c
        .query_typed_opt(
            "SELECT w.pid
               FROM pg_catalog.pg_stat_get_wal_senders() w,
                    pg_catalog.pg_stat_get_activity(w.pid) a
              WHERE a.application_name = $1 AND w.state = 'streaming'
              ORDER BY a.backend_start LIMIT 1",
            &[(&application_name, tokio_postgres::types::Type::TEXT)],
        )
        .map_err(|e| query_error("checking pg_stat_replication", &e))?;
    row.map(|r| r.val(0)).transpose()
}

/// The timeline of this node's last checkpoint. Right after a promotion it
/// is still the old one until the first checkpoint completes, and pg_rewind
/// (which reads it) would see no divergence.
pub fn checkpoint_timeline(c: &mut impl Sql) -> Result<u32> {
    let row = c
        .query_one(
            "SELECT timeline_id::BIGINT FROM pg_catalog.pg_control_checkpoint()",
            &[],
        )
        .map_err(|e| query_error("reading the checkpoint timeline", &e))?;
    let t: i64 = row.val(0)?;
    Ok(t as u32)
}

/// `CHECKPOINT` (superuser, or pg_checkpoint from PostgreSQL 15).
pub fn checkpoint(c: &mut impl Sql) -> Result<()> {
    super::session::with_bound(c, super::session::CHECKPOINT_BOUND, |c| {
        c.batch_execute("CHECKPOINT")
    })
    .map_err(|e| query_error("issuing CHECKPOINT", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_at_a_position() {
        let h = parse_history("1\t0/3000000\tx\n2\t0/5000000\ty\n");
        assert_eq!(timeline_at(&h, 3, 0x2000000), 1);
        assert_eq!(timeline_at(&h, 3, 0x3000000), 1);
        assert_eq!(timeline_at(&h, 3, 0x3000001), 2);
        assert_eq!(timeline_at(&h, 3, 0x6000000), 3);
    }

    #[test]
    fn the_segment_files_at_the_position_decide_whether_the_history_was_followed() {
        // Timeline 2 forked from 1 at 0/6000100.
        let h = parse_history("1\t0/6000100\tx\n");
        // Past the fork with timeline 2's segment: on timeline 2.
        assert_eq!(timeline_from(1, &h, 2, 0x8000000, &[2]), 2);
        assert_eq!(timeline_from(1, &h, 2, 0x6000200, &[1, 2]), 2);
        // Past the fork with timeline 1's segment only: the history was
        // fetched but never followed (the WAL receiver could not).
        assert_eq!(timeline_from(1, &h, 2, 0x8000000, &[1]), 1);
        // No segment at all: no evidence, the history stands.
        assert_eq!(timeline_from(1, &h, 2, 0x8000000, &[]), 2);
        // Before the fork: timeline 1 whatever the files.
        assert_eq!(timeline_from(1, &h, 2, 0x6000000, &[1, 2]), 1);
        // Timeline 3 forked from 2 at 0/7000000; left on 2 past that.
        let h = parse_history("1\t0/6000100\tx\n2\t0/7000000\ty\n");
        assert_eq!(timeline_from(1, &h, 3, 0x9000000, &[1, 2]), 2);
        assert_eq!(timeline_from(2, &h, 3, 0x9000000, &[3]), 3);
        // A segment of a timeline below the lower bound is no evidence.
        assert_eq!(timeline_from(2, &h, 3, 0x9000000, &[1]), 3);
    }

    #[test]
    fn history_parsing_and_lsn_format() {
        let h = parse_history("1\t0/3000108\tno recovery target specified\n\n2\t0/5000000\tx\n");
        assert_eq!(
            h,
            vec![
                HistoryEntry {
                    timeline: 1,
                    switchpoint: 0x3000108
                },
                HistoryEntry {
                    timeline: 2,
                    switchpoint: 0x5000000
                },
            ]
        );
        assert_eq!(format_lsn(0x1_0300_0108), "1/3000108");
    }
}
