//! `repmgr service status` (also `daemon status`): every node's
//! PostgreSQL and repmgrd state, probed in parallel. The probes and the
//! repmgrd table make [`ServiceRow`]s; the table and the CSV are rendered
//! from them alone.

use super::{read_nodes, verbose, Ctx};
use crate::db::takeover::LegacyDaemon;
use crate::db::{self, daemon_status::DaemonStatus, nodes::NodeRecord, nodes::NodeType};
use crate::error::Result;
use crate::ops::cluster_view::{self as cluster, Probe, Reach};
use crate::output;
use crate::output::json::Json;

/// What one node told us about repmgrd: its copy of the whole table, and
/// its own pause flag (the one its repmgrd obeys).
#[derive(Debug, Clone, Default)]
struct NodeView {
    rows: Option<Vec<DaemonStatus>>,
    own_paused: Option<bool>,
    /// repmgr 5's repmgrd on that node, where its extension is loaded (a
    /// cluster being taken over node by node).
    legacy: Option<LegacyDaemon>,
}

/// The repmgrd part of a `service status` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusLine {
    pub pg_running: bool,
    pub running: bool,
    pub pid: Option<i32>,
    pub paused: bool,
    /// Whole seconds; None for a primary, or when never seen.
    pub upstream_last_seen: Option<i64>,
}

/// Combines a node's probe with the repmgrd row that describes it.
pub(crate) fn status_line(
    n: &NodeRecord,
    p: &Probe,
    row: Option<&DaemonStatus>,
    own_paused: Option<bool>,
) -> StatusLine {
    if p.reach != Reach::Up {
        return StatusLine {
            pg_running: false,
            running: false,
            pid: None,
            paused: false,
            upstream_last_seen: None,
        };
    }
    let running = row.is_some_and(|r| r.is_running());
    let pid = row.and_then(|r| r.pid);
    let paused = own_paused.unwrap_or_else(|| row.is_some_and(|r| r.paused));
    // As repmgr's get_upstream_last_seen: -1 for a node running as primary.
    let is_primary = p.in_recovery == Some(false) && n.node_type != NodeType::Witness;
    let upstream_last_seen = if is_primary {
        None
    } else {
        row.and_then(|r| r.upstream_last_seen_secs)
            .map(|s| s.max(0.0).floor() as i64)
    };
    StatusLine {
        pg_running: true,
        running,
        pid,
        paused,
        upstream_last_seen,
    }
}

/// The repmgrd part of a line from repmgr 5's shared memory, as its own
/// `service status` shows it.
fn legacy_line(n: &NodeRecord, p: &Probe, d: &LegacyDaemon) -> StatusLine {
    let is_primary = p.in_recovery == Some(false) && n.node_type != NodeType::Witness;
    StatusLine {
        pg_running: true,
        running: true,
        pid: Some(d.pid),
        paused: d.paused,
        upstream_last_seen: if is_primary {
            None
        } else {
            d.upstream_last_seen
        },
    }
}

/// One node's line of `service status`, in every output format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServiceRow {
    pub node_id: i32,
    pub node_name: String,
    pub node_type: NodeType,
    pub location: String,
    pub priority: i32,
    /// The Status and Upstream cells, as `cluster show` has them.
    pub status: String,
    pub upstream: String,
    pub repmgrd: StatusLine,
}

/// What `service status` found: the rows, and the issues logged under the
/// table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServiceReport {
    pub rows: Vec<ServiceRow>,
    pub warnings: Vec<String>,
    /// Of `warnings`, those repmgr would not report (a repmgrd stopped or
    /// paused): with only these, stdout stays as repmgr's (no blank line).
    pub beyond_repmgr: usize,
    /// A node could not be reached (the --verbose hint).
    pub connection_errors: bool,
}

/// The CSV line: `id,name,type,pg_running,repmgrd_running,pid,paused,
/// priority,upstream_last_seen,location`, -1 for unknown, as repmgr.
pub(crate) fn csv_row(r: &ServiceRow) -> String {
    let s = &r.repmgrd;
    let (running, paused) = if s.pg_running {
        (i32::from(s.running), i32::from(s.paused))
    } else {
        (-1, -1)
    };
    let last_seen = match (s.pid, s.upstream_last_seen) {
        (Some(_), Some(secs)) => secs,
        _ => -1,
    };
    output::csv_line(&[
        r.node_id.to_string(),
        r.node_name.clone(),
        r.node_type.to_string(),
        i32::from(s.pg_running).to_string(),
        running.to_string(),
        s.pid.unwrap_or(-1).to_string(),
        paused.to_string(),
        r.priority.to_string(),
        last_seen.to_string(),
        r.location.clone(),
    ])
}

/// The repmgrd, PID, Paused? and Upstream last seen cells.
pub(crate) fn repmgrd_cells(s: &StatusLine, compact: bool) -> [String; 4] {
    if !s.pg_running {
        return ["n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()];
    }
    let running = if s.running { "running" } else { "not running" };
    let Some(pid) = s.pid else {
        return [running.into(), "n/a".into(), "n/a".into(), "n/a".into()];
    };
    let paused = if s.paused { "yes" } else { "no" };
    let seen = match s.upstream_last_seen {
        None => "n/a".to_string(),
        Some(secs) if compact => format!("{secs} sec(s) ago"),
        Some(secs) => format!("{secs} second(s) ago"),
    };
    [running.into(), pid.to_string(), paused.into(), seen]
}

/// `repmgr service status`: every node's PostgreSQL and repmgrd state.
/// Exits 0 whatever it finds; only unreadable metadata is an error.
pub fn status(ctx: &Ctx) -> Result<()> {
    verbose(ctx, "connecting to database");
    let mut conn = ctx.connect_local()?;
    let nodes = read_nodes(&mut conn)?;
    let local_rows = db::daemon_status::all(&mut conn)?;
    drop(conn);
    let views = cluster::probe_all_with(&nodes, |n, c| NodeView {
        rows: db::daemon_status::all(c).ok(),
        own_paused: db::daemon_status::is_paused(c, n.node_id).ok(),
        legacy: db::takeover::legacy_daemon(c).ok().flatten(),
    });
    let rows = freshest_rows(&nodes, &views).unwrap_or(local_rows);
    let report = report(&nodes, &views, &rows, ctx.opts.verbose);

    if ctx.opts.json {
        // The issues are in the document; hints stay on stderr.
        print!("{}", render_json(&report));
        if report.connection_errors && !ctx.opts.verbose && !ctx.opts.terse {
            crate::log_hint!("execute with --verbose option to see connection error messages");
        }
        return Ok(());
    }
    if ctx.opts.csv {
        print!("{}", render_csv(&report.rows));
        return Ok(());
    }
    print!(
        "{}",
        render_table(&report.rows, ctx.opts.detail, ctx.opts.compact)
    );
    if !report.warnings.is_empty() && !ctx.opts.terse {
        if report.warnings.len() > report.beyond_repmgr {
            // repmgr's blank line before its issues
            println!();
        }
        // repmgr logs the list as one message ending in a newline.
        crate::log_warning!("{}\n", render_issues(&report.warnings));
        if report.connection_errors && !ctx.opts.verbose {
            crate::log_hint!("execute with --verbose option to see connection error messages");
        }
    }
    Ok(())
}

/// The repmgrd table as the primary has it: the freshest (repmgrd writes
/// there) and stamped by its clock. None when no primary answered.
fn freshest_rows(
    nodes: &[NodeRecord],
    views: &[(Probe, Option<NodeView>)],
) -> Option<Vec<DaemonStatus>> {
    nodes
        .iter()
        .zip(views)
        .find(|(n, (p, _))| {
            n.node_type == NodeType::Primary && p.reach == Reach::Up && p.in_recovery == Some(false)
        })
        .or_else(|| {
            nodes
                .iter()
                .zip(views)
                .find(|(_, (p, _))| p.reach == Reach::Up && p.in_recovery == Some(false))
        })
        .and_then(|(_, (_, v))| v.as_ref().and_then(|v| v.rows.clone()))
}

/// The rows and issues, in the nodes' order, from the probes and the
/// repmgrd table `rows`; `verbose` spells out connection errors.
fn report(
    nodes: &[NodeRecord],
    views: &[(Probe, Option<NodeView>)],
    rows: &[DaemonStatus],
    verbose: bool,
) -> ServiceReport {
    let probes: Vec<Probe> = views.iter().map(|(p, _)| p.clone()).collect();
    let mut out = ServiceReport {
        rows: Vec::new(),
        warnings: Vec::new(),
        beyond_repmgr: 0,
        connection_errors: false,
    };
    for (n, (p, v)) in nodes.iter().zip(views) {
        let row = rows.iter().find(|r| r.node_id == n.node_id);
        let own = v.as_ref().and_then(|v| v.own_paused);
        let mut s = status_line(n, p, row, own);
        let who = format!("node {}", n);
        let legacy = v.as_ref().and_then(|v| v.legacy.as_ref());
        if let Some(d) = legacy.filter(|d| d.running && s.pg_running && !s.running) {
            s = legacy_line(n, p, d);
            out.warnings.push(format!(
                "{who} is monitored by repmgr 5's repmgrd (PID {}), not by this repmgr's",
                d.pid
            ));
        }
        if p.reach != Reach::Up {
            out.connection_errors = true;
            out.warnings.push(if verbose {
                format!(
                    "when attempting to connect to {who}, following error encountered :\n\"{}\"",
                    p.error.as_deref().unwrap_or("").trim()
                )
            } else {
                format!("unable to connect to {who}")
            });
        }
        let (status, w1) = cluster::status_cell(n, p);
        let (upstream, w2) = cluster::upstream_cell(n, p, nodes, &probes);
        out.warnings.extend(w1);
        out.warnings.extend(w2);
        let (replay, daemon) = daemon_issues(n, p, &s, &who);
        out.warnings.extend(replay);
        out.beyond_repmgr += daemon.len();
        out.warnings.extend(daemon);
        out.rows.push(ServiceRow {
            node_id: n.node_id,
            node_name: n.node_name.clone(),
            node_type: n.node_type,
            location: n.location.clone(),
            priority: n.priority,
            status,
            upstream,
            repmgrd: s,
        });
    }
    out
}

/// The issues of a node that answered: paused replay (repmgr's), and its
/// repmgrd stopped or paused (this repmgr's).
fn daemon_issues(
    n: &NodeRecord,
    p: &Probe,
    s: &StatusLine,
    who: &str,
) -> (Option<String>, Vec<String>) {
    let replay = (p.reach == Reach::Up && p.replay_paused).then(|| format!(
        "WAL replay is paused on {who} with WAL replay pending; this node cannot be manually promoted until WAL replay is resumed"
    ));
    let mut out = Vec::new();
    if s.pg_running && !s.running && n.active {
        out.push(format!("repmgrd is not running on {who}"));
    }
    if s.pg_running && s.running && s.paused {
        out.push(format!("repmgrd is paused on {who}"));
    }
    (replay, out)
}

/// One CSV line per node.
pub(crate) fn render_csv(rows: &[ServiceRow]) -> String {
    rows.iter().map(csv_row).collect()
}

/// The table; `detail` adds Location and Priority, `compact` abbreviates
/// the headers and the last-seen cells.
pub(crate) fn render_table(rows: &[ServiceRow], detail: bool, compact: bool) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.node_id.to_string(),
                r.node_name.clone(),
                r.node_type.to_string(),
                r.status.clone(),
                r.upstream.clone(),
            ];
            if detail {
                row.push(r.location.clone());
                row.push(r.priority.to_string());
            }
            row.extend(repmgrd_cells(&r.repmgrd, compact));
            row
        })
        .collect();
    let mut headers = vec!["ID", "Name", "Role", "Status", "Upstream"];
    if detail {
        headers.push("Location");
        headers.push(if compact { "Prio." } else { "Priority" });
    }
    headers.extend(["repmgrd", "PID", "Paused?"]);
    headers.push(if compact {
        "Upstr. last"
    } else {
        "Upstream last seen"
    });
    output::table(&headers, &cells, true)
}

/// The `--json` document: per node the table's columns (Location and
/// Priority always), typed, `null` where the table says "n/a"; and the
/// issues the text logs under the table.
pub(crate) fn render_json(report: &ServiceReport) -> String {
    let nodes: Vec<Json> = report
        .rows
        .iter()
        .map(|r| {
            let s = &r.repmgrd;
            let known = s.pg_running;
            let with_pid = known && s.pid.is_some();
            Json::object()
                .field("id", r.node_id)
                .field("name", &r.node_name)
                .field("role", r.node_type.to_string())
                .field("status", r.status.trim())
                .field(
                    "upstream",
                    Some(r.upstream.trim()).filter(|u| !u.is_empty()),
                )
                .field("location", &r.location)
                .field("priority", r.priority)
                .field("repmgrd", known.then_some(s.running))
                .field("pid", s.pid.filter(|_| with_pid))
                .field("paused", with_pid.then_some(s.paused))
                .field(
                    "upstream_last_seen",
                    s.upstream_last_seen.filter(|_| with_pid),
                )
        })
        .collect();
    Json::object()
        .field("nodes", nodes)
        .field("warnings", report.warnings.clone())
        .render()
}

/// The issues as the one message repmgr logs under the table.
pub(crate) fn render_issues(warnings: &[String]) -> String {
    let mut text = String::from("following issues were detected");
    for w in warnings {
        text.push_str(&format!("\n  - {w}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, t: NodeType) -> NodeRecord {
        NodeRecord {
            node_id: id,
            upstream_node_id: None,
            active: true,
            node_name: format!("node{id}"),
            node_type: t,
            location: "default".into(),
            priority: 100,
            conninfo: String::new(),
            repluser: String::new(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn up(in_recovery: bool) -> Probe {
        Probe {
            reach: Reach::Up,
            error: None,
            in_recovery: Some(in_recovery),
            timeline: Some(1),
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        }
    }

    fn row(id: i32, pid: Option<i32>, age: f64, seen: Option<f64>) -> DaemonStatus {
        DaemonStatus {
            node_id: id,
            pid,
            hostname: None,
            paused: false,
            upstream_node_id: None,
            upstream_last_seen_secs: seen,
            heartbeat_age_secs: Some(age),
            monitor_interval_secs: 2,
        }
    }

    fn srow(n: &NodeRecord, s: &StatusLine) -> ServiceRow {
        ServiceRow {
            node_id: n.node_id,
            node_name: n.node_name.clone(),
            node_type: n.node_type,
            location: n.location.clone(),
            priority: n.priority,
            status: "* running".into(),
            upstream: String::new(),
            repmgrd: s.clone(),
        }
    }

    #[test]
    fn running_primary_and_standby() {
        let p = node(1, NodeType::Primary);
        let s = node(2, NodeType::Standby);
        let lp = status_line(
            &p,
            &up(false),
            Some(&row(1, Some(100), 0.5, None)),
            Some(false),
        );
        let ls = status_line(
            &s,
            &up(true),
            Some(&row(2, Some(200), 0.5, Some(1.7))),
            Some(true),
        );
        assert_eq!(repmgrd_cells(&lp, false), ["running", "100", "no", "n/a"]);
        assert_eq!(
            repmgrd_cells(&ls, false),
            ["running", "200", "yes", "1 second(s) ago"]
        );
        assert_eq!(repmgrd_cells(&ls, true)[3], "1 sec(s) ago");
        assert_eq!(
            csv_row(&srow(&p, &lp)),
            "1,node1,primary,1,1,100,0,100,-1,default\n"
        );
        assert_eq!(
            csv_row(&srow(&s, &ls)),
            "2,node2,standby,1,1,200,1,100,1,default\n"
        );
    }

    #[test]
    fn stale_stopped_and_unreachable() {
        let s = node(2, NodeType::Standby);
        // Heartbeat older than 3 intervals: not running, pid still shown.
        let l = status_line(
            &s,
            &up(true),
            Some(&row(2, Some(200), 30.0, Some(31.0))),
            Some(false),
        );
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "200", "no", "31 second(s) ago"]
        );
        // Clean stop: no pid.
        let l = status_line(&s, &up(true), Some(&row(2, None, 1.0, None)), Some(false));
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "n/a", "n/a", "n/a"]
        );
        assert_eq!(
            csv_row(&srow(&s, &l)),
            "2,node2,standby,1,0,-1,0,100,-1,default\n"
        );
        // No row at all (never started, or schema version 1).
        let l = status_line(&s, &up(true), None, None);
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "n/a", "n/a", "n/a"]
        );
        // PostgreSQL unreachable: nothing is known.
        let down = Probe {
            reach: Reach::Down,
            error: Some("x".into()),
            in_recovery: None,
            timeline: None,
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        };
        let l = status_line(&s, &down, Some(&row(2, Some(200), 0.1, Some(0.1))), None);
        assert_eq!(repmgrd_cells(&l, false), ["n/a", "n/a", "n/a", "n/a"]);
        assert_eq!(
            csv_row(&srow(&s, &l)),
            "2,node2,standby,0,-1,-1,-1,100,-1,default\n"
        );
    }

    fn rows() -> Vec<ServiceRow> {
        let primary = StatusLine {
            pg_running: true,
            running: true,
            pid: Some(4242),
            paused: false,
            upstream_last_seen: None,
        };
        let standby = StatusLine {
            paused: true,
            upstream_last_seen: Some(3),
            pid: Some(77),
            ..primary.clone()
        };
        let down = StatusLine {
            pg_running: false,
            running: false,
            pid: None,
            paused: false,
            upstream_last_seen: None,
        };
        let mut rows = vec![
            srow(&node(1, NodeType::Primary), &primary),
            srow(&node(2, NodeType::Standby), &standby),
            srow(&node(3, NodeType::Standby), &down),
        ];
        rows[1].status = "  running".into();
        rows[1].upstream = "node1".into();
        rows[2].status = "? unreachable".into();
        rows[2].upstream = "? node1".into();
        rows
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&rows(), false, false),
            " ID | Name  | Role    | Status        | Upstream | repmgrd | PID  | Paused? | Upstream last seen\n\
             ----+-------+---------+---------------+----------+---------+------+---------+--------------------\n \
             1  | node1 | primary | * running     |          | running | 4242 | no      | n/a                \n \
             2  | node2 | standby |   running     | node1    | running | 77   | yes     | 3 second(s) ago    \n \
             3  | node3 | standby | ? unreachable | ? node1  | n/a     | n/a  | n/a     | n/a                \n"
        );
    }

    #[test]
    fn detailed_compact_table() {
        assert_eq!(
            render_table(&rows(), true, true),
            " ID | Name  | Role    | Status        | Upstream | Location | Prio. | repmgrd | PID  | Paused? | Upstr. last \n\
             ----+-------+---------+---------------+----------+----------+-------+---------+------+---------+--------------\n \
             1  | node1 | primary | * running     |          | default  | 100   | running | 4242 | no      | n/a          \n \
             2  | node2 | standby |   running     | node1    | default  | 100   | running | 77   | yes     | 3 sec(s) ago \n \
             3  | node3 | standby | ? unreachable | ? node1  | default  | 100   | n/a     | n/a  | n/a     | n/a          \n"
        );
    }

    #[test]
    fn json_says_null_where_the_table_says_na() {
        let report = ServiceReport {
            rows: rows(),
            warnings: vec!["unable to connect to node \"node3\" (ID: 3)".into()],
            beyond_repmgr: 0,
            connection_errors: true,
        };
        let v: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(
            v["nodes"][1],
            serde_json::json!({
                "id": 2, "name": "node2", "role": "standby", "status": "running",
                "upstream": "node1", "location": "default", "priority": 100,
                "repmgrd": true, "pid": 77, "paused": true, "upstream_last_seen": 3
            })
        );
        assert!(v["nodes"][0]["upstream"].is_null());
        assert!(v["nodes"][0]["upstream_last_seen"].is_null());
        assert_eq!(v["nodes"][0]["paused"], false);
        for k in ["repmgrd", "pid", "paused", "upstream_last_seen"] {
            assert!(v["nodes"][2][k].is_null(), "{k}");
        }
        assert_eq!(v["warnings"][0], report.warnings[0]);
    }

    #[test]
    fn csv_and_issues() {
        assert_eq!(
            render_csv(&rows()),
            "1,node1,primary,1,1,4242,0,100,-1,default\n\
             2,node2,standby,1,1,77,1,100,3,default\n\
             3,node3,standby,0,-1,-1,-1,100,-1,default\n"
        );
        let w = vec!["unable to connect to node \"node3\" (ID: 3)".to_string()];
        assert_eq!(
            render_issues(&w),
            "following issues were detected\n  - unable to connect to node \"node3\" (ID: 3)"
        );
    }
}
