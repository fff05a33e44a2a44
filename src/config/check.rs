//! Checks on a mapped [`Config`]: the parameters every node needs, and
//! those whose values must agree with each other.

use super::parse::Entry;
use super::Config;
use crate::error::{Error, ExitCode, Result};

impl Config {
    /// Checks the parameters every node needs: one error lists all missing.
    pub fn check_required(&self, need_data_directory: bool) -> Result<()> {
        let mut missing = Vec::new();
        if self.node_id.is_none() {
            missing.push("node_id");
        }
        for (key, value) in [("node_name", &self.node_name), ("conninfo", &self.conninfo)] {
            if value.is_empty() {
                missing.push(key);
            }
        }
        if need_data_directory && self.data_directory.is_empty() {
            missing.push("data_directory");
        }
        if missing.is_empty() {
            return Ok(());
        }
        let messages = missing
            .into_iter()
            .map(|key| {
                format!(
                    "required parameter \"{key}\" not set in \"{}\"",
                    self.config_file
                )
            })
            .collect();
        Err(Error::many(ExitCode::BadConfig, messages))
    }
}

/// Checks between parameters, as repmgr does after parsing. Each message
/// points at the line that last set one of the keys involved.
pub(super) fn cross_check(config: &Config, entries: &[Entry], errors: &mut Vec<String>) {
    let at = |keys: &[&str]| where_set(entries, keys, &config.config_file);
    check_warning_below_critical(config, &at, errors);
    check_rejoin_fits_reconnect(config, &at, errors);
    check_barman_pair(config, &at, errors);
}

/// `node check` would never reach "warning" if it were not below "critical".
fn check_warning_below_critical(
    config: &Config,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    let thresholds = [
        (
            "archive_ready",
            config.archive_ready_warning,
            config.archive_ready_critical,
        ),
        (
            "replication_lag",
            config.replication_lag_warning,
            config.replication_lag_critical,
        ),
    ];
    for (prefix, warning, critical) in thresholds {
        if warning >= critical {
            let (low, high) = (format!("{prefix}_warning"), format!("{prefix}_critical"));
            errors.push(format!(
                "{}: \"{low}\" ({warning}) must be less than \"{high}\" ({critical})",
                at(&[&low, &high])
            ));
        }
    }
}

/// A switchover waits standby_reconnect_timeout for the demoted primary's
/// rejoin, which may itself take up to node_rejoin_timeout.
fn check_rejoin_fits_reconnect(
    config: &Config,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    if config.standby_reconnect_timeout < config.node_rejoin_timeout {
        errors.push(format!(
            "{}: \"standby_reconnect_timeout\" ({}) must be greater than or equal to \"node_rejoin_timeout\" ({})",
            at(&["standby_reconnect_timeout", "node_rejoin_timeout"]),
            config.standby_reconnect_timeout,
            config.node_rejoin_timeout
        ));
    }
}

/// Barman needs both the host to ssh to and the server name it knows.
fn check_barman_pair(config: &Config, at: &dyn Fn(&[&str]) -> String, errors: &mut Vec<String>) {
    let (host, server) = (&config.barman_host, &config.barman_server);
    let half_set = [
        ("barman_host", host, "barman_server", server),
        ("barman_server", server, "barman_host", host),
    ];
    for (set_key, set_value, unset_key, unset_value) in half_set {
        if !set_value.is_empty() && unset_value.is_empty() {
            errors.push(format!(
                "{}: \"{set_key}\" is set but \"{unset_key}\" is not; set both or neither",
                at(&[set_key])
            ));
        }
    }
}

/// The location of the last entry setting one of `keys`, or the file.
fn where_set(entries: &[Entry], keys: &[&str], file: &str) -> String {
    entries
        .iter()
        .rev()
        .find(|e| keys.contains(&e.key.as_str()))
        .map(Entry::location)
        .unwrap_or_else(|| file.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::messages;

    #[test]
    fn cross_checks() {
        let errors = messages(
            "archive_ready_warning = 200\nreplication_lag_critical = 100\nnode_rejoin_timeout = 90\nbarman_host = b\n",
        );
        assert_eq!(
            errors,
            [
                "/x/repmgr.conf:1: \"archive_ready_warning\" (200) must be less than \"archive_ready_critical\" (128)",
                "/x/repmgr.conf:2: \"replication_lag_warning\" (300) must be less than \"replication_lag_critical\" (100)",
                "/x/repmgr.conf:3: \"standby_reconnect_timeout\" (60) must be greater than or equal to \"node_rejoin_timeout\" (90)",
                "/x/repmgr.conf:4: \"barman_host\" is set but \"barman_server\" is not; set both or neither",
            ]
        );
        assert_eq!(
            messages("barman_server = s\n"),
            ["/x/repmgr.conf:1: \"barman_server\" is set but \"barman_host\" is not; set both or neither"]
        );
    }

    #[test]
    fn check_required_lists_every_missing_key() {
        let error = Config {
            config_file: "/etc/repmgr.conf".into(),
            ..Config::default()
        }
        .check_required(true)
        .unwrap_err();
        assert_eq!(error.code, ExitCode::BadConfig);
        assert_eq!(
            error.messages,
            [
                "required parameter \"node_id\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"node_name\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"conninfo\" not set in \"/etc/repmgr.conf\"",
                "required parameter \"data_directory\" not set in \"/etc/repmgr.conf\"",
            ]
        );
        let partial = Config {
            node_id: Some(1),
            node_name: "n".into(),
            conninfo: "host=x".into(),
            ..Config::default()
        };
        assert!(partial.check_required(false).is_ok());
        assert_eq!(partial.check_required(true).unwrap_err().messages.len(), 1);
    }
}
