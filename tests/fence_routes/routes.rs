//! The routes around the read-only fence, each tried in a thread of its
//! own, and the cluster they are tried on (see the tests in the parent
//! module).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::error::SqlState;

use crate::fixture::{HostCluster, Node};
use crate::harness::{poll_until, Daemon, PgNode};
use crate::partition::{cluster_with, safe};

/// Prepared before the fault, one COMMIT PREPARED each.
const PREPARED: usize = 150;

/// postgresql.conf on every node: room for the prepared transactions (a
/// standby needs as many as its primary), for the routes' sessions, and a
/// logical replication launcher that restarts an ended apply worker at
/// once (the harder case for the fence).
const PG_CONF: &[&str] = &[
    "max_prepared_transactions = 200",
    "max_connections = 80",
    "wal_retrieve_retry_interval = '100ms'",
];

// ---------------------------------------------------------------- routes

/// One way a client could get a write past the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// 1. `SET default_transaction_read_only = off`, then writes.
    SessionDefault,
    /// 2. `BEGIN READ WRITE` around each write.
    BeginReadWrite,
    /// 3. `SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`.
    SessionCharacteristics,
    /// 4. `-c default_transaction_read_only=off` in the startup packet
    ///    (PGOPTIONS), a new connection per write.
    StartupOptions,
    /// 5. A role with `ALTER ROLE … SET default_transaction_read_only = off`.
    RoleSetting,
    /// 5. A database with `ALTER DATABASE … SET …`.
    DatabaseSetting,
    /// 6. A superuser session that overrides nothing.
    SuperuserPlain,
    /// 6. A superuser session that overrides all it can.
    SuperuserOverriding,
    /// 7. `COMMIT PREPARED` of transactions prepared before the fault, from
    ///    a session that overrides nothing.
    CommitPrepared,
    /// 9. A plain client reconnecting every 20 ms once its session ends.
    Reconnecting,
}

pub(super) const ROUTES: &[Route] = &[
    Route::SessionDefault,
    Route::BeginReadWrite,
    Route::SessionCharacteristics,
    Route::StartupOptions,
    Route::RoleSetting,
    Route::DatabaseSetting,
    Route::SuperuserPlain,
    Route::SuperuserOverriding,
    Route::CommitPrepared,
    Route::Reconnecting,
];

impl Route {
    pub(super) fn name(self) -> &'static str {
        match self {
            Route::SessionDefault => "1 SET default_transaction_read_only = off",
            Route::BeginReadWrite => "2 BEGIN READ WRITE",
            Route::SessionCharacteristics => "3 SET SESSION CHARACTERISTICS … READ WRITE",
            Route::StartupOptions => "4 PGOPTIONS='-c default_transaction_read_only=off'",
            Route::RoleSetting => "5 ALTER ROLE … SET default_transaction_read_only = off",
            Route::DatabaseSetting => "5 ALTER DATABASE … SET default_transaction_read_only = off",
            Route::SuperuserPlain => "6 superuser, no override",
            Route::SuperuserOverriding => "6 superuser, every override",
            Route::CommitPrepared => "7 COMMIT PREPARED (prepared before the fault)",
            Route::Reconnecting => "9 plain client reconnecting every 20 ms",
        }
    }

    /// Overrides nothing: repmgrd.8 says its writes end with the read-only
    /// step.
    pub(super) fn plain(self) -> bool {
        matches!(self, Route::SuperuserPlain | Route::Reconnecting)
    }

    fn user(self) -> &'static str {
        match self {
            Route::SuperuserPlain | Route::SuperuserOverriding => "postgres",
            Route::RoleSetting => "fence_rw",
            _ => "fence_app",
        }
    }

    fn dbname(self) -> &'static str {
        if self == Route::DatabaseSetting {
            "fence_db"
        } else {
            "postgres"
        }
    }

    /// A new connection for every attempt (the setting comes with it).
    fn fresh(self) -> bool {
        matches!(
            self,
            Route::StartupOptions | Route::RoleSetting | Route::DatabaseSetting
        )
    }

    fn every(self) -> Duration {
        match self {
            Route::Reconnecting => Duration::from_millis(20),
            Route::CommitPrepared => Duration::from_millis(100),
            _ => Duration::from_millis(50),
        }
    }

    fn on_connect(self) -> &'static str {
        match self {
            Route::SessionDefault | Route::SuperuserOverriding => {
                "SET default_transaction_read_only = off"
            }
            Route::SessionCharacteristics => {
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"
            }
            _ => "",
        }
    }

    /// The write; `k`: the next prepared transaction.
    fn write(self, k: usize) -> String {
        let insert = format!("INSERT INTO fence_probe (route) VALUES ('{self:?}')");
        match self {
            Route::BeginReadWrite | Route::SuperuserOverriding => {
                format!("BEGIN READ WRITE; {insert}; COMMIT")
            }
            Route::CommitPrepared => format!("COMMIT PREPARED 'fence_{k}'"),
            _ => insert,
        }
    }
}

/// A server's unix socket (it works across network namespaces, so a cut
/// node is still reached).
#[derive(Clone, Debug)]
pub(super) struct Target {
    sockdir: std::path::PathBuf,
    port: u16,
}

impl Target {
    pub(super) fn of(pg: &PgNode) -> Target {
        Target {
            sockdir: pg.sockdir.clone(),
            port: pg.port,
        }
    }

    fn connect(&self, user: &str, db: &str, options: &str) -> Result<postgres::Client, String> {
        let mut cfg = postgres::Config::new();
        cfg.host_path(&self.sockdir)
            .port(self.port)
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(1));
        if !options.is_empty() {
            cfg.options(options);
        }
        let mut c = cfg.connect(postgres::NoTls).map_err(|e| e.to_string())?;
        c.batch_execute("SET statement_timeout = '2s'")
            .map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// What one route saw.
#[derive(Debug, Default, Clone)]
pub(super) struct RouteLog {
    pub(super) acks: Vec<Instant>,
    pub(super) attempts: u64,
    /// Its first refusal as read-only (SQLSTATE 25006: a read-only default
    /// or recovery).
    pub(super) first_read_only: Option<Instant>,
    pub(super) last_error: Option<String>,
}

impl RouteLog {
    pub(super) fn acks_after(&self, t: Instant) -> Vec<Instant> {
        self.acks.iter().copied().filter(|a| *a > t).collect()
    }
}

/// Why an attempt got no write in.
pub(super) struct Refusal {
    /// Refused as read-only (SQLSTATE 25006: a read-only default, or
    /// recovery).
    pub(super) read_only: bool,
    pub(super) text: String,
}

impl From<postgres::Error> for Refusal {
    fn from(e: postgres::Error) -> Refusal {
        Refusal {
            read_only: e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
            text: e.to_string(),
        }
    }
}

/// One attempt: Ok when the write was acknowledged.
pub(super) fn attempt(
    r: Route,
    t: &Target,
    conn: &mut Option<postgres::Client>,
    k: &mut usize,
) -> Result<(), Refusal> {
    if r.fresh() || conn.as_ref().is_some_and(|c| c.is_closed()) {
        *conn = None;
    }
    let c = match conn {
        Some(c) => c,
        None => {
            let options = if r == Route::StartupOptions {
                "-c default_transaction_read_only=off"
            } else {
                ""
            };
            let mut c = t
                .connect(r.user(), r.dbname(), options)
                .map_err(|text| Refusal {
                    read_only: false,
                    text,
                })?;
            if !r.on_connect().is_empty() {
                c.batch_execute(r.on_connect())?;
            }
            conn.insert(c)
        }
    };
    let res = c.batch_execute(&r.write(*k));
    match &res {
        Ok(()) if r == Route::CommitPrepared => *k += 1,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => *k += 1,
        Err(_) if !c.is_closed() => {
            let _ = c.batch_execute("ROLLBACK");
        }
        _ => {}
    }
    Ok(res?)
}

/// Every route's thread, and an observer of the subscription's apply
/// worker (route 8).
pub(super) struct Routes {
    stop: Arc<AtomicBool>,
    logs: Vec<(Route, Arc<Mutex<RouteLog>>)>,
    handles: Vec<JoinHandle<()>>,
}

impl Routes {
    pub(super) fn start(n: &Node) -> Routes {
        let stop = Arc::new(AtomicBool::new(false));
        let t = Target::of(&n.pg);
        let mut logs = Vec::new();
        let mut handles = Vec::new();
        for &r in ROUTES {
            let log = Arc::new(Mutex::new(RouteLog::default()));
            logs.push((r, log.clone()));
            let (t, stop) = (t.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                let (mut conn, mut k) = (None, 0);
                while !stop.load(Ordering::Relaxed) {
                    let res = attempt(r, &t, &mut conn, &mut k);
                    let now = Instant::now();
                    let mut l = log.lock().unwrap();
                    l.attempts += 1;
                    match res {
                        Ok(()) => l.acks.push(now),
                        Err(e) => {
                            if e.read_only {
                                l.first_read_only.get_or_insert(now);
                            }
                            l.last_error = Some(e.text);
                        }
                    }
                    drop(l);
                    std::thread::sleep(r.every());
                }
            }));
        }
        Routes {
            stop,
            logs,
            handles,
        }
    }

    pub(super) fn snapshot(&self) -> Vec<(Route, RouteLog)> {
        self.logs
            .iter()
            .map(|(r, l)| (*r, l.lock().unwrap().clone()))
            .collect()
    }

    pub(super) fn finish(mut self) -> Vec<(Route, RouteLog)> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------- setup

/// A publisher off the cluster's hosts (reached over its unix socket),
/// inserting a row every 20 ms into the table node1 subscribes to, until
/// dropped.
pub(super) struct Publisher {
    // Kept running while the feeder writes; stopped on drop, after it.
    _pg: PgNode,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The cluster (primary node1, two standbys, each on a host, repmgrd on
/// each) with every route's precondition in place on node1.
pub(super) fn setup() -> (HostCluster, Vec<Daemon>, Publisher) {
    let (c, daemons) = cluster_with(2, PG_CONF, safe);
    let n1 = &c.nodes[0];
    n1.pg.execute(
        "CREATE ROLE fence_app LOGIN;
         CREATE ROLE fence_rw LOGIN;
         ALTER ROLE fence_rw SET default_transaction_read_only = off;
         CREATE TABLE fence_probe (route text, at timestamptz DEFAULT clock_timestamp());
         GRANT INSERT ON fence_probe TO PUBLIC",
    );
    n1.pg.execute("CREATE DATABASE fence_db");
    n1.pg
        .execute("ALTER DATABASE fence_db SET default_transaction_read_only = off");
    let t = Target::of(&n1.pg);
    let mut db = t.connect("postgres", "fence_db", "").unwrap();
    db.batch_execute(
        "CREATE TABLE fence_probe (route text, at timestamptz DEFAULT clock_timestamp());
         GRANT INSERT ON fence_probe TO PUBLIC",
    )
    .unwrap();
    let mut app = t.connect("fence_app", "postgres", "").unwrap();
    for k in 0..PREPARED {
        app.batch_execute(&format!(
            "BEGIN; INSERT INTO fence_probe (route) VALUES ('prepared {k}'); PREPARE TRANSACTION 'fence_{k}'"
        ))
        .unwrap();
    }
    // Route 8: node1 subscribes to a table on a publisher. `port` and
    // `applied` are filled in by the apply worker (defaults of columns the
    // publication lacks): which server applied a row, and when.
    let pg = PgNode::builder("publisher")
        .conf("wal_level = logical")
        .start();
    pg.execute(
        "CREATE TABLE fence_sub (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
         CREATE PUBLICATION fence_pub FOR TABLE fence_sub",
    );
    n1.pg.execute(
        "CREATE TABLE fence_sub (id bigint PRIMARY KEY, at timestamptz,
                                 port int DEFAULT current_setting('port')::int,
                                 applied timestamptz DEFAULT clock_timestamp())",
    );
    n1.pg.execute(&format!(
        "CREATE SUBSCRIPTION fence_sub CONNECTION 'host={} port={} user=postgres dbname=postgres' PUBLICATION fence_pub WITH (copy_data = false)",
        pg.sockdir.display(),
        pg.port
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, target) = (stop.clone(), Target::of(&pg));
    let handle = std::thread::spawn(move || {
        let mut conn = None;
        while !flag.load(Ordering::Relaxed) {
            if conn.is_none() {
                conn = target.connect("postgres", "postgres", "").ok();
            }
            if let Some(c) = conn.as_mut() {
                if c.batch_execute("INSERT INTO fence_sub DEFAULT VALUES")
                    .is_err()
                {
                    conn = None;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let publisher = Publisher {
        _pg: pg,
        stop,
        handle: Some(handle),
    };
    poll_until(
        Duration::from_secs(60),
        "node1's apply worker applies the publisher's rows",
        || worker_rows(n1).is_some_and(|n| n > 0),
    );
    (c, daemons, publisher)
}

/// Rows node1's own apply worker applied.
pub(super) fn worker_rows(n1: &Node) -> Option<i64> {
    n1.pg
        .try_query_one_string(&format!(
            "SELECT count(*) FROM fence_sub WHERE port = {}",
            n1.pg.port
        ))
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
}

/// When node1's apply worker last applied a row, on the server clock, and
/// whether that came after `after` (a timestamptz literal).
pub(super) fn worker_applied_after(n1: &Node, after: &str) -> Option<String> {
    n1.pg
        .try_query_one_string(&format!(
            "SELECT max(applied)::text FROM fence_sub WHERE port = {} AND applied > '{after}'::timestamptz",
            n1.pg.port
        ))
        .ok()
        .flatten()
}

pub(super) fn now_on(n: &Node) -> String {
    n.query("SELECT clock_timestamp()::text")
}

/// One line per route: how many writes it got acknowledged in each phase
/// (a phase runs from its instant to the next one's; the first from the
/// start).
pub(super) fn table(logs: &[(Route, RouteLog)], phases: &[(&str, Instant)]) -> String {
    let mut out = String::new();
    for (r, l) in logs {
        let mut counts = Vec::new();
        for (i, (name, from)) in phases.iter().enumerate() {
            let to = phases.get(i + 1).map(|p| p.1);
            let n = l
                .acks
                .iter()
                .filter(|a| (i == 0 || **a > *from) && to.is_none_or(|t| **a <= t))
                .count();
            counts.push(format!("{name} {n}"));
        }
        out.push_str(&format!(
            "  {:<58} {} ({} attempts; last error: {})\n",
            r.name(),
            counts.join(", "),
            l.attempts,
            l.last_error.as_deref().unwrap_or("-")
        ));
    }
    out
}

pub(super) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
