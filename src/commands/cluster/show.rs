//! `repmgr cluster show`: every node's role, state and upstream, as
//! probed from here. The probe, the report and its renderings are
//! `ops::cluster_view` (repmgrd serves the same report); this file reads
//! the node records and prints.

use crate::commands::Ctx;
use crate::db::{self, nodes::NodeRecord, Session};
use crate::error::{Error, ExitCode, Result};
use crate::ops::cluster_view::{
    cluster_report_reusing, render_csv, render_issues, render_json, render_table,
};

/// `repmgr cluster show`.
pub fn show(ctx: &Ctx) -> Result<()> {
    let (nodes, local) = registered_nodes(ctx)?;
    let report = cluster_report_reusing(&nodes, local, ctx.opts.verbose);

    if ctx.opts.json {
        // The issues are in the document; the exit status is the table's.
        print!("{}", render_json(&report));
        if report.connection_errors && !ctx.opts.verbose && !ctx.opts.terse {
            crate::log_hint!("execute with --verbose option to see connection error messages");
        }
        return if report.warnings.is_empty() {
            Ok(())
        } else {
            Err(Error::silent(ExitCode::NodeStatus))
        };
    }
    if ctx.opts.csv {
        print!("{}", render_csv(&report.rows));
        // The same exit status as the table: scripts test it.
        return if report.cell_issues {
            Err(Error::silent(ExitCode::NodeStatus))
        } else {
            Ok(())
        };
    }

    print!("{}", render_table(&report.rows, ctx.opts.compact));
    if report.warnings.is_empty() {
        return Ok(());
    }
    // As repmgr 5.3: a blank line on stdout, the issues as one WARNING on
    // stderr (stdout stays the table scripts parse), none of it with
    // --terse; the exit status says it either way.
    if !ctx.opts.terse {
        println!();
        crate::log_warning!(
            "following issues were detected\n{}",
            render_issues(&report.warnings)
        );
        if report.connection_errors && !ctx.opts.verbose {
            crate::log_hint!("execute with --verbose option to see connection error messages");
        }
    }
    Err(Error::silent(ExitCode::NodeStatus))
}

/// The session open to the node at that index of the records.
type Local = (usize, Session);

/// The node records, read through the local node, and that session with
/// the index of the node it is open to when it was made with that node's
/// registered conninfo (the probe asks it there, not on a new connection).
fn registered_nodes(ctx: &Ctx) -> Result<(Vec<NodeRecord>, Option<Local>)> {
    // Without a conninfo from repmgr.conf, -h/-p/-U/-d name the node to ask
    // (repmgr's establish_db_connection_by_params).
    let (mut conn, from_config) = match ctx.conninfo_from_options()? {
        Some(ci) if ctx.config().conninfo.is_empty() => {
            (crate::commands::connect_node(&ci, "", 0)?, false)
        }
        _ => (ctx.connect_local()?, true),
    };
    let Some(nodes) = db::nodes::all_if_registered(&mut conn)? else {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    };
    if nodes.is_empty() {
        return Err(Error::config("no node records were found")
            .hint("ensure \"repmgr primary register\" was run"));
    }
    let cfg = ctx.config();
    let local = nodes
        .iter()
        .position(|n| from_config && Some(n.node_id) == cfg.node_id && n.conninfo == cfg.conninfo)
        .map(|i| (i, conn));
    Ok((nodes, local))
}
