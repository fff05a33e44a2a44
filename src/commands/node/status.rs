//! `repmgr node status` (its `--is-shutdown-cleanly` probe, which
//! `standby switchover` runs on the demotion candidate, is
//! `diagnostics.rs`).
//!
//! The node is read once into [`StatusFacts`]; the [`StatusReport`] made from
//! them is all the text and CSV renderings see.

use super::{ready_archive_files, Ctx};
use crate::db::{self, checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};

/// One `Key: value` line of `node status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub key: &'static str,
    pub value: String,
    /// The CSV's own spelling of the value, where it differs (a bare count).
    pub csv_value: Option<String>,
    /// Whether the text output shows it; the CSV lists every row.
    pub in_text: bool,
}

impl StatusRow {
    fn new(key: &'static str, value: impl Into<String>) -> StatusRow {
        StatusRow {
            key,
            value: value.into(),
            csv_value: None,
            in_text: true,
        }
    }

    fn csv_only(key: &'static str, value: impl Into<String>) -> StatusRow {
        StatusRow {
            in_text: false,
            ..StatusRow::new(key, value)
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
    size: String,
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
    let node = db::nodes::get(&mut c, node_id)?
        .ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;
    let stats = db::checks::stats(&mut c)?;
    let size = db::checks::cluster_size(&mut c).unwrap_or_else(|_| "unknown".into());
    let system_identifier = ctx
        .opts
        .verbose
        .then(|| db::replication::system_identifier(&mut c).unwrap_or_default());
    let ready_files = ready_archive_files(&cfg.data_directory);
    let downstream = db::checks::downstream(&mut c, node_id)?;
    let mut inactive_slot_names = Vec::new();
    if stats.max_replication_slots != 0 && stats.inactive_slots > 0 {
        inactive_slot_names = db::checks::inactive_slots(&mut c)?;
    }
    let upstream = match node.upstream_node_id {
        Some(id) if node.node_type == NodeType::Standby => db::nodes::get(&mut c, id)?,
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
    r.rows.push(StatusRow::new("Total data size", &f.size));
    r.rows.push(StatusRow::new("Conninfo", &f.node.conninfo));
    match f.system_identifier.as_deref() {
        None => {}
        Some("") => {
            r.rows.push(StatusRow::new("System identifier", "unknown"));
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
        r.rows.push(StatusRow::new("Archive command", "(none)"));
    } else {
        let enabled = !(st.in_recovery && st.archive_mode == "on");
        let mut s = if enabled { "enabled" } else { "disabled" }.to_string();
        if !enabled {
            s.push_str(" (on standbys \"archive_mode\" must be set to \"always\" to be effective)");
        }
        r.rows.push(StatusRow::new("WAL archiving", s));
        r.rows
            .push(StatusRow::new("Archive command", &st.archive_command));
    }
    match f.ready_files {
        None => r
            .warnings
            .push("- unable to check archive_status directory\n".into()),
        Some(n) => r.rows.push(StatusRow {
            csv_value: Some(n.to_string()),
            in_text: !archiving_off,
            ..StatusRow::new("WALs pending archiving", format!("{n} pending files"))
        }),
    }
}

/// WAL senders, downstream nodes and replication slots.
fn replication_rows(f: &StatusFacts, r: &mut StatusReport) {
    let st = &f.stats;
    r.rows.push(StatusRow::new(
        "Replication connections",
        format!(
            "{} (of maximal {})",
            st.attached_wal_receivers, st.max_wal_senders
        ),
    ));
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
        r.rows.push(StatusRow::new("Replication slots", "disabled"));
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
    r.rows.push(StatusRow::new("Replication slots", s));
}

/// A standby's upstream, lag and LSNs; n/a (mostly CSV-only) otherwise.
fn upstream_rows(f: &StatusFacts, r: &mut StatusReport) {
    if f.node.node_type != NodeType::Standby {
        r.rows.push(StatusRow::csv_only("Upstream node", "(none)"));
        r.rows.push(StatusRow::new("Replication lag", "n/a"));
        r.rows
            .push(StatusRow::csv_only("Last received LSN", "(none)"));
        r.rows
            .push(StatusRow::csv_only("Last replayed LSN", "(none)"));
        return;
    }
    let st = &f.stats;
    r.rows.push(StatusRow::new(
        "Upstream node",
        format!(
            "{} (ID: {})",
            f.upstream
                .as_ref()
                .map(|u| u.node_name.as_str())
                .unwrap_or(""),
            f.node.upstream_node_id.unwrap_or(0)
        ),
    ));
    r.rows.push(StatusRow::new(
        "Replication lag",
        format!("{} seconds", st.status_lag_seconds),
    ));
    let lsn = |l: &Option<String>| l.clone().unwrap_or_else(|| "0/0".into());
    r.rows
        .push(StatusRow::new("Last received LSN", lsn(&st.receive_lsn)));
    r.rows
        .push(StatusRow::new("Last replayed LSN", lsn(&st.replay_lsn)));
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
    for row in &r.rows {
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

/// The list printed under the warning, two spaces in.
pub fn render_issues(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("  {w}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i32, node_type: NodeType, upstream: Option<i32>) -> NodeRecord {
        NodeRecord {
            node_id: id,
            upstream_node_id: upstream,
            active: true,
            node_name: format!("node{id}"),
            node_type,
            location: "default".into(),
            priority: 100,
            conninfo: format!("host=n{id} dbname=repmgr"),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn primary_facts() -> StatusFacts {
        StatusFacts {
            node: record(1, NodeType::Primary, None),
            stats: NodeStats {
                server_version: "16.2".into(),
                max_wal_senders: 10,
                attached_wal_receivers: 1,
                max_replication_slots: 10,
                total_slots: 2,
                active_slots: 1,
                inactive_slots: 1,
                archive_mode: "off".into(),
                ..NodeStats::default()
            },
            size: "30 MB".into(),
            system_identifier: None,
            ready_files: Some(0),
            downstream: vec![
                Downstream {
                    node_id: 2,
                    node_name: "node2".into(),
                    is_witness: false,
                    attached: true,
                    slot_missing: false,
                    slot_name: Some("repmgr_slot_2".into()),
                },
                Downstream {
                    node_id: 3,
                    node_name: "node3".into(),
                    is_witness: false,
                    attached: false,
                    slot_missing: true,
                    slot_name: Some("repmgr_slot_3".into()),
                },
            ],
            inactive_slot_names: vec!["repmgr_slot_4".into()],
            upstream: None,
        }
    }

    #[test]
    fn primary_text_and_issues() {
        let r = report(&primary_facts());
        assert_eq!(
            render_text(&r),
            "Node \"node1\":\n\
             \tPostgreSQL version: 16.2\n\
             \tTotal data size: 30 MB\n\
             \tConninfo: host=n1 dbname=repmgr\n\
             \tRole: primary\n\
             \tWAL archiving: off\n\
             \tArchive command: (none)\n\
             \tReplication connections: 1 (of maximal 10)\n\
             \tReplication slots: 2 physical (of maximal 10; 1 missing); 1 inactive\n\
             \tReplication lag: n/a\n\
             \n"
        );
        assert_eq!(
            render_issues(&r.warnings),
            "  - 1 of 2 downstream nodes not attached:\n\
             \x20   - node3 (ID: 3)\n\n\
             \x20 - replication slots missing for following 1 node(s):\n\
             \x20   - node3 (ID: 3, slot name: \"repmgr_slot_3\")\n\
             \x20 - node has 1 inactive physical replication slots\n\
             \x20   - repmgr_slot_4\n"
        );
    }

    #[test]
    fn primary_csv() {
        assert_eq!(
            render_csv(&report(&primary_facts())),
            "\"Node name\",\"node1\"\n\
             \"Node ID\",\"1\"\n\
             \"PostgreSQL version\",\"16.2\"\n\
             \"Total data size\",\"30 MB\"\n\
             \"Conninfo\",\"host=n1 dbname=repmgr\"\n\
             \"Role\",\"primary\"\n\
             \"WAL archiving\",\"off\"\n\
             \"Archive command\",\"(none)\"\n\
             \"WALs pending archiving\",\"0\"\n\
             \"Replication connections\",\"1 (of maximal 10)\"\n\
             \"Replication slots\",\"2 physical (of maximal 10; 1 missing); 1 inactive\"\n\
             \"Upstream node\",\"(none)\"\n\
             \"Replication lag\",\"n/a\"\n\
             \"Last received LSN\",\"(none)\"\n\
             \"Last replayed LSN\",\"(none)\"\n\
             \"max_wal_senders\",10\n\
             \"occupied_wal_senders\",1\n\
             \"max_replication_slots\",10\n\
             \"active_replication_slots\",1\n\
             \"inactive_replication_slots\",1,\"repmgr_slot_4\"\n\
             \"missing_replication_slots\",1,\"repmgr_slot_3\"\n"
        );
    }

    #[test]
    fn standby_text() {
        let f = StatusFacts {
            node: record(2, NodeType::Standby, Some(1)),
            stats: NodeStats {
                in_recovery: true,
                server_version: "16.2".into(),
                max_wal_senders: 10,
                archive_mode: "on".into(),
                archive_command: "cp %p /a/%f".into(),
                receive_lsn: Some("0/3000148".into()),
                status_lag_seconds: 2,
                ..NodeStats::default()
            },
            size: "30 MB".into(),
            system_identifier: Some(String::new()),
            ready_files: None,
            downstream: Vec::new(),
            inactive_slot_names: Vec::new(),
            upstream: Some(record(1, NodeType::Primary, None)),
        };
        let r = report(&f);
        assert_eq!(
            render_text(&r),
            "Node \"node2\":\n\
             \tPostgreSQL version: 16.2\n\
             \tTotal data size: 30 MB\n\
             \tConninfo: host=n2 dbname=repmgr\n\
             \tSystem identifier: unknown\n\
             \tRole: standby\n\
             \tWAL archiving: disabled (on standbys \"archive_mode\" must be set to \"always\" to be effective)\n\
             \tArchive command: cp %p /a/%f\n\
             \tReplication connections: 0 (of maximal 10)\n\
             \tReplication slots: disabled\n\
             \tUpstream node: node1 (ID: 1)\n\
             \tReplication lag: 2 seconds\n\
             \tLast received LSN: 0/3000148\n\
             \tLast replayed LSN: 0/0\n\
             \n"
        );
        assert_eq!(
            r.warnings,
            [
                "unable to retrieve system identifier from pg_control",
                "- unable to check archive_status directory\n"
            ]
        );
    }
}
