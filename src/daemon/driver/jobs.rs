//! The long jobs the core asks for, each on a thread of its own and each
//! reported back with [`Done`]: promote, follow, fence, unfence, rejoin.
//! They run the same workflows as the CLI (`crate::ops`), on sessions of
//! their own (never the main loop's).

use std::path::Path;
use std::time::Duration;

use super::observe::spawn;
use super::writes::{ConninfoWrites, JOB_WAIT};
use super::Driver;
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::daemon::core::types::*;
use crate::db::{self, nodes::NodeRecord, reach, Session};
use crate::error::{Error, ExitCode, Result};
use crate::pgtools::{self, PgBin, ServiceAction};

/// What a job needs, cloned off the main loop.
#[derive(Clone)]
struct Ctx {
    cfg: Config,
    bin: PgBin,
    conninfo: ConnInfo,
    nodes: Vec<NodeRecord>,
    /// repmgrd's own local session, spared when client sessions end.
    spare: Option<i32>,
    /// The lock and count of primary_conninfo writes, shared with the
    /// main loop's end of a superseded stream.
    writes: ConninfoWrites,
}

impl Ctx {
    fn connect_local(&self) -> Result<Session> {
        db::connect::connect(&self.conninfo, reach::DAEMON_APP_NAME)
    }

    fn record(&self, id: NodeId) -> Result<NodeRecord> {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!("node {id} has no record in the local metadata"))
            })
    }

    fn hook_limit(&self) -> Duration {
        Duration::from_secs((self.cfg.promote_check_timeout.max(1) + 60) as u64)
    }

    /// Runs `write`, which writes primary_conninfo (and may apply it),
    /// under the lock the main loop clears it under, and counts the write
    /// when `wrote` says it happened (an error may come after the write).
    fn writing<T>(
        &self,
        write: impl FnOnce() -> Result<T>,
        wrote: impl FnOnce(&Result<T>) -> bool,
    ) -> Result<T> {
        let held = self.writes.hold(JOB_WAIT).ok_or_else(|| {
            Error::internal("primary_conninfo is being cleared: the lock did not come free")
        })?;
        let r = write();
        if wrote(&r) {
            held.wrote();
        }
        r
    }
}

impl Driver {
    pub(super) fn job(&mut self, a: Action) {
        let ctx = Ctx {
            cfg: self.loaded.config.clone(),
            bin: self.bin.clone(),
            conninfo: self.conninfo.clone(),
            nodes: self.nodes.clone(),
            spare: self.local_pid,
            writes: self.writes.clone(),
        };
        let post = self.poster();
        spawn("job", move || {
            let done = match a {
                Action::Promote {
                    term,
                    failed,
                    visible,
                    total,
                } => Done::Promoted {
                    ok: promote(&ctx, term, failed, visible, total).map_err(|e| text(&e)),
                },
                Action::Follow { target } => {
                    let ok = follow(&ctx, target).map_err(|e| text(&e));
                    // The configuration may be in place and the WAL receiver
                    // streaming, with only the confirmation lost.
                    let streams_anyway = ok.is_err() && local_streams(&ctx);
                    Done::Followed {
                        target,
                        ok,
                        streams_anyway,
                    }
                }
                Action::Fence { how } => Done::Fenced {
                    how,
                    ok: fence(&ctx, how).map_err(|e| text(&e)),
                },
                Action::Unfence { start } => Done::Unfenced {
                    ok: unfence(&ctx, start).map_err(|e| text(&e)),
                },
                Action::Rejoin { target } => Done::Rejoined {
                    target,
                    ok: rejoin(&ctx, target).map_err(|e| text(&e)),
                },
                _ => return,
            };
            post(Input::Done(done));
        });
    }

    /// While the local server is down and a newer primary exists: write
    /// standby.signal and primary_conninfo (fsynced), so that whoever
    /// starts this server gets a standby, never a second primary.
    pub(super) fn prepare_as_standby(&mut self, target: NodeId) {
        let cfg = self.cfg().clone();
        if cfg.data_directory.is_empty() {
            return;
        }
        let datadir = Path::new(&cfg.data_directory);
        if pgtools::running_postmaster(datadir).is_some() {
            return;
        }
        let Some(rec) = self.record(target) else {
            return;
        };
        let version = self.server_version();
        if let Err(e) = write_standby_config(&cfg, &rec, version) {
            crate::logging::log_error_report(&e);
        }
    }

    fn server_version(&mut self) -> i32 {
        // The server may be down (stopped by its fence): PG_VERSION then.
        self.local
            .as_mut()
            .and_then(|c| db::server::version_num(c).ok())
            .or_else(|| pgtools::data_directory_version(Path::new(&self.cfg().data_directory)).ok())
            .unwrap_or(150000)
    }
}

fn text(e: &Error) -> String {
    match e.detail.as_deref() {
        Some(d) if !d.is_empty() => format!("{}: {d}", e.message()),
        _ => e.message().to_string(),
    }
}

/// `failover_validation_command`, then the promotion (promote_command or
/// the built-in one), recording `term`. A promotion that failed or has not
/// completed within promote_check_timeout is resolved: one the server
/// completed all the same stands, any other is undone (see
/// [`resolve_failed_promotion`]), so the outcome is never in doubt.
fn promote(ctx: &Ctx, term: Term, failed: NodeId, visible: usize, total: usize) -> Result<()> {
    let cfg = &ctx.cfg;
    validate(ctx, visible, total)?;
    // The core's last look at the failed primary came before the command,
    // which may have taken a while: look once more, right before acting.
    if !cfg.failover_validation_command.trim().is_empty() {
        if let Some(rec) = ctx.nodes.iter().find(|n| n.node_id == failed) {
            if answers_as_primary(rec) {
                return Err(Error::new(
                    ExitCode::FailoverFail,
                    format!(
                        "node \"{}\" (ID: {failed}) answers again after failover_validation_command: not promoting",
                        rec.node_name
                    ),
                ));
            }
        }
    }
    let command = cfg.promote_command.trim();
    let result = if command.is_empty() {
        let local = ctx.connect_local()?;
        let ci = ctx.conninfo.clone();
        let reconnect = move || db::connect::connect(&ci, reach::DAEMON_APP_NAME);
        crate::ops::promote::promote_local(cfg, &ctx.bin, local, &reconnect)
    } else {
        crate::process::run_checked(
            crate::process::shell(command),
            ctx.hook_limit(),
            "promote_command",
            ExitCode::LocalCommand,
        )
        .and_then(|_| wait_primary(ctx))
    };
    let mut conn = match result {
        Ok(c) => c,
        Err(e) => match resolve_failed_promotion(ctx) {
            Some(c) => {
                crate::log_warning!(
                    "{}; the server left recovery all the same: the promotion stands",
                    e.message()
                );
                c
            }
            None => return Err(e),
        },
    };
    if db::schema::exists(&mut conn)? {
        let t = i32::try_from(term).unwrap_or(i32::MAX);
        let (_, ev, ts) = crate::ops::promote::record_promotion(cfg, &mut conn, Some(t))?;
        // Scripts hooked on standby_promote run as with repmgr.
        crate::events::notify_in_background(cfg, &ev, Some(&ts));
    }
    Ok(())
}

/// Whether `rec`'s server accepts connections and is not in recovery (a
/// server that accepts but cannot be asked counts as one: not promoting
/// beside it is the safe side; the election runs again).
fn answers_as_primary(rec: &NodeRecord) -> bool {
    let Ok(ci) = ConnInfo::parse(&rec.conninfo) else {
        return false;
    };
    let quick = Some(Duration::from_millis(500));
    if db::connect::ping_within(&ci, reach::DAEMON_APP_NAME, quick) != db::connect::Ping::Ok {
        return false;
    }
    match db::connect::connect(&ci, reach::DAEMON_APP_NAME) {
        Ok(mut c) => !matches!(db::server::in_recovery(&mut c), Ok(true)),
        Err(_) => true,
    }
}

fn validate(ctx: &Ctx, visible: usize, total: usize) -> Result<()> {
    let cmd = ctx.cfg.failover_validation_command.trim();
    if cmd.is_empty() {
        return Ok(());
    }
    use crate::hooks::{cluster, plain};
    let line = crate::hooks::expand(
        cmd,
        &[
            ('n', plain(ctx.cfg.node_id.unwrap_or_default())),
            ('a', cluster(ctx.cfg.node_name.clone())),
            ('v', plain(visible)),
            ('u', plain(total.saturating_sub(1))),
            ('t', plain(total)),
        ],
    );
    let out = crate::process::run(
        crate::process::shell(&line),
        Duration::from_secs(60),
        "failover_validation_command",
    )?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::new(
            ExitCode::FailoverFail,
            format!(
                "failover_validation_command returned {}: not promoting now",
                crate::process::describe_status(&out.status)
            ),
        ))
    }
}

/// After promote_command: the server must leave recovery within
/// promote_check_timeout.
fn wait_primary(ctx: &Ctx) -> Result<Session> {
    let limit = Duration::from_secs(ctx.cfg.promote_check_timeout.max(1) as u64);
    crate::poll::until(limit, Duration::from_millis(50), || {
        let mut c = ctx.connect_local().ok()?;
        matches!(db::server::in_recovery(&mut c), Ok(false)).then_some(c)
    })
    .ok_or_else(|| {
        Error::new(
            ExitCode::PromotionFail,
            format!(
                "promotion did not complete within {} seconds",
                limit.as_secs()
            ),
        )
    })
}

/// A promotion that failed or timed out may have completed, or may yet:
/// it is never left in doubt. A server out of recovery is a promotion
/// done: it stands, and is recorded like any other (the core renewed the
/// votes' lease while it ran, as for a slow one; a lease lost meanwhile
/// fences the new primary at once). A server still in recovery, or one
/// that cannot be asked, is stopped and started again in recovery
/// (standby.signal; a restart drops a pending promote request), so it is
/// a standby for certain.
fn resolve_failed_promotion(ctx: &Ctx) -> Option<Session> {
    let cfg = &ctx.cfg;
    if let Ok(mut c) = ctx.connect_local() {
        if matches!(db::server::in_recovery(&mut c), Ok(false)) {
            return Some(c);
        }
    }
    if cfg.data_directory.is_empty() {
        return None;
    }
    crate::log_notice!("undoing the promotion: restarting the server as a standby");
    let dir = Path::new(&cfg.data_directory);
    let _ = fsync_signal(dir);
    let _ = pgtools::run_service_action(ServiceAction::Restart, cfg, &ctx.bin, &cfg.data_directory);
    None
}

/// Follows `target`, then waits (`repmgrd_standby_startup_timeout`) for
/// the local server to accept connections again, as repmgr does: a server
/// that never does is a failed follow.
fn follow(ctx: &Ctx, target: NodeId) -> Result<()> {
    follow_only(ctx, target)?;
    let timeout = super::startup::standby_startup_timeout(&ctx.cfg);
    super::startup::wait_for_local(&ctx.cfg, timeout, || ctx.connect_local())
        .map_err(|why| Error::new(ExitCode::DbConn, why))
}

fn follow_only(ctx: &Ctx, target: NodeId) -> Result<()> {
    let rec = ctx.record(target)?;
    let command = ctx.cfg.follow_command.trim();
    if !command.is_empty() {
        let line = crate::hooks::expand(command, &[('n', crate::hooks::plain(target))]);
        // What the command writes is not known: a success counts as a
        // write; a refusal (a diverged history) must not delay the end of
        // a superseded stream, which a degraded standby's follow attempt
        // at each heartbeat would do forever.
        ctx.writing(
            || {
                crate::process::run_checked(
                    crate::process::shell(&line),
                    ctx.hook_limit(),
                    "follow_command",
                    ExitCode::LocalCommand,
                )
            },
            Result::is_ok,
        )?;
        return Ok(());
    }
    let mut local = ctx.connect_local()?;
    let mut tconn = reach::connect_record(&rec)?;
    // A refusal comes before any write, and takes no lock.
    crate::ops::follow::check_can_follow(&mut local, &mut tconn, &rec)?;
    // The write and its reload (or restart) only: the wait for the
    // stream that follows is long and needs no lock.
    let serialise = |apply: &mut dyn FnMut() -> Result<bool>| ctx.writing(apply, |_| true);
    let (ev, ts) =
        crate::ops::follow::follow_node(&ctx.cfg, &ctx.bin, local, &rec, &mut tconn, &serialise)?;
    crate::events::notify_in_background(&ctx.cfg, &ev, Some(&ts));
    Ok(())
}

fn local_streams(ctx: &Ctx) -> bool {
    let window = 2.0 * f64::from(ctx.cfg.monitor_interval_secs.max(1)) + 1.0;
    ctx.connect_local()
        .ok()
        .and_then(|mut c| db::monitoring::receiver_recently_active(&mut c, window).ok())
        .unwrap_or(false)
}

fn fence(ctx: &Ctx, how: FenceHow) -> Result<()> {
    let cfg = &ctx.cfg;
    let (id, name) = (cfg.node_id.unwrap_or_default(), cfg.node_name.clone());
    match how {
        FenceHow::ReadOnly => {
            let mut c = ctx.connect_local()?;
            let ci = ctx.conninfo.clone();
            let fresh = move || match db::connect::probe(&ci, reach::DAEMON_APP_NAME) {
                Ok(s) => db::fence::Fresh::Open(Box::new(s)),
                Err((_, db::ping::Ping::NoResponse)) => db::fence::Fresh::Silent,
                Err(_) => db::fence::Fresh::Refused,
            };
            let n = db::fence::fence_read_only(&mut c, &fresh, ctx.spare).map_err(|e| {
                e.hint("fencing needs a superuser connection; set fence_mode=stop otherwise")
            })?;
            crate::log_warning!(
                "node \"{name}\" (ID: {id}) fenced: read-only, {n} client session(s) ended"
            );
            Ok(())
        }
        FenceHow::Stop => {
            stop_now(ctx)?;
            crate::log_warning!("node \"{name}\" (ID: {id}) fenced: server stopped");
            Ok(())
        }
        FenceHow::Kill => {
            let dir = Path::new(&cfg.data_directory);
            if pgtools::running_postmaster(dir).is_none() {
                return Err(Error::db_conn(
                    "no postmaster runs: the server is down, not hung",
                ));
            }
            // It has answered nothing for a while already (that is why
            // the core asks); one more look, short, tells a server that
            // answers with an error (too many clients, say) from a hung
            // one before anything is killed.
            let quick = Some(Duration::from_millis(500));
            if db::connect::ping_within(&ctx.conninfo, reach::DAEMON_APP_NAME, quick)
                != db::connect::Ping::NoResponse
            {
                return Err(Error::db_conn(
                    "the local server answers again: it is not hung, and was not killed",
                ));
            }
            // The postmaster read before may have ended during that look
            // and its pid been reused: only the one running now is killed.
            let Some(pid) = pgtools::running_postmaster(dir) else {
                return Err(Error::db_conn(
                    "the postmaster ended by itself: the server is down, not hung",
                ));
            };
            let n = pgtools::kill_server(pid, Duration::from_secs(5))?;
            crate::log_warning!(
                "node \"{name}\" (ID: {id}) fenced: its server answered nothing and was killed (postmaster {pid} and {n} other process(es)); it recovers from its WAL at the next start"
            );
            Ok(())
        }
        FenceHow::Demote { to } => {
            // standby.signal first, fsynced: whatever happens next, the
            // server can only come back in recovery.
            let dir = Path::new(&cfg.data_directory);
            match to.and_then(|t| ctx.record(t).ok()) {
                // The server still runs: under the lock, like a follow.
                Some(rec) => ctx.writing(|| write_standby_config(cfg, &rec, 150000), |_| true)?,
                // No new primary known to follow: in recovery all the
                // same, and without the read-only setting, which a later
                // promotion of this node would otherwise keep.
                None => {
                    fsync_signal(dir)?;
                    crate::replconf::drop_fence(dir)?;
                }
            }
            stop_now(ctx)?;
            pgtools::run_service_action(ServiceAction::Start, cfg, &ctx.bin, &cfg.data_directory)?;
            crate::log_warning!(
                "node \"{name}\" (ID: {id}) fenced: demoted (restarted as a standby)"
            );
            Ok(())
        }
    }
}

/// Stops the local server at once (immediate mode), bounded, and returns
/// once it is down: "fenced: server stopped" is logged only then, and what
/// follows a stop (standby.signal for a superseded server, the restart of a
/// demotion) finds no postmaster left. (`-W` alone returned while the
/// postmaster was still shutting down: the preparation then found it
/// running and skipped, so a restart by hand came up as a primary.)
///
/// A postmaster that does not act on the signal (paused, or stuck) would
/// keep its backends, and their sessions' writes, for as long as pg_ctl
/// waited (25 s here before): after [`STOP_GRACE`] it and every process it
/// started are killed, which needs no cooperation.
fn stop_now(ctx: &Ctx) -> Result<()> {
    let dir = &ctx.cfg.data_directory;
    if dir.is_empty() {
        return Err(Error::config(
            "data_directory is not set: the server cannot be stopped",
        ));
    }
    let datadir = Path::new(dir);
    if pgtools::running_postmaster(datadir).is_none() {
        return Ok(());
    }
    // Signals the postmaster and returns: the wait is ours, bounded.
    let mut cmd = ctx.bin.command("pg_ctl");
    cmd.args(["-D", dir, "-m", "immediate", "-W", "stop"]);
    let signalled = crate::process::run_checked(
        cmd,
        Duration::from_secs(10),
        "pg_ctl stop",
        ExitCode::LocalCommand,
    );
    let down = crate::poll::until(STOP_GRACE, Duration::from_millis(20), || {
        pgtools::running_postmaster(datadir).is_none().then_some(())
    });
    if down.is_some() {
        return Ok(());
    }
    if let Err(e) = signalled {
        crate::logging::log_error_report(&e);
    }
    // Read again: the postmaster signalled may have ended since and its
    // pid been reused; only the one running now is killed.
    let Some(pid) = pgtools::running_postmaster(datadir) else {
        return Ok(());
    };
    let n = pgtools::kill_server(pid, Duration::from_secs(5))?;
    crate::log_warning!(
        "the local server did not stop within {:.1} s of an immediate shutdown: postmaster {pid} and {n} other process(es) killed; it recovers from its WAL at the next start",
        STOP_GRACE.as_secs_f64()
    );
    Ok(())
}

/// How long an immediate shutdown may take before the server is killed:
/// well inside the stop margin (a quarter of the lease, at least 1 s),
/// which the stop must not outlast. Killing a server that was merely slow
/// costs nothing more: an immediate shutdown is already a crash for the
/// next start, which recovers from the WAL either way.
const STOP_GRACE: Duration = Duration::from_millis(500);

fn unfence(ctx: &Ctx, start: bool) -> Result<()> {
    let cfg = &ctx.cfg;
    if start && pgtools::running_postmaster(Path::new(&cfg.data_directory)).is_none() {
        pgtools::run_service_action(ServiceAction::Start, cfg, &ctx.bin, &cfg.data_directory)?;
    }
    let mut c = crate::poll::until(Duration::from_secs(30), Duration::from_millis(100), || {
        ctx.connect_local().ok()
    })
    .ok_or_else(|| Error::db_conn("the local server did not accept connections after the start"))?;
    db::fence::unfence(&mut c)
}

/// auto_rejoin: stop the superseded server and rejoin the primary as a
/// standby, with pg_rewind when its timeline diverged: the steps of
/// `repmgr node rejoin --force-rewind`.
fn rejoin(ctx: &Ctx, target: NodeId) -> Result<String> {
    use crate::ops::rejoin;
    let cfg = &ctx.cfg;
    let newer = ctx.record(target)?;
    // The node with the newer history may be a standby: the primary
    // through it.
    let mut conn = reach::connect_record(&newer)?;
    let (primary, mut pconn) = if db::server::in_recovery(&mut conn)? {
        reach::find_primary(&mut conn)?
            .ok_or_else(|| Error::new(ExitCode::RejoinFail, "no primary is reachable to rejoin"))?
    } else {
        (newer, conn)
    };
    let datadir = std::path::PathBuf::from(&cfg.data_directory);
    if pgtools::running_postmaster(&datadir).is_some() {
        pgtools::run_service_action(ServiceAction::Stop, cfg, &ctx.bin, &cfg.data_directory)?;
        let limit = Duration::from_secs(cfg.shutdown_check_timeout.max(1) as u64);
        crate::poll::until(limit, Duration::from_millis(50), || {
            pgtools::running_postmaster(&datadir)
                .is_none()
                .then_some(())
        })
        .ok_or_else(|| {
            Error::new(
                ExitCode::RejoinFail,
                "the local server did not stop within shutdown_check_timeout",
            )
        })?;
    }
    let opts = rejoin::RejoinOptions {
        pg_rewind: Some(ctx.bin.path("pg_rewind")),
        config_files: Vec::new(),
        config_archive_dir: std::env::temp_dir(),
        wait: true,
    };
    let control = rejoin::check_local_stopped(cfg, &ctx.bin, true)?;
    let plan = rejoin::check_rejoin(cfg, &opts, control, &primary, &mut pconn)?;
    let done = rejoin::rejoin_node(cfg, &ctx.bin, &opts, &plan, &primary, &mut pconn);
    // The server was down while the rejoin wrote primary_conninfo (no
    // clear can interleave; the lock is not held across a pg_rewind), and
    // came up with it: counted all the same, so that no clear decided on
    // facts from before the rejoin applies to the server after it.
    let _ = ctx.writing(|| Ok(()), |_| true);
    let (ev, ts) = done?;
    crate::events::notify_in_background(cfg, &ev, Some(&ts));
    Ok(ev.details.clone())
}

/// standby.signal and primary_conninfo pointing at `upstream`, fsynced.
fn write_standby_config(cfg: &Config, upstream: &NodeRecord, version: i32) -> Result<()> {
    let ci = ConnInfo::parse(&upstream.conninfo)
        .map_err(|e| Error::config(format!("invalid conninfo of node {upstream}")).detail(e))?;
    let pci = crate::replconf::primary_conninfo(
        &ci,
        &cfg.node_name,
        (!upstream.repluser.is_empty()).then_some(upstream.repluser.as_str()),
        &cfg.passfile,
        cfg.use_primary_conninfo_password,
    );
    let rc = crate::replconf::ReplicationConfig {
        primary_conninfo: pci.to_string(),
        ..Default::default()
    };
    let dir = Path::new(&cfg.data_directory);
    crate::replconf::write(dir, version, &rc)?;
    fsync_signal(dir)
}

/// Makes sure standby.signal exists and is on disk.
fn fsync_signal(dir: &Path) -> Result<()> {
    let p = dir.join("standby.signal");
    let fail = |e: std::io::Error| {
        Error::new(
            ExitCode::SysFailure,
            format!("unable to write \"{}\"", p.display()),
        )
        .detail(e.to_string())
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(fail)?;
    f.sync_all().map_err(fail)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[allow(dead_code)]
fn unused(_: &PgBin) {}
