//! Loading repmgr.conf into a [`Config`].
//!
//! Loading runs in three steps:
//! 1. `parse` reads the GUC-style text and its includes into entries that
//!    remember their file and line;
//! 2. names are resolved here: deprecated names are mapped with a warning,
//!    unknown ones are warned about (with a "did you mean");
//! 3. serde (via serde_ini) maps values into [`Config`]. Each entry is first
//!    deserialized on its own so every bad value is reported with its key
//!    and line; then the normalised, last-wins text is deserialized at once.
//!
//! serde_ini trims values, so leading or trailing blanks inside quotes are
//! not kept (repmgr keeps them; no parameter has a use for them).
//!
//! Every error of every file is returned together in one
//! `Error::many(ExitCode::BadConfig, ..)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::check::cross_check;
use super::locate::absolute;
use super::parse::{self, Entry, Reading};
use super::{params, Config};
use crate::error::{Error, ExitCode, Result};

/// Beyond this many, errors are summarised as "and N more errors".
const MAX_REPORTED_ERRORS: usize = 50;

/// Longest excerpt of a value quoted back in an error.
const VALUE_EXCERPT_CHARS: usize = 60;

/// A loaded configuration, where it came from, and what looked odd in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Absolute path of the top-level file.
    pub path: PathBuf,
    /// Unknown or deprecated keys, each naming `file:line`.
    pub warnings: Vec<String>,
    /// The file uses the seed's (repmgr 1.x) names, `node` and `cluster`;
    /// such files have no `data_directory`.
    pub seed_format: bool,
    /// The known keys as read, for `--dump-config`.
    entries: Vec<Entry>,
}

impl Loaded {
    /// `--dump-config`'s text: every parameter as repmgr prints it.
    pub fn dump(&self) -> String {
        super::dump::dump(&self.entries)
    }
}

/// Reads, checks and maps a configuration file and its includes.
pub fn load_file(path: &Path) -> Result<Loaded> {
    let path = absolute(path);
    let mut reading = Reading::default();
    parse::read_file(&path, &mut reading);
    build(reading, path)
}

/// Like [`load_file`] for text already in memory; `origin` names it in
/// messages and anchors relative includes.
pub fn parse_str(text: &str, origin: &Path) -> Result<Loaded> {
    let path = absolute(origin);
    let mut reading = Reading::default();
    parse::read_bytes(text.as_bytes(), &path, 0, &mut reading);
    build(reading, path)
}

/// Entries whose names are known, plus what resolving the names noticed.
struct Resolved {
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// The file uses repmgr 1.x names (`node`, `cluster`).
    seed_format: bool,
}

fn build(reading: Reading, path: PathBuf) -> Result<Loaded> {
    let mut errors = reading.errors;
    let mut resolved = resolve_names(reading.entries);
    let mut config = map_values(&resolved.entries, &mut errors);
    config.config_file = path.display().to_string();
    if resolved.seed_format {
        name_seed_node(&mut config, &mut resolved.warnings);
    }
    cross_check(&config, &resolved.entries, &mut errors);
    warn_no_effect(&resolved.entries, &mut resolved.warnings);
    if !errors.is_empty() {
        return Err(config_error(errors));
    }
    Ok(Loaded {
        config,
        path,
        warnings: resolved.warnings,
        seed_format: resolved.seed_format,
        entries: resolved.entries,
    })
}

/// repmgr 5 keys read for compatibility that change nothing here, each
/// with why; repmgr.conf(5) says the same.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "promote_check_interval",
        "promotion progress is checked every 10 ms (promote_check_timeout bounds the wait)",
    ),
    (
        "standby_disconnect_on_failover",
        "repmgrd never disconnects the WAL receivers: a receiver still streaming from the primary is the proof it lives that the election relies on",
    ),
    (
        "sibling_nodes_disconnect_timeout",
        "it only applies with standby_disconnect_on_failover, which has no effect",
    ),
    (
        "reconnect_loop_sync",
        "reconnection attempts are always scheduled on the clock from the first failed check",
    ),
];

/// Warns about keys that are read but cannot apply here: [`NO_EFFECT`], and
/// Barman and pg-backup-api cloning, which do not exist in this build (a
/// clone that would use them is refused, see `standby clone`).
fn warn_no_effect(entries: &[Entry], warnings: &mut Vec<String>) {
    for e in entries.iter().filter(|e| !e.value.trim().is_empty()) {
        if let Some((_, why)) = NO_EFFECT.iter().find(|(k, _)| *k == e.key) {
            warnings.push(format!(
                "{}: parameter \"{}\" is accepted for compatibility and has no effect here: {why} (see repmgr.conf(5))",
                e.location(),
                e.key
            ));
        } else if e.key.starts_with("barman_") || e.key.starts_with("pg_backupapi_") {
            warnings.push(format!(
                "{}: parameter \"{}\" has no effect: this repmgr cannot clone from Barman or pg-backup-api",
                e.location(),
                e.key
            ));
        }
    }
}

/// Maps deprecated names to current ones and drops unknown names, warning
/// about both.
fn resolve_names(entries: Vec<Entry>) -> Resolved {
    let mut resolved = Resolved {
        entries: Vec::with_capacity(entries.len()),
        warnings: Vec::new(),
        seed_format: false,
    };
    for mut entry in entries {
        if params::find(&entry.key).is_some() {
            resolved.entries.push(entry);
            continue;
        }
        let here = entry.location();
        match params::deprecated(&entry.key) {
            Some(Some(current)) => {
                resolved.warnings.push(format!(
                    "{here}: parameter \"{}\" is deprecated; use \"{current}\" instead",
                    entry.key
                ));
                resolved.seed_format |= entry.key == "node";
                entry.key = current.to_string();
                resolved.entries.push(entry);
            }
            Some(None) => {
                resolved.seed_format |= entry.key == "cluster";
                resolved.warnings.push(ignored_warning(&here, &entry.key));
            }
            None => resolved.warnings.push(unknown_warning(&here, &entry.key)),
        }
    }
    resolved
}

fn ignored_warning(here: &str, key: &str) -> String {
    let advice = if key == "upstream_node" {
        "; use --upstream-node-id when registering"
    } else {
        ""
    };
    format!("{here}: parameter \"{key}\" is deprecated and will be ignored{advice}")
}

fn unknown_warning(here: &str, key: &str) -> String {
    let suggestion = params::suggest(key);
    let key = shorten(key);
    match suggestion {
        Some(near) => format!("{here}: unknown parameter \"{key}\"; did you mean \"{near}\"?"),
        None => format!("{here}: unknown parameter \"{key}\"; ignoring"),
    }
}

/// Deserializes every entry on its own (to name the bad ones), then the
/// last value of each key together. `tablespace_mapping` accumulates.
fn map_values(entries: &[Entry], errors: &mut Vec<String>) -> Config {
    let mut mappings = Vec::new();
    let mut latest: Vec<&Entry> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        let single = match deserialize_ini::<Config>(&ini_line(entry)) {
            Ok(single) => single,
            Err(_) => {
                errors.push(invalid_value(entry));
                continue;
            }
        };
        if entry.key == "tablespace_mapping" {
            mappings.extend(single.tablespace_mapping);
            continue;
        }
        match position.get(entry.key.as_str()) {
            Some(&i) => latest[i] = entry,
            None => {
                position.insert(&entry.key, latest.len());
                latest.push(entry);
            }
        }
    }
    let normalised: String = latest.iter().map(|e| ini_line(e)).collect();
    let mut config = deserialize_ini::<Config>(&normalised).unwrap_or_else(|e| {
        // Unreachable in practice: every line deserialized on its own above.
        errors.push(format!("could not map configuration values: {e}"));
        Config::default()
    });
    config.tablespace_mapping = mappings;
    config
}

/// One normalised `key=value` line; values never hold a newline because
/// the reader splits on them.
fn ini_line(entry: &Entry) -> String {
    format!("{}={}\n", entry.key, entry.value)
}

fn deserialize_ini<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_ini::from_str(text).map_err(|e| match e {
        serde_ini::de::Error::Custom(message) => message,
        other => format!("{other:?}"),
    })
}

/// `file:line: invalid value for parameter "key": "value" (expected ...)`;
/// the expectation comes from the table so it is the same for every key of
/// a kind.
fn invalid_value(entry: &Entry) -> String {
    let expected = params::find(&entry.key)
        .map(|p| p.kind.expected())
        .unwrap_or_default();
    format!(
        "{}: invalid value for parameter \"{}\": \"{}\" (expected {expected})",
        entry.location(),
        entry.key,
        shorten(&entry.value)
    )
}

fn shorten(value: &str) -> String {
    let mut short: String = value.chars().take(VALUE_EXCERPT_CHARS).collect();
    if value.chars().count() > VALUE_EXCERPT_CHARS {
        short.push_str("...");
    }
    short
}

/// repmgr 1.x files have no node_name; name the node after its id so the
/// file still loads.
fn name_seed_node(config: &mut Config, warnings: &mut Vec<String>) {
    if let (Some(id), true) = (config.node_id, config.node_name.is_empty()) {
        config.node_name = format!("node{id}");
        warnings.push(format!(
            "{}: \"node_name\" not set in this repmgr 1.x style file; using \"{}\"",
            config.config_file, config.node_name
        ));
    }
}

/// One error for everything, capped so a binary file does not flood the log.
fn config_error(mut errors: Vec<String>) -> Error {
    let syntax = errors.iter().any(|e| e.contains("syntax error near"));
    if errors.len() > MAX_REPORTED_ERRORS {
        let more = errors.len() - MAX_REPORTED_ERRORS;
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(format!("and {more} more errors"));
    }
    let error = Error::many(ExitCode::BadConfig, errors);
    if syntax {
        error.hint(
            "values containing spaces or special characters must be enclosed in single quotes",
        )
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{default_with_file, load, messages, only};
    use crate::config::{ConnectionCheckType, Failover};
    use crate::logging::RepmgrLevel;
    use std::fs;

    #[test]
    fn empty_file_gives_defaults() {
        let loaded = load("").unwrap();
        assert_eq!(loaded.config, default_with_file());
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.path, PathBuf::from("/x/repmgr.conf"));
    }

    #[test]
    fn typical_file() {
        let text = "\
node_id=1
node_name='node1'
conninfo='host=node1 user=repmgr dbname=repmgr connect_timeout=2'
data_directory='/var/lib/postgresql/15/main'
failover=automatic
connection_check_type = Query
use_replication_slots = yes
log_level = debug
event_notifications='standby_promote, standby_follow'
tablespace_mapping='/a=/b'
tablespace_mapping='/c=/d'
recovery_min_apply_delay = '5 min'
priority = 0
";
        let loaded = load(text).unwrap();
        let c = &loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(c.node_id, Some(1));
        assert_eq!(c.node_name, "node1");
        assert_eq!(
            c.conninfo,
            "host=node1 user=repmgr dbname=repmgr connect_timeout=2"
        );
        assert_eq!(c.failover, Failover::Automatic);
        assert_eq!(c.connection_check_type, ConnectionCheckType::Query);
        assert!(c.use_replication_slots);
        assert_eq!(c.log_level, RepmgrLevel::Debug);
        assert_eq!(c.event_notifications, ["standby_promote", "standby_follow"]);
        assert_eq!(
            c.tablespace_mapping,
            [("/a".into(), "/b".into()), ("/c".into(), "/d".into())]
        );
        assert_eq!(c.recovery_min_apply_delay, "5 min");
        assert_eq!(c.priority, 0);
        assert!(c.check_required(true).is_ok());
    }

    #[test]
    fn last_occurrence_wins() {
        let c = load("priority = 5\npriority = 7\n").unwrap().config;
        assert_eq!(c.priority, 7);
    }

    #[test]
    fn documented_error_texts() {
        let text = "# header\n\n\nfailover = sometimes\n\n\nnode_id = abc\nnode_name = 'x\nconninfo = host=a junk\n";
        assert_eq!(
            messages(text),
            [
                "/x/repmgr.conf:8: unterminated quoted string",
                "/x/repmgr.conf:9: syntax error near \"junk\"",
                "/x/repmgr.conf:4: invalid value for parameter \"failover\": \"sometimes\" (expected \"manual\" or \"automatic\")",
                "/x/repmgr.conf:7: invalid value for parameter \"node_id\": \"abc\" (expected an integer >= 1)",
            ]
        );
        let error = load(text).unwrap_err();
        assert!(error.hint.is_some());
    }

    #[test]
    fn barman_and_backupapi_keys_warn_that_they_have_no_effect() {
        let loaded = load("barman_host = b\nbarman_server = s\npg_backupapi_host = ''\n").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:1: parameter \"barman_host\" has no effect: this repmgr cannot clone from Barman or pg-backup-api",
                "/x/repmgr.conf:2: parameter \"barman_server\" has no effect: this repmgr cannot clone from Barman or pg-backup-api",
            ]
        );
    }

    #[test]
    fn keys_without_effect_warn() {
        let loaded = load("reconnect_loop_sync = on\npromote_check_interval = 2\nalways_promote = on\npromote_delay = 1\nfailover_delay = 1\n").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:1: parameter \"reconnect_loop_sync\" is accepted for compatibility and has no effect here: reconnection attempts are always scheduled on the clock from the first failed check (see repmgr.conf(5))",
                "/x/repmgr.conf:2: parameter \"promote_check_interval\" is accepted for compatibility and has no effect here: promotion progress is checked every 10 ms (promote_check_timeout bounds the wait) (see repmgr.conf(5))",
            ]
        );
        assert!(loaded.config.always_promote);
        assert_eq!(
            (loaded.config.promote_delay, loaded.config.failover_delay),
            (1, 1)
        );
        for (key, _) in NO_EFFECT {
            assert!(params::find(key).is_some(), "{key}");
        }
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() {
        let loaded = load("node_id = 1\n\n\nnode_nmae = 'a'\nfrobnicate = 1\n").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:4: unknown parameter \"node_nmae\"; did you mean \"node_name\"?",
                "/x/repmgr.conf:5: unknown parameter \"frobnicate\"; ignoring",
            ]
        );
        assert_eq!(loaded.config.node_name, "");
    }

    #[test]
    fn deprecated_names_map_with_a_warning() {
        let loaded = load(
            "loglevel = WARNING\nlogfacility = LOCAL0\nlogfile = '/tmp/r.log'\nmaster_response_timeout = 11\nretry_promote_interval_secs = 12\nupstream_node = 3\n",
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.log_level, RepmgrLevel::Warning);
        assert_eq!(c.log_facility, "LOCAL0");
        assert_eq!(c.log_file, "/tmp/r.log");
        assert_eq!(c.async_query_timeout, 11);
        assert_eq!(c.primary_notification_timeout, 12);
        assert_eq!(loaded.warnings.len(), 6);
        assert_eq!(
            loaded.warnings[0],
            "/x/repmgr.conf:1: parameter \"loglevel\" is deprecated; use \"log_level\" instead"
        );
        assert!(loaded.warnings[5].contains("\"upstream_node\" is deprecated and will be ignored"));
        assert_eq!(only("master_reponse_timeout", "9").async_query_timeout, 9);
    }

    #[test]
    fn seed_format_loads() {
        let loaded = load("cluster=test\nnode=2\nconninfo='host=192.168.204.104'\n").unwrap();
        let c = &loaded.config;
        assert_eq!(c.node_id, Some(2));
        assert_eq!(c.node_name, "node2");
        assert_eq!(c.conninfo, "host=192.168.204.104");
        assert_eq!(
            loaded.warnings,
            [
                "/x/repmgr.conf:1: parameter \"cluster\" is deprecated and will be ignored",
                "/x/repmgr.conf:2: parameter \"node\" is deprecated; use \"node_id\" instead",
                "/x/repmgr.conf: \"node_name\" not set in this repmgr 1.x style file; using \"node2\"",
            ]
        );
        assert!(c.check_required(false).is_ok());
        // A modern file is never given an invented name.
        assert_eq!(only("node_id", "2").node_name, "");
    }

    #[test]
    fn errors_are_capped() {
        let text = "node_id = x\n".repeat(120);
        let errors = messages(&text);
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(
            errors.last().map(String::as_str),
            Some("and 70 more errors")
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        garbage.extend(std::iter::repeat_n(b'a', 1_000_000));
        let text = String::from_utf8_lossy(&garbage);
        assert!(load(&text).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.conf");
        fs::write(&path, &garbage).unwrap();
        assert!(load_file(&path).is_err());
        let huge_key = format!("{} = 1\n", "k".repeat(2_000_000));
        let loaded = load(&huge_key).unwrap();
        assert!(loaded.warnings[0].len() < 200);
        for odd in [
            "=",
            "'",
            "\\",
            "a",
            "a=",
            "a='",
            "[x]",
            "a=[x]",
            ";x=1",
            "a = '\\'",
            "\u{feff}node_id=1",
        ] {
            let _ = load(odd);
        }
    }

    #[test]
    fn load_file_with_include_and_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("common.conf"), "priority = 42\n").unwrap();
        let main = dir.path().join("repmgr.conf");
        fs::write(&main, "node_id = 3\ninclude 'common.conf'\n").unwrap();
        let loaded = load_file(&main).unwrap();
        assert_eq!(loaded.config.node_id, Some(3));
        assert_eq!(loaded.config.priority, 42);
        assert_eq!(loaded.path, main);
        assert_eq!(loaded.config.config_file, main.display().to_string());
    }

    #[test]
    fn errors_from_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.conf");
        fs::write(&extra, "\npriority = high\n").unwrap();
        let main = dir.path().join("repmgr.conf");
        fs::write(&main, "include 'extra.conf'\nnode_id = 0\n").unwrap();
        let error = load_file(&main).unwrap_err();
        assert_eq!(
            error.messages,
            [
                format!(
                    "{}:2: invalid value for parameter \"priority\": \"high\" (expected an integer >= 0)",
                    extra.display()
                ),
                format!(
                    "{}:2: invalid value for parameter \"node_id\": \"0\" (expected an integer >= 1)",
                    main.display()
                ),
            ]
        );
    }
}
