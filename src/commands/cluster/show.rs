//! `repmgr cluster show`, and its Status and Upstream cells, which
//! `service status` shows too.

use super::probe::{probe_all, Probe, Reach};
use crate::commands::Ctx;
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::output;

/// The Status cell for a node, plus a warning when it is an issue.
pub(crate) fn status_cell(n: &NodeRecord, p: &Probe) -> (String, Option<String>) {
    let who = format!("node \"{}\" (ID: {})", n.node_name, n.node_id);
    let kind = n.node_type;
    if p.reach == Reach::Up && p.fenced && kind != NodeType::Witness {
        // Plainly: this server refuses writes because repmgrd fenced it.
        return (
            "! fenced".into(),
            Some(format!(
                "{who} is fenced: it runs as a primary but is read-only"
            )),
        );
    }
    if p.reach != Reach::Up {
        if !n.active {
            return ("- failed".into(), None);
        }
        let cell = if p.reach == Reach::Rejected {
            "? running"
        } else {
            "? unreachable"
        };
        let article = if kind == NodeType::Primary {
            "an active primary"
        } else if kind == NodeType::Witness {
            "an active witness"
        } else {
            "an active standby"
        };
        return (
            cell.into(),
            Some(format!(
                "{who} is registered as {article} but is unreachable"
            )),
        );
    }
    match (kind, n.active, p.in_recovery) {
        (_, _, None) => (
            "! unknown".into(),
            Some(format!("{who} has unknown replication status")),
        ),
        (NodeType::Primary, true, Some(false)) => ("* running".into(), None),
        (NodeType::Primary, true, Some(true)) => (
            "! running as standby".into(),
            Some(format!(
                "{who} is registered as primary but running as standby"
            )),
        ),
        (NodeType::Primary, false, Some(false)) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (NodeType::Primary, false, Some(true)) => (
            "! running as standby".into(),
            Some(format!(
                "{who} is registered as an inactive primary but running as standby"
            )),
        ),
        (NodeType::Witness, true, _) => ("* running".into(), None),
        (NodeType::Witness, false, _) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (_, true, Some(true)) => ("  running".into(), None),
        (_, true, Some(false)) => (
            "! running as primary".into(),
            Some(format!(
                "{who} is registered as standby but running as primary"
            )),
        ),
        (_, false, Some(true)) => (
            "! running".into(),
            Some(format!(
                "{who} is running but the repmgr node record is inactive"
            )),
        ),
        (_, false, Some(false)) => (
            "! running as primary".into(),
            Some(format!(
                "{who} is running as primary but the repmgr node record is inactive"
            )),
        ),
    }
}

/// The Upstream cell: the name, marked `?` when the upstream cannot be
/// asked and `!` when the node is not streaming from it.
pub(crate) fn upstream_cell(
    n: &NodeRecord,
    p: &Probe,
    nodes: &[NodeRecord],
    probes: &[Probe],
) -> (String, Option<String>) {
    let Some(up_id) = n.upstream_node_id else {
        return (String::new(), None);
    };
    let Some(idx) = nodes.iter().position(|x| x.node_id == up_id) else {
        return (format!("? {up_id}"), None);
    };
    let up = &nodes[idx];
    let up_probe = &probes[idx];
    if n.node_type != NodeType::Standby {
        // A witness connects by SQL, not by streaming: nothing to verify.
        return (up.node_name.clone(), None);
    }
    if p.reach != Reach::Up {
        // Whether it streams cannot be verified while it does not answer.
        let cell = if n.active {
            format!("? {}", up.node_name)
        } else {
            up.node_name.clone()
        };
        return (cell, None);
    }
    if p.in_recovery != Some(true) {
        return (up.node_name.clone(), None);
    }
    if up_probe.reach != Reach::Up {
        return (format!("? {}", up.node_name), None);
    }
    if up_probe.attached.iter().any(|a| a == &n.node_name) {
        (up.node_name.clone(), None)
    } else {
        (
            format!("! {}", up.node_name),
            Some(format!(
                "node \"{}\" (ID: {}) is not attached to its upstream node \"{}\" (ID: {})",
                n.node_name, n.node_id, up.node_name, up.node_id
            )),
        )
    }
}

/// `repmgr cluster show`.
pub fn show(ctx: &Ctx) -> Result<()> {
    let mut conn = ctx.connect_local()?;
    if !db::schema::exists(&mut conn)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let nodes = db::nodes::all(&mut conn)?;
    drop(conn);
    if nodes.is_empty() {
        return Err(Error::config("no node records were found")
            .hint("ensure \"repmgr primary register\" was run"));
    }
    let probes = probe_all(&nodes);

    if ctx.opts.csv {
        let issues = nodes.iter().zip(&probes).any(|(n, p)| {
            status_cell(n, p).1.is_some() || upstream_cell(n, p, &nodes, &probes).1.is_some()
        });
        let mut out = String::new();
        for (n, p) in nodes.iter().zip(&probes) {
            let availability = if p.reach == Reach::Up { 0 } else { -1 };
            let recovery = match p.in_recovery {
                Some(false) => 0,
                Some(true) => 1,
                None => -1,
            };
            out.push_str(&format!("{},{availability},{recovery}\n", n.node_id));
        }
        print!("{out}");
        // The same exit status as the table: scripts test it.
        return if issues {
            Err(Error::silent(ExitCode::NodeStatus))
        } else {
            Ok(())
        };
    }

    let mut warnings = Vec::new();
    let mut connection_errors = false;
    let mut rows = Vec::new();
    for (n, p) in nodes.iter().zip(&probes) {
        let (status, w1) = status_cell(n, p);
        let (upstream, w2) = upstream_cell(n, p, &nodes, &probes);
        warnings.extend(w1);
        warnings.extend(w2);
        if p.reach == Reach::Up && p.replay_paused {
            warnings.push(format!(
                "WAL replay is paused on node \"{}\" (ID: {}) with WAL replay pending; this node cannot be manually promoted until WAL replay is resumed",
                n.node_name, n.node_id
            ));
        }
        if let Some(err) = &p.error {
            if n.active {
                connection_errors = true;
                if ctx.opts.verbose {
                    warnings.push(format!(
                        "when attempting to connect to node \"{}\" (ID: {}), following error encountered :\n\"{}\"",
                        n.node_name,
                        n.node_id,
                        err.trim()
                    ));
                }
            }
        }
        let timeline = match (n.node_type, p.timeline) {
            (NodeType::Witness, _) => "n/a".to_string(),
            (_, Some(t)) if p.reach == Reach::Up => t.to_string(),
            _ => "?".to_string(),
        };
        let mut row = vec![
            n.node_id.to_string(),
            n.node_name.clone(),
            n.node_type.to_string(),
            status,
            upstream,
            n.location.clone(),
            n.priority.to_string(),
            timeline,
        ];
        if !ctx.opts.compact {
            row.push(n.conninfo.clone());
        }
        rows.push(row);
    }
    let headers: &[&str] = if ctx.opts.compact {
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
    print!("{}", output::table(headers, &rows));

    if warnings.is_empty() {
        return Ok(());
    }
    println!();
    crate::log_warning!("following issues were detected");
    let mut list = String::new();
    for w in &warnings {
        list.push_str(&format!("  - {w}\n"));
    }
    print!("{list}");
    if connection_errors && !ctx.opts.verbose && !ctx.opts.terse {
        println!();
        crate::log_hint!("execute with --verbose option to see connection error messages");
    }
    Err(Error::silent(ExitCode::NodeStatus))
}
