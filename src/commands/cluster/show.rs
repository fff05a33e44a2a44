//! `repmgr cluster show`: every node's role, state and upstream, as
//! probed from here. The probe, the report and its renderings are
//! `ops::cluster_view` (repmgrd serves the same report); this file reads
//! the node records and prints.

use crate::commands::Ctx;
use crate::db::{self, nodes::NodeRecord};
use crate::error::{Error, ExitCode, Result};
use crate::ops::cluster_view::{
    cluster_report, render_csv, render_issues, render_json, render_table,
};

/// `repmgr cluster show`.
pub fn show(ctx: &Ctx) -> Result<()> {
    let nodes = registered_nodes(ctx)?;
    let report = cluster_report(&nodes, ctx.opts.verbose);

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

/// The node records, read through the local node.
fn registered_nodes(ctx: &Ctx) -> Result<Vec<NodeRecord>> {
    // Without a conninfo from repmgr.conf, -h/-p/-U/-d name the node to ask
    // (repmgr's establish_db_connection_by_params).
    let mut conn = match ctx.conninfo_from_options()? {
        Some(ci) if ctx.config().conninfo.is_empty() => crate::commands::connect_node(&ci, "", 0)?,
        _ => ctx.connect_local()?,
    };
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
    Ok(nodes)
}
