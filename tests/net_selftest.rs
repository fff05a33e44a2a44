//! Tests of the hosts-and-partitions harness (`harness::net`): namespaces,
//! the bridge, cut and heal, servers and repmgr inside hosts, cleanup.

use std::time::Duration;

use crate::fixture::registered_cluster_on_hosts;
use crate::harness::net::{cleanup_stale, link_names, netns_names, subnet_in_use};
use crate::harness::{
    holds_for, pg_bindir, poll_until, run_user, run_with_deadline, Daemon, Host, Net, PgNode,
    RunResult,
};

/// `psql -c SQL` against `conninfo`, run inside `from` (as the run user).
fn psql_from(from: &Host, conninfo: &str, sql: &str) -> RunResult {
    let psql = pg_bindir().join("psql");
    let cmd = from.command(&psql, &["-X", "-A", "-t", "-d", conninfo, "-c", sql]);
    run_with_deadline(
        cmd,
        format!("psql from host {} to {conninfo}", from.name),
        Duration::from_secs(30),
    )
}

fn tcp_ok(ip: &str, port: u16, timeout: Duration) -> bool {
    Host::tcp_reachable(ip, port, timeout)
}

/// Conninfo with a 1 s connect timeout.
fn quick(pg: &PgNode) -> String {
    pg.conninfo()
        .replace("connect_timeout=2", "connect_timeout=1")
}

#[test]
fn hosts_reach_each_other_and_cut_heal_works() {
    let net = Net::new();
    let h1 = net.host("a");
    let h2 = net.host("b");
    assert_ne!(h1.ip, h2.ip);
    assert!(h1.ip.starts_with("10.231.") && h1.subnet().ends_with(".0/24"));
    assert!(net.bridge().len() <= 15 && h1.veth().len() <= 15);
    let p1 = PgNode::builder("a").on_host(&h1).start();
    let p2 = PgNode::builder("b").on_host(&h2).start();
    assert!(p1.conninfo().contains(&format!("host={} ", h1.ip)));

    // The postmaster listens on the host address only, inside the namespace.
    assert_eq!(p2.query_one_string("show listen_addresses"), h2.ip);
    // The test process reaches both over TCP (through the bridge).
    assert_eq!(
        p1.client()
            .query_one("select 1", &[])
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    p2.client();
    // Each host reaches the other's server; the client runs as the run user.
    psql_from(&h1, &p2.conninfo(), "select current_user")
        .assert_success()
        .assert_stdout_contains("postgres");
    psql_from(&h2, &p1.conninfo(), "select inet_client_addr()")
        .assert_success()
        .assert_stdout_contains(&h2.ip);
    // 127.0.0.1 inside a host is the host's own loopback: p2 is not there.
    psql_from(
        &h1,
        &format!(
            "host=127.0.0.1 port={} user=postgres connect_timeout=1",
            p2.port
        ),
        "select 1",
    )
    .assert_failure();

    // Cut h2: unreachable from the test process and from h1.
    h2.cut();
    assert!(h2.is_cut());
    poll_until(Duration::from_secs(60), "h2 unreachable after cut", || {
        !tcp_ok(&h2.ip, p2.port, Duration::from_millis(200))
    });
    psql_from(&h1, &quick(&p2), "select 1").assert_failure();
    psql_from(&h2, &quick(&p1), "select 1").assert_failure();
    // The cut node is still observable over its unix socket...
    assert_eq!(p2.query_one_string("select 42"), "42");
    // ...and reaches its own address (its repmgrd sees its own server).
    psql_from(&h2, &quick(&p2), "select 7")
        .assert_success()
        .assert_stdout_contains("7");
    // h1 is unaffected.
    assert!(tcp_ok(&h1.ip, p1.port, Duration::from_secs(2)));

    h2.heal();
    assert!(!h2.is_cut());
    poll_until(Duration::from_secs(60), "h2 reachable after heal", || {
        tcp_ok(&h2.ip, p2.port, Duration::from_millis(500))
    });
    poll_until(Duration::from_secs(60), "h1 reaches h2 after heal", || {
        psql_from(&h1, &quick(&p2), "select 1").success()
    });
}

#[test]
fn standby_streams_across_the_bridge_and_stops_when_cut() {
    let net = Net::new();
    let h1 = net.host("prim");
    let h2 = net.host("stby");
    let p = PgNode::builder("prim").on_host(&h1).start();
    let s = PgNode::builder("stby").on_host(&h2).standby_of(&p);
    assert!(s.is_in_recovery());
    assert_eq!(s.query_one_string("show wal_receiver_timeout"), "2s");
    // Streaming over the bridge, from the primary's address.
    assert_eq!(
        s.query_one_string("select sender_host from pg_stat_wal_receiver"),
        h1.ip
    );
    assert_eq!(
        p.query_one_string("select client_addr::text from pg_stat_replication"),
        format!("{}/32", h2.ip)
    );
    p.execute("create table t(i int); insert into t values (1)");
    s.wait_until(Duration::from_secs(60), "row replicated", |n| {
        n.try_query_one_string("select count(*) from t")
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
    });

    h1.cut();
    let streaming = |n: &PgNode| {
        n.try_query_one_string(
            "select count(*) from pg_stat_wal_receiver where status = 'streaming'",
        )
        .ok()
        .flatten()
            == Some("1".into())
    };
    s.wait_until(
        Duration::from_secs(60),
        "WAL receiver to stop streaming after the cut",
        |n| !streaming(n),
    );
    // Writes on the isolated primary do not reach the standby.
    p.execute("insert into t values (2)");
    holds_for(Duration::from_secs(1), Duration::from_millis(100), || {
        s.query_one_string("select count(*) from t") == "1"
    })
    .unwrap_or_else(|e| panic!("a write on the cut primary reached the standby: {e}"));

    h1.heal();
    s.wait_streaming(Duration::from_secs(60));
    s.wait_until(Duration::from_secs(60), "row 2 after heal", |n| {
        n.try_query_one_string("select count(*) from t")
            .ok()
            .flatten()
            .as_deref()
            == Some("2")
    });
    // stop / start / restart / kill9 work for a node on a host.
    s.restart();
    s.wait_streaming(Duration::from_secs(60));
    p.kill9();
    assert!(!p.is_running());
    p.start();
    assert_eq!(p.query_one_string("select count(*) from t"), "2");
    assert_eq!(p.query_one_string("show listen_addresses"), h1.ip);
}

#[test]
fn repmgr_and_repmgrd_run_inside_hosts() {
    let c = registered_cluster_on_hosts(1, |_| "log_level=INFO".into());
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);
    let conf = std::fs::read_to_string(&n2.conf).unwrap();
    assert!(conf.contains(&format!("host={} ", c.hosts[1].ip)), "{conf}");
    assert!(conf.contains("pg_bindir="), "{conf}");
    assert!(c.hosts.iter().all(|h| h.subnet() == c.net.subnet()));
    assert_eq!(n1.host().ns, c.hosts[0].ns);
    // The CLI on node2's host reaches node1's host (node2's own copy of
    // the metadata may lag the registration by a moment).
    poll_until(Duration::from_secs(60), "cluster show from node2", || {
        let r = n2.repmgr(&["cluster", "show"]);
        r.success()
            && r.stdout.contains("| node1 | primary | * running")
            && r.stdout.contains("| node2 | standby |   running | node1")
    });
    // Commands in a host run as the run user in that namespace.
    let out = run_with_deadline(
        c.hosts[1].command("sh", &["-c", "id -u; ip -o -4 addr show dev eth0"]),
        "id in host".into(),
        Duration::from_secs(10),
    );
    out.assert_success()
        .assert_stdout_contains(&format!("{}\n", run_user().uid))
        .assert_stdout_contains(&format!("{}/24", c.hosts[1].ip));

    // Cut node1's host: node2's CLI no longer reaches it.
    c.hosts[0].cut();
    let r = n2.cmd(&["cluster", "show"]).run();
    assert!(!r.stdout.contains("| node1 | primary | * running"), "{r}");
    c.hosts[0].heal();
    poll_until(Duration::from_secs(60), "cluster show after heal", || {
        n2.repmgr(&["cluster", "show"])
            .stdout
            .contains("| node1 | primary | * running")
    });

    // repmgrd on a host monitors across the bridge.
    let d: Daemon = n2.repmgrd();
    assert_eq!(
        d.host.as_ref().map(|h| h.ns.as_str()),
        Some(c.hosts[1].ns.as_str())
    );
}

#[test]
fn drop_removes_namespaces_veths_and_bridge() {
    let (bridge, names) = {
        let net = Net::new();
        let h1 = net.host("x");
        let h2 = net.host("y");
        let p = PgNode::builder("x").on_host(&h1).start();
        let s = PgNode::builder("y").on_host(&h2).standby_of(&p);
        let names = vec![
            (h1.ns.clone(), h1.veth().to_string()),
            (h2.ns.clone(), h2.veth().to_string()),
        ];
        for (ns, veth) in &names {
            assert!(netns_names().contains(ns));
            assert!(link_names().contains(veth));
        }
        assert!(link_names().contains(&net.bridge().to_string()));
        // Drop in the "wrong" order: the net first. Hosts and nodes keep it.
        let bridge = net.bridge().to_string();
        drop(net);
        assert!(link_names().contains(&bridge));
        drop(h1);
        drop(h2);
        assert!(s.is_in_recovery());
        (bridge, names)
    };
    for (ns, veth) in &names {
        assert!(!netns_names().contains(ns), "namespace {ns} left behind");
        assert!(!link_names().contains(veth), "veth {veth} left behind");
    }
    assert!(
        !link_names().contains(&bridge),
        "bridge {bridge} left behind"
    );
    let out = crate::harness::net::ip(&["-o", "link"]).unwrap();
    assert!(!out.contains(&bridge), "{out}");
}

#[test]
fn drop_on_panic_removes_everything() {
    let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let n = names.clone();
    let r = std::thread::spawn(move || {
        let net = Net::new();
        let h = net.host("boom");
        n.lock()
            .unwrap()
            .extend([net.bridge().to_string(), h.veth().to_string(), h.ns.clone()]);
        panic!("deliberate panic with a net and a host alive");
    })
    .join();
    assert!(r.is_err());
    let names = names.lock().unwrap();
    assert_eq!(names.len(), 3);
    for n in names.iter() {
        assert!(
            !netns_names().contains(n) && !link_names().contains(n),
            "{n} left behind after a panic"
        );
    }
}

#[test]
fn stale_leftovers_of_dead_processes_are_removed() {
    // A pid that is certainly dead: a child we ran and reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = child.id();
    assert!(!crate::harness::pid_alive(dead as i32));
    let ns = format!("rt-{dead}-0-stale");
    let br = format!("rt{dead}b0");
    let veth = format!("rt{dead}h1");
    let ip = crate::harness::net::ip;
    ip(&["netns", "add", &ns]).unwrap();
    ip(&["link", "add", "name", &br, "type", "bridge"]).unwrap();
    ip(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])
    .unwrap();
    // Objects of a live process (this one) are left alone.
    let net = Net::new();
    cleanup_stale();
    assert!(!netns_names().contains(&ns));
    assert!(!link_names().contains(&br));
    assert!(!link_names().contains(&veth));
    assert!(link_names().contains(&net.bridge().to_string()));
}

#[test]
fn parallel_nets_do_not_collide() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let net = Net::new();
                let a = net.host(&format!("pa{i}"));
                let b = net.host(&format!("pb{i}"));
                let p = PgNode::builder(&format!("par{i}")).on_host(&b).start();
                psql_from(&a, &p.conninfo(), "select 1").assert_success();
                (
                    net.subnet(),
                    net.bridge().to_string(),
                    a.ns.clone(),
                    b.veth().to_string(),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("a parallel net"))
        .collect();
    let mut all: Vec<String> = Vec::new();
    for (subnet, bridge, ns, veth) in &results {
        all.extend([subnet.clone(), bridge.clone(), ns.clone(), veth.clone()]);
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "names or subnets collided: {results:?}");
}

#[test]
fn a_subnet_in_use_on_the_machine_is_skipped() {
    // Hold a net, then make many more: none may reuse a /24 in use.
    let first = Net::new();
    assert!(subnet_in_use(&first.subnet()));
    let more: Vec<Net> = (0..3).map(|_| Net::new()).collect();
    for n in &more {
        assert_ne!(n.subnet(), first.subnet());
        assert!(subnet_in_use(&n.subnet()));
    }
    let gone = first.subnet();
    drop(first);
    assert!(!subnet_in_use(&gone));
}

/// [`Host::refuse_new_connections`]: SYN-only loss. New connections to the
/// host time out; an established one and the host's own outbound ones keep
/// working; lifting it lets new ones through again.
#[test]
fn refusing_new_connections_keeps_established_ones() {
    let net = Net::new();
    let h1 = net.host("a");
    let h2 = net.host("b");
    let p1 = PgNode::builder("a").on_host(&h1).start();
    let p2 = PgNode::builder("b").on_host(&h2).start();
    // Established over TCP, through the bridge, before the loss.
    let mut held = p1.client();

    h1.refuse_new_connections();
    assert!(
        !tcp_ok(&h1.ip, p1.port, Duration::from_millis(500)),
        "a new connection to the host completed"
    );
    psql_from(&h2, &quick(&p1), "select 1").assert_failure();
    let one: i32 = held
        .query_one("select 1", &[])
        .expect("the established connection still answers")
        .get(0);
    assert_eq!(one, 1);
    // The host still opens connections of its own, and reaches itself.
    psql_from(&h1, &quick(&p2), "select 2")
        .assert_success()
        .assert_stdout_contains("2");
    psql_from(&h1, &quick(&p1), "select 3")
        .assert_success()
        .assert_stdout_contains("3");
    // Beside a one-way cut, both hold; lifting the cut leaves the loss.
    h1.drop_to(&h2);
    h1.undrop_to(&h2);
    assert!(!tcp_ok(&h1.ip, p1.port, Duration::from_millis(500)));

    h1.accept_new_connections();
    poll_until(
        Duration::from_secs(10),
        "new connections to h1 again",
        || tcp_ok(&h1.ip, p1.port, Duration::from_millis(500)),
    );
    psql_from(&h2, &quick(&p1), "select 1").assert_success();
}
