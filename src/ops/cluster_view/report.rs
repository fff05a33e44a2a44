//! What `cluster show` reports: the probe of every node turned into
//! [`ShowRow`]s and the issues under the table, and their renderings. The
//! CLI prints them; repmgrd serves the same report, so it lives here.

use super::cells::{status_cell, upstream_cell};
use super::probe::{probe_all, probe_all_reusing, Probe, Reach};
use crate::db::nodes::{NodeRecord, NodeType};
use crate::output;
use crate::output::json::Json;

/// One node as `cluster show` reports it, in every output format.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowRow {
    pub node_id: i32,
    pub node_name: String,
    pub node_type: NodeType,
    /// The Status cell (`* running`, `? unreachable`, …).
    pub status: String,
    /// The Upstream cell: a name, maybe marked `?` or `!`.
    pub upstream: String,
    pub location: String,
    pub priority: i32,
    /// None when the node did not answer or could not tell.
    pub timeline: Option<i64>,
    pub conninfo: String,
    /// Whether the node let us in.
    pub reachable: bool,
    /// None when unknown.
    pub in_recovery: Option<bool>,
}

/// What `cluster show` found: the rows, and the issues listed under the
/// table.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowReport {
    pub rows: Vec<ShowRow>,
    pub warnings: Vec<String>,
    /// A Status or Upstream cell is an issue: the CSV's exit status, which
    /// ignores the other warnings.
    pub cell_issues: bool,
    /// An active node could not be reached (the --verbose hint).
    pub connection_errors: bool,
}

/// Probes every node and reports on them: what `repmgr cluster show`
/// prints, and what repmgrd serves, from one place.
pub fn cluster_report(nodes: &[NodeRecord], verbose: bool) -> ShowReport {
    report(nodes, &probe_all(nodes), verbose)
}

/// [`cluster_report`], asking the node at `open`'s index on that session
/// (open to it with its own conninfo) instead of connecting again, and
/// each node only what the report needs of it (see [`probe_all_reusing`]).
pub fn cluster_report_reusing(
    nodes: &[NodeRecord],
    open: Option<(usize, crate::db::Session)>,
    verbose: bool,
) -> ShowReport {
    report(nodes, &probe_all_reusing(nodes, open, true), verbose)
}

/// The rows and issues from the probes, in the nodes' order; `verbose`
/// adds the connection errors to the issues.
pub fn report(nodes: &[NodeRecord], probes: &[Probe], verbose: bool) -> ShowReport {
    let mut out = ShowReport {
        rows: Vec::new(),
        warnings: Vec::new(),
        cell_issues: false,
        connection_errors: false,
    };
    for (n, p) in nodes.iter().zip(probes) {
        let (status, w1) = status_cell(n, p);
        let (upstream, w2) = upstream_cell(n, p, nodes, probes);
        out.cell_issues |= w1.is_some() || w2.is_some();
        out.warnings.extend(w1);
        out.warnings.extend(w2);
        if p.reach == Reach::Up && p.replay_paused {
            out.warnings.push(format!(
                "WAL replay is paused on node {} with WAL replay pending; this node cannot be manually promoted until WAL replay is resumed",
                n));
        }
        if let Some(err) = p.error.as_ref().filter(|_| n.active) {
            out.connection_errors = true;
            if verbose {
                out.warnings.push(format!(
                    "when attempting to connect to node {}, following error encountered :\n\"{}\"",
                    n,
                    err.trim()
                ));
            }
        }
        out.rows.push(ShowRow {
            node_id: n.node_id,
            node_name: n.node_name.clone(),
            node_type: n.node_type,
            status,
            upstream,
            location: n.location.clone(),
            priority: n.priority,
            timeline: p.timeline.filter(|_| p.reach == Reach::Up),
            conninfo: n.conninfo.clone(),
            reachable: p.reach == Reach::Up,
            in_recovery: p.in_recovery,
        });
    }
    out
}

/// `node_id,availability,recovery` per node, as `cluster matrix` parses
/// it: 0 reachable / -1 not; 0 primary, 1 standby, -1 unknown.
pub fn render_csv(rows: &[ShowRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let availability = if r.reachable { 0 } else { -1 };
        let recovery = match r.in_recovery {
            Some(false) => 0,
            Some(true) => 1,
            None => -1,
        };
        out.push_str(&format!("{},{availability},{recovery}\n", r.node_id));
    }
    out
}

/// The table; `compact` abbreviates the headers and drops the conninfo.
pub fn render_table(rows: &[ShowRow], compact: bool) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let timeline = match (r.node_type, r.timeline) {
                (NodeType::Witness, _) => "n/a".to_string(),
                (_, Some(t)) => t.to_string(),
                // repmgr 5.3 leaves the cell empty for a node it cannot ask.
                _ => String::new(),
            };
            let mut row = vec![
                r.node_id.to_string(),
                r.node_name.clone(),
                r.node_type.to_string(),
                r.status.clone(),
                r.upstream.clone(),
                r.location.clone(),
                r.priority.to_string(),
                timeline,
            ];
            if !compact {
                row.push(r.conninfo.clone());
            }
            row
        })
        .collect();
    let headers: &[&str] = if compact {
        &[
            "ID", "Name", "Role", "Status", "Upstream", "Location", "Prio.", "TLI",
        ]
    } else {
        &[
            "ID",
            "Name",
            "Role",
            "Status",
            "Upstream",
            "Location",
            "Priority",
            "Timeline",
            "Connection string",
        ]
    };
    // repmgr ends each row with a space, but for the conninfo column
    output::table(headers, &cells, compact)
}

/// The `--json` document (and repmgrd's `/cluster`): the table's columns
/// per node, typed, and the issues listed under the table. The Status and
/// Upstream cells are as the table has them, trimmed; a node without an
/// upstream has `null`, and so has a timeline that is unknown or, for a
/// witness, not applicable.
pub fn render_json(report: &ShowReport) -> String {
    let nodes: Vec<Json> = report
        .rows
        .iter()
        .map(|r| {
            let upstream = Some(r.upstream.trim()).filter(|u| !u.is_empty());
            let timeline = r.timeline.filter(|_| r.node_type != NodeType::Witness);
            Json::object()
                .field("id", r.node_id)
                .field("name", &r.node_name)
                .field("role", r.node_type.to_string())
                .field("status", r.status.trim())
                .field("upstream", upstream)
                .field("location", &r.location)
                .field("priority", r.priority)
                .field("timeline", timeline)
                .field("connection_string", &r.conninfo)
        })
        .collect();
    Json::object()
        .field("nodes", nodes)
        .field("warnings", report.warnings.clone())
        .render()
}

/// The issues under the table, one `  - ` line each.
pub fn render_issues(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("  - {w}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, node_type: NodeType, status: &str, upstream: &str) -> ShowRow {
        ShowRow {
            node_id: id,
            node_name: format!("node{id}"),
            node_type,
            status: status.into(),
            upstream: upstream.into(),
            location: "default".into(),
            priority: 100,
            timeline: Some(1),
            conninfo: format!("host=n{id} dbname=repmgr"),
            reachable: true,
            in_recovery: Some(node_type == NodeType::Standby),
        }
    }

    fn rows() -> Vec<ShowRow> {
        let mut down = row(3, NodeType::Standby, "? unreachable", "? node1");
        down.timeline = None;
        down.reachable = false;
        down.in_recovery = None;
        vec![
            row(1, NodeType::Primary, "* running", ""),
            row(2, NodeType::Witness, "* running", "node1"),
            down,
        ]
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&rows(), false),
            " ID | Name  | Role    | Status        | Upstream | Location | Priority | Timeline | Connection string    \n\
             ----+-------+---------+---------------+----------+----------+----------+----------+-----------------------\n \
             1  | node1 | primary | * running     |          | default  | 100      | 1        | host=n1 dbname=repmgr\n \
             2  | node2 | witness | * running     | node1    | default  | 100      | n/a      | host=n2 dbname=repmgr\n \
             3  | node3 | standby | ? unreachable | ? node1  | default  | 100      |          | host=n3 dbname=repmgr\n"
        );
    }

    #[test]
    fn compact_table() {
        assert_eq!(
            render_table(&rows(), true),
            " ID | Name  | Role    | Status        | Upstream | Location | Prio. | TLI\n\
             ----+-------+---------+---------------+----------+----------+-------+-----\n \
             1  | node1 | primary | * running     |          | default  | 100   | 1   \n \
             2  | node2 | witness | * running     | node1    | default  | 100   | n/a \n \
             3  | node3 | standby | ? unreachable | ? node1  | default  | 100   |     \n"
        );
    }

    #[test]
    fn csv() {
        assert_eq!(render_csv(&rows()), "1,0,0\n2,0,0\n3,-1,-1\n");
    }

    #[test]
    fn json() {
        let report = ShowReport {
            rows: rows(),
            warnings: vec!["node \"node3\" (ID: 3) is unreachable".into()],
            cell_issues: true,
            connection_errors: true,
        };
        let text = render_json(&report);
        assert!(text.ends_with("}\n") && text.matches('\n').count() > 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["nodes"][0],
            serde_json::json!({
                "id": 1, "name": "node1", "role": "primary", "status": "* running",
                "upstream": null, "location": "default", "priority": 100,
                "timeline": 1, "connection_string": "host=n1 dbname=repmgr"
            })
        );
        // A witness's timeline is not applicable; an unreachable node's unknown.
        assert!(v["nodes"][1]["timeline"].is_null());
        assert_eq!(v["nodes"][1]["upstream"], "node1");
        assert_eq!(v["nodes"][2]["status"], "? unreachable");
        assert_eq!(v["nodes"][2]["upstream"], "? node1");
        assert!(v["nodes"][2]["timeline"].is_null());
        assert_eq!(v["warnings"], serde_json::json!([report.warnings[0]]));
    }

    #[test]
    fn issues() {
        let w = vec!["a".to_string(), "b\nc".to_string()];
        assert_eq!(render_issues(&w), "  - a\n  - b\nc\n");
    }
}
