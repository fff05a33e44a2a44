//! The checks of `node check`, one function each: from what was read off
//! the node, the status and the line every output mode prints for it. No
//! I/O here: `check.rs` reads, these decide.

use super::Ctx;
use crate::config::Config;
use crate::db::{checks::Downstream, checks::NodeStats, nodes::NodeRecord, nodes::NodeType};
use crate::error::{Error, ExitCode, Result};

/// Nagios's states; a single check exits with the state's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "OK",
            CheckStatus::Warning => "WARNING",
            CheckStatus::Critical => "CRITICAL",
            CheckStatus::Unknown => "UNKNOWN",
        }
    }

    /// The process result of a single check: 0/1/2/3 as Nagios expects.
    /// (ExitCode's 1, 2 and 3 are numerically WARNING, CRITICAL, UNKNOWN.)
    pub(super) fn exit(self) -> Result<()> {
        match self {
            CheckStatus::Ok => Ok(()),
            CheckStatus::Warning => Err(Error::silent(ExitCode::BadConfig)),
            CheckStatus::Critical => Err(Error::silent(ExitCode::BadRsync)),
            CheckStatus::Unknown => Err(Error::silent(ExitCode::BadPidfile)),
        }
    }
}

/// repmgr's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Text,
    Csv,
    Nagios,
    Optformat,
}

impl Mode {
    pub(super) fn of(ctx: &Ctx) -> Mode {
        if ctx.opts.nagios {
            Mode::Nagios
        } else if ctx.opts.optformat {
            Mode::Optformat
        } else if ctx.opts.csv {
            Mode::Csv
        } else {
            Mode::Text
        }
    }
}

/// One check's result: the row of a full run, and the line a single check
/// prints (None when repmgr prints nothing in that mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub item: &'static str,
    pub status: CheckStatus,
    pub details: String,
    pub line: Option<String>,
}

impl Check {
    /// A check whose text line is "STATUS (details)" and whose Nagios and
    /// optformat lines are given.
    pub(super) fn new(
        item: &'static str,
        status: CheckStatus,
        details: String,
        mode: Mode,
        nagios: impl FnOnce(&str) -> String,
        optformat: Option<String>,
    ) -> Check {
        let line = match mode {
            Mode::Text | Mode::Csv => Some(format!("{} ({details})", status.as_str())),
            Mode::Nagios => Some(nagios(&details)),
            Mode::Optformat => optformat,
        };
        Check {
            item,
            status,
            details,
            line,
        }
    }
}

pub fn check_role(node: &NodeRecord, in_recovery: bool, mode: Mode) -> Check {
    use CheckStatus::*;
    let (status, details) = match node.node_type {
        NodeType::Primary if in_recovery => (
            Critical,
            "node is registered as primary but running as standby",
        ),
        NodeType::Primary => (Ok, "node is primary"),
        NodeType::Standby if !in_recovery => (
            Critical,
            "node is registered as standby but running as primary",
        ),
        NodeType::Standby => (Ok, "node is standby"),
        NodeType::Witness if in_recovery => (
            Critical,
            "node is registered as witness but running as standby",
        ),
        NodeType::Witness => (Ok, "node is witness"),
        NodeType::Bdr => (Ok, ""),
    };
    Check::new(
        "Server role",
        status,
        details.to_string(),
        mode,
        |d| format!("REPMGR_SERVER_ROLE {}: {d}", status.as_str()),
        None,
    )
}

/// The role check, where a primary fenced by repmgrd (read-only: writes
/// are refused) is CRITICAL, plainly: monitoring must alert on it.
pub fn check_role_or_fenced(
    node: &NodeRecord,
    in_recovery: bool,
    fenced: bool,
    mode: Mode,
) -> Check {
    if !fenced || in_recovery {
        return check_role(node, in_recovery, mode);
    }
    let status = CheckStatus::Critical;
    Check::new(
        "Server role",
        status,
        "node is fenced: running as primary but read-only".to_string(),
        mode,
        |d| format!("REPMGR_SERVER_ROLE {}: {d}", status.as_str()),
        None,
    )
}

pub fn check_replication_lag(
    cfg: &Config,
    node: &NodeRecord,
    in_recovery: bool,
    lag: Option<i32>,
    mode: Mode,
) -> Check {
    use CheckStatus::*;
    let (warn, crit) = (cfg.replication_lag_warning, cfg.replication_lag_critical);
    let perf = |l: i32| format!("{l} seconds | lag={l};{warn};{crit}");
    let (status, details) = if !in_recovery {
        let d = match mode {
            Mode::Optformat => "--lag=0".to_string(),
            Mode::Nagios => perf(0),
            Mode::Text if node.node_type == NodeType::Witness => "N/A - node is witness".into(),
            Mode::Text => "N/A - node is primary".into(),
            Mode::Csv => String::new(),
        };
        (Ok, d)
    } else {
        match lag {
            Some(l) if l >= crit => (
                Critical,
                match mode {
                    Mode::Optformat => format!("--lag={l} --threshold={crit}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds, critical threshold: {crit})"),
                    Mode::Csv => String::new(),
                },
            ),
            Some(l) if l > warn => (
                Warning,
                match mode {
                    Mode::Optformat => format!("--lag={l} --threshold={warn}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds, warning threshold: {warn})"),
                    Mode::Csv => String::new(),
                },
            ),
            None => (
                Unknown,
                match mode {
                    Mode::Nagios | Mode::Text => "unable to query replication lag".into(),
                    _ => String::new(),
                },
            ),
            Some(l) => (
                Ok,
                match mode {
                    Mode::Optformat => format!("--lag={l}"),
                    Mode::Nagios => perf(l),
                    Mode::Text => format!("{l} seconds"),
                    Mode::Csv => String::new(),
                },
            ),
        }
    };
    let opt = format!("--status={} {details}", status.as_str());
    Check::new(
        "Replication lag",
        status,
        details,
        mode,
        |d| format!("REPMGR_REPLICATION_LAG {}: {d}", status.as_str()),
        Some(opt),
    )
}

pub fn check_archive_ready(cfg: &Config, ready: Option<i32>, mode: Mode) -> Check {
    use CheckStatus::*;
    let (warn, crit) = (cfg.archive_ready_warning, cfg.archive_ready_critical);
    let perf = |n: i32| format!("{n} pending archive ready files | files={n};{warn};{crit}");
    let (status, details) = match ready {
        Some(n) if n > crit => (
            Critical,
            match mode {
                Mode::Optformat => format!("--files={n} --threshold={crit}"),
                Mode::Nagios => perf(n),
                Mode::Text => {
                    format!("{n} pending archive ready files, critical threshold: {crit}")
                }
                Mode::Csv => String::new(),
            },
        ),
        Some(n) if n > warn => (
            Warning,
            match mode {
                Mode::Optformat => format!("--files={n} --threshold={warn}"),
                Mode::Nagios => perf(n),
                Mode::Text => format!("{n} pending archive ready files (threshold: {warn})"),
                Mode::Csv => String::new(),
            },
        ),
        None => (
            Unknown,
            match mode {
                Mode::Nagios | Mode::Text => "unable to check archive_status directory".into(),
                _ => String::new(),
            },
        ),
        Some(n) => (
            Ok,
            match mode {
                Mode::Optformat => format!("--files={n}"),
                Mode::Nagios => perf(n),
                Mode::Text => format!("{n} pending archive ready files"),
                Mode::Csv => String::new(),
            },
        ),
    };
    let opt = format!("--status={} {details}", status.as_str());
    Check::new(
        "WAL archiving",
        status,
        details,
        mode,
        |d| format!("REPMGR_ARCHIVE_READY {}: {d}", status.as_str()),
        Some(opt),
    )
}

pub fn check_downstream(node: &NodeRecord, ds: &[Downstream], mode: Mode) -> Check {
    let expected: Vec<&Downstream> = ds.iter().filter(|d| !d.is_witness).collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|d| !d.attached)
        .map(|d| format!("{} (ID: {})", d.node_name, d.node_id))
        .collect();
    let (n_exp, n_miss) = (expected.len(), missing.len());
    let mut status = CheckStatus::Ok;
    let details = if node.node_type == NodeType::Witness {
        "N/A - node is a witness".to_string()
    } else if n_miss == 0 {
        if n_exp == 0 {
            "this node has no downstream nodes".to_string()
        } else {
            format!("{n_exp} of {n_exp} downstream nodes attached")
        }
    } else {
        status = CheckStatus::Critical;
        let mut d = format!("{n_miss} of {n_exp} downstream nodes not attached");
        if mode != Mode::Nagios {
            d.push_str("; missing: ");
            d.push_str(&missing.join(", "));
        }
        d
    };
    let nagios = |d: &str| {
        let mut d = d.to_string();
        if n_miss > 0 {
            d.push_str(&format!(" (missing: {})", missing.join(", ")));
        }
        format!(
            "REPMGR_DOWNSTREAM_SERVERS {}: {d} | attached={}, missing={n_miss}",
            status.as_str(),
            n_exp - n_miss
        )
    };
    Check::new("Downstream servers", status, details, mode, nagios, None)
}

pub fn check_slots(st: &NodeStats, mode: Mode) -> Check {
    let (total, inactive) = (st.total_slots, st.inactive_slots);
    let (status, details) = if total == 0 {
        (
            CheckStatus::Ok,
            "node has no physical replication slots".to_string(),
        )
    } else if inactive == 0 {
        (
            CheckStatus::Ok,
            format!("{total} of {total} physical replication slots are active"),
        )
    } else {
        (
            CheckStatus::Critical,
            format!("{inactive} of {total} physical replication slots are inactive"),
        )
    };
    Check::new(
        "Replication slots",
        status,
        details,
        mode,
        |d| {
            format!(
                "REPMGR_INACTIVE_SLOTS {}: {d} | slots={total};{inactive}",
                status.as_str()
            )
        },
        None,
    )
}

pub fn check_missing_slots(ds: &[Downstream], mode: Mode) -> Check {
    let names: Vec<&str> = ds
        .iter()
        .filter(|d| d.slot_missing)
        .map(|d| d.slot_name.as_deref().unwrap_or(""))
        .collect();
    let (status, details) = if names.is_empty() {
        (
            CheckStatus::Ok,
            "node has no missing physical replication slots".to_string(),
        )
    } else {
        (
            CheckStatus::Critical,
            format!(
                "{} physical replication slots are missing: {}",
                names.len(),
                names.join(", ")
            ),
        )
    };
    let nagios = |d: &str| {
        let mut l = format!(
            "REPMGR_MISSING_SLOTS {}: {d} | missing_slots={}",
            status.as_str(),
            names.len()
        );
        if !names.is_empty() {
            l.push(';');
            l.push_str(&names.join(","));
        }
        l
    };
    Check::new(
        "Missing physical replication slots",
        status,
        details,
        mode,
        nagios,
        None,
    )
}

/// `actual` is the server's `data_directory` (None when this role may not
/// read it); `pg_dir` whether the configured one holds PG_VERSION.
pub fn check_data_directory(cfg: &Config, actual: Option<&str>, pg_dir: bool, mode: Mode) -> Check {
    let configured = cfg.data_directory.as_str();
    let mut status = CheckStatus::Ok;
    let details = match actual {
        Some(actual) if actual != configured => {
            status = CheckStatus::Critical;
            let mut d = String::new();
            if mode != Mode::Nagios {
                d.push_str(&format!(
                    "configured \"data_directory\" is \"{configured}\"; "
                ));
            }
            d.push_str(&format!("actual data directory is \"{actual}\""));
            d
        }
        Some(_) => format!("configured \"data_directory\" is \"{configured}\""),
        None => {
            if !pg_dir {
                status = CheckStatus::Critical;
                if mode == Mode::Nagios {
                    "configured \"data_directory\" is not a PostgreSQL data directory".to_string()
                } else {
                    // repmgr prints the (unknown, empty) actual directory here.
                    "configured \"data_directory\" \"\" is not a PostgreSQL data directory"
                        .to_string()
                }
            } else {
                format!("configured \"data_directory\" is \"{configured}\"")
            }
        }
    };
    let nagios = |d: &str| {
        let mut l = format!("REPMGR_DATA_DIRECTORY {}: {configured}", status.as_str());
        if status == CheckStatus::Critical {
            l.push_str(&format!(" | {d}"));
        }
        l
    };
    let opt = format!("--configured-data-directory={}", status.as_str());
    Check::new(
        "Configured data directory",
        status,
        details,
        mode,
        nagios,
        Some(opt),
    )
}

/// What the repmgrd table says about this node's repmgrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repmgrd {
    /// No `repmgr.repmgrd_status` table to ask.
    Unknown,
    NotRunning,
    Paused,
    Running,
}

pub fn check_repmgrd(state: Repmgrd, mode: Mode) -> Check {
    let (status, text) = match state {
        Repmgrd::Running => (CheckStatus::Ok, "repmgrd running"),
        Repmgrd::Paused => (CheckStatus::Warning, "repmgrd running but paused"),
        Repmgrd::NotRunning => (CheckStatus::Critical, "repmgrd not running"),
        Repmgrd::Unknown => (CheckStatus::Unknown, "repmgrd status unknown"),
    };
    Check::new(
        "repmgrd",
        status,
        text.to_string(),
        mode,
        |d| format!("REPMGRD {}: {d}", status.as_str()),
        Some(format!("--repmgrd={}", status.as_str())),
    )
}

/// This node's registered upstream, and whether this node streams from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub record: NodeRecord,
    pub attached: bool,
}

/// The upstream check: this node must stream from its registered
/// upstream (`upstream`: None for a witness, or without a record).
pub fn check_upstream(
    node: &NodeRecord,
    in_recovery: bool,
    upstream: Option<&Upstream>,
    mode: Mode,
) -> Check {
    let mut status = CheckStatus::Ok;
    let details = if node.node_type == NodeType::Witness {
        "N/A - node is a witness".to_string()
    } else if let Some(up) = upstream {
        let verb = if up.attached { "is" } else { "is not" };
        if !up.attached {
            status = CheckStatus::Critical;
        }
        format!(
            "node {} {verb} attached to expected upstream node {}",
            node, up.record
        )
    } else if in_recovery {
        status = CheckStatus::Critical;
        format!("node {} is a standby but no upstream record found", node)
    } else {
        "N/A - node is primary".to_string()
    };
    Check::new(
        "Upstream connection",
        status,
        details,
        mode,
        |d| format!("REPMGR_UPSTREAM_SERVER {}: {d}", status.as_str()),
        None,
    )
}

/// `--replication-config-owner`, which only --optformat prints.
pub fn check_replication_config_owner(owner_ok: bool) -> Check {
    let status = if owner_ok {
        CheckStatus::Ok
    } else {
        CheckStatus::Critical
    };
    Check {
        item: "Replication configuration file owner",
        status,
        details: String::new(),
        line: Some(format!("--replication-config-owner={}", status.as_str())),
    }
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn node(t: NodeType) -> NodeRecord {
        NodeRecord {
            node_id: 1,
            upstream_node_id: None,
            active: true,
            node_name: "node1".into(),
            node_type: t,
            location: "default".into(),
            priority: 100,
            conninfo: "host=x".into(),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        }
    }

    fn ds(id: i32, attached: bool, slot_missing: bool) -> Downstream {
        Downstream {
            node_id: id,
            node_name: format!("node{id}"),
            is_witness: false,
            attached,
            slot_missing,
            slot_name: Some(format!("repmgr_slot_{id}")),
        }
    }

    #[test]
    fn role_lines() {
        let c = check_role(&node(NodeType::Primary), false, Mode::Nagios);
        assert_eq!(c.line.unwrap(), "REPMGR_SERVER_ROLE OK: node is primary");
        let c = check_role(&node(NodeType::Standby), false, Mode::Text);
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(
            c.line.unwrap(),
            "CRITICAL (node is registered as standby but running as primary)"
        );
    }

    #[test]
    fn lag_lines() {
        let cfg = Config::default();
        let p = node(NodeType::Primary);
        let c = check_replication_lag(&cfg, &p, false, None, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_REPLICATION_LAG OK: 0 seconds | lag=0;300;600"
        );
        let s = node(NodeType::Standby);
        let c = check_replication_lag(&cfg, &s, true, Some(400), Mode::Text);
        assert_eq!(c.status, CheckStatus::Warning);
        assert_eq!(c.details, "400 seconds, warning threshold: 300)");
        let c = check_replication_lag(&cfg, &s, true, Some(700), Mode::Optformat);
        assert_eq!(
            c.line.unwrap(),
            "--status=CRITICAL --lag=700 --threshold=600"
        );
        let c = check_replication_lag(&cfg, &s, true, None, Mode::Optformat);
        assert_eq!(c.line.unwrap(), "--status=UNKNOWN ");
        let c = check_replication_lag(&cfg, &p, false, None, Mode::Csv);
        assert_eq!(c.details, "");
    }

    #[test]
    fn archive_lines() {
        let cfg = Config::default();
        let c = check_archive_ready(&cfg, Some(0), Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_ARCHIVE_READY OK: 0 pending archive ready files | files=0;16;128"
        );
        let c = check_archive_ready(&cfg, Some(17), Mode::Optformat);
        assert_eq!(
            c.line.unwrap(),
            "--status=WARNING --files=17 --threshold=16"
        );
        let c = check_archive_ready(&cfg, Some(200), Mode::Text);
        assert_eq!(
            c.details,
            "200 pending archive ready files, critical threshold: 128"
        );
        assert_eq!(
            check_archive_ready(&cfg, None, Mode::Text).status,
            CheckStatus::Unknown
        );
    }

    #[test]
    fn downstream_and_slot_lines() {
        let p = node(NodeType::Primary);
        let all = [ds(2, true, false), ds(3, true, false)];
        let c = check_downstream(&p, &all, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DOWNSTREAM_SERVERS OK: 2 of 2 downstream nodes attached | attached=2, missing=0"
        );
        let some = [ds(2, true, false), ds(3, false, true)];
        let c = check_downstream(&p, &some, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DOWNSTREAM_SERVERS CRITICAL: 1 of 2 downstream nodes not attached (missing: node3 (ID: 3)) | attached=1, missing=1"
        );
        let c = check_downstream(&p, &some, Mode::Text);
        assert_eq!(
            c.details,
            "1 of 2 downstream nodes not attached; missing: node3 (ID: 3)"
        );
        let c = check_missing_slots(&some, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_MISSING_SLOTS CRITICAL: 1 physical replication slots are missing: repmgr_slot_3 | missing_slots=1;repmgr_slot_3"
        );
        let st = NodeStats {
            total_slots: 2,
            inactive_slots: 1,
            ..NodeStats::default()
        };
        let c = check_slots(&st, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_INACTIVE_SLOTS CRITICAL: 1 of 2 physical replication slots are inactive | slots=2;1"
        );
    }

    #[test]
    fn data_directory_lines() {
        let cfg = Config {
            data_directory: "/d".into(),
            ..Config::default()
        };
        let c = check_data_directory(&cfg, Some("/d"), true, Mode::Nagios);
        assert_eq!(c.line.unwrap(), "REPMGR_DATA_DIRECTORY OK: /d");
        let c = check_data_directory(&cfg, Some("/e"), true, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DATA_DIRECTORY CRITICAL: /d | actual data directory is \"/e\""
        );
        let c = check_data_directory(&cfg, Some("/e"), true, Mode::Optformat);
        assert_eq!(c.line.unwrap(), "--configured-data-directory=CRITICAL");
    }

    #[test]
    fn upstream_lines() {
        let s = node(NodeType::Standby);
        let up = Upstream {
            record: NodeRecord {
                node_id: 2,
                node_name: "node2".into(),
                ..node(NodeType::Primary)
            },
            attached: false,
        };
        let c = check_upstream(&s, true, Some(&up), Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_UPSTREAM_SERVER CRITICAL: node \"node1\" (ID: 1) is not attached to expected upstream node \"node2\" (ID: 2)"
        );
        let c = check_upstream(&s, true, None, Mode::Text);
        assert_eq!(
            c.line.unwrap(),
            "CRITICAL (node \"node1\" (ID: 1) is a standby but no upstream record found)"
        );
        let c = check_upstream(&node(NodeType::Witness), false, None, Mode::Text);
        assert_eq!(c.line.unwrap(), "OK (N/A - node is a witness)");
        let c = check_upstream(&node(NodeType::Primary), false, None, Mode::Optformat);
        assert_eq!(c.line, None);
    }

    #[test]
    fn repmgrd_and_config_owner_lines() {
        let c = check_repmgrd(Repmgrd::Paused, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGRD WARNING: repmgrd running but paused"
        );
        let c = check_repmgrd(Repmgrd::Unknown, Mode::Optformat);
        assert_eq!(c.line.unwrap(), "--repmgrd=UNKNOWN");
        let c = check_repmgrd(Repmgrd::NotRunning, Mode::Text);
        assert_eq!(c.line.unwrap(), "CRITICAL (repmgrd not running)");
        let c = check_replication_config_owner(false);
        assert_eq!(c.line.unwrap(), "--replication-config-owner=CRITICAL");
    }

    #[test]
    fn data_directory_without_superuser() {
        let cfg = Config {
            data_directory: "/d".into(),
            ..Config::default()
        };
        let c = check_data_directory(&cfg, None, true, Mode::Text);
        assert_eq!(
            c.line.unwrap(),
            "OK (configured \"data_directory\" is \"/d\")"
        );
        let c = check_data_directory(&cfg, None, false, Mode::Text);
        assert_eq!(
            c.line.unwrap(),
            "CRITICAL (configured \"data_directory\" \"\" is not a PostgreSQL data directory)"
        );
        let c = check_data_directory(&cfg, None, false, Mode::Nagios);
        assert_eq!(
            c.line.unwrap(),
            "REPMGR_DATA_DIRECTORY CRITICAL: /d | configured \"data_directory\" is not a PostgreSQL data directory"
        );
    }
}
