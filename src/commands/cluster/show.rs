//! `repmgr cluster show`: every node's role, state and upstream, as
//! probed from here.

use super::cells::{status_cell, upstream_cell};
use super::probe::{probe_all, Reach};
use crate::commands::Ctx;
use crate::db::{self, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::output;

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
