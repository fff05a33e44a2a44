//! repmgrd's HTTP endpoint (issue 13): Patroni's health-check paths on a
//! primary, its standbys and a primary that lost its majority; Prometheus
//! metrics that parse; no client can stall it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::fixture::{registered_cluster_with, Node};
use crate::harness::pg::free_port;
use crate::harness::{poll_until, Daemon};

/// An answer: status, headers (lowercase names), body.
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// One request to `port` on loopback, with deadlines.
pub fn request(port: u16, method: &str, path: &str) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no head end in {text:?}"))?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Sends `text` as is; everything answered.
fn raw(port: u16, text: &str) -> String {
    from_address("127.0.0.1", port, text)
}

/// Sends `text` from the loopback address `from`; everything answered.
fn from_address(from: &str, port: u16, text: &str) -> String {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::empty(),
        None,
    )
    .unwrap();
    let local: std::net::SocketAddrV4 = format!("{from}:0").parse().unwrap();
    nix::sys::socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &nix::sys::socket::SockaddrIn::from(local),
    )
    .unwrap();
    let remote: std::net::SocketAddrV4 = format!("127.0.0.1:{port}").parse().unwrap();
    nix::sys::socket::connect(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &nix::sys::socket::SockaddrIn::from(remote),
    )
    .unwrap();
    // SAFETY: the descriptor is ours alone from here on.
    let mut s = unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(text.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub fn status(port: u16, path: &str) -> u16 {
    request(port, "GET", path).map_or(0, |a| a.status)
}

/// Prometheus text format 0.0.4, checked line by line: every sample has a
/// TYPE, a valid name, well-formed labels and a number. Returns
/// `name{labels}` → value.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            assert!(name_ok(name), "bad metric name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad metric name in {line:?}");
        assert!(typed.contains(name), "no TYPE before {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels in {line:?}"
                );
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| {
                        panic!("bad label {pair:?} in {line:?}");
                    });
                    assert!(name_ok(k), "bad label name in {line:?}");
                    assert!(
                        !v.trim_end_matches('"').contains('"'),
                        "unescaped quote in {line:?}"
                    );
                }
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

fn conf(ports: &[u16], id: i32) -> String {
    format!(
        "failover=automatic\nreconnect_attempts=3\nreconnect_interval=1\nmonitor_interval_secs=1\nlog_level=INFO\nhttp_listen='127.0.0.1:{}'",
        ports[id as usize - 1]
    )
}

fn tails(daemons: &[Daemon]) -> String {
    daemons
        .iter()
        .map(|d| format!("--- {} ---\n{}", d.name, d.output_tail(30)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The role endpoints on a primary and two streaming standbys, the
/// metrics, the methods HAProxy and curl use; then the primary loses its
/// voters and `/primary` turns it away before its fence is even applied.
#[test]
fn the_endpoint_answers_as_patroni_does_on_a_primary_its_standbys_and_an_isolated_primary() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<Node> = registered_cluster_with(2, |id| conf(&ports, id));
    let mut d: Vec<Daemon> = nodes.iter().map(|n| n.repmgrd()).collect();
    for dm in &d {
        dm.wait_for_output("HTTP endpoint listening on", Duration::from_secs(30));
    }
    let (p, s2, s3) = (ports[0], ports[1], ports[2]);
    // The primary is writable once a majority's promises arrive.
    poll_until(Duration::from_secs(30), "/primary is 200 on node1", || {
        status(p, "/primary") == 200
    });
    for s in [s2, s3] {
        poll_until(
            Duration::from_secs(30),
            "/replica is 200 on a standby",
            || status(s, "/replica") == 200,
        );
    }
    let expect = [
        ("/primary", [200, 503, 503]),
        ("/", [200, 503, 503]),
        ("/read-write", [200, 503, 503]),
        ("/replica", [503, 200, 200]),
        ("/replica?lag=16MB", [503, 200, 200]),
        ("/read-only", [200, 200, 200]),
        ("/health", [200, 200, 200]),
        ("/liveness", [200, 200, 200]),
        ("/nonesuch", [404, 404, 404]),
    ];
    for (path, codes) in expect {
        for (port, code) in ports.iter().zip(codes) {
            for method in ["GET", "OPTIONS", "HEAD"] {
                // Polled: on a loaded machine a late monitoring cycle can
                // turn an answer for a moment (/liveness's window).
                let mut last = None;
                let ok = crate::harness::try_poll_until(Duration::from_secs(10), || {
                    let a = request(*port, method, path);
                    let hit = a.as_ref().is_ok_and(|a| a.status == code);
                    last = Some(a);
                    hit
                });
                let a = last.unwrap().unwrap();
                assert!(
                    ok,
                    "{method} {path} on port {port}: {} {}\n{}",
                    a.status,
                    a.body,
                    tails(&d)
                );
                if method == "HEAD" {
                    assert!(a.body.is_empty(), "HEAD {path} has a body");
                }
            }
        }
    }
    // HTTP/1.0, as HAProxy's checks send it, and HEAD with GET's length.
    let a = raw(p, "OPTIONS /primary HTTP/1.0\r\n\r\n");
    assert!(a.starts_with("HTTP/1.0 200 OK\r\n"), "{a}");
    let get = request(p, "GET", "/metrics").unwrap();
    let head = request(p, "HEAD", "/metrics").unwrap();
    assert_eq!(
        head.headers
            .get("content-length")
            .map(|l| l.parse::<usize>().unwrap() > 0),
        Some(true)
    );
    assert!(get.headers.contains_key("content-length") && head.body.is_empty());
    // A head that is too large, or malformed.
    let a = raw(p, &format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(9000)));
    assert!(a.starts_with("HTTP/1.1 431 "), "{}", &a[..a.len().min(80)]);
    let a = raw(p, "BREW /pot\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 400 "), "{a}");
    let a = request(p, "POST", "/primary").unwrap();
    assert_eq!(a.status, 405);
    assert_eq!(
        a.headers.get("allow").map(String::as_str),
        Some("GET, HEAD, OPTIONS")
    );

    // The role body, as Patroni gives one.
    let a = request(p, "GET", "/primary").unwrap();
    assert_eq!(
        a.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let b = json(&a.body);
    assert_eq!(b["role"], "primary");
    assert_eq!(b["node_name"], "node1");
    assert_eq!(b["writable"], true);
    assert_eq!(b["fenced"], false);
    assert_eq!(b["upstream_node_id"], serde_json::Value::Null);
    let a = request(s2, "GET", "/replica").unwrap();
    let b = json(&a.body);
    assert_eq!(b["role"], "standby");
    assert_eq!(b["upstream_node_name"], "node1");
    assert_eq!(b["streaming"], true);
    assert!(b["replication_lag_bytes"].is_u64(), "{b}");

    // Metrics: Prometheus text that parses, with this node's facts.
    let m = request(p, "GET", "/metrics").unwrap();
    assert_eq!(
        m.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let pm = parse_prometheus(&m.body);
    assert_eq!(
        pm.get("repmgr_role{role=\"primary\"}"),
        Some(&1.0),
        "{}",
        m.body
    );
    assert_eq!(pm.get("repmgr_writable"), Some(&1.0), "{}", m.body);
    assert_eq!(pm.get("repmgr_fenced"), Some(&0.0), "{}", m.body);
    assert_eq!(pm.get("repmgr_timeline"), Some(&1.0), "{}", m.body);
    assert!(pm.contains_key("repmgr_failovers_total"), "{}", m.body);
    assert!(
        !pm.contains_key("repmgr_replication_lag_bytes"),
        "{}",
        m.body
    );
    // The first check of the upstream answers a monitoring interval in.
    poll_until(Duration::from_secs(10), "node2's upstream seen", || {
        parse_prometheus(&request(s2, "GET", "/metrics").unwrap().body)
            .contains_key("repmgr_upstream_last_seen_seconds")
    });
    let sm = parse_prometheus(&request(s2, "GET", "/metrics").unwrap().body);
    assert_eq!(sm.get("repmgr_role{role=\"standby\"}"), Some(&1.0));
    assert_eq!(sm.get("repmgr_wal_receiver_streaming"), Some(&1.0));
    assert!(sm.contains_key("repmgr_replication_lag_bytes"), "{sm:?}");
    assert!(
        sm.contains_key("repmgr_upstream_last_seen_seconds"),
        "{sm:?}\n{}",
        tails(&d)
    );

    // /cluster: the document `cluster show --json` prints.
    let a = request(s3, "GET", "/cluster").unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let doc: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let cli: serde_json::Value =
        serde_json::from_str(&nodes[2].repmgr(&["cluster", "show", "--json"]).stdout).unwrap();
    assert_eq!(doc, cli);

    // Clients that connect and send nothing take every slot one address
    // may have: the next one from there is told 503 at once, while
    // another address (the load balancer) is still answered; once their
    // deadline cuts them off the endpoint answers again.
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", p)).unwrap())
        .collect();
    let opened = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    // Told 503, or (when the close overtakes the request) cut off: at
    // once either way, never left waiting.
    let busy = request(p, "GET", "/health");
    let took = asked.elapsed();
    match busy {
        Ok(a) if a.status == 503 => {}
        Err(e) => assert!(
            !e.contains("timed out") && !e.contains("Resource temporarily"),
            "{e}"
        ),
        // A machine that stalled past the idle clients' deadline: they
        // were cut off first.
        Ok(a) => assert!(
            opened.elapsed() >= Duration::from_millis(1_900),
            "{} while 8 idle clients held the slots: {}",
            a.status,
            a.body
        ),
    }
    assert!(
        took < Duration::from_secs(2),
        "the busy answer took {took:?}"
    );
    let other = from_address("127.0.0.2", p, "GET /health HTTP/1.1\r\n\r\n");
    assert!(
        other.starts_with("HTTP/1.1 200 ") || opened.elapsed() >= Duration::from_millis(1_900),
        "another address is not answered while one holds its 8 slots: {other}"
    );
    poll_until(
        Duration::from_secs(10),
        "the idle clients are cut off",
        || status(p, "/health") == 200,
    );
    drop(idle);

    // The standbys' servers and repmgrds stop: node1 hears no voter, and
    // /primary says 503 from the moment its lease is too short to keep.
    let standbys = d.split_off(1);
    drop(standbys);
    nodes[1].pg.stop();
    nodes[2].pg.stop();
    let cut = Instant::now();
    poll_until(
        Duration::from_secs(60),
        "/primary is 503 on the isolated node1",
        || status(p, "/primary") == 503,
    );
    let pm = parse_prometheus(&request(p, "GET", "/metrics").unwrap().body);
    assert_eq!(
        pm.get("repmgr_isolated"),
        Some(&1.0),
        "{pm:?}\n{}",
        tails(&d)
    );
    assert_eq!(pm.get("repmgr_writable"), Some(&0.0));
    eprintln!(
        "[http] node1's /primary turned 503 {:.2} s after its voters stopped",
        cut.elapsed().as_secs_f64()
    );
    // Its fence follows (read-only, then stopped); /primary stays 503
    // throughout, and the metrics say fenced.
    let mut vouched = false;
    poll_until(
        Duration::from_secs(30),
        "node1 reports itself fenced",
        || {
            vouched |= status(p, "/primary") == 200;
            request(p, "GET", "/metrics")
                .is_ok_and(|m| parse_prometheus(&m.body).get("repmgr_fenced") == Some(&1.0))
        },
    );
    for _ in 0..10 {
        vouched |= status(p, "/primary") == 200;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !vouched,
        "the fenced node1's /primary said 200\n{}",
        tails(&d)
    );
}
