use super::*;
use crate::daemon::core::health::{Health, HealthRole};
use crate::daemon::http::request::parse;

fn health(role: HealthRole) -> Health {
    Health {
        role,
        running: true,
        writable: false,
        fenced: false,
        isolated: false,
        superseded: None,
        streaming: false,
        upstream: None,
        upstream_seen_ms_ago: None,
        in_recovery: Some(role == HealthRole::Standby),
        timeline: Some(1),
        paused: false,
        known_term: 1,
    }
}

fn view(h: Health) -> View {
    View {
        node_id: 1,
        node_name: "node1".into(),
        health: h,
        upstream_name: None,
        lag_bytes: None,
        lag_secs: None,
        lsn: Some(0x300_0148),
        failovers: 0,
        fences: 0,
        cycle_ms: 3,
        cycle_age_ms: Some(500),
        interval_ms: 1_000,
        pid: 42,
        started_unix: 1_700_000_000,
    }
}

fn writable() -> View {
    let mut h = health(HealthRole::Primary);
    h.writable = true;
    view(h)
}

fn streaming(lag: Option<u64>) -> View {
    let mut h = health(HealthRole::Standby);
    h.streaming = true;
    h.upstream = Some(1);
    let mut v = view(h);
    v.lag_bytes = lag;
    v
}

fn fenced() -> View {
    let mut h = health(HealthRole::Primary);
    h.fenced = true;
    h.isolated = true;
    view(h)
}

fn superseded() -> View {
    let mut h = health(HealthRole::Primary);
    h.fenced = true;
    h.superseded = Some(3);
    view(h)
}

fn status(method: &str, target: &str, v: &View) -> u16 {
    let req = parse(format!("{method} {target} HTTP/1.1").as_bytes()).unwrap();
    answer(&req, v, || Some("{}".into())).status
}

#[test]
fn each_path_answers_as_patroni_does_for_each_kind_of_node() {
    let stopped = {
        let mut h = health(HealthRole::Primary);
        h.running = false;
        view(h)
    };
    let not_streaming = view(health(HealthRole::Standby));
    let witness = view(health(HealthRole::Witness));
    // (path, writable primary, streaming standby, fenced, superseded, stopped, standby not streaming, witness)
    let table: &[(&str, [u16; 7])] = &[
        ("/primary", [200, 503, 503, 503, 503, 503, 503]),
        ("/", [200, 503, 503, 503, 503, 503, 503]),
        ("/read-write", [200, 503, 503, 503, 503, 503, 503]),
        ("/master", [200, 503, 503, 503, 503, 503, 503]),
        ("/replica", [503, 200, 503, 503, 503, 503, 503]),
        ("/read-only", [200, 200, 200, 503, 503, 503, 503]),
        ("/health", [200, 200, 200, 200, 503, 200, 200]),
        ("/liveness", [200, 200, 200, 200, 200, 200, 200]),
        ("/metrics", [200, 200, 200, 200, 200, 200, 200]),
        ("/cluster", [200, 200, 200, 200, 200, 200, 200]),
        ("/nonesuch", [404, 404, 404, 404, 404, 404, 404]),
    ];
    let views = [
        writable(),
        streaming(Some(0)),
        fenced(),
        superseded(),
        stopped,
        not_streaming,
        witness,
    ];
    for (path, want) in table {
        for (v, code) in views.iter().zip(want) {
            for method in ["GET", "HEAD", "OPTIONS"] {
                assert_eq!(
                    status(method, path, v),
                    *code,
                    "{method} {path} on {:?}",
                    v.health
                );
            }
        }
    }
}

#[test]
fn other_methods_are_refused_with_the_allowed_ones() {
    let req = parse(b"POST /primary HTTP/1.1").unwrap();
    let r = answer(&req, &writable(), || None);
    assert_eq!((r.status, r.allow), (405, true));
}

#[test]
fn a_lag_bound_turns_a_lagging_or_unmeasured_replica_away() {
    let v = streaming(Some(20 << 20));
    assert_eq!(status("GET", "/replica?lag=16MB", &v), 503);
    assert_eq!(status("GET", "/replica?lag=32MB", &v), 200);
    assert_eq!(status("GET", "/replica?lag=20971520", &v), 200);
    assert_eq!(status("GET", "/read-only?lag=1kB", &v), 503);
    assert_eq!(status("GET", "/replica?lag=1MB", &streaming(None)), 503);
    assert_eq!(status("GET", "/replica?lag=lots", &v), 400);
    // A primary's reads are not bounded by a replica's lag.
    assert_eq!(status("GET", "/read-only?lag=0", &writable()), 200);
}

#[test]
fn sizes_take_postgresql_units() {
    assert_eq!(parse_size("0"), Some(0));
    assert_eq!(parse_size("512kB"), Some(512 << 10));
    assert_eq!(parse_size("16MB"), Some(16 << 20));
    assert_eq!(parse_size("16mb"), Some(16 << 20));
    assert_eq!(parse_size("1GB"), Some(1 << 30));
    assert_eq!(parse_size("2TB"), Some(2 << 40));
    assert_eq!(parse_size("10B"), Some(10));
    assert_eq!(parse_size("MB"), None);
    assert_eq!(parse_size("1.5MB"), None);
    assert_eq!(parse_size("-1"), None);
}

#[test]
fn liveness_fails_once_the_loop_has_not_run_for_twice_its_interval() {
    let mut v = writable();
    v.cycle_age_ms = Some(2_000);
    assert_eq!(status("GET", "/liveness", &v), 200);
    v.cycle_age_ms = Some(2_001);
    assert_eq!(status("GET", "/liveness", &v), 503);
    v.cycle_age_ms = None;
    assert_eq!(status("GET", "/liveness", &v), 503);
}

#[test]
fn a_stuck_monitoring_loop_vouches_for_nothing() {
    for v in [writable(), streaming(Some(0))] {
        let mut v = v;
        v.cycle_age_ms = Some(60_000);
        for path in ["/primary", "/replica", "/read-only", "/health", "/liveness"] {
            assert_eq!(status("GET", path, &v), 503, "{path}");
        }
        assert_eq!(status("GET", "/metrics", &v), 200);
    }
}

#[test]
fn a_cluster_that_cannot_be_read_is_a_503() {
    let req = parse(b"GET /cluster HTTP/1.1").unwrap();
    assert_eq!(answer(&req, &writable(), || None).status, 503);
}
