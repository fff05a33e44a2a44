//! `repmgr node status`, and its `--is-shutdown-cleanly` probe that
//! `standby switchover` runs on the demotion candidate.

use std::path::Path;

use super::{is_pg_dir, ready_archive_files, Ctx};
use crate::commands::APP_NAME;
use crate::db::{self, checks::Downstream, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::{self, PgBin};

/// `repmgr node status`.
pub fn status(ctx: &Ctx) -> Result<()> {
    if ctx.opts.is_shutdown_cleanly {
        println!("--state={}", shutdown_state(ctx)?);
        return Ok(());
    }
    let cfg = ctx.node_config(false)?;
    let csv = ctx.opts.csv;
    let mut c = ctx.connect_local()?;
    let node_id = cfg.node_id.unwrap_or(0);
    let node = db::nodes::get(&mut c, node_id)?
        .ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;
    let st = db::checks::stats(&mut c)?;
    let size = db::checks::cluster_size(&mut c).unwrap_or_else(|_| "unknown".into());

    // (key, value, shown in text mode)
    let mut kv: Vec<(&str, String, bool)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    kv.push(("PostgreSQL version", st.server_version.clone(), true));
    kv.push(("Total data size", size, true));
    kv.push(("Conninfo", node.conninfo.clone(), true));
    if ctx.opts.verbose {
        let sysid = db::replication::system_identifier(&mut c).unwrap_or_default();
        if sysid.is_empty() {
            kv.push(("System identifier", "unknown".into(), true));
            warnings.push("unable to retrieve system identifier from pg_control".into());
        } else {
            kv.push(("System identifier", sysid, true));
        }
    }
    kv.push(("Role", node.node_type.to_string(), true));
    match node.node_type {
        NodeType::Primary if st.in_recovery => {
            warnings.push("- node is registered as primary but running as standby".into())
        }
        NodeType::Standby if !st.in_recovery => {
            warnings.push("- node is registered as standby but running as primary".into())
        }
        _ => {}
    }
    let archiving_off = st.archive_mode == "off";
    if archiving_off {
        kv.push(("WAL archiving", "off".into(), true));
        kv.push(("Archive command", "(none)".into(), true));
    } else {
        let enabled = !(st.in_recovery && st.archive_mode == "on");
        let mut s = if enabled { "enabled" } else { "disabled" }.to_string();
        if !enabled {
            s.push_str(" (on standbys \"archive_mode\" must be set to \"always\" to be effective)");
        }
        kv.push(("WAL archiving", s, true));
        kv.push(("Archive command", st.archive_command.clone(), true));
    }
    match ready_archive_files(&cfg.data_directory) {
        None => warnings.push("- unable to check archive_status directory\n".into()),
        Some(n) => {
            let v = if csv {
                n.to_string()
            } else {
                format!("{n} pending files")
            };
            kv.push(("WALs pending archiving", v, !archiving_off));
        }
    }
    kv.push((
        "Replication connections",
        format!(
            "{} (of maximal {})",
            st.attached_wal_receivers, st.max_wal_senders
        ),
        true,
    ));

    let ds = db::checks::downstream(&mut c, node_id)?;
    let expected: Vec<&Downstream> = ds.iter().filter(|d| !d.is_witness).collect();
    let missing: Vec<&&Downstream> = expected.iter().filter(|d| !d.attached).collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "- {} of {} downstream nodes not attached:",
            missing.len(),
            expected.len()
        ));
        for m in &missing {
            warnings.push(format!("  - {} (ID: {})\n", m.node_name, m.node_id));
        }
    }

    let missing_slots: Vec<&Downstream> = ds.iter().filter(|d| d.slot_missing).collect();
    let mut inactive_names = Vec::new();
    if st.max_replication_slots == 0 {
        kv.push(("Replication slots", "disabled".into(), true));
    } else {
        if !missing_slots.is_empty() {
            warnings.push(format!(
                "- replication slots missing for following {} node(s):",
                missing_slots.len()
            ));
            for m in &missing_slots {
                warnings.push(format!(
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
            inactive_names = db::checks::inactive_slots(&mut c)?;
            s.push_str(&format!("; {} inactive", st.inactive_slots));
            warnings.push(format!(
                "- node has {} inactive physical replication slots",
                st.inactive_slots
            ));
            for n in &inactive_names {
                warnings.push(format!("  - {n}"));
            }
        }
        kv.push(("Replication slots", s, true));
    }

    if node.node_type == NodeType::Standby {
        let up = match node.upstream_node_id {
            Some(id) => db::nodes::get(&mut c, id)?,
            None => None,
        };
        kv.push((
            "Upstream node",
            format!(
                "{} (ID: {})",
                up.as_ref().map(|u| u.node_name.as_str()).unwrap_or(""),
                node.upstream_node_id.unwrap_or(0)
            ),
            true,
        ));
        kv.push((
            "Replication lag",
            format!("{} seconds", st.status_lag_seconds),
            true,
        ));
        let lsn = |l: &Option<String>| l.clone().unwrap_or_else(|| "0/0".into());
        kv.push(("Last received LSN", lsn(&st.receive_lsn), true));
        kv.push(("Last replayed LSN", lsn(&st.replay_lsn), true));
    } else {
        kv.push(("Upstream node", "(none)".into(), false));
        kv.push(("Replication lag", "n/a".into(), true));
        kv.push(("Last received LSN", "(none)".into(), false));
        kv.push(("Last replayed LSN", "(none)".into(), false));
    }

    let mut out = String::new();
    if csv {
        out.push_str(&format!("\"Node name\",\"{}\"\n", node.node_name));
        out.push_str(&format!("\"Node ID\",\"{}\"\n", node.node_id));
        for (k, v, _) in &kv {
            out.push_str(&format!("\"{k}\",\"{v}\"\n"));
        }
        out.push_str(&format!("\"max_wal_senders\",{}\n", st.max_wal_senders));
        out.push_str(&format!(
            "\"occupied_wal_senders\",{}\n",
            st.attached_wal_receivers
        ));
        out.push_str(&format!(
            "\"max_replication_slots\",{}\n",
            st.max_replication_slots
        ));
        out.push_str(&format!(
            "\"active_replication_slots\",{}\n",
            st.active_slots
        ));
        out.push_str(&format!(
            "\"inactive_replication_slots\",{}",
            st.inactive_slots
        ));
        if st.inactive_slots > 0 && inactive_names.is_empty() {
            inactive_names = db::checks::inactive_slots(&mut c)?;
        }
        for n in &inactive_names {
            out.push_str(&format!(",\"{n}\""));
        }
        out.push('\n');
        out.push_str(&format!(
            "\"missing_replication_slots\",{}",
            missing_slots.len()
        ));
        for m in &missing_slots {
            out.push_str(&format!(",\"{}\"", m.slot_name.as_deref().unwrap_or("")));
        }
    } else {
        out.push_str(&format!("Node \"{}\":\n", node.node_name));
        for (k, v, shown) in &kv {
            if *shown {
                out.push_str(&format!("\t{k}: {v}\n"));
            }
        }
    }
    // repmgr puts() the buffer: one more newline.
    println!("{out}");

    if warnings.is_empty() {
        return Ok(());
    }
    if !ctx.opts.terse && !csv {
        crate::log_warning!("following issue(s) were detected:");
        let mut list = String::new();
        for w in &warnings {
            list.push_str(&format!("  {w}\n"));
        }
        print!("{list}");
        crate::log_hint!("execute \"repmgr node check\" for more details");
    }
    Err(Error::silent(ExitCode::NodeStatus))
}

/// `--is-shutdown-cleanly`: UP, DOWN (with the shutdown checkpoint),
/// SHUTTING_DOWN, UNCLEAN_SHUTDOWN or UNKNOWN, from a ping and pg_control.
/// Works with the server down (`standby switchover` runs it remotely).
fn shutdown_state(ctx: &Ctx) -> Result<String> {
    let cfg = ctx.node_config(true)?;
    if !is_pg_dir(&cfg.data_directory) {
        return Ok("UNKNOWN".into());
    }
    let ci = ctx.local_conninfo()?;
    let up = matches!(
        db::connect::ping(&ci, APP_NAME),
        db::connect::Ping::Ok | db::connect::Ping::Reject
    );
    let bin = PgBin::new(ctx.opts.pg_bindir.as_deref(), cfg);
    let cd = match pgtools::control_data(&bin, Path::new(&cfg.data_directory)) {
        Ok(cd) if !cd.state.is_empty() => cd,
        _ => {
            crate::log_debug!("unable to determine db state");
            return Ok("UNKNOWN".into());
        }
    };
    Ok(shutdown_state_from(up, &cd.state, &cd.checkpoint_lsn))
}

/// The decision of [`shutdown_state`], from its three facts.
pub fn shutdown_state_from(up: bool, db_state: &str, checkpoint_lsn: &str) -> String {
    let shut_down = db_state == "shut down" || db_state == "shut down in recovery";
    let mut state = if up { "UP" } else { "" };
    if !shut_down {
        if !up {
            state = "UNCLEAN_SHUTDOWN";
        } else if db_state == "shutting down" {
            state = "SHUTTING_DOWN";
        }
    }
    if checkpoint_lsn.is_empty() || checkpoint_lsn == "0/0" {
        return "UNKNOWN".into();
    }
    if state.is_empty() {
        return format!("DOWN --last-checkpoint-lsn={checkpoint_lsn}");
    }
    state.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_states() {
        assert_eq!(
            shutdown_state_from(true, "in production", "0/3000060"),
            "UP"
        );
        assert_eq!(
            shutdown_state_from(false, "shut down", "0/3000060"),
            "DOWN --last-checkpoint-lsn=0/3000060"
        );
        assert_eq!(
            shutdown_state_from(false, "in production", "0/3000060"),
            "UNCLEAN_SHUTDOWN"
        );
        assert_eq!(
            shutdown_state_from(true, "shutting down", "0/3000060"),
            "SHUTTING_DOWN"
        );
        assert_eq!(shutdown_state_from(false, "shut down", ""), "UNKNOWN");
    }
}
