//! `repmgr node check`: one single check, or the full run in repmgr's
//! order. The diagnostics `standby switchover` runs through it
//! (--has-passfile, --db-connection, --replication-connection) are
//! `diagnostics.rs`.

use crate::db::Session;

use super::check_json;
use super::checks::{
    check_archive_ready, check_data_directory, check_downstream, check_missing_slots,
    check_replication_config_owner, check_replication_lag, check_repmgrd, check_role_or_fenced,
    check_slots, check_upstream, Check, CheckStatus, Mode, Repmgrd, Upstream,
};
use super::diagnostics::{db_connection, replication_config_owner_ok, replication_connection};
use super::{connect_local, is_pg_dir, local_conninfo, ready_archive_files};
use crate::commands::Ctx;
use crate::config::Config;
use crate::db::{self, checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};

/// The single checks, in the order repmgr tries them when several are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Single {
    ArchiveReady,
    Upstream,
    Downstream,
    ReplicationLag,
    Role,
    Slots,
    MissingSlots,
    DataDirectory,
    Repmgrd,
    ReplicationConfigOwner,
}

impl Single {
    fn chosen(ctx: &Ctx) -> Option<Single> {
        let o = &ctx.opts;
        [
            (o.archive_ready, Single::ArchiveReady),
            (o.upstream, Single::Upstream),
            (o.downstream, Single::Downstream),
            (o.replication_lag, Single::ReplicationLag),
            (o.role, Single::Role),
            (o.slots, Single::Slots),
            (o.missing_slots, Single::MissingSlots),
            (o.data_directory_config, Single::DataDirectory),
            (o.repmgrd, Single::Repmgrd),
            (o.replication_config_owner, Single::ReplicationConfigOwner),
        ]
        .into_iter()
        .find(|(on, _)| *on)
        .map(|(_, s)| s)
    }

    fn option(self) -> &'static str {
        match self {
            Single::ArchiveReady => "--archive-ready",
            Single::Upstream => "--upstream",
            Single::Downstream => "--downstream",
            Single::ReplicationLag => "--replication-lag",
            Single::Role => "--role",
            Single::Slots => "--slots",
            Single::MissingSlots => "--missing-slots",
            Single::DataDirectory => "--data-directory-config",
            Single::Repmgrd => "--repmgrd",
            Single::ReplicationConfigOwner => "--replication-config-owner",
        }
    }

    /// The Nagios service name of the check.
    fn nagios_name(self) -> &'static str {
        match self {
            Single::ArchiveReady => "REPMGR_ARCHIVE_READY",
            Single::Upstream => "REPMGR_UPSTREAM_SERVER",
            Single::Downstream => "REPMGR_DOWNSTREAM_SERVERS",
            Single::ReplicationLag => "REPMGR_REPLICATION_LAG",
            Single::Role => "REPMGR_SERVER_ROLE",
            Single::Slots => "REPMGR_INACTIVE_SLOTS",
            Single::MissingSlots => "REPMGR_MISSING_SLOTS",
            Single::DataDirectory => "REPMGR_DATA_DIRECTORY",
            Single::Repmgrd => "REPMGRD",
            Single::ReplicationConfigOwner => "REPMGR_REPLICATION_CONFIG_OWNER",
        }
    }
}

/// What the full run looks at, read before any check is decided, in the
/// order repmgr reads it.
struct Facts {
    node: NodeRecord,
    stats: NodeStats,
    downstream: Vec<Downstream>,
    upstream: Option<Upstream>,
    fenced: bool,
    ready_files: Option<i32>,
    pg_dir: bool,
}

/// `repmgr node check`.
pub fn check(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let mode = Mode::of(ctx);

    // Answered by an exit status or an --optformat line only.
    for (on, option) in [
        (ctx.opts.has_passfile, "--has-passfile"),
        (ctx.opts.replication_connection, "--replication-connection"),
    ] {
        if on && ctx.opts.json {
            return Err(Error::config(format!(
                "--json output not provided with {option} option"
            )));
        }
    }
    // repmgr's internal check that libpq knows the "passfile" keyword
    // (PostgreSQL 10 and later), not that a file exists: this build's
    // libpq layer always does.
    if ctx.opts.has_passfile {
        return Ok(());
    }
    if ctx.opts.replication_connection {
        println!("--connection={}", replication_connection(ctx)?);
        return Ok(());
    }
    if ctx.opts.db_connection {
        return db_connection(ctx, mode);
    }
    let single = Single::chosen(ctx);
    // repmgr 5.3 connects before it looks at the output mode: a node that
    // is down exits 6 (or gives its --optformat or Nagios line) whatever
    // the mode, and scripts tell "down" from "bad options" so.
    let mut c = match connect_local(ctx) {
        Ok(c) => c,
        Err(e) => return connection_failed(cfg, single, mode, e),
    };
    refuse_mode(single, mode)?;
    let node_id = cfg.node_id.unwrap_or(0);
    // The record and the local facts in one statement; --role needs only
    // the recovery state and the fence: skip the snapshot's planning.
    // The full run's next question comes in the same round trip as the
    // record: a standby's upstream record (its downstream nodes are then
    // asked here while the upstream is asked on its own connection), or a
    // primary's downstream nodes.
    let (found, asked) = match single {
        Some(Single::Role) => (db::checks::record_and_role(&mut c, node_id)?, None),
        Some(_) => (db::checks::record_and_stats(&mut c, node_id)?, None),
        None => {
            let standby = super::likely_standby(&cfg.data_directory);
            let ask = db::checks::Ask {
                downstream: !standby,
                size: false,
                upstream: standby,
            };
            let f = db::checks::local_facts(&mut c, node_id, ask)?;
            (f.found, Some((f.downstream, f.upstream)))
        }
    };
    let (node, stats) =
        found.ok_or_else(|| Error::config(format!("no record found for node {node_id}")))?;

    if let Some(s) = single {
        let chk = single_check(ctx, &mut c, s, &node, &stats, mode)?;
        if ctx.opts.json {
            let one = std::slice::from_ref(&chk);
            print!("{}", check_json::render(&node.node_name, node.node_id, one));
        } else if let Some(l) = &chk.line {
            println!("{l}");
        }
        return chk.status.exit();
    }
    let (downstream, up_record) = asked.unwrap_or((None, None));
    let facts = gather(ctx, &mut c, node, stats, downstream, up_record, mode)?;
    let (rows, upstream) = full_checks(cfg, &facts, mode);
    superuser_hint(ctx, &facts.stats, mode);
    if ctx.opts.json {
        // Text mode's rows: the upstream check is listed, as in the text.
        let (name, id) = (&facts.node.node_name, facts.node.node_id);
        print!("{}", check_json::render(name, id, &rows));
    } else {
        print!("{}", full_report(&facts.node, &rows, mode));
    }
    warn_split_brain_risks(cfg, &mut c);
    if upstream.status != CheckStatus::Ok || rows.iter().any(|r| r.status != CheckStatus::Ok) {
        return Err(Error::silent(ExitCode::NodeStatus));
    }
    Ok(())
}

/// The output modes a check cannot give.
fn refuse_mode(single: Option<Single>, mode: Mode) -> Result<()> {
    if let Some(s) = single {
        if mode == Mode::Csv {
            return Err(Error::config(format!(
                "--csv output not provided with {} option",
                s.option()
            )));
        }
        if s == Single::ReplicationConfigOwner && mode != Mode::Optformat {
            return Err(Error::config(
                "--replication-config-owner option can only be used with --optformat",
            ));
        }
    } else if mode == Mode::Nagios {
        return Err(
            Error::config("--nagios can only be used with a specific check")
                .hint("execute \"repmgr node --help\" for details"),
        );
    }
    Ok(())
}

/// The local node cannot be reached: an error, or the line monitoring
/// reads in its mode.
fn connection_failed(cfg: &Config, single: Option<Single>, mode: Mode, e: Error) -> Result<()> {
    match (mode, single) {
        (Mode::Optformat, _) => {
            println!("--error=DB_CONNECTION");
            Err(Error::silent(ExitCode::DbConn))
        }
        // Better than repmgr: Nagios gets a CRITICAL line, not a log.
        (Mode::Nagios, Some(s)) => {
            crate::log_debug!("{}", e.detail.clone().unwrap_or_default());
            println!(
                "{} CRITICAL: unable to connect to node \"{}\" (ID: {})",
                s.nagios_name(),
                cfg.node_name,
                cfg.node_id.unwrap_or(0)
            );
            CheckStatus::Critical.exit()
        }
        _ => Err(e),
    }
}

/// One check: reads what it needs (and nothing more), then decides.
fn single_check(
    ctx: &Ctx,
    c: &mut Session,
    s: Single,
    node: &NodeRecord,
    stats: &NodeStats,
    mode: Mode,
) -> Result<Check> {
    let cfg = ctx.config();
    Ok(match s {
        Single::ArchiveReady => {
            check_archive_ready(cfg, ready_archive_files(&cfg.data_directory), mode)
        }
        Single::Upstream => {
            let up = upstream_of(ctx, c, node, mode)?;
            check_upstream(node, stats.in_recovery, up.as_ref(), mode)
        }
        Single::Downstream => {
            check_downstream(node, &db::checks::downstream(c, node.node_id)?, mode)
        }
        Single::ReplicationLag => {
            check_replication_lag(cfg, node, stats.in_recovery, stats.lag_seconds, mode)
        }
        Single::Role => check_role_or_fenced(node, stats.in_recovery, stats.fenced, mode),
        Single::Slots => check_slots(stats, mode),
        Single::MissingSlots => {
            check_missing_slots(&db::checks::downstream(c, node.node_id)?, mode)
        }
        Single::DataDirectory => {
            let pg_dir = is_pg_dir(&cfg.data_directory);
            let chk = check_data_directory(cfg, stats.data_directory.as_deref(), pg_dir, mode);
            superuser_hint(ctx, stats, mode);
            chk
        }
        Single::Repmgrd => check_repmgrd(repmgrd_state(c, node.node_id)?, mode),
        Single::ReplicationConfigOwner => {
            check_replication_config_owner(replication_config_owner_ok(&cfg.data_directory))
        }
    })
}

/// Everything the full run looks at, from what the record's round trip
/// brought (the downstream nodes, or the upstream's record) and the rest.
fn gather(
    ctx: &Ctx,
    c: &mut Session,
    node: NodeRecord,
    stats: NodeStats,
    downstream: Option<Result<Vec<Downstream>>>,
    up_record: Option<Result<Option<NodeRecord>>>,
    mode: Mode,
) -> Result<Facts> {
    let cfg = ctx.config();
    let up_record = match up_record {
        Some(asked) if node.upstream_node_id.is_some() && node.node_type != NodeType::Witness => {
            asked?
        }
        Some(_) => None,
        None => upstream_record(c, &node)?,
    };
    // The upstream is asked on its own connection while the local server
    // answers for the downstream nodes (unless it already did): a
    // standby's check costs about one connection's time, not two.
    let (downstream, upstream) = std::thread::scope(|s| {
        let asked = up_record.map(|r| s.spawn(move || ask_upstream(ctx, r, mode)));
        let downstream = match downstream {
            Some(d) => d,
            None => db::checks::downstream(c, node.node_id),
        };
        let upstream = match asked {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(Error::db_query(
                    "internal error while asking the upstream node",
                ))
            }),
            None => Ok(None),
        };
        (downstream, upstream)
    });
    let (downstream, upstream) = (downstream?, upstream?);
    Ok(Facts {
        fenced: stats.fenced,
        node,
        stats,
        downstream,
        upstream,
        ready_files: ready_archive_files(&cfg.data_directory),
        pg_dir: is_pg_dir(&cfg.data_directory),
    })
}

/// The full run's rows in repmgr's order, and the upstream check apart:
/// repmgr lists it in text output only, but counts it in every mode.
fn full_checks(cfg: &Config, f: &Facts, mode: Mode) -> (Vec<Check>, Check) {
    let (node, st) = (&f.node, &f.stats);
    let upstream = check_upstream(node, st.in_recovery, f.upstream.as_ref(), mode);
    let mut rows = vec![
        check_role_or_fenced(node, st.in_recovery, f.fenced, mode),
        check_replication_lag(cfg, node, st.in_recovery, st.lag_seconds, mode),
        check_archive_ready(cfg, f.ready_files, mode),
    ];
    if mode == Mode::Text {
        rows.push(upstream.clone());
    }
    rows.push(check_downstream(node, &f.downstream, mode));
    rows.push(check_slots(st, mode));
    rows.push(check_missing_slots(&f.downstream, mode));
    rows.push(check_data_directory(
        cfg,
        st.data_directory.as_deref(),
        f.pg_dir,
        mode,
    ));
    (rows, upstream)
}

/// This node's registered upstream and whether it streams from it; None
/// for a witness, or without a record. Connecting to the upstream fails
/// the command (exit 6) as in repmgr, except under --nagios, where it
/// counts as not attached (a CRITICAL line).
fn upstream_of(
    ctx: &Ctx,
    c: &mut Session,
    node: &NodeRecord,
    mode: Mode,
) -> Result<Option<Upstream>> {
    match upstream_record(c, node)? {
        Some(record) => ask_upstream(ctx, record, mode),
        None => Ok(None),
    }
}

/// This node's registered upstream's record; None for a witness.
fn upstream_record(c: &mut Session, node: &NodeRecord) -> Result<Option<NodeRecord>> {
    match node.upstream_node_id {
        Some(id) if node.node_type != NodeType::Witness => db::nodes::get(c, id),
        _ => Ok(None),
    }
}

/// Whether the upstream `record` names sees this node streaming from it.
fn ask_upstream(ctx: &Ctx, record: NodeRecord, mode: Mode) -> Result<Option<Upstream>> {
    let attached = match crate::commands::connect_record(&record) {
        Ok(mut uc) => db::timeline::is_streaming_to(&mut uc, &ctx.config().node_name)?,
        Err(e) if mode == Mode::Nagios => {
            crate::log_debug!("{}", e.detail.clone().unwrap_or_default());
            false
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Upstream { record, attached }))
}

/// What the repmgrd table says about this node's repmgrd.
fn repmgrd_state(c: &mut Session, node_id: i32) -> Result<Repmgrd> {
    // repmgr 5's repmgrd on this node (a cluster taken over node by node)
    // is in its extension's shared memory.
    let legacy = db::takeover::legacy_daemon(c)
        .ok()
        .flatten()
        .filter(|d| d.running);
    if !db::daemon_status::table_exists(c)? {
        return Ok(match legacy {
            Some(d) if d.paused => Repmgrd::Paused,
            Some(_) => Repmgrd::Running,
            // the extension answered: no repmgrd of repmgr 5 runs here
            None if db::takeover::extension_loaded(c)? => Repmgrd::NotRunning,
            None => Repmgrd::Unknown,
        });
    }
    let rows = db::daemon_status::all(c)?;
    let running = rows
        .iter()
        .find(|r| r.node_id == node_id)
        .is_some_and(|r| r.is_running());
    if !running {
        if let Some(d) = legacy {
            return Ok(if d.paused {
                Repmgrd::Paused
            } else {
                Repmgrd::Running
            });
        }
    }
    Ok(if !running {
        Repmgrd::NotRunning
    } else if db::daemon_status::is_paused(c, node_id)? {
        Repmgrd::Paused
    } else {
        Repmgrd::Running
    })
}

/// Warnings (on stderr, so the report's format is unchanged) about how this
/// cluster is protected from split brain.
fn warn_split_brain_risks(cfg: &Config, c: &mut Session) {
    use crate::config::{Failover, FailoverQuorum};
    if cfg.failover != Failover::Automatic {
        return;
    }
    if cfg.failover_quorum == FailoverQuorum::Repmgr {
        crate::log_warning!("failover_quorum=repmgr: a network partition can leave two primaries");
        return;
    }
    let voters = db::nodes::all(c)
        .map(|n| n.iter().filter(|n| n.is_voter()).count())
        .unwrap_or(0);
    if voters == 2 {
        crate::log_warning!(
            "this cluster has two voters and no witness: automatic failover will not happen"
        );
        crate::log_hint!(
            "register a witness, or set failover_quorum=repmgr to accept the split-brain risk"
        );
    }
}

/// When `data_directory` could not be read, text mode says the check fell
/// back to looking at the configured directory, and how to avoid that.
fn superuser_hint(ctx: &Ctx, stats: &NodeStats, mode: Mode) {
    if stats.data_directory.is_none() && mode == Mode::Text {
        crate::log_info!("connection is not a superuser connection, falling back to simple check");
        let user = local_conninfo(ctx)
            .ok()
            .and_then(|ci| ci.get("user").map(str::to_string))
            .unwrap_or_default();
        crate::log_hint!(
            "provide a superuser with -S/--superuser, or add the \"{user}\" user to role \"pg_read_all_settings\" or \"pg_monitor\""
        );
    }
}

/// The full run's text block or CSV lines.
pub fn full_report(node: &NodeRecord, rows: &[Check], mode: Mode) -> String {
    let mut out = String::new();
    if mode == Mode::Csv {
        out.push_str(&format!("\"Node name\",\"{}\"\n", node.node_name));
        out.push_str(&format!("\"Node ID\",\"{}\"\n", node.node_id));
        for r in rows {
            out.push_str(&format!("\"{}\",\"{}\"", r.item, r.status.as_str()));
            if !r.details.is_empty() {
                out.push_str(&format!(",\"{}\"", r.details));
            }
            out.push('\n');
        }
    } else {
        out.push_str(&format!("Node \"{}\":\n", node.node_name));
        for r in rows {
            out.push_str(&format!("\t{}: {}", r.item, r.status.as_str()));
            if !r.details.is_empty() {
                out.push_str(&format!(" ({})", r.details));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::node::checks::check_role;
    use crate::commands::node::checks::tests::node;

    #[test]
    fn full_report_formats() {
        let p = node(NodeType::Primary);
        let rows = vec![
            check_role(&p, false, Mode::Csv),
            check_replication_lag(&Config::default(), &p, false, None, Mode::Csv),
        ];
        assert_eq!(
            full_report(&p, &rows, Mode::Csv),
            "\"Node name\",\"node1\"\n\"Node ID\",\"1\"\n\"Server role\",\"OK\",\"node is primary\"\n\"Replication lag\",\"OK\"\n"
        );
        let rows = vec![check_role(&p, false, Mode::Text)];
        assert_eq!(
            full_report(&p, &rows, Mode::Text),
            "Node \"node1\":\n\tServer role: OK (node is primary)\n"
        );
    }

    fn standby_facts() -> Facts {
        let mut me = node(NodeType::Standby);
        me.node_id = 2;
        me.node_name = "node2".into();
        me.upstream_node_id = Some(1);
        Facts {
            node: me,
            stats: NodeStats {
                in_recovery: true,
                lag_seconds: Some(0),
                total_slots: 0,
                data_directory: Some("/var/lib/pg".into()),
                ..NodeStats::default()
            },
            downstream: Vec::new(),
            upstream: Some(Upstream {
                record: node(NodeType::Primary),
                attached: true,
            }),
            fenced: false,
            ready_files: Some(3),
            pg_dir: true,
        }
    }

    fn config() -> Config {
        Config {
            data_directory: "/var/lib/pg".into(),
            ..Config::default()
        }
    }

    #[test]
    fn full_run_text() {
        let (rows, upstream) = full_checks(&config(), &standby_facts(), Mode::Text);
        assert_eq!(upstream.status, CheckStatus::Ok);
        assert_eq!(
            full_report(&standby_facts().node, &rows, Mode::Text),
            "Node \"node2\":\n\
             \tServer role: OK (node is standby)\n\
             \tReplication lag: OK (0 seconds)\n\
             \tWAL archiving: OK (3 pending archive ready files)\n\
             \tUpstream connection: OK (node \"node2\" (ID: 2) is attached to expected upstream node \"node1\" (ID: 1))\n\
             \tDownstream servers: OK (this node has no downstream nodes)\n\
             \tReplication slots: OK (node has no physical replication slots)\n\
             \tMissing physical replication slots: OK (node has no missing physical replication slots)\n\
             \tConfigured data directory: OK (configured \"data_directory\" is \"/var/lib/pg\")\n"
        );
    }

    #[test]
    fn full_run_csv_counts_the_upstream_it_does_not_list() {
        let mut f = standby_facts();
        f.upstream.as_mut().unwrap().attached = false;
        let (rows, upstream) = full_checks(&config(), &f, Mode::Csv);
        assert_eq!(upstream.status, CheckStatus::Critical);
        assert_eq!(
            full_report(&f.node, &rows, Mode::Csv),
            "\"Node name\",\"node2\"\n\
             \"Node ID\",\"2\"\n\
             \"Server role\",\"OK\",\"node is standby\"\n\
             \"Replication lag\",\"OK\"\n\
             \"WAL archiving\",\"OK\"\n\
             \"Downstream servers\",\"OK\",\"this node has no downstream nodes\"\n\
             \"Replication slots\",\"OK\",\"node has no physical replication slots\"\n\
             \"Missing physical replication slots\",\"OK\",\"node has no missing physical replication slots\"\n\
             \"Configured data directory\",\"OK\",\"configured \"data_directory\" is \"/var/lib/pg\"\"\n"
        );
    }
}
