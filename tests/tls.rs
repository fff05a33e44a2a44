//! TLS with real certificates (issue 12): a test CA, a server certificate
//! for 127.0.0.1 and localhost and a client certificate for `postgres`,
//! made by the `openssl` command; servers with ssl=on whose pg_hba lets
//! TCP in only over TLS with `cert` authentication. Every session of ours
//! is checked in the server log (log_connections says "SSL enabled" for
//! each), and walsenders in pg_stat_ssl.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixture::{wait_attached, write_conf, Node};
use crate::harness::{
    chmod, chown_to_user, poll_until, run_checked, user_tempdir, ExitCode, PgNode,
};

const WAIT: Duration = Duration::from_secs(60);

/// The test CA, the server's and the client's certificates, and a second
/// CA that signed nothing of ours. Files owned by the run user, keys 0600.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
    client_crt: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    run_checked(
        Command::new("openssl").current_dir(dir).args(args),
        &format!("openssl {}", args.first().copied().unwrap_or_default()),
    );
}

fn make_pki() -> Pki {
    let dir = user_tempdir();
    let d = dir.path();
    for (name, subj) in [
        ("ca", "/CN=repmgr test CA"),
        ("other-ca", "/CN=unrelated CA"),
    ] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-days",
                "2",
                "-newkey",
                "rsa:2048",
                "-subj",
                subj,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    for (name, cn, ext) in [
        ("server", "/CN=localhost", Some("server.ext")),
        ("client", "/CN=postgres", None),
    ] {
        openssl(
            d,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-subj",
                cn,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let mut args = vec![
            "x509".to_string(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            "ca.crt".into(),
            "-CAkey".into(),
            "ca.key".into(),
            "-CAcreateserial".into(),
            "-days".into(),
            "2".into(),
            "-out".into(),
            format!("{name}.crt"),
        ];
        if let Some(e) = ext {
            args.extend(["-extfile".into(), e.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(d, &args);
    }
    for entry in fs::read_dir(d).unwrap() {
        let p = entry.unwrap().path();
        chown_to_user(&p);
        let private = p.extension().is_some_and(|e| e == "key");
        chmod(&p, if private { 0o600 } else { 0o644 });
    }
    Pki {
        ca: d.join("ca.crt"),
        other_ca: d.join("other-ca.crt"),
        server_crt: d.join("server.crt"),
        server_key: d.join("server.key"),
        client_crt: d.join("client.crt"),
        client_key: d.join("client.key"),
        _dir: dir,
    }
}

impl Pki {
    /// postgresql.conf lines for a TLS server.
    fn server_conf(&self) -> Vec<String> {
        vec![
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", self.server_crt.display()),
            format!("ssl_key_file = '{}'", self.server_key.display()),
            format!("ssl_ca_file = '{}'", self.ca.display()),
            "log_connections = on".into(),
        ]
    }

    /// The ssl* part of a conninfo with our client certificate.
    fn client(&self, mode: &str) -> String {
        format!(
            "sslmode={mode} sslrootcert={} sslcert={} sslkey={}",
            self.ca.display(),
            self.client_crt.display(),
            self.client_key.display()
        )
    }
}

/// TCP only over TLS, with the client certificate as the credential; the
/// unix socket stays open to the harness (trust).
const TLS_ONLY_HBA: &[&str] = &[
    "hostssl all          postgres 127.0.0.1/32 cert",
    "hostssl replication  postgres 127.0.0.1/32 cert",
    "host    all          all      127.0.0.1/32 reject",
    "host    replication  all      127.0.0.1/32 reject",
];

fn tls_server(name: &str, pki: &Pki) -> PgNode {
    let mut b = PgNode::builder(name);
    for l in pki.server_conf() {
        b = b.conf(&l);
    }
    for l in TLS_ONLY_HBA {
        b = b.hba(l);
    }
    b.start()
}

fn conninfo(host: &str, pg: &PgNode, ssl: &str) -> String {
    format!(
        "host={host} port={} user=postgres dbname=postgres connect_timeout=2 {ssl}",
        pg.port
    )
}

fn node_with(pg: PgNode, id: i32, conninfo: &str) -> Node {
    let conf = write_conf(&pg, id, &pg.name.clone(), conninfo, "");
    Node { pg, conf }
}

/// Lines of the server log that authorized a session of application `app`.
fn authorized(pg: &PgNode, app: &str) -> Vec<String> {
    fs::read_to_string(&pg.logfile)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("connection authorized") && l.contains(&format!("application_name={app}"))
        })
        .map(str::to_string)
        .collect()
}

/// Every session `app` opened so far used TLS, and there was at least one.
#[track_caller]
fn all_sessions_encrypted(pg: &PgNode, app: &str) {
    let lines = authorized(pg, app);
    assert!(
        !lines.is_empty(),
        "no session of {app} in the log of {}",
        pg.name
    );
    for l in &lines {
        assert!(l.contains("SSL enabled"), "a session without TLS: {l}");
    }
}

fn schema_exists(pg: &PgNode) -> bool {
    pg.query_one_string("SELECT count(*) FROM pg_namespace WHERE nspname = 'repmgr'") != "0"
}

/// A TLS server and its node, whose conninfo names `host` with `ssl`.
fn tls_node(name: &str, id: i32, pki: &Pki, host: &str, ssl: &str) -> Node {
    let pg = tls_server(name, pki);
    let ci = conninfo(host, &pg, ssl);
    node_with(pg, id, &ci)
}

#[test]
fn register_show_and_check_over_verify_full() {
    let pki = make_pki();
    // localhost: the certificate's DNS name is what verify-full checks.
    let node = tls_node("node1", 1, &pki, "localhost", &pki.client("verify-full"));
    node.repmgr(&["primary", "register"]).assert_success();
    node.repmgr(&["cluster", "show"])
        .assert_success()
        .assert_stdout_contains("node1");
    node.repmgr(&["node", "check"]).assert_success();
    // The raw ping: SSLRequest, handshake, startup inside TLS.
    node.repmgr(&["node", "status", "--is-shutdown-cleanly"])
        .assert_success()
        .assert_stdout_contains("--state=UP");
    all_sessions_encrypted(&node.pg, "repmgr");
    let n =
        node.count("SELECT count(*) FROM repmgr.nodes WHERE conninfo LIKE '%sslmode=verify-full%'");
    assert_eq!(n, 1, "the node record keeps the ssl settings");
}

#[test]
fn a_host_name_not_in_the_certificate_is_refused_and_nothing_changes() {
    let pki = make_pki();
    // The right address under a name the certificate does not list.
    let ssl = format!("hostaddr=127.0.0.1 {}", pki.client("verify-full"));
    let node = tls_node("node1", 1, &pki, "db.example.invalid", &ssl);
    let r = node.repmgr(&["primary", "register"]);
    r.assert_code(ExitCode::DbConn)
        .assert_stderr_contains("db.example.invalid")
        .assert_stderr_contains("hostname mismatch")
        .assert_stderr_contains("subjectAltName");
    assert!(!schema_exists(&node.pg), "nothing was created:\n{r}");
    // The ping sees no server it may talk to, as libpq's.
    node.repmgr(&["node", "status", "--is-shutdown-cleanly"])
        .assert_stdout_contains("--state=UNCLEAN_SHUTDOWN");
    // verify-ca checks the CA only: the same name is accepted.
    let ci = conninfo(
        "db.example.invalid",
        &node.pg,
        &format!("hostaddr=127.0.0.1 {}", pki.client("verify-ca")),
    );
    let conf = write_conf(&node.pg, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "primary", "register"]).assert_success();
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let pki = make_pki();
    let ssl = format!(
        "sslmode=verify-ca sslrootcert={} sslcert={} sslkey={}",
        pki.other_ca.display(),
        pki.client_crt.display(),
        pki.client_key.display()
    );
    let node = tls_node("node1", 1, &pki, "127.0.0.1", &ssl);
    let r = node.repmgr(&["primary", "register"]);
    r.assert_code(ExitCode::DbConn)
        .assert_stderr_contains("certificate verify failed")
        .assert_stderr_contains("set sslrootcert");
    assert!(!schema_exists(&node.pg));
}

#[test]
fn prefer_and_allow_encrypt_against_a_tls_server() {
    let pki = make_pki();
    // No root certificate: prefer does not verify, but it must encrypt
    // (pg_hba turns plaintext away, and the log shows each session).
    let ssl = format!(
        "sslmode=prefer sslrootcert=/nonexistent sslcert={} sslkey={}",
        pki.client_crt.display(),
        pki.client_key.display()
    );
    let node = tls_node("node1", 1, &pki, "127.0.0.1", &ssl);
    node.repmgr(&["primary", "register"]).assert_success();
    node.repmgr(&["cluster", "show"]).assert_success();
    all_sessions_encrypted(&node.pg, "repmgr");
    // allow: plaintext first; the server turns it away; then TLS.
    let ci = conninfo("127.0.0.1", &node.pg, &ssl.replace("prefer", "allow"));
    let conf = write_conf(&node.pg, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "cluster", "show"]).assert_success();
    all_sessions_encrypted(&node.pg, "repmgr");
}

#[test]
fn require_against_a_server_without_tls_fails_clearly() {
    let pki = make_pki();
    let pg = PgNode::primary("node1");
    let ci = conninfo("127.0.0.1", &pg, &pki.client("require"));
    let node = node_with(pg, 1, &ci);
    node.repmgr(&["primary", "register"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("server does not support TLS")
        .assert_stderr_contains("ssl=off");
    assert!(!schema_exists(&node.pg));
    // prefer: plaintext when the server refuses TLS.
    let ci = conninfo("127.0.0.1", &node.pg, "sslmode=prefer");
    let conf = write_conf(&node.pg, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "primary", "register"]).assert_success();
}

#[test]
fn a_client_key_others_can_read_is_refused() {
    let pki = make_pki();
    chmod(&pki.client_key, 0o644);
    // Refused before any connection is made: no server needed.
    let port = crate::harness::pg::free_port();
    let ci = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres {}",
        pki.client("require")
    );
    let pg = PgNode::empty("node1");
    let conf = write_conf(&pg, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "cluster", "show"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("has group or world access");
}

#[test]
fn clone_over_tls_streams_over_tls() {
    clone_over_tls(&[]);
}

/// The rsync clone: its backup is started and stopped on the upstream
/// over a TLS session, and the standby it makes streams over TLS.
#[test]
fn rsync_clone_over_tls_streams_over_tls() {
    clone_over_tls(&["--rsync-only"]);
}

fn clone_over_tls(method: &[&str]) {
    let pki = make_pki();
    let primary = tls_node("node1", 1, &pki, "127.0.0.1", &pki.client("verify-full"));
    primary.repmgr(&["primary", "register"]).assert_success();
    let pg = PgNode::empty("node2");
    let ci = conninfo("127.0.0.1", &pg, &pki.client("verify-full"));
    let standby = node_with(pg, 2, &ci);
    let source = conninfo("127.0.0.1", &primary.pg, &pki.client("verify-full"));
    let mut args = vec!["-d", source.as_str(), "standby", "clone"];
    args.extend_from_slice(method);
    standby.repmgr(&args).assert_success();
    let auto = fs::read_to_string(standby.pg.datadir.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("sslmode=verify-full") && auto.contains("sslcert="),
        "primary_conninfo keeps the ssl settings: {auto}"
    );
    // The clone runs with TLS too (its own port; the copied harness.conf
    // is rewritten, so the ssl lines go after it).
    standby.pg.apply_harness_conf();
    let conf = standby.pg.datadir.join("postgresql.conf");
    let text = fs::read_to_string(&conf).unwrap();
    crate::harness::write_user_file(
        &conf,
        &format!(
            "{text}
{}
",
            pki.server_conf().join(
                "
"
            )
        ),
    );
    standby.pg.start();
    standby.pg.wait_streaming(WAIT);
    standby.repmgr(&["standby", "register"]).assert_success();
    wait_attached(&primary, &standby);
    let ssl = primary.query(
        "SELECT bool_and(s.ssl)::text FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) \
         WHERE r.application_name = 'node2'",
    );
    assert_eq!(ssl, "true", "the standby's walsender uses TLS");
    poll_until(WAIT, "node2 in cluster show", || {
        standby.repmgr(&["cluster", "show"]).status == 0
    });
    all_sessions_encrypted(&primary.pg, "repmgr");
    all_sessions_encrypted(&standby.pg, "repmgr");
}

/// VmRSS of a process in KiB, for the report of what TLS costs repmgrd.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A registered TLS primary (node1) and two TLS standbys (node2, node3),
/// each with `ssl` in its conninfo and `extra(id)` in its repmgr.conf.
fn tls_cluster(pki: &Pki, ssl: &str, extra: impl Fn(i32) -> String) -> Vec<Node> {
    let pg = tls_server("node1", pki);
    let ci = conninfo("127.0.0.1", &pg, ssl);
    let conf = write_conf(&pg, 1, "node1", &ci, &extra(1));
    let mut nodes = vec![Node { pg, conf }];
    nodes[0].repmgr(&["primary", "register"]).assert_success();
    for id in [2, 3] {
        let name = format!("node{id}");
        let mut b = PgNode::builder(&name);
        for l in pki.server_conf() {
            b = b.conf(&l);
        }
        let pg = b.standby_of(&nodes[0].pg);
        let ci = conninfo("127.0.0.1", &pg, ssl);
        let conf = write_conf(&pg, id, &name, &ci, &extra(id));
        let node = Node { pg, conf };
        node.repmgr(&["standby", "register"]).assert_success();
        wait_attached(&nodes[0], &node);
        nodes.push(node);
    }
    crate::fixture::wait_all_replayed(&nodes);
    nodes
}

/// Whether `upstream`'s walsender for `standby` uses TLS.
fn streams_over_tls(upstream: &Node, standby: &str) -> bool {
    upstream.query(&format!(
        "SELECT coalesce(bool_and(s.ssl), false)::text FROM pg_stat_replication r \
         JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = '{standby}' \
         AND r.state = 'streaming'"
    )) == "true"
}

#[test]
fn promote_and_follow_over_tls() {
    let pki = make_pki();
    let nodes = tls_cluster(&pki, &pki.client("verify-full"), |_| String::new());
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.pg.stop();
    n2.repmgr(&["standby", "promote"]).assert_success();
    n3.repmgr(&["standby", "follow"]).assert_success();
    poll_until(WAIT, "node3 streams from node2 over TLS", || {
        streams_over_tls(n2, "node3")
    });
    let auto = fs::read_to_string(n3.pg.datadir.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("sslmode=verify-full"), "{auto}");
    n2.repmgr(&["cluster", "show"])
        .assert_success()
        .assert_stdout_contains("| node3 | standby |   running | node2 ");
    all_sessions_encrypted(&n2.pg, "repmgr");
    all_sessions_encrypted(&n3.pg, "repmgr");
}

/// A switchover on a cluster whose servers take only certificates over
/// TLS: the old primary, rejoined over ssh, and the sibling stream from the
/// new primary over TLS, and every session repmgr opened was encrypted.
#[test]
fn switchover_over_tls() {
    let sshd = crate::harness::Sshd::start();
    let opts = sshd.ssh_options();
    let pki = make_pki();
    let ssl = pki.client("verify-full");
    let nodes = tls_cluster(&pki, &ssl, |_| format!("ssh_options='{opts}'"));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n2.repmgr(&["standby", "switchover", "--siblings-follow"])
        .assert_success()
        .assert_stderr_contains("STANDBY SWITCHOVER has completed successfully");
    assert!(!n2.pg.is_in_recovery(), "node2 is the primary");
    for n in [n1, n3] {
        poll_until(
            WAIT,
            &format!("{} streams from node2 over TLS", n.pg.name),
            || streams_over_tls(n2, &n.pg.name),
        );
    }
    let auto = fs::read_to_string(n1.pg.datadir.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("sslmode=verify-full"),
        "rejoin kept TLS: {auto}"
    );
    for n in &nodes {
        all_sessions_encrypted(&n.pg, "repmgr");
    }
}

#[test]
fn repmgrd_monitors_and_fails_over_over_tls() {
    let pki = make_pki();
    let ssl = pki.client("verify-full");
    let fast = |id: i32| {
        let priority = if id == 2 { 0 } else { 100 };
        format!(
            "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\n\
             monitor_interval_secs=1\npriority={priority}\nlog_level=INFO"
        )
    };
    let nodes = tls_cluster(&pki, &ssl, fast);
    let daemons: Vec<_> = nodes.iter().map(|n| n.repmgrd()).collect();
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    // The standbys' repmgrd sessions on the primary are encrypted.
    poll_until(WAIT, "repmgrd sessions on node1", || {
        n1.query(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name LIKE 'repmgrd%' AND a.client_addr IS NOT NULL",
        ) != "0"
    });
    let plain = n1.query(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name LIKE 'repmgrd%' AND a.client_addr IS NOT NULL AND NOT s.ssl",
    );
    assert_eq!(plain, "0", "a repmgrd session without TLS");
    // Past the start-up quarantine, with the primary's lease established.
    std::thread::sleep(Duration::from_secs(11));
    for (n, d) in nodes.iter().zip(&daemons) {
        if let Some(kib) = rss_kib(d.pid()) {
            eprintln!("[tls] repmgrd of {} VmRSS {kib} kB", n.pg.name);
        }
    }
    n1.pg.kill9();
    poll_until(WAIT, "node3 promoted", || crate::fixture::writable(n3));
    poll_until(WAIT, "node2 follows node3", || {
        crate::fixture::streams_from(n3, "node2")
    });
    let auto = fs::read_to_string(n2.pg.datadir.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("sslmode=verify-full"),
        "follow kept TLS: {auto}"
    );
    let ssl_on = n3.query(
        "SELECT bool_and(s.ssl)::text FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) \
         WHERE r.application_name = 'node2'",
    );
    assert_eq!(ssl_on, "true", "node2 streams from node3 over TLS");
    all_sessions_encrypted(&n3.pg, "repmgr");
    drop(daemons);
}

#[test]
fn prefer_falls_back_to_plaintext_when_the_handshake_fails() {
    let pki = make_pki();
    // TLS on, plaintext allowed (the harness's trust lines), and a root
    // certificate the server's certificate does not chain to: libpq's
    // prefer verifies against it, fails, and goes on in plaintext.
    let mut b = PgNode::builder("node1");
    for l in pki.server_conf() {
        b = b.conf(&l);
    }
    let pg = b.start();
    let ssl = format!("sslmode=prefer sslrootcert={}", pki.other_ca.display());
    let ci = conninfo("127.0.0.1", &pg, &ssl);
    let node = node_with(pg, 1, &ci);
    node.repmgr(&["primary", "register"])
        .assert_success()
        .assert_stderr_contains("trying without TLS, as sslmode=prefer allows");
    let lines = authorized(&node.pg, "repmgr");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| !l.contains("SSL enabled")),
        "{lines:?}"
    );
    // require has no such fallback.
    let ci = conninfo("127.0.0.1", &node.pg, &ssl.replace("prefer", "require"));
    let conf = write_conf(&node.pg, 1, "node1", &ci, "");
    crate::harness::repmgr(&["-f", &conf, "cluster", "show"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("certificate verify failed");
}

/// Our client key, encrypted with the passphrase "opensesame" (0600).
fn encrypted_client_key(pki: &Pki) -> std::path::PathBuf {
    let dir = pki.client_key.parent().unwrap().to_path_buf();
    let enc = dir.join("client-enc.key");
    openssl(
        &dir,
        &[
            "pkey",
            "-in",
            "client.key",
            "-aes256",
            "-passout",
            "pass:opensesame",
            "-out",
            "client-enc.key",
        ],
    );
    chown_to_user(&enc);
    chmod(&enc, 0o600);
    enc
}

#[test]
fn an_encrypted_client_key_needs_its_sslpassword() {
    let pki = make_pki();
    let enc = encrypted_client_key(&pki);
    let ssl = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pki.ca.display(),
        pki.client_crt.display(),
        enc.display()
    );
    let node = tls_node("node1", 1, &pki, "127.0.0.1", &ssl);
    // No passphrase: refused at once (never a terminal prompt).
    node.repmgr(&["cluster", "show"])
        .assert_code(ExitCode::DbConn)
        .assert_stderr_contains("sslpassword");
    let ci = conninfo(
        "127.0.0.1",
        &node.pg,
        &format!("{ssl} sslpassword=opensesame"),
    );
    let conf = write_conf(&node.pg, 1, "node1", &ci, "");
    let r = crate::harness::repmgr(&["-f", &conf, "primary", "register"]);
    r.assert_success();
    assert!(!r.stderr.contains("opensesame") && !r.stdout.contains("opensesame"));
    all_sessions_encrypted(&node.pg, "repmgr");
}

/// pg_basebackup gets the key's passphrase from a service file of its own,
/// never on its command line (nor in the log of the command): the clone
/// of a server that takes only certificates works with an encrypted key.
#[test]
fn a_clone_with_an_encrypted_key_hands_pg_basebackup_its_sslpassword() {
    let pki = make_pki();
    let enc = encrypted_client_key(&pki);
    let ssl = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={} sslpassword=opensesame",
        pki.ca.display(),
        pki.client_crt.display(),
        enc.display()
    );
    let primary = tls_node("node1", 1, &pki, "127.0.0.1", &ssl);
    primary.repmgr(&["primary", "register"]).assert_success();
    let pg = PgNode::empty("node2");
    let ci = conninfo("127.0.0.1", &pg, &ssl);
    let standby = node_with(pg, 2, &ci);
    let source = conninfo("127.0.0.1", &primary.pg, &ssl);
    let r = standby.repmgr(&["-d", &source, "--log-level=INFO", "standby", "clone"]);
    r.assert_success();
    assert!(
        r.stderr.contains("executing:") && !r.stderr.contains("opensesame"),
        "the logged pg_basebackup command line:\n{}",
        r.stderr
    );
    assert!(standby.pg.datadir.join("PG_VERSION").exists());
}

#[test]
fn a_service_file_carries_the_tls_settings() {
    let pki = make_pki();
    let pg = tls_server("node1", &pki);
    let services = pg.dir.join("pg_service.conf");
    let ssl = pki.client("verify-full").replace(' ', "\n");
    crate::harness::write_user_file(
        &services,
        &format!("[node1]\nhost=localhost\nport={}\n{ssl}\n", pg.port),
    );
    let node = node_with(pg, 1, "service=node1 user=postgres dbname=postgres");
    let with_services = |args: &[&str]| {
        let mut all = vec!["-f", node.conf.as_str()];
        all.extend_from_slice(args);
        crate::harness::Repmgr::new(&all)
            .env("PGSERVICEFILE", services.to_str().unwrap())
            .run()
    };
    with_services(&["primary", "register"]).assert_success();
    with_services(&["cluster", "show"]).assert_success();
    all_sessions_encrypted(&node.pg, "repmgr");
}
