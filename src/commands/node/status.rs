//! `repmgr node status` (its `--is-shutdown-cleanly` probe, which
//! `standby switchover` runs on the demotion candidate, is
//! `diagnostics.rs`).
//!
//! The node is read once into [`StatusFacts`]; the [`StatusReport`] made from
//! them is all the text and CSV renderings see.

use super::{ready_archive_files, Ctx};
use crate::db::{self, checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::output::json::{snake_case, Json};

/// One `Key: value` line of `node status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub key: &'static str,
    pub value: String,
    /// The CSV's own spelling of the value, where it differs (a bare count).
    pub csv_value: Option<String>,
    /// Whether the text output shows it.
    pub in_text: bool,
    /// Whether the CSV lists it: every row but those only --json has.
    pub in_csv: bool,
    /// The value in --json, typed: numbers as numbers, null where the
    /// text says n/a or could not tell.
    pub json: Json,
}

impl StatusRow {
    fn new(key: &'static str, value: impl Into<String>) -> StatusRow {
        let value = value.into();
        StatusRow {
            key,
            json: Json::Str(value.clone()),
            value,
            csv_value: None,
            in_text: true,
            in_csv: true,
        }
    }

    fn csv_only(key: &'static str, value: impl Into<String>) -> StatusRow {
        StatusRow {
            in_text: false,
            ..StatusRow::new(key, value)
        }
    }

    /// A row the text and CSV leave out, so that the JSON document has
    /// the same keys whatever the node could tell.
    fn json_only(key: &'static str, json: impl Into<Json>) -> StatusRow {
        StatusRow {
            in_csv: false,
            ..StatusRow::csv_only(key, "")
        }
        .typed(json)
    }

    /// This row with its --json value.
    fn typed(self, json: impl Into<Json>) -> StatusRow {
        StatusRow {
            json: json.into(),
            ..self
        }
    }
}

/// What `node status` reports: its rows, the counters only the CSV lists,
/// and the issues that make it exit 25.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    pub node_name: String,
    pub node_id: i32,
    pub rows: Vec<StatusRow>,
    pub max_wal_senders: i32,
    pub occupied_wal_senders: i32,
    pub max_replication_slots: i32,
    pub active_slots: i32,
    pub inactive_slots: i32,
    pub inactive_slot_names: Vec<String>,
    /// The slots of downstream nodes that do not exist here.
    pub missing_slot_names: Vec<String>,
    /// One line each, as repmgr lists them (some end in a newline).
    pub warnings: Vec<String>,
}

/// What `node status` reads from the node, in the order it asks.
struct StatusFacts {
    node: NodeRecord,
    stats: NodeStats,
    /// None when the server could not tell.
    size: Option<String>,
    /// Asked with --verbose only; empty when pg_control could not tell.
    system_identifier: Option<String>,
    ready_files: Option<i32>,
    downstream: Vec<Downstream>,
    inactive_slot_names: Vec<String>,
    /// A standby's upstream record.
    upstream: Option<NodeRecord>,
}

/// `repmgr node status`.
pub fn status(ctx: &Ctx) -> Result<()> {
    if ctx.opts.is_shutdown_cleanly {
        println!("--state={}", super::diagnostics::shutdown_state(ctx)?);
        return Ok(());
    }
    let csv = ctx.opts.csv;
    let report = report(&gather(ctx)?);
    if ctx.opts.json {
        // The issues are in the document; the exit status is the text's.
        print!("{}", render_json(&report));
        return if report.warnings.is_empty() {
            Ok(())
        } else {
            Err(Error::silent(ExitCode::NodeStatus))
        };
    }
    if csv {
        print!("{}", render_csv(&report));
    } else {
        print!("{}", render_text(&report));
    }

    if report.warnings.is_empty() {
        return Ok(());
    }
    if !ctx.opts.terse && !csv {
        crate::log_warning!("following issue(s) were detected:");
        print!("{}", render_issues(&report.warnings));
        crate::log_hint!("execute \"repmgr node check\" for more details");
    }
    Err(Error::silent(ExitCode::NodeStatus))
}

/// Reads everything `node status` shows from the local node.
fn gather(ctx: &Ctx) -> Result<StatusFacts> {
    let cfg = ctx.node_config(false)?;
    let mut c = ctx.connect_local()?;
    let node_id = cfg.node_id.unwrap_or(0);
    // The record, the statistics, the size and the downstream nodes in one
    // round trip (and a standby's upstream record, when the data directory
    // says it is one).
    let ask = db::checks::Ask {
        downstream: true,
        size: true,
        upstream: super::likely_standby(&cfg.data_directory),
    };
    let facts = db::checks::local_facts(&mut c, node_id, ask)?;
    let (node, stats) = facts
        .found
        .ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;
    let size = facts.size.and_then(|s| s.ok());
    let system_identifier = ctx
        .opts
        .verbose
        .then(|| db::replication::system_identifier(&mut c).unwrap_or_default());
    let ready_files = ready_archive_files(&cfg.data_directory);
    let downstream = match facts.downstream {
        Some(asked) => asked?,
        None => db::checks::downstream(&mut c, node_id)?,
    };
    let mut inactive_slot_names = Vec::new();
    if stats.max_replication_slots != 0 && stats.inactive_slots > 0 {
        inactive_slot_names = db::checks::inactive_slots(&mut c)?;
    }
    let upstream = match (node.upstream_node_id, facts.upstream) {
        (Some(_), Some(asked)) if node.node_type == NodeType::Standby => asked?,
        (Some(id), None) if node.node_type == NodeType::Standby => db::nodes::get(&mut c, id)?,
        _ => None,
    };
    // The CSV lists the inactive slots whatever the slot count said.
    if ctx.opts.csv && stats.inactive_slots > 0 && inactive_slot_names.is_empty() {
        inactive_slot_names = db::checks::inactive_slots(&mut c)?;
    }
    Ok(StatusFacts {
        node,
        stats,
        size,
        system_identifier,
        ready_files,
        downstream,
        inactive_slot_names,
        upstream,
    })
}

/// The rows and issues, in repmgr's order.
fn report(f: &StatusFacts) -> StatusReport {
    let st = &f.stats;
    let mut r = StatusReport {
        node_name: f.node.node_name.clone(),
        node_id: f.node.node_id,
        max_wal_senders: st.max_wal_senders,
        occupied_wal_senders: st.attached_wal_receivers,
        max_replication_slots: st.max_replication_slots,
        active_slots: st.active_slots,
        inactive_slots: st.inactive_slots,
        inactive_slot_names: f.inactive_slot_names.clone(),
        missing_slot_names: f
            .downstream
            .iter()
            .filter(|d| d.slot_missing)
            .map(|d| d.slot_name.clone().unwrap_or_default())
            .collect(),
        ..StatusReport::default()
    };
    identity_rows(f, &mut r);
    archiving_rows(f, &mut r);
    replication_rows(f, &mut r);
    upstream_rows(f, &mut r);
    r
}

/// Version, size, conninfo, system identifier and role.
fn identity_rows(f: &StatusFacts, r: &mut StatusReport) {
    r.rows.push(StatusRow::new(
        "PostgreSQL version",
        &f.stats.server_version,
    ));
    let size = f.size.as_deref().unwrap_or("unknown");
    r.rows
        .push(StatusRow::new("Total data size", size).typed(f.size.clone()));
    r.rows.push(StatusRow::new("Conninfo", &f.node.conninfo));
    match f.system_identifier.as_deref() {
        // Asked with --verbose only.
        None => r
            .rows
            .push(StatusRow::json_only("System identifier", Json::Null)),
        Some("") => {
            r.rows
                .push(StatusRow::new("System identifier", "unknown").typed(Json::Null));
            r.warnings
                .push("unable to retrieve system identifier from pg_control".into());
        }
        Some(id) => r.rows.push(StatusRow::new("System identifier", id)),
    }
    r.rows
        .push(StatusRow::new("Role", f.node.node_type.to_string()));
    match f.node.node_type {
        NodeType::Primary if f.stats.in_recovery => r
            .warnings
            .push("- node is registered as primary but running as standby".into()),
        NodeType::Standby if !f.stats.in_recovery => r
            .warnings
            .push("- node is registered as standby but running as primary".into()),
        _ => {}
    }
}

/// WAL archiving, its command, and the files it has yet to archive.
fn archiving_rows(f: &StatusFacts, r: &mut StatusReport) {
    let st = &f.stats;
    let archiving_off = st.archive_mode == "off";
    if archiving_off {
        r.rows.push(StatusRow::new("WAL archiving", "off"));
        r.rows
            .push(StatusRow::new("Archive command", "(none)").typed(Json::Null));
    } else {
        let enabled = !(st.in_recovery && st.archive_mode == "on");
        let state = if enabled { "enabled" } else { "disabled" };
        let mut s = state.to_string();
        if !enabled {
            s.push_str(" (on standbys \"archive_mode\" must be set to \"always\" to be effective)");
        }
        r.rows.push(StatusRow::new("WAL archiving", s).typed(state));
        r.rows
            .push(StatusRow::new("Archive command", &st.archive_command));
    }
    match f.ready_files {
        None => {
            r.warnings
                .push("- unable to check archive_status directory\n".into());
            r.rows
                .push(StatusRow::json_only("WALs pending archiving", Json::Null));
        }
        Some(n) => r.rows.push(StatusRow {
            csv_value: Some(n.to_string()),
            in_text: !archiving_off,
            ..StatusRow::new("WALs pending archiving", format!("{n} pending files")).typed(n)
        }),
    }
}

/// WAL senders, downstream nodes and replication slots.
fn replication_rows(f: &StatusFacts, r: &mut StatusReport) {
    let st = &f.stats;
    r.rows.push(
        StatusRow::new(
            "Replication connections",
            format!(
                "{} (of maximal {})",
                st.attached_wal_receivers, st.max_wal_senders
            ),
        )
        .typed(
            Json::object()
                .field("attached", st.attached_wal_receivers)
                .field("max", st.max_wal_senders),
        ),
    );
    let expected: Vec<&Downstream> = f.downstream.iter().filter(|d| !d.is_witness).collect();
    let missing: Vec<&&Downstream> = expected.iter().filter(|d| !d.attached).collect();
    if !missing.is_empty() {
        r.warnings.push(format!(
            "- {} of {} downstream nodes not attached:",
            missing.len(),
            expected.len()
        ));
        for m in &missing {
            r.warnings
                .push(format!("  - {} (ID: {})\n", m.node_name, m.node_id));
        }
    }
    if st.max_replication_slots == 0 {
        r.rows
            .push(StatusRow::new("Replication slots", "disabled").typed(Json::Null));
        return;
    }
    let missing_slots: Vec<&Downstream> = f.downstream.iter().filter(|d| d.slot_missing).collect();
    if !missing_slots.is_empty() {
        r.warnings.push(format!(
            "- replication slots missing for following {} node(s):",
            missing_slots.len()
        ));
        for m in &missing_slots {
            r.warnings.push(format!(
                "  - {} (ID: {}, slot name: \"{}\")",
                m.node_name,
                m.node_id,
                m.slot_name.as_deref().unwrap_or("")
            ));
        }
    }
    let mut s = format!(
        "{} physical (of maximal {}; {} missing)",
        st.active_slots + st.inactive_slots,
        st.max_replication_slots,
        missing_slots.len()
    );
    if st.inactive_slots > 0 {
        s.push_str(&format!("; {} inactive", st.inactive_slots));
        r.warnings.push(format!(
            "- node has {} inactive physical replication slots",
            st.inactive_slots
        ));
        for n in &f.inactive_slot_names {
            r.warnings.push(format!("  - {n}"));
        }
    }
    let names = |v: &[String]| Json::from(v.to_vec());
    let typed = Json::object()
        .field("physical", st.active_slots + st.inactive_slots)
        .field("max", st.max_replication_slots)
        .field("missing", missing_slots.len() as i64)
        .field("inactive", st.inactive_slots)
        .field("inactive_names", names(&f.inactive_slot_names))
        .field("missing_names", names(&r.missing_slot_names));
    r.rows
        .push(StatusRow::new("Replication slots", s).typed(typed));
}

/// A standby's upstream, lag and LSNs; n/a (mostly CSV-only) otherwise.
fn upstream_rows(f: &StatusFacts, r: &mut StatusReport) {
    if f.node.node_type != NodeType::Standby {
        for (key, text_too, value) in [
            ("Upstream node", false, "(none)"),
            ("Replication lag", true, "n/a"),
            ("Last received LSN", false, "(none)"),
            ("Last replayed LSN", false, "(none)"),
        ] {
            let row = StatusRow::csv_only(key, value).typed(Json::Null);
            r.rows.push(StatusRow {
                in_text: text_too,
                ..row
            });
        }
        return;
    }
    let st = &f.stats;
    let up_name = f.upstream.as_ref().map(|u| u.node_name.clone());
    let up_id = f.node.upstream_node_id;
    r.rows.push(
        StatusRow::new(
            "Upstream node",
            format!(
                "{} (ID: {})",
                up_name.as_deref().unwrap_or(""),
                up_id.unwrap_or(0)
            ),
        )
        .typed(up_id.map(|id| {
            Json::object()
                .field("node_id", id)
                .field("node_name", up_name.clone())
        })),
    );
    r.rows.push(
        StatusRow::new(
            "Replication lag",
            format!("{} seconds", st.status_lag_seconds),
        )
        .typed(st.status_lag_seconds),
    );
    let lsn = |l: &Option<String>| l.clone().unwrap_or_else(|| "0/0".into());
    r.rows.push(
        StatusRow::new("Last received LSN", lsn(&st.receive_lsn)).typed(st.receive_lsn.clone()),
    );
    r.rows.push(
        StatusRow::new("Last replayed LSN", lsn(&st.replay_lsn)).typed(st.replay_lsn.clone()),
    );
}

/// The text block: the rows the text output shows. repmgr puts() the
/// buffer, hence the blank line at the end.
pub fn render_text(r: &StatusReport) -> String {
    let mut out = format!("Node \"{}\":\n", r.node_name);
    for row in r.rows.iter().filter(|row| row.in_text) {
        out.push_str(&format!("\t{}: {}\n", row.key, row.value));
    }
    out.push('\n');
    out
}

/// The CSV: every row, then the counters and the slot names.
pub fn render_csv(r: &StatusReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("\"Node name\",\"{}\"\n", r.node_name));
    out.push_str(&format!("\"Node ID\",\"{}\"\n", r.node_id));
    for row in r.rows.iter().filter(|row| row.in_csv) {
        let v = row.csv_value.as_ref().unwrap_or(&row.value);
        out.push_str(&format!("\"{}\",\"{v}\"\n", row.key));
    }
    out.push_str(&format!("\"max_wal_senders\",{}\n", r.max_wal_senders));
    out.push_str(&format!(
        "\"occupied_wal_senders\",{}\n",
        r.occupied_wal_senders
    ));
    out.push_str(&format!(
        "\"max_replication_slots\",{}\n",
        r.max_replication_slots
    ));
    out.push_str(&format!(
        "\"active_replication_slots\",{}\n",
        r.active_slots
    ));
    out.push_str(&format!(
        "\"inactive_replication_slots\",{}",
        r.inactive_slots
    ));
    for n in &r.inactive_slot_names {
        out.push_str(&format!(",\"{n}\""));
    }
    out.push('\n');
    out.push_str(&format!(
        "\"missing_replication_slots\",{}",
        r.missing_slot_names.len()
    ));
    for m in &r.missing_slot_names {
        out.push_str(&format!(",\"{m}\""));
    }
    out.push('\n');
    out
}

/// The `--json` document: the node, every row under its label as a
/// snake_case key with its typed value, and the issues the text lists
/// under its warning (without their leading "- ").
pub fn render_json(r: &StatusReport) -> String {
    let mut doc = Json::object()
        .field("node_name", &r.node_name)
        .field("node_id", r.node_id);
    for row in &r.rows {
        doc.set(snake_case(row.key), row.json.clone());
    }
    let warnings: Vec<String> = r
        .warnings
        .iter()
        .map(|w| {
            let w = w.trim_end();
            w.strip_prefix("- ").unwrap_or(w).to_string()
        })
        .collect();
    doc.field("warnings", warnings).render()
}

/// The list printed under the warning, two spaces in.
pub fn render_issues(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("  {w}\n")).collect()
}

#[cfg(test)]
mod tests;
