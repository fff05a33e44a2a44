//! `repmgr node control`: switches a standby's WAL receiver off and on.

use std::time::{Duration, Instant};

use super::{connect_local, local_conninfo, Ctx};
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
        end_receiver_until_it_stays_gone(ctx, &mut c)?;
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

/// Ends the running WAL receiver, and any the startup process starts
/// again, until none has run for 3 s (at most 20 s).
///
/// The startup process asks for a new receiver once right after the old
/// one ends (the retry interval only spaces out later attempts), and
/// again if it read the new interval only afterwards. The postmaster
/// starts a requested receiver only once it has reaped the old one and
/// next wakes up, which on an idle server may be long after: the next
/// connection, say, the end of this command's own session. So each quiet
/// look also pings the server: the ping wakes the postmaster, a pending
/// request starts now, where this loop sees it and ends it (and that
/// failure, within the long retry interval, is the last).
fn end_receiver_until_it_stays_gone(ctx: &Ctx, c: &mut db::Session) -> Result<()> {
    let ci = local_conninfo(ctx)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet = 0;
    while quiet < 30 && Instant::now() < deadline {
        if let Some(pid) = db::server::wal_receiver_pid(c)? {
            quiet = 0;
            // An auxiliary process: pg_terminate_backend refuses it, but
            // this command runs on the standby's host as its user.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        } else {
            quiet += 1;
            let _ = db::connect::ping_within(
                &ci,
                db::reach::APP_NAME,
                Some(Duration::from_millis(500)),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
