//! Cluster fixtures for repmgr tests: nodes with their repmgr.conf.

use crate::harness::{write_user_file, Host, Net, PgNode, Repmgr, RunResult};

/// A PostgreSQL node with a repmgr.conf naming it.
pub struct Node {
    pub pg: PgNode,
    pub conf: String,
}

impl Node {
    /// Writes `<node dir>/repmgr.conf` for this node, plus `extra` lines.
    pub fn configure(pg: PgNode, id: i32, extra: &str) -> Node {
        let conf = write_conf(&pg, id, &pg.name.clone(), &pg.conninfo(), extra);
        Node { pg, conf }
    }

    pub fn primary(name: &str, id: i32) -> Node {
        Node::configure(PgNode::primary(name), id, "")
    }

    pub fn standby(primary: &Node, name: &str, id: i32) -> Node {
        Node::configure(PgNode::standby_of(&primary.pg, name), id, "")
    }

    /// `repmgr -f <conf> ARGS`.
    #[track_caller]
    pub fn repmgr(&self, args: &[&str]) -> RunResult {
        self.cmd(args).run()
    }

    /// `repmgr -f <conf> ARGS`, run inside the node's host when it has one.
    pub fn cmd(&self, args: &[&str]) -> Repmgr {
        let mut all = vec!["-f", self.conf.as_str()];
        all.extend_from_slice(args);
        Repmgr::new(&all).on_host_opt(self.pg.host.as_ref())
    }

    /// The host the node runs on (panics for nodes off hosts).
    #[track_caller]
    pub fn host(&self) -> &Host {
        self.pg
            .host
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is not on a host", self.pg.name))
    }

    pub fn query(&self, sql: &str) -> String {
        self.pg.query_one_string(sql)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql)
            .parse()
            .unwrap_or_else(|_| panic!("not a count: {sql}"))
    }
}

/// Writes a repmgr.conf into the node's dir and returns its path.
pub fn write_conf(pg: &PgNode, id: i32, name: &str, conninfo: &str, extra: &str) -> String {
    let text = format!(
                "node_id={id}\nnode_name='{name}'\nconninfo='{conninfo}'\ndata_directory='{}'\npg_bindir='{}'\n{extra}\n",
        pg.datadir.display(),
        crate::harness::pg_bindir().display()
    );
    write_user_file(&pg.dir.join("repmgr.conf"), &text)
        .display()
        .to_string()
}

/// A primary (registered) and `n` standbys (registered), ids 1..=n+1,
/// each standby streaming and with every registration replayed.
pub fn registered_cluster(n: usize) -> Vec<Node> {
    registered_cluster_with(n, |_| String::new())
}

/// Like [`registered_cluster`], with extra repmgr.conf lines per node id.
pub fn registered_cluster_with(n: usize, extra: impl Fn(i32) -> String) -> Vec<Node> {
    let primary = Node::configure(PgNode::primary("node1"), 1, &extra(1));
    primary.repmgr(&["primary", "register"]).assert_success();
    let mut nodes = vec![primary];
    for i in 0..n {
        let id = i as i32 + 2;
        let s = Node::configure(
            PgNode::standby_of(&nodes[0].pg, &format!("node{id}")),
            id,
            &extra(id),
        );
        s.repmgr(&["standby", "register"]).assert_success();
        wait_attached(&nodes[0], &s);
        nodes.push(s);
    }
    wait_all_replayed(&nodes);
    nodes
}

impl Node {
    /// Starts repmgrd for this node in the foreground (stopped on drop),
    /// inside the node's host when it has one.
    pub fn repmgrd(&self) -> crate::harness::Daemon {
        let pid_file = self.pg.dir.join("repmgrd.pid");
        let name = format!("repmgrd-{}", self.pg.name);
        let args = [
            "-f",
            &self.conf,
            "--daemonize=false",
            "-p",
            pid_file.to_str().unwrap(),
        ];
        let d = match &self.pg.host {
            Some(h) => crate::harness::Daemon::repmgrd_on(h, &name, &args),
            None => crate::harness::Daemon::repmgrd(&name, &args),
        };
        d.wait_for_output("starting monitoring", std::time::Duration::from_secs(60));
        d
    }

    /// Appends lines to this node's repmgr.conf.
    pub fn append_conf(&self, lines: &str) {
        let old = std::fs::read_to_string(&self.conf).unwrap();
        crate::harness::write_user_file(
            std::path::Path::new(&self.conf),
            &format!("{old}{lines}\n"),
        );
    }
}

/// Waits (bounded) until `standby` has replayed all the WAL `primary` had
/// written when called: its own copy of the metadata (node records,
/// events) then has every registration, and earlier writes are visible.
/// A standby's copy lags the primary's by a moment, and commands run on a
/// standby (`cluster show`, `cluster matrix`) read that copy.
pub fn wait_replayed(primary: &Node, standby: &Node) {
    let lsn = primary.query("SELECT pg_current_wal_lsn()::text");
    let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
    crate::harness::poll_until(
        std::time::Duration::from_secs(60),
        &format!(
            "standby {} to replay the WAL of {} up to {lsn}",
            standby.pg.name, primary.pg.name
        ),
        || {
            standby
                .pg
                .try_query_one_string(&sql)
                .ok()
                .flatten()
                .as_deref()
                == Some("t")
        },
    );
}

/// [`wait_replayed`] for every node after the first (the primary).
pub fn wait_all_replayed(nodes: &[Node]) {
    if let Some((primary, standbys)) = nodes.split_first() {
        for s in standbys {
            wait_replayed(primary, s);
        }
    }
}

/// Waits until the upstream lists the standby as streaming, so tests start
/// from a settled cluster even on a loaded machine.
pub fn wait_attached(upstream: &Node, standby: &Node) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{}' AND state = 'streaming'",
        standby.pg.name
    );
    crate::harness::poll_until(
        std::time::Duration::from_secs(60),
        "standby attached",
        || {
            upstream
                .pg
                .try_query_one_string(&sql)
                .ok()
                .flatten()
                .as_deref()
                == Some("1")
        },
    );
}

/// A cluster whose nodes each run on their own [`Host`] of one [`Net`].
/// Fields drop in order: nodes (servers stopped), hosts, then the network
/// (nodes and daemons also hold their host, so the network outlives them
/// whatever the order). Declare daemons after the cluster so they stop
/// first.
pub struct HostCluster {
    pub nodes: Vec<Node>,
    pub hosts: Vec<Host>,
    pub net: Net,
}

/// A primary (registered, id 1, host `node1`) and `n` standbys (registered,
/// ids 2..=n+1, hosts `node<id>`), each on its own host of a new [`Net`],
/// streaming from the primary's address across the bridge, every
/// registration replayed on every standby. Each repmgr.conf
/// names the host address in its conninfo, has pg_bindir and `extra(id)`.
pub fn registered_cluster_on_hosts(n: usize, extra: impl Fn(i32) -> String) -> HostCluster {
    registered_cluster_on_hosts_with(n, &[], extra)
}

/// Like [`registered_cluster_on_hosts`], with extra postgresql.conf lines
/// on every node (a standby needs some settings at least as high as its
/// primary's, max_prepared_transactions for one).
pub fn registered_cluster_on_hosts_with(
    n: usize,
    pg_conf: &[&str],
    extra: impl Fn(i32) -> String,
) -> HostCluster {
    let net = Net::new();
    let mut hosts = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..=n {
        let id = i as i32 + 1;
        let name = format!("node{id}");
        let host = net.host(&name);
        let builder = pg_conf
            .iter()
            .fold(PgNode::builder(&name).on_host(&host), |b, l| b.conf(l));
        let pg = if i == 0 {
            builder.start()
        } else {
            builder.standby_of(&nodes[0].pg)
        };
        let node = Node::configure(pg, id, &extra(id));
        let what = if i == 0 { "primary" } else { "standby" };
        node.repmgr(&[what, "register"]).assert_success();
        if i > 0 {
            wait_attached(&nodes[0], &node);
        }
        hosts.push(host);
        nodes.push(node);
    }
    wait_all_replayed(&nodes);
    HostCluster { nodes, hosts, net }
}

/// Whether `n` accepts writes (runs as a primary and answers).
pub fn writable(n: &Node) -> bool {
    n.pg.try_query_one_string("SELECT NOT pg_is_in_recovery()")
        .ok()
        .flatten()
        .as_deref()
        == Some("t")
}

/// Whether `upstream` lists a standby called `standby` as streaming.
pub fn streams_from(upstream: &Node, standby: &str) -> bool {
    upstream
        .pg
        .try_query_one_string(&format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{standby}' AND state = 'streaming'"
        ))
        .ok()
        .flatten()
        .as_deref()
        == Some("1")
}

/// The read-only fence setting in the node's postgresql.auto.conf, if any.
pub fn auto_conf_fence(n: &Node) -> Option<String> {
    std::fs::read_to_string(n.pg.datadir.join("postgresql.auto.conf"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("default_transaction_read_only"))
        .map(str::to_string)
}

/// Sets `synchronous_standby_names` on `primary` with ALTER SYSTEM (so on
/// it alone: a standby promoted later does not inherit a list naming
/// itself and wait for ever) and waits until `pg_stat_replication` shows
/// each `(application_name, sync_state)` of `want`.
pub fn set_sync_standbys(primary: &Node, names: &str, want: &[(&str, &str)]) {
    // Two statements: ALTER SYSTEM cannot run in the implicit transaction
    // of a multi-statement query.
    primary.pg.execute(&format!(
        "ALTER SYSTEM SET synchronous_standby_names = '{}'",
        names.replace('\'', "''")
    ));
    primary.pg.execute("SELECT pg_reload_conf()");
    for (standby, state) in want {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{standby}' AND sync_state = '{state}'"
        );
        crate::harness::poll_until(
            std::time::Duration::from_secs(60),
            &format!("{standby} attached to {} as {state}", primary.pg.name),
            || {
                primary
                    .pg
                    .try_query_one_string(&sql)
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some("1")
            },
        );
    }
}
