//! `/metrics`: Prometheus's text format (version 0.0.4), names `repmgr_…`.
//! A value that is not known now (a primary's replication lag, an upstream
//! never seen) is left out rather than reported as 0.

use std::fmt::Write;

use super::view::View;
use crate::daemon::core::health::HealthRole;

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.family(name, "gauge", help);
            self.sample(name, "", v);
        }
    }

    fn flag(&mut self, name: &str, help: &str, value: bool) {
        self.gauge(name, help, Some(f64::from(u8::from(value))));
    }
}

pub fn render(v: &View) -> String {
    let h = &v.health;
    let mut o = Out(String::with_capacity(2048));
    o.family(
        "repmgr_node_info",
        "gauge",
        "This node as repmgr.conf names it, with its role now.",
    );
    o.sample(
        "repmgr_node_info",
        &format!(
            "{{node_id=\"{}\",node_name=\"{}\",role=\"{}\"}}",
            v.node_id,
            label(&v.node_name),
            h.role.name()
        ),
        1,
    );
    o.family(
        "repmgr_role",
        "gauge",
        "1 for the role this node plays now, 0 for the others.",
    );
    for r in [
        HealthRole::Primary,
        HealthRole::Standby,
        HealthRole::Witness,
        HealthRole::Unknown,
    ] {
        o.sample(
            "repmgr_role",
            &format!("{{role=\"{}\"}}", r.name()),
            u8::from(h.role == r),
        );
    }
    o.flag(
        "repmgr_postgresql_up",
        "Whether the local PostgreSQL server answered repmgrd's last read.",
        h.running,
    );
    o.flag(
        "repmgr_writable",
        "Whether this node is a primary that may take writes now (what /primary answers).",
        h.writable,
    );
    o.flag(
        "repmgr_fenced",
        "Whether repmgrd has fenced (or is fencing) the local server.",
        h.fenced,
    );
    o.flag(
        "repmgr_isolated",
        "Whether this primary holds no lease from a majority of the voters.",
        h.isolated,
    );
    o.flag(
        "repmgr_superseded",
        "Whether a newer primary has superseded this node.",
        h.superseded.is_some(),
    );
    o.flag(
        "repmgr_repmgrd_paused",
        "Whether repmgrd is paused (repmgr service pause).",
        h.paused,
    );
    if h.role == HealthRole::Standby {
        o.flag(
            "repmgr_wal_receiver_streaming",
            "Whether this standby's WAL receiver streams.",
            h.streaming,
        );
    }
    o.gauge(
        "repmgr_upstream_last_seen_seconds",
        "Seconds since this standby's upstream last answered a check.",
        h.upstream_seen_ms_ago.map(|ms| ms as f64 / 1000.0),
    );
    o.gauge(
        "repmgr_replication_lag_bytes",
        "Bytes of WAL this standby has not replayed, behind its sender's WAL end.",
        v.lag_bytes.map(|b| b as f64),
    );
    o.gauge(
        "repmgr_replication_lag_seconds",
        "repmgr's replication lag: 0 when all received WAL is replayed, else the age of the last replayed transaction.",
        v.lag_secs,
    );
    o.gauge(
        "repmgr_timeline",
        "The local server's timeline.",
        h.timeline.map(f64::from),
    );
    o.gauge(
        "repmgr_voting_term",
        "The highest term this repmgrd knows a primary to act in.",
        Some(h.known_term as f64),
    );
    o.family(
        "repmgr_failovers_total",
        "counter",
        "Promotions of this node carried out by this repmgrd since it started.",
    );
    o.sample("repmgr_failovers_total", "", v.failovers);
    o.family(
        "repmgr_fences_total",
        "counter",
        "Fences of the local server applied by this repmgrd since it started.",
    );
    o.sample("repmgr_fences_total", "", v.fences);
    o.gauge(
        "repmgr_monitoring_cycle_duration_seconds",
        "How long the last monitoring cycle (reading the local server) took.",
        Some(v.cycle_ms as f64 / 1000.0),
    );
    o.gauge(
        "repmgr_monitoring_cycle_age_seconds",
        "Seconds since the last monitoring cycle began.",
        v.cycle_age_ms.map(|ms| ms as f64 / 1000.0),
    );
    o.gauge(
        "repmgr_repmgrd_start_time_seconds",
        "When this repmgrd started, in seconds since the Unix epoch.",
        Some(v.started_unix as f64),
    );
    o.0
}
