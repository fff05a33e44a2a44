//! `repmgr cluster event`: the event log, newest first.

use crate::commands::Ctx;
use crate::db::{self, events::EventRow};
use crate::error::{Error, Result};
use crate::output;
use crate::output::json::Json;

/// `repmgr cluster event`.
pub fn event(ctx: &Ctx) -> Result<()> {
    let limit = if ctx.opts.all {
        None
    } else {
        // (at least 1: checked with the other option values)
        let l = crate::cli::parse_int_option("limit", &ctx.opts.limit)?.unwrap_or(20);
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
    if ctx.opts.json {
        print!("{}", render_json(&events));
        return Ok(());
    }
    if events.is_empty() {
        // repmgr prints this on stdout, not as a log line, and exits 0
        println!("no matching events found");
        return Ok(());
    }
    // repmgr omits Details with --csv (it would need quoting) and --compact
    let details = !ctx.opts.compact && !ctx.opts.csv;
    if ctx.opts.csv {
        print!("{}", render_csv(&events));
        return Ok(());
    }
    // repmgr ends the table with an empty line
    println!("{}", render_table(&events, details));
    Ok(())
}

/// The cells of one event, Details last when asked for.
fn cells(e: &EventRow, details: bool) -> Vec<String> {
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
}

/// One CSV line per event, without Details (as repmgr).
fn render_csv(events: &[EventRow]) -> String {
    events
        .iter()
        .map(|e| output::csv_line(&cells(e, false)))
        .collect()
}

fn render_table(events: &[EventRow], details: bool) -> String {
    let rows: Vec<Vec<String>> = events.iter().map(|e| cells(e, details)).collect();
    let headers: &[&str] = if details {
        &["Node ID", "Name", "Event", "OK", "Timestamp", "Details"]
    } else {
        &["Node ID", "Name", "Event", "OK", "Timestamp"]
    };
    output::table(headers, &rows, false)
}

/// The `--json` document: every event with the table's columns, typed;
/// Details always (--compact shortens the table only), `null` when the
/// event has none, and the name `null` when the node is no longer
/// registered. No events is an empty list, not a message.
fn render_json(events: &[EventRow]) -> String {
    let non_empty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let list: Vec<Json> = events
        .iter()
        .map(|e| {
            Json::object()
                .field("node_id", e.node_id)
                .field("name", non_empty(&e.node_name))
                .field("event", &e.event)
                .field("ok", e.successful)
                .field("timestamp", &e.timestamp)
                .field("details", non_empty(&e.details))
        })
        .collect();
    Json::object().field("events", list).render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i32, name: &str, ok: bool, details: &str) -> EventRow {
        EventRow {
            node_id: id,
            node_name: name.into(),
            event: "standby_register".into(),
            successful: ok,
            timestamp: "2024-05-01 10:00:00".into(),
            details: details.into(),
        }
    }

    #[test]
    fn json_is_typed_and_lists_every_column() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&[
            event(2, "node2", true, "registered \"node2\""),
            event(9, "", false, ""),
        ]))
        .unwrap();
        assert_eq!(
            v["events"][0],
            serde_json::json!({
                "node_id": 2, "name": "node2", "event": "standby_register",
                "ok": true, "timestamp": "2024-05-01 10:00:00",
                "details": "registered \"node2\""
            })
        );
        assert!(v["events"][1]["name"].is_null());
        assert_eq!(v["events"][1]["ok"], false);
        assert!(v["events"][1]["details"].is_null());
        assert_eq!(render_json(&[]), "{\n  \"events\": []\n}\n");
    }

    #[test]
    fn table_and_csv_unchanged() {
        let e = [event(2, "node2", true, "d")];
        assert_eq!(
            render_csv(&e),
            "2,node2,standby_register,t,2024-05-01 10:00:00\n"
        );
        assert!(render_table(&e, true).starts_with(
            " Node ID | Name  | Event            | OK | Timestamp           | Details\n"
        ));
    }
}
