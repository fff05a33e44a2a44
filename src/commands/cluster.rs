//! `cluster show`, `cluster event` and `cluster cleanup` (matrix and
//! crosscheck are in `matrix.rs`).

use std::thread;

use super::{parse_conninfo, Ctx, APP_NAME};
use crate::db::{self, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::output;

/// How a node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Up,
    /// The server answers but would not let us in (repmgr's REJECTED).
    Rejected,
    Down,
}

/// What one parallel probe of a node found.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub reach: Reach,
    pub error: Option<String>,
    pub in_recovery: Option<bool>,
    pub timeline: Option<i64>,
    /// application_names streaming from this node.
    pub attached: Vec<String>,
    pub replay_paused: bool,
    /// Running as primary but fenced (read-only) by repmgrd.
    pub fenced: bool,
}

impl Probe {
    fn down(reach: Reach, error: String) -> Probe {
        Probe {
            reach,
            error: Some(error),
            in_recovery: None,
            timeline: None,
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        }
    }
}

/// Probes one node: a connection bounded by its connect_timeout, then a few
/// cheap queries. Never fails: what went wrong is part of the result.
fn probe(n: &NodeRecord) -> Probe {
    probe_keep(n).0
}

/// [`probe`], keeping the connection for further questions.
fn probe_keep(n: &NodeRecord) -> (Probe, Option<crate::db::Session>) {
    let ci = match parse_conninfo(&n.conninfo, "conninfo") {
        Ok(ci) => ci,
        Err(e) => return (Probe::down(Reach::Down, e.detail.unwrap_or_default()), None),
    };
    let mut c = match db::connect::probe(&ci, APP_NAME) {
        Ok(c) => c,
        Err((e, ping)) => {
            let reach = match ping {
                db::connect::Ping::Ok => Reach::Rejected,
                _ => Reach::Down,
            };
            let text = e.detail.clone().unwrap_or_else(|| e.message().to_string());
            return (Probe::down(reach, text), None);
        }
    };
    let in_recovery = db::server::in_recovery(&mut c).ok();
    let timeline = db::server::timeline(&mut c).ok();
    let replay_paused = db::server::wal_replay_paused(&mut c).unwrap_or(false);
    let attached = db::server::attached_standbys(&mut c).unwrap_or_default();
    let fenced = db::fence::is_fenced(&mut c).unwrap_or(false);
    let p = Probe {
        reach: Reach::Up,
        error: None,
        in_recovery,
        timeline,
        attached,
        replay_paused,
        fenced,
    };
    (p, Some(c))
}

/// Probes every node at once like [`probe_all`], then asks each reachable
/// node `ask` on the same connection (still in that node's thread).
pub(crate) fn probe_all_with<T, F>(nodes: &[NodeRecord], ask: F) -> Vec<(Probe, Option<T>)>
where
    T: Send + 'static,
    F: Fn(&NodeRecord, &mut crate::db::Session) -> T + Send + Sync + 'static,
{
    let ask = std::sync::Arc::new(ask);
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|n| {
            let ask = ask.clone();
            thread::spawn(move || {
                let (p, c) = probe_keep(&n);
                let answer = c.map(|mut c| ask(&n, &mut c));
                (p, answer)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| {
                (
                    Probe::down(Reach::Down, "internal error while probing".into()),
                    None,
                )
            })
        })
        .collect()
}

/// Probes every node at once, so one hung node costs one timeout in total.
fn probe_all(nodes: &[NodeRecord]) -> Vec<Probe> {
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|n| thread::spawn(move || probe(&n)))
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Probe::down(Reach::Down, "internal error while probing".into()))
        })
        .collect()
}

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
            if !ctx.opts.compact {
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
    let headers: &[&str] = if ctx.opts.compact {
        &["Node ID", "Name", "Event", "OK", "Timestamp"]
    } else {
        &["Node ID", "Name", "Event", "OK", "Timestamp", "Details"]
    };
    print!("{}", output::table(headers, &rows));
    Ok(())
}

/// `repmgr cluster cleanup [-k DAYS] [--node-id ID]`: purges
/// repmgr.monitoring_history on the primary, keeping DAYS days (all rows
/// with 0, the default); event `cluster_cleanup`.
pub fn cleanup(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let keep = crate::cli::parse_int_option("keep-history", &ctx.opts.keep_history)?.unwrap_or(0);
    if keep < 0 {
        return Err(Error::config(
            "--keep-history must be a positive integer or 0",
        ));
    }
    let node_id = crate::cli::parse_int_option("node-id", &ctx.opts.node_id)?;
    let mut local = ctx.connect_local()?;
    crate::log_info!("connecting to primary server");
    let (_, mut primary) = super::find_primary(&mut local)?.ok_or_else(|| {
        Error::db_conn("unable to connect to the primary node")
            .hint("check the primary node is running and registered")
    })?;
    drop(local);
    crate::log_debug!("number of days of monitoring history to retain: {keep}");
    let n = db::checks::monitoring_rows_to_delete(&mut primary, keep, node_id)
        .map_err(|e| e.with_code(ExitCode::DbQuery))?;
    if n == 0 {
        crate::log_info!("no monitoring records to delete");
        return Ok(());
    }
    crate::log_debug!("at least {n} monitoring records for deletion");
    if let Err(e) = db::checks::delete_monitoring_rows(&mut primary, keep, node_id) {
        let details = "unable to delete monitoring records".to_string();
        let mut ev = crate::events::Event::for_node(cfg, "cluster_cleanup", details.clone());
        ev.successful = false;
        crate::events::record(Some(&mut primary), cfg, &ev);
        return Err(Error::db_query(details).detail(db::pg_error_text(&e)));
    }
    match db::checks::vacuum_monitoring(&mut primary) {
        Ok(()) => crate::log_info!("vacuum of table \"repmgr.monitoring_history\" completed"),
        Err(e) => {
            crate::log_warning!("unable to vacuum table \"repmgr.monitoring_history\"");
            crate::log_detail!("{}", db::pg_error_text(&e));
        }
    }
    let details = cleanup_details(keep, node_id);
    let ev = crate::events::Event::for_node(cfg, "cluster_cleanup", details.clone());
    crate::events::record(Some(&mut primary), cfg, &ev);
    crate::log_notice!("{details}");
    Ok(())
}

/// The event details repmgr writes for `cluster cleanup`.
pub fn cleanup_details(keep: i32, node_id: Option<i32>) -> String {
    let mut d = if keep == 0 {
        "all monitoring records deleted".to_string()
    } else {
        "monitoring records deleted".to_string()
    };
    if let Some(id) = node_id {
        d.push_str(&format!(" for node {id}"));
    }
    if keep > 0 {
        d.push_str(&format!("; records newer than {keep} day(s) retained"));
    }
    d
}
