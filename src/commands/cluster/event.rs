//! `repmgr cluster event`: the event log, newest first.

use crate::commands::Ctx;
use crate::db;
use crate::error::{Error, Result};
use crate::output;

/// `repmgr cluster event`.
pub fn event(ctx: &Ctx) -> Result<()> {
    let limit = if ctx.opts.all {
        None
    } else {
        let l = crate::cli::parse_int_option("limit", &ctx.opts.limit)?.unwrap_or(20);
        if l < 1 {
            return Err(
                Error::config(format!("--limit must be 1 or more (got {l})"))
                    .hint("use --all to show every event"),
            );
        }
        Some(i64::from(l))
    };
    let filter = db::events::EventFilter {
        node_id: crate::cli::parse_int_option("node-id", &ctx.opts.node_id)?,
        node_name: ctx.opts.node_name.clone(),
        event: ctx.opts.event.clone(),
        limit,
    };
    let mut conn = ctx.connect_local()?;
    if !db::schema::exists(&mut conn)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let events = db::events::list(&mut conn, &filter)?;
    if events.is_empty() {
        // repmgr prints this on stdout, not as a log line, and exits 0
        println!("no matching events found");
        return Ok(());
    }
    // repmgr omits Details with --csv (it would need quoting) and --compact
    let details = !ctx.opts.compact && !ctx.opts.csv;
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let mut r = vec![
                e.node_id.to_string(),
                e.node_name.clone(),
                e.event.clone(),
                if e.successful { "t" } else { "f" }.to_string(),
                e.timestamp.clone(),
            ];
            if details {
                r.push(e.details.clone());
            }
            r
        })
        .collect();
    if ctx.opts.csv {
        let out: String = rows.iter().map(|r| output::csv_line(r)).collect();
        print!("{out}");
        return Ok(());
    }
    let headers: &[&str] = if details {
        &["Node ID", "Name", "Event", "OK", "Timestamp", "Details"]
    } else {
        &["Node ID", "Name", "Event", "OK", "Timestamp"]
    };
    // repmgr ends the table with an empty line
    println!("{}", output::table(headers, &rows));
    Ok(())
}
