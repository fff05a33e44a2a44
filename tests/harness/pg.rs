//! Real PostgreSQL servers for tests, one per temp dir.
//!
//! Layout of a node's dir (`/tmp/rt-XXXXXX`, owned by the run user):
//! `data/` (the data directory), `sock/` (unix socket dir), `server.log`.
//! The harness's settings live in `data/harness.conf`, included from the end
//! of `postgresql.conf`, so they win over earlier lines and travel with
//! pg_basebackup copies (a standby then rewrites its own).

use super::net::Host;
use super::run::{run_with_deadline, RunResult};
use super::{
    chmod, chown_to_user, describe, make_owned_dir, pg_tool, pg_tool_on, pid_alive, pid_exists,
    poll_until, run_checked, try_poll_until, write_user_file,
};
use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// How long server start, stop and standby catch-up may take.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of the server log printed when a test panics.
const LOG_TAIL_ON_PANIC: usize = 80;

/// Attempts to start a new node on a fresh port when the port is taken.
const BIND_ATTEMPTS: usize = 5;

/// Default pg_hba.conf lines (after any extra lines given to a builder:
/// the first matching line wins).
pub const DEFAULT_HBA: &[&str] = &[
    "local   all          all                 trust",
    "local   replication  all                 trust",
    "host    all          all   127.0.0.1/32  trust",
    "host    replication  all   127.0.0.1/32  trust",
    "host    all          all   ::1/128       trust",
    "host    replication  all   ::1/128       trust",
];

/// Settings for nodes on a [`Host`] (before a builder's extra lines, so
/// those win): a partition is noticed by the WAL sender and receiver within
/// 2 s, and a receiver retries every second after the link heals.
pub const HOST_CONF: &[&str] = &[
    "wal_receiver_timeout = '2s'",
    "wal_sender_timeout = '2s'",
    "wal_receiver_status_interval = '1s'",
    "wal_retrieve_retry_interval = '1s'",
];

/// pg_hba.conf lines for a node on a host: trust from the whole /24.
fn host_hba(host: &Host) -> Vec<String> {
    let subnet = host.subnet();
    vec![
        format!("host    all          all   {subnet}  trust"),
        format!("host    replication  all   {subnet}  trust"),
    ]
}

/// A PostgreSQL server in its own temp dir. Stopped (immediate) and removed
/// on drop; when the test is panicking, the drop prints the server log tail.
#[derive(Debug)]
pub struct PgNode {
    pub name: String,
    /// Node root: `/tmp/rt-XXXXXX`.
    pub dir: PathBuf,
    pub datadir: PathBuf,
    pub sockdir: PathBuf,
    pub port: u16,
    pub logfile: PathBuf,
    /// The host (network namespace) the server runs on; None: the root
    /// namespace, listening on 127.0.0.1.
    pub host: Option<Host>,
    extra_conf: Vec<String>,
}

/// Options for a new node: extra postgresql.conf and pg_hba.conf lines.
#[derive(Debug, Clone)]
pub struct PgNodeBuilder {
    name: String,
    conf: Vec<String>,
    hba: Vec<String>,
    start: bool,
    host: Option<Host>,
}

impl PgNodeBuilder {
    /// An extra postgresql.conf line (goes after the harness defaults, so it
    /// wins).
    pub fn conf(mut self, line: &str) -> Self {
        self.conf.push(line.to_string());
        self
    }

    /// An extra pg_hba.conf line (goes before the harness's trust lines, so
    /// it wins for connections it matches).
    pub fn hba(mut self, line: &str) -> Self {
        self.hba.push(line.to_string());
        self
    }

    /// Run the server on `host`: the postmaster starts inside its network
    /// namespace, listens on the host's address (and its unix socket dir),
    /// [`PgNode::conninfo`] names that address, pg_hba trusts the host's
    /// /24, and [`HOST_CONF`] is applied. A standby on a host streams from
    /// its primary's address, so it needs its primary on a host of the same
    /// [`Net`](super::Net).
    pub fn on_host(mut self, host: &Host) -> Self {
        self.host = Some(host.clone());
        self
    }

    /// initdb but leave the server stopped.
    pub fn no_start(mut self) -> Self {
        self.start = false;
        self
    }

    /// initdb, configure and (unless [`no_start`](Self::no_start)) start a
    /// primary.
    pub fn start(self) -> PgNode {
        let node = PgNode::allocate(&self.name, self.conf, self.host);
        node.initdb();
        let mut hba: Vec<String> = self.hba;
        hba.extend(DEFAULT_HBA.iter().map(|s| s.to_string()));
        if let Some(h) = &node.host {
            hba.extend(host_hba(h));
        }
        write_user_file(&node.datadir.join("pg_hba.conf"), &(hba.join("\n") + "\n"));
        node.apply_harness_conf();
        if self.start {
            node.start_new()
        } else {
            node
        }
    }

    /// pg_basebackup from `primary`, configure (with the extra conf lines)
    /// and start a standby, waiting until it streams.
    pub fn standby_of(self, primary: &PgNode) -> PgNode {
        let node = PgNode::allocate(&self.name, self.conf, self.host);
        node.basebackup_from(primary);
        node.ensure_host_hba();
        if !self.hba.is_empty() {
            let hba_path = node.datadir.join("pg_hba.conf");
            let old = fs::read_to_string(&hba_path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", hba_path.display()));
            let mut lines = self.hba;
            lines.push(old);
            write_user_file(&hba_path, &(lines.join("\n") + "\n"));
        }
        node.apply_harness_conf();
        if !self.start {
            return node;
        }
        let node = node.start_new();
        node.wait_streaming(SERVER_TIMEOUT);
        node
    }
}

/// Free ports handed out by this process (the kernel could give one twice
/// between our probe and the server's bind).
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static PORTS: std::sync::OnceLock<Mutex<HashSet<u16>>> = std::sync::OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Ports [`free_port`] picks from: below the kernel's ephemeral range
/// (`ip_local_port_range`), from which every outgoing TCP connection on the
/// machine takes its local port. A port in that range can be taken by a
/// connection of any process (a WAL receiver, repmgrd, another test run)
/// while its node is stopped, and the node could not start on it again
/// until that connection closes. Above the range when there is no room
/// below; None when neither side has room.
fn port_range() -> Option<(u16, u16)> {
    static RANGE: std::sync::OnceLock<Option<(u16, u16)>> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut it = text
            .split_whitespace()
            .filter_map(|w| w.parse::<u32>().ok());
        let (lo, hi) = (it.next()?, it.next()?);
        const FIRST: u32 = 10_000;
        if lo > FIRST + 1_000 {
            Some((FIRST as u16, (lo - 1) as u16))
        } else if hi + 1_000 < 65_535 {
            Some(((hi + 1) as u16, 65_535))
        } else {
            None
        }
    })
}

/// A pseudo-random number (no rand crate: std's per-process hasher keys).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// A loopback TCP port that is free now and not yet handed out by this
/// process, outside the ephemeral range (see [`port_range`]).
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = match port_range() {
            Some((lo, hi)) => lo + (random_u64() % (u64::from(hi - lo) + 1)) as u16,
            None => {
                let l =
                    TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 to find a port");
                l.local_addr().expect("local_addr of probe socket").port()
            }
        };
        // Nothing listens there (nor on 0.0.0.0) now.
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut used = used_ports().lock().unwrap_or_else(|e| e.into_inner());
        if used.insert(port) {
            return port;
        }
    }
    panic!("could not find a free loopback port in 1000 tries");
}

impl PgNode {
    /// A started primary with the harness defaults.
    pub fn primary(name: &str) -> PgNode {
        Self::builder(name).start()
    }

    /// Builder for a primary (or, with
    /// [`PgNodeBuilder::standby_of`], a standby) with extra settings.
    pub fn builder(name: &str) -> PgNodeBuilder {
        PgNodeBuilder {
            name: name.to_string(),
            conf: Vec::new(),
            hba: Vec::new(),
            start: true,
            host: None,
        }
    }

    /// A started standby of `primary`, streaming.
    pub fn standby_of(primary: &PgNode, name: &str) -> PgNode {
        Self::builder(name).standby_of(primary)
    }

    /// Builder for a standby of a primary: `PgNode::standby_of_builder(name)
    /// .conf(..).standby_of(&primary)`. Same as [`PgNode::builder`].
    pub fn standby_of_builder(name: &str) -> PgNodeBuilder {
        Self::builder(name)
    }

    /// A node with a dir, port and socket dir but no data directory yet, for
    /// tests where the binary under test creates it (e.g. `standby clone`).
    /// Afterwards call [`apply_harness_conf`](Self::apply_harness_conf) and
    /// [`start`](Self::start).
    pub fn empty(name: &str) -> PgNode {
        Self::allocate(name, Vec::new(), None)
    }

    /// [`empty`](Self::empty) for a server that will run on `host` (see
    /// [`PgNodeBuilder::on_host`]). After the data directory exists, call
    /// [`ensure_host_hba`](Self::ensure_host_hba) when it came from a
    /// server off the host's net, then `apply_harness_conf` and `start`.
    pub fn empty_on(name: &str, host: &Host) -> PgNode {
        Self::allocate(name, Vec::new(), Some(host.clone()))
    }

    /// A command for a PostgreSQL tool, run inside this node's host when it
    /// has one (else like [`pg_tool`](super::pg_tool)), cwd the node dir.
    pub fn tool(&self, tool: &str) -> Command {
        pg_tool_on(tool, &self.dir, self.host.as_ref())
    }

    /// The address clients use: the host's, else 127.0.0.1.
    pub fn tcp_host(&self) -> &str {
        self.host.as_ref().map_or("127.0.0.1", |h| h.ip.as_str())
    }

    /// On a host: make sure pg_hba.conf trusts the host's /24 (a copy of a
    /// primary on another net would not). No-op off hosts.
    pub fn ensure_host_hba(&self) {
        let Some(h) = &self.host else { return };
        let path = self.datadir.join("pg_hba.conf");
        let old =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let missing: Vec<String> = host_hba(h)
            .into_iter()
            .filter(|l| !old.lines().any(|o| o.trim() == l.trim()))
            .collect();
        if !missing.is_empty() {
            write_user_file(&path, &format!("{old}\n{}\n", missing.join("\n")));
        }
    }

    fn allocate(name: &str, extra_conf: Vec<String>, host: Option<Host>) -> PgNode {
        let dir = make_owned_dir("rt-");
        let sockdir = dir.join("sock");
        fs::create_dir(&sockdir)
            .unwrap_or_else(|e| panic!("creating socket dir {}: {e}", sockdir.display()));
        chmod(&sockdir, 0o700);
        chown_to_user(&sockdir);
        PgNode {
            name: name.to_string(),
            datadir: dir.join("data"),
            logfile: dir.join("server.log"),
            sockdir,
            dir,
            port: free_port(),
            host,
            extra_conf,
        }
    }

    fn initdb(&self) {
        run_checked(
            self.tool("initdb").arg("-D").arg(&self.datadir).args([
                "-A",
                "trust",
                "--username=postgres",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ]),
            &format!("initdb for node {}", self.name),
        );
    }

    fn basebackup_from(&self, primary: &PgNode) {
        let mut cmd = self.tool("pg_basebackup");
        cmd.arg("-D").arg(&self.datadir);
        match (&self.host, &primary.host) {
            (None, _) => {
                cmd.arg("-h")
                    .arg(&primary.sockdir)
                    .arg("-p")
                    .arg(primary.port.to_string())
                    .args(["-U", "postgres"]);
            }
            (Some(mine), Some(theirs)) if mine.same_net(theirs) => {
                // Over the bridge, so primary_conninfo (-R) names the
                // primary's address and a cut stops streaming.
                cmd.arg("-d").arg(format!(
                    "host={} port={} user=postgres connect_timeout=2",
                    theirs.ip, primary.port
                ));
            }
            (Some(_), _) => panic!(
                "standby {} is on a host: its primary {} must be on a host of the same Net",
                self.name, primary.name
            ),
        }
        cmd.args(["-R", "-X", "stream", "-c", "fast", "-N"]);
        run_checked(
            &mut cmd,
            &format!("pg_basebackup of node {} from {}", self.name, primary.name),
        );
    }

    /// (Re)write `data/harness.conf` (port, sockets, replication settings and
    /// the node's extra lines) and make sure `postgresql.conf` includes it.
    pub fn apply_harness_conf(&self) {
        let mut lines = vec![
            "# written by the test harness".to_string(),
            format!("port = {}", self.port),
            format!("listen_addresses = '{}'", self.tcp_host()),
            format!("unix_socket_directories = '{}'", self.sockdir.display()),
            "wal_level = replica".to_string(),
            "max_wal_senders = 10".to_string(),
            "max_replication_slots = 10".to_string(),
            "hot_standby = on".to_string(),
            "wal_keep_size = '128MB'".to_string(),
            "fsync = off".to_string(),
            "full_page_writes = on".to_string(),
            "wal_log_hints = on".to_string(),
            "shared_buffers = '16MB'".to_string(),
            "max_connections = 30".to_string(),
            "logging_collector = off".to_string(),
            "log_line_prefix = '%m [%p] '".to_string(),
            format!("cluster_name = '{}'", self.name.replace('\'', "")),
        ];
        if self.host.is_some() {
            lines.extend(HOST_CONF.iter().map(|s| s.to_string()));
        }
        lines.extend(self.extra_conf.iter().cloned());
        write_user_file(
            &self.datadir.join("harness.conf"),
            &(lines.join("\n") + "\n"),
        );
        let conf = self.datadir.join("postgresql.conf");
        let text =
            fs::read_to_string(&conf).unwrap_or_else(|e| panic!("reading {}: {e}", conf.display()));
        if !text.lines().any(|l| l.trim() == "include 'harness.conf'") {
            write_user_file(&conf, &format!("{text}\ninclude 'harness.conf'\n"));
        }
    }

    /// First start of a new node: on "could not bind" pick another port.
    fn start_new(mut self) -> PgNode {
        for attempt in 1..=BIND_ATTEMPTS {
            match self.try_start() {
                Ok(()) => return self,
                Err(msg) if attempt < BIND_ATTEMPTS && self.log_says_port_taken() => {
                    eprintln!(
                        "[harness] node {}: port {} taken, retrying: {msg}",
                        self.name, self.port
                    );
                    self.port = free_port();
                    self.apply_harness_conf();
                    let _ = fs::remove_file(&self.logfile);
                }
                Err(msg) => panic!("{msg}"),
            }
        }
        unreachable!()
    }

    fn log_says_port_taken(&self) -> bool {
        let log = self.log_tail(40);
        log.contains("could not bind") || log.contains("could not create any TCP/IP sockets")
    }

    pub fn try_start(&self) -> Result<(), String> {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(&self.datadir)
            .arg("-l")
            .arg(&self.logfile)
            .args(["-w", "-t", "60", "start"]);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("starting pg_ctl for node {}: {e}", self.name));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start of node {} failed ({})\ncommand: {}\nstdout: {}\nstderr: {}\n--- server log (last 40 lines) ---\n{}",
                self.name,
                out.status,
                describe(&cmd),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(40)
            ))
        }
    }

    /// Start the (stopped) server, `pg_ctl -w -t 60`. Retries a few times
    /// when the port is briefly taken; keeps the port.
    #[track_caller]
    pub fn start(&self) {
        let mut last = String::new();
        let ok = try_poll_until(Duration::from_secs(20), || match self.try_start() {
            Ok(()) => true,
            Err(msg) => {
                let tail = self.log_tail(10);
                let retry = self.log_says_port_taken()
                    || tail.contains("pre-existing shared memory block")
                    || tail.contains("lock file \"postmaster.pid\" already exists");
                last = msg;
                if !retry {
                    panic!("{last}");
                }
                false
            }
        });
        if !ok {
            panic!("{last}");
        }
    }

    /// Stop the server (`pg_ctl -m fast`), waiting for it to finish.
    #[track_caller]
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    /// Stop with the given pg_ctl mode (`smart`, `fast`, `immediate`).
    #[track_caller]
    pub fn stop_mode(&self, mode: &str) {
        run_checked(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.datadir)
                .args(["-m", mode, "-w", "-t", "60", "stop"]),
            &format!("pg_ctl stop -m {mode} of node {}", self.name),
        );
    }

    /// Restart (`pg_ctl -m fast stop`, then start).
    #[track_caller]
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Pid of the postmaster from `postmaster.pid`, if the file exists.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.datadir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Is the postmaster alive (pid file present and process not a zombie)?
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(pid_alive)
    }

    /// Crash the server: SIGKILL the postmaster, then wait (bounded) until
    /// it and the backends it had are gone and nothing accepts connections.
    #[track_caller]
    pub fn kill9(&self) {
        let pid = self
            .postmaster_pid()
            .unwrap_or_else(|| panic!("kill9 of node {}: no postmaster.pid", self.name));
        let children = children_of(pid);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap_or_else(|e| panic!("kill -9 {pid} (postmaster of node {}): {e}", self.name));
        poll_until(
            SERVER_TIMEOUT,
            &format!(
                "postmaster {pid} of node {} and its children to exit after SIGKILL",
                self.name
            ),
            // The postmaster must be reaped, not just dead: PostgreSQL takes
            // a zombie's pid in postmaster.pid for a running server.
            || !pid_exists(pid) && children.iter().all(|c| !pid_alive(*c)),
        );
        poll_until(
            Duration::from_secs(10),
            &format!("node {} to refuse connections after SIGKILL", self.name),
            || self.try_client().is_err() && self.try_socket_client().is_err(),
        );
    }

    /// `host=127.0.0.1 port=N user=postgres dbname=postgres connect_timeout=2`
    /// (on a host: `host=<host ip> ...`).
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres connect_timeout=2",
            self.tcp_host(),
            self.port
        )
    }

    /// Like [`conninfo`](Self::conninfo) but over the unix socket dir.
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres connect_timeout=2",
            self.sockdir.display(),
            self.port
        )
    }

    /// A connection over TCP (127.0.0.1, or the host's address) as
    /// `postgres` to db `postgres`.
    #[track_caller]
    pub fn client(&self) -> postgres::Client {
        self.try_client().unwrap_or_else(|e| {
            panic!(
                "connecting to node {} ({}): {e}",
                self.name,
                self.conninfo()
            )
        })
    }

    /// [`client`](Self::client) without panicking.
    pub fn try_client(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host(self.tcp_host())
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
    }

    /// A connection over the unix socket (trust unless a builder's hba lines
    /// say otherwise).
    pub fn try_socket_client(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.sockdir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
    }

    /// First column of the first row as text (any type: uses the simple
    /// query protocol). None when there is no row or the value is NULL.
    /// Connects over the unix socket, so password rules a builder adds for
    /// 127.0.0.1 do not get in the way.
    pub fn try_query_one_string(&self, sql: &str) -> Result<Option<String>, postgres::Error> {
        let mut c = self.try_socket_client()?;
        for msg in c.simple_query(sql)? {
            if let postgres::SimpleQueryMessage::Row(row) = msg {
                return Ok(row.get(0).map(str::to_string));
            }
        }
        Ok(None)
    }

    /// First column of the first row as text; panics (with context) on
    /// error, no row, or NULL.
    #[track_caller]
    pub fn query_one_string(&self, sql: &str) -> String {
        match self.try_query_one_string(sql) {
            Ok(Some(s)) => s,
            Ok(None) => panic!("node {}: query returned no row or NULL: {sql}", self.name),
            Err(e) => panic!("node {}: query failed: {sql}: {e}", self.name),
        }
    }

    /// Run one or more statements (simple query protocol, unix socket).
    pub fn try_execute(&self, sql: &str) -> Result<(), postgres::Error> {
        self.try_socket_client()?.batch_execute(sql)
    }

    /// Run one or more statements; panics with context on error.
    #[track_caller]
    pub fn execute(&self, sql: &str) {
        if let Err(e) = self.try_execute(sql) {
            panic!("node {}: statement failed: {sql}: {e}", self.name);
        }
    }

    /// Run `psql -X -A -t -v ON_ERROR_STOP=1 -c SQL` as the run user over the
    /// unix socket (60 s deadline). Output is unaligned, tuples only.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> RunResult {
        let mut cmd = self.tool("psql");
        cmd.args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-h")
        .arg(&self.sockdir)
        .arg("-p")
        .arg(self.port.to_string())
        .arg("-c")
        .arg(sql);
        let label = format!("psql on node {}: {}", self.name, describe(&cmd));
        run_with_deadline(cmd, label, SERVER_TIMEOUT)
    }

    /// Is the server in recovery (a standby)?
    #[track_caller]
    pub fn is_in_recovery(&self) -> bool {
        self.query_one_string("select pg_is_in_recovery()") == "t"
    }

    /// Wait until this standby's WAL receiver is streaming.
    #[track_caller]
    pub fn wait_streaming(&self, timeout: Duration) {
        self.wait_until(timeout, "WAL receiver to be streaming", |n| {
            matches!(
                n.try_query_one_string(
                    "select count(*) from pg_stat_wal_receiver where status = 'streaming'"
                ),
                Ok(Some(c)) if c != "0"
            )
        });
    }

    /// Wait until the server accepts connections.
    #[track_caller]
    pub fn wait_ready(&self, timeout: Duration) {
        self.wait_until(timeout, "server to accept connections", |n| {
            n.try_query_one_string("select 1").is_ok()
        });
    }

    /// Bounded poll on this node: panics with `what`, the node name and the
    /// server log tail when `timeout` passes before `f` returns true.
    #[track_caller]
    pub fn wait_until(&self, timeout: Duration, what: &str, mut f: impl FnMut(&PgNode) -> bool) {
        if !try_poll_until(timeout, || f(self)) {
            panic!(
                "timed out after {timeout:?} on node {} waiting for: {what}\n--- server log (last 40 lines) ---\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }

    /// The last `n` lines of the server log ("" if none yet).
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read(&self.logfile).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Write a file (e.g. `repmgr.conf`) under the node dir, owned by the run
    /// user; returns its absolute path.
    pub fn write_file(&self, rel: &str, contents: &str) -> PathBuf {
        write_user_file(&self.dir.join(rel), contents)
    }

    /// Path of `rel` under the node dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Processes stopped with SIGSTOP until the guard is dropped (SIGCONT,
/// also on panic): they stop answering and no connection closes, as a
/// paused VM or a stuck disk looks from outside.
#[derive(Debug)]
pub struct Frozen {
    pids: Vec<i32>,
}

impl Frozen {
    pub fn pids(pids: Vec<i32>) -> Frozen {
        for p in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGSTOP,
            );
        }
        Frozen { pids }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for p in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

impl PgNode {
    /// The postmaster and its children (backends, WAL sender, ...): they are
    /// session leaders of their own, so the postmaster's group is not enough.
    #[track_caller]
    pub fn server_pids(&self) -> Vec<i32> {
        let pm = self
            .postmaster_pid()
            .unwrap_or_else(|| panic!("node {}: no postmaster.pid", self.name));
        let mut pids = vec![pm];
        pids.extend(children_of(pm));
        pids
    }

    /// Freeze every process of the server ([`Frozen`]) until the guard drops.
    #[track_caller]
    pub fn freeze(&self) -> Frozen {
        Frozen::pids(self.server_pids())
    }
}

/// Pids whose parent is `pid` (from /proc).
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

impl Drop for PgNode {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!(
                "===== [harness] node {} ({}) server log, last {} lines =====\n{}\n===== end of node {} log =====",
                self.name,
                self.dir.display(),
                LOG_TAIL_ON_PANIC,
                self.log_tail(LOG_TAIL_ON_PANIC),
                self.name
            );
        }
        if self.datadir.join("postmaster.pid").exists() {
            let _ = pg_tool("pg_ctl", Path::new("/"))
                .arg("-D")
                .arg(&self.datadir)
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .output();
        }
        if panicking && std::env::var_os("REPMGR_TEST_KEEP").is_some() {
            eprintln!(
                "[harness] REPMGR_TEST_KEEP set: keeping {}",
                self.dir.display()
            );
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("[harness] could not remove {}: {e}", self.dir.display());
        }
        used_ports()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.port);
    }
}
