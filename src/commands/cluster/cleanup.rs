//! `repmgr cluster cleanup`: purges old monitoring history on the primary.

use crate::commands::Ctx;
use crate::db;
use crate::error::{Error, ExitCode, Result};

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
    let (_, mut primary) = crate::commands::find_primary(&mut local)?.ok_or_else(|| {
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
