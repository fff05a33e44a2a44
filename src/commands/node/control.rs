//! `repmgr node control`: switches a standby's WAL receiver off and on.

use super::{connect_local, Ctx};
use crate::db;
use crate::error::{Error, Result};

/// `repmgr node control --disable-wal-receiver | --enable-wal-receiver`
/// (undocumented in repmgr 5, used around failovers): on a standby, stops
/// its WAL receiver from streaming, or lets it stream again.
pub fn control(ctx: &Ctx) -> Result<()> {
    let enable = ctx.opts.enable_wal_receiver;
    if enable == ctx.opts.disable_wal_receiver {
        return Err(Error::config(
            "give exactly one of --disable-wal-receiver and --enable-wal-receiver",
        ));
    }
    let mut c = connect_local(ctx)?;
    if !db::server::in_recovery(&mut c)? {
        return Err(
            Error::config("node control is only meaningful on a standby")
                .detail("this node is not in recovery"),
        );
    }
    if ctx.opts.dry_run {
        crate::log_info!(
            "would {} the WAL receiver",
            if enable { "enable" } else { "disable" }
        );
        return Ok(());
    }
    db::server::set_wal_receiver_enabled(&mut c, enable)?;
    if !enable {
        // The startup process may restart the receiver before it has read
        // the reloaded retry interval: end it until it stays gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut quiet = 0;
        while quiet < 30 && std::time::Instant::now() < deadline {
            if let Some(pid) = db::server::wal_receiver_pid(&mut c)? {
                quiet = 0;
                // An auxiliary process: pg_terminate_backend refuses it, but
                // this command runs on the standby's host as its user.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            } else {
                quiet += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if enable {
        crate::log_notice!("WAL receiver enabled");
    } else {
        crate::log_notice!("WAL receiver disabled");
    }
    // Not an error either way: report what the receiver does now.
    match db::server::wal_receiver_pid(&mut c)? {
        Some(pid) => crate::log_info!("WAL receiver PID: {pid}"),
        None => crate::log_info!("no WAL receiver is running"),
    }
    Ok(())
}
