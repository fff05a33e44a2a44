//! repmgrd control: `service status|pause|unpause` (also spelt `daemon …`)
//! and `daemon start|stop`.
//!
//! repmgr keeps repmgrd's state in the C extension's shared memory on each
//! node; this implementation keeps it in `repmgr.repmgrd_status` (see
//! `db::daemon_status`): every repmgrd stamps its row on the primary, and
//! each node's replicated copy carries the pause flag its repmgrd obeys.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::Session;

use super::cluster::{self, Probe, Reach};
use super::Ctx;
use crate::db::{self, daemon_status::DaemonStatus, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};
use crate::output;

/// How long `daemon start|stop` waits by default (repmgr's
/// REPMGR_DAEMON_STOP_START_WAIT).
pub const DEFAULT_WAIT_SECS: u64 = 15;

/// Deadline for a configured repmgrd_service_start/stop_command.
const SERVICE_COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// How long `service pause` waits for reachable standbys to replay the flag.
const PAUSE_CONFIRM_LIMIT: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(200);

const START_HINT: &str =
    "use \"repmgr service status\" to confirm that repmgrd was successfully started";
const STOP_HINT: &str =
    "use \"repmgr service status\" to confirm that repmgrd was successfully stopped";

/// repmgr's `log_verbose(LOG_INFO, …)`: shown with -v/--verbose only.
fn verbose(ctx: &Ctx, msg: &str) {
    if ctx.opts.verbose {
        crate::log_info!("{msg}");
    }
}

/// The local node's metadata: the node records, or repmgr's refusals.
fn read_nodes(conn: &mut Session) -> Result<Vec<NodeRecord>> {
    if !db::schema::exists(conn)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let nodes = db::nodes::all(conn)?;
    if nodes.is_empty() {
        return Err(Error::config("no node records were found")
            .hint("ensure at least one node is registered"));
    }
    Ok(nodes)
}

/// What one node told us about repmgrd: its copy of the whole table, and
/// its own pause flag (the one its repmgrd obeys).
#[derive(Debug, Clone, Default)]
struct NodeView {
    rows: Option<Vec<DaemonStatus>>,
    own_paused: Option<bool>,
}

/// One line of `service status`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusLine {
    pub pg_running: bool,
    pub running: bool,
    pub pid: Option<i32>,
    pub paused: bool,
    /// Whole seconds; None for a primary, or when never seen.
    pub upstream_last_seen: Option<i64>,
}

/// Combines a node's probe with the repmgrd row that describes it.
pub(crate) fn status_line(
    n: &NodeRecord,
    p: &Probe,
    row: Option<&DaemonStatus>,
    own_paused: Option<bool>,
) -> StatusLine {
    if p.reach != Reach::Up {
        return StatusLine {
            pg_running: false,
            running: false,
            pid: None,
            paused: false,
            upstream_last_seen: None,
        };
    }
    let running = row.is_some_and(|r| r.is_running());
    let pid = row.and_then(|r| r.pid);
    let paused = own_paused.unwrap_or_else(|| row.is_some_and(|r| r.paused));
    // As repmgr's get_upstream_last_seen: -1 for a node running as primary.
    let is_primary = p.in_recovery == Some(false) && n.node_type != NodeType::Witness;
    let upstream_last_seen = if is_primary {
        None
    } else {
        row.and_then(|r| r.upstream_last_seen_secs)
            .map(|s| s.max(0.0).floor() as i64)
    };
    StatusLine {
        pg_running: true,
        running,
        pid,
        paused,
        upstream_last_seen,
    }
}

/// The CSV line: `id,name,type,pg_running,repmgrd_running,pid,paused,
/// priority,upstream_last_seen,location`, -1 for unknown, as repmgr.
pub(crate) fn csv_row(n: &NodeRecord, s: &StatusLine) -> String {
    let (running, paused) = if s.pg_running {
        (i32::from(s.running), i32::from(s.paused))
    } else {
        (-1, -1)
    };
    let last_seen = match (s.pid, s.upstream_last_seen) {
        (Some(_), Some(secs)) => secs,
        _ => -1,
    };
    output::csv_line(&[
        n.node_id.to_string(),
        n.node_name.clone(),
        n.node_type.to_string(),
        i32::from(s.pg_running).to_string(),
        running.to_string(),
        s.pid.unwrap_or(-1).to_string(),
        paused.to_string(),
        n.priority.to_string(),
        last_seen.to_string(),
        n.location.clone(),
    ])
}

/// The repmgrd, PID, Paused? and Upstream last seen cells.
pub(crate) fn repmgrd_cells(s: &StatusLine, compact: bool) -> [String; 4] {
    if !s.pg_running {
        return ["n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()];
    }
    let running = if s.running { "running" } else { "not running" };
    let Some(pid) = s.pid else {
        return [running.into(), "n/a".into(), "n/a".into(), "n/a".into()];
    };
    let paused = if s.paused { "yes" } else { "no" };
    let seen = match s.upstream_last_seen {
        None => "n/a".to_string(),
        Some(secs) if compact => format!("{secs} sec(s) ago"),
        Some(secs) => format!("{secs} second(s) ago"),
    };
    [running.into(), pid.to_string(), paused.into(), seen]
}

/// `repmgr service status`: every node's PostgreSQL and repmgrd state.
/// Exits 0 whatever it finds; only unreadable metadata is an error.
pub fn status(ctx: &Ctx) -> Result<()> {
    verbose(ctx, "connecting to database");
    let mut conn = ctx.connect_local()?;
    let nodes = read_nodes(&mut conn)?;
    let local_rows = db::daemon_status::all(&mut conn)?;
    drop(conn);

    let views = cluster::probe_all_with(&nodes, |n, c| NodeView {
        rows: db::daemon_status::all(c).ok(),
        own_paused: db::daemon_status::is_paused(c, n.node_id).ok(),
    });
    let probes: Vec<Probe> = views.iter().map(|(p, _)| p.clone()).collect();

    // The primary's table is the freshest (repmgrd writes there) and its
    // clock is the one that stamped it; fall back to the local copy.
    let rows = nodes
        .iter()
        .zip(&views)
        .find(|(n, (p, _))| {
            n.node_type == NodeType::Primary && p.reach == Reach::Up && p.in_recovery == Some(false)
        })
        .or_else(|| {
            nodes
                .iter()
                .zip(&views)
                .find(|(_, (p, _))| p.reach == Reach::Up && p.in_recovery == Some(false))
        })
        .and_then(|(_, (_, v))| v.as_ref().and_then(|v| v.rows.clone()))
        .unwrap_or(local_rows);

    let lines: Vec<StatusLine> = nodes
        .iter()
        .zip(&views)
        .map(|(n, (p, v))| {
            let row = rows.iter().find(|r| r.node_id == n.node_id);
            let own = v.as_ref().and_then(|v| v.own_paused);
            status_line(n, p, row, own)
        })
        .collect();

    if ctx.opts.csv {
        let out: String = nodes
            .iter()
            .zip(&lines)
            .map(|(n, s)| csv_row(n, s))
            .collect();
        print!("{out}");
        return Ok(());
    }

    let compact = ctx.opts.compact;
    let mut warnings = Vec::new();
    let mut connection_errors = false;
    let mut table = Vec::new();
    for ((n, p), s) in nodes.iter().zip(&probes).zip(&lines) {
        let who = format!("node \"{}\" (ID: {})", n.node_name, n.node_id);
        if p.reach != Reach::Up {
            connection_errors = true;
            if ctx.opts.verbose {
                warnings.push(format!(
                    "when attempting to connect to {who}, following error encountered :\n\"{}\"",
                    p.error.as_deref().unwrap_or("").trim()
                ));
            } else {
                warnings.push(format!("unable to connect to {who}"));
            }
        }
        let (status, w1) = cluster::status_cell(n, p);
        let (upstream, w2) = cluster::upstream_cell(n, p, &nodes, &probes);
        warnings.extend(w1);
        warnings.extend(w2);
        if p.reach == Reach::Up && p.replay_paused {
            warnings.push(format!(
                "WAL replay is paused on {who} with WAL replay pending; this node cannot be manually promoted until WAL replay is resumed"
            ));
        }
        if s.pg_running && !s.running && n.active {
            warnings.push(format!("repmgrd is not running on {who}"));
        }
        if s.pg_running && s.running && s.paused {
            warnings.push(format!("repmgrd is paused on {who}"));
        }
        let mut row = vec![
            n.node_id.to_string(),
            n.node_name.clone(),
            n.node_type.to_string(),
            status,
            upstream,
        ];
        if ctx.opts.detail {
            row.push(n.location.clone());
            row.push(n.priority.to_string());
        }
        row.extend(repmgrd_cells(s, compact));
        table.push(row);
    }
    let mut headers = vec!["ID", "Name", "Role", "Status", "Upstream"];
    if ctx.opts.detail {
        headers.push("Location");
        headers.push(if compact { "Prio." } else { "Priority" });
    }
    headers.extend(["repmgrd", "PID", "Paused?"]);
    headers.push(if compact {
        "Upstr. last"
    } else {
        "Upstream last seen"
    });
    print!("{}", output::table(&headers, &table));

    if !warnings.is_empty() && !ctx.opts.terse {
        println!();
        let mut text = String::from("following issues were detected");
        for w in &warnings {
            text.push_str(&format!("\n  - {w}"));
        }
        // repmgr logs the list as one message ending in a newline.
        crate::log_warning!("{text}\n");
        if connection_errors && !ctx.opts.verbose {
            crate::log_hint!("execute with --verbose option to see connection error messages");
        }
    }
    Ok(())
}

/// `repmgr service pause` / `unpause`: sets the flag for every registered
/// node in one statement on the primary; each repmgrd reads its own node's
/// replicated copy.
pub fn pause(ctx: &Ctx, pause: bool) -> Result<()> {
    let verb = if pause { "pause" } else { "unpause" };
    let done = if pause { "paused" } else { "unpaused" };
    let fail = |msg: String| Error::new(ExitCode::RepmgrdPause, msg);

    verbose(ctx, "connecting to database");
    let mut local = ctx.connect_local()?;
    let nodes = read_nodes(&mut local)?;
    let Some((primary, mut pconn)) = super::find_primary(&mut local)? else {
        return Err(fail(format!("unable to {verb} {} node(s)", nodes.len()))
            .detail("no reachable primary was found; the pause flag is written on the primary")
            .hint("execute \"repmgr service status\" to view current status"));
    };
    drop(local);
    crate::log_info!(
        "primary is node \"{}\" (ID: {})",
        primary.node_name,
        primary.node_id
    );

    // Reachability of every node, for the report and the confirmation.
    let reached = super::reach_all(&nodes);
    for r in &reached {
        if r.conn.is_none() {
            crate::log_warning!(
                "unable to connect to node {} ({}); its repmgrd will see the change once the node has replayed it",
                r.node.node_id,
                r.node.node_name
            );
        }
    }

    let version = db::schema::installed_version(&mut pconn)?.unwrap_or(0);
    let needs_upgrade = version < db::schema::SCHEMA_VERSION;

    if ctx.opts.dry_run {
        if needs_upgrade {
            crate::log_info!(
                "would upgrade the repmgr metadata schema on the primary from version {version} to {}",
                db::schema::SCHEMA_VERSION
            );
        }
        for n in &nodes {
            crate::log_info!("would {verb} node {} ({})", n.node_id, n.node_name);
        }
        return Ok(());
    }

    if needs_upgrade {
        crate::log_notice!(
            "upgrading the repmgr metadata schema on the primary from version {version} to {}",
            db::schema::SCHEMA_VERSION
        );
        db::schema::ensure_schema(&mut pconn).map_err(|e| {
            let detail = e.detail.clone().unwrap_or_else(|| e.message().to_string());
            fail(format!("unable to {verb} {} node(s)", nodes.len()))
                .detail(format!(
                    "upgrading the repmgr metadata schema failed: {detail}"
                ))
                .hint(e.hint.clone().unwrap_or_default())
        })?;
    }

    let ids: Vec<i32> = nodes.iter().map(|n| n.node_id).collect();
    if let Err(e) = db::daemon_status::set_paused(&mut pconn, &ids, pause) {
        for n in &nodes {
            crate::log_notice!("node {} ({}) not {done}", n.node_id, n.node_name);
        }
        return Err(fail(format!("unable to {verb} {} node(s)", nodes.len()))
            .detail(e.detail.unwrap_or_else(|| e.messages.join("; ")))
            .hint("execute \"repmgr service status\" to view current status"));
    }
    for n in &nodes {
        crate::log_notice!("node {} ({}) {done}", n.node_id, n.node_name);
    }

    // Reachable standbys should have replayed the flag within moments.
    let mut pending: Vec<(NodeRecord, Session)> = reached
        .into_iter()
        .filter(|r| r.node.node_id != primary.node_id)
        .filter_map(|r| r.conn.map(|c| (r.node, c)))
        .collect();
    let start = Instant::now();
    loop {
        pending.retain_mut(
            |(n, c)| !matches!(db::daemon_status::is_paused(c, n.node_id), Ok(v) if v == pause),
        );
        if pending.is_empty() || start.elapsed() >= PAUSE_CONFIRM_LIMIT {
            break;
        }
        std::thread::sleep(POLL);
    }
    for (n, _) in &pending {
        crate::log_warning!(
            "node {} ({}) has not yet replayed the change after {} seconds",
            n.node_id,
            n.node_name,
            PAUSE_CONFIRM_LIMIT.as_secs()
        );
        crate::log_detail!("its repmgrd obeys the flag once the node has replayed it");
    }
    Ok(())
}

/// The `-w/--wait[=secs]` / `-W/--no-wait` choice: None = don't wait.
fn wait_limit(ctx: &Ctx) -> Result<Option<Duration>> {
    if ctx.opts.no_wait {
        return Ok(None);
    }
    let secs = match ctx.opts.wait.as_deref() {
        None | Some("") => DEFAULT_WAIT_SECS,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            Error::config(format!(
                "invalid value provided for option \"--wait\": \"{v}\" (expected a number of seconds)"
            ))
            .hint("Try \"repmgr --help\" for more information.")
        })?,
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// Whether `pid` is a live repmgrd: it exists, and where /proc can tell,
/// its argv[0] names repmgrd (a stale pid file may point at a reused pid).
pub(crate) fn repmgrd_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    if pid <= 0 {
        return false;
    }
    if matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    ) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let argv0 = raw.split(|b| *b == 0).next().unwrap_or_default();
            let argv0 = String::from_utf8_lossy(argv0);
            Path::new(argv0.as_ref())
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("repmgrd"))
        }
        // No /proc (or no access): trust kill(2).
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// The pid recorded in a pid file, if the file exists and holds a number.
fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What is known locally about this node's repmgrd.
struct LocalDaemon {
    pid_file: Option<PathBuf>,
    /// The pid from the pid file, when it names a live repmgrd.
    file_pid: Option<i32>,
    /// The pid file exists but names no live repmgrd.
    stale_file: bool,
    /// The pid the pid file holds, live or not.
    recorded: Option<i32>,
    /// This node's row, as the local node's copy of the table has it.
    row: Option<DaemonStatus>,
}

impl LocalDaemon {
    fn running_pid(&self) -> Option<i32> {
        // A fresh heartbeat from the very pid the pid file shows dead is
        // a repmgrd that just died: the process table is the better witness.
        self.file_pid.or_else(|| {
            self.row
                .as_ref()
                .filter(|r| r.is_running())
                .and_then(|r| r.pid)
                .filter(|p| Some(*p) != self.recorded)
        })
    }
}

fn local_daemon(ctx: &Ctx, conn: Option<&mut Session>) -> LocalDaemon {
    let cfg = ctx.config();
    let pid_file = crate::ops::pidfile::path(None, false, cfg);
    let recorded = pid_file.as_deref().and_then(read_pid_file);
    let file_pid = recorded.filter(|p| repmgrd_alive(*p));
    let stale_file = pid_file.as_deref().is_some_and(Path::exists) && file_pid.is_none();
    let node_id = cfg.node_id.unwrap_or_default();
    let row = conn.and_then(|c| {
        db::daemon_status::all(c)
            .ok()?
            .into_iter()
            .find(|r| r.node_id == node_id)
    });
    LocalDaemon {
        pid_file,
        file_pid,
        stale_file,
        recorded,
        row,
    }
}

/// Polls `done` every 200 ms until it holds or `limit` passes.
fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The command that starts repmgrd directly: this binary as `repmgrd`
/// (it is multi-call), with this configuration file; it daemonizes itself.
fn direct_start_command(ctx: &Ctx) -> Result<Command> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(
            ExitCode::RepmgrdService,
            "unable to determine the path of this program",
        )
        .detail(e.to_string())
    })?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let sibling = dir.join("repmgrd");
    let mut cmd = if sibling.exists() {
        Command::new(&sibling)
    } else {
        let mut c = Command::new(&exe);
        c.arg0(sibling.as_os_str());
        c
    };
    let conf = ctx
        .loaded
        .as_ref()
        .map(|l| l.path.clone())
        .ok_or_else(|| Error::config("no configuration file provided and none found"))?;
    let conf = std::fs::canonicalize(&conf).unwrap_or(conf);
    cmd.arg("-f").arg(conf);
    Ok(cmd)
}

/// Runs the direct start: waits (bounded) for the parent to exit after it
/// forked; the daemon keeps our stderr unless it logs to a file, as
/// repmgrd does when started by hand.
fn run_direct_start(mut cmd: Command) -> Result<()> {
    use wait_timeout::ChildExt;
    let shown = crate::process::display_command(&cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(ExitCode::RepmgrdService, "unable to start repmgrd")
            .detail(format!("{shown}: {e}"))
    })?;
    match child.wait_timeout(SERVICE_COMMAND_LIMIT) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(
            Error::new(ExitCode::RepmgrdService, "unable to start repmgrd")
                .detail(format!("{shown}: {}", crate::process::describe_status(&s))),
        ),
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(
                Error::new(ExitCode::RepmgrdService, "unable to start repmgrd").detail(format!(
                    "{shown} did not return within {} s",
                    SERVICE_COMMAND_LIMIT.as_secs()
                )),
            )
        }
    }
}

/// `repmgr daemon start`.
pub fn start(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let limit = wait_limit(ctx)?;
    verbose(ctx, "connecting to local node");
    let mut conn = ctx.connect_local().map_err(|e| {
        Error::db_conn("unable to connect to local node")
            .detail(format!(
                "PostgreSQL must be running before \"repmgrd\" can be started ({})",
                e.detail.clone().unwrap_or_else(|| e.message().to_string())
            ))
            .hint(e.hint.clone().unwrap_or_default())
    })?;
    let before = local_daemon(ctx, Some(&mut conn));
    drop(conn);
    if let Some(pid) = before.running_pid() {
        crate::log_notice!("repmgrd appears to be running already");
        crate::log_detail!("repmgrd PID is {pid}");
        return Ok(());
    }

    let custom = cfg.repmgrd_service_start_command.trim();
    let shown = if custom.is_empty() {
        crate::process::display_command(&direct_start_command(ctx)?)
    } else {
        custom.to_string()
    };
    if ctx.opts.dry_run {
        crate::log_info!("prerequisites for starting repmgrd met");
        crate::log_detail!("following command would be executed:\n  {shown}");
        return Ok(());
    }

    crate::log_notice!("executing: \"{shown}\"");
    if custom.is_empty() {
        run_direct_start(direct_start_command(ctx)?).map_err(|e| {
            if cfg.log_file.is_empty() {
                e
            } else {
                e.hint(format!("see the repmgrd log file \"{}\"", cfg.log_file))
            }
        })?;
    } else {
        run_service_command(custom, "repmgrd_service_start_command", "start")?;
    }

    let Some(limit) = limit else {
        crate::log_hint!("{START_HINT}");
        return Ok(());
    };
    let mut started = None;
    let ok = poll(limit, || {
        let mut c = ctx.connect_local().ok();
        let now = local_daemon(ctx, c.as_mut());
        started = now.running_pid();
        started.is_some()
    });
    if !ok {
        return Err(Error::new(
            ExitCode::RepmgrdService,
            format!(
                "repmgrd does not appear to have started after {} seconds",
                limit.as_secs()
            ),
        )
        .hint(START_HINT));
    }
    crate::log_notice!("repmgrd was successfully started");
    if let Some(pid) = started {
        crate::log_detail!("repmgrd PID is {pid}");
    }
    Ok(())
}

/// `repmgr daemon stop`.
pub fn stop(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let limit = wait_limit(ctx)?;
    verbose(ctx, "connecting to local node");
    let mut conn = match ctx.connect_local() {
        Ok(c) => Some(c),
        Err(_) => {
            // Not needed to stop repmgrd: the pid file is enough.
            crate::log_warning!("unable to connect to local node");
            None
        }
    };
    let before = local_daemon(ctx, conn.as_mut());
    drop(conn);
    let custom = cfg.repmgrd_service_stop_command.trim();
    let pid_file_text = before
        .pid_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();

    let Some(pid) = before.running_pid() else {
        crate::log_notice!("repmgrd appears to be stopped already");
        if before.stale_file {
            crate::log_detail!(
                "pid file \"{pid_file_text}\" does not name a running repmgrd process"
            );
        }
        return Ok(());
    };
    if custom.is_empty() && before.file_pid.is_none() {
        // Running by its heartbeat, but we cannot tell which process it is.
        let what = if before.stale_file {
            format!("pid file \"{pid_file_text}\" does not name a running repmgrd process")
        } else {
            format!("PID file \"{pid_file_text}\" not found")
        };
        return Err(
            Error::new(ExitCode::RepmgrdService, "unable to stop repmgrd")
                .detail(format!(
                    "{what}, but repmgrd on this node reports PID {pid} in the repmgr metadata"
                ))
                .hint(format!(
                    "set \"repmgrd_pid_file\" in \"{}\" to the pid file repmgrd uses, or set \"repmgrd_service_stop_command\"",
                    ctx.loaded.as_ref().map(|l| l.path.display().to_string()).unwrap_or_default()
                )),
        );
    }

    let shown = if custom.is_empty() {
        format!("kill -TERM {pid}")
    } else {
        custom.to_string()
    };
    if ctx.opts.dry_run {
        crate::log_info!("prerequisites for stopping repmgrd met");
        crate::log_detail!("following command would be executed:\n  {shown}");
        return Ok(());
    }
    crate::log_notice!("executing: \"{shown}\"");
    if custom.is_empty() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| {
            Error::new(ExitCode::RepmgrdService, "unable to stop repmgrd")
                .detail(format!("sending SIGTERM to PID {pid}: {e}"))
        })?;
    } else {
        run_service_command(custom, "repmgrd_service_stop_command", "stop")?;
    }

    let Some(limit) = limit else {
        crate::log_hint!("{STOP_HINT}");
        return Ok(());
    };
    let gone = poll(limit, || {
        if before.file_pid.is_some() || repmgrd_alive(pid) {
            return !repmgrd_alive(pid);
        }
        // A repmgrd on another host (by its heartbeat only): ask the metadata.
        let mut c = ctx.connect_local().ok();
        local_daemon(ctx, c.as_mut()).running_pid().is_none()
    });
    if !gone {
        return Err(Error::new(
            ExitCode::RepmgrdService,
            format!(
                "repmgrd does not appear to have stopped after {} seconds",
                limit.as_secs()
            ),
        )
        .hint(STOP_HINT));
    }
    crate::log_notice!("repmgrd was successfully stopped");
    Ok(())
}

/// Runs a configured `repmgrd_service_*_command` with a deadline; a
/// failure is exit 27 with the command's own error in the DETAIL.
fn run_service_command(command: &str, key: &str, verb: &str) -> Result<()> {
    crate::process::run_checked(
        crate::process::shell(command),
        SERVICE_COMMAND_LIMIT,
        key,
        ExitCode::RepmgrdService,
    )
    .map(|_| ())
    .map_err(|e| {
        let detail = match &e.detail {
            Some(d) => format!("{}\n{d}", e.message()),
            None => e.message().to_string(),
        };
        Error::new(
            ExitCode::RepmgrdService,
            format!("unable to {verb} repmgrd"),
        )
        .detail(detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, t: NodeType) -> NodeRecord {
        NodeRecord {
            node_id: id,
            upstream_node_id: None,
            active: true,
            node_name: format!("node{id}"),
            node_type: t,
            location: "default".into(),
            priority: 100,
            conninfo: String::new(),
            repluser: String::new(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn up(in_recovery: bool) -> Probe {
        Probe {
            reach: Reach::Up,
            error: None,
            in_recovery: Some(in_recovery),
            timeline: Some(1),
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        }
    }

    fn row(id: i32, pid: Option<i32>, age: f64, seen: Option<f64>) -> DaemonStatus {
        DaemonStatus {
            node_id: id,
            pid,
            hostname: None,
            paused: false,
            upstream_node_id: None,
            upstream_last_seen_secs: seen,
            heartbeat_age_secs: Some(age),
            monitor_interval_secs: 2,
        }
    }

    #[test]
    fn running_primary_and_standby() {
        let p = node(1, NodeType::Primary);
        let s = node(2, NodeType::Standby);
        let lp = status_line(
            &p,
            &up(false),
            Some(&row(1, Some(100), 0.5, None)),
            Some(false),
        );
        let ls = status_line(
            &s,
            &up(true),
            Some(&row(2, Some(200), 0.5, Some(1.7))),
            Some(true),
        );
        assert_eq!(repmgrd_cells(&lp, false), ["running", "100", "no", "n/a"]);
        assert_eq!(
            repmgrd_cells(&ls, false),
            ["running", "200", "yes", "1 second(s) ago"]
        );
        assert_eq!(repmgrd_cells(&ls, true)[3], "1 sec(s) ago");
        assert_eq!(
            csv_row(&p, &lp),
            "1,node1,primary,1,1,100,0,100,-1,default\n"
        );
        assert_eq!(
            csv_row(&s, &ls),
            "2,node2,standby,1,1,200,1,100,1,default\n"
        );
    }

    #[test]
    fn stale_stopped_and_unreachable() {
        let s = node(2, NodeType::Standby);
        // Heartbeat older than 3 intervals: not running, pid still shown.
        let l = status_line(
            &s,
            &up(true),
            Some(&row(2, Some(200), 30.0, Some(31.0))),
            Some(false),
        );
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "200", "no", "31 second(s) ago"]
        );
        // Clean stop: no pid.
        let l = status_line(&s, &up(true), Some(&row(2, None, 1.0, None)), Some(false));
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "n/a", "n/a", "n/a"]
        );
        assert_eq!(csv_row(&s, &l), "2,node2,standby,1,0,-1,0,100,-1,default\n");
        // No row at all (never started, or schema version 1).
        let l = status_line(&s, &up(true), None, None);
        assert_eq!(
            repmgrd_cells(&l, false),
            ["not running", "n/a", "n/a", "n/a"]
        );
        // PostgreSQL unreachable: nothing is known.
        let down = Probe {
            reach: Reach::Down,
            error: Some("x".into()),
            in_recovery: None,
            timeline: None,
            attached: Vec::new(),
            replay_paused: false,
            fenced: false,
        };
        let l = status_line(&s, &down, Some(&row(2, Some(200), 0.1, Some(0.1))), None);
        assert_eq!(repmgrd_cells(&l, false), ["n/a", "n/a", "n/a", "n/a"]);
        assert_eq!(
            csv_row(&s, &l),
            "2,node2,standby,0,-1,-1,-1,100,-1,default\n"
        );
    }

    #[test]
    fn a_pid_that_is_not_repmgrd_is_not_alive() {
        // This test process exists but is not called repmgrd.
        assert!(!repmgrd_alive(std::process::id() as i32));
        assert!(!repmgrd_alive(0));
        assert!(!repmgrd_alive(-5));
    }
}
